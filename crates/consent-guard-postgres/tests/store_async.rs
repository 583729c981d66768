//! The PostgreSQL store from async code: a guard built, recorded to, synced and
//! checked inside tokio, without blocking the runtime's workers, and the blocking API
//! usable there too (no "cannot start a runtime from within a runtime" panic).
//!
//! Needs `CONSENT_GUARD_POSTGRES_URL`, as `tests/store_postgres.rs`; fails under `CI`
//! without it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

#[path = "pg_support/mod.rs"]
mod pg_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, Guard, Policy, Purpose, ReasonCode};
use consent_guard_postgres::PostgresConsentStore;
use pg_support::FreshDatabase;

fn policy() -> Policy {
    Policy::from_toml_file(concat!(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."), "/examples/policies/exmo.toml"))
        .unwrap()
}

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap()
}

fn grant(subject: &str) -> ConsentEvent {
    event(&format!(
        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}}"#
    ))
}

fn withdraw(subject: &str) -> ConsentEvent {
    event(&format!(
        r#"{{"type":"withdraw","subject":"{subject}","purposes":["ai_training"],"at":"2026-05-01T00:00:00Z"}}"#
    ))
}

fn training(guard: &Guard, subject: &str) -> ReasonCode {
    let request = AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized);
    guard.check(&request).code()
}

/// Connect, build, record, sync and read history from async code; the check is the
/// plain synchronous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_on_postgres_from_async_code() {
    let Some(db) = FreshDatabase::create("async") else { return };
    let store = PostgresConsentStore::connect_async(&db.url).await.unwrap();
    // Checks below come right after syncs, but a loaded machine may be slow between.
    let guard =
        Guard::builder(policy()).store(store).max_staleness(Duration::from_secs(600)).build_async().await.unwrap();
    guard.record_async(&grant("a1")).await.unwrap();
    assert_eq!(training(&guard, "a1"), ReasonCode::ConsentGiven);

    // Another replica, also async, sees it and records a withdrawal.
    let other = Guard::builder(policy())
        .store(PostgresConsentStore::connect_async(&db.url).await.unwrap())
        .max_staleness(Duration::from_secs(600));
    let other = other.build_async().await.unwrap();
    assert_eq!(training(&other, "a1"), ReasonCode::ConsentGiven);
    other.record_all_async(&[withdraw("a1"), grant("a2")]).await.unwrap();
    assert_eq!(guard.sync_async().await.unwrap(), 2);
    assert_eq!(training(&guard, "a1"), ReasonCode::ConsentWithdrawn);
    assert_eq!(training(&guard, "a2"), ReasonCode::ConsentGiven);
    // A sync with nothing new, and our own events not applied twice.
    guard.record_async(&grant("a3")).await.unwrap();
    assert_eq!(guard.sync_async().await.unwrap(), 0);
    assert_eq!(guard.subjects(), 3);
    assert_eq!(guard.history_async("a1").await.unwrap().events().len(), 2);

    // Follow runs on a thread of its own beside the runtime.
    let guard = Arc::new(guard);
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (guard, stop) = (guard.clone(), stop.clone());
        std::thread::spawn(move || guard.follow(Duration::from_millis(100), &stop))
    };
    other.record_async(&withdraw("a2")).await.unwrap();
    let mut seen = false;
    for _ in 0..200 {
        if training(&guard, "a2") == ReasonCode::ConsentWithdrawn {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Release);
    follower.join().unwrap();
    assert!(seen, "the follower did not apply the other replica's withdrawal");
}

/// While an append waits on the database (here: on the append lock another session
/// holds until the runtime has ticked ten times), a single-threaded runtime keeps
/// running its other tasks. The lock is released on the runtime's ticks, not after a
/// fixed time, so a loaded machine cannot make the append skip the wait (issue 30).
#[tokio::test(flavor = "current_thread")]
async fn an_append_does_not_block_the_runtime() {
    let Some(db) = FreshDatabase::create("nonblocking") else { return };
    // A generous staleness bound: this test is about the runtime, not time.
    let guard = Guard::builder(policy())
        .store(PostgresConsentStore::connect_async(&db.url).await.unwrap())
        .max_staleness(Duration::from_secs(600));
    let guard = guard.build_async().await.unwrap();
    let ticks = std::sync::Arc::new(AtomicUsize::new(0));
    let locked = std::sync::mpsc::channel();
    let holder = {
        let url = db.url.clone();
        let locked = locked.0;
        let ticks = std::sync::Arc::clone(&ticks);
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut txn = client.transaction().unwrap();
            txn.execute("SELECT pg_advisory_xact_lock($1)", &[&0x6367_2d65_7665_6e74_i64]).unwrap();
            locked.send(()).unwrap();
            // A hang guard only: a blocked runtime never ticks, and the assertion
            // below then fails instead of the test hanging.
            let started = std::time::Instant::now();
            while ticks.load(Ordering::Relaxed) < 10 && started.elapsed() < Duration::from_secs(120) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let releasing = std::time::Instant::now();
            txn.commit().unwrap();
            releasing
        })
    };
    locked.1.recv().unwrap();
    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            ticks.fetch_add(1, Ordering::Relaxed);
        }
    };
    let started = std::time::Instant::now();
    let event = grant("n1");
    tokio::select! {
        result = guard.record_async(&event) => result.unwrap(),
        () = ticker => unreachable!(),
    }
    let finished = std::time::Instant::now();
    let releasing = holder.join().unwrap();
    let ticks = ticks.load(Ordering::Relaxed);
    println!("append waited {:?} on the lock; the runtime ticked {ticks} times meanwhile", finished - started);
    assert!(finished >= releasing, "the append did not wait for the lock");
    assert!(ticks >= 10, "the runtime was blocked: {ticks} ticks while the append waited");
    assert_eq!(training(&guard, "n1"), ReasonCode::ConsentGiven);
}

/// The blocking API inside a runtime, as the first line of a `#[tokio::main]` service
/// would call it: it works (and blocks only the calling worker), and dropping the
/// store there does not panic either.
#[tokio::test(flavor = "current_thread")]
async fn the_blocking_api_inside_a_runtime_does_not_panic() {
    let Some(db) = FreshDatabase::create("blocking") else { return };
    let store = PostgresConsentStore::connect(&db.url).unwrap();
    let guard = Guard::builder(policy()).store(store).build().unwrap();
    guard.record(&grant("b1")).unwrap();
    assert_eq!(guard.sync().unwrap(), 0);
    assert_eq!(training(&guard, "b1"), ReasonCode::ConsentGiven);
    drop(guard);
}
