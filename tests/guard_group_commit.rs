//! Group commit through the guard: concurrent `Guard::record` calls on the embedded store
//! share write transactions (issue 15, item 2), each caller returns once its own event
//! is durable and applied, and a restarted guard sees exactly what the running one saw.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail loudly")]
#![cfg(feature = "redb")]

use std::sync::Arc;

use consent_guard::store::RedbConsentStore;
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose};

fn policy() -> Policy {
    Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap()
}

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap()
}

fn training(subject: &str) -> AccessRequest<'_> {
    AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized)
}

#[test]
fn concurrent_records_share_commits_and_are_seen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consent.redb");
    let now = "2026-06-01T00:00:00Z".parse().unwrap();
    let guard = Arc::new(
        Guard::builder(policy())
            .clock(FixedClock::new(now))
            .store(RedbConsentStore::open(&path).unwrap())
            .build()
            .unwrap(),
    );
    let (threads, each): (usize, usize) = (32, 10);
    let before = RedbConsentStore::commits();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let guard = Arc::clone(&guard);
            std::thread::spawn(move || {
                for i in 0..each {
                    let subject = format!("t{t}-{i}");
                    let grant = format!(
                        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}}"#
                    );
                    guard.record(&event(&grant)).unwrap();
                    // Acknowledged, so applied: the next check on any thread sees it.
                    assert!(guard.check(&training(&subject)).allowed(), "{subject}");
                    if i % 3 == 0 {
                        let withdraw = format!(
                            r#"{{"type":"withdraw","subject":"{subject}","purposes":["ai_training"],"at":"2026-03-01T00:00:00Z"}}"#
                        );
                        guard.record(&event(&withdraw)).unwrap();
                        assert!(!guard.check(&training(&subject)).allowed(), "{subject} after its withdrawal");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let events = threads * (each + each.div_ceil(3));
    let commits = RedbConsentStore::commits() - before;
    eprintln!("{events} events recorded by {threads} threads in {commits} commits");
    assert!(commits < events as u64, "{commits} commits for {events} events: no group commit");
    drop(guard);

    // A restart replays the store in its order and decides as the running guard did.
    let restarted = Guard::builder(policy())
        .clock(FixedClock::new(now))
        .store(RedbConsentStore::open(&path).unwrap())
        .build()
        .unwrap();
    assert_eq!(restarted.subjects(), threads * each);
    for t in 0..threads {
        for i in 0..each {
            let subject = format!("t{t}-{i}");
            assert_eq!(restarted.check(&training(&subject)).allowed(), i % 3 != 0, "{subject}");
        }
    }
}
