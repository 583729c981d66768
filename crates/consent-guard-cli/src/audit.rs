//! `audit verify`, `audit export` and `audit migrate`: the hash chain of an audit log (a directory of
//! segments written by [`AuditLog`](consent_guard::audit::AuditLog), or one JSON-lines file of the older
//! [`JsonLinesAuditSink`](consent_guard::audit::JsonLinesAuditSink)), optionally
//! against an anchor kept outside it; and its records as full JSON lines.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use consent_guard::audit::{segment, verify_log, DirVerdict, Head, LogVerdict};

use crate::{display, open, CliError};

/// The head of a log as recorded outside it: the log held `seq` records and its last
/// record (or commit) had hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Anchor {
    seq: u64,
    hash: String,
}

/// Parses `N:HASH` (HASH: 64 hex digits), or the name of a file holding it (the `head`
/// file of a log directory, copied elsewhere).
pub(crate) fn parse_anchor(text: &str) -> Result<Anchor, String> {
    parse_anchor_text(text).or_else(|error| match std::fs::read_to_string(text) {
        Ok(content) => parse_anchor_text(content.trim()).map_err(|e| format!("{text}: {e}")),
        Err(_) => Err(error),
    })
}

fn parse_anchor_text(text: &str) -> Result<Anchor, String> {
    let bad = || format!("`{text}` is not N:HASH (a record number and its 64-hex-digit hash) nor a file holding it");
    let (seq, hash) = text.split_once(':').ok_or_else(bad)?;
    let seq = seq.parse().map_err(|_| bad())?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(Anchor { seq, hash: hash.to_ascii_lowercase() })
}

/// Whether `path` is a log directory: it holds segments, or the lock or head file of
/// a log that was opened.
fn is_log_dir(path: &Path) -> io::Result<bool> {
    if !path.is_dir() {
        return Ok(false);
    }
    Ok(segment::segments_in(path)? > 0 || path.join("lock").exists() || path.join("head").exists())
}

/// Verifies the log; prints a one-line summary. 0 intact or torn tail, 1 tampered, 2
/// unreadable.
pub(crate) fn verify(path: &Path, anchor: Option<&Anchor>) -> Result<ExitCode, CliError> {
    let file = display(path);
    let unreadable = |source| CliError::Read { file: file.clone(), source };
    if path.is_dir() {
        if !is_log_dir(path).map_err(unreadable)? {
            return Err(unreadable(io::Error::other("a directory that holds no audit log")));
        }
        return verify_dir(path, &file, anchor).map_err(unreadable)?;
    }
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
            return removed_from_end(&file, records, anchor);
        }
        let anchored = match anchor.seq {
            // The anchor of an empty log: the genesis, before any record.
            0 => Head::genesis().hash,
            seq if seq == records => last_hash.clone(),
            seq => hash_of(path, seq).map_err(unreadable)?,
        };
        if anchored != anchor.hash {
            return rewritten(&file, anchor);
        }
    }
    say(format!("{summary}; head {records}:{last_hash}"), 0)
}

fn removed_from_end(file: &str, records: u64, anchor: &Anchor) -> Result<ExitCode, CliError> {
    say(
        format!(
            "{file}: tampered: the log ends at record {records} but the anchor names record {}: records were removed from its end",
            anchor.seq
        ),
        1,
    )
}

fn rewritten(file: &str, anchor: &Anchor) -> Result<ExitCode, CliError> {
    say(
        format!(
            "{file}: tampered: record {} does not have the anchored hash: the log was rewritten at or before record {}",
            anchor.seq, anchor.seq
        ),
        1,
    )
}

fn verify_dir(path: &Path, file: &str, anchor: Option<&Anchor>) -> io::Result<Result<ExitCode, CliError>> {
    let verdict = segment::verify_dir(path)?;
    let (summary, head) = match verdict {
        DirVerdict::Tampered { segment, line, reason } => {
            return Ok(say(format!("{file}: tampered: segment {segment} line {line}: {reason}"), 1));
        }
        DirVerdict::Intact { head, segments } => {
            (format!("{file}: intact: {} records in {segments} segments", head.seq), head)
        }
        DirVerdict::TornTail { head, segments, segment, bytes } => (
            format!(
                "{file}: intact: {} records in {segments} segments; segment {segment} ends with {bytes} bytes never committed (crash mid-batch), not tampering",
                head.seq
            ),
            head,
        ),
        _ => return Ok(say(format!("{file}: tampered: unknown verdict"), 1)),
    };
    let mut points: Option<Vec<consent_guard::audit::Head>> = None;
    // The `head` file the writer keeps beside the segments may lag the log (it is
    // written after each commit, without an fsync) but never lead it: a head naming
    // more records than the log holds means records were removed from its end, which
    // the chain alone cannot show (issue 30: with its last segment deleted, a log
    // verified "intact").
    let mut summary = summary;
    match read_head_file(path)? {
        HeadFile::Absent => {}
        HeadFile::Unreadable(why) => summary.push_str(&format!("; the head file was not checked ({why})")),
        HeadFile::Head(recorded) => {
            if head.seq < recorded.seq {
                return Ok(say(
                    format!(
                        "{file}: tampered: the log ends at record {} but its head file names record {}: records \
                         were removed from its end (the head may lag the log, never lead it)",
                        head.seq, recorded.seq
                    ),
                    1,
                ));
            }
            let known = points.get_or_insert(segment::commit_points(path)?);
            if !known.iter().any(|point| point.seq == recorded.seq && point.hash == recorded.hash) {
                return Ok(say(
                    format!(
                        "{file}: tampered: record {} does not have the hash its head file names: the log was \
                         rewritten at or before record {}",
                        recorded.seq, recorded.seq
                    ),
                    1,
                ));
            }
        }
    }
    if let Some(anchor) = anchor {
        if head.seq < anchor.seq {
            return Ok(removed_from_end(file, head.seq, anchor));
        }
        let known = match points {
            Some(points) => points,
            None => segment::commit_points(path)?,
        };
        // Anchors are taken at commits (the head file, `check --audit`): the anchored
        // record count must end one, with the anchored hash. Genesis is the first.
        let matches = known.iter().any(|point| point.seq == anchor.seq && point.hash == anchor.hash);
        if !matches {
            return Ok(rewritten(file, anchor));
        }
    }
    Ok(say(format!("{summary}; head {head}"), 0))
}

/// What the `head` file of a log directory says.
enum HeadFile {
    Absent,
    /// Present but not `N:HASH`: torn by a power failure (it is not fsynced), or
    /// altered; the log itself is still verified.
    Unreadable(String),
    Head(consent_guard::audit::Head),
}

fn read_head_file(dir: &Path) -> io::Result<HeadFile> {
    use std::io::Read;
    let file = match std::fs::File::open(dir.join("head")) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(HeadFile::Absent),
        Err(error) => return Err(error),
    };
    // `N:HASH\n` is under 100 bytes; a larger file is not a head.
    let mut text = String::new();
    if file.take(256).read_to_string(&mut text).is_err() {
        return Ok(HeadFile::Unreadable("not text".to_owned()));
    }
    Ok(match parse_anchor_text(text.trim()) {
        Ok(anchor) => HeadFile::Head(consent_guard::audit::Head { seq: anchor.seq, hash: anchor.hash }),
        Err(why) => HeadFile::Unreadable(why),
    })
}

/// Prints every record of the log as a full JSON line `{"request":…,"decision":…}`.
/// 0 intact or torn tail, 1 tampered (the records before are printed), 2 unreadable.
pub(crate) fn export(path: &Path) -> Result<ExitCode, CliError> {
    let file = display(path);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if path.is_dir() {
        let unreadable = |source| CliError::Read { file: file.clone(), source };
        if !is_log_dir(path).map_err(unreadable)? {
            return Err(unreadable(io::Error::other("a directory that holds no audit log")));
        }
        let verdict = segment::export(path, &mut out).map_err(unreadable)?;
        out.flush().map_err(CliError::Output)?;
        drop(out);
        return Ok(match verdict {
            DirVerdict::Tampered { segment, line, reason } => {
                eprintln!(
                    "{file}: tampered: segment {segment} line {line}: {reason}; records from there on not exported"
                );
                ExitCode::from(1)
            }
            _ => ExitCode::SUCCESS,
        });
    }
    // One JSON-lines file: verified first, then each line's record.
    let verdict = verify_log(open(path)?).map_err(|source| CliError::Read { file: file.clone(), source })?;
    let tampered = matches!(verdict, LogVerdict::Tampered { .. });
    let complete = match verdict {
        LogVerdict::Intact { records, .. } | LogVerdict::TornTail { records, .. } => records,
        LogVerdict::Tampered { line, reason } => {
            eprintln!("{file}: tampered: line {line}: {reason}; records from there on not exported");
            line.saturating_sub(1)
        }
    };
    let mut reader = open(path)?;
    let mut line = Vec::new();
    for _ in 0..complete {
        line.clear();
        reader.read_until(b'\n', &mut line).map_err(|source| CliError::Read { file: file.clone(), source })?;
        let value: serde_json::Value = serde_json::from_slice(&line)
            .map_err(|e| CliError::Read { file: file.clone(), source: io::Error::other(e) })?;
        serde_json::to_writer(&mut out, &value.get("record")).map_err(|e| CliError::Output(io::Error::other(e)))?;
        out.write_all(b"\n").map_err(CliError::Output)?;
    }
    out.flush().map_err(CliError::Output)?;
    Ok(if tampered { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `audit migrate`: the format-2 log `from` rewritten as a new format-3 log `to`
/// under the subject keys of the store `spec`; prints both heads and what the
/// operator must do next. 0 migrated, 2 not.
pub(crate) fn migrate(from: &Path, to: &Path, spec: &str) -> Result<ExitCode, CliError> {
    use consent_guard::store::{ConsentStore, StoreKeys};
    use std::sync::Arc;
    let store: Arc<dyn ConsentStore> = Arc::from(crate::store::open_store(spec, crate::store::Mode::Writable)?);
    let failed =
        |e: consent_guard::error::StoreError| CliError::Store { store: spec.to_owned(), message: e.to_string() };
    let erased = store.tombstones().map_err(failed)?;
    let migrated = consent_guard::audit::migrate::migrate(from, to, Arc::new(StoreKeys(Arc::clone(&store))), erased)
        .map_err(|e| CliError::Audit { file: "audit migrate".to_owned(), message: crate::with_sources(&e) })?;
    let (old, new) = (display(from), display(to));
    say(
        format!(
            "{old}: format 2, intact: head {}\n{new}: format 3, {} records written: head {}\n\
             {} records of erased subjects were written under keys now thrown away.\n\
             The new log is a new chain: anchors of the old log do not apply to it; keep the new head instead.\n\
             {old} still holds plain subject ids: check the new log (`consent-guard audit verify {new} --anchor {}`), \
             then delete {old} yourself.",
            migrated.old_head, migrated.records, migrated.new_head, migrated.unlinked, migrated.new_head
        ),
        0,
    )
}

fn say(line: String, code: u8) -> Result<ExitCode, CliError> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(CliError::Output)?;
    Ok(ExitCode::from(code))
}

/// The stated hash of record `seq` (line `seq`, from 1) of a log already verified
/// intact up to there, so the stated hash is the actual one.
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
