//! A damaged store file behind `check --store`, `history --store` and `quarantine`
//! (issue 30): the read-only open verifies every checksum as the service's open does,
//! so a flipped byte in a stored withdrawal is refused (exit 2, naming the file), never
//! read as a grant; an empty or zeroed file is refused, never taken for a new store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use assert_cmd::Command;
use consent_guard::store::{ConsentStore, RedbConsentStore};
use consent_guard::ConsentEvent;

fn cg() -> Command {
    let mut cmd = Command::cargo_bin("consent-guard").unwrap();
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    cmd
}

const POLICY: &str = "examples/policies/exmo.toml";
const REQUEST: &str = r#"{"subject":"w3","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#;

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap()
}

/// Every command that opens a store refuses `path` with exit 2 and names it.
fn refused_everywhere(path: &std::path::Path) {
    let store = path.to_str().unwrap();
    let check = cg()
        .args(["check", "--policy", POLICY, "--store", store, "--at", "2026-06-01T00:00:00Z"])
        .write_stdin(REQUEST)
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(check.stdout.is_empty(), "a decision was printed: {}", String::from_utf8_lossy(&check.stdout));
    let stderr = String::from_utf8(check.stderr).unwrap();
    assert!(stderr.contains(store) && stderr.contains("corrupted"), "{stderr}");
    cg().args(["history", "--store", store, "--subject", "w3"]).assert().code(2);
    cg().args(["quarantine", "--policy", POLICY, "--store", store]).assert().code(2);
}

#[test]
fn a_flipped_withdrawal_is_refused_not_read_as_consent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.redb");
    let store = RedbConsentStore::open(&path).unwrap();
    store
        .append(&[
            event(r#"{"type":"grant","subject":"w3","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#),
            event(r#"{"type":"grant","subject":"w2","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#),
        ])
        .unwrap();
    store
        .append(&[event(
            r#"{"type":"withdraw","subject":"w3","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}"#,
        )])
        .unwrap();
    drop(store);
    let undamaged = cg()
        .args(["check", "--policy", POLICY, "--store", path.to_str().unwrap(), "--at", "2026-06-01T00:00:00Z"])
        .write_stdin(REQUEST)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&undamaged).contains("\"allowed\":false"));

    // The file holds no id (issue 27: events are encrypted, indexed by the subject's
    // locator under the master key): w3's records are damaged where its locator is.
    let mut bytes = std::fs::read(&path).unwrap();
    let mut key_file = path.as_os_str().to_owned();
    key_file.push(".key");
    let master = consent_guard::keys::MasterKey::load(std::path::Path::new(&key_file)).unwrap();
    let needle = master.locator("w3").as_bytes().to_vec();
    let mut flipped = 0;
    for start in 0..bytes.len().saturating_sub(needle.len()) {
        if bytes[start..start + needle.len()] == needle[..] {
            bytes[start + needle.len() - 1] ^= 0x01;
            flipped += 1;
        }
    }
    assert!(flipped > 0);
    std::fs::write(&path, &bytes).unwrap();
    refused_everywhere(&path);
}

#[test]
fn an_empty_or_zeroed_store_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeroed.redb");
    for content in [vec![0u8; 1 << 20], Vec::new()] {
        std::fs::write(&path, &content).unwrap();
        refused_everywhere(&path);
        assert_eq!(std::fs::read(&path).unwrap(), content);
    }
}
