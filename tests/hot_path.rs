//! The check path: no heap allocation for allows and denials alike, no torn updates
//! under concurrent writers, and a withdrawal visible to the very next check on any
//! thread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail loudly")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use chrono::{TimeZone, Utc};
use consent_guard::{
    AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, MemoryAuditSink, Policy, Purpose,
    ReasonCode,
};

fn exmo() -> Policy {
    Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap()
}

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap()
}

fn grant(subject: &str, at: &str) -> ConsentEvent {
    event(&format!(
        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"{at}"}}"#
    ))
}

fn withdraw(subject: &str, at: &str) -> ConsentEvent {
    event(&format!(r#"{{"type":"withdraw","subject":"{subject}","purposes":["ai_training"],"at":"{at}"}}"#))
}

const BEHAVIOR: &[DataCategory] = &[DataCategory::BEHAVIOR_LOG];

fn training(subject: &str) -> AccessRequest<'_> {
    AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, BEHAVIOR)
        .deidentification(Deidentification::Anonymized)
        .at(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap())
}

/// Allow, every kind of early deny, and a consent deny: none allocates.
#[test]
fn checks_do_not_allocate() {
    let guard = Guard::new(exmo());
    guard.record(&grant("in", "2026-01-01T00:00:00Z")).unwrap();
    guard.record(&grant("out", "2026-01-01T00:00:00Z")).unwrap();
    guard.record(&withdraw("out", "2026-02-01T00:00:00Z")).unwrap();
    let cases = [
        (training("in"), ReasonCode::ConsentGiven),
        (training("out"), ReasonCode::ConsentWithdrawn),
        (training("nobody"), ReasonCode::ConsentMissing),
        (training("in").deidentification(Deidentification::None), ReasonCode::DeidentificationRequired),
        (AccessRequest::new("in", Purpose::MARKETING_CAMPAIGNS, BEHAVIOR), ReasonCode::NoRule),
        (
            AccessRequest::new("in", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::HEALTH_RECORD][..]),
            ReasonCode::CategoryNotPermitted,
        ),
    ];
    // Warm up lazily initialised statics (the std hasher keys) outside the window.
    for (request, _) in &cases {
        let _ = guard.check(request);
    }
    for (request, code) in &cases {
        let mut seen = None;
        let info = allocation_counter::measure(|| {
            let decision = guard.check(request);
            seen = Some(decision.code());
        });
        assert_eq!(seen, Some(*code));
        assert_eq!(info.count_total, 0, "{code} allocated {} times", info.count_total);
    }
}

/// A prepared access checks subjects without allocating either, audited or not, and
/// answers what the plain check answers.
#[test]
fn prepared_checks_do_not_allocate() {
    let sink = Arc::new(MemoryAuditSink::new());
    let guard = Guard::builder(exmo()).audit(sink.clone()).build().unwrap();
    guard.record(&grant("in", "2026-01-01T00:00:00Z")).unwrap();
    guard.record(&grant("out", "2026-01-01T00:00:00Z")).unwrap();
    guard.record(&withdraw("out", "2026-02-01T00:00:00Z")).unwrap();
    let template = training("");
    let prepared = guard.prepare(&template);
    let denied = training("").deidentification(Deidentification::None);
    let prepared_denied = guard.prepare(&denied);
    let cases = [
        (&prepared, "in", ReasonCode::ConsentGiven),
        (&prepared, "out", ReasonCode::ConsentWithdrawn),
        (&prepared, "nobody", ReasonCode::ConsentMissing),
        (&prepared_denied, "in", ReasonCode::DeidentificationRequired),
    ];
    // Give the sink room for every record below: its growth is where it may allocate.
    for _ in 0..4 {
        for (access, subject, _) in cases {
            let _ = access.check(subject);
        }
    }
    sink.clear();
    for (access, subject, code) in cases {
        let mut seen = None;
        let info = allocation_counter::measure(|| {
            let decision = access.check(subject);
            seen = Some(decision.code());
        });
        assert_eq!(seen, Some(code));
        assert_eq!(info.count_total, 0, "{code} allocated {} times", info.count_total);
        let mut request = access.template().clone();
        request.subject = subject.into();
        assert_eq!(guard.check(&request).code(), code);
    }
    let records = sink.records();
    assert_eq!(records.len(), 8);
    // The audit record names the subject checked, not the template's.
    assert_eq!(records[0].request.subject, "in");
    assert_eq!(records[0], records[1]);
    assert_eq!(records[2].request.subject, "out");
}

/// With the in-memory sink, a check allocates only when the sink's buffers grow, and
/// they grow by doubling: never once per record.
#[test]
fn auditing_allocates_only_to_store_the_record() {
    let sink = Arc::new(MemoryAuditSink::new());
    let guard = Guard::builder(exmo()).audit(sink.clone()).build().unwrap();
    guard.record(&grant("in", "2026-01-01T00:00:00Z")).unwrap();
    let request = training("in");
    let checks = || {
        for _ in 0..1_000 {
            assert!(guard.check(&request).allowed());
        }
    };
    let growing = allocation_counter::measure(checks);
    // Three buffers (records, text, categories), each doubling from empty to 1,000
    // records' worth: at most about 3 × log2(1,000 × 16) allocations.
    assert!(growing.count_total > 0 && growing.count_total <= 3 * 14, "{growing:?}");
    sink.clear();
    let with_room = allocation_counter::measure(checks);
    assert_eq!(with_room.count_total, 0, "{with_room:?}");
    assert_eq!(sink.len(), 1_000);
    assert_eq!(sink.records().len(), 1_000);
}

/// A writer flips a subject between two complete states with one batch each: a
/// withdrawal and a new grant at another level, at the same instant. Complete, the
/// states answer `consent_given` (separate grant) or `separate_consent_required`
/// (explicit grant); a check that saw half a batch (the withdrawal without its grant)
/// would answer `consent_withdrawn`. It must never happen.
#[test]
fn no_check_sees_a_half_applied_update() {
    // Each round starts afresh so that the subject's history stays short and checks
    // stay fast enough to interleave with many batches.
    for _ in 0..10 {
        flip_and_watch();
    }
}

fn flip_and_watch() {
    let guard = Arc::new(Guard::builder(exmo()).clock(FixedClock::new(Utc::now())).build().unwrap());
    let at = "2026-01-01T00:00:00Z";
    let grant_at = |level: &str| {
        event(&format!(r#"{{"type":"grant","subject":"s","purposes":["advertising"],"level":"{level}","at":"{at}"}}"#))
    };
    let withdraw = event(&format!(r#"{{"type":"withdraw","subject":"s","purposes":["advertising"],"at":"{at}"}}"#));
    // Equal times: the event recorded last wins, so the same batches can be replayed.
    let to_separate = [withdraw.clone(), grant_at("separate")];
    let to_explicit = [withdraw, grant_at("explicit")];
    guard.record(&grant_at("explicit")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // The writer starts once both readers have checked: on a loaded machine a reader
    // thread may otherwise first run after every flip is done, and see none of them.
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (guard, stop, ready) = (guard.clone(), stop.clone(), ready.clone());
        thread::spawn(move || {
            while ready.load(Ordering::Acquire) < 2 {
                thread::yield_now();
            }
            for flip in 0..3_000u32 {
                guard.record_all(if flip % 2 == 0 { &to_separate } else { &to_explicit }).unwrap();
            }
            stop.store(true, Ordering::Release);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (guard, stop, ready) = (guard.clone(), stop.clone(), ready.clone());
            thread::spawn(move || {
                let ads = AccessRequest::new("s", Purpose::ADVERTISING_PERSONALIZED, BEHAVIOR)
                    .at(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap());
                let mut seen = [0u64; 2];
                loop {
                    match guard.check(&ads).code() {
                        ReasonCode::ConsentGiven => seen[0] += 1,
                        ReasonCode::SeparateConsentRequired => seen[1] += 1,
                        other => panic!("a check saw half a batch: {other}"),
                    }
                    if seen[0] + seen[1] == 1 {
                        ready.fetch_add(1, Ordering::Release);
                    }
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                }
                seen
            })
        })
        .collect();
    writer.join().unwrap();
    for reader in readers {
        let seen = reader.join().unwrap();
        assert!(seen[0] + seen[1] > 0, "the reader never ran");
    }
}

/// A withdrawal recorded on one thread is seen by the very next check on another.
#[test]
fn a_withdrawal_is_visible_to_the_next_check_on_any_thread() {
    let guard = Arc::new(Guard::new(exmo()));
    for round in 0..200u32 {
        let subject = format!("u{round}");
        guard.record(&grant(&subject, "2026-01-01T00:00:00Z")).unwrap();
        assert!(guard.check(&training(&subject)).allowed());
        let (sent, received) = mpsc::channel();
        let checker = {
            let guard = guard.clone();
            let subject = subject.clone();
            thread::spawn(move || {
                received.recv().unwrap();
                guard.check(&training(&subject)).code()
            })
        };
        guard.record(&withdraw(&subject, "2026-03-01T00:00:00Z")).unwrap();
        sent.send(()).unwrap();
        assert_eq!(checker.join().unwrap(), ReasonCode::ConsentWithdrawn);
    }
}

/// Batches read their subjects in groups, holding several shards' read locks at once
/// (issue 31). Two writers flip 64 subjects (every shard's worth) between two complete
/// states, as in `no_check_sees_a_half_applied_update`, while two readers check them
/// all as batches, by handle and by id: no answer may show half an update, and no
/// reader or writer may wait for ever (a watchdog fails the test after two minutes).
/// The histories grow with every flip, so the subjects spill and their event ranges
/// move and compact under the readers.
#[test]
fn no_batch_sees_a_half_applied_update_nor_stalls_a_writer() {
    let guard = Arc::new(Guard::builder(exmo()).clock(FixedClock::new(Utc::now())).build().unwrap());
    let at = "2026-01-01T00:00:00Z";
    let subjects: Arc<Vec<String>> = Arc::new((0..64).map(|i| format!("batch-subject-{i}")).collect());
    let grant_at = |subject: &str, level: &str| {
        event(&format!(
            r#"{{"type":"grant","subject":"{subject}","purposes":["advertising"],"level":"{level}","at":"{at}"}}"#
        ))
    };
    let withdraw_at = |subject: &str| {
        event(&format!(r#"{{"type":"withdraw","subject":"{subject}","purposes":["advertising"],"at":"{at}"}}"#))
    };
    // Per subject: to separate, to explicit (equal times: the last recorded wins).
    let flips: Arc<Vec<[Vec<ConsentEvent>; 2]>> = Arc::new(
        subjects
            .iter()
            .map(|s| [vec![withdraw_at(s), grant_at(s, "separate")], vec![withdraw_at(s), grant_at(s, "explicit")]])
            .collect(),
    );
    for subject in subjects.iter() {
        guard.record(&grant_at(subject, "explicit")).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (done, finished) = mpsc::channel::<&'static str>();
    let writers: Vec<_> = (0..2usize)
        .map(|half| {
            let (guard, flips, done) = (guard.clone(), flips.clone(), done.clone());
            thread::spawn(move || {
                for round in 0..600usize {
                    for (index, flip) in flips.iter().enumerate().filter(|(i, _)| i % 2 == half) {
                        guard.record_all(&flip[(round + index) % 2]).unwrap();
                    }
                }
                done.send("writer").unwrap();
            })
        })
        .collect();
    let readers: Vec<_> = (0..2usize)
        .map(|kind| {
            let (guard, subjects, stop, done) = (guard.clone(), subjects.clone(), stop.clone(), done.clone());
            thread::spawn(move || {
                let template = AccessRequest::new("", Purpose::ADVERTISING_PERSONALIZED, BEHAVIOR)
                    .at(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap());
                let access = guard.prepare(&template);
                let handles: Vec<_> = subjects.iter().map(|s| guard.subject_handle(s)).collect();
                let mut batches = 0u64;
                while !stop.load(Ordering::Acquire) || batches == 0 {
                    let decisions =
                        if kind == 0 { access.check_handles(&handles) } else { access.check_batch(&subjects) };
                    assert_eq!(decisions.len(), subjects.len());
                    for (decision, subject) in decisions.iter().zip(subjects.iter()) {
                        assert_eq!(decision.subject(), subject.as_str());
                        match decision.code() {
                            ReasonCode::ConsentGiven | ReasonCode::SeparateConsentRequired => {}
                            other => panic!("a batch saw half an update of {subject}: {other}"),
                        }
                    }
                    batches += 1;
                }
                done.send("reader").unwrap();
                batches
            })
        })
        .collect();
    drop(done);
    let watchdog = std::time::Duration::from_secs(120);
    for _ in 0..2 {
        assert_eq!(finished.recv_timeout(watchdog), Ok("writer"), "a writer stalled (or a reader failed)");
    }
    stop.store(true, Ordering::Release);
    for _ in 0..2 {
        assert_eq!(finished.recv_timeout(watchdog), Ok("reader"), "a reader stalled or failed");
    }
    for writer in writers {
        writer.join().unwrap();
    }
    for reader in readers {
        assert!(reader.join().unwrap() > 0, "the reader never ran");
    }
    // Settled: every subject's batch answer is its single check's.
    let template = AccessRequest::new("", Purpose::ADVERTISING_PERSONALIZED, BEHAVIOR)
        .at(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap());
    let access = guard.prepare(&template);
    for (decision, subject) in access.check_batch(&subjects).iter().zip(subjects.iter()) {
        assert_eq!(decision.code(), access.check(subject).code(), "{subject}");
    }
}
