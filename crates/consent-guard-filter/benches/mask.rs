//! The filter's figures beside a native baseline, in one run (issue 25 targets):
//! - the Arrow mask over 1,000,000-row batches with `BENCH_SUBJECTS` (10,000,000 by
//!   default) subjects in the snapshot, beside a hand-written `HashSet<&str>` probe of
//!   the same column (the semi-join a user would write);
//! - a refresh of 1,000 events over the same snapshot;
//! - the snapshot's bytes per subject (printed: the resident memory it added,
//!   divided by its subjects, and the fixed 16-byte entry beside each id).
//!
//! `cargo bench -p consent-guard-filter --bench mask -- --quick`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs, reason = "a bench")]

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_buffer::BooleanBufferBuilder;
use chrono::{DateTime, Utc};
use consent_guard::consent::{GrantEvent, WithdrawEvent};
use consent_guard::filter::{Apply, FilterSpec, RowFacts};
use consent_guard::store::MemoryConsentStore;
use consent_guard::{
    AccessRequest, ConsentEvent, ConsentLevel, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const ROWS: usize = 1_000_000;

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn bench(c: &mut Criterion) {
    let subjects: usize = std::env::var("BENCH_SUBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let now: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let granted: DateTime<Utc> = "2026-01-05T00:00:00Z".parse().unwrap();
    let policy =
        Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/exmo.toml")).unwrap();
    let clock = Arc::new(FixedClock::new(now));
    let guard = Guard::builder(policy).clock(Arc::clone(&clock)).store(MemoryConsentStore::new()).build().unwrap();
    let ids: Vec<String> = (0..subjects).map(|n| format!("user-{n}")).collect();
    // Every subject is known; every other one consents at the level training needs
    // (the others' implied consent is not enough).
    for chunk in ids.chunks(100_000) {
        let events: Vec<ConsentEvent> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let level = if i % 2 == 0 { ConsentLevel::Explicit } else { ConsentLevel::Implied };
                GrantEvent::new(id.clone(), vec![Purpose::AI_TRAINING], level, granted).into()
            })
            .collect();
        guard.record_all(&events).unwrap();
    }
    let training = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized);
    let filter = guard.filter(FilterSpec::new(training, RowFacts::new("user_id"))).unwrap();
    let before = resident_bytes();
    let started = std::time::Instant::now();
    let mut snapshot = guard.snapshot(&filter).unwrap();
    let built = started.elapsed();
    let added = resident_bytes().saturating_sub(before);
    let id_bytes: usize = ids.iter().map(String::len).sum::<usize>() / subjects.max(1);
    eprintln!(
        "snapshot: {} subjects built in {built:?}; {} bytes resident per subject, {} on the heap (ids average {id_bytes} bytes); entry beside the id: {} bytes",
        snapshot.len(),
        added / snapshot.len().max(1) as u64,
        snapshot.heap_bytes() / snapshot.len().max(1),
        std::mem::size_of::<consent_guard::filter::SnapshotEntry>()
    );

    // One batch of rows over all subjects (known and unknown alike).
    let column: Vec<&str> = (0..ROWS).map(|i| ids[(i.wrapping_mul(2_654_435_761)) % subjects].as_str()).collect();
    let batch = RecordBatch::try_from_iter([("user_id", Arc::new(StringArray::from(column)) as ArrayRef)]).unwrap();
    let allowed: HashSet<&str> = snapshot.iter().filter(|(_, e)| e.fresh().is_allow()).map(|(id, _)| id).collect();

    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    {
        let application = filter.apply(&snapshot, now, Apply::Live).unwrap();
        group.bench_function("arrow_mask_1M_rows", |b| {
            b.iter(|| consent_guard_filter::mask(&application, &batch).unwrap());
        });
    }
    group.bench_function("baseline_hashset_probe_1M_rows", |b| {
        let strings = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        b.iter(|| {
            let mut bits = BooleanBufferBuilder::new(strings.len());
            for row in 0..strings.len() {
                bits.append(strings.is_valid(row) && allowed.contains(strings.value(row)));
            }
            bits.finish()
        });
    });
    group.finish();
    drop(allowed);

    let mut group = c.benchmark_group("refresh");
    group.sample_size(10);
    let mut round = 0usize;
    group.bench_function("1000_events", |b| {
        b.iter_batched(
            || {
                round += 1;
                let at = now + chrono::Duration::milliseconds(round as i64);
                clock.set(at);
                let events: Vec<ConsentEvent> = (0..1000)
                    .map(|k| {
                        let id = ids[(round * 7919 + k * 104_729) % subjects].clone();
                        WithdrawEvent::new(id, vec![Purpose::AI_TRAINING], at).into()
                    })
                    .collect();
                guard.record_all(&events).unwrap();
            },
            |()| snapshot.refresh(&guard, &filter).unwrap(),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
