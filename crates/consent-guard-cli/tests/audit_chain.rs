//! The hash-chained audit log: a real log written through a `Guard` on the EXMO policy,
//! then altered, cut, reordered and forged; each change must be caught (or reported as
//! a torn last line) by `verify_log` and by `consent-guard audit verify`, with the
//! right exit status.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]
#![expect(deprecated, reason = "the older one-file log stays readable; these tests write one to read")]

use std::path::{Path, PathBuf};

use consent_guard::audit::{verify_log, JsonLinesAuditSink, LogVerdict};
use consent_guard::{AccessRequest, ConsentEvent, FixedClock, Guard, Policy};
use sha2::{Digest, Sha256};

const RECORDS: u64 = 20;

/// Writes a log of 20 decisions (allows and denials) through a guard; returns its
/// directory (kept alive), its path and the sink's head.
fn real_log() -> (tempfile::TempDir, PathBuf, (u64, String)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let policy = Policy::from_toml_file(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("examples/policies/exmo.toml"),
    )
    .unwrap();
    let sink = std::sync::Arc::new(JsonLinesAuditSink::open(&path).unwrap());
    let guard = Guard::builder(policy)
        .clock(FixedClock::new("2026-06-01T00:00:00Z".parse().unwrap()))
        .audit(std::sync::Arc::clone(&sink))
        .build()
        .unwrap();
    let grant: ConsentEvent = serde_json::from_str(
        r#"{"type":"grant","subject":"u0","purposes":["personalization"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#,
    )
    .unwrap();
    guard.record(&grant).unwrap();
    for i in 0..RECORDS {
        let purpose = [
            "personalization.recommendation",
            "ai_training.model_training",
            "account.registration",
            "marketing.campaigns",
        ][(i % 4) as usize];
        let category = if purpose == "account.registration" || purpose == "marketing.campaigns" {
            "contact.email"
        } else {
            "behavior.log"
        };
        let json = format!(r#"{{"subject":"u{}","purpose":"{purpose}","categories":["{category}"]}}"#, i % 3);
        let request: AccessRequest<'_> = serde_json::from_str(&json).unwrap();
        let _decision = guard.check(&request);
    }
    let head = sink.head().unwrap();
    assert_eq!(head.0, RECORDS);
    (dir, path, head)
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    bytes.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    std::fs::write(path, lines.concat()).unwrap();
}

fn verdict(path: &Path) -> LogVerdict {
    verify_log(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap()
}

fn tampered_line(path: &Path) -> u64 {
    match verdict(path) {
        LogVerdict::Tampered { line, .. } => line,
        other => panic!("not caught: {other:?}"),
    }
}

/// `consent-guard audit verify`: (exit status, stdout).
fn cli_verify(path: &Path, anchor: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = assert_cmd::Command::cargo_bin("consent-guard").unwrap();
    cmd.args(["audit", "verify"]).arg(path);
    if let Some(anchor) = anchor {
        cmd.args(["--anchor", anchor]);
    }
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Both verifiers agree that the log is tampered at `line`.
fn assert_tampered_at(path: &Path, line: u64) {
    assert_eq!(tampered_line(path), line);
    {
        let (status, out) = cli_verify(path, None);
        assert_eq!(status, Some(1), "{out}");
        assert!(out.contains(&format!("tampered: line {line} ")), "{out}");
    }
}

#[test]
fn an_intact_log_verifies() {
    let (_dir, path, (records, hash)) = real_log();
    assert_eq!(verdict(&path), LogVerdict::Intact { records, last_hash: hash.clone() });
    {
        let (status, out) = cli_verify(&path, None);
        assert_eq!(status, Some(0), "{out}");
        assert!(out.contains(&format!("intact: {RECORDS} records; head {RECORDS}:{hash}")), "{out}");
        let (status, out) = cli_verify(&path, Some(&format!("{records}:{hash}")));
        assert_eq!(status, Some(0), "{out}");
    }
}

#[test]
fn an_altered_byte_is_caught() {
    let (_dir, path, _) = real_log();
    let mut log = lines(&path);
    // A byte of the record's content (its subject), then a byte of the stated hash.
    let at = log[4].windows(8).position(|w| w == b"\"subject").unwrap() + 12;
    log[4][at] ^= 0x01;
    write_lines(&path, &log);
    assert_tampered_at(&path, 5);
    assert!(matches!(verdict(&path), LogVerdict::Tampered { reason, .. } if reason.contains("altered")));

    let (_dir, path, _) = real_log();
    let mut log = lines(&path);
    let last = log[11].len() - 5;
    log[11][last] = if log[11][last] == b'0' { b'1' } else { b'0' };
    write_lines(&path, &log);
    assert_tampered_at(&path, 12);
}

#[test]
fn a_dropped_middle_record_is_caught() {
    let (_dir, path, _) = real_log();
    let mut log = lines(&path);
    log.remove(9);
    write_lines(&path, &log);
    // Line 10 now holds record 11.
    assert_tampered_at(&path, 10);
    assert!(
        matches!(verdict(&path), LogVerdict::Tampered { reason, .. } if reason.contains("sequence number 11 where 10"))
    );
}

#[test]
fn swapped_records_are_caught() {
    let (_dir, path, _) = real_log();
    let mut log = lines(&path);
    log.swap(2, 3);
    write_lines(&path, &log);
    assert_tampered_at(&path, 3);
}

#[test]
fn an_inserted_record_is_caught() {
    // A copy of a genuine record, replayed.
    let (_dir, path, _) = real_log();
    let mut log = lines(&path);
    let copy = log[5].clone();
    log.insert(7, copy);
    write_lines(&path, &log);
    assert_tampered_at(&path, 8);

    // A forged record with a correct hash, chained to record 7 as record 8: the
    // genuine record 8 that follows no longer chains.
    let (_dir, path, _) = real_log();
    let mut log = lines(&path);
    let prev = stated_hash(&log[6]);
    let body = log[7].clone();
    let record_at = body.windows(9).position(|w| w == b"\"record\":").unwrap();
    let hash_at = body.windows(9).rposition(|w| w == b",\"hash\":\"").unwrap();
    let record = String::from_utf8(body[record_at..hash_at].to_vec()).unwrap().replace("\"u", "\"forged");
    let hashed = format!("{{\"seq\":8,\"prev\":\"{prev}\",{record}");
    let hash: String = Sha256::digest(hashed.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let forged = format!("{hashed},\"hash\":\"{hash}\"}}\n").into_bytes();
    log.insert(7, forged);
    write_lines(&path, &log);
    assert_tampered_at(&path, 9);
}

fn stated_hash(line: &[u8]) -> String {
    let text = std::str::from_utf8(line).unwrap().trim_end();
    text[text.len() - 66..text.len() - 2].to_owned()
}

#[test]
fn a_torn_last_line_is_not_tampering_and_the_sink_recovers() {
    let (_dir, path, _) = real_log();
    let mut log = lines(&path);
    let last = log.last_mut().unwrap();
    last.truncate(last.len() / 2);
    write_lines(&path, &log);
    match verdict(&path) {
        LogVerdict::TornTail { records, line, .. } => assert_eq!((records, line), (RECORDS - 1, RECORDS)),
        other => panic!("{other:?}"),
    }
    {
        let (status, out) = cli_verify(&path, None);
        assert_eq!(status, Some(0), "{out}");
        assert!(out.contains("torn last line (crash mid-write), not tampering"), "{out}");
    }

    // Reopening cuts the torn line off, so the next record starts on its own line.
    let sink = JsonLinesAuditSink::open(&path).unwrap();
    assert_eq!(sink.head().unwrap().0, RECORDS - 1);
    let policy = Policy::from_toml_file(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("examples/policies/exmo.toml"),
    )
    .unwrap();
    let guard = Guard::builder(policy).audit(sink).build().unwrap();
    let request: AccessRequest<'_> =
        serde_json::from_str(r#"{"subject":"u9","purpose":"account.registration","categories":["contact.email"]}"#)
            .unwrap();
    assert!(guard.check(&request).allowed());
    assert!(matches!(verdict(&path), LogVerdict::Intact { records: RECORDS, .. }));
}

#[test]
fn an_unterminated_line_that_is_no_write_cut_short_is_tampering() {
    // The last record altered and its newline removed: not a prefix of what the sink
    // writes, so not a crash.
    let (_dir, path, _) = real_log();
    let mut log = lines(&path);
    let last = log.last_mut().unwrap();
    last.pop();
    last.extend_from_slice(b"x");
    write_lines(&path, &log);
    assert_tampered_at(&path, RECORDS);

    // An incomplete line that does not continue the chain.
    let (_dir, path, _) = real_log();
    let mut log = lines(&path);
    let copy = log[0][..40].to_vec();
    log.push(copy);
    write_lines(&path, &log);
    assert_tampered_at(&path, RECORDS + 1);
}

/// Records dropped from the end leave a valid shorter log: the chain alone cannot
/// tell. An anchor kept outside the log can.
#[test]
fn a_dropped_last_record_needs_an_anchor() {
    let (_dir, path, (records, hash)) = real_log();
    let mut log = lines(&path);
    log.pop();
    write_lines(&path, &log);
    assert!(matches!(verdict(&path), LogVerdict::Intact { records: r, .. } if r == RECORDS - 1));
    {
        let (status, out) = cli_verify(&path, None);
        assert_eq!(status, Some(0), "undetectable by the chain alone: {out}");
        let (status, out) = cli_verify(&path, Some(&format!("{records}:{hash}")));
        assert_eq!(status, Some(1), "{out}");
        assert!(out.contains("records were removed from its end"), "{out}");
    }
}

/// A log rewritten from some record on, hashes recomputed, chains; the anchor of an
/// earlier head catches it.
#[test]
fn an_anchor_catches_a_rewrite() {
    let (_dir, path, _) = real_log();
    let log = lines(&path);
    let anchor_10 = format!("10:{}", stated_hash(&log[9]));
    assert_eq!(cli_verify(&path, Some(&anchor_10)).0, Some(0));
    let wrong = format!("10:{}", stated_hash(&log[8]));
    let (status, out) = cli_verify(&path, Some(&wrong));
    assert_eq!(status, Some(1), "{out}");
    assert!(out.contains("record 10 does not have the anchored hash"), "{out}");
}
/// One writable format: `check --audit` never extends a log of the older one-file
/// format (v1); it still verifies. (Directory logs: `tests/audit_log.rs`.)
#[test]
fn check_refuses_to_extend_a_one_file_log() {
    let (_dir, path, _) = real_log();
    let before = std::fs::read(&path).unwrap();
    let output = assert_cmd::Command::cargo_bin("consent-guard")
        .unwrap()
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["check", "--policy", "examples/policies/exmo.toml", "--audit"])
        .arg(&path)
        .write_stdin(r#"{"subject":"a","purpose":"account.registration","categories":["contact.email"]}"#)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("older one-file format, which is read-only"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing is decided without its audit log");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file is left as found");
    let (status, out) = cli_verify(&path, None);
    assert_eq!(status, Some(0), "{out}");
}

/// The anchor of an empty log (`0:` and 64 zeros) holds for every intact log.
#[test]
fn the_anchor_of_an_empty_log_verifies() {
    let (_dir, path, _) = real_log();
    let genesis = format!("0:{}", "0".repeat(64));
    let (status, out) = cli_verify(&path, Some(&genesis));
    assert_eq!(status, Some(0), "{out}");
    let empty = _dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let (status, out) = cli_verify(&empty, Some(&genesis));
    assert_eq!(status, Some(0), "{out}");
    let (status, out) = cli_verify(&path, Some(&format!("0:{}", "1".repeat(64))));
    assert_eq!(status, Some(1), "{out}");
}
#[test]
fn an_unreadable_log_exits_2() {
    let (status, _) = cli_verify(Path::new("no/such/audit.jsonl"), None);
    assert_eq!(status, Some(2));
    let dir = tempfile::tempdir().unwrap();
    let (status, _) = cli_verify(dir.path(), None);
    assert_eq!(status, Some(2), "a directory is unreadable as a log");
}
