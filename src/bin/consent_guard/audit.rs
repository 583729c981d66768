//! `audit verify`: the hash chain of an audit log, and optionally an anchor kept
//! outside it.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use consent_guard::audit::{verify_log, LogVerdict};

use crate::{display, open, CliError};

/// The head of a log as recorded outside it: record `seq` had hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Anchor {
    seq: u64,
    hash: String,
}

/// Parses `N:HASH` (HASH: 64 hex digits).
pub(crate) fn parse_anchor(text: &str) -> Result<Anchor, String> {
    let bad = || format!("`{text}` is not N:HASH (a record number and its 64-hex-digit hash)");
    let (seq, hash) = text.split_once(':').ok_or_else(bad)?;
    let seq = seq.parse().map_err(|_| bad())?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(Anchor { seq, hash: hash.to_ascii_lowercase() })
}

/// Verifies the log; prints a one-line summary. 0 intact or torn last line, 1
/// tampered, 2 unreadable.
pub(crate) fn verify(path: &Path, anchor: Option<&Anchor>) -> Result<ExitCode, CliError> {
    let file = display(path);
    let unreadable = |source| CliError::Read { file: file.clone(), source };
    let verdict = verify_log(open(path)?).map_err(unreadable)?;
    let (summary, records, last_hash) = match verdict {
        LogVerdict::Tampered { line, reason } => {
            return say(format!("{file}: tampered: line {line} (record {line}): {reason}"), 1);
        }
        LogVerdict::Intact { records, last_hash } => (format!("{file}: intact: {records} records"), records, last_hash),
        LogVerdict::TornTail { records, last_hash, line } => (
            format!(
                "{file}: intact: {records} records; line {line} is a torn last line (crash mid-write), not tampering"
            ),
            records,
            last_hash,
        ),
    };
    if let Some(anchor) = anchor {
        if records < anchor.seq {
            return say(
                format!(
                    "{file}: tampered: the log ends at record {records} but the anchor names record {}: records were removed from its end",
                    anchor.seq
                ),
                1,
            );
        }
        let anchored =
            if anchor.seq == records { last_hash.clone() } else { hash_of(path, anchor.seq).map_err(unreadable)? };
        if anchored != anchor.hash {
            return say(
                format!(
                    "{file}: tampered: record {} does not have the anchored hash: the log was rewritten at or before record {}",
                    anchor.seq, anchor.seq
                ),
                1,
            );
        }
    }
    say(format!("{summary}; head {records}:{last_hash}"), 0)
}

fn say(line: String, code: u8) -> Result<ExitCode, CliError> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(CliError::Output)?;
    Ok(ExitCode::from(code))
}

/// The stated hash of record `seq` (line `seq`) of a log already verified intact up to
/// there, so the stated hash is the actual one.
fn hash_of(path: &Path, seq: u64) -> io::Result<String> {
    let mut reader = open(path).map_err(|e| io::Error::other(e.to_string()))?;
    let mut line = Vec::new();
    for _ in 0..seq {
        line.clear();
        reader.read_until(b'\n', &mut line)?;
    }
    let body = line.strip_suffix(b"\"}\n").unwrap_or_default();
    let hash = body.get(body.len().saturating_sub(64)..).unwrap_or_default();
    Ok(String::from_utf8_lossy(hash).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_parse() {
        let hash = "ab".repeat(32);
        assert_eq!(parse_anchor(&format!("3:{hash}")), Ok(Anchor { seq: 3, hash: hash.clone() }));
        assert!(parse_anchor("3").is_err());
        assert!(parse_anchor(&format!("x:{hash}")).is_err());
        assert!(parse_anchor("3:abc").is_err());
    }
}
