//! HTTP answers for decisions and errors: RFC 9457 problem details, with the status
//! mapping of the module docs.

use std::borrow::Cow;

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use super::extract::ConsentRejection;
use crate::decision::{Decision, ReasonCode};
use crate::error::{AuditError, EventError, NameError, PolicyError, RequestError, StoreError};
use crate::reload::ReloadError;

/// The problem+json body.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: Cow<'a, str>,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    clause: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
}

impl<'a> Problem<'a> {
    /// A problem about an error, not a decision.
    fn error(status: StatusCode, title: &'static str, code: &'a str, detail: impl Into<Cow<'a, str>>) -> Problem<'a> {
        Problem {
            kind: format!("urn:consent-guard:error:{code}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            code,
            clause: None,
            policy: None,
            policy_version: None,
            purpose: None,
        }
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // A struct of strings always serialises; the fallback keeps the status anyway.
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| br#"{"title":"error"}"#.to_vec());
        json_response(status, "application/problem+json", body)
    }
}

fn json_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The status of a decision: 200 on an allow, 503 when the guard failed closed, 403 on
/// every other denial.
fn decision_status(code: ReasonCode) -> StatusCode {
    match code {
        _ if code.is_allow() => StatusCode::OK,
        ReasonCode::ConsentStateUnavailable | ReasonCode::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::FORBIDDEN,
    }
}

/// An allow answers 200 with the decision's JSON (`interchange.md`); a denial answers
/// 403 (503 when the guard failed closed) with a problem+json body carrying the code,
/// the clause, the policy and the message.
impl IntoResponse for Decision<'_> {
    fn into_response(self) -> Response {
        let status = decision_status(self.code());
        if status == StatusCode::OK {
            let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
            return json_response(status, "application/json", body);
        }
        let title = if status == StatusCode::FORBIDDEN {
            "Denied by the privacy policy"
        } else {
            "Cannot decide now: denied to fail closed"
        };
        Problem {
            kind: format!("urn:consent-guard:reason:{}", self.code()),
            title,
            status: status.as_u16(),
            detail: Cow::Owned(self.message().into_owned()),
            code: self.code().as_str(),
            clause: self.clause(),
            policy: Some(self.policy()),
            policy_version: Some(self.policy_version()),
            purpose: Some(self.purpose().as_str()),
        }
        .into_response()
    }
}

impl IntoResponse for ConsentRejection {
    fn into_response(self) -> Response {
        match self {
            ConsentRejection::Denied(decision) => decision.into_response(),
            ConsentRejection::NoSubject => Problem::error(
                StatusCode::UNAUTHORIZED,
                "No subject",
                "no_subject",
                "the request names no subject whose consent could be checked",
            )
            .into_response(),
            ConsentRejection::LayerMissing => Problem::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Consent layer missing",
                "consent_layer_missing",
                "no ConsentLayer runs in front of this route: denied to fail closed",
            )
            .into_response(),
        }
    }
}

fn store_unavailable() -> Response {
    Problem::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Consent store unavailable",
        "store_unavailable",
        "the consent store cannot be reached; nothing was recorded",
    )
    .into_response()
}

/// 422 for an event the policy refuses (the message says why), 503 when the store
/// failed (without the store's message).
impl IntoResponse for EventError {
    fn into_response(self) -> Response {
        match self {
            EventError::Store(_) => store_unavailable(),
            other => Problem::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Consent event refused",
                "event_refused",
                other.to_string(),
            )
            .into_response(),
        }
    }
}

/// 503, without the store's message.
impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        store_unavailable()
    }
}

/// 503: the audit sink cannot keep records (without its message, which may name files).
impl IntoResponse for AuditError {
    fn into_response(self) -> Response {
        Problem::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Audit unavailable",
            "audit_unavailable",
            "the audit record could not be kept",
        )
        .into_response()
    }
}

/// 422: a purpose, category or region name that is not well formed (from a path or a
/// query, say).
impl IntoResponse for NameError {
    fn into_response(self) -> Response {
        Problem::error(StatusCode::UNPROCESSABLE_ENTITY, "Name invalid", "name_invalid", self.to_string())
            .into_response()
    }
}

/// 422: the request names what the policy does not know.
impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        Problem::error(StatusCode::UNPROCESSABLE_ENTITY, "Access request invalid", "request_invalid", self.to_string())
            .into_response()
    }
}

/// 422: the policy does not load (the first error, and how many more).
impl IntoResponse for PolicyError {
    fn into_response(self) -> Response {
        Problem::error(StatusCode::UNPROCESSABLE_ENTITY, "Policy invalid", "policy_invalid", self.to_string())
            .into_response()
    }
}

/// 409 when the new policy cannot take over (the running one still serves), 503 when
/// the store could not be read for it, 500 after a panic.
impl IntoResponse for ReloadError {
    fn into_response(self) -> Response {
        match self {
            ReloadError::Replay(EventError::Store(_)) => store_unavailable(),
            ReloadError::Poisoned => Problem::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Policy swap failed",
                "reload_poisoned",
                self.to_string(),
            )
            .into_response(),
            other => Problem::error(StatusCode::CONFLICT, "Policy not swapped", "reload_refused", other.to_string())
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(decision_status(ReasonCode::ConsentGiven), StatusCode::OK);
        assert_eq!(decision_status(ReasonCode::ConsentMissing), StatusCode::FORBIDDEN);
        assert_eq!(decision_status(ReasonCode::ConsentStateUnavailable), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(EventError::Empty("subject").into_response().status(), StatusCode::UNPROCESSABLE_ENTITY);
        let store = EventError::Store(StoreError::new("db.internal:5432 refused")).into_response();
        assert_eq!(store.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ReloadError::NotReplayable.into_response().status(), StatusCode::CONFLICT);
        let rejected = ConsentRejection::NoSubject.into_response();
        assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            rejected.headers().get(CONTENT_TYPE).map(HeaderValue::as_bytes),
            Some(&b"application/problem+json"[..])
        );
    }
}
