//! Reading JSON records (requests, consent events) from JSON lines or from JSON
//! documents spread over several lines, and turning serde's errors into messages that
//! name the field at fault.

use std::io::{BufRead, Read};

use chrono::{DateTime, NaiveDate, Utc};
use consent_guard::basis::ConsentLevel;
use consent_guard::category::DataCategory;
use consent_guard::consent::Scope;
use consent_guard::purpose::Purpose;
use consent_guard::request::{Action, Deidentification, Recipient, Region, Signals};
use serde::de::{Deserialize, IgnoredAny};
use serde_json::{Map, Value};

use crate::CliError;

/// What a record is expected to be, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An access request.
    Request,
    /// A consent event.
    Event,
}

/// The longest line a record may take (1 MiB): a longer one is an error naming its file
/// and line.
pub(crate) const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The most a pretty-printed input (records spread over lines, read whole) may take.
pub(crate) const MAX_DOCUMENTS_BYTES: u64 = 64 << 20;

/// Calls `each` with the bytes and the 1-based starting line of every JSON record of
/// `reader`, blank lines skipped.
///
/// JSON lines are read one line at a time into one reused buffer, so that a large
/// batch costs no allocation per line. A record that does not end on its line (a
/// pretty-printed object) switches to reading the rest as a stream of JSON documents.
pub(crate) fn for_each_record(
    mut reader: impl BufRead,
    file: &str,
    mut each: impl FnMut(&[u8], u64) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let read_error = |source| CliError::Read { file: file.to_owned(), source };
    let mut buffer = Vec::with_capacity(4096);
    let mut line = 0u64;
    loop {
        buffer.clear();
        // Never more than one record's worth in memory: `/dev/zero` is not a request.
        if (&mut reader).take(MAX_RECORD_BYTES + 1).read_until(b'\n', &mut buffer).map_err(read_error)? == 0 {
            return Ok(());
        }
        line += 1;
        let content = buffer.strip_suffix(b"\n").unwrap_or(&buffer);
        if content.len() as u64 > MAX_RECORD_BYTES {
            return Err(CliError::Input {
                file: file.to_owned(),
                line,
                message: format!("the line is longer than {MAX_RECORD_BYTES} bytes, the most a record may take"),
            });
        }
        if buffer.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match each(&buffer, line) {
            Ok(()) => {}
            // A record that fails had no effect yet; if it fails because its JSON goes
            // on past the line, read it again as the start of a stream of documents.
            // The syntax check runs only on lines that failed, not on every line.
            Err(CliError::Input { .. }) if ends_early(&buffer) => {
                reader.take(MAX_DOCUMENTS_BYTES).read_to_end(&mut buffer).map_err(read_error)?;
                if buffer.len() as u64 >= MAX_DOCUMENTS_BYTES {
                    return Err(CliError::Input {
                        file: file.to_owned(),
                        line,
                        message: format!(
                            "pretty-printed input is read whole and may take at most {MAX_DOCUMENTS_BYTES} bytes: \
                             write one record per line (JSON lines) for more"
                        ),
                    });
                }
                return for_each_document(&buffer, file, line, each);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a line is an unfinished JSON document (the input is pretty-printed).
fn ends_early(line: &[u8]) -> bool {
    match serde_json::from_slice::<IgnoredAny>(line) {
        Ok(_) => false,
        Err(e) => e.classify() == serde_json::error::Category::Eof,
    }
}

/// The stream form: JSON documents one after the other, however laid out. `first_line`
/// is the line `text` starts at.
fn for_each_document(
    text: &[u8],
    file: &str,
    first_line: u64,
    mut each: impl FnMut(&[u8], u64) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<IgnoredAny>();
    loop {
        let before = stream.byte_offset();
        let start = text
            .get(before..)
            .and_then(|rest| rest.iter().position(|b| !b.is_ascii_whitespace()))
            .map_or(text.len(), |skip| before + skip);
        let line = first_line + newlines(text.get(..start).unwrap_or_default());
        match stream.next() {
            None => return Ok(()),
            Some(Ok(_)) => {
                let record = text.get(start..stream.byte_offset()).unwrap_or_default();
                each(record, line)?;
            }
            Some(Err(e)) => {
                let at = first_line + (e.line() as u64).saturating_sub(1);
                let message = format!("malformed JSON: {} (line {at}, column {})", bare(&e), e.column());
                return Err(CliError::Input { file: file.to_owned(), line, message });
            }
        }
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// serde_json's message without its " at line L column C" tail, which would count lines
/// of the record rather than of the file.
fn bare(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let tail = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&tail).map_or_else(|| text.clone(), str::to_owned)
}

/// A message naming the field at fault in a record that did not deserialize.
///
/// serde reports the first problem in its own terms, and for consent events (an
/// internally tagged enum, buffered before it is read) without a usable position, so
/// the record is read again as a JSON value and each field is checked on its own.
pub(crate) fn explain(record: &[u8], kind: Kind, error: &serde_json::Error) -> String {
    let value = match serde_json::from_slice::<Value>(record) {
        Ok(value) => value,
        Err(e) => return format!("malformed JSON: {} (column {})", bare(&e), e.column()),
    };
    let Value::Object(fields) = value else {
        return format!("expected a JSON object ({}), found {}", kind_name(kind), json_type(&value));
    };
    let found = match kind {
        Kind::Request => explain_request(&fields),
        Kind::Event => explain_event(&fields),
    };
    found.unwrap_or_else(|| bare(error))
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Request => "an access request",
        Kind::Event => "a consent event",
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
                    "recipient" => check::<Recipient<'_>>(value),
                    "deidentification" => check::<Deidentification>(value),
                    "region" => check::<Option<Region>>(value),
                    "signals" => check::<Signals>(value),
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
        return Some("missing field `type` (one of subject, grant, withdraw, erase)".to_owned());
    };
    let (allowed, required): (&[&str], &[&str]) = match kind.as_str() {
        Some("subject") => (&["type", "subject", "birth_date", "age", "at"], &["subject"]),
        Some("grant") => (
            &["type", "subject", "purposes", "level", "at", "policy_version", "by_guardian", "expires_at", "scope"],
            &["subject", "purposes", "level", "at"],
        ),
        Some("withdraw") => (&["type", "subject", "purposes", "at"], &["subject", "purposes", "at"]),
        Some("erase") => (&["type", "subject", "at"], &["subject", "at"]),
        _ => return Some(format!("type: {kind} is not an event type (subject, grant, withdraw, erase)")),
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
                    "age" => check::<Option<u16>>(value),
                    "policy_version" => check::<Option<String>>(value),
                    "by_guardian" => check::<bool>(value),
                    "scope" => check::<Option<Scope>>(value),
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

    /// The records of `text` with their lines, each parsed as the commands do.
    fn records(text: &str) -> Result<Vec<(String, u64)>, CliError> {
        let mut seen = Vec::new();
        for_each_record(text.as_bytes(), "t", |bytes, line| {
            let value: Value = serde_json::from_slice(bytes).map_err(|e| CliError::Input {
                file: "t".into(),
                line,
                message: e.to_string(),
            })?;
            seen.push((value.to_string(), line));
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn json_lines_and_pretty_documents() {
        let seen = records("{\"a\":1}\n\n{\"b\":2}\n").unwrap();
        assert_eq!(seen, vec![("{\"a\":1}".to_owned(), 1), ("{\"b\":2}".to_owned(), 3)]);
        let seen = records("{\"a\":1}\n{\n  \"b\": 2\n}\n{\"c\":3}\n").unwrap();
        assert_eq!(seen.iter().map(|(_, l)| *l).collect::<Vec<_>>(), vec![1, 2, 5]);
        assert_eq!(seen[1].0, "{\"b\":2}");
        let error = records("{\"a\":1}\n{\"b\":\n").unwrap_err().to_string();
        assert!(error.starts_with("t:2: malformed JSON"), "{error}");
    }

    #[test]
    fn errors_name_the_field() {
        let err = |text: &str, kind| {
            let e = serde_json::from_slice::<Value>(b"[").unwrap_err();
            explain(text.as_bytes(), kind, &e)
        };
        assert!(err(
            r#"{"subject":"u","purpose":"ai_training","categories":["behavior"],"at":"yesterday"}"#,
            Kind::Request
        )
        .starts_with("at: "));
        assert!(err(
            r#"{"type":"grant","subject":"u","purposes":["ai_training"],"at":"2026-01-01T00:00:00Z"}"#,
            Kind::Event
        )
        .contains("missing field `level`"));
        assert!(err(r#"{"type":"grant","subject":"u","levle":"x"}"#, Kind::Event).contains("unknown field `levle`"));
    }
}
