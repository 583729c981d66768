//! `consent-guard`: the command line of the crate, speaking the JSON of
//! `interchange.md` so that any service, reviewer or acceptance suite can ask the same
//! questions of the same policies.
//!
//! | command | exit status |
//! |---|---|
//! | `check --policy P [--events E] [--at T] [--audit A] [REQUESTS]` | 0 every request decided, 2 bad input |
//! | `lint P...` | 0 clean, 1 problems found, 2 unreadable |
//! | `explain --policy P [--purpose X]` | 0, 2 unreadable policy or unknown purpose |
//! | `audit verify A [--anchor N:HASH]` | 0 intact, 1 tampered, 2 unreadable |
//! | `audit export A` | 0 intact, 1 tampered (records before it printed), 2 unreadable |
#![forbid(unsafe_code)]

#[path = "consent_guard/audit.rs"]
mod audit;
#[path = "consent_guard/explain.rs"]
mod explain;
#[path = "consent_guard/input.rs"]
mod input;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use consent_guard::audit::{AuditLog, AuditSink, Durability, JsonLinesAuditSink};
use consent_guard::error::{EventError, Severity, StoreError};
use consent_guard::store::ConsentStore;
use consent_guard::{AccessRequest, ConsentEvent, FixedClock, Guard, Policy, PolicyError, ReasonCode};

use crate::input::{explain as explain_error, for_each_record, Kind};

/// Buffer size for reading input files and writing decisions: large batches are read
/// and written in big blocks rather than line by line.
const BUFFER: usize = 64 * 1024;

/// Enforce a privacy policy from the command line: decide access requests, lint and
/// explain policies, verify audit logs.
#[derive(Debug, Parser)]
#[command(name = "consent-guard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide access requests against a policy; print one decision per line as JSON.
    #[command(long_about = CHECK_HELP)]
    Check(CheckArgs),
    /// Validate policy files; print `file:line:col: message` for each problem.
    #[command(long_about = LINT_HELP)]
    Lint {
        /// Policy files (TOML).
        #[arg(required = true, value_name = "POLICY")]
        policies: Vec<PathBuf>,
    },
    /// Print, for people, what a policy permits for each purpose and on which basis.
    #[command(long_about = EXPLAIN_HELP)]
    Explain {
        /// The policy file (TOML).
        #[arg(long, value_name = "P")]
        policy: PathBuf,
        /// Explain only the rule governing this purpose.
        #[arg(long, value_name = "X")]
        purpose: Option<String>,
    },
    /// Audit logs written by `check --audit`.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print one subject's consent history from a store, as JSON: every event, with
    /// its policy version and level (proof of consent, access and portability requests).
    History {
        /// The consent store: a redb file, or a `postgres://` URL (`postgres` feature).
        #[arg(long, value_name = "S")]
        store: String,
        /// The subject.
        #[arg(long, value_name = "U")]
        subject: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check an audit log's hash chain; name the first record altered, removed,
    /// inserted or reordered.
    #[command(long_about = VERIFY_HELP)]
    Verify {
        /// The audit log: a directory of segments (`check --audit`), or one JSON-lines
        /// file of the older format.
        #[arg(value_name = "A")]
        log: PathBuf,
        /// `N:HASH`, the head of the log as recorded earlier outside it (printed by
        /// `check --audit` and by this command): also catches records removed from the
        /// end and a rewrite of records up to N.
        #[arg(long, value_name = "N:HASH", value_parser = audit::parse_anchor)]
        anchor: Option<audit::Anchor>,
    },
    /// Print every record of an audit log as a full JSON line
    /// `{"request":…,"decision":…}`, compact records expanded; verified as it goes.
    Export {
        /// The audit log: a directory of segments, or one JSON-lines file.
        #[arg(value_name = "A")]
        log: PathBuf,
    },
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The policy file (TOML).
    #[arg(long, value_name = "P")]
    policy: PathBuf,
    /// Consent events (JSON lines), recorded in file order before the first request.
    #[arg(long, value_name = "E", conflicts_with = "store")]
    events: Option<PathBuf>,
    /// Extension: read consent events from a store instead of a file: a redb file, or
    /// a `postgres://` URL (`postgres` feature). The store is only read.
    #[arg(long, value_name = "S")]
    store: Option<String>,
    /// "Now" (RFC 3339) for every request that names no `at` of its own; the present
    /// time when absent.
    #[arg(long, value_name = "T", value_parser = rfc3339)]
    at: Option<DateTime<Utc>>,
    /// Extension: record every decision in this durable audit log, a directory of
    /// hash-chained segments (created if absent; verify it with `audit verify`). An
    /// existing JSON-lines file of the older format is extended instead.
    #[arg(long, value_name = "A")]
    audit: Option<PathBuf>,
    /// Requests: one JSON object, or JSON lines; standard input when absent or `-`.
    #[arg(value_name = "REQUESTS")]
    requests: Option<PathBuf>,
}

const CHECK_HELP: &str = "\
Decide access requests against a policy; print one decision per line as JSON.

Requests are read from REQUESTS (or standard input): one JSON object, or JSON lines
of many. Consent events from --events are recorded in file order before the first
request. Each decision is printed as one JSON line (allowed, code, message, basis,
clause, policy, policy_version, subject, purpose, at).

--audit A (an extension of interchange.md) records every decision in the durable
audit log A: a directory of hash-chained segments, synced (each decision is printed
only once its record is on disk; decisions share fsyncs). One writer per log: a second
`check --audit A` at the same time is refused. At the end the log's head (N:HASH) is
printed on standard error and is in A/head: keep it elsewhere and give it to `audit
verify --anchor` to catch records removed from the end. If a record cannot be written,
the access is denied with `audit_unavailable`. An existing regular file A is taken as
a log of the older one-file JSON-lines format and extended.

Exit status: 0 when every request got a decision (allow or deny); 2 on bad input
(malformed JSON, unknown fields or names, a grant without level, a time that is not
RFC 3339, an unreadable policy), with a message naming file, line and field. The
decisions before the bad line are printed.";

const LINT_HELP: &str = "\
Validate policy files; print `file:line:col: message` for each problem, errors and
warnings (prefixed `warning: `) in file order.

Exit status: 0 clean, 1 problems found (errors or warnings), 2 a file is unreadable.";

const EXPLAIN_HELP: &str = "\
Print, for people, what a policy permits for each purpose: basis, consent level,
opt-in or opt-out, categories, actions, recipients, de-identification, retention,
regions, transfer regions, opt-out signals and the clause id. With --purpose, only
the rule governing that purpose, or that it is denied by default.

Exit status: 0; 2 on an unreadable policy or an unknown purpose.";

const VERIFY_HELP: &str = "\
Check an audit log's hash chain (written by `check --audit`) and print a one-line
summary: the first record altered, removed, inserted or reordered is named by its
segment and line. A is a directory of segments; the chain runs across them. A single
JSON-lines file of the older format is verified too.

Bytes after the last commit (a crash mid-batch; a torn last line in the older format)
are reported as such and are not tampering: no record among them was acknowledged.

What a chain alone cannot tell: records removed from the end of the log (a log cut
after record N is a valid log of N records), and a log rewritten from some record on
by someone who recomputed the hashes (they are not keyed). Keep the head N:HASH
printed by `check --audit` (or by this command, or in A/head) outside the log and pass
it with --anchor (N:HASH, or a file holding it) to catch both. `--anchor 0:<64 zeros>`
is the anchor of an empty log and holds for every intact log.

Exit status: 0 intact (or torn last line), 1 tampered, 2 unreadable.";

/// Why a command could not do its work; every variant exits with status 2.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The policy could not be loaded: `file:line:col: message`, or unreadable.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// A file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The path.
        file: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// One record of the input is bad.
    #[error("{file}:{line}: {message}")]
    Input {
        /// The path (`<stdin>` for standard input).
        file: String,
        /// The 1-based line the record starts on.
        line: u64,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The audit log could not be opened.
    #[error("{file}: {message}")]
    Audit {
        /// The path.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A command-line value the policy does not know.
    #[error("{0}")]
    Usage(String),
    /// The consent store could not be opened or read.
    #[error("{store}: {message}")]
    Store {
        /// The store as given.
        store: String,
        /// What is wrong.
        message: String,
    },
    /// Decisions could not be written.
    #[error("cannot write standard output: {0}")]
    Output(#[source] io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Lint { policies } => lint(&policies),
        Command::Explain { policy, purpose } => explain::run(&policy, purpose.as_deref()),
        Command::Audit(AuditCommand::Verify { log, anchor }) => audit::verify(&log, anchor.as_ref()),
        Command::Audit(AuditCommand::Export { log }) => audit::export(&log),
        Command::History { store, subject } => history(&store, &subject),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            report(&error);
            ExitCode::from(2)
        }
    }
}

/// Prints an error on standard error: every error of an invalid policy, one per line.
fn report(error: &CliError) {
    match error {
        // The reader is gone: nobody is left to tell.
        CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        CliError::Policy(PolicyError::Invalid(diagnostics)) => {
            for diagnostic in diagnostics.iter().filter(|d| d.severity() == Severity::Error) {
                eprintln!("error: {diagnostic}");
            }
        }
        _ => eprintln!("error: {error}"),
    }
}

/// Parses an RFC 3339 time (strictly: chrono's `FromStr` also takes other layouts).
fn rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{text}` is not an RFC 3339 time like 2026-06-01T00:00:00Z ({e})"))
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// An error and its sources, as one line.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn open(path: &Path) -> Result<BufReader<File>, CliError> {
    File::open(path)
        .map(|file| BufReader::with_capacity(BUFFER, file))
        .map_err(|source| CliError::Read { file: display(path), source })
}

/// Opens a consent store named on the command line.
fn open_store(spec: &str) -> Result<Box<dyn ConsentStore>, CliError> {
    let failed = |e: StoreError| CliError::Store { store: spec.to_owned(), message: e.to_string() };
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return consent_guard::store::PostgresConsentStore::connect(spec)
            .map(|store| Box::new(store) as Box<dyn ConsentStore>)
            .map_err(failed);
        #[cfg(not(feature = "postgres"))]
        return Err(CliError::Store {
            store: spec.to_owned(),
            message: "this build has no PostgreSQL support; build with `--features cli,postgres`".to_owned(),
        });
    }
    consent_guard::store::RedbConsentStore::open(spec)
        .map(|store| Box::new(store) as Box<dyn ConsentStore>)
        .map_err(failed)
}

/// `history`: one subject's events from a store, as pretty JSON.
fn history(spec: &str, subject: &str) -> Result<ExitCode, CliError> {
    let store = open_store(spec)?;
    let history =
        store.history(subject).map_err(|e| CliError::Store { store: spec.to_owned(), message: e.to_string() })?;
    let json = serde_json::to_string_pretty(&history)
        .map_err(|e| CliError::Store { store: spec.to_owned(), message: e.to_string() })?;
    let mut out = io::stdout().lock();
    writeln!(out, "{json}").map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}

/// `check`: events first, then one decision per request.
fn check(args: &CheckArgs) -> Result<ExitCode, CliError> {
    let policy = Policy::from_toml_file(&args.policy)?;
    let mut builder = Guard::builder(policy);
    if let Some(at) = args.at {
        builder = builder.clock(FixedClock::new(at));
    }
    let sink = match &args.audit {
        None => None,
        Some(path) => {
            let failed = |e: consent_guard::error::AuditError| CliError::Audit {
                file: display(path),
                message: with_sources(&e),
            };
            let sink = if path.is_file() {
                CliSink::Lines(JsonLinesAuditSink::open(path).map_err(failed)?)
            } else {
                CliSink::Log(AuditLog::open(path, Durability::Synced).map_err(failed)?)
            };
            Some((path, Arc::new(sink)))
        }
    };
    if let Some((_, sink)) = &sink {
        builder = builder.audit(Arc::clone(sink));
    }
    if let Some(spec) = &args.store {
        builder = builder.store(open_store(spec)?);
    }
    // With a store, building replays it; an event the policy cannot apply is bad input.
    let guard = builder
        .build()
        .map_err(|e| CliError::Store { store: args.store.clone().unwrap_or_default(), message: e.to_string() })?;

    if let Some(path) = &args.events {
        record_events(&guard, path)?;
    }

    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(BUFFER, stdout.lock());
    let mut unaudited = 0u64;
    let decided = match args.requests.as_deref() {
        Some(path) if path != Path::new("-") => {
            decide_all(&guard, open(path)?, &display(path), &mut out, &mut unaudited)
        }
        _ => decide_all(&guard, io::stdin().lock(), "<stdin>", &mut out, &mut unaudited),
    };
    // The decisions before a bad line are delivered, so the caller sees how far it got.
    let flushed = out.flush().map_err(CliError::Output);
    decided?;
    flushed?;

    if let Some((path, sink)) = &sink {
        if unaudited > 0 {
            eprintln!(
                "warning: {}: {unaudited} records could not be written; those requests were denied (audit_unavailable)",
                path.display()
            );
        }
        if let Ok((records, hash)) = sink.head() {
            eprintln!("audit: {} holds {records} records; head {records}:{hash}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records the consent events of a file in order.
fn record_events(guard: &Guard, path: &Path) -> Result<(), CliError> {
    let file = display(path);
    for_each_record(open(path)?, &file, |bytes, line| {
        let bad = |message: String| CliError::Input { file: file.clone(), line, message };
        let event: ConsentEvent =
            serde_json::from_slice(bytes).map_err(|e| bad(explain_error(bytes, Kind::Event, &e)))?;
        guard.record(&event).map_err(|e| bad(event_message(&e)))
    })
}

/// An event error, naming the field it is about.
fn event_message(error: &EventError) -> String {
    match error {
        EventError::UnknownPurpose(_) => format!("purposes: {error}"),
        EventError::UnknownCategory(_) => format!("scope.categories: {error}"),
        EventError::UnknownRecipient(_) => format!("scope.recipients: {error}"),
        // The others name their fields themselves.
        _ => error.to_string(),
    }
}

/// Decides every request of `input` at the guard's clock (`--at`, else the present),
/// writing one decision per line. A request that names its own `at` is a question
/// about that time: answered (and audited) as a what-if, marked `"what_if": true`.
fn decide_all(
    guard: &Guard,
    input: impl BufRead,
    file: &str,
    out: &mut impl Write,
    unaudited: &mut u64,
) -> Result<(), CliError> {
    for_each_record(input, file, |bytes, line| {
        let bad = |message: String| CliError::Input { file: file.to_owned(), line, message };
        let request: AccessRequest<'_> =
            serde_json::from_slice(bytes).map_err(|e| bad(explain_error(bytes, Kind::Request, &e)))?;
        guard.policy().validate_request(&request).map_err(|e| bad(e.to_string()))?;
        let decision = match request.at {
            Some(at) => guard.what_if(&request, at),
            None => guard.check(&request),
        };
        if decision.code() == ReasonCode::AuditUnavailable {
            *unaudited += 1;
        }
        serde_json::to_writer(&mut *out, &decision).map_err(|e| CliError::Output(e.into()))?;
        out.write_all(b"\n").map_err(CliError::Output)
    })
}

/// `lint`: every problem of every file; 2 if one is unreadable, else 1 if any problem.
fn lint(paths: &[PathBuf]) -> Result<ExitCode, CliError> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut problems, mut unreadable) = (false, false);
    for path in paths {
        let file = display(path);
        match Policy::lint_file(path) {
            Ok(diagnostics) => {
                for diagnostic in diagnostics {
                    problems = true;
                    writeln!(out, "{diagnostic}").map_err(CliError::Output)?;
                }
            }
            Err(source) => {
                // The other files are still linted.
                out.flush().map_err(CliError::Output)?;
                report(&CliError::Read { file, source });
                unreadable = true;
            }
        }
    }
    out.flush().map_err(CliError::Output)?;
    Ok(match (unreadable, problems) {
        (true, _) => ExitCode::from(2),
        (false, true) => ExitCode::from(1),
        (false, false) => ExitCode::SUCCESS,
    })
}

/// The audit sink of `check --audit`: the durable log, or a file of the older format.
#[derive(Debug)]
enum CliSink {
    Log(AuditLog),
    Lines(JsonLinesAuditSink),
}

impl CliSink {
    /// The head: records kept and the last hash.
    fn head(&self) -> Result<(u64, String), consent_guard::error::AuditError> {
        match self {
            CliSink::Log(log) => log.flush().map(|head| (head.seq, head.hash)),
            CliSink::Lines(lines) => lines.head(),
        }
    }
}

impl AuditSink for CliSink {
    fn record(&self, record: &consent_guard::AuditRecord<'_>) -> Result<(), consent_guard::error::AuditError> {
        match self {
            CliSink::Log(log) => log.record(record),
            CliSink::Lines(lines) => lines.record(record),
        }
    }
}
