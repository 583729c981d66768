//! The instruction budget of a check (issue 31): instruction counts do not depend on
//! the machine's load, so CI can hold them where wall-clock figures would flake.
//!
//! ```sh
//! cargo build --release -p consent-guard-budget
//! target/release/consent-guard-budget verify            # every path against budget.txt
//! target/release/consent-guard-budget measure           # the figures, to raise a budget
//! valgrind --tool=callgrind target/release/consent-guard-budget run prepared 200000
//! ```
//!
//! `run MODE N` is the workload: the EXMO policy, 10,000 subjects (one grant of
//! training or advertising each, a quarter of the training grants withdrawn), then N
//! training checks of random subjects in one way of asking (`native`, a `HashMap`
//! baseline; `check`; `prepared`; `handle`; `handle_batch` and `id_batch`, batches of
//! 1,024 through `PreparedAccess::check_handles` and `check_batch`), and four guard
//! paths again with a buffered durable [`AuditLog`] (`check_audited`,
//! `prepared_audited`, `handle_audited`, `handle_batch_audited`). `verify` and `measure` run it under callgrind with N and with 0
//! checks: the difference divided by N is the cost of one check, setup cancelled out.
//!
//! Only the checking thread is counted (`--separate-threads`): an audited check hands
//! its record to the log's writer thread, which pseudonymises, formats, hashes and
//! writes it off the check's path. The audited figure less the plain one is what an
//! audit record adds to the check itself (issue 31 item 2: about 150 at most).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use chrono::{DateTime, TimeZone, Utc};
use consent_guard::audit::{AuditLog, AuditLogOptions, Durability};
use consent_guard::consent::{GrantEvent, WithdrawEvent};
use consent_guard::{
    AccessRequest, ConsentEvent, ConsentLevel, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose,
    SubjectHandle,
};

const SUBJECTS: u64 = 10_000;
/// Checks per measurement: enough that setup noise is far below 1%.
const CHECKS: u64 = 200_000;
/// How much a path may grow over its committed figure before `verify` fails.
const MARGIN_PERCENT: u64 = 5;
const MODES: [&str; 10] = [
    "native",
    "check",
    "prepared",
    "handle",
    "handle_batch",
    "id_batch",
    "check_audited",
    "prepared_audited",
    "handle_audited",
    "handle_batch_audited",
];
/// Subjects per batch in the batch paths: a batch job's chunk of a column.
const BATCH: u64 = 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["run", mode, count] => {
            count.parse().map_err(|_| format!("`{count}` is not a number of checks")).and_then(|count| run(mode, count))
        }
        ["verify"] => verify(&default_budget()),
        ["verify", "--budget", file] => verify(Path::new(file)),
        ["measure"] => measure().map(|_| ExitCode::SUCCESS),
        _ => Err("usage: consent-guard-budget run MODE N | verify [--budget FILE] | measure".to_owned()),
    };
    result.unwrap_or_else(|message| {
        eprintln!("consent-guard-budget: {message}");
        ExitCode::from(2)
    })
}

fn default_budget() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("budget.txt")
}

/// Days after 2026-01-01.
fn at(days: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 0).single().unwrap_or_default() + chrono::Duration::days(days)
}

/// xorshift64*: the same workload on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let next = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // Uniform in 0..n without a division; the shift keeps it below n.
        u64::try_from((u128::from(next) * u128::from(n)) >> 64).unwrap_or(0)
    }
}

fn run(mode: &str, count: u64) -> Result<ExitCode, String> {
    if !MODES.contains(&mode) {
        return Err(format!("unknown mode `{mode}`: one of {}", MODES.join(", ")));
    }
    let policy =
        Policy::from_toml_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies/exmo.toml"))
            .map_err(|e| e.to_string())?;
    let audited = mode.strip_suffix("_audited");
    let audit_dir = scratch(mode, "audit");
    let mut builder = Guard::builder(policy).clock(FixedClock::new(at(150)));
    if audited.is_some() {
        // Buffered, flushed at most every minute and in segments larger than the run
        // writes: the writer thread's timing does not reach the checking thread.
        let options = AuditLogOptions::new(Durability::Buffered { within: std::time::Duration::from_secs(60) })
            .shard_bytes(1 << 30);
        let log = AuditLog::open_with(&audit_dir, options).map_err(|e| e.to_string())?;
        builder = builder.audit(std::sync::Arc::new(log));
    }
    let guard = builder.build().map_err(|e| e.to_string())?;
    let mode = audited.unwrap_or(mode);
    let ids: Vec<String> = (0..SUBJECTS).map(|i| format!("u{i}")).collect();
    let mut rng = Rng(0x5EED);
    let mut native: HashMap<u64, (bool, bool)> = HashMap::new();
    for (index, id) in (0u64..).zip(&ids) {
        let granted = rng.below(2) == 0;
        let withdrawn = rng.below(4) == 0;
        let purpose = if granted { Purpose::AI_TRAINING } else { Purpose::ADVERTISING };
        let mut events =
            vec![ConsentEvent::from(GrantEvent::new(id.clone(), vec![purpose], ConsentLevel::Separate, at(1)))];
        if withdrawn {
            events.push(WithdrawEvent::new(id.clone(), vec![Purpose::AI_TRAINING], at(30)).into());
        }
        guard.record_all(&events).map_err(|e| e.to_string())?;
        native.insert(index, (granted, withdrawn));
    }
    let template = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized);
    let prepared = guard.prepare(&template);
    let handles: Vec<SubjectHandle<'_>> = ids.iter().map(|id| guard.subject_handle(id)).collect();
    // One loop per path, so that a check pays for nothing but itself: no dispatch on
    // the mode, no lookup the path does not need.
    let mut rng = Rng(42);
    let mut next = move || rng.below(SUBJECTS);
    let index = |subject: u64| usize::try_from(subject).unwrap_or(usize::MAX);
    let mut allowed = 0u64;
    match mode {
        "native" => {
            for _ in 0..count {
                let yes = native.get(&next()).is_some_and(|(granted, withdrawn)| *granted && !*withdrawn);
                allowed += u64::from(black_box(yes));
            }
        }
        "check" => {
            for _ in 0..count {
                let Some(id) = ids.get(index(next())) else { continue };
                let mut request = template.clone();
                request.subject = std::borrow::Cow::Borrowed(id.as_str());
                allowed += u64::from(black_box(guard.check(&request).allowed()));
            }
        }
        "prepared" => {
            for _ in 0..count {
                let Some(id) = ids.get(index(next())) else { continue };
                allowed += u64::from(black_box(prepared.check(id).allowed()));
            }
        }
        "handle_batch" => {
            // The batch's handles are gathered as a job would from its column: that
            // copy is counted with the checks.
            let mut batch: Vec<SubjectHandle<'_>> = Vec::with_capacity(BATCH as usize);
            let mut done = 0;
            while done < count {
                let size = (count - done).min(BATCH);
                batch.clear();
                batch.extend((0..size).filter_map(|_| handles.get(index(next())).copied()));
                allowed += prepared.check_handles(&batch).iter().filter(|d| d.allowed()).count() as u64;
                done += size;
            }
        }
        "id_batch" => {
            let mut batch: Vec<&str> = Vec::with_capacity(BATCH as usize);
            let mut done = 0;
            while done < count {
                let size = (count - done).min(BATCH);
                batch.clear();
                batch.extend((0..size).filter_map(|_| ids.get(index(next())).map(String::as_str)));
                allowed += prepared.check_batch(&batch).iter().filter(|d| d.allowed()).count() as u64;
                done += size;
            }
        }
        _ => {
            for _ in 0..count {
                let Some(handle) = handles.get(index(next())) else { continue };
                allowed += u64::from(black_box(prepared.check_handle(handle).allowed()));
            }
        }
    }
    println!("{mode}: {count} checks, {allowed} allowed");
    drop(guard);
    let _ = std::fs::remove_dir_all(&audit_dir);
    Ok(ExitCode::SUCCESS)
}

/// A fresh path in the temporary directory for one run of `mode`.
fn scratch(mode: &str, what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("consent-guard-budget-{}-{mode}-{what}", std::process::id()))
}

/// Instructions callgrind counts on the main thread of `run MODE N` of this very
/// binary.
fn instructions(mode: &str, count: u64) -> Result<u64, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let out = scratch(mode, "callgrind");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--separate-threads=yes", "--dump-line=no"])
        .arg(format!("--callgrind-out-file={}", out.join("callgrind.out").display()))
        .arg(&me)
        .args(["run", mode, &count.to_string()])
        .output()
        .map_err(|e| format!("cannot run valgrind (install it: apt-get install valgrind): {e}"));
    // The main thread's file; callgrind numbers threads from 1 in the order they start.
    let main_thread = out.join("callgrind.out-01");
    let counted = std::fs::read_to_string(&main_thread);
    let _ = std::fs::remove_dir_all(&out);
    let output = output?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("valgrind failed on `{mode}`:\n{stderr}"));
    }
    let text = counted.map_err(|e| format!("callgrind wrote no profile of the main thread ({e}):\n{stderr}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("summary:").or_else(|| line.strip_prefix("totals:")))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("callgrind's profile of `{mode}` holds no instruction count"))
}

/// Instructions per check of each path.
fn measure() -> Result<Vec<(&'static str, u64)>, String> {
    let mut figures = Vec::new();
    for mode in MODES {
        let with = instructions(mode, CHECKS)?;
        let without = instructions(mode, 0)?;
        let per_check = with.saturating_sub(without) / CHECKS;
        println!("{mode:<22}{per_check}");
        figures.push((mode, per_check));
    }
    Ok(figures)
}

fn read_budget(file: &Path) -> Result<HashMap<String, u64>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut budget = HashMap::new();
    for (number, line) in (1..).zip(text.lines()) {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(mode), Some(figure), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("{}:{number}: expected `PATH INSTRUCTIONS`", file.display()));
        };
        let figure = figure.parse().map_err(|_| format!("{}:{number}: `{figure}` is not a count", file.display()))?;
        if !MODES.contains(&mode) {
            return Err(format!("{}:{number}: unknown path `{mode}`", file.display()));
        }
        budget.insert(mode.to_owned(), figure);
    }
    Ok(budget)
}

fn verify(file: &Path) -> Result<ExitCode, String> {
    let budget = read_budget(file)?;
    println!("instructions per check; a path fails above its budget + {MARGIN_PERCENT}%");
    let mut over = Vec::new();
    for (mode, measured) in measure()? {
        let Some(&allowed) = budget.get(mode) else {
            return Err(format!("{}: no budget for `{mode}`", file.display()));
        };
        let limit = allowed + allowed * MARGIN_PERCENT / 100;
        if measured > limit {
            over.push(format!(
                "{mode}: {measured} instructions per check, over the budget {allowed} (+{MARGIN_PERCENT}% = {limit})"
            ));
        }
    }
    if over.is_empty() {
        println!("every path within its budget");
        return Ok(ExitCode::SUCCESS);
    }
    for line in &over {
        eprintln!("over budget: {line}");
    }
    Ok(ExitCode::from(1))
}
