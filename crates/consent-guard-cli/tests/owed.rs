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
/// command exits 1 once an entry is overdue, and the calendar file is checked. The
/// store forgets an erased subject (issue 27): only its tombstone is left, so the
/// subject is asked for by id (`--subject`; a list of every subject cannot name it).
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
    let args = |at: &str, subject: &str| {
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
            "--subject".to_owned(),
            subject.to_owned(),
        ]
    };
    let out = cg().args(args("2026-03-10T00:00:00Z", "u1")).assert().code(0).get_output().clone();
    let owed = lines(&out.stdout);
    let u1: Vec<&Value> = owed.iter().filter(|e| e["subject"] == "u1").collect();
    assert!(!u1.is_empty(), "{owed:?}");
    assert_eq!(u1.len(), owed.len(), "only u1's entries");
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
    let out = cg().args(args("2026-03-20T00:00:00Z", "u1")).assert().code(1).get_output().clone();
    assert!(lines(&out.stdout).iter().filter(|e| e["subject"] == "u1").all(|e| e["overdue"] == true));
    // One subject only.
    let out = cg().args(args("2026-03-10T00:00:00Z", "u2")).assert().code(0).get_output().clone();
    assert!(out.stdout.is_empty());
    // A calendar with a bad date: exit 2, naming the file, line, column and field.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nholidays = [\"2026-02-30\"]\n").unwrap();
    let mut with_bad = args("2026-03-10T00:00:00Z", "u1");
    with_bad[6] = bad.to_str().unwrap().to_owned();
    let out = cg().args(&with_bad).assert().code(2).get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("bad.toml:2:13: holidays"), "{stderr}");
}

/// With `--audit`, an entry whose deletions the audit log shows done (`delete`
/// requests answered `deletion_due` since the erasure, covering its purposes and
/// categories) is settled and no longer overdue; one not covered stays overdue; a
/// damaged log is refused.
#[test]
fn the_audit_log_settles_the_deletions_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consent.redb");
    {
        let store = RedbConsentStore::open(&path).unwrap();
        let events: Vec<ConsentEvent> = [
            r#"{"type":"subject","subject":"u1","birth_date":"1990-01-01","at":"2026-01-01T00:00:00Z"}"#,
            r#"{"type":"erase","subject":"u1","at":"2026-03-01T00:00:00Z"}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        store.append(&events).unwrap();
    }
    let policy = root().join("examples/policies/aiart.toml");
    let owed = |audit: Option<&Path>, code: i32| {
        let mut cmd = cg();
        cmd.arg("owed").arg("--policy").arg(&policy).arg("--store").arg(&path);
        cmd.args(["--at", "2026-03-20T00:00:00Z", "--subject", "u1"]);
        if let Some(audit) = audit {
            cmd.arg("--audit").arg(audit);
        }
        let out = cmd.assert().code(code).get_output().clone();
        (lines(&out.stdout), String::from_utf8(out.stderr).unwrap())
    };
    let (all, _) = owed(None, 1);
    assert!(all.len() >= 2, "{all:?}");
    assert!(all.iter().all(|e| e["overdue"] == true && e.get("settled_at").is_none()));

    // The service deletes the data of every entry but the last, on 5 March.
    let requests: String = all[..all.len() - 1]
        .iter()
        .flat_map(|e| {
            let categories = e["categories"].clone();
            e["purposes"].as_array().unwrap().clone().into_iter().map(move |p| {
                serde_json::json!({"subject":"u1","action":"delete","purpose":p,"categories":categories}).to_string()
                    + "\n"
            })
        })
        .collect();
    let requests_file = dir.path().join("deletes.jsonl");
    std::fs::write(&requests_file, &requests).unwrap();
    let audit = dir.path().join("audit");
    let out = cg()
        .arg("check")
        .arg("--policy")
        .arg(&policy)
        .arg("--store")
        .arg(&path)
        .args(["--at", "2026-03-05T00:00:00Z", "--audit"])
        .arg(&audit)
        .arg(&requests_file)
        .assert()
        .code(0)
        .get_output()
        .clone();
    assert!(lines(&out.stdout).iter().all(|d| d["code"] == "deletion_due"), "{}", String::from_utf8_lossy(&out.stdout));

    let (settled, _) = owed(Some(&audit), 1);
    assert_eq!(settled.len(), all.len());
    let (done, left) = settled.split_at(settled.len() - 1);
    for entry in done {
        assert_eq!(entry["settled_at"], "2026-03-05T00:00:00Z", "{entry}");
        assert_eq!(entry["overdue"], false);
    }
    assert!(left[0].get("settled_at").is_none(), "{}", left[0]);
    assert_eq!(left[0]["overdue"], true);

    // Asked about a time before the deletions, nothing is settled.
    let mut cmd = cg();
    cmd.arg("owed").arg("--policy").arg(&policy).arg("--store").arg(&path);
    cmd.args(["--at", "2026-03-04T00:00:00Z", "--subject", "u1", "--audit"]).arg(&audit);
    let out = cmd.assert().code(0).get_output().clone();
    assert!(lines(&out.stdout).iter().all(|e| e.get("settled_at").is_none()));

    // A damaged log is no evidence: exit 2.
    let segment = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("segment-"))
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    // The log holds u1's pseudonym, not the id: alter a reason code instead.
    assert!(!text.contains("\"u1\""), "the log holds the id");
    std::fs::write(&segment, text.replacen("deletion_due", "deletion_dve", 1)).unwrap();
    let (_, stderr) = owed(Some(&audit), 2);
    assert!(stderr.contains("tampered"), "{stderr}");
}
