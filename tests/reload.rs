//! Hot policy reload: a `GuardHandle` swaps its policy under running checks and
//! recorders; no check sees half of a swap, consent carries over, and a swap the new
//! policy cannot honour changes nothing.
#![cfg(feature = "reload")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_guard::reload::{GuardHandle, ReloadError};
use consent_guard::store::MemoryConsentStore;
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, Guard, Policy, Purpose, ReasonCode};

const EXMO: &str = include_str!("../examples/policies/exmo.toml");

/// The seed policy at `version`, with its security clause renamed after the version:
/// two policies whose decisions say which one decided.
fn exmo(version: &str) -> Policy {
    let text = EXMO.replacen("version = \"1.0\"", &format!("version = \"{version}\""), 1).replacen(
        "id = \"exmo.security\"",
        &format!("id = \"exmo.security.v{version}\""),
        1,
    );
    Policy::from_toml_str(&text, "exmo.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn event(line: &str) -> ConsentEvent {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn grant(subject: &str) -> ConsentEvent {
    event(&format!(
        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}}"#
    ))
}

fn withdraw(subject: &str) -> ConsentEvent {
    event(&format!(
        r#"{{"type":"withdraw","subject":"{subject}","purposes":["ai_training"],"at":"2026-01-03T00:00:00Z"}}"#
    ))
}

fn training(subject: &str) -> AccessRequest<'_> {
    AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized)
}

/// Eight threads check while one swaps to ever newer policy versions as fast as it can and two
/// more record withdrawals: every decision's version and clause come from one policy,
/// granted consent holds across every swap, and a withdrawal recorded (through the
/// handle) before a check is seen by it, whichever guard runs the check.
#[test]
fn no_check_sees_half_of_a_swap() {
    let handle = Arc::new(GuardHandle::build(Guard::builder(exmo("1.0")).store(MemoryConsentStore::new())).unwrap());
    handle.record(&grant("kept")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let mut threads = Vec::new();
    for _ in 0..8 {
        let (handle, stop, checks, seen) = (handle.clone(), stop.clone(), checks.clone(), seen.clone());
        threads.push(std::thread::spawn(move || {
            let security = AccessRequest::new("anyone", Purpose::SECURITY, &[DataCategory::DEVICE_INFO][..]);
            while !stop.load(Ordering::Acquire) {
                let guard = handle.load();
                let decision = guard.check(&security);
                assert!(decision.allowed(), "{}", decision.message());
                let version = decision.policy_version().to_owned();
                assert_eq!(decision.clause(), Some(format!("exmo.security.v{version}").as_str()));
                let minor: usize = version.trim_start_matches("1.").parse().unwrap();
                seen[minor % 2].fetch_add(1, Ordering::Relaxed);
                let kept = training("kept");
                let guard = handle.load();
                let decision = guard.check(&kept);
                assert!(decision.allowed(), "consent lost in a swap: {}", decision.message());
                checks.fetch_add(2, Ordering::Relaxed);
            }
        }));
    }
    for recorder in 0..2 {
        let (handle, stop) = (handle.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let subject = format!("r{recorder}-{n}");
                handle.record(&grant(&subject)).unwrap();
                handle.record(&withdraw(&subject)).unwrap();
                let (guard, request) = (handle.load(), training(&subject));
                let decision = guard.check(&request);
                assert_eq!(decision.code(), ReasonCode::ConsentWithdrawn, "{}", decision.message());
                n += 1;
            }
        }));
    }
    let started = Instant::now();
    let mut swaps = 0;
    while started.elapsed() < Duration::from_secs(3) {
        // Upwards only: a grant stamped with a version cannot be read by an older one.
        handle.swap_policy(exmo(&format!("1.{}", swaps + 1))).unwrap();
        swaps += 1;
    }
    stop.store(true, Ordering::Release);
    for thread in threads {
        thread.join().unwrap();
    }
    let checks = checks.load(Ordering::Relaxed);
    let (old, new) = (seen[0].load(Ordering::Relaxed), seen[1].load(Ordering::Relaxed));
    eprintln!(
        "{swaps} swaps, {checks} checks ({old} on even, {new} on odd versions), {} subjects",
        handle.load().subjects()
    );
    assert!(swaps >= 4 && old > 0 && new > 0, "{swaps} swaps, {old}/{new} checks");
}

/// A swap to a policy that cannot apply a stored event fails and leaves the running
/// guard as it was; the quarantining swap goes through and fails that subject closed.
#[test]
fn a_swap_the_new_policy_cannot_honour_changes_nothing() {
    let handle = GuardHandle::build(Guard::builder(exmo("1.1")).store(MemoryConsentStore::new())).unwrap();
    handle.record(&grant("u1")).unwrap();
    handle.record(&grant("u2")).unwrap();
    // u1's grant was stamped with 1.1; 1.0 cannot know its terms.
    let error = handle.swap_policy(exmo("1.0")).unwrap_err();
    let ReloadError::Unapplicable(events) = &error else { panic!("{error}") };
    assert_eq!(events.len(), 2, "{error}");
    assert!(error.to_string().contains("later than"), "{error}");
    let running = handle.load();
    assert_eq!(running.policy().version(), "1.1");
    assert!(running.check(&training("u1")).allowed());

    let retired = handle.swap_policy_quarantining(exmo("1.0")).unwrap();
    assert_eq!(retired.policy().version(), "1.1");
    let running = handle.load();
    assert_eq!((running.policy().version(), running.quarantined().len()), ("1.0", 2));
    assert_eq!(running.check(&training("u1")).code(), ReasonCode::ConsentStateUnavailable);
    // Back on 1.1, the events apply again.
    handle.swap_policy(exmo("1.1")).unwrap();
    assert!(handle.load().check(&training("u1")).allowed());
}

/// A guard without a store gets an in-memory one from the handle, so consent carries
/// over; one that already holds consent without keeping events cannot be swapped.
#[test]
fn store_less_guards() {
    let handle = GuardHandle::new(Guard::new(exmo("1.0")));
    handle.record(&grant("u1")).unwrap();
    handle.swap_policy(exmo("1.1")).unwrap();
    assert!(handle.load().check(&training("u1")).allowed());
    assert_eq!(handle.history("u1").unwrap().events().len(), 1);

    let guard = Guard::new(exmo("1.0"));
    guard.record(&grant("u1")).unwrap();
    let handle = GuardHandle::new(guard);
    assert!(matches!(handle.swap_policy(exmo("1.1")), Err(ReloadError::NotReplayable)));
    assert!(handle.load().check(&training("u1")).allowed());
}

/// Async recording through the handle, across a swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_records_cross_a_swap() {
    let handle = Arc::new(GuardHandle::build(Guard::builder(exmo("1.0"))).unwrap());
    let writer = {
        let handle = handle.clone();
        tokio::spawn(async move {
            for n in 0..200 {
                let subject = format!("a{n}");
                handle.record_async(&grant(&subject)).await.unwrap();
                assert!(handle.load().check(&training(&subject)).allowed());
            }
        })
    };
    for n in 0..20 {
        let handle = handle.clone();
        tokio::task::spawn_blocking(move || handle.swap_policy(exmo(&format!("1.{}", n + 1))).unwrap()).await.unwrap();
    }
    writer.await.unwrap();
    assert_eq!(handle.load().subjects(), 200);
}
