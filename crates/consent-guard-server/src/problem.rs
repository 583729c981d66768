//! Every error the service answers, as RFC 9457 problem details
//! (`application/problem+json`), the format of the library's web pieces
//! (`consent_guard::web`): `type`, `title`, `status`, `detail` and a stable `code`, and
//! where they apply the `field` at fault, the `line` or `item` of a batch, the body
//! `limit`, or the policy's `errors`. The status mapping is documented once, in
//! `docs/deploying.md` ("Errors").

use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use consent_guard::interchange::answer::{field_of, AnswerError};
use serde::Serialize;

use crate::Role;

/// Where a record is in a batch body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// The 1-based line a record of JSON lines starts on.
    Line(u64),
    /// The 1-based index of an item of a JSON array.
    Item(usize),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(line) => write!(f, "line {line}"),
            Position::Item(item) => write!(f, "item {item}"),
        }
    }
}

/// Why the service did not answer a request as asked.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The body is not what the endpoint takes: 400.
    BadRequest {
        /// What is wrong, `field: message`, after the record's place in a batch.
        detail: String,
        /// The field at fault.
        field: Option<String>,
        /// The record's place in a batch.
        position: Option<Position>,
        /// Well-formed, but its fields contradict each other (`expires_at` not after
        /// `at`, a version later than the enforced one), which no schema can say:
        /// 422 `inconsistent_record` rather than 400.
        inconsistent: bool,
    },
    /// No token, or one not configured: 401 with a `Bearer` challenge.
    Unauthenticated,
    /// A known token without the role: 403.
    Forbidden(Option<Role>),
    /// No such endpoint, or nothing there: 404.
    NotFound(&'static str),
    /// The endpoint does not take this method: 405.
    MethodNotAllowed,
    /// The client took longer than the request timeout: 408.
    Timeout,
    /// The body is larger than the limit: 413.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The new policy does not load or cannot take over: 422; the old one serves on.
    PolicyRejected {
        /// What happened.
        detail: &'static str,
        /// Every error of the policy.
        errors: Vec<String>,
    },
    /// The consent store (or the metrics recorder) cannot answer: 503.
    Unavailable(String),
    /// The service failed: 500.
    Internal(String),
}

impl ApiError {
    /// A bad record, at its place in a batch when it has one.
    pub(crate) fn bad(error: &AnswerError, position: Option<Position>) -> ApiError {
        let message = error.to_string();
        let field = error.field().map(str::to_owned);
        let inconsistent = matches!(
            error,
            AnswerError::Event(consent_guard::EventError::Inconsistent(_) | consent_guard::EventError::Version(_))
        );
        ApiError::BadRequest { detail: at(position, &message), field, position, inconsistent }
    }

    /// A bad body, `message` naming the field when it can.
    pub(crate) fn bad_message(message: &str, position: Option<Position>) -> ApiError {
        let field = field_of(message).map(str::to_owned);
        ApiError::BadRequest { detail: at(position, message), field, position, inconsistent: false }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { inconsistent: true, .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::PolicyRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code (`type` is `urn:consent-guard:error:CODE`) and the title.
    fn code(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest { inconsistent: true, .. } => ("inconsistent_record", "The record contradicts itself"),
            ApiError::BadRequest { .. } => ("bad_request", "Bad request body"),
            ApiError::Unauthenticated => ("unauthenticated", "A valid bearer token is required"),
            ApiError::Forbidden(_) => ("forbidden", "The token lacks the role"),
            ApiError::NotFound(_) => ("not_found", "Not found"),
            ApiError::MethodNotAllowed => ("method_not_allowed", "Method not allowed"),
            ApiError::Timeout => ("request_timeout", "Request timeout"),
            ApiError::TooLarge { .. } => ("body_too_large", "Request body too large"),
            ApiError::PolicyRejected { .. } => ("policy_rejected", "Policy not reloaded"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::Internal(_) => ("internal", "Internal error"),
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::BadRequest { detail, .. } => detail.clone(),
            ApiError::Unauthenticated => "a valid bearer token is required (Authorization: Bearer TOKEN)".to_owned(),
            ApiError::Forbidden(role) => {
                format!("this token lacks the role `{}`", role.map_or("any", Role::as_str))
            }
            ApiError::NotFound(message) => (*message).to_owned(),
            ApiError::MethodNotAllowed => "this endpoint does not take this method (see docs/openapi.yaml)".to_owned(),
            ApiError::Timeout => "the request took longer than the server's request timeout".to_owned(),
            ApiError::TooLarge { limit } => format!(
                "the request body is larger than the server's limit of {limit} bytes (raise it with --body-limit)"
            ),
            ApiError::PolicyRejected { detail, .. } => (*detail).to_owned(),
            ApiError::Unavailable(message) | ApiError::Internal(message) => message.clone(),
        }
    }
}

fn at(position: Option<Position>, message: &str) -> String {
    match position {
        Some(position) => format!("{position}: {message}"),
        None => message.to_owned(),
    }
}

/// The problem+json body.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [String]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (code, title) = self.code();
        let (field, position) = match &self {
            ApiError::BadRequest { field, position, .. } => (field.as_deref(), *position),
            _ => (None, None),
        };
        let problem = Problem {
            kind: format!("urn:consent-guard:error:{code}"),
            title,
            status: status.as_u16(),
            detail: self.detail(),
            code,
            field,
            line: match position {
                Some(Position::Line(line)) => Some(line),
                _ => None,
            },
            item: match position {
                Some(Position::Item(item)) => Some(item),
                _ => None,
            },
            limit: match &self {
                ApiError::TooLarge { limit } => Some(*limit),
                _ => None,
            },
            errors: match &self {
                ApiError::PolicyRejected { errors, .. } => Some(errors.as_slice()),
                _ => None,
            },
        };
        // A struct of strings and numbers always serialises; the fallback keeps the status.
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| br#"{"title":"error"}"#.to_vec());
        let mut response =
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))], body)
                .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_their_field_and_place() {
        let error = ApiError::bad_message("subject: must not be empty", Some(Position::Line(2)));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).map(HeaderValue::as_bytes),
            Some(&b"application/problem+json"[..])
        );
        let unauthenticated = ApiError::Unauthenticated.into_response();
        assert_eq!(
            unauthenticated.headers().get(header::WWW_AUTHENTICATE).map(HeaderValue::as_bytes),
            Some(&b"Bearer"[..])
        );
        assert!(ApiError::TooLarge { limit: 5 }.detail().contains("--body-limit"));
    }
}
