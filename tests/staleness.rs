//! Bounded staleness: a guard over a store other processes write answers from its
//! state only for `max_staleness` after the store last confirmed it current, measured
//! on the guard's clock; past that, consent-dependent checks deny with
//! `consent_state_unavailable`, and the next successful sync restores them. No server
//! needed: a memory store that says it is shared stands in for PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use consent_guard::error::StoreError;
use consent_guard::store::{ConsentStore, MemoryConsentStore};
use consent_guard::{
    AccessRequest, ConsentEvent, ConsentHistory, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose,
    ReasonCode,
};

/// A memory store shared between guards, as a database is between replicas, that can
/// be made to fail.
#[derive(Debug, Default)]
struct Shared {
    events: MemoryConsentStore,
    down: AtomicBool,
}

impl Shared {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Acquire) {
            Err(StoreError::new("store down"))
        } else {
            Ok(())
        }
    }
}

impl ConsentStore for Shared {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        self.check()?;
        self.events.append(events)
    }
    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        self.check()?;
        self.events.history(subject)
    }
    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        self.check()?;
        self.events.events_since(after, limit)
    }
    // `shared` keeps the default: true.
}

fn policy() -> Policy {
    Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap()
}

fn grant(subject: &str) -> ConsentEvent {
    serde_json::from_str(&format!(
        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}}"#
    ))
    .unwrap()
}

fn training(subject: &str) -> AccessRequest<'_> {
    AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized)
}

fn t0() -> DateTime<Utc> {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn ms(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

#[test]
fn past_max_staleness_consent_checks_deny_until_a_sync() {
    let store = Arc::new(Shared::default());
    let writer = Guard::builder(policy()).store(store.clone()).build().unwrap();
    writer.record(&grant("s1")).unwrap();
    let clock = Arc::new(FixedClock::new(t0()));
    let reader = Guard::builder(policy()).clock(clock.clone()).store(store.clone()).build().unwrap();
    assert_eq!(reader.max_staleness(), Some(Duration::from_secs(1)), "the documented default");
    let request = training("s1");
    let past = training("s1").at(t0() - TimeDelta::days(30));
    let security = AccessRequest::new("s1", Purpose::COMPLIANCE_LEGAL_OBLIGATION, &[DataCategory::DEVICE_INFO][..]);
    let template = training("");
    let prepared = reader.prepare(&template);

    clock.set(t0() + ms(999));
    assert_eq!(reader.check(&request).code(), ReasonCode::ConsentGiven);
    assert_eq!(prepared.check("s1").code(), ReasonCode::ConsentGiven);

    clock.set(t0() + ms(1000));
    assert_eq!(reader.check(&request).code(), ReasonCode::ConsentStateUnavailable);
    assert_eq!(prepared.check("s1").code(), ReasonCode::ConsentStateUnavailable);
    assert_eq!(
        reader.check(&past).code(),
        ReasonCode::ConsentStateUnavailable,
        "a stale state does not answer for the past either"
    );
    assert!(reader.check(&security).allowed(), "a legal obligation does not depend on consent");

    // The store answers again: the next sync confirms the state, as of its start.
    reader.sync().unwrap();
    assert_eq!(reader.check(&request).code(), ReasonCode::ConsentGiven);
    clock.set(t0() + ms(1999));
    assert_eq!(reader.check(&request).code(), ReasonCode::ConsentGiven);
    clock.set(t0() + ms(2000));
    assert_eq!(reader.check(&request).code(), ReasonCode::ConsentStateUnavailable);

    // A failed sync closes at once, and does not extend anything.
    reader.sync().unwrap();
    store.down.store(true, Ordering::Release);
    assert!(reader.sync().is_err());
    assert_eq!(reader.check(&request).code(), ReasonCode::ConsentStateUnavailable);
    store.down.store(false, Ordering::Release);
    reader.sync().unwrap();
    assert_eq!(reader.check(&request).code(), ReasonCode::ConsentGiven);
}

#[test]
fn the_bound_is_configurable_and_ignored_for_stores_nobody_else_writes() {
    let clock = Arc::new(FixedClock::new(t0()));
    let store = Arc::new(Shared::default());
    let guard = Guard::builder(policy())
        .clock(clock.clone())
        .store(store.clone())
        .max_staleness(Duration::from_secs(5))
        .build()
        .unwrap();
    guard.record(&grant("s2")).unwrap();
    clock.set(t0() + ms(4999));
    assert_eq!(guard.check(&training("s2")).code(), ReasonCode::ConsentGiven);
    clock.set(t0() + ms(5000));
    assert_eq!(guard.check(&training("s2")).code(), ReasonCode::ConsentStateUnavailable);

    // A memory store (or the embedded file) is written by this process only.
    let local = Guard::builder(policy()).clock(clock.clone()).store(MemoryConsentStore::new()).build().unwrap();
    assert_eq!(local.max_staleness(), None);
    local.record(&grant("s3")).unwrap();
    clock.set(t0() + TimeDelta::days(365));
    assert_eq!(local.check(&training("s3")).code(), ReasonCode::ConsentGiven);
}

/// `follow` keeps a healthy guard fresh on the system clock, and a store that stops
/// answering closes it within the bound.
#[test]
fn follow_keeps_the_state_fresh_and_a_dead_store_closes_it_within_the_bound() {
    let store = Arc::new(Shared::default());
    let guard =
        Guard::builder(policy()).store(store.clone()).max_staleness(Duration::from_millis(400)).build().unwrap();
    guard.record(&grant("s4")).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The interval asked for is longer than the bound: follow shortens its waits.
        s.spawn(|| guard.follow(Duration::from_secs(5), &stop));
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(guard.check(&training("s4")).code(), ReasonCode::ConsentGiven);
        }
        store.down.store(true, Ordering::Release);
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(guard.check(&training("s4")).code(), ReasonCode::ConsentStateUnavailable);
        store.down.store(false, Ordering::Release);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(guard.check(&training("s4")).code(), ReasonCode::ConsentGiven);
        stop.store(true, Ordering::Release);
    });
}

/// Past `max_staleness` the batches and a filter's snapshot deny as single checks do
/// (issue 31: they decide from grouped reads, the snapshot all its probes from one
/// read of each subject, and judge the state's age once per group).
#[test]
fn past_max_staleness_batches_and_snapshots_deny_too() {
    use consent_guard::filter::{Apply, FilterSpec, RowFacts};
    let store = Arc::new(Shared::default());
    let writer = Guard::builder(policy()).store(store.clone()).build().unwrap();
    let subjects: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
    for subject in &subjects {
        writer.record(&grant(subject)).unwrap();
    }
    let clock = Arc::new(FixedClock::new(t0()));
    let reader = Guard::builder(policy()).clock(clock.clone()).store(store.clone()).build().unwrap();
    let template = training("");
    let prepared = reader.prepare(&template);
    let handles: Vec<_> = subjects.iter().map(|s| reader.subject_handle(s)).collect();
    let filter = reader.filter(FilterSpec::new(training(""), RowFacts::new("user_id"))).unwrap();
    let codes = |at: DateTime<Utc>| {
        clock.set(at);
        let batch: Vec<ReasonCode> = prepared.check_batch(&subjects).iter().map(|d| d.code()).collect();
        let by_handle: Vec<ReasonCode> = prepared.check_handles(&handles).iter().map(|d| d.code()).collect();
        let snapshot = reader.snapshot(&filter).unwrap();
        let application = filter.apply(&snapshot, at, Apply::Live).unwrap();
        let filtered: Vec<ReasonCode> = subjects.iter().map(|s| application.code(Some(s), None, None)).collect();
        (batch, by_handle, filtered)
    };
    let given = vec![ReasonCode::ConsentGiven; subjects.len()];
    let unavailable = vec![ReasonCode::ConsentStateUnavailable; subjects.len()];
    assert_eq!(codes(t0() + ms(999)), (given.clone(), given.clone(), given.clone()));
    assert_eq!(codes(t0() + ms(1000)), (unavailable.clone(), unavailable.clone(), unavailable));
    reader.sync().unwrap();
    assert_eq!(codes(t0() + ms(1001)), (given.clone(), given.clone(), given));
}
