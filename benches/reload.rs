//! What hot reload costs: a check through a `GuardHandle` (one `ArcSwap` load) against a
//! check on the guard itself, the owned answer of `GuardHandle::check`, and how long a
//! policy swap takes as the store grows.
//!
//! Workload: EXMO, 10,000 subjects (half granted training, in a memory store), training
//! checks on anonymised behaviour logs, subjects drawn at random, no audit.
//!
//! `cargo bench --bench reload --features reload -- --quick`; the swap times are printed
//! after the criterion groups.
#![expect(missing_docs, reason = "criterion's macros generate undocumented items")]
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark's setup fails loudly; indices are bounded by construction"
)]

use std::hint::black_box;
use std::time::Instant;

use consent_guard::reload::GuardHandle;
use consent_guard::store::MemoryConsentStore;
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose};
use criterion::{criterion_group, Criterion};

const SUBJECTS: usize = 10_000;

fn policy(version: &str) -> Policy {
    let text = include_str!("../examples/policies/exmo.toml").replacen(
        "version = \"1.0\"",
        &format!("version = \"{version}\""),
        1,
    );
    Policy::from_toml_str(&text, "exmo.toml").unwrap()
}

fn grant(subject: &str) -> ConsentEvent {
    serde_json::from_str(&format!(
        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}}"#
    ))
    .unwrap()
}

fn handle(subjects: usize) -> GuardHandle {
    let builder = Guard::builder(policy("1.0"))
        .clock(FixedClock::new("2026-06-01T00:00:00Z".parse().unwrap()))
        .store(MemoryConsentStore::new());
    let handle = GuardHandle::build(builder).unwrap();
    let events: Vec<ConsentEvent> = (0..subjects).step_by(2).map(|i| grant(&format!("s{i}"))).collect();
    handle.record_all(&events).unwrap();
    handle
}

fn names() -> Vec<String> {
    // A fixed pseudo-random order, the same for every variant.
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("s{}", x % SUBJECTS as u64)
        })
        .collect()
}

fn checks(c: &mut Criterion) {
    let handle = handle(SUBJECTS);
    let names = names();
    let requests: Vec<AccessRequest<'_>> = names
        .iter()
        .map(|s| {
            AccessRequest::new(s.as_str(), Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
                .deidentification(Deidentification::Anonymized)
        })
        .collect();
    let guard = handle.load();
    let mut group = c.benchmark_group("reload_check");
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % requests.len();
        &requests[i]
    };
    group.bench_function("guard.check", |b| b.iter(|| black_box(guard.check(next()).allowed())));
    group.bench_function("handle.load_guard().check", |b| {
        b.iter(|| black_box(handle.load_guard().check(next()).allowed()))
    });
    group.bench_function("handle.load().check", |b| b.iter(|| black_box(handle.load().check(next()).allowed())));
    group.bench_function("handle.check (owned)", |b| b.iter(|| black_box(handle.check(next()).allowed())));
    group.finish();
}

fn swaps() {
    for subjects in [1_000, 10_000, 100_000] {
        let handle = handle(subjects);
        let rounds = 5;
        let started = Instant::now();
        for round in 0..rounds {
            handle.swap_policy(policy(&format!("1.{}", round + 1))).unwrap();
        }
        let each = started.elapsed() / rounds;
        println!("swap_policy over {} stored events ({subjects} subjects): {each:.2?} per swap", subjects / 2);
    }
}

criterion_group!(benches, checks);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    swaps();
}
