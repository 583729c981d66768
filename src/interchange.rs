//! The interchange JSON (`docs/interchange.md`) from record to answer: reading records
//! from JSON lines ([`records`]), the request-to-answer step ([`answer`]), and error
//! messages that name the field at fault (`field: message`), the same words from the
//! command line and from the HTTP service.

pub mod answer;
pub mod export;
pub mod records;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::Deserialize;
use serde_json::{Map, Value};

use crate::basis::{ConsentLevel, LegalBasis};
use crate::category::DataCategory;
use crate::consent::Scope;
use crate::error::EventError;
use crate::purpose::Purpose;
use crate::request::{Action, Deidentification, Recipient, Region, Signals};

/// What a record is expected to be, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordKind {
    /// An access request.
    Request,
    /// A consent event.
    Event,
}

/// serde_json's message without its " at line L column C" tail, which would count lines
/// of the record rather than of the input.
pub fn bare(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let tail = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&tail).map_or_else(|| text.clone(), str::to_owned)
}

/// An event error, naming the field it is about.
pub fn event_message(error: &EventError) -> String {
    match error {
        EventError::UnknownPurpose(_) => format!("purposes: {error}"),
        EventError::UnknownCategory(_) => format!("scope.categories: {error}"),
        EventError::UnknownRecipient(_) => format!("scope.recipients: {error}"),
        // The others name their fields themselves.
        _ => error.to_string(),
    }
}

/// A message naming the field at fault in a record that did not deserialize, given
/// serde_json's `error` for it: `field: message`, or `malformed JSON: …`.
///
/// serde reports the first problem in its own terms, and for consent events (an
/// internally tagged enum, buffered before it is read) without a usable position, so
/// the record is read again as a JSON value and each field is checked on its own.
pub fn explain(record: &[u8], kind: RecordKind, error: &serde_json::Error) -> String {
    let value = match serde_json::from_slice::<Value>(record) {
        Ok(value) => value,
        Err(e) => return format!("malformed JSON: {} (column {})", bare(&e), e.column()),
    };
    let Value::Object(fields) = value else {
        return format!("expected a JSON object ({}), found {}", kind_name(kind), json_type(&value));
    };
    let found = match kind {
        RecordKind::Request => explain_request(&fields),
        RecordKind::Event => explain_event(&fields),
    };
    found.unwrap_or_else(|| bare(error))
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Request => "an access request",
        RecordKind::Event => "a consent event",
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of an access request, in the order of `interchange.md`.
const REQUEST_FIELDS: &[&str] = &[
    "subject",
    "purpose",
    "action",
    "categories",
    "recipient",
    "deidentification",
    "basis",
    "region",
    "signals",
    "collected_at",
    "collected_session",
    "session",
    "at",
];

fn explain_request(fields: &Map<String, Value>) -> Option<String> {
    unknown_field(fields, REQUEST_FIELDS)
        .or_else(|| {
            fields.iter().find_map(|(name, value)| {
                let checked = match name.as_str() {
                    "subject" => subject(value),
                    "purpose" => check::<Purpose>(value),
                    "categories" => categories(value),
                    "action" => check::<Action>(value),
                    "recipient" => object(value).and_then(|()| check::<Recipient<'_>>(value)),
                    "deidentification" => check::<Deidentification>(value),
                    "basis" => check::<Option<LegalBasis>>(value),
                    "region" => check::<Option<Region>>(value),
                    "signals" => object(value).and_then(|()| check::<Signals>(value)),
                    "collected_at" | "at" => time(value),
                    "collected_session" | "session" => check::<Option<String>>(value),
                    _ => Ok(()),
                };
                checked.err().map(|message| format!("{name}: {message}"))
            })
        })
        .or_else(|| missing(fields, &["subject", "purpose", "categories"], "an access request"))
}

fn explain_event(fields: &Map<String, Value>) -> Option<String> {
    let Some(kind) = fields.get("type") else {
        return Some("missing field `type` (one of subject, grant, withdraw, erase, end)".to_owned());
    };
    let (allowed, required): (&[&str], &[&str]) = match kind.as_str() {
        Some("subject") => (&["type", "subject", "birth_date", "age", "at"], &["subject"]),
        Some("grant") => (
            &["type", "subject", "purposes", "level", "at", "policy_version", "by_guardian", "expires_at", "scope"],
            &["subject", "purposes", "level", "at"],
        ),
        Some("withdraw") => (&["type", "subject", "purposes", "at"], &["subject", "purposes", "at"]),
        Some("erase") => (&["type", "subject", "at"], &["subject", "at"]),
        Some("end") => (&["type", "subject", "purposes", "at"], &["subject", "purposes", "at"]),
        _ => return Some(format!("type: {kind} is not an event type (subject, grant, withdraw, erase, end)")),
    };
    unknown_field(fields, allowed)
        .or_else(|| {
            fields.iter().find_map(|(name, value)| {
                let checked = match name.as_str() {
                    "subject" => subject(value),
                    "purposes" => purposes(value),
                    "level" => check::<ConsentLevel>(value),
                    "at" if kind == "subject" => optional_time(value),
                    "at" => time(value),
                    "expires_at" => optional_time(value),
                    "birth_date" => {
                        check::<Option<NaiveDate>>(value).map_err(|_| format!("{value} is not a date like 2013-05-01"))
                    }
                    "age" => crate::consent::whole_years(value).map(drop).map_err(|e| e.to_string()),
                    "policy_version" => check::<Option<String>>(value),
                    "by_guardian" => check::<bool>(value),
                    "scope" => match value {
                        Value::Null => Ok(()),
                        _ => object(value).and_then(|()| check::<Scope>(value)),
                    },
                    _ => Ok(()),
                };
                checked.err().map(|message| format!("{name}: {message}"))
            })
        })
        .or_else(|| missing(fields, required, &format!("a `{kind}` event", kind = kind.as_str().unwrap_or_default())))
}

fn unknown_field(fields: &Map<String, Value>, allowed: &[&str]) -> Option<String> {
    fields
        .keys()
        .find(|name| !allowed.contains(&name.as_str()))
        .map(|name| format!("unknown field `{name}` (expected one of: {})", allowed.join(", ")))
}

fn missing(fields: &Map<String, Value>, required: &[&str], what: &str) -> Option<String> {
    required
        .iter()
        .find(|name| !fields.contains_key(**name))
        .map(|name| format!("missing field `{name}` ({what} needs {})", required.join(", ")))
}

fn check<'a, T: Deserialize<'a>>(value: &'a Value) -> Result<(), String> {
    T::deserialize(value).map(drop).map_err(|e| e.to_string())
}

fn subject(value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) if s.is_empty() => Err("must not be empty".to_owned()),
        _ => check::<String>(value),
    }
}

/// A struct is written as an object (serde would also read an array of its fields).
fn object(value: &Value) -> Result<(), String> {
    match value {
        Value::Object(_) => Ok(()),
        other => Err(format!("expected an object, found {}", json_type(other))),
    }
}

fn categories(value: &Value) -> Result<(), String> {
    match value {
        Value::Array(items) if items.is_empty() => Err("at least one category is required".to_owned()),
        _ => check::<Vec<DataCategory>>(value),
    }
}

fn purposes(value: &Value) -> Result<(), String> {
    match value {
        Value::Array(items) if items.is_empty() => Err("at least one purpose is required".to_owned()),
        _ => check::<Vec<Purpose>>(value),
    }
}

fn time(value: &Value) -> Result<(), String> {
    check::<DateTime<Utc>>(value)
        .map_err(|e| format!("{value} is not an RFC 3339 time like 2026-01-10T00:00:00Z ({e})"))
}

fn optional_time(value: &Value) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        _ => time(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let err = |text: &str, kind| {
            let e = serde_json::from_slice::<Value>(b"[").err().unwrap_or_else(|| unreachable!());
            explain(text.as_bytes(), kind, &e)
        };
        assert!(err(
            r#"{"subject":"u","purpose":"ai_training","categories":["behavior"],"at":"yesterday"}"#,
            RecordKind::Request
        )
        .starts_with("at: "));
        assert!(
            err(r#"{"type":"grant","subject":"u","levle":"x"}"#, RecordKind::Event).contains("unknown field `levle`")
        );
        // `basis` is a field of a request: another error beside it is the one reported,
        // and the list of fields names it.
        let beside_basis = err(
            r#"{"subject":"u","purpose":"ai_training","categories":["behavior"],"basis":"contract","at":"yesterday"}"#,
            RecordKind::Request,
        );
        assert!(beside_basis.starts_with("at: "), "{beside_basis}");
        let unknown =
            err(r#"{"subject":"u","purpose":"ai_training","categories":["behavior"],"x":1}"#, RecordKind::Request);
        assert!(unknown.contains(", basis, "), "{unknown}");
        assert!(err(
            r#"{"subject":"u","purpose":"ai_training","categories":["behavior"],"basis":"nope"}"#,
            RecordKind::Request
        )
        .starts_with("basis: "));
    }
}
