//! Request bodies: [`Payload`] reads one within the body limit, refusing at once (`413`)
//! a body whose `Content-Length` announces more; [`Records`] is the one extractor of
//! the batch bodies (a JSON array, or JSON lines read by the library's records reader),
//! each record with its place, so that an error names its line or item.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::StatusCode;
use consent_guard::interchange::records::{for_each_record_in, RecordsError};
use consent_guard::interchange::{bare, explain, RecordKind};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::problem::{ApiError, Position};
use super::App;

/// A request body, whole.
pub(crate) struct Payload(pub(crate) Bytes);

impl FromRequest<Arc<App>> for Payload {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, ApiError> {
        let limit = app.options.body_limit;
        // Announced too large: refused before a byte of it is read.
        let announced = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|length| length > limit as u64) {
            return Err(ApiError::TooLarge { limit });
        }
        match Bytes::from_request(request, app).await {
            Ok(bytes) => Ok(Payload(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge { limit }),
            Err(rejection) => Err(ApiError::bad_message(&rejection.body_text(), None)),
        }
    }
}

/// A batch body: a JSON array, or JSON lines (one object, however laid out, is one
/// record).
pub(crate) struct Records(pub(crate) Bytes);

impl FromRequest<Arc<App>> for Records {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, ApiError> {
        Payload::from_request(request, app).await.map(|Payload(bytes)| Records(bytes))
    }
}

impl Records {
    /// Every record, parsed, with its place. An empty body is an error: a batch of
    /// nothing is a client's mistake, not a success with no answer.
    pub(crate) fn parse<'a, T: Deserialize<'a>>(&'a self, kind: RecordKind) -> Result<Vec<(T, Position)>, ApiError> {
        let body: &'a [u8] = &self.0;
        let first = body.iter().position(|b| !b.is_ascii_whitespace()).and_then(|i| body.get(i));
        let records = match first {
            None => Vec::new(),
            Some(b'[') => {
                let items: Vec<&'a RawValue> = serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_message(
                        &format!("malformed JSON: {} (line {}, column {})", bare(&e), e.line(), e.column()),
                        None,
                    )
                })?;
                let mut records = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let text = item.get();
                    let position = Position::Item(index + 1);
                    let record = serde_json::from_str(text)
                        .map_err(|e| ApiError::bad_message(&explain(text.as_bytes(), kind, &e), Some(position)))?;
                    records.push((record, position));
                }
                records
            }
            Some(_) => {
                let mut records = Vec::new();
                for_each_record_in(body, "body", |bytes, line| {
                    let record = serde_json::from_slice(bytes)
                        .map_err(|e| RecordsError::record("body", line, explain(bytes, kind, &e)))?;
                    records.push((record, Position::Line(line)));
                    Ok::<(), RecordsError>(())
                })
                .map_err(|e| match e {
                    RecordsError::Record { line, message, .. } => {
                        ApiError::bad_message(&message, Some(Position::Line(line)))
                    }
                    other => ApiError::bad_message(&other.to_string(), None),
                })?;
                records
            }
        };
        if records.is_empty() {
            let what = match kind {
                RecordKind::Event => "no consent event in the body",
                _ => "no access request in the body",
            };
            return Err(ApiError::bad_message(what, None));
        }
        Ok(records)
    }
}
