//! `consent-guard owed` (issue 27): what must be deleted now, as JSON lines, with the
//! policy's deadlines in working days of a holiday calendar.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::path::Path;

use assert_cmd::Command;
use consent_guard::store::{ConsentStore, RedbConsentStore};
use consent_guard::ConsentEvent;
use serde_json::Value;

fn cg() -> Command {
    let mut cmd = Command::cargo_bin("consent-guard").unwrap();
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    cmd
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// An erased subject's data is owed from the erasure, within AI Art's 15 days; the
/// command exits 1 once an entry is overdue, and the calendar file is checked.
#[test]
fn owed_lists_the_deletions_due_and_flags_the_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consent.redb");
    {
        let store = RedbConsentStore::open(&path).unwrap();
        let events: Vec<ConsentEvent> = [
            r#"{"type":"subject","subject":"u1","birth_date":"1990-01-01","at":"2026-01-01T00:00:00Z"}"#,
            r#"{"type":"erase","subject":"u1","at":"2026-03-01T00:00:00Z"}"#,
            r#"{"type":"subject","subject":"u2","birth_date":"1990-01-01","at":"2026-01-01T00:00:00Z"}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        store.append(&events).unwrap();
    }
    let policy = root().join("examples/policies/aiart.toml");
    let calendar = root().join("examples/calendars/cn-2026.toml");
    let args = |at: &str| {
        vec![
            "owed".to_owned(),
            "--policy".to_owned(),
            policy.to_str().unwrap().to_owned(),
            "--store".to_owned(),
            path.to_str().unwrap().to_owned(),
            "--calendar".to_owned(),
            calendar.to_str().unwrap().to_owned(),
            "--at".to_owned(),
            at.to_owned(),
        ]
    };
    let out = cg().args(args("2026-03-10T00:00:00Z")).assert().code(0).get_output().clone();
    let owed = lines(&out.stdout);
    let u1: Vec<&Value> = owed.iter().filter(|e| e["subject"] == "u1").collect();
    assert!(!u1.is_empty(), "{owed:?}");
    assert!(owed.iter().all(|e| e["subject"] != "u2"), "nothing owed of u2");
    for entry in &u1 {
        assert_eq!(entry["reason"], "subject_erased");
        assert_eq!(entry["due"], "2026-03-01T00:00:00Z");
        assert_eq!(entry["deadline"], "2026-03-16T00:00:00Z");
        assert_eq!(entry["overdue"], false);
        assert!(entry["clause"].as_str().unwrap().starts_with("aiart."));
        assert!(!entry["purposes"].as_array().unwrap().is_empty());
        assert!(!entry["categories"].as_array().unwrap().is_empty());
    }
    // Past the 15 days: exit 1.
    let out = cg().args(args("2026-03-20T00:00:00Z")).assert().code(1).get_output().clone();
    assert!(lines(&out.stdout).iter().filter(|e| e["subject"] == "u1").all(|e| e["overdue"] == true));
    // One subject only.
    let mut one = args("2026-03-10T00:00:00Z");
    one.extend(["--subject".to_owned(), "u2".to_owned()]);
    let out = cg().args(&one).assert().code(0).get_output().clone();
    assert!(out.stdout.is_empty());
    // A calendar with a bad date: exit 2, naming the file, line, column and field.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nholidays = [\"2026-02-30\"]\n").unwrap();
    let mut with_bad = args("2026-03-10T00:00:00Z");
    with_bad[6] = bad.to_str().unwrap().to_owned();
    let out = cg().args(&with_bad).assert().code(2).get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("bad.toml:2:13: holidays"), "{stderr}");
}
