//! The segmented audit log format that [`AuditLog`](super::AuditLog) writes, and its
//! verifier and exporter.
//!
//! A log is a directory of numbered segment files, `segment-00000001.jsonl`,
//! `segment-00000002.jsonl`, … Each file is JSON lines of five kinds:
//!
//! | line | meaning |
//! |---|---|
//! | `{"segment":N,"format":"consent-guard-audit-3","seq":S,"prev":"<hex>"}` | first line of segment N: the chain so far holds S records and ends with hash `prev` |
//! | `{"template":K,"request":{…},"policy":…,"policy_version":…,"clause":…}` | a template (a prepared access, or an access plain checks asked for; its subject is `""`), written once per segment before its first decision |
//! | `[K,"<pseudonym>","code",at]` or `[K,"<pseudonym>","code",at,"basis"]` | one decision of template K: the compact record (time in ms since the epoch) |
//! | `{"record":{"request":{…},"decision":{…}}}` | one decision of a plain check, in full; its `request.subject` and `decision.subject` are the pseudonym, and so is the subject its `decision.message` names |
//! | `{"commit":S,"records":n,"prev":"<hex>","hash":"<hex>"}` | the end of a batch: the chain now holds S records, n of them in this batch |
//!
//! # Pseudonyms (format 3)
//!
//! No record of format `consent-guard-audit-3` holds a subject id: where the id would
//! be, it holds the subject's [`Pseudonym`], 32 lowercase hex
//! digits of HMAC-SHA256 under the subject's key, which the consent store keeps
//! ([`crate::keys`]). Whoever holds the key finds the subject's records (a subject's
//! export); once the key is destroyed (an erasure) nobody can tell whom they are about,
//! and the chain still verifies. A format-3 record whose subject is not a pseudonym
//! does not verify.
//!
//! Format `consent-guard-audit-2` wrote the plain id in the same places. Its logs are
//! still read (verified, exported, searched by plain id), never extended: a log holds
//! one format, and [`migrate`](super::migrate) rewrites a format-2 log as a new
//! format-3 one.
//!
//! A commit's `hash` is the SHA-256 of the exact bytes of every line since the previous
//! commit line (or since the start of the file), followed by the commit line itself up
//! to (not including) `,"hash":`. Its `prev` is the hash of the previous commit, in
//! this segment or the one before (64 zeros for the first), so the chain runs across
//! segments. Every record is covered by its batch's hash: altering, removing,
//! inserting or reordering any line breaks it.
//!
//! Bytes after the last commit line of the last segment were never acknowledged (a
//! crash before the batch's commit was on disk): they are a torn tail, cut off when the
//! log is opened again, never tampering, even whole lines among them that cannot be
//! read. A line that cannot be read followed by a commit line is tampering. Whoever can write the files can recompute
//! every hash: keep the head (`S:hash`, also written to the `head` file after each
//! commit) somewhere else and pass it to `--anchor`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::OwnedAuditRecord;
use crate::basis::LegalBasis;
use crate::decision::{Decision, Detail, Facts, OwnedFacts, ReasonCode};
use crate::keys::Pseudonym;
use crate::request::AccessRequest;

pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The format [`AuditLog`](super::AuditLog) writes: pseudonyms, no subject ids.
pub(crate) const FORMAT: &str = "consent-guard-audit-3";
/// The format before: plain subject ids; read, never written.
pub(crate) const FORMAT_2: &str = "consent-guard-audit-2";

/// The format of a log's segments: what its records hold where the subject would be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// `consent-guard-audit-2`: the plain subject id (read, never written).
    PlainIds,
    /// `consent-guard-audit-3`: the subject's pseudonym under its key.
    Pseudonyms,
}

impl Format {
    /// The name in a segment's header.
    pub fn name(self) -> &'static str {
        match self {
            Format::PlainIds => FORMAT_2,
            Format::Pseudonyms => FORMAT,
        }
    }

    fn parse(name: &str) -> Option<Format> {
        match name {
            FORMAT_2 => Some(Format::PlainIds),
            FORMAT => Some(Format::Pseudonyms),
            _ => None,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
pub(crate) const HASH_MARK: &[u8] = b",\"hash\":\"";
const PREFIX: &str = "segment-";
const SUFFIX: &str = ".jsonl";

/// The file name of segment `number`.
pub(crate) fn segment_name(number: u64) -> String {
    format!("{PREFIX}{number:08}{SUFFIX}")
}

/// The segment number of a file name, if it is a segment's.
fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files of a directory, in order.
pub(crate) fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(number) = entry.file_name().to_str().and_then(segment_number) {
            found.push((number, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// How many segment files a log directory holds.
///
/// # Errors
///
/// When the directory cannot be read.
pub fn segments_in(dir: impl AsRef<Path>) -> std::io::Result<usize> {
    segments(dir.as_ref()).map(|s| s.len())
}

/// The head of a chain: how many records it holds and the hash of its last commit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Head {
    /// How many records the chain holds.
    pub seq: u64,
    /// The hash of the commit that ends it (64 zeros for an empty log).
    pub hash: String,
}

impl Head {
    /// The head of an empty log: `0` and 64 zeros.
    pub fn genesis() -> Head {
        Head { seq: 0, hash: GENESIS.to_owned() }
    }
}

impl std::fmt::Display for Head {
    /// `SEQ:HASH`, as `audit verify --anchor` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// What [`verify_dir`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirVerdict {
    /// Every committed record chains, across every segment.
    Intact {
        /// The head of the chain.
        head: Head,
        /// How many segments.
        segments: u64,
    },
    /// Intact, followed by bytes that were never committed (a crash mid-batch), at the
    /// end of the last segment: not tampering.
    TornTail {
        /// The head of the committed chain.
        head: Head,
        /// How many segments.
        segments: u64,
        /// The segment holding the torn tail.
        segment: u64,
        /// How many bytes follow the last commit.
        bytes: u64,
    },
    /// The first place where the log was altered.
    Tampered {
        /// The segment.
        segment: u64,
        /// The 1-based line in it.
        line: u64,
        /// What does not hold there.
        reason: String,
    },
}

/// The result of scanning a directory: the verdict, every commit point, and where the
/// committed part of the last segment ends.
pub(crate) struct Scan {
    pub(crate) verdict: DirVerdict,
    /// `(records, hash)` after each commit, genesis first.
    pub(crate) commits: Vec<Head>,
    /// The last segment's number and path, and the length of its committed part.
    pub(crate) last: Option<(u64, PathBuf, u64)>,
    /// The format of the segments read (the first whose header could be read).
    pub(crate) format: Option<Format>,
}

/// Verifies a directory of segments: the chain across every segment, and that only the
/// last one ends with uncommitted bytes.
///
/// # Errors
///
/// Only when a file cannot be read; a broken chain is a [`DirVerdict`].
pub fn verify_dir(dir: impl AsRef<Path>) -> std::io::Result<DirVerdict> {
    scan_dir(dir.as_ref(), &mut |_, _| {}).map(|scan| scan.verdict)
}

/// The commit points of a log: `(records, hash)` after each commit, genesis first, if
/// the log is intact (or only torn at its end); for `--anchor`.
///
/// # Errors
///
/// When a file cannot be read.
pub fn commit_points(dir: impl AsRef<Path>) -> std::io::Result<Vec<Head>> {
    scan_dir(dir.as_ref(), &mut |_, _| {}).map(|scan| scan.commits)
}

/// The format of a log's segments: `None` for a directory without a readable segment
/// header. Reads the first line of the first segment only.
///
/// # Errors
///
/// When a file cannot be read.
pub fn format_of(dir: impl AsRef<Path>) -> std::io::Result<Option<Format>> {
    for (_, path) in segments(dir.as_ref())? {
        let mut first = Vec::new();
        super::chain::read_line_bounded(&mut BufReader::new(File::open(path)?), &mut first)?;
        let Some(body) = first.strip_suffix(b"\n") else { continue };
        if let Ok(header) = serde_json::from_slice::<HeaderLine>(body) {
            return Ok(Format::parse(&header.format));
        }
    }
    Ok(None)
}

/// A template as read back.
pub(crate) struct Template {
    request: AccessRequest<'static>,
    policy: String,
    policy_version: String,
    clause: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateLine {
    template: u64,
    #[serde(deserialize_with = "owned_request")]
    request: AccessRequest<'static>,
    policy: String,
    policy_version: String,
    clause: Option<String>,
}

fn owned_request<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AccessRequest<'static>, D::Error> {
    serde::Deserialize::deserialize(d).map(AccessRequest::into_owned)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderLine {
    segment: u64,
    format: String,
    seq: u64,
    prev: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
    record: OwnedAuditRecord,
}

#[derive(serde::Deserialize)]
struct CompactLine(u64, String, ReasonCode, i64, #[serde(default)] Option<LegalBasis>);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitPrefix {
    commit: u64,
    records: u64,
    prev: String,
}

/// Records batch items until its commit verifies: nothing uncommitted is exported.
struct Pending {
    items: Vec<OwnedAuditRecord>,
}

/// What a scan hands each committed record to: its segment's format and the record.
pub(crate) type Emit<'e> = dyn FnMut(Format, OwnedAuditRecord) + 'e;

/// Scans every segment; `emit` gets every committed record, in order.
pub(crate) fn scan_dir(dir: &Path, emit: &mut Emit<'_>) -> std::io::Result<Scan> {
    scan_from(segments(dir)?, Head::genesis(), emit)
}

/// Scans only the last segments, from the last one whose header is whole: what the
/// writer needs to continue the chain, in time that does not grow with the log.
/// Earlier segments are trusted here; `audit verify` checks them.
pub(crate) fn scan_tail(dir: &Path) -> std::io::Result<Scan> {
    let files = segments(dir)?;
    for start in (0..files.len()).rev() {
        let Some((_, path)) = files.get(start) else { continue };
        let mut first = Vec::new();
        super::chain::read_line_bounded(&mut BufReader::new(File::open(path)?), &mut first)?;
        let Some(body) = first.strip_suffix(b"\n") else { continue };
        if let Ok(header) = serde_json::from_slice::<HeaderLine>(body) {
            let head = Head { seq: header.seq, hash: header.prev };
            return scan_from(files.get(start..).unwrap_or_default().to_vec(), head, &mut |_, _| {});
        }
    }
    scan_from(files, Head::genesis(), &mut |_, _| {})
}

fn scan_from(files: Vec<(u64, PathBuf)>, start: Head, emit: &mut Emit<'_>) -> std::io::Result<Scan> {
    let mut head = start;
    let mut commits = vec![head.clone()];
    let mut format = None;
    let count = files.len() as u64;
    let mut last = None;
    let mut expected_number = files.first().map_or(1, |(n, _)| *n);
    for (index, (number, path)) in files.iter().enumerate() {
        let is_last = index + 1 == files.len();
        if *number != expected_number {
            return Ok(tampered(expected_number, 0, format!("segment {expected_number} is missing"), commits));
        }
        expected_number = number.saturating_add(1);
        let reader = BufReader::new(File::open(path)?);
        match scan_segment(reader, *number, &mut head, &mut commits, &mut format, emit)? {
            SegmentEnd::Clean { committed } => {
                last = Some((*number, path.clone(), committed));
            }
            SegmentEnd::Uncommitted { committed, bytes } => {
                if !is_last {
                    return Ok(tampered(
                        *number,
                        0,
                        format!("{bytes} uncommitted bytes at the end of a segment that is not the last"),
                        commits,
                    ));
                }
                return Ok(Scan {
                    verdict: DirVerdict::TornTail { head, segments: count, segment: *number, bytes },
                    commits,
                    last: Some((*number, path.clone(), committed)),
                    format,
                });
            }
            SegmentEnd::Tampered { line, reason } => return Ok(tampered(*number, line, reason, commits)),
        }
    }
    Ok(Scan { verdict: DirVerdict::Intact { head, segments: count }, commits, last, format })
}

fn tampered(segment: u64, line: u64, reason: String, commits: Vec<Head>) -> Scan {
    Scan { verdict: DirVerdict::Tampered { segment, line, reason }, commits, last: None, format: None }
}

enum SegmentEnd {
    Clean { committed: u64 },
    Uncommitted { committed: u64, bytes: u64 },
    Tampered { line: u64, reason: String },
}

fn scan_segment(
    mut reader: impl BufRead,
    number: u64,
    head: &mut Head,
    commits: &mut Vec<Head>,
    log_format: &mut Option<Format>,
    emit: &mut Emit<'_>,
) -> std::io::Result<SegmentEnd> {
    let mut buffer = Vec::with_capacity(256);
    let mut hasher = Sha256::new();
    let mut line_number = 0u64;
    let mut offset = 0u64;
    let mut committed = 0u64;
    let mut batch_records = 0u64;
    let mut templates: HashMap<u64, Template> = HashMap::new();
    let mut pending = Pending { items: Vec::new() };
    let bad = |line: u64, reason: String| Ok(SegmentEnd::Tampered { line, reason });
    // A line that cannot be read is tampering only if a commit follows it: after the
    // last commit it is part of a batch never acknowledged (a torn tail).
    let mut unreadable: Option<(u64, String)> = None;
    // Until the header is read: the log's format, as the segments before had it.
    let mut format = log_format.unwrap_or(Format::Pseudonyms);
    loop {
        buffer.clear();
        let (read, over) = super::chain::read_line_bounded(&mut reader, &mut buffer)?;
        if over {
            return bad(
                line_number.saturating_add(1),
                format!("a line longer than {} MiB: not a line of an audit log", super::chain::MAX_LINE >> 20),
            );
        }
        if read == 0 {
            return Ok(if offset == committed {
                SegmentEnd::Clean { committed }
            } else {
                SegmentEnd::Uncommitted { committed, bytes: offset - committed }
            });
        }
        line_number += 1;
        offset += read as u64;
        let Some(body) = buffer.strip_suffix(b"\n") else {
            // A last line without its newline: a write cut short, after the last commit.
            return Ok(SegmentEnd::Uncommitted { committed, bytes: offset - committed });
        };
        if line_number == 1 {
            // The header is part of the segment's first batch: one that cannot be read
            // is tampering only if a commit follows it.
            match check_header(body, number, head, *log_format) {
                Ok(found) => {
                    format = found;
                    log_format.get_or_insert(found);
                }
                Err(reason) => unreadable = Some((1, reason)),
            }
            hasher.update(&buffer);
            continue;
        }
        if body.starts_with(b"{\"commit\":") {
            if let Some((line, reason)) = unreadable.take() {
                return bad(line, reason);
            }
            let Some(mark) = find_last(body, HASH_MARK) else { return bad(line_number, "no hash field".into()) };
            let (hashed, rest) = body.split_at(mark);
            let stated = rest.get(HASH_MARK.len()..).and_then(|r| r.strip_suffix(b"\"}"));
            let Some(stated) = stated.and_then(|s| std::str::from_utf8(s).ok()) else {
                return bad(line_number, "malformed hash field".into());
            };
            let mut closed = hashed.to_vec();
            closed.push(b'}');
            let prefix: CommitPrefix = match serde_json::from_slice(&closed) {
                Ok(prefix) => prefix,
                Err(e) => return bad(line_number, format!("malformed commit: {e}")),
            };
            hasher.update(hashed);
            let actual = hex(&std::mem::take(&mut hasher).finalize());
            if actual != stated {
                return bad(
                    line_number,
                    "the batch does not match its commit hash (a record was altered, removed or inserted)".into(),
                );
            }
            if prefix.prev != head.hash {
                return bad(
                    line_number,
                    "commit does not chain to the previous one (removed, inserted or reordered)".into(),
                );
            }
            if prefix.records != batch_records || Some(prefix.commit) != head.seq.checked_add(batch_records) {
                return bad(line_number, "commit counts do not match its batch".into());
            }
            *head = Head { seq: prefix.commit, hash: actual };
            commits.push(head.clone());
            committed = offset;
            batch_records = 0;
            for record in pending.items.drain(..) {
                emit(format, record);
            }
            continue;
        }
        hasher.update(&buffer);
        if unreadable.is_some() {
            continue;
        }
        let mut defer = |reason: String| unreadable = Some((line_number, reason));
        if body.starts_with(b"[") {
            let line: CompactLine = match serde_json::from_slice(body) {
                Ok(line) => line,
                Err(e) => {
                    defer(format!("malformed compact record: {e}"));
                    continue;
                }
            };
            if format == Format::Pseudonyms && Pseudonym::parse(&line.1).is_none() {
                defer("a record of format 3 whose subject is not a pseudonym".into());
                continue;
            }
            let Some(template) = templates.get(&line.0) else {
                defer(format!("names template {} that this segment does not define", line.0));
                continue;
            };
            match rebuild(template, line) {
                Ok(record) => pending.items.push(record),
                Err(reason) => {
                    defer(reason);
                    continue;
                }
            }
            batch_records += 1;
        } else if body.starts_with(b"{\"record\":") {
            match serde_json::from_slice::<RecordLine>(body) {
                Ok(line)
                    if format == Format::Pseudonyms
                        && (Pseudonym::parse(&line.record.request.subject).is_none()
                            || line.record.request.subject != line.record.decision.subject()) =>
                {
                    defer("a record of format 3 whose subject is not a pseudonym".into());
                    continue;
                }
                Ok(line) => pending.items.push(line.record),
                Err(e) => {
                    defer(format!("malformed record: {e}"));
                    continue;
                }
            }
            batch_records += 1;
        } else if body.starts_with(b"{\"template\":") {
            let line: TemplateLine = match serde_json::from_slice(body) {
                Ok(line) => line,
                Err(e) => {
                    defer(format!("malformed template: {e}"));
                    continue;
                }
            };
            let template = Template {
                request: line.request,
                policy: line.policy,
                policy_version: line.policy_version,
                clause: line.clause,
            };
            templates.insert(line.template, template);
        } else {
            defer("not a line of an audit segment".into());
        }
    }
}

/// Checks a segment's first line: the header of segment `number`, continuing the
/// chain at `head`, in the log's format if it has one yet; returns its format.
fn check_header(body: &[u8], number: u64, head: &Head, log_format: Option<Format>) -> Result<Format, String> {
    let header: HeaderLine = serde_json::from_slice(body).map_err(|e| format!("not a segment header: {e}"))?;
    let Some(format) = Format::parse(&header.format) else {
        return Err(format!("format `{}` is neither `{FORMAT}` nor `{FORMAT_2}`", header.format));
    };
    if let Some(expected) = log_format.filter(|f| *f != format) {
        return Err(format!("format `{format}` in a log of format `{expected}`: a log holds one format"));
    }
    if header.segment != number {
        return Err(format!("header names segment {} in the file of segment {number}", header.segment));
    }
    if header.seq != head.seq || header.prev != head.hash {
        return Err(format!(
            "does not continue the chain: it starts at {}:{} where {} was expected (segments removed, inserted or reordered)",
            header.seq, header.prev, head
        ));
    }
    Ok(format)
}

/// The full record of a compact one.
fn rebuild(template: &Template, line: CompactLine) -> Result<OwnedAuditRecord, String> {
    let CompactLine(_, subject, code, at, basis) = line;
    if basis.is_some() && !code.is_allow() {
        return Err("a denial names no basis".into());
    }
    if chrono::DateTime::from_timestamp_millis(at).is_none() {
        return Err(format!("time {at} is out of range"));
    }
    let mut request = template.request.clone();
    request.subject = std::borrow::Cow::Owned(subject.clone());
    let decision = Decision {
        code,
        basis,
        at,
        // Compact records are never written for a what-if (prepared checks decide
        // now; the log writes a plain what-if in full).
        what_if: false,
        facts: Facts::Owned(Box::new(OwnedFacts {
            clause: template.clause.clone(),
            policy: template.policy.clone(),
            policy_version: template.policy_version.clone(),
            subject,
            purpose: request.purpose.clone(),
            message: None,
        })),
        detail: Detail::None,
    };
    Ok(OwnedAuditRecord { request, decision })
}

/// Writes every committed record of a log as a JSON line `{"request":…,"decision":…}`
/// (the form [`JsonLinesAuditSink`](super::JsonLinesAuditSink) records hold), compact
/// records expanded with their template; returns the verdict of the whole log. Records
/// after the first tampered line are not written.
///
/// # Errors
///
/// When a file cannot be read or `out` cannot be written.
pub fn export(dir: impl AsRef<Path>, out: &mut dyn Write) -> std::io::Result<DirVerdict> {
    let mut failure: Option<std::io::Error> = None;
    let scan = scan_dir(dir.as_ref(), &mut |_, record| {
        if failure.is_none() {
            let written = serde_json::to_writer(&mut *out, &record)
                .map_err(std::io::Error::other)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = written {
                failure = Some(e);
            }
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(scan.verdict),
    }
}

/// Hands every committed record of a log to `emit`, in log order, compact records
/// expanded with their template; returns the verdict of the whole log. Records after
/// the first tampered line are not handed. The subject of a record of format 3 is its
/// pseudonym ([`for_each_record_of`] says which format each record has).
///
/// # Errors
///
/// When a file cannot be read.
pub fn for_each_record(dir: impl AsRef<Path>, emit: &mut dyn FnMut(OwnedAuditRecord)) -> std::io::Result<DirVerdict> {
    scan_dir(dir.as_ref(), &mut |_, record| emit(record)).map(|scan| scan.verdict)
}

/// [`for_each_record`], handing each record with the format of its segment: whether
/// its subject is a plain id (format 2) or a pseudonym (format 3).
///
/// # Errors
///
/// When a file cannot be read.
pub fn for_each_record_of(
    dir: impl AsRef<Path>,
    emit: &mut dyn FnMut(Format, OwnedAuditRecord),
) -> std::io::Result<DirVerdict> {
    scan_dir(dir.as_ref(), emit).map(|scan| scan.verdict)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The hash mark is the record's last field: searched from the end of the line.
pub(crate) fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(haystack, needle)
}

#[cfg(test)]
mod tests {

    use super::*;

    /// A segment that is one endless line is refused at its first line after
    /// `MAX_LINE` bytes, in bounded memory (it was read whole: an abort under a memory
    /// limit, issue 30).
    #[test]
    fn an_endless_line_is_tampering_located_in_bounded_memory() {
        let endless = std::io::BufReader::new(std::io::repeat(b'x'));
        let (mut head, mut commits) = (Head::genesis(), Vec::new());
        match scan_segment(endless, 1, &mut head, &mut commits, &mut None, &mut |_, _| {}).unwrap() {
            SegmentEnd::Tampered { line, reason } => {
                assert_eq!(line, 1);
                assert!(reason.contains("longer than 64 MiB"), "{reason}");
            }
            _ => panic!("an endless line was not refused"),
        }
    }
}
