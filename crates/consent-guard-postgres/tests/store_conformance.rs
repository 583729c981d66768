//! One conformance suite for every `ConsentStore`: the obligations of the trait's
//! documentation, checked the same way on the memory store, the redb file and (when
//! `CONSENT_GUARD_POSTGRES_URL` is set; with `CI` set and no URL the PostgreSQL test
//! fails instead of skipping) PostgreSQL.
//!
//! Measurements (ignored by default, release mode):
//! `cargo test --release --test store_conformance -- --ignored --nocapture measure_redb`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use consent_guard::store::{ConsentStore, MemoryConsentStore};
use consent_guard::{
    AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose, ReasonCode,
};

/// Opens the store under test; called again to "restart" (every handle of the previous
/// opening has been dropped by then).
type Open<'a> = &'a dyn Fn() -> Arc<dyn ConsentStore>;

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("bad event {json}: {e}"))
}

fn time(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn grant(subject: &str, at: DateTime<Utc>) -> ConsentEvent {
    event(&format!(
        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"{}","policy_version":"1.0"}}"#,
        at.to_rfc3339()
    ))
}

fn withdraw(subject: &str, at: DateTime<Utc>) -> ConsentEvent {
    event(&format!(
        r#"{{"type":"withdraw","subject":"{subject}","purposes":["ai_training"],"at":"{}"}}"#,
        at.to_rfc3339()
    ))
}

fn base() -> DateTime<Utc> {
    time("2026-01-01T00:00:00Z")
}

fn all(store: &dyn ConsentStore) -> Vec<(u64, ConsentEvent)> {
    store.events_since(0, usize::MAX).unwrap()
}

fn policy() -> Policy {
    Policy::from_toml_file(concat!(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."), "/examples/policies/exmo.toml"))
        .unwrap()
}

fn guard_over(store: Arc<dyn ConsentStore>) -> Guard {
    Guard::builder(policy()).clock(FixedClock::new(time("2026-06-01T00:00:00Z"))).store(store).build().unwrap()
}

fn training(subject: &str) -> AccessRequest<'_> {
    AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized)
}

/// The whole suite, on a store that starts empty.
fn conformance(open: Open<'_>) {
    let store = open();
    empty(&*store);
    positions_and_order(&*store);
    limits(&*store);
    history_at_a_time(&*store);
    subject_keys(&*store);
    erase_forgets(&*store);
    failing_batch(&*store);
    batches_are_atomic_for_readers(&store);
    concurrent_appends(&store);
    proof_of_consent(&*store);
    drop(store);
    guard_after_restart(open);
}

fn empty(store: &dyn ConsentStore) {
    assert!(all(store).is_empty(), "a new store is empty");
    assert_eq!(store.append(&[]).unwrap(), 0, "an empty append returns the last position, 0");
    assert!(store.history("nobody").unwrap().events().is_empty());
    store.wait_for_change(0, std::time::Duration::from_millis(10)).unwrap();
}

fn positions_and_order(store: &dyn ConsentStore) {
    let one = grant("p1", base());
    assert_eq!(store.append(std::slice::from_ref(&one)).unwrap(), 1, "the first position is 1");
    let batch = [grant("p2", base()), withdraw("p1", base() + Duration::days(1)), grant("p3", base())];
    assert_eq!(store.append(&batch).unwrap(), 4, "append returns the position of the batch's last event");
    assert_eq!(store.append(&[]).unwrap(), 4);
    let stored = all(store);
    let positions: Vec<u64> = stored.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    let events: Vec<&ConsentEvent> = stored.iter().map(|(_, e)| e).collect();
    assert_eq!(events, [&one, &batch[0], &batch[1], &batch[2]], "events come back as appended, in order");
}

fn limits(store: &dyn ConsentStore) {
    let at = |after, limit| store.events_since(after, limit).unwrap().iter().map(|(p, _)| *p).collect::<Vec<_>>();
    assert_eq!(at(0, 2), [1, 2]);
    assert_eq!(at(2, 1), [3]);
    assert_eq!(at(1, 100), [2, 3, 4]);
    assert_eq!(at(3, usize::MAX), [4]);
    assert!(at(4, 10).is_empty());
    assert!(at(1, 0).is_empty());
    assert!(at(u64::MAX, 10).is_empty());
    assert!(at(i64::MAX as u64 + 5, 10).is_empty());
}

fn history_at_a_time(store: &dyn ConsentStore) {
    let jan = time("2026-01-02T00:00:00Z");
    let feb = time("2026-02-01T00:00:00Z");
    let mar = time("2026-03-01T00:00:00Z");
    let explicit = event(&format!(
        r#"{{"type":"grant","subject":"h1","purposes":["ai_training"],"level":"explicit","at":"{}","policy_version":"1.0"}}"#,
        jan.to_rfc3339()
    ));
    store.append(std::slice::from_ref(&explicit)).unwrap();
    store.append(&[grant("h2", jan), withdraw("h1", feb)]).unwrap();
    store.append(&[grant("h1", mar)]).unwrap();
    let history = store.history("h1").unwrap();
    assert_eq!(history.subject(), "h1");
    assert_eq!(history.events(), [explicit.clone(), withdraw("h1", feb), grant("h1", mar)]);
    let p = Purpose::AI_TRAINING_MODEL_TRAINING;
    assert!(history.consent_for(&p, jan - Duration::hours(1)).is_none(), "no consent before the grant");
    assert_eq!(history.consent_for(&p, time("2026-01-15T00:00:00Z")).map(|g| g.at), Some(jan));
    assert!(history.consent_for(&p, time("2026-02-15T00:00:00Z")).is_none(), "withdrawn in February");
    let march = history.consent_for(&p, time("2026-03-15T00:00:00Z")).unwrap();
    assert_eq!((march.at, march.level), (mar, consent_guard::ConsentLevel::Separate));
    assert_eq!(store.history("h2").unwrap().events(), [grant("h2", jan)]);
}

/// `keys_for` returns one key per subject, in order, making missing ones; the same key
/// on every call; `key_of` never makes one.
fn subject_keys(store: &dyn ConsentStore) {
    let keys = store.subject_keys().expect("a store that forgets keeps subject keys");
    assert_eq!(keys.key_of("k-never").unwrap(), None);
    assert_eq!(keys.key_of("k-never").unwrap(), None, "key_of made no key");
    let made = keys.keys_for(&["k1", "k2", "k1"]).unwrap();
    assert_eq!(made.len(), 3);
    assert_eq!(made[0], made[2], "one subject, one key, within a call");
    assert_ne!(made[0], made[1], "two subjects, two keys");
    assert_eq!(keys.keys_for(&["k2", "k1"]).unwrap(), [made[1].clone(), made[0].clone()], "stable across calls");
    assert_eq!(keys.key_of("k1").unwrap(), Some(made[0].clone()));
    assert!(keys.keys_for(&[]).unwrap().is_empty());
    // A subject with events may have a key already (a store that encrypts events under
    // it makes one with the first event); `keys_for` gives that one, and keeps it.
    store.append(&[grant("k3", base())]).unwrap();
    let k3 = keys.keys_for(&["k3"]).unwrap().remove(0);
    assert_eq!(keys.key_of("k3").unwrap(), Some(k3.clone()));
    assert_eq!(keys.keys_for(&["k3"]).unwrap(), [k3]);
}

/// An erase destroys the subject's key and every earlier event of it, keeps a
/// tombstone in its stead (skipped by `events_since`, listed by `erasures_since` and
/// `tombstones`), and `history` answers the erase alone, then later events.
fn erase_forgets(store: &dyn ConsentStore) {
    let keys = store.subject_keys().expect("a store that forgets keeps subject keys");
    let born = event(r#"{"type":"subject","subject":"e1","birth_date":"2010-05-01"}"#);
    let other = event(r#"{"type":"subject","subject":"e2","birth_date":"2011-06-01"}"#);
    let aged = event(r#"{"type":"subject","subject":"e1","age":40,"at":"2026-01-01T00:00:00Z"}"#);
    store.append(&[born, other.clone(), aged]).unwrap();
    store.append(&[grant("e1", base())]).unwrap();
    let old_key = keys.keys_for(&["e1"]).unwrap().remove(0);
    let before = store.append(&[]).unwrap();
    assert!(store.tombstones().unwrap().erased_at("e1").is_none());

    let erased = event(r#"{"type":"erase","subject":"e1","at":"2026-04-01T00:00:00Z"}"#);
    let at_ms = time("2026-04-01T00:00:00Z").timestamp_millis();
    let position = store.append(std::slice::from_ref(&erased)).unwrap();
    assert_eq!(position, before + 1, "the erase takes a position");
    assert_eq!(keys.key_of("e1").unwrap(), None, "the erase destroyed the key");
    assert_eq!(store.history("e1").unwrap().events(), std::slice::from_ref(&erased), "only the erase, rebuilt");
    assert_eq!(store.history("e2").unwrap().events(), [other], "other subjects keep their events");
    assert!(all(store).iter().all(|(_, e)| e.subject() != "e1"), "no event of e1 left");
    assert!(all(store).iter().all(|(p, _)| *p != position), "events_since skips the tombstone");
    let erasures = store.erasures_since(before).unwrap();
    assert_eq!(erasures.iter().map(|(p, _, at)| (*p, *at)).collect::<Vec<_>>(), [(position, at_ms)]);
    assert!(store.erasures_since(position).unwrap().is_empty());
    let tombstones = store.tombstones().unwrap();
    assert_eq!(tombstones.erased_at("e1"), Some(at_ms));
    assert_eq!(tombstones.erased_at("e2"), None);
    assert_eq!(tombstones.get(&erasures[0].1), Some(at_ms), "the listed locator is the tombstone's");

    // Events after the erasure are kept as usual, under a new key.
    let later = event(r#"{"type":"subject","subject":"e1","age":41,"at":"2026-05-01T00:00:00Z"}"#);
    let last = store.append(std::slice::from_ref(&later)).unwrap();
    assert_eq!(last, position + 1, "positions stay dense");
    assert_eq!(store.history("e1").unwrap().events(), [erased.clone(), later.clone()]);
    let new_key = keys.keys_for(&["e1"]).unwrap().remove(0);
    assert_ne!(new_key, old_key, "a key after the erasure is not the old one");
    assert_eq!(store.events_since(before, 10).unwrap().iter().map(|(p, _)| *p).collect::<Vec<_>>(), [last]);
    let json = serde_json::to_string(&store.history("e1").unwrap()).unwrap();
    assert!(!json.contains("2010-05-01") && !json.contains("\"age\":40"), "{json}");
}

/// A batch whose last event a store may refuse (PostgreSQL refuses NUL in text): the
/// batch is stored whole or not at all.
fn failing_batch(store: &dyn ConsentStore) {
    let before = all(store);
    let last_before = store.append(&[]).unwrap();
    let mut nul = grant("fb", base());
    if let ConsentEvent::Grant(g) = &mut nul {
        g.subject = "fb\u{0}nul".to_owned();
    }
    let batch = [grant("fb1", base()), grant("fb2", base()), nul];
    match store.append(&batch) {
        Ok(last) => {
            let stored = store.events_since(last_before, usize::MAX).unwrap();
            assert_eq!(stored.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(), batch);
            assert_eq!(stored.last().map(|(p, _)| *p), Some(last));
        }
        Err(error) => {
            eprintln!("the store refused the batch: {error}");
            assert_eq!(all(store), before, "a refused batch leaves nothing behind");
            assert!(store.history("fb1").unwrap().events().is_empty());
            let next = store.append(&[grant("fb3", base())]).unwrap();
            assert!(next > last_before, "positions keep increasing after a refused batch");
        }
    }
}

/// A reader sees every batch whole or not at all while a writer appends.
fn batches_are_atomic_for_readers(store: &Arc<dyn ConsentStore>) {
    const BATCHES: usize = 25;
    const SIZE: usize = 20;
    let start = store.append(&[]).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for b in 0..BATCHES {
                let batch: Vec<ConsentEvent> =
                    (0..SIZE).map(|i| grant(&format!("atomic-{b}"), base() + Duration::seconds(i as i64))).collect();
                store.append(&batch).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        let mut reads = 0;
        loop {
            let finished = done.load(Ordering::Acquire);
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for (_, e) in store.events_since(start, usize::MAX).unwrap() {
                *counts.entry(e.subject().to_owned()).or_default() += 1;
            }
            for (subject, count) in &counts {
                assert_eq!(*count, SIZE, "{subject}: a reader saw part of a batch");
            }
            reads += 1;
            if finished {
                assert_eq!(counts.len(), BATCHES);
                break;
            }
        }
        assert!(reads > 1);
    });
}

/// Several threads append at once: nothing lost, nothing doubled, each thread's events
/// in its order, each batch on consecutive positions, and a reader following with
/// `events_since` and small limits misses nothing.
fn concurrent_appends(store: &Arc<dyn ConsentStore>) {
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    let start = store.append(&[]).unwrap();
    let done = AtomicBool::new(false);
    let mut followed: Vec<u64> = Vec::new();
    let mut returned: Vec<(usize, u64, usize)> = Vec::new();
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for r in 0..ROUNDS {
                        let size = 1 + r % 3;
                        let batch: Vec<ConsentEvent> = (0..size)
                            .map(|i| grant(&format!("c{t}"), base() + Duration::seconds((r * 10 + i) as i64)))
                            .collect();
                        let last = store.append(&batch).unwrap();
                        mine.push((t, last, size));
                    }
                    mine
                })
            })
            .collect();
        let follower = s.spawn(|| {
            let mut after = start;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::Acquire);
                let batch = store.events_since(after, 7).unwrap();
                if let Some((last, _)) = batch.last() {
                    after = *last;
                    seen.extend(batch.iter().map(|(p, _)| *p));
                } else if finished {
                    return seen;
                }
            }
        });
        for writer in writers {
            returned.extend(writer.join().unwrap());
        }
        done.store(true, Ordering::Release);
        followed = follower.join().unwrap();
    });

    let stored = store.events_since(start, usize::MAX).unwrap();
    let expected = THREADS * (0..ROUNDS).map(|r| 1 + r % 3).sum::<usize>();
    assert_eq!(stored.len(), expected, "no event lost or doubled");
    let positions: Vec<u64> = stored.iter().map(|(p, _)| *p).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions strictly increase");
    assert_eq!(followed, positions, "a follower reading with small limits saw every position once");
    let unique: BTreeSet<u64> = returned.iter().map(|(_, last, _)| *last).collect();
    assert_eq!(unique.len(), returned.len(), "every append returned its own position");
    for (t, last, size) in &returned {
        let batch = store.events_since(last - *size as u64, *size).unwrap();
        assert_eq!(batch.len(), *size);
        assert!(batch.iter().all(|(_, e)| e.subject() == format!("c{t}")), "a batch holds consecutive positions");
    }
    for t in 0..THREADS {
        let times: Vec<DateTime<Utc>> =
            stored.iter().filter(|(_, e)| e.subject() == format!("c{t}")).filter_map(|(_, e)| e.at()).collect();
        assert_eq!(times.len(), (0..ROUNDS).map(|r| 1 + r % 3).sum::<usize>());
        assert!(times.windows(2).all(|w| w[0] < w[1]), "thread {t}'s events kept its order");
        assert_eq!(store.history(&format!("c{t}")).unwrap().events().len(), times.len());
    }
}

/// A subject's history exports to JSON with every event, its level and policy version.
fn proof_of_consent(store: &dyn ConsentStore) {
    let history = store.history("h1").unwrap();
    let json = serde_json::to_value(&history).unwrap();
    assert_eq!(json["subject"], "h1");
    let events = json["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events.iter().map(|e| e["type"].as_str().unwrap()).collect::<Vec<_>>(), ["grant", "withdraw", "grant"]);
    assert_eq!((events[0]["level"].as_str(), events[0]["policy_version"].as_str()), (Some("explicit"), Some("1.0")));
    assert_eq!((events[2]["level"].as_str(), events[2]["policy_version"].as_str()), (Some("separate"), Some("1.0")));
    assert_eq!(events[1]["at"], "2026-02-01T00:00:00Z");
    let back: consent_guard::ConsentHistory = serde_json::from_value(json).unwrap();
    assert_eq!(back, history, "the export reads back as the same history");
}

/// A guard built over the store replays it, appends through it, and a guard built
/// after a restart decides the same.
fn guard_after_restart(open: Open<'_>) {
    let decisions =
        |guard: &Guard| ["g1", "g2", "g3", "h1", "e1", "nobody"].map(|subject| guard.check(&training(subject)).code());
    let expected = [
        ReasonCode::ConsentGiven,
        ReasonCode::ConsentWithdrawn,
        ReasonCode::SubjectErased,
        ReasonCode::ConsentGiven,
        ReasonCode::SubjectErased,
        ReasonCode::ConsentMissing,
    ];
    let before = {
        let guard = guard_over(open());
        assert!(guard.subjects() > 10, "the guard replayed the store");
        guard.record(&grant("g1", base())).unwrap();
        guard.record_all(&[grant("g2", base()), withdraw("g2", base() + Duration::days(30))]).unwrap();
        guard
            .record_all(&[grant("g3", base()), event(r#"{"type":"erase","subject":"g3","at":"2026-03-01T00:00:00Z"}"#)])
            .unwrap();
        let before = decisions(&guard);
        assert_eq!(before, expected);
        assert_eq!(guard.history("g2").unwrap().events().len(), 2);
        guard.sync().unwrap();
        assert_eq!(decisions(&guard), expected, "a sync does not apply the guard's own appends twice");
        before
    };
    let guard = guard_over(open());
    assert_eq!(decisions(&guard), before, "a guard over the reopened store decides the same");
    assert_eq!(guard.history("g1").unwrap().events(), [grant("g1", base())]);
}

#[test]
fn memory_store() {
    let store: Arc<dyn ConsentStore> = Arc::new(MemoryConsentStore::new());
    conformance(&|| store.clone());
}
#[test]
fn redb_store() {
    use consent_guard::store::RedbConsentStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conformance.redb");
    conformance(&|| Arc::new(RedbConsentStore::open(&path).unwrap()));
}
#[test]
fn postgres_store() {
    use consent_guard_postgres::PostgresConsentStore;
    let Some(db) = pg::FreshDatabase::create("conformance") else { return };
    conformance(&|| Arc::new(PostgresConsentStore::connect(&db.url).unwrap()));
}

/// A fresh database per test run, dropped afterwards; fails under `CI` without a server.
#[path = "pg_support/mod.rs"]
mod pg;

/// Appends per second (single events, batches of 100 and 1000), time to warm a guard
/// from 1,000,000 events, bytes on disk per event.
#[test]
#[ignore = "measurement; run in release mode with --ignored --nocapture"]
fn measure_redb() {
    use consent_guard::store::RedbConsentStore;
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let mixed = |n: u64| -> ConsentEvent {
        let subject = format!("user-{:07}", n % 100_000);
        let at = base() + Duration::seconds(n as i64);
        if n % 10 == 9 {
            withdraw(&subject, at)
        } else {
            grant(&subject, at)
        }
    };
    let rate = |label: &str, batch: usize, batches: usize| {
        let path = dir.path().join(format!("rate-{batch}.redb"));
        let store = RedbConsentStore::open(&path).unwrap();
        let events: Vec<ConsentEvent> = (0..(batch * batches) as u64).map(mixed).collect();
        let started = Instant::now();
        for chunk in events.chunks(batch) {
            store.append(chunk).unwrap();
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "redb {label}: {} events in {seconds:.3} s = {:.0} events/s ({:.2} ms per append)",
            events.len(),
            events.len() as f64 / seconds,
            seconds * 1000.0 / batches as f64
        );
    };
    rate("single", 1, 500);
    rate("batch 100", 100, 100);
    rate("batch 1000", 1000, 50);

    const TOTAL: u64 = 1_000_000;
    let path = dir.path().join("million.redb");
    {
        let store = RedbConsentStore::open(&path).unwrap();
        let started = Instant::now();
        for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(10_000) {
            let batch: Vec<ConsentEvent> = chunk.iter().map(|n| mixed(*n)).collect();
            store.append(&batch).unwrap();
        }
        println!("redb: wrote {TOTAL} events in batches of 10000 in {:.1} s", started.elapsed().as_secs_f64());
    }
    let bytes = std::fs::metadata(&path).unwrap().len();
    println!("redb: file {bytes} bytes = {:.0} bytes per event", bytes as f64 / TOTAL as f64);
    let started = Instant::now();
    let store = RedbConsentStore::open(&path).unwrap();
    let opened = started.elapsed();
    let guard = Guard::builder(policy()).store(store).build().unwrap();
    let warmed = started.elapsed();
    assert_eq!(guard.subjects(), 100_000);
    println!(
        "redb: open (integrity check) {:.2} s, guard warm from {TOTAL} events {:.2} s in all",
        opened.as_secs_f64(),
        warmed.as_secs_f64()
    );
    let started = Instant::now();
    let history = guard.history("user-0000042").unwrap();
    println!("redb: history of one subject ({} events) in {:?}", history.events().len(), started.elapsed());
}
