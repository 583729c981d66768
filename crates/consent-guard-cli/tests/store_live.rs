//! Reading a live embedded store: while a service (here, this test process) holds the
//! redb file for writing, the CLI's `history`, `check --store` and `quarantine` read it
//! from another process and see each commit; a mistyped path is an error and creates
//! nothing; events the policy cannot apply are quarantined with a warning.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use assert_cmd::Command;
use consent_guard::store::{ConsentStore, ReadOnlyRedbStore, RedbConsentStore};
use consent_guard::{ConsentEvent, Guard, Policy};
use serde_json::Value;

fn cg() -> Command {
    let mut cmd = Command::cargo_bin("consent-guard").unwrap();
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    cmd
}

const POLICY: &str = "examples/policies/exmo.toml";
const REQUEST: &str = r#"{"subject":"SUBJECT","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#;

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap()
}

fn code(store: &str, subject: &str) -> (String, String) {
    let output = cg()
        .args(["check", "--policy", POLICY, "--store", store, "--at", "2026-06-01T00:00:00Z"])
        .write_stdin(REQUEST.replace("SUBJECT", subject))
        .assert()
        .success()
        .get_output()
        .clone();
    let decision: Value = serde_json::from_slice(&output.stdout).unwrap();
    (decision["code"].as_str().unwrap().to_owned(), String::from_utf8(output.stderr).unwrap())
}

#[test]
fn the_cli_reads_a_store_a_service_has_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.redb");
    let store = path.to_str().unwrap();
    let policy =
        Policy::from_toml_file(concat!(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."), "/examples/policies/exmo.toml"))
            .unwrap();
    let service = Guard::builder(policy).store(RedbConsentStore::open(&path).unwrap()).build().unwrap();
    service
        .record(&event(
            r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
        ))
        .unwrap();

    let output = cg().args(["history", "--store", store, "--subject", "u1"]).assert().success().get_output().clone();
    let history: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(history["events"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(code(store, "u1").0, "consent_given");

    // A commit made while a reader has the file is seen by the next read, in this
    // process too.
    let reader = ReadOnlyRedbStore::open(&path).unwrap();
    service
        .record(&event(r#"{"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}"#))
        .unwrap();
    assert_eq!(reader.history("u1").unwrap().events().len(), 2);
    assert!(reader.append(&[]).is_err(), "read-only");
    assert_eq!(code(store, "u1").0, "consent_withdrawn");
    // A second writer is still refused.
    let error = RedbConsentStore::open(&path).unwrap_err();
    assert!(error.to_string().contains("already open"), "{error}");
}

#[test]
fn a_mistyped_path_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("consnet.redb");
    let spec = missing.to_str().unwrap();
    let output = cg().args(["history", "--store", spec, "--subject", "u1"]).assert().code(2).get_output().clone();
    assert!(String::from_utf8_lossy(&output.stderr).contains("no consent store"), "{output:?}");
    cg().args(["check", "--policy", POLICY, "--store", spec])
        .write_stdin(REQUEST.replace("SUBJECT", "u1"))
        .assert()
        .code(2);
    cg().args(["quarantine", "--policy", POLICY, "--store", spec]).assert().code(2);
    assert!(!missing.exists(), "reading created a store");
    assert!(ReadOnlyRedbStore::open(&missing).is_err());
    assert!(!missing.exists());
}

#[test]
fn events_the_policy_cannot_apply_are_quarantined_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.redb");
    let spec = path.to_str().unwrap();
    {
        // Written by a replica on a newer policy, which knows `service.newsletter`.
        let store = RedbConsentStore::open(&path).unwrap();
        store
            .append(&[
                event(r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#),
                event(r#"{"type":"grant","subject":"u2","purposes":["service.newsletter"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#),
            ])
            .unwrap();
    }
    let (given, warnings) = code(spec, "u1");
    assert_eq!(given, "consent_given", "other subjects are decided as before");
    assert!(warnings.contains("position 2") && warnings.contains("service.newsletter"), "{warnings}");
    assert_eq!(code(spec, "u2").0, "consent_state_unavailable");

    let output = cg().args(["quarantine", "--policy", POLICY, "--store", spec]).assert().code(1).get_output().clone();
    let lines: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0]["position"].as_u64(), lines[0]["subject"].as_str()), (Some(2), Some("u2")));
}
