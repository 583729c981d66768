//! `consent-guard store migrate` and the master key options (issue 27): a store of
//! format version 1 is refused with a message naming the migration; the migration
//! writes a version 2 store that forgets erased subjects; the commands read it with
//! `--master-key-file` or `CONSENT_GUARD_MASTER_KEY`, and not without the key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

#[path = "../../../tests/support/store_v1.rs"]
mod store_v1;

use assert_cmd::Command;
use consent_guard::ConsentEvent;
use serde_json::Value;

fn cg() -> Command {
    let mut cmd = Command::cargo_bin("consent-guard").unwrap();
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    cmd.env_remove("CONSENT_GUARD_MASTER_KEY");
    cmd
}

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap()
}

const REQUEST: &str = r#"{"subject":"SUBJECT","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#;

#[test]
fn a_v1_store_is_refused_then_migrated_and_read_with_its_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.redb");
    let new = dir.path().join("new.redb");
    let key_file = secrets.path().join("master.key");
    let grant = |subject: &str| {
        event(&format!(
            r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}}"#
        ))
    };
    store_v1::write_v1(
        &old,
        &[
            grant("alive-subject-1"),
            grant("erased-subject-1"),
            event(r#"{"type":"erase","subject":"erased-subject-1","at":"2026-03-01T00:00:00Z"}"#),
        ],
    );
    let (old_s, new_s, key_s) = (old.to_str().unwrap(), new.to_str().unwrap(), key_file.to_str().unwrap());

    let refused = cg().args(["history", "--store", old_s, "--subject", "alive-subject-1"]).assert().code(2);
    let stderr = String::from_utf8(refused.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("consent-guard store migrate"), "{stderr}");

    let migrated =
        cg().args(["store", "migrate", "--from", old_s, "--to", new_s, "--master-key-file", key_s]).assert().success();
    let stdout = String::from_utf8(migrated.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("3 events read") && stdout.contains("1 erasures"), "{stdout}");
    assert!(stdout.contains("still holds every subject id in plain text") && stdout.contains("delete it"), "{stdout}");
    assert!(key_file.exists(), "the key file named is made");
    assert!(!dir.path().join("new.redb.key").exists(), "no key beside the store when one is named");
    let again = cg().args(["store", "migrate", "--from", old_s, "--to", new_s, "--master-key-file", key_s]).assert();
    again.code(2);
    let bytes = std::fs::read(&new).unwrap();
    assert!(!bytes.windows(16).any(|w| w == b"erased-subject-1"), "no erased id in the new file");

    let history = |args: &[&str], env: Option<&str>| {
        let mut cmd = cg();
        cmd.args(["history", "--store", new_s]).args(args);
        if let Some(key) = env {
            cmd.env("CONSENT_GUARD_MASTER_KEY", key);
        }
        cmd.assert()
    };
    let erased = history(&["--subject", "erased-subject-1", "--master-key-file", key_s], None).success();
    let json: Value = serde_json::from_slice(&erased.get_output().stdout).unwrap();
    assert_eq!(json["events"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["events"][0]["type"], "erase");
    let key_hex = std::fs::read_to_string(&key_file).unwrap();
    let alive = history(&["--subject", "alive-subject-1"], Some(key_hex.trim())).success();
    let json: Value = serde_json::from_slice(&alive.get_output().stdout).unwrap();
    assert_eq!(json["events"][0]["type"], "grant", "{json}");
    // Without the key (none beside the store), nothing is read.
    history(&["--subject", "alive-subject-1"], None).code(2);
    // A wrong key is refused.
    history(&["--subject", "alive-subject-1"], Some(&"ab".repeat(32))).code(2);

    let decided = cg()
        .args(["check", "--policy", "examples/policies/exmo.toml", "--store", new_s, "--master-key-file", key_s])
        .args(["--at", "2026-06-01T00:00:00Z"])
        .write_stdin(format!(
            "{}\n{}\n",
            REQUEST.replace("SUBJECT", "erased-subject-1"),
            REQUEST.replace("SUBJECT", "alive-subject-1")
        ))
        .assert()
        .success();
    let codes: Vec<String> = String::from_utf8(decided.get_output().stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["subject_erased", "consent_given"]);
}
