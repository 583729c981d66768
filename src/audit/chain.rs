//! The hash-chained JSON-lines audit log.
//!
//! Each line is `{"seq":N,"prev":"<hex>","record":{…},"hash":"<hex>"}` where `hash` is
//! the SHA-256 of the line's exact bytes up to (not including) `,"hash":`, and `prev` is
//! the previous line's hash (64 zeros for the first). Any auditor can re-check it with
//! standard tools: altering a record breaks its hash, removing or inserting one breaks
//! the sequence and the chain, reordering breaks both.
//!
//! # What a chain alone cannot tell
//!
//! - Records removed from the end: a log cut after record N is a valid log of N
//!   records. Keep the last `(seq, hash)` somewhere else (an anchor, see
//!   [`JsonLinesAuditSink::head`]) and compare: `consent-guard audit verify --anchor`.
//! - A rewrite from some record on: the hash is not keyed, so whoever can write the
//!   file can recompute every later hash. An anchor kept elsewhere catches that too.
//! - A torn last line (a crash mid-write) is not tampering: it is reported as
//!   [`LogVerdict::TornTail`] when its bytes are a prefix of what the sink would have
//!   written, and as tampering otherwise. [`JsonLinesAuditSink::open`] cuts it off
//!   before appending, so that the next record starts on a line of its own.
//!
//! One writer at a time: two would fork the chain. [`JsonLinesAuditSink::open`] locks
//! the file exclusively (an advisory lock, held while the sink lives); a second opener,
//! in this process or another, gets an error saying so.

#![expect(deprecated, reason = "the deprecated one-file writer lives here until it is removed")]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::segment::{find_last, hex};
use super::{AuditRecord, AuditSink};
use crate::error::AuditError;

const HASH_MARK: &[u8] = b",\"hash\":\"";

/// The longest line a verifier reads (64 MiB), far above any record a log holds: a
/// longer one is not a record, and reading it whole would let a file without a
/// newline take all memory (issue 30).
pub(crate) const MAX_LINE: usize = 64 << 20;

/// `read_until(b'\n')` that stops after [`MAX_LINE`] bytes; whether the line was
/// longer (then `buffer` holds its first bytes, without a newline).
pub(crate) fn read_line_bounded(reader: &mut impl BufRead, buffer: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    use std::io::Read;
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX).saturating_add(1);
    let read = reader.by_ref().take(limit).read_until(b'\n', buffer)?;
    Ok((read, buffer.len() > MAX_LINE && buffer.last() != Some(&b'\n')))
}

fn too_long() -> String {
    format!("a line longer than {} MiB: not a record of an audit log", MAX_LINE >> 20)
}
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

struct Tail {
    file: File,
    seq: u64,
    prev: String,
    line: Vec<u8>,
    /// The length of the file up to the end of the last complete record, to cut a
    /// partial write back off.
    len: u64,
    /// A write failed and could not be undone: appending more would break the chain.
    broken: bool,
}

/// Appends audit records to a file as hash-chained JSON lines. Each record is written
/// with one `write` and flushed before `record` returns; `sync_each` also fsyncs.
///
/// Deprecated: the durable [`AuditLog`](super::AuditLog) is the one writable format.
/// Logs of this one-file format stay readable: [`verify_log`] verifies them and
/// `consent-guard audit verify | export` read them.
///
/// **Not erasure-safe:** it writes every record with the plain subject id, not a
/// pseudonym (see [`crate::keys`]). Destroying a subject's key forgets nothing of what
/// it wrote, and the chain forbids taking the ids out. Use [`AuditLog`](super::AuditLog)
/// with the store's subject keys.
#[deprecated(note = "write audit records with `AuditLog`; `verify_log` still reads logs of this one-file format")]
pub struct JsonLinesAuditSink {
    path: PathBuf,
    sync_each: bool,
    tail: Mutex<Tail>,
}

impl JsonLinesAuditSink {
    /// Opens (or creates) a log and continues its chain.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, or its last complete line is not a chained
    /// record (the chain cannot be continued honestly).
    ///
    /// A torn last line (a crash mid-write) is cut off: its record was never complete,
    /// so no `record` call returned `Ok` for it, and appending after it would merge two
    /// records into one line that no longer verifies.
    pub fn open(path: impl AsRef<Path>) -> Result<JsonLinesAuditSink, AuditError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| AuditError::io(format!("cannot open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::new(format!(
                    "audit log {} is already open for writing, by another process or another sink in this one: \
                     two writers would fork its chain",
                    path.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(AuditError::io(format!("cannot lock {}", path.display()), e))
            }
        }
        // Read only once the lock is held: another writer may not extend it meanwhile.
        let (seq, prev, len, torn) = match File::open(&path) {
            Ok(file) => last_link(BufReader::new(file))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, GENESIS.to_owned(), 0, false),
            Err(e) => return Err(AuditError::io(format!("cannot read {}", path.display()), e)),
        };
        if torn {
            file.set_len(len)
                .map_err(|e| AuditError::io(format!("cannot cut the torn last line of {}", path.display()), e))?;
        }
        Ok(JsonLinesAuditSink {
            path,
            sync_each: false,
            tail: Mutex::new(Tail { file, seq, prev, line: Vec::with_capacity(1024), len, broken: false }),
        })
    }

    /// The sequence number and hash of the last record in the log (`0` and 64 zeros
    /// for an empty log). Keep it outside the log (another system, a ticket, a signed
    /// message): it is the anchor that tells a log cut at its end, or rewritten, from
    /// an intact one, which the chain alone cannot.
    ///
    /// # Errors
    ///
    /// When a panic poisoned the sink.
    pub fn head(&self) -> Result<(u64, String), AuditError> {
        let tail = self.tail.lock().map_err(|_| AuditError::new("audit log poisoned by a panic"))?;
        Ok((tail.seq, tail.prev.clone()))
    }

    /// Fsyncs after every record (durable against power loss, and much slower).
    #[must_use]
    pub fn sync_each(mut self, sync: bool) -> Self {
        self.sync_each = sync;
        self
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Debug for JsonLinesAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesAuditSink").field("path", &self.path).finish_non_exhaustive()
    }
}

impl AuditSink for JsonLinesAuditSink {
    fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        let mut tail = self.tail.lock().map_err(|_| AuditError::new("audit log poisoned by a panic"))?;
        let Tail { file, seq, prev, line, len, broken } = &mut *tail;
        if *broken {
            return Err(AuditError::new(format!(
                "{} holds a partial record that could not be removed; refusing to extend it",
                self.path.display()
            )));
        }
        let next = *seq + 1;
        line.clear();
        write!(line, "{{\"seq\":{next},\"prev\":\"{prev}\",\"record\":").map_err(|e| AuditError::io("format", e))?;
        serde_json::to_writer(&mut *line, record)
            .map_err(|e| AuditError::new(format!("cannot serialise record: {e}")))?;
        let hash = hex(&Sha256::digest(&line[..]));
        line.extend_from_slice(HASH_MARK);
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        if let Err(e) = file.write_all(line) {
            // A partial line would merge with the next record: cut it off, or stop
            // writing altogether if that fails too.
            if file.set_len(*len).is_err() {
                *broken = true;
            }
            return Err(AuditError::io(format!("cannot write {}", self.path.display()), e));
        }
        // The line is in the file now: the chain goes on from it even if the sync
        // below fails, or the next record would repeat its sequence number.
        *seq = next;
        *prev = hash;
        *len += line.len() as u64;
        if self.sync_each {
            file.sync_data().map_err(|e| AuditError::io(format!("cannot sync {}", self.path.display()), e))?;
        }
        Ok(())
    }
}

/// The sequence number and hash of the last complete record of a log, the length of
/// the log up to the end of that record, and whether a torn line follows it.
fn last_link(reader: impl BufRead) -> Result<(u64, String, u64, bool), AuditError> {
    match scan(reader) {
        Ok((LogVerdict::Intact { records, last_hash }, len)) => Ok((records, last_hash, len, false)),
        Ok((LogVerdict::TornTail { records, last_hash, .. }, len)) => Ok((records, last_hash, len, true)),
        Ok((LogVerdict::Tampered { line, reason }, _)) => {
            Err(AuditError::new(format!("log is not intact at line {line}: {reason}; refusing to extend it")))
        }
        Err(e) => Err(AuditError::io("cannot read log", e)),
    }
}

/// What [`verify_log`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogVerdict {
    /// Every record is chained; `records` of them.
    Intact {
        /// How many records.
        records: u64,
        /// The hash of the last record.
        last_hash: String,
    },
    /// Intact except the last line, which is incomplete (a crash mid-write), not
    /// tampering.
    TornTail {
        /// How many complete records precede it.
        records: u64,
        /// The hash of the last complete record.
        last_hash: String,
        /// The 1-based line number of the torn line.
        line: u64,
    },
    /// The first line that was altered, removed, inserted or reordered.
    Tampered {
        /// 1-based line number.
        line: u64,
        /// What does not hold there.
        reason: String,
    },
}

/// Re-computes an audit log's chain from its exact bytes.
///
/// # Errors
///
/// Only when the log cannot be read; a broken chain is a [`LogVerdict`].
pub fn verify_log(reader: impl BufRead) -> std::io::Result<LogVerdict> {
    scan(reader).map(|(verdict, _)| verdict)
}

/// [`verify_log`], also giving the length in bytes of the verified complete records.
fn scan(mut reader: impl BufRead) -> std::io::Result<(LogVerdict, u64)> {
    let mut buffer = Vec::with_capacity(1024);
    let mut line_number = 0u64;
    let mut len = 0u64;
    let mut prev = GENESIS.to_owned();
    loop {
        buffer.clear();
        let (read, over) = read_line_bounded(&mut reader, &mut buffer)?;
        if read == 0 {
            return Ok((LogVerdict::Intact { records: line_number, last_hash: prev }, len));
        }
        line_number += 1;
        if over {
            return Ok((LogVerdict::Tampered { line: line_number, reason: too_long() }, len));
        }
        if buffer.last() != Some(&b'\n') {
            // A last line without its newline is what a crash mid-write leaves (one
            // followed by more bytes cannot happen: read_until stops at a newline), but
            // only if its bytes are the start of the record the sink would have written.
            let verdict = match check_torn(&buffer, line_number, &prev) {
                Ok(()) => LogVerdict::TornTail { records: line_number - 1, last_hash: prev, line: line_number },
                Err(reason) => LogVerdict::Tampered { line: line_number, reason },
            };
            return Ok((verdict, len));
        }
        match check_line(&buffer, line_number, &prev) {
            Ok(hash) => prev = hash,
            Err(reason) => return Ok((LogVerdict::Tampered { line: line_number, reason }, len)),
        }
        len += buffer.len() as u64;
    }
}

/// Checks that an unterminated last line could be a write cut short: a prefix of
/// `{"seq":N,"prev":"<prev>","record":…,"hash":"<hash>"}` continuing the chain. A
/// complete record that only lacks its newline must carry its own hash.
fn check_torn(raw: &[u8], line_number: u64, prev: &str) -> Result<(), String> {
    let expected_start = format!("{{\"seq\":{line_number},\"prev\":\"{prev}\",\"record\":");
    let start = expected_start.as_bytes();
    let common = raw.len().min(start.len());
    if raw.get(..common) != start.get(..common) {
        return Err("incomplete last line that does not continue the chain (not a write cut short)".to_owned());
    }
    let Some(mark) = find_last(raw, HASH_MARK) else { return Ok(()) };
    let (hashed, rest) = raw.split_at(mark);
    let stated = rest.get(HASH_MARK.len()..).unwrap_or_default();
    let actual = hex(&Sha256::digest(hashed));
    let whole = format!("{actual}\"}}");
    if whole.as_bytes().starts_with(stated) {
        Ok(())
    } else {
        Err("incomplete last line whose hash does not match its content (altered)".to_owned())
    }
}

/// Checks one line against the chain; returns its hash.
fn check_line(raw: &[u8], line_number: u64, prev: &str) -> Result<String, String> {
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    let mark = find_last(body, HASH_MARK).ok_or_else(|| "no hash field".to_owned())?;
    let (hashed, rest) = body.split_at(mark);
    let stated = rest
        .get(HASH_MARK.len()..)
        .and_then(|r| r.strip_suffix(b"\"}"))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| "malformed hash field".to_owned())?;
    let actual = hex(&Sha256::digest(hashed));
    if actual != stated {
        return Err("record content does not match its hash (altered)".to_owned());
    }
    let expected_start = format!("{{\"seq\":{line_number},\"prev\":\"{prev}\",");
    if !hashed.starts_with(expected_start.as_bytes()) {
        let seq = parse_seq(hashed);
        return Err(match seq {
            Some(seq) if seq != line_number => {
                format!(
                    "sequence number {seq} where {line_number} was expected (record removed, inserted or reordered)"
                )
            }
            _ => "does not chain to the previous record (removed, inserted or reordered)".to_owned(),
        });
    }
    let record = hashed.get(expected_start.len()..).unwrap_or_default();
    let record = record.strip_prefix(b"\"record\":").ok_or_else(|| "no record field".to_owned())?;
    serde_json::from_slice::<serde_json::Value>(record).map_err(|e| format!("record is not JSON: {e}"))?;
    Ok(actual)
}

fn parse_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {

    use super::*;

    /// A stream without a newline is refused at line 1 after `MAX_LINE` bytes, in
    /// bounded memory (it was read whole: an abort under a memory limit, issue 30).
    #[test]
    fn an_endless_line_is_tampering_located_in_bounded_memory() {
        let endless = std::io::BufReader::new(std::io::repeat(b'{'));
        match verify_log(endless).unwrap() {
            LogVerdict::Tampered { line, reason } => {
                assert_eq!(line, 1);
                assert!(reason.contains("longer than 64 MiB"), "{reason}");
            }
            other => unreachable!("an endless line was not refused: {other:?}"),
        }
        // A line of exactly the limit, with its newline, is read as a line.
        let mut reader = std::io::Cursor::new([vec![b'a'; MAX_LINE - 1], vec![b'\n']].concat());
        let mut buffer = Vec::new();
        assert_eq!(read_line_bounded(&mut reader, &mut buffer).unwrap(), (MAX_LINE, false));
    }
}
