//! Reading JSON records (requests, consent events) from JSON lines or from JSON
//! documents spread over several lines, and turning serde's errors into messages that
//! name the field at fault.

use std::io::{BufRead, Read};

use consent_guard::interchange::bare;
use serde::de::IgnoredAny;
#[cfg(test)]
use serde_json::Value;

use crate::CliError;

pub(crate) use consent_guard::interchange::{explain, RecordKind as Kind};

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
