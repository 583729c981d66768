//! Issue 27, "done when": erase 10,000 of 100,000 subjects on the embedded store with
//! the durable audit log, then
//! 1. `consent-guard audit verify --anchor` passes, with the head taken before the
//!    erasure and with the final one;
//! 2. no erased id, in any encoding, is in the bytes of the audit directory or the
//!    store (a byte search over every file);
//! 3. the erased ids are still denied by a guard restarted on the store, and their
//!    deletion is allowed;
//! 4. the others' exports are complete: every record about each of the 90,000 is found
//!    through its key, and `consent-guard export` gives it back on a sample.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use assert_cmd::Command;
use consent_guard::audit::{segment, AuditLog, AuditLogOptions, DirVerdict, Durability, Format};
use consent_guard::keys::{Pseudonym, SubjectKeys};
use consent_guard::store::{ConsentStore, RedbConsentStore, StoreKeys};
use consent_guard::{
    AccessRequest, Action, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose, ReasonCode,
};
use serde_json::Value;

#[path = "../../../tests/support/id_search.rs"]
mod id_search;

const SUBJECTS: usize = 100_000;
const CHUNK: usize = 10_000;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn cg() -> Command {
    let mut cmd = Command::cargo_bin("consent-guard").unwrap();
    cmd.current_dir(root());
    cmd
}

fn policy() -> Policy {
    Policy::from_toml_file(root().join("examples/policies/exmo.toml")).unwrap()
}

fn clock() -> FixedClock {
    FixedClock::new("2026-06-01T00:00:00Z".parse().unwrap())
}

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap()
}

fn training(subject: &str) -> AccessRequest<'_> {
    AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized)
}

fn id(i: usize) -> String {
    format!("person-{i:06}")
}

fn is_erased(i: usize) -> bool {
    i % 10 == 3
}

#[test]
fn erasing_ten_thousand_of_a_hundred_thousand_forgets_them_and_only_them() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("consent.redb");
    let audit_dir = dir.path().join("audit");
    let ids: Vec<String> = (0..SUBJECTS).map(id).collect();
    let erased: Vec<&str> = (0..SUBJECTS).filter(|i| is_erased(*i)).map(|i| ids[i].as_str()).collect();
    let kept: Vec<&str> = (0..SUBJECTS).filter(|i| !is_erased(*i)).map(|i| ids[i].as_str()).collect();
    assert_eq!(erased.len(), 10_000);

    let anchor = {
        let store: Arc<dyn ConsentStore> = Arc::new(RedbConsentStore::open(&store_path).unwrap());
        let log = Arc::new(
            AuditLog::open_with(
                &audit_dir,
                AuditLogOptions::new(Durability::BUFFERED).subject_keys(Arc::new(StoreKeys(Arc::clone(&store)))),
            )
            .unwrap(),
        );
        let guard =
            Guard::builder(policy()).clock(clock()).store(Arc::clone(&store)).audit(Arc::clone(&log)).build().unwrap();
        for chunk in ids.chunks(CHUNK) {
            let events: Vec<ConsentEvent> = chunk
                .iter()
                .flat_map(|id| {
                    [
                        event(&format!(r#"{{"type":"subject","subject":"{id}","birth_date":"1990-04-05"}}"#)),
                        event(&format!(
                            r#"{{"type":"grant","subject":"{id}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}}"#
                        )),
                    ]
                })
                .collect();
            guard.record_all(&events).unwrap();
        }
        for id in &ids {
            assert_eq!(guard.check(&training(id)).code(), ReasonCode::ConsentGiven, "{id}");
        }
        // A what-if is written in full: the id must not survive in that form either.
        for id in ids.iter().step_by(1000) {
            let _ = guard.what_if(&training(id), "2026-05-01T00:00:00Z".parse().unwrap());
        }
        let anchor = log.flush().unwrap();
        for chunk in erased.chunks(CHUNK) {
            let events: Vec<ConsentEvent> = chunk
                .iter()
                .map(|id| event(&format!(r#"{{"type":"erase","subject":"{id}","at":"2026-05-15T00:00:00Z"}}"#)))
                .collect();
            guard.record_all(&events).unwrap();
        }
        for id in &erased {
            assert_eq!(guard.check(&training(id)).code(), ReasonCode::SubjectErased, "{id}");
        }
        log.flush().unwrap();
        anchor
    };

    // 1. The log verifies against the head taken before the erasure, and as it is now.
    let anchor_text = format!("{}:{}", anchor.seq, anchor.hash);
    cg().args(["audit", "verify", "--anchor", &anchor_text]).arg(&audit_dir).assert().success();
    let head = std::fs::read_to_string(audit_dir.join("head")).unwrap();
    cg().args(["audit", "verify", "--anchor", head.trim()]).arg(&audit_dir).assert().success();

    // 2. No erased id in any encoding, in any file of the store or the audit log.
    let search = id_search::IdSearch::new(&erased);
    let hits = search.in_dir(dir.path(), &|_| false);
    assert!(hits.is_empty(), "erased ids found: {:#?}", &hits[..hits.len().min(10)]);

    // 3. A guard restarted on the store still denies the erased and lets their data go.
    let store: Arc<dyn ConsentStore> = Arc::new(RedbConsentStore::open(&store_path).unwrap());
    let guard = Guard::builder(policy()).clock(clock()).store(Arc::clone(&store)).build().unwrap();
    for id in &erased {
        assert_eq!(guard.check(&training(id)).code(), ReasonCode::SubjectErased, "{id}");
        let delete = training(id).action(Action::Delete);
        let deletion = guard.check(&delete);
        assert!(deletion.allowed(), "{id}: {deletion:?}");
        assert_eq!(deletion.code(), ReasonCode::DeletionDue, "{id}");
    }
    for id in kept.iter().step_by(97) {
        assert_eq!(guard.check(&training(id)).code(), ReasonCode::ConsentGiven, "{id}");
    }

    // 4. Every record about the others is theirs through their key: one check each,
    // and a what-if for every thousandth.
    let keys = StoreKeys(Arc::clone(&store));
    let mut records: HashMap<String, usize> = HashMap::new();
    let verdict = segment::for_each_record_of(&audit_dir, &mut |format, record| {
        assert_eq!(format, Format::Pseudonyms);
        *records.entry(record.request.subject.to_string()).or_default() += 1;
    })
    .unwrap();
    assert!(matches!(verdict, DirVerdict::Intact { .. }), "{verdict:?}");
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| !is_erased(*i)) {
        let key = keys.key_of(id).unwrap().unwrap_or_else(|| panic!("{id} lost its key"));
        let expected = if i % 1000 == 0 { 2 } else { 1 };
        assert_eq!(records.get(&Pseudonym::of(&key, id).to_string()).copied(), Some(expected), "{id}");
    }
    // An erased subject's old records went with its key; the denial audited after the
    // erasure was written under a new key, unrelated to the old one.
    for id in &erased {
        let key = keys.key_of(id).unwrap().unwrap_or_else(|| panic!("{id}: the denial after erasure has a key"));
        assert_eq!(records.get(&Pseudonym::of(&key, id).to_string()).copied(), Some(1), "{id}");
    }
    assert_eq!(records.values().sum::<usize>(), SUBJECTS + SUBJECTS / 1000 + erased.len());
    drop(guard);
    drop(keys);
    drop(store);
    for id in kept.iter().step_by(9001).chain(erased.iter().step_by(4001)) {
        let out =
            cg().args(["export", id, "--store"]).arg(&store_path).arg("--audit").arg(&audit_dir).output().unwrap();
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
        let export: Value = serde_json::from_slice(&out.stdout).unwrap();
        let decisions = export["decisions"].as_array().map_or(0, Vec::len);
        if erased.contains(id) {
            assert_eq!(decisions, 1, "only the denial after the erasure: {id}: {export:#}");
        } else {
            assert!(decisions >= 1, "{id}: {export:#}");
        }
    }
}
