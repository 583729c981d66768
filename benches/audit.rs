//! The durable audit log and the redb store's group commit, against the unaudited check
//! in the same run (issue 15's targets).
//!
//! Workload: EXMO, 10,000 subjects (half granted training), training checks on
//! anonymised behaviour logs, subjects drawn at random. Logs and stores live in a
//! temporary directory on the same disk as `target/`.
//!
//! `cargo bench --bench audit -- --quick` runs the criterion groups (one thread,
//! unaudited vs `Buffered`), then prints the summary used in BENCHMARKS.md:
//! ratios, throughput on 1 and 2 threads, synced batches, 64 synced callers (records
//! per fsync), redb with 64 concurrent writers and one writer's latency, bytes per
//! record and per event. `AUDIT_BENCH_SECONDS` (default 1) sets each timed run.
#![expect(missing_docs, reason = "criterion's macros generate undocumented items")]
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark's setup fails loudly; indices are bounded by construction"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use consent_guard::audit::{AuditLog, AuditLogOptions, AuditSink, Durability};
use consent_guard::sealed::{self, Access, Personal, Tags};
use consent_guard::store::{ConsentStore, RedbConsentStore};
use consent_guard::{
    AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, NoAuditSink, Policy, Purpose,
};
use criterion::{criterion_group, Criterion};

mod support;
use support::{interleaved_medians, median, Rng};

const SUBJECTS: u64 = 10_000;

fn policy() -> Policy {
    Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap()
}

fn grant(subject: &str) -> ConsentEvent {
    serde_json::from_str(&format!(
        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}}"#
    ))
    .unwrap()
}

fn subjects() -> Vec<String> {
    (0..SUBJECTS).map(|i| format!("u{i}")).collect()
}

fn guard(sink: impl AuditSink + 'static, names: &[String]) -> Guard {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let guard = Guard::builder(policy()).clock(FixedClock::new(now)).audit(sink).build().unwrap();
    for name in names.iter().step_by(2) {
        guard.record(&grant(name)).unwrap();
    }
    guard
}

fn training(subject: &str) -> AccessRequest<'_> {
    AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized)
}

fn seconds() -> Duration {
    let secs = std::env::var("AUDIT_BENCH_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(secs)
}

/// Checks per second over `threads` threads for `time`, each running `step`.
fn throughput(threads: usize, time: Duration, step: &(dyn Fn(&mut Rng) -> bool + Sync)) -> f64 {
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (stop, total) = (&stop, &total);
            scope.spawn(move || {
                let mut rng = Rng(0x9E37_79B9 + t as u64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        black_box(step(&mut rng));
                    }
                    n += 1024;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// CPU time (user and system) of the audit writer threads of this process, in ns.
fn writer_cpu_ns() -> f64 {
    let mut total = 0.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return f64::NAN };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "consent-guard-a" && !comm.starts_with("consent-guard-audit") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command name: utime and stime are the 12th and 13th.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
        total += ticks * 1e7; // 100 ticks per second
    }
    total
}

fn bench_buffered(c: &mut Criterion) {
    let names = subjects();
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path(), Durability::BUFFERED).unwrap());
    let plain = guard(NoAuditSink, &names);
    let audited = guard(log.clone(), &names);
    let template = training("");
    let (plain_prepared, audited_prepared) = (plain.prepare(&template), audited.prepare(&template));
    let mut group = c.benchmark_group("audit_1_thread");
    let mut rng = Rng(42);
    group.bench_function("prepared_unaudited", |b| {
        b.iter(|| plain_prepared.check(&names[rng.below(SUBJECTS) as usize]).allowed());
    });
    group.bench_function("prepared_buffered", |b| {
        b.iter(|| audited_prepared.check(&names[rng.below(SUBJECTS) as usize]).allowed());
    });
    group.bench_function("check_unaudited", |b| {
        b.iter(|| plain.check(&training(&names[rng.below(SUBJECTS) as usize])).allowed());
    });
    group.bench_function("check_buffered", |b| {
        b.iter(|| audited.check(&training(&names[rng.below(SUBJECTS) as usize])).allowed());
    });
    group.finish();
    log.flush().unwrap();
}

fn summary() {
    let time = seconds();
    println!("\n## audit summary (each timed run {time:?}; other agents share the machine)");
    let names = subjects();

    // 1 thread, interleaved: unaudited vs Buffered, prepared and plain.
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path(), Durability::BUFFERED).unwrap());
    let plain = guard(NoAuditSink, &names);
    let audited = guard(log.clone(), &names);
    let template = training("");
    let (pp, ap) = (plain.prepare(&template), audited.prepare(&template));
    let (mut r1, mut r2, mut r3, mut r4) = (Rng(1), Rng(1), Rng(1), Rng(1));
    let n = 200_000;
    let m = interleaved_medians(
        9,
        n,
        &mut [
            &mut |n| (0..n).filter(|_| pp.check(&names[r1.below(SUBJECTS) as usize]).allowed()).count(),
            &mut |n| (0..n).filter(|_| ap.check(&names[r2.below(SUBJECTS) as usize]).allowed()).count(),
            &mut |n| (0..n).filter(|_| plain.check(&training(&names[r3.below(SUBJECTS) as usize])).allowed()).count(),
            &mut |n| (0..n).filter(|_| audited.check(&training(&names[r4.below(SUBJECTS) as usize])).allowed()).count(),
        ],
    );
    log.flush().unwrap();
    println!(
        "1 thread, prepared: unaudited {:.1} ns, Buffered {:.1} ns: ratio {:.2}x (target <= 1.5x)",
        m[0],
        m[1],
        m[1] / m[0]
    );
    println!(
        "1 thread, check:    unaudited {:.1} ns, Buffered {:.1} ns: ratio {:.2}x (compact records, issue 31)",
        m[2],
        m[3],
        m[3] / m[2]
    );
    println!(
        "writer thread CPU so far: {:.1} ns per record (on an idle machine it runs on the other core)",
        writer_cpu_ns() / log.stats().records.max(1) as f64
    );
    // The check path alone: the writer parked during the timed rounds (within = 60 s,
    // shards large enough), the records flushed between rounds, untimed.
    {
        let dir = tempfile::tempdir().unwrap();
        let options =
            AuditLogOptions::new(Durability::Buffered { within: Duration::from_secs(60) }).shard_bytes(1 << 30);
        let parked = Arc::new(AuditLog::open_with(dir.path(), options).unwrap());
        let g = guard(parked.clone(), &names);
        let p = g.prepare(&template);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut ra, mut rb) = (Rng(3), Rng(3));
        for _ in 0..9 {
            let start = Instant::now();
            black_box((0..n).filter(|_| pp.check(&names[ra.below(SUBJECTS) as usize]).allowed()).count());
            a.push(start.elapsed().as_nanos() as f64 / n as f64);
            let start = Instant::now();
            black_box((0..n).filter(|_| p.check(&names[rb.below(SUBJECTS) as usize]).allowed()).count());
            b.push(start.elapsed().as_nanos() as f64 / n as f64);
            parked.flush().unwrap();
        }
        let (a, b) = (median(a), median(b));
        println!(
            "1 thread, prepared, check path only (writer parked while timed): unaudited {a:.1} ns, Buffered {b:.1} ns: ratio {:.2}x",
            b / a
        );
    }
    let stats = log.stats();
    println!(
        "Buffered log: {} records, {} commits, {:.1} records/commit",
        stats.records,
        stats.commits,
        stats.records as f64 / stats.commits.max(1) as f64
    );

    // 2 threads vs 1, Buffered, prepared; and unaudited for comparison.
    let ap_step = |rng: &mut Rng| ap.check(&names[rng.below(SUBJECTS) as usize]).allowed();
    let pp_step = |rng: &mut Rng| pp.check(&names[rng.below(SUBJECTS) as usize]).allowed();
    let (mut one, mut two, mut one_plain, mut two_plain) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        one_plain.push(throughput(1, time, &pp_step));
        two_plain.push(throughput(2, time, &pp_step));
        one.push(throughput(1, time, &ap_step));
        two.push(throughput(2, time, &ap_step));
    }
    log.flush().unwrap();
    let (one, two, one_plain, two_plain) = (median(one), median(two), median(one_plain), median(two_plain));
    println!(
        "Buffered prepared: 1 thread {:.2} M/s, 2 threads {:.2} M/s: {:.2}x (target >= 1.7x); unaudited 1 thread {:.2} M/s, 2 threads {:.2} M/s: {:.2}x",
        one / 1e6,
        two / 1e6,
        two / one,
        one_plain / 1e6,
        two_plain / 1e6,
        two_plain / one_plain
    );
    drop((pp, ap));
    drop(audited);
    let buffered_bytes = log.stats();
    drop(log);

    // Synced batches of 10,000 prepared checks; and sealed select.
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path(), Durability::Synced).unwrap());
    let synced = guard(log.clone(), &names);
    let prepared = synced.prepare(&template);
    let mut rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut decided = 0;
        while start.elapsed() < time {
            decided += prepared.check_batch(&names).len();
        }
        rates.push(decided as f64 / start.elapsed().as_secs_f64());
    }
    let before = log.stats();
    let now = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
    let records: Vec<_> = names
        .iter()
        .map(|s| {
            Personal::new(
                Tags::new(s.as_str(), DataCategory::BEHAVIOR_LOG, now).deidentification(Deidentification::Anonymized),
                1u8,
            )
        })
        .collect();
    let access = Access::new(Purpose::AI_TRAINING_MODEL_TRAINING);
    let start = Instant::now();
    let mut selected = 0;
    let mut rounds = 0;
    while start.elapsed() < time {
        selected += sealed::select(&synced, &records, &access).count();
        rounds += 1;
    }
    let select_rate = (rounds * records.len()) as f64 / start.elapsed().as_secs_f64();
    let after = log.stats();
    println!(
        "Synced, check_batch of 10,000 prepared checks: {:.2} M decisions/s (target >= 1 M/s); sealed select (plain checks, full records): {:.2} M records/s, {} kept, {:.0} records per fsync",
        median(rates) / 1e6,
        select_rate / 1e6,
        selected,
        (after.records - before.records) as f64 / (after.fsyncs - before.fsyncs).max(1) as f64
    );
    drop(prepared);
    drop(synced);
    drop(log);

    // 64 synced single callers.
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path(), Durability::Synced).unwrap());
    let synced = guard(log.clone(), &names);
    let prepared = synced.prepare(&template);
    let before = log.stats();
    let rate =
        throughput(64, time * 2, &|rng: &mut Rng| prepared.check(&names[rng.below(SUBJECTS) as usize]).allowed());
    let after = log.stats();
    let (records, commits, fsyncs) =
        (after.records - before.records, after.commits - before.commits, after.fsyncs - before.fsyncs);
    println!(
        "Synced, 64 concurrent single callers: {:.0} checks/s, {records} records, {commits} commits, {fsyncs} fsyncs: {:.2} fsyncs per commit (target <= 1), {:.1} records per fsync (target >= 32)",
        rate,
        fsyncs as f64 / commits.max(1) as f64,
        records as f64 / fsyncs.max(1) as f64
    );
    let synced_single = {
        let before = log.stats();
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < time {
            black_box(prepared.check(&names[n % names.len()]).allowed());
            n += 1;
        }
        let after = log.stats();
        (start.elapsed().as_secs_f64() * 1e6 / n as f64, after.fsyncs - before.fsyncs, n)
    };
    println!(
        "Synced, 1 caller: {:.0} µs per check ({} checks, {} fsyncs)",
        synced_single.0, synced_single.2, synced_single.1
    );
    drop(prepared);
    drop(synced);
    drop(log);

    // Bytes per record.
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path(), Durability::BUFFERED).unwrap());
    let g = guard(log.clone(), &names);
    let p = g.prepare(&template);
    for name in &names {
        black_box(p.check(name).allowed());
    }
    log.flush().unwrap();
    let compact = log.stats();
    for name in &names {
        black_box(g.check(&training(name)).allowed());
    }
    log.flush().unwrap();
    let full = log.stats();
    println!(
        "bytes per audit record: prepared (compact) {:.1}, plain check (compact since issue 31) {:.1}; Buffered run above {:.1} (commit lines and templates included)",
        compact.bytes as f64 / compact.records as f64,
        (full.bytes - compact.bytes) as f64 / (full.records - compact.records) as f64,
        buffered_bytes.bytes as f64 / buffered_bytes.records.max(1) as f64
    );
    drop(p);
    drop(g);
    drop(log);

    // redb: 64 concurrent single-event writers, then one writer's latency.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.redb");
    let store = RedbConsentStore::open(&path).unwrap();
    let events: Vec<ConsentEvent> = (0..4096).map(|i| grant(&format!("w{i}"))).collect();
    let commits_before = RedbConsentStore::commits();
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..64 {
            let (stop, total, store, events) = (&stop, &total, &store, &events);
            scope.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    store.append(std::slice::from_ref(&events[i % events.len()])).unwrap();
                    total.fetch_add(1, Ordering::Relaxed);
                    i += 64;
                }
            });
        }
        std::thread::sleep(time * 2);
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64();
    let appended = total.load(Ordering::Relaxed);
    let commits = RedbConsentStore::commits() - commits_before;
    println!(
        "redb, 64 concurrent single-event writers: {:.0} durable events/s (target >= 50,000); {appended} events in {commits} commits ({:.1} per commit)",
        appended as f64 / elapsed,
        appended as f64 / commits.max(1) as f64
    );
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < time && latencies.len() < 2000 {
        let t = Instant::now();
        store.append(std::slice::from_ref(&events[latencies.len() % events.len()])).unwrap();
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "redb, 1 writer: {} appends, p50 {:.2} ms, p99 {:.2} ms, {:.0} events/s",
        latencies.len(),
        p(0.5),
        p(0.99),
        latencies.len() as f64 / start.elapsed().as_secs_f64()
    );
    let stored = store.events_since(0, usize::MAX).unwrap();
    let json: usize = stored.iter().map(|(_, e)| serde_json::to_string(e).unwrap().len()).sum();
    drop(store);
    let file = std::fs::metadata(&path).unwrap().len();
    println!(
        "bytes per consent event: {:.0} of JSON (the stored value), {:.0} of redb file ({} events, file {} bytes, grown in powers of two)",
        json as f64 / stored.len() as f64,
        file as f64 / stored.len() as f64,
        stored.len(),
        file
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench_buffered
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
