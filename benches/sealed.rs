//! Bulk selection of sealed records, as a training job runs it: 1,000,000 behaviour
//! records of 10,000 subjects under the EXMO policy, every record one audited
//! [`Guard::check`] (to [`NoAuditSink`]: the sink's own cost is not the subject here).
//!
//! Subjects have mixed histories (separate opt-ins, withdrawals, explicit-only grants,
//! nothing), records are mostly anonymised and of two behaviour categories, and the
//! records of a subject are scattered through the stream, drawn from a fixed seed.
//!
//! `cargo bench --bench sealed` runs the criterion group, then prints records per
//! second (median of timed runs) beside two references: the same decisions through
//! `Guard::check` on hand-built requests (what sealing adds), and the same stream
//! filtered by a `HashSet` of allowed subjects, with no policy at all.
#![expect(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use consent_guard::consent::{GrantEvent, WithdrawEvent};
use consent_guard::sealed::{self, Access, Personal, Tags, Tally};
use consent_guard::{
    AccessRequest, ConsentEvent, ConsentLevel, DataCategory, Deidentification, FixedClock, Guard, NoAuditSink, Policy,
    Purpose,
};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};

mod support;
use support::Rng;

const SUBJECTS: usize = 10_000;
const RECORDS: usize = 1_000_000;

/// What a training record holds once anonymised.
struct Features {
    weights: [f32; 4],
}

struct Workload {
    guard: Guard,
    records: Vec<Personal<Features>>,
    /// Subjects whose records the policy lets training use, for the baseline.
    allowed: HashSet<Arc<str>>,
}

fn workload() -> Result<Workload, Box<dyn std::error::Error>> {
    let policy = Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml"))?;
    let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse()?;
    let guard = Guard::builder(policy).clock(FixedClock::new(now)).audit(NoAuditSink).build()?;
    let mut rng = Rng(0x5eed_5ea1_ed00_0004);

    let granted_at: DateTime<Utc> = "2026-01-02T00:00:00Z".parse()?;
    let withdrawn_at: DateTime<Utc> = "2026-04-01T00:00:00Z".parse()?;
    let subjects: Vec<Arc<str>> = (0..SUBJECTS).map(|i| Arc::from(format!("user-{i:05}"))).collect();
    let mut events = Vec::new();
    let mut allowed = HashSet::new();
    for subject in &subjects {
        let grant = |level| {
            ConsentEvent::from(GrantEvent::new(subject.to_string(), vec![Purpose::AI_TRAINING], level, granted_at))
        };
        // 50% opt in (a fifth of them withdraw later), 20% implied only (short of the
        // explicit consent anonymized training needs), 30% nothing.
        match rng.below(10) {
            0..=3 => {
                events.push(grant(ConsentLevel::Separate));
                allowed.insert(subject.clone());
            }
            4 => {
                events.push(grant(ConsentLevel::Separate));
                events.push(WithdrawEvent::new(subject.to_string(), vec![Purpose::AI_TRAINING], withdrawn_at).into());
            }
            5 | 6 => events.push(grant(ConsentLevel::Implied)),
            _ => {}
        }
    }
    guard.record_all(&events)?;

    let collected_at = now - chrono::Duration::days(2);
    let records = (0..RECORDS)
        .map(|i| {
            let subject =
                subjects.get(rng.below(SUBJECTS as u64) as usize).cloned().unwrap_or_else(|| Arc::from("nobody"));
            let category = if i % 3 == 0 { DataCategory::BEHAVIOR_PREFERENCES } else { DataCategory::BEHAVIOR_LOG };
            // One record in ten is only pseudonymised: withheld.
            let deidentification =
                if rng.below(10) == 0 { Deidentification::Pseudonymized } else { Deidentification::Anonymized };
            let x = (i % 97) as f32;
            Tags::new(subject, category, collected_at)
                .deidentification(deidentification)
                .seal(Features { weights: [x, x * 0.5, 1.0, -x] })
        })
        .collect();
    Ok(Workload { guard, records, allowed })
}

/// One pass of the training job: select, consume the values, return the tally.
fn train(workload: &Workload, access: &Access<'_>) -> (f32, Tally) {
    let mut selection = sealed::select(&workload.guard, &workload.records, access);
    let sum = selection.by_ref().fold(0.0f32, |sum, features| sum + features.weights.iter().sum::<f32>());
    (sum, selection.into_tally())
}

/// The same decisions without sealing: one hand-built request and `Guard::check` per
/// record, the floor under `select`.
fn check_only(workload: &Workload) -> usize {
    workload
        .records
        .iter()
        .filter(|r| {
            let tags = r.tags();
            let request = AccessRequest::new(
                &*tags.subject,
                Purpose::AI_TRAINING_MODEL_TRAINING,
                std::slice::from_ref(&tags.category),
            )
            .deidentification(tags.deidentification)
            .collected(tags.collected_at, None);
            workload.guard.check(&request).allowed()
        })
        .count()
}

/// The same pass with no policy: a set lookup per record, for scale. It cannot read
/// the values (they are sealed), so it counts them.
fn baseline(workload: &Workload) -> usize {
    workload
        .records
        .iter()
        .filter(|r| {
            r.tags().deidentification == Deidentification::Anonymized && workload.allowed.contains(&r.tags().subject)
        })
        .count()
}

fn bench_select(c: &mut Criterion) {
    let workload = match workload() {
        Ok(workload) => workload,
        Err(e) => return eprintln!("cannot build the workload: {e}"),
    };
    let access = Access::new(Purpose::AI_TRAINING_MODEL_TRAINING);
    let mut group = c.benchmark_group("sealed");
    group.throughput(Throughput::Elements(RECORDS as u64)).sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new("select", "1M records, 10k subjects, exmo"), |b| {
        b.iter(|| black_box(train(&workload, black_box(&access))))
    });
    group.bench_function(BenchmarkId::new("check", "1M hand-built requests"), |b| {
        b.iter(|| black_box(check_only(black_box(&workload))))
    });
    group.bench_function(BenchmarkId::new("baseline", "1M records, set lookup"), |b| {
        b.iter(|| black_box(baseline(black_box(&workload))))
    });
    group.finish();
}

/// Median records per second of `runs` timed passes.
fn records_per_second(runs: usize, mut pass: impl FnMut()) -> f64 {
    let mut rates: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            pass();
            RECORDS as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.get(runs / 2).copied().unwrap_or(0.0)
}

/// The figures for the report: records per second, and what was kept and withheld.
fn summary() {
    let workload = match workload() {
        Ok(workload) => workload,
        Err(e) => return eprintln!("cannot build the workload: {e}"),
    };
    let access = Access::new(Purpose::AI_TRAINING_MODEL_TRAINING);
    let (_, tally) = train(&workload, &access);
    let select = records_per_second(7, || {
        black_box(train(&workload, &access));
    });
    let check = records_per_second(7, || {
        black_box(check_only(&workload));
    });
    let baseline = records_per_second(7, || {
        black_box(baseline(&workload));
    });
    println!("\nsealed::select, {RECORDS} records of {SUBJECTS} subjects, EXMO policy, one thread:");
    println!("  {:>14.0} records/s  select (one audited Guard::check per record)", select);
    println!("  {:>14.0} records/s  Guard::check on hand-built requests (no sealing)", check);
    println!("  {:>14.0} records/s  baseline (HashSet of allowed subjects, no policy)", baseline);
    println!("  {tally}");
}

criterion_group! {
    name = benches;
    // The criterion group; `main` adds the records-per-second summary.
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(2));
    targets = bench_select
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
