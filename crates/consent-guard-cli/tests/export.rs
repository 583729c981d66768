//! `consent-guard export SUBJECT` (issue 27 item 4): the subject's consent history and
//! every decision about the subject in the audit log, as one JSON document that fits
//! the `export` JSON Schema; a damaged log gives exit 1 and an export marked
//! incomplete.
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

fn export(store: &Path, audit: Option<&Path>, subject: &str, code: i32) -> Value {
    let mut cmd = cg();
    cmd.args(["export", subject, "--store"]).arg(store);
    if let Some(audit) = audit {
        cmd.arg("--audit").arg(audit);
    }
    let out = cmd.assert().code(code).get_output().clone();
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    let schema = consent_guard::schema::schema("export").unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{value:#}");
    value
}

#[test]
fn a_subject_gets_its_history_and_every_decision_about_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("consent.redb");
    let audit = dir.path().join("audit");
    let events_file = root().join("tests/data/cli/exmo_events.jsonl");
    {
        let events: Vec<ConsentEvent> = std::fs::read_to_string(&events_file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        RedbConsentStore::open(&store).unwrap().append(&events).unwrap();
    }
    let requests = std::fs::read_to_string(root().join("tests/data/cli/exmo_requests.jsonl")).unwrap();
    let of = |subject: &str| requests.lines().filter(|l| l.contains(&format!("\"subject\":\"{subject}\""))).count();
    cg().args(["check", "--policy", "examples/policies/exmo.toml", "--at", "2026-06-01T00:00:00Z", "--store"])
        .arg(&store)
        .arg("--audit")
        .arg(&audit)
        .arg("tests/data/cli/exmo_requests.jsonl")
        .assert()
        .code(0);

    let alice = export(&store, Some(&audit), "alice", 0);
    assert_eq!(alice["format"], "consent-guard/subject-export/1");
    assert_eq!(alice["subject"], "alice");
    assert_eq!(alice["history"]["events"].as_array().unwrap().len(), 3);
    let decisions = alice["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), of("alice"));
    assert!(decisions.iter().all(|d| d["request"]["subject"] == "alice" && d["decision"]["subject"] == "alice"));
    assert_eq!(alice["audit"]["verdict"], "intact");
    assert_eq!(alice["audit"]["complete"], true);
    assert_eq!(alice["audit"]["records_read"].as_u64().unwrap() as usize, requests.lines().count());
    // The head named is the one `audit verify --anchor` accepts.
    let head = alice["audit"]["head"].as_str().unwrap().to_owned();
    cg().args(["audit", "verify"]).arg(&audit).args(["--anchor", &head]).assert().code(0);

    // Nobody else's decisions; a subject the store and the log do not know gets an
    // empty export.
    let bob = export(&store, Some(&audit), "bob", 0);
    assert_eq!(bob["decisions"].as_array().unwrap().len(), of("bob"));
    let nobody = export(&store, Some(&audit), "nobody", 0);
    assert!(nobody["history"]["events"].as_array().unwrap().is_empty());
    assert!(nobody["decisions"].as_array().unwrap().is_empty());

    // Without a log: no decisions, and the export says it did not read one.
    let bare = export(&store, None, "alice", 0);
    assert_eq!(bare["audit"]["verdict"], "none");
    assert_eq!(bare["audit"]["complete"], false);

    // A damaged log: exit 1, the export says it is incomplete and where.
    let segment = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("segment-"))
        .unwrap_or_else(|| panic!("no segment in {:?}", std::fs::read_dir(&audit).unwrap().collect::<Vec<_>>()));
    let text = std::fs::read_to_string(&segment).unwrap();
    let altered = text.replacen("\"alice\"", "\"alicf\"", 1);
    assert_ne!(text, altered);
    std::fs::write(&segment, altered).unwrap();
    let damaged = export(&store, Some(&audit), "alice", 1);
    assert_eq!(damaged["audit"]["verdict"], "tampered");
    assert_eq!(damaged["audit"]["complete"], false);
    assert!(damaged["audit"]["problem"].as_str().unwrap().contains("line"));
}
