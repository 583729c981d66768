//! Reading JSON records (requests, consent events) from JSON lines, or from JSON
//! documents spread over several lines, each with the line it starts on: the one reader
//! of the command line's files, `check --follow`, and the HTTP service's bodies.
//!
//! ```
//! use consent_guard::interchange::records::{for_each_record, RecordsError};
//!
//! let input = "{\"a\":1}\n\n{\n  \"b\": 2\n}\n";
//! let mut lines = Vec::new();
//! for_each_record(input.as_bytes(), "input.jsonl", |bytes, line| {
//!     serde_json::from_slice::<serde_json::Value>(bytes)
//!         .map_err(|e| RecordsError::record("input.jsonl", line, e.to_string()))?;
//!     lines.push(line);
//!     Ok::<(), RecordsError>(())
//! })?;
//! assert_eq!(lines, [1, 3]);
//! # Ok::<(), RecordsError>(())
//! ```

use std::io::{self, BufRead, Read};

use serde::de::IgnoredAny;

use super::bare;

/// The longest line a record may take (1 MiB): a longer one is an error naming its file
/// and line.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The most a pretty-printed input (records spread over lines, read whole) may take.
pub const MAX_DOCUMENTS_BYTES: u64 = 64 << 20;

/// Input that could not be read as records: `file: cannot read`, or `file:line: message`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    /// The input could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The input's name (a path, `<stdin>`, `body`).
        file: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// One record of the input is bad.
    #[error("{file}:{line}: {message}")]
    Record {
        /// The input's name.
        file: String,
        /// The 1-based line the record starts on.
        line: u64,
        /// What is wrong, naming the field (`field: message`).
        message: String,
    },
}

impl RecordsError {
    /// A bad record of `file`, starting on `line`.
    pub fn record(file: &str, line: u64, message: impl Into<String>) -> RecordsError {
        RecordsError::Record { file: file.to_owned(), line, message: message.into() }
    }
}

/// The message of a line longer than [`MAX_RECORD_BYTES`].
pub fn too_long() -> String {
    format!("the line is longer than {MAX_RECORD_BYTES} bytes, the most a record may take")
}

/// Calls `each` with the bytes and the 1-based starting line of every JSON record of
/// `reader`, blank lines skipped.
///
/// JSON lines are read one line at a time into one reused buffer, so that a large
/// batch costs no allocation per line. When `each` fails on a line that is an
/// unfinished JSON document (the input is pretty-printed, so the record could not have
/// been read, and had no effect), its error is dropped and the rest of the input is
/// read as a stream of JSON documents, each handed to `each` with its first line.
///
/// # Errors
///
/// The first error of `each`; a [`RecordsError`] (converted to `E`) when the input
/// cannot be read, a line is longer than [`MAX_RECORD_BYTES`], pretty-printed input is
/// larger than [`MAX_DOCUMENTS_BYTES`] or is not JSON.
pub fn for_each_record<E: From<RecordsError>>(
    mut reader: impl BufRead,
    file: &str,
    mut each: impl FnMut(&[u8], u64) -> Result<(), E>,
) -> Result<(), E> {
    let read_error = |source| RecordsError::Read { file: file.to_owned(), source };
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
            return Err(RecordsError::record(file, line, too_long()).into());
        }
        if buffer.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match each(&buffer, line) {
            Ok(()) => {}
            // The syntax check runs only on lines that failed, not on every line.
            Err(_) if ends_early(&buffer) => {
                reader.take(MAX_DOCUMENTS_BYTES).read_to_end(&mut buffer).map_err(read_error)?;
                if buffer.len() as u64 >= MAX_DOCUMENTS_BYTES {
                    let message = format!(
                        "pretty-printed input is read whole and may take at most {MAX_DOCUMENTS_BYTES} bytes: \
                         write one record per line (JSON lines) for more"
                    );
                    return Err(RecordsError::record(file, line, message).into());
                }
                return for_each_document(&buffer, file, line, each);
            }
            Err(e) => return Err(e),
        }
    }
}

/// As [`for_each_record`], over bytes already in memory (a request body): each record
/// is a slice of `text`, so what `each` parses may borrow from it.
///
/// # Errors
///
/// As [`for_each_record`] (there is nothing to read, so never [`RecordsError::Read`]).
pub fn for_each_record_in<'a, E: From<RecordsError>>(
    text: &'a [u8],
    file: &str,
    mut each: impl FnMut(&'a [u8], u64) -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = text;
    let mut line = 0u64;
    while !rest.is_empty() {
        line += 1;
        let start = rest;
        let (this, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(end) => (rest.get(..=end).unwrap_or_default(), rest.get(end + 1..).unwrap_or_default()),
            None => (rest, &[][..]),
        };
        rest = next;
        let content = this.strip_suffix(b"\n").unwrap_or(this);
        if content.len() as u64 > MAX_RECORD_BYTES {
            return Err(RecordsError::record(file, line, too_long()).into());
        }
        if this.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match each(this, line) {
            Ok(()) => {}
            Err(_) if ends_early(this) => return for_each_document(start, file, line, each),
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
fn for_each_document<'a, E: From<RecordsError>>(
    text: &'a [u8],
    file: &str,
    first_line: u64,
    mut each: impl FnMut(&'a [u8], u64) -> Result<(), E>,
) -> Result<(), E> {
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
                return Err(RecordsError::record(file, line, message).into());
            }
        }
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The records of `text` with their lines, each parsed as the commands do.
    fn records(text: &str) -> Result<Vec<(String, u64)>, RecordsError> {
        let mut seen = Vec::new();
        for_each_record(text.as_bytes(), "t", |bytes, line| {
            let value: Value =
                serde_json::from_slice(bytes).map_err(|e| RecordsError::record("t", line, e.to_string()))?;
            seen.push((value.to_string(), line));
            Ok::<(), RecordsError>(())
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
    fn in_memory_records_are_slices_of_the_input() {
        let text = b"{\"a\":1}\n\n{\n  \"b\": 2\n}\n{\"c\":3}";
        let mut seen = Vec::new();
        for_each_record_in(text, "body", |bytes, line| {
            let _: Value =
                serde_json::from_slice(bytes).map_err(|e| RecordsError::record("body", line, e.to_string()))?;
            seen.push((std::str::from_utf8(bytes).unwrap().trim(), line));
            Ok::<(), RecordsError>(())
        })
        .unwrap();
        assert_eq!(seen, vec![("{\"a\":1}", 1), ("{\n  \"b\": 2\n}", 3), ("{\"c\":3}", 6)]);
    }

    #[test]
    fn a_long_line_is_an_error_naming_it() {
        let long = format!("{{}}\n{}\n", " ".repeat(usize::try_from(MAX_RECORD_BYTES).unwrap() + 1));
        let error = records(&long).unwrap_err().to_string();
        assert!(error.starts_with("t:2: the line is longer"), "{error}");
    }
}
