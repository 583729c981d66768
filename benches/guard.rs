//! The guard against the hardware's own limit.
//!
//! Every figure is printed beside a native baseline measured in the same run: a
//! `HashMap<u64, small record>` lookup plus a few bit tests that answers the same
//! yes/no question with no policy at all; the check summary also prints a dense
//! `Vec<record>` indexed by subject number, the practical limit for a caller with
//! numeric ids, and each path's ratio to both. Workloads are built from a fixed seed: the
//! EXMO and AIMate policies, 10,000 and 1,000,000 subjects with mixed histories
//! (opt-ins, withdrawals, guardians, expiries, erasures), and a mix of requests over
//! purposes, categories, recipients and regions; subjects are drawn uniformly at random
//! on every request, so large populations miss the cache as real traffic does.
//!
//! Each `check` figure has a `prepared` twin: the same workload through
//! [`PreparedAccess::check`], each template prepared once, as a batch job or a fixed
//! access point runs.
//!
//! `cargo bench --bench guard` runs the criterion groups, then prints the summary
//! table used in BENCHMARKS.md (medians of repeated timed runs).
#![expect(missing_docs, reason = "criterion's macros generate undocumented items")]
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark's setup fails loudly; indices are bounded by construction"
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_guard::consent::{EraseEvent, GrantEvent, SubjectEvent, WithdrawEvent};
use consent_guard::{
    AccessRequest, Action, ConsentEvent, ConsentLevel, DataCategory, Deidentification, FixedClock, Guard,
    MemoryAuditSink, NoAuditSink, Policy, PreparedAccess, Purpose, Recipient, RecipientKind, Region, SubjectHandle,
};
use criterion::{criterion_group, Criterion};

mod support;
use support::{at, interleaved_medians, Rng};

/// A subject id as a service would receive it, written to the stack: `u<index>`.
struct SubjectId {
    bytes: [u8; 16],
    len: usize,
}

impl SubjectId {
    fn new(index: u64) -> SubjectId {
        let mut digits = [0u8; 20];
        let mut n = index;
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut bytes = [0u8; 16];
        bytes[0] = b'u';
        for i in 0..count {
            bytes[1 + i] = digits[count - 1 - i];
        }
        SubjectId { bytes, len: count + 1 }
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("u")
    }
}

fn policy(name: &str) -> Policy {
    Policy::from_toml_file(format!("{}/examples/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Mixed histories: one or two grants for most subjects, then withdrawals, guardians,
/// expiries and erasures in fixed proportions.
fn events_for(index: u64, rng: &mut Rng) -> Vec<ConsentEvent> {
    let subject = SubjectId::new(index).as_str().to_owned();
    let mut events = Vec::with_capacity(3);
    let roll = rng.below(100);
    let grant = |purposes: Vec<Purpose>, level, days, by_guardian, expires: Option<i64>| {
        let grant = GrantEvent::new(subject.clone(), purposes, level, at(days)).by_guardian(by_guardian);
        ConsentEvent::from(match expires {
            Some(days) => grant.expires_at(at(days)),
            None => grant,
        })
    };
    if roll < 5 {
        let birth = (at(0) - chrono::Duration::days(365 * 10)).date_naive();
        events.push(SubjectEvent::new(subject.clone()).birth_date(birth).into());
        events.push(grant(vec![Purpose::AI_TRAINING, Purpose::SERVICE], ConsentLevel::Separate, 1, roll < 3, None));
        return events;
    }
    events.push(grant(vec![Purpose::AI_TRAINING], ConsentLevel::Separate, 1, false, (roll < 15).then_some(60)));
    if roll >= 50 {
        events.push(grant(
            vec![Purpose::ADVERTISING, Purpose::PERSONALIZATION, Purpose::ACCOUNT],
            if roll < 75 { ConsentLevel::Explicit } else { ConsentLevel::Separate },
            2,
            false,
            None,
        ));
    }
    if (20..35).contains(&roll) {
        events.push(WithdrawEvent::new(subject.clone(), vec![Purpose::AI_TRAINING], at(30)).into());
    }
    if (35..38).contains(&roll) {
        events.push(EraseEvent::new(subject, at(40)).into());
    }
    events
}

fn populated(policy: Policy, subjects: u64) -> Guard {
    let guard = Guard::builder(policy).clock(FixedClock::new(at(150))).build().unwrap();
    record_population(&guard, subjects);
    guard
}

fn record_population(guard: &Guard, subjects: u64) {
    let mut rng = Rng(0x5EED);
    for index in 0..subjects {
        guard.record_all(&events_for(index, &mut rng)).unwrap();
    }
}

const BEHAVIOR: &[DataCategory] = &[DataCategory::BEHAVIOR_LOG];
const PROFILE: &[DataCategory] = &[DataCategory::ACCOUNT_PROFILE];
const FACE: &[DataCategory] = &[DataCategory::BIOMETRIC_FACE];
const MIXED: &[DataCategory] = &[DataCategory::DEVICE_INFO, DataCategory::BEHAVIOR_LOG];

/// The request templates: allows and the common denials.
fn templates() -> Vec<AccessRequest<'static>> {
    let cn = Region::new("CN").unwrap();
    let us = Region::new("US").unwrap();
    let anonymized = Deidentification::Anonymized;
    vec![
        AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, BEHAVIOR).deidentification(anonymized),
        AccessRequest::new("", Purpose::AI_TRAINING_ALGORITHM_OPTIMIZATION, BEHAVIOR).deidentification(anonymized),
        AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, BEHAVIOR),
        AccessRequest::new("", Purpose::ADVERTISING_PERSONALIZED, BEHAVIOR),
        AccessRequest::new("", Purpose::PERSONALIZATION_RECOMMENDATION, MIXED),
        AccessRequest::new("", Purpose::SERVICE_CORE, PROFILE).region(cn),
        AccessRequest::new("", Purpose::ACCOUNT_LOGIN, PROFILE).recipient(Recipient::kind(RecipientKind::Processor)),
        AccessRequest::new("", Purpose::MARKETING_CAMPAIGNS, BEHAVIOR),
        AccessRequest::new("", Purpose::SERVICE_CORE, FACE).action(Action::Share),
        AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, BEHAVIOR).deidentification(anonymized).region(us),
        AccessRequest::new("", Purpose::ANALYTICS_USAGE, MIXED).deidentification(anonymized),
        AccessRequest::new("", Purpose::COMPLIANCE_LEGAL_OBLIGATION, PROFILE),
    ]
}

/// The baseline's record: the same yes/no question with no policy.
#[derive(Clone, Copy)]
struct Native {
    granted: u64,
    withdrawn: u64,
    flags: u8,
}

fn native(subjects: u64) -> HashMap<u64, Native> {
    let mut rng = Rng(0x5EED);
    (0..subjects)
        .map(|i| {
            let roll = rng.below(100);
            (
                i,
                Native {
                    granted: 1 << (roll % 8),
                    withdrawn: u64::from(roll.is_multiple_of(3)),
                    flags: (roll % 5) as u8,
                },
            )
        })
        .collect()
}

/// The practical limit (issue 31): a caller with numeric ids keeps its records in a
/// dense array indexed by subject number, so a lookup is a bounds check and one load.
fn dense(subjects: u64) -> Vec<Native> {
    let map = native(subjects);
    (0..subjects).map(|i| map[&i]).collect()
}

#[inline(always)]
fn allows(record: &Native, purpose_bit: u64) -> bool {
    record.granted & purpose_bit != 0 && record.withdrawn & purpose_bit == 0 && record.flags & 1 == 0
}

#[inline(always)]
fn native_check(map: &HashMap<u64, Native>, subject: u64, purpose_bit: u64) -> bool {
    map.get(&subject).is_some_and(|record| allows(record, purpose_bit))
}

/// The dense baseline's step: the same random sequence as [`native_step`].
#[inline(always)]
fn dense_step(records: &[Native], rng: &mut Rng, subjects: u64) -> bool {
    let subject = rng.below(subjects);
    let purpose = rng.below(12);
    records.get(subject as usize).is_some_and(|record| allows(record, 1 << (purpose % 8)))
}

/// One guard check of a random subject with a random template.
#[inline(always)]
fn guard_step(guard: &Guard, templates: &[AccessRequest<'static>], rng: &mut Rng, subjects: u64) -> bool {
    let id = SubjectId::new(rng.below(subjects));
    let template = &templates[rng.below(templates.len() as u64) as usize];
    let mut request = template.clone();
    request.subject = std::borrow::Cow::Borrowed(id.as_str());
    guard.check(&request).allowed()
}

/// One prepared check (one kind of access, prepared once) of a random subject with a
/// random template: the same workload as [`guard_step`], without the per-check
/// request-only evaluation or the request clone.
#[inline(always)]
fn prepared_step(prepared: &[PreparedAccess<'_>], rng: &mut Rng, subjects: u64) -> bool {
    let id = SubjectId::new(rng.below(subjects));
    let access = &prepared[rng.below(prepared.len() as u64) as usize];
    access.check(id.as_str()).allowed()
}

/// One prepared check by subject handle ([`Guard::subject_handle`], resolved before
/// the timed loop): the workload of [`prepared_step`], with nothing hashed.
#[inline(always)]
fn handle_step(prepared: &[PreparedAccess<'_>], handles: &[SubjectHandle<'_>], rng: &mut Rng, subjects: u64) -> bool {
    let handle = &handles[rng.below(subjects) as usize];
    let access = &prepared[rng.below(prepared.len() as u64) as usize];
    access.check_handle(handle).allowed()
}

#[inline(always)]
fn native_step(map: &HashMap<u64, Native>, rng: &mut Rng, subjects: u64) -> bool {
    let subject = rng.below(subjects);
    let purpose = rng.below(12);
    native_check(map, subject, 1 << (purpose % 8))
}

/// Median nanoseconds per operation over `runs` runs of `per_run` operations.
fn median_ns(runs: usize, per_run: u64, body: impl FnMut(u64) -> usize) -> f64 {
    let mut body = body;
    interleaved_medians(runs, per_run, &mut [&mut body])[0]
}

fn bench_checks(c: &mut Criterion) {
    let templates = templates();
    for (name, subjects) in [("exmo", 10_000u64), ("aimate", 10_000), ("exmo", 1_000_000)] {
        let guard = populated(policy(name), subjects);
        let map = native(subjects);
        let mut group = c.benchmark_group(format!("{name}/{subjects}"));
        let mut rng = Rng(42);
        group.bench_function("native_baseline", |b| b.iter(|| native_step(&map, &mut rng, subjects)));
        let mut rng = Rng(42);
        group.bench_function("check_no_audit", |b| b.iter(|| guard_step(&guard, &templates, &mut rng, subjects)));
        let prepared: Vec<PreparedAccess<'_>> = templates.iter().map(|t| guard.prepare(t)).collect();
        let mut rng = Rng(42);
        group.bench_function("prepared_no_audit", |b| b.iter(|| prepared_step(&prepared, &mut rng, subjects)));
        group.finish();
    }
    let sink = Arc::new(MemoryAuditSink::new());
    let guard = Guard::builder(policy("exmo")).clock(FixedClock::new(at(150))).audit(sink.clone()).build().unwrap();
    record_population(&guard, 10_000);
    // A service drains its sink; emptied, the sink keeps its buffers and stores without
    // growing. Drained every 200,000 records, as in the summary, where growth from empty
    // is measured apart.
    let mut kept = 0u32;
    let mut drained = |step: &mut dyn FnMut() -> bool| {
        kept += 1;
        if kept == 200_000 {
            kept = 0;
            sink.clear();
        }
        step()
    };
    let mut rng = Rng(42);
    c.bench_function("exmo/10000/check_memory_audit", |b| {
        b.iter(|| drained(&mut || guard_step(&guard, &templates, &mut rng, 10_000)));
    });
    let prepared: Vec<PreparedAccess<'_>> = templates.iter().map(|t| guard.prepare(t)).collect();
    let mut rng = Rng(42);
    c.bench_function("exmo/10000/prepared_memory_audit", |b| {
        b.iter(|| drained(&mut || prepared_step(&prepared, &mut rng, 10_000)));
    });
    drop(prepared);
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/aimate.toml")).unwrap();
    c.bench_function("load_policy/aimate", |b| {
        b.iter(|| Policy::from_toml_str(black_box(&text), "aimate.toml").unwrap())
    });
}

/// Checks per second on `threads` threads, optionally with a writer recording
/// `writes_per_second` grants and withdrawals.
fn throughput(guard: &Arc<Guard>, subjects: u64, threads: usize, writes_per_second: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = (writes_per_second > 0).then(|| {
        let (guard, stop) = (guard.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(7);
            let start = Instant::now();
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start.elapsed().as_secs_f64() * writes_per_second as f64;
                while (written as f64) < due {
                    let subject = SubjectId::new(rng.below(subjects)).as_str().to_owned();
                    let event = if written.is_multiple_of(2) {
                        ConsentEvent::from(WithdrawEvent::new(subject, vec![Purpose::ADVERTISING], at(100)))
                    } else {
                        GrantEvent::new(subject, vec![Purpose::ADVERTISING], ConsentLevel::Separate, at(101)).into()
                    };
                    guard.record(&event).unwrap();
                    written += 1;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            written
        })
    });
    let per_thread = 2_000_000u64;
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let guard = guard.clone();
            std::thread::spawn(move || {
                let templates = templates();
                let mut rng = Rng(1000 + t as u64);
                (0..per_thread).filter(|_| guard_step(&guard, &templates, &mut rng, subjects)).count()
            })
        })
        .collect();
    for worker in workers {
        black_box(worker.join().unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(writer) = writer {
        black_box(writer.join().unwrap());
    }
    (threads as u64 * per_thread) as f64 / elapsed
}

/// The table of BENCHMARKS.md, every figure beside the baseline of the same run,
/// section by section. `GUARD_SUMMARY=threads,memory` (a comma-separated list of `checks`, `audit`, `threads`, `memory`, `load`) runs only
/// those; with a criterion filter that matches nothing (`cargo bench --bench guard --
/// --quick none`), only the summary runs.
fn summary() {
    let only = std::env::var("GUARD_SUMMARY").ok();
    let wanted = |section: &str| only.as_deref().is_none_or(|list| list.split(',').any(|s| s.trim() == section));
    println!("\n== consent-guard summary (medians; baseline = HashMap<u64, record> + bit tests) ==");
    if wanted("checks") {
        summary_checks();
    }
    if wanted("audit") {
        summary_audit();
    }
    if wanted("threads") {
        summary_threads();
    }
    if wanted("memory") {
        summary_memory();
    }
    if wanted("load") {
        summary_load();
    }
    let _ = NoAuditSink;
}

/// `check` and prepared checks without auditing, beside the baseline.
fn summary_checks() {
    let templates = templates();
    for (name, subjects) in [("exmo", 10_000u64), ("aimate", 10_000), ("exmo", 1_000_000), ("aimate", 1_000_000)] {
        let guard = populated(policy(name), subjects);
        let map = native(subjects);
        let records = dense(subjects);
        let prepared: Vec<PreparedAccess<'_>> = templates.iter().map(|t| guard.prepare(t)).collect();
        let ids: Vec<String> = (0..subjects).map(|i| SubjectId::new(i).as_str().to_owned()).collect();
        let handles: Vec<SubjectHandle<'_>> = ids.iter().map(|id| guard.subject_handle(id)).collect();
        let (mut rng_a, mut rng_b, mut rng_c, mut rng_d, mut rng_e) = (Rng(42), Rng(42), Rng(42), Rng(42), Rng(42));
        let medians = interleaved_medians(
            9,
            1_000_000,
            &mut [
                &mut |n| (0..n).filter(|_| native_step(&map, &mut rng_a, subjects)).count(),
                &mut |n| (0..n).filter(|_| dense_step(&records, &mut rng_e, subjects)).count(),
                &mut |n| (0..n).filter(|_| guard_step(&guard, &templates, &mut rng_b, subjects)).count(),
                &mut |n| (0..n).filter(|_| prepared_step(&prepared, &mut rng_c, subjects)).count(),
                &mut |n| (0..n).filter(|_| handle_step(&prepared, &handles, &mut rng_d, subjects)).count(),
            ],
        );
        let (baseline, dense_baseline) = (medians[0], medians[1]);
        println!(
            "baselines            {name:>7} {subjects:>9} subjects: HashMap {baseline:6.1} ns  dense {dense_baseline:6.1} ns"
        );
        for (path, ns) in
            [("check, no audit   ", medians[2]), ("prepared, no audit", medians[3]), ("handles, no audit ", medians[4])]
        {
            println!(
                "{path}   {name:>7} {subjects:>9} subjects: {ns:7.1} ns  ratio {:.2}x HashMap, {:.2}x dense",
                ns / baseline,
                ns / dense_baseline
            );
        }
    }
}

/// Checks handed to the in-memory audit sink.
fn summary_audit() {
    let templates = templates();
    let sink = Arc::new(MemoryAuditSink::new());
    let guard = Guard::builder(policy("exmo")).clock(FixedClock::new(at(150))).audit(sink.clone()).build().unwrap();
    record_population(&guard, 10_000);
    let map = native(10_000);
    let prepared: Vec<PreparedAccess<'_>> = templates.iter().map(|t| guard.prepare(t)).collect();
    // The check's first round grows the sink's buffers from empty (reported apart);
    // every later round writes into a drained sink, as a service that reads and clears
    // its sink runs. The median of eleven rounds leaves the growing one out.
    let (mut rng_a, mut rng_b, mut rng_c) = (Rng(42), Rng(42), Rng(42));
    let mut growing = None;
    let medians = interleaved_medians(
        11,
        200_000,
        &mut [
            &mut |n| (0..n).filter(|_| native_step(&map, &mut rng_a, 10_000)).count(),
            &mut |n| {
                let start = Instant::now();
                let kept = (0..n).filter(|_| guard_step(&guard, &templates, &mut rng_b, 10_000)).count();
                growing.get_or_insert(start.elapsed().as_nanos() as f64 / n as f64);
                sink.clear();
                kept
            },
            &mut |n| {
                let kept = (0..n).filter(|_| prepared_step(&prepared, &mut rng_c, 10_000)).count();
                sink.clear();
                kept
            },
        ],
    );
    let (baseline, check, prepared_check) = (medians[0], medians[1], medians[2]);
    println!(
        "check,    memory audit exmo     10000 subjects: {check:7.1} ns  baseline {baseline:6.1} ns  ratio {:.2}x  (growing the sink from empty: {:.1} ns)",
        check / baseline,
        growing.unwrap_or_default()
    );
    println!(
        "prepared, memory audit exmo     10000 subjects: {prepared_check:7.1} ns  baseline {baseline:6.1} ns  ratio {:.2}x",
        prepared_check / baseline
    );
    drop(prepared);
    drop(guard);
}

/// Two checking threads against one, and one with a writer.
fn summary_threads() {
    let guard = Arc::new(populated(policy("exmo"), 10_000));
    // Rounds of the three set-ups in turn, medians of five: noise falls on all alike.
    let mut rounds = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..5 {
        rounds[0].push(throughput(&guard, 10_000, 1, 0));
        rounds[1].push(throughput(&guard, 10_000, 2, 0));
        rounds[2].push(throughput(&guard, 10_000, 1, 10_000));
    }
    let [one, two, one_with_writer] = rounds.map(|mut samples| {
        samples.sort_by(|a, b| a.total_cmp(b));
        samples[samples.len() / 2]
    });
    println!("throughput 1 thread: {:.1} M checks/s; 2 threads: {:.1} M/s ({:.2}x)", one / 1e6, two / 1e6, two / one);
    println!(
        "throughput 1 thread with a writer at 10,000 events/s: {:.1} M/s ({:+.1}%)",
        one_with_writer / 1e6,
        (one_with_writer / one - 1.0) * 100.0
    );
    drop(guard);
}

/// Consent state per subject.
fn summary_memory() {
    // Bytes per subject: the heap the consent state holds, net, per subject.
    let guard = Guard::builder(policy("exmo")).clock(FixedClock::new(at(150))).build().unwrap();
    let mut events = 0u64;
    let mut rng = Rng(0x5EED);
    let batches: Vec<Vec<ConsentEvent>> = (0..1_000_000).map(|i| events_for(i, &mut rng)).collect();
    let before = resident();
    let info = allocation_counter::measure(|| {
        for batch in &batches {
            events += batch.len() as u64;
            guard.record_all(batch).unwrap();
        }
    });
    let after = resident();
    println!(
        "consent state: {:.1} bytes per subject at 1,000,000 subjects ({:.2} events each); resident memory grew by {:.1} MiB ({:.1} bytes per subject)",
        info.bytes_current as f64 / 1e6,
        events as f64 / 1e6,
        (after - before) as f64 / 1048576.0,
        (after - before) as f64 / 1e6,
    );
    // The case: one or two events each, no age, no terms.
    let guard = Guard::builder(policy("exmo")).clock(FixedClock::new(at(150))).build().unwrap();
    let mut rng = Rng(0x5EED);
    let batches: Vec<Vec<ConsentEvent>> = (0..1_000_000u64)
        .map(|i| {
            let subject = SubjectId::new(i).as_str().to_owned();
            let grant = GrantEvent::new(subject.clone(), vec![Purpose::AI_TRAINING], ConsentLevel::Separate, at(1));
            let mut batch = vec![ConsentEvent::from(grant)];
            if rng.below(2) == 0 {
                batch.push(WithdrawEvent::new(subject, vec![Purpose::AI_TRAINING], at(3)).into());
            }
            batch
        })
        .collect();
    let mut events = 0u64;
    let before = resident();
    let info = allocation_counter::measure(|| {
        for batch in &batches {
            events += batch.len() as u64;
            guard.record_all(batch).unwrap();
        }
    });
    let after = resident();
    println!(
        "consent state, one or two events each: {:.1} bytes per subject at 1,000,000 subjects ({:.2} events each); resident memory grew by {:.1} MiB ({:.1} bytes per subject)",
        info.bytes_current as f64 / 1e6,
        events as f64 / 1e6,
        (after - before) as f64 / 1048576.0,
        (after - before) as f64 / 1e6,
    );
}

/// Resident memory of this process, in bytes (`VmRSS`).
fn resident() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Loading and compiling a seed policy.
fn summary_load() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/aimate.toml")).unwrap();
    let load =
        median_ns(9, 200, |n| (0..n).map(|_| Policy::from_toml_str(&text, "aimate.toml").unwrap().rules().len()).sum());
    println!("load and compile aimate.toml: {:.0} µs", load / 1000.0);
}

criterion_group! {
    name = benches;
    // The criterion groups; `main` adds the summary table.
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_checks
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
