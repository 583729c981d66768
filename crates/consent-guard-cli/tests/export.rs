//! `consent-guard export SUBJECT` (issue 27 item 4): the subject's consent history and
//! every decision about the subject in the audit log, as one JSON document that fits
//! the `export` JSON Schema; a damaged log gives exit 1 and an export marked
//! incomplete. The log holds pseudonyms under the store's subject keys: the export
//! finds the subject's records through its key; a format-2 log by the plain id.
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

/// End to end through the store's subject keys: `check --store S --audit A` writes
/// pseudonyms under the store's keys, `export` finds them again through them.
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
    assert!(requests.contains("\"subject\":\"alice\""));
    let of = |subject: &str| requests.lines().filter(|l| l.contains(&format!("\"subject\":\"{subject}\""))).count();
    cg().args(["check", "--policy", "examples/policies/exmo.toml", "--at", "2026-06-01T00:00:00Z", "--store"])
        .arg(&store)
        .arg("--audit")
        .arg(&audit)
        .arg("tests/data/cli/exmo_requests.jsonl")
        .assert()
        .code(0);
    // No record holds an id: the log names subjects by pseudonyms.
    let bytes: Vec<u8> =
        std::fs::read_dir(&audit).unwrap().flat_map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    for id in ["\"alice\"", "\"bob\""] {
        assert!(!bytes.windows(id.len()).any(|w| w == id.as_bytes()), "the log holds {id}");
    }

    let alice = export(&store, Some(&audit), "alice", 0);
    assert_eq!(alice["format"], "consent-guard/subject-export/1");
    assert_eq!(alice["subject"], "alice");
    assert_eq!(alice["history"]["events"].as_array().unwrap().len(), 3);
    let decisions = alice["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), of("alice"));
    assert!(decisions.iter().all(|d| d["request"]["subject"] == "alice" && d["decision"]["subject"] == "alice"));
    assert_eq!(alice["audit"]["verdict"], "intact");
    assert_eq!(alice["audit"]["complete"], true);
    assert_eq!(alice["audit"]["subject_key"], "found");
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
    assert_eq!(nobody["audit"]["subject_key"], "none");

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
    let altered = text.replacen("consent_given", "consent_givem", 1);
    assert_ne!(text, altered);
    std::fs::write(&segment, altered).unwrap();
    let damaged = export(&store, Some(&audit), "alice", 1);
    assert_eq!(damaged["audit"]["verdict"], "tampered");
    assert_eq!(damaged["audit"]["complete"], false);
    assert!(damaged["audit"]["problem"].as_str().unwrap().contains("line"));
}

fn copy_fixture(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["segment-00000001.jsonl", "head"] {
        std::fs::copy(root().join("tests/data/audit-v2").join(name), to.join(name)).unwrap();
    }
}

/// A format-2 log (written by the writer before pseudonyms, `tests/data/audit-v2`) is
/// still searched by the plain id, with or without keys in the store.
#[test]
fn a_format_2_log_is_searched_by_the_plain_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("consent.redb");
    drop(RedbConsentStore::open(&store).unwrap());
    let audit = dir.path().join("audit");
    copy_fixture(&audit);
    let alice = export(&store, Some(&audit), "alice", 0);
    let decisions = alice["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 6, "{alice:#}");
    assert!(decisions.iter().all(|d| d["request"]["subject"] == "alice" && d["decision"]["subject"] == "alice"));
    assert_eq!(alice["audit"]["verdict"], "intact");
    assert!(alice["audit"].get("subject_key").is_none(), "a format-2 log needs no key");
    assert_eq!(export(&store, Some(&audit), "bob", 0)["decisions"].as_array().unwrap().len(), 5);
}

/// A format-3 log whose subject the store keeps no key for: the export never holds its
/// records. A store that keeps keys says the subject has none (`subject_key: none`); a
/// store that cannot say (it keeps no keys at all) is an error (exit 2), never an
/// export that claims the subject has no decisions.
#[test]
fn without_the_subjects_key_no_record_of_a_pseudonymous_log_is_exported() {
    use consent_guard::audit::{AuditLog, AuditLogOptions, Durability};
    use consent_guard::{AccessRequest, DataCategory, Guard, Policy, Purpose};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("consent.redb");
    drop(RedbConsentStore::open(&store).unwrap());
    let audit = dir.path().join("audit");
    {
        // Keys of the log's own: gone when it closes.
        let log = AuditLog::open_with(&audit, AuditLogOptions::new(Durability::Synced)).unwrap();
        let guard = Guard::builder(Policy::from_toml_file(root().join("examples/policies/exmo.toml")).unwrap())
            .audit(log)
            .build()
            .unwrap();
        let request = AccessRequest::new("alice", Purpose::SECURITY, &[DataCategory::DEVICE_INFO][..]);
        assert!(guard.check(&request).allowed());
    }
    let mut cmd = cg();
    cmd.args(["export", "alice", "--store"]).arg(&store).arg("--audit").arg(&audit);
    let out = cmd.output().unwrap();
    match out.status.code() {
        Some(0) => {
            let value: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(value["audit"]["subject_key"], "none", "{value:#}");
            assert!(value["decisions"].as_array().unwrap().is_empty(), "{value:#}");
        }
        Some(2) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("subject keys"), "{stderr}");
            assert!(out.stdout.is_empty());
        }
        other => panic!("exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
    }
}
