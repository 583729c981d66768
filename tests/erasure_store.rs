//! The store and the guard forget an erased subject (issue 27 item 3, store side):
//! after an erasure the embedded store's file holds none of the erased ids in any
//! encoding, a guard rebuilt from the store still answers them `subject_erased` (and
//! allows their deletion) from tombstones, a follower learns of erasures made
//! elsewhere, and a store of format version 1 is refused and migrates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

#[path = "support/id_search.rs"]
mod id_search;
#[path = "support/store_v1.rs"]
mod store_v1;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use consent_guard::filter::{FilterSpec, RowFacts};
use consent_guard::keys::MasterKey;
use consent_guard::rights::OwedReason;
use consent_guard::store::{ConsentStore, MemoryConsentStore, ReadOnlyRedbStore, RedbConsentStore};
use consent_guard::{
    AccessRequest, Action, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose, ReasonCode,
};
use id_search::IdSearch;

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn policy() -> Policy {
    Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap()
}

fn guard_over(store: impl ConsentStore + 'static) -> Guard {
    Guard::builder(policy()).clock(FixedClock::new(t("2026-06-01T00:00:00Z"))).store(store).build().unwrap()
}

fn training(subject: &str) -> AccessRequest<'_> {
    AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized)
}

/// The events of one subject: a birth date and a grant for training.
fn lived(subject: &str) -> Vec<ConsentEvent> {
    let born = ConsentEvent::Subject(
        consent_guard::consent::SubjectEvent::new(subject)
            .birth_date(chrono::NaiveDate::from_ymd_opt(1990, 5, 1).unwrap()),
    );
    let grant = serde_json::json!({
        "type": "grant", "subject": subject, "purposes": ["ai_training"], "level": "separate",
        "at": "2026-01-02T00:00:00Z", "policy_version": "1.0"
    });
    vec![born, serde_json::from_value(grant).unwrap()]
}

fn erase(subject: &str) -> ConsentEvent {
    serde_json::from_value(serde_json::json!({"type": "erase", "subject": subject, "at": "2026-03-01T00:00:00Z"}))
        .unwrap()
}

/// 1,000 ids to erase: most plain, some that JSON escapes and some beyond ASCII, so
/// that every encoding of the search differs from the raw bytes for some of them.
fn erased_ids() -> Vec<String> {
    (0..1000)
        .map(|i| match i % 10 {
            0 => format!("erased \"quoted\" {i:05}"),
            1 => format!("erased-ünïcödé-{i:05}"),
            _ => format!("erased-subject-{i:05}"),
        })
        .collect()
}

fn kept_ids() -> Vec<String> {
    (0..50).map(|i| format!("kept-subject-{i:05}")).collect()
}

/// The search helper finds each encoding it promises, so that a clean search means
/// something.
#[test]
fn the_id_search_finds_every_encoding() {
    let ids = ["erased \"quoted\" 00001", "erased-ünïcödé-00002"];
    let search = IdSearch::new(&ids);
    for id in ids {
        for (encoding, bytes) in id_search::encodings(id) {
            let mut haystack = b"\x00padding ".to_vec();
            haystack.extend_from_slice(&bytes);
            haystack.extend_from_slice(b" more");
            let hits = search.in_bytes(&haystack, None);
            assert!(hits.iter().any(|h| h.id == id && h.encoding == encoding), "{encoding} of {id:?}: {hits:?}");
        }
    }
    let names: Vec<&str> = id_search::encodings(ids[0]).iter().map(|(name, _)| *name).collect();
    // (`base64url` is searched only where it differs from `base64`.)
    for name in ["raw", "json", "utf16le", "hex", "HEX", "base64"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(search.in_bytes(b"erased-subject-00003 is another", None).is_empty());
    // An id inside a longer base64 text is found at each of the three alignments.
    for id in ids {
        for prefix in ["", "a", "ab", "abc", "abcd"] {
            let text = id_search::base64(format!("{prefix}{id} and more").as_bytes(), id_search::STANDARD);
            let hits = search.in_bytes(text.as_bytes(), None);
            assert!(hits.iter().any(|h| h.id == id), "{id:?} after {prefix:?} in {text}");
        }
    }
}

/// A guard restarted on a redb store after 1,000 erasures answers each erased id
/// `subject_erased` (deletion allowed) through every way of checking, and the file
/// holds none of the ids in any encoding.
#[test]
fn a_restarted_guard_denies_erased_ids_and_the_file_holds_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consent.redb");
    let (erased, kept) = (erased_ids(), kept_ids());
    {
        let guard = guard_over(RedbConsentStore::open(&path).unwrap());
        for chunk in erased.chunks(100) {
            let events: Vec<ConsentEvent> = chunk.iter().flat_map(|id| lived(id)).collect();
            guard.record_all(&events).unwrap();
        }
        for id in &kept {
            guard.record_all(&lived(id)).unwrap();
        }
        assert_eq!(guard.check(&training(&erased[7])).code(), ReasonCode::ConsentGiven);
        for chunk in erased.chunks(250) {
            let events: Vec<ConsentEvent> = chunk.iter().map(|id| erase(id)).collect();
            guard.record_all(&events).unwrap();
        }
        assert_eq!(guard.check(&training(&erased[7])).code(), ReasonCode::SubjectErased);
    }

    let store = RedbConsentStore::open(&path).unwrap();
    assert_eq!(store.tombstones().unwrap().len(), erased.len());
    let keys = store.subject_keys().unwrap();
    assert_eq!(keys.key_of(&erased[3]).unwrap(), None, "the erasure destroyed the key");
    assert!(keys.key_of(&kept[3]).unwrap().is_some());
    let guard = guard_over(store);
    assert_eq!(guard.subjects(), kept.len(), "the guard holds no state for erased subjects");

    let delete = |subject: &'static str| {
        AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
            .action(Action::Delete)
    };
    let leaked: Vec<&'static str> = erased.iter().map(|id| &*Box::leak(id.clone().into_boxed_str())).collect();
    let template = training("");
    let prepared = guard.prepare(&template);
    for id in &leaked {
        let request = training(id);
        let decision = guard.check(&request);
        assert_eq!(decision.code(), ReasonCode::SubjectErased, "{id}: {}", decision.message());
        assert_eq!(prepared.check(id).code(), ReasonCode::SubjectErased);
        let handle = guard.subject_handle(id);
        assert!(!handle.was_known());
        assert_eq!(prepared.check_handle(&handle).code(), ReasonCode::SubjectErased);
        assert_eq!(guard.check_handle(&training(id), &handle).code(), ReasonCode::SubjectErased);
        assert_eq!(guard.check(&delete(id)).code(), ReasonCode::DeletionDue, "deletion is allowed");
    }
    let batch = prepared.check_batch(&leaked[..10]);
    assert!(batch.iter().all(|d| d.code() == ReasonCode::SubjectErased));
    assert_eq!(guard.what_if(&training(leaked[0]), t("2026-04-01T00:00:00Z")).code(), ReasonCode::SubjectErased);
    assert_eq!(
        guard.what_if(&training(leaked[0]), t("2026-02-01T00:00:00Z")).code(),
        ReasonCode::ConsentMissing,
        "before the erasure: the events are gone, so no consent (never an allow)"
    );
    let owed = guard.owed(leaked[0], t("2026-06-01T00:00:00Z"), None).unwrap();
    assert!(!owed.is_empty() && owed.iter().all(|o| o.reason == OwedReason::SubjectErased), "{owed:?}");
    assert_eq!(owed[0].due, t("2026-03-01T00:00:00Z"));
    for id in &kept {
        assert_eq!(guard.check(&training(id)).code(), ReasonCode::ConsentGiven, "{id}");
    }
    assert_eq!(guard.check(&training("never-seen-subject")).code(), ReasonCode::ConsentMissing);

    // The filter's snapshot: an erased id it cannot name is hashed, never allowed.
    let filter = guard.filter(FilterSpec::new(training(""), RowFacts::new("user_id"))).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    assert!(snapshot.has_tombstones());
    assert_eq!(snapshot.len(), kept.len());
    assert_eq!(snapshot.entry(leaked[5]).fresh(), ReasonCode::SubjectErased);
    assert_eq!(
        snapshot.entries_of(&[Some(leaked[6]), Some("kept-subject-00001")])[0].unwrap().fresh(),
        ReasonCode::SubjectErased
    );
    assert_eq!(snapshot.entry("never-seen-subject").fresh(), ReasonCode::ConsentMissing);
    assert!(!snapshot.unknown().fresh().is_allow());

    drop(guard);
    // No erased id in any encoding in the store file (its key file aside).
    let search = IdSearch::new(&erased);
    let hits = search.in_dir(dir.path(), &|p: &Path| p.extension().is_some_and(|e| e == "key"));
    assert!(hits.is_empty(), "{} hits, first {:?}", hits.len(), hits.first());
}

/// Where a subject not held would be allowed (a basis other than consent), a snapshot
/// with tombstones tells an erased id from an unknown one, and its blind answer for
/// consumers that cannot hash (SQL, Spark) fails closed.
#[test]
fn a_snapshot_with_tombstones_fails_closed_for_consumers_that_cannot_hash() {
    let store = MemoryConsentStore::new();
    store.append(&lived("gone-subject-1")).unwrap();
    store.append(&[erase("gone-subject-1")]).unwrap();
    let guard = guard_over(store);
    let security = AccessRequest::new("", Purpose::SECURITY, &[DataCategory::DEVICE_INFO][..]);
    let prepared = guard.prepare(&security);
    let unknown = prepared.decide("never-seen-subject").code();
    let gone = prepared.decide("gone-subject-1").code();
    assert!(unknown.is_allow(), "{unknown:?}");
    assert_eq!(gone, ReasonCode::SubjectErased);
    let filter = guard.filter(FilterSpec::new(security.clone(), RowFacts::new("user_id"))).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    assert_eq!(snapshot.entry("never-seen-subject").fresh(), unknown);
    assert_eq!(snapshot.entry("gone-subject-1").fresh(), gone);
    assert_eq!(snapshot.unknown().fresh(), ReasonCode::SubjectErased, "blind answer: fail closed");
}

/// A follower learns of erasures another guard made in the shared store: a subject it
/// held is marked erased, one it never held is answered from the tombstone, and events
/// appended after the erasure do not bring consent back.
#[test]
fn a_follower_learns_of_erasures_made_elsewhere() {
    let store: Arc<dyn ConsentStore> = Arc::new(MemoryConsentStore::new());
    let writer = guard_over(store.clone());
    writer.record_all(&lived("held-subject-1")).unwrap();
    let follower = guard_over(store.clone());
    assert_eq!(follower.check(&training("held-subject-1")).code(), ReasonCode::ConsentGiven);
    let filter = follower.filter(FilterSpec::new(training(""), RowFacts::new("user_id"))).unwrap();
    let mut snapshot = follower.snapshot(&filter).unwrap();
    assert_eq!(snapshot.entry("held-subject-1").fresh(), ReasonCode::ConsentGiven);

    writer.record_all(&lived("other-subject-2")).unwrap();
    writer.record(&erase("held-subject-1")).unwrap();
    writer.record(&erase("other-subject-2")).unwrap();
    // After its erasure a subject consents again: the erasure still stands.
    writer.record_all(&lived("other-subject-2")).unwrap();
    follower.sync().unwrap();
    assert_eq!(follower.check(&training("held-subject-1")).code(), ReasonCode::SubjectErased);
    assert_eq!(follower.check(&training("other-subject-2")).code(), ReasonCode::SubjectErased);
    assert_eq!(writer.check(&training("other-subject-2")).code(), ReasonCode::SubjectErased);
    // A refresh of the snapshot sees the erasure too (it rebuilds: a tombstone names
    // no subject).
    let refreshed = snapshot.refresh(&follower, &filter).unwrap();
    assert!(refreshed.rebuilt);
    assert_eq!(snapshot.entry("held-subject-1").fresh(), ReasonCode::SubjectErased);
    // A guard rebuilt from the store agrees.
    let rebuilt = guard_over(store.clone());
    for id in ["held-subject-1", "other-subject-2"] {
        assert_eq!(rebuilt.check(&training(id)).code(), ReasonCode::SubjectErased, "{id}");
    }
    // The store's history of the re-consenting subject: the erase, then the new events.
    let history = store.history("other-subject-2").unwrap();
    assert_eq!(history.events()[0], erase("other-subject-2"));
    assert_eq!(history.events().len(), 3);
    // A second sync with nothing new changes nothing and reads no tombstone twice.
    assert_eq!(follower.sync().unwrap(), 0);
}

/// A store of format version 1 is refused with a message naming the migration; the
/// migration copies it, and the erased subjects leave no id in the new file.
#[test]
fn a_v1_store_is_refused_and_migrates_without_erased_ids() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.redb");
    let erased: Vec<String> = erased_ids().into_iter().take(100).collect();
    let kept = kept_ids();
    let mut events = Vec::new();
    for id in erased.iter().chain(&kept) {
        events.extend(lived(id));
    }
    events.extend(erased.iter().map(|id| erase(id)));
    // One erased subject consents again after its erasure.
    events.extend(lived(&erased[1]));
    store_v1::write_v1(&old, &events);

    let search = IdSearch::new(&erased);
    assert!(!search.in_file(&old).is_empty(), "the version 1 file holds the ids in plain text");

    let refused = RedbConsentStore::open(&old).expect_err("a version 1 store is refused");
    assert!(refused.to_string().contains("consent-guard store migrate"), "{refused}");
    assert!(!dir.path().join("old.redb.key").exists(), "no key is made for a store that exists");
    let master = MasterKey::generate().unwrap();
    let refused = ReadOnlyRedbStore::open_with_master_key(&old, master.clone()).expect_err("refused read-only too");
    assert!(refused.to_string().contains("consent-guard store migrate"), "{refused}");

    let new = dir.path().join("new.redb");
    let migration = RedbConsentStore::migrate(&old, &new, master.clone()).unwrap();
    assert_eq!(migration.read, events.len() as u64);
    assert_eq!(migration.erasures, erased.len() as u64);
    assert_eq!(migration.subjects_erased, erased.len() as u64);
    assert_eq!(migration.forgotten, 2 * erased.len() as u64);
    assert_eq!(migration.written, migration.read - migration.forgotten);
    assert!(RedbConsentStore::migrate(&old, &new, master.clone()).is_err(), "an existing target is refused");

    let hits = search.in_file(&new);
    // The one subject that consented again is in the new file's events (encrypted, so
    // not in plain text either).
    assert!(hits.is_empty(), "{} hits, first {:?}", hits.len(), hits.first());

    let wrong = RedbConsentStore::open_with_master_key(&new, MasterKey::generate().unwrap()).err();
    assert!(wrong.expect("another master key is refused").to_string().contains("another master key"));
    let store = RedbConsentStore::open_with_master_key(&new, master).unwrap();
    assert_eq!(store.history(&kept[2]).unwrap().events(), lived(&kept[2]).as_slice(), "histories are copied");
    assert_eq!(store.history(&erased[4]).unwrap().events(), [erase(&erased[4])]);
    let guard = guard_over(store);
    for id in &erased {
        assert_eq!(guard.check(&training(id)).code(), ReasonCode::SubjectErased, "{id}");
    }
    for id in &kept {
        assert_eq!(guard.check(&training(id)).code(), ReasonCode::ConsentGiven, "{id}");
    }
}

/// A redb store opened read-only beside the writer answers histories and tombstones
/// with the store's key file, and refuses to make keys.
#[test]
fn the_read_only_store_reads_with_the_key_file_and_makes_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consent.redb");
    let writer = RedbConsentStore::open(&path).unwrap();
    writer.append(&lived("reader-subject-1")).unwrap();
    writer.append(&[erase("reader-subject-2")]).unwrap();
    let reader = ReadOnlyRedbStore::open(&path).unwrap();
    assert_eq!(reader.history("reader-subject-1").unwrap().events().len(), 2);
    assert_eq!(reader.history("reader-subject-2").unwrap().events(), [erase("reader-subject-2")]);
    assert_eq!(reader.tombstones().unwrap().len(), 1);
    let keys = reader.subject_keys().unwrap();
    assert!(keys.key_of("reader-subject-1").unwrap().is_some());
    assert!(keys.keys_for(&["reader-subject-9"]).is_err(), "a reader makes no key");
    std::fs::remove_file(dir.path().join("consent.redb.key")).unwrap();
    assert!(ReadOnlyRedbStore::open(&path).is_err(), "no key file, no reading");
    drop((reader, writer));
    let error = RedbConsentStore::open(&path).expect_err("no key file, no opening");
    assert!(error.to_string().contains("master key"), "{error}");
    assert!(!dir.path().join("consent.redb.key").exists(), "a key made now would not be the store's");
}
