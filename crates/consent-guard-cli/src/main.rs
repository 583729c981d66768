//! `consent-guard`: the command line of the crate, speaking the JSON of
//! `docs/interchange.md` (names from `docs/vocabulary.md`) so that any service, reviewer or acceptance suite can ask the same
//! questions of the same policies.
//!
//! | command | exit status |
//! |---|---|
//! | `check --policy P [--events E] [--at T] [--audit A] [REQUESTS]` | 0 every request decided, 2 bad input |
//! | `lint [--deny-warnings] [--format full|short] P...` | 0 no error, 1 an error (or a warning with `--deny-warnings`), 2 unreadable |
//! | `explain --policy P [--purpose X] [--format text|markdown|html|json]` | 0, 2 unreadable policy or unknown purpose |
//! | `diff OLD NEW [--format text|json]` | 0 no undeclared material change, 1 some, 2 unreadable |
//! | `schema policy|event|request|decision|export` | 0, 2 unknown name |
//! | `test FILE...` | 0 every case passed, 1 a case failed, 2 unreadable or invalid file |
//! | `audit verify A [--anchor N:HASH]` | 0 intact, 1 tampered, 2 unreadable |
//! | `audit export A` | 0 intact, 1 tampered (records before it printed), 2 unreadable |
//! | `audit migrate --from OLD --to NEW --store S` | 0 migrated, 2 not migrated (the old log does not verify, is not of format 2, or the new one cannot be written) |
//! | `history --store S --subject U` | 0, 2 unreadable store |
//! | `export SUBJECT --store S [--audit A]` | 0, 1 the audit log does not verify (the export holds what precedes the damage), 2 unreadable |
//! | `quarantine --policy P --store S` | 0 none, 1 events quarantined, 2 unreadable |
//! | `owed --policy P --store S [--at T] [--calendar C] [--subject U] [--audit A]` | 0 nothing overdue, 1 an entry past its deadline and not settled, 2 unreadable (or a log that does not verify) |
//! | `serve --policy P --store S [--listen A] [--tokens F]` | 0 after a graceful shutdown, 2 cannot start |
//! | `store migrate --from OLD --to NEW` | 0 migrated, 2 unreadable old store or `NEW` exists |
//!
//! Every command that opens a redb store takes `--master-key-file F` (or the variable
//! `CONSENT_GUARD_MASTER_KEY`, 64 hex digits); without either, the store's key is in
//! `<store>.key` beside it (see `docs/erasure.md`).
//!
//! A store named on the command line is only read, and never created: a redb file is
//! opened read-only beside the service that writes it (see `docs/stores.md`).
#![forbid(unsafe_code)]

mod audit;
mod diff;
mod explain;
mod export;
mod golden;
mod lint;
mod owed;
mod report;
mod serve;
mod store;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use consent_guard::audit::{AuditLog, AuditLogOptions, Durability};
use consent_guard::error::Severity;
use consent_guard::interchange::answer::{self, AnswerError};
use consent_guard::interchange::records::{for_each_record, too_long, RecordsError, MAX_RECORD_BYTES};
use consent_guard::interchange::{explain as explain_error, RecordKind};
use consent_guard::{FixedClock, Guard, Policy, PolicyError, ReasonCode};

use crate::store::{open_store, Mode};

/// Buffer size for reading input files and writing decisions: large batches are read
/// and written in big blocks rather than line by line.
const BUFFER: usize = 64 * 1024;

/// Enforce a privacy policy from the command line: decide access requests, lint and
/// explain policies, verify audit logs.
#[derive(Debug, Parser)]
#[command(name = "consent-guard", version, about, long_about = None, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The master key of a redb consent store (64 hex digits in a file): what its
    /// subjects' locators and tombstones are computed under. Default: the variable
    /// CONSENT_GUARD_MASTER_KEY, else `<store>.key` beside the store.
    #[arg(long, global = true, value_name = "F")]
    master_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide access requests against a policy; print one decision per line as JSON.
    #[command(long_about = CHECK_HELP)]
    Check(CheckArgs),
    /// Validate policy files; show each problem with its source line.
    #[command(long_about = LINT_HELP)]
    Lint {
        /// Policy files (TOML).
        #[arg(required = true, value_name = "POLICY")]
        policies: Vec<PathBuf>,
        /// Exit 1 on warnings too (those a rule does not allow), to gate CI.
        #[arg(long)]
        deny_warnings: bool,
        /// `full`: the message with its source line; `short`: one line
        /// `file:line:col: message` per problem (for editors and scripts).
        #[arg(long, value_enum, default_value_t = lint::LintFormat::Full)]
        format: lint::LintFormat,
        /// The previous version of the policy: also warn about each material change
        /// since it that the rule's `changed_in` does not declare.
        #[arg(long, value_name = "OLD")]
        since: Option<PathBuf>,
    },
    /// Show what changed between two versions of a policy, purpose by purpose, and
    /// which changes need consent again.
    #[command(long_about = DIFF_HELP)]
    Diff {
        /// The previous version (TOML).
        #[arg(value_name = "OLD")]
        old: PathBuf,
        /// The new version (TOML).
        #[arg(value_name = "NEW")]
        new: PathBuf,
        /// `text` or `json`.
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
    /// Print, for people, what a policy permits for each purpose and on which basis.
    #[command(long_about = EXPLAIN_HELP)]
    Explain {
        /// The policy file (TOML), as `lint`, `diff` and `test` take it.
        #[arg(value_name = "POLICY", required_unless_present = "policy", conflicts_with = "policy")]
        path: Option<PathBuf>,
        /// The policy file, as earlier versions took it (the same as POLICY).
        #[arg(long, value_name = "P")]
        policy: Option<PathBuf>,
        /// Explain only the rule governing this purpose.
        #[arg(long, value_name = "X")]
        purpose: Option<String>,
        /// `text`, or the reviewer's report: `markdown`, `html` (a self-contained page
        /// with a card per rule), `json`.
        #[arg(long, value_enum, default_value_t = explain::ExplainFormat::Text)]
        format: explain::ExplainFormat,
    },
    /// Run golden test files of a policy: requests and the decision each must get.
    #[command(long_about = TEST_HELP)]
    Test {
        /// Golden test files (TOML).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of a policy, a consent event, a request, a decision or a
    /// problem, a subject's export, or the body schemas of the HTTP API (`openapi`).
    #[command(long_about = SCHEMA_HELP)]
    Schema {
        /// `policy`, `event`, `request`, `decision`, `problem`, `export` or `openapi`.
        #[arg(value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(
            consent_guard::schema::NAMES.iter().copied().chain(["openapi"])
        ))]
        name: String,
        /// With `openapi`: narrow the names to those this policy knows.
        #[arg(long, value_name = "P")]
        policy: Option<PathBuf>,
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
    /// Print one subject's own export, as one JSON document: the consent history and
    /// every decision about the subject in the audit log (access and portability
    /// requests; `consent-guard schema export`).
    Export(export::ExportArgs),
    /// List the stored events a policy cannot apply, as JSON lines (position, subject,
    /// reason): during a rolling policy upgrade, what replicas on this policy skip, and
    /// whose decisions they answer `consent_state_unavailable`.
    Quarantine {
        /// The policy file (TOML).
        #[arg(long, value_name = "P")]
        policy: PathBuf,
        /// The consent store: a redb file, or a `postgres://` URL (`postgres` feature).
        #[arg(long, value_name = "S")]
        store: String,
    },
    /// List what must be deleted or anonymized now, as JSON lines: subject, purposes,
    /// categories, reason, clause, when it became due, the deadline, whether overdue.
    Owed(owed::OwedArgs),
    /// Serve decisions over HTTP: check, batches, consent events, histories, the
    /// policy, health and metrics.
    #[command(long_about = SERVE_HELP)]
    Serve(serve::ServeArgs),
    /// Maintain a redb consent store.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy a store of format version 1 (plain subject ids) into a new store of
    /// version 2, which forgets erased subjects: every event is copied, encrypted under
    /// its subject's key; an erased subject keeps only a tombstone (and events after
    /// its erasure). The old file is left as it was and must then be deleted: it still
    /// holds every id in plain text.
    Migrate {
        /// The old store (format version 1).
        #[arg(long, value_name = "OLD")]
        from: PathBuf,
        /// The new store; must not exist.
        #[arg(long, value_name = "NEW")]
        to: PathBuf,
    },
}

/// How `diff` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DiffFormat {
    /// For people.
    Text,
    /// For tools.
    Json,
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
    /// Rewrite a format-2 audit log (plain subject ids) as a new format-3 log
    /// (pseudonyms under the store's subject keys).
    #[command(long_about = MIGRATE_HELP)]
    Migrate {
        /// The format-2 log directory (left as it is).
        #[arg(long, value_name = "OLD")]
        from: PathBuf,
        /// The new log directory (created; it must not hold a log).
        #[arg(long, value_name = "NEW")]
        to: PathBuf,
        /// The consent store whose subject keys the new log is written under: a redb
        /// file, or a `postgres://` URL (`postgres` feature).
        #[arg(long, value_name = "S")]
        store: String,
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
    /// a `postgres://` URL (`postgres` feature). Its events are only read; with
    /// `--audit` it is opened for writing, to keep the keys of subjects audited for the
    /// first time (a redb file another process holds open is then refused).
    #[arg(long, value_name = "S")]
    store: Option<String>,
    /// "Now" (RFC 3339) for every request that names no `at` of its own; the present
    /// time when absent.
    #[arg(long, value_name = "T", value_parser = rfc3339)]
    at: Option<DateTime<Utc>>,
    /// Extension: record every decision in this durable audit log, a directory of
    /// hash-chained segments (created if absent; verify it with `audit verify`), naming
    /// subjects by pseudonyms under the store's subject keys. An existing JSON-lines
    /// file of the older format is refused (it is read-only).
    #[arg(long, value_name = "A")]
    audit: Option<PathBuf>,
    /// Requests: one JSON object, or JSON lines; standard input when absent or `-`.
    #[arg(value_name = "REQUESTS")]
    requests: Option<PathBuf>,
    /// Co-process mode: read requests and consent events interleaved as JSON lines on
    /// standard input, and answer each line at once with one flushed line: a
    /// decision, `{"recorded":1}`, or `{"error":"line N: field: message"}`.
    #[arg(long, conflicts_with_all = ["store", "requests"])]
    follow: bool,
}

/// Where the contract is, for every `--help`.
const AFTER_HELP: &str = "\
The JSON of events, requests and decisions: docs/interchange.md; the names: \
docs/vocabulary.md; policy files: docs/policy-format.md \
(https://github.com/consent-guard/consent-guard/tree/main/docs).";

const CHECK_HELP: &str = "\
Decide access requests against a policy; print one decision per line as JSON.

Requests are read from REQUESTS (or standard input): one JSON object, or JSON lines
of many. Consent events from --events are recorded in file order before the first
request. Each decision is printed as one JSON line (allowed, code, message, basis,
clause, policy, policy_version, subject, purpose, at).

--audit A (an extension of docs/interchange.md) records every decision in the durable
audit log A: a directory of hash-chained segments, synced (each decision is printed
only once its record is on disk; decisions share fsyncs). One writer per log: a second
`check --audit A` at the same time is refused. At the end the log's head (N:HASH) is
printed on standard error and is in A/head: keep it elsewhere and give it to `audit
verify --anchor` to catch records removed from the end. If a record cannot be written,
the access is denied with `audit_unavailable`. No record holds a subject id: each names
its subject by a pseudonym under the subject's key, kept in the store --store names
(a store that keeps no keys denies every audited decision); without --store, under
keys held in memory, which end with the command (its records cannot be exported
afterwards). An existing regular file A (the older one-file format) is refused; a log
directory of the older format 2 (plain ids) is refused too: `audit migrate` rewrites
it.

Exit status: 0 when every request got a decision (allow or deny); 2 on bad input
(malformed JSON, unknown fields or names, a grant without level, a time that is not
RFC 3339, an unreadable policy), with a message naming file, line and field. The
decisions before the bad line are printed.";
const SERVE_HELP: &str = "\
Serve decisions over HTTP (docs/openapi.yaml; deployment in docs/deploying.md):
POST /v1/check, POST /v1/check/batch (a JSON array or JSON lines in, JSON lines out),
POST /v1/check/compact (one request without subject and many subjects in, columns out),
POST /v1/events (durable before 200), GET /v1/subjects/{id}/history, GET /v1/policy,
POST /v1/policy/reload, GET /healthz, GET /readyz, GET /metrics (Prometheus).

A request is decided at the server's clock; one that names its own `at` gets a
what-if answer, marked \"what_if\": true and audited as such.

Every endpoint but /healthz and /readyz needs `Authorization: Bearer TOKEN`. Tokens
come from --tokens F and CONSENT_GUARD_TOKENS, one `ROLE TOKEN` per line (or
comma-separated `ROLE:TOKEN`), roles check, record, read and admin: a missing or
unknown token gets 401, a token without the role 403. The server does not start
without a token.

SIGHUP (or POST /v1/policy/reload) reloads the policy atomically: the old one keeps
serving until the new one compiles and the store is replayed on it; a failed reload
changes nothing. SIGINT/SIGTERM drain the requests in flight and flush the audit log.

Exit status: 0 after a graceful shutdown; 2 when it cannot start (policy, store,
tokens, TLS files, address).";

const LINT_HELP: &str = "\
Validate policy files; show each problem, errors and warnings in file order, with the
source line it is about (--format full, the default) or as one line
`file:line:col: [warning: ]message [name]` (--format short, for editors and scripts).

Each warning has a stable name. A rule that is right as written allows it, with the
reason, and the warning is no longer shown:

    allow = [{ warning = \"sensitive_below_separate\", reason = \"...\" }]

Names: redundant_purpose, opt_out_sensitive, sensitive_below_separate, shadowed_rule,
unused_recipient (cannot be allowed: remove the recipient), unused_allow, and with
--since OLD undeclared_material_change (a material change since OLD that the rule's
changed_in does not declare; see `diff`).

Exit status: 0 no error (warnings allowed to pass), 1 an error, or a warning with
--deny-warnings, 2 a file is unreadable.";

const EXPLAIN_HELP: &str = "\
Print, for people, what the policy POLICY (a path, or --policy P) permits for each
purpose: the policy's header (regions, separate-consent triggers, minors, named
recipients with their limits, the purposes no rule covers), then per rule its basis,
consent level, opt-in or opt-out, categories, actions, recipients, what
[rule.with_consent] adds, every permission (recipient and actions) with the consent
it needs, de-identification, retention, regions, transfer regions, opt-out signals,
the clause id, the sentence of the privacy policy the rule encodes (its `source`)
and the lint warnings about it. With --purpose, only the rule governing that
purpose, or that it is denied by default.

--format markdown|html|json prints the reviewer's report instead: the header, then a
card per rule with its permissions in plain words and human labels for the data.
The HTML is one self-contained page to open in a browser.

Exit status: 0; 2 on an unreadable policy or an unknown purpose.";

const DIFF_HELP: &str = "\
Show what changed between two versions of a policy, purpose by purpose: for each
purpose a rule names, the fields of its governing rule that changed. A change is
MATERIAL when people must consent again: a new purpose; broader categories, actions,
recipients, regions or transfer regions; longer retention; a weaker consent level,
opt-in becoming opt-out, less de-identification, a signal no longer honoured,
consent no longer asked.

A material change of a consent rule is declared when the new rule's `changed_in` is
later than the old policy's version (consent given before it then gets
`reconsent_required`); `diff` says which are not, and `lint --since OLD NEW` warns
about them (`undeclared_material_change`).

Exit status: 0 no undeclared material change, 1 some, 2 an unreadable policy.";

const SCHEMA_HELP: &str = "\
Print a JSON Schema (draft 2020-12) on standard output: `policy` (the TOML policy
file, for editors such as taplo and Even Better TOML: save it and point a `#:schema`
comment or the editor's schema association at it), `event` (one line of an events
file), `request` (an access request), `decision` (one line `check` prints), `problem`
(an error of the HTTP service, RFC 9457), `export` (the document `export` prints).

`openapi` prints the body schemas of docs/openapi.yaml (`components.schemas`),
generated from the same types; with `--policy P`, narrowed to the
purposes, categories and recipients P knows (what an API tester should send).

Exit status: 0; 2 on an unknown name.";

const TEST_HELP: &str = "\
Run golden test files: each names a policy (relative to the file), consent events, and
cases of request -> expected `allowed`, `code` and optionally `clause`, with an
optional `at` (the guard's clock). The format is in docs/interchange.md (\"Golden test
files\"); the library API consent_guard::testing runs the same files in `cargo test`.

Each failing case prints its request and a diff (`-` expected, `+` actual) with the
decision's message; each file prints a summary, and the run ends with
`N passed, M failed`.

Exit status: 0 every case passed, 1 a case failed, 2 a file is unreadable or invalid
(the other files still run).";

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

const MIGRATE_HELP: &str = "\
Rewrite an audit log of format 2, whose records name subjects by their plain ids, as a
new log of format 3, whose records name them by pseudonyms under their keys in the
consent store S (the format `check --audit` and `serve --audit` write). OLD is
verified first; a log that does not verify is not migrated. Every committed record is
written, in order, into NEW. A subject erased in S gets a key that is thrown away at
the end: its old records can no longer be linked to anyone.

The new log is a new hash chain: anchors (heads) kept of the old log do not apply to
it; keep the new head printed at the end instead. OLD still holds plain ids: once the
new log is checked (`audit verify NEW`), delete OLD yourself.

Exit status: 0 migrated, 2 not migrated.";

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
    /// A holiday calendar could not be used: `file:line:col: field: message`.
    #[error("{0}")]
    Calendar(#[from] consent_guard::rights::CalendarError),
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

impl From<RecordsError> for CliError {
    fn from(error: RecordsError) -> CliError {
        match error {
            RecordsError::Read { file, source } => CliError::Read { file, source },
            RecordsError::Record { file, line, message } => CliError::Input { file, line, message },
            // The reader's error is non-exhaustive: whatever else it says is bad input.
            other => CliError::Usage(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    store::set_master_key_file(cli.master_key_file);
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Lint { policies, deny_warnings, format, since } => {
            lint::run(&lint::LintOptions { paths: &policies, format, deny_warnings, since: since.as_deref() })
        }
        Command::Diff { old, new, format } => diff::run(&old, &new, format == DiffFormat::Json),
        Command::Explain { path, policy, purpose, format } => match path.or(policy) {
            Some(path) => explain::run(&path, purpose.as_deref(), format),
            None => Err(CliError::Usage("explain: name the policy file".to_owned())),
        },
        Command::Test { files } => golden::run(&files),
        Command::Schema { name, policy } => schema(&name, policy.as_deref()),
        Command::Audit(AuditCommand::Verify { log, anchor }) => audit::verify(&log, anchor.as_ref()),
        Command::Audit(AuditCommand::Export { log }) => audit::export(&log),
        Command::Audit(AuditCommand::Migrate { from, to, store }) => audit::migrate(&from, &to, &store),
        Command::History { store, subject } => history(&store, &subject),
        Command::Quarantine { policy, store } => quarantine(&policy, &store),
        Command::Owed(args) => owed::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Store(StoreCommand::Migrate { from, to }) => store::migrate(&from, &to),
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
pub(crate) fn report(error: &CliError) {
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

pub(crate) fn display(path: &Path) -> String {
    path.display().to_string()
}

/// An error and its sources, as one line.
pub(crate) fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // An error that already says its cause (`#[error("...: {0}")]`) is not
        // followed by it again.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn open(path: &Path) -> Result<BufReader<File>, CliError> {
    File::open(path)
        .map(|file| BufReader::with_capacity(BUFFER, file))
        .map_err(|source| CliError::Read { file: display(path), source })
}

/// A guard that replays a store as of now, for one run of the command line: its
/// decisions come from that snapshot, so they do not go stale while a long request
/// file is decided.
fn snapshot_builder(policy: Policy, spec: &str) -> Result<consent_guard::GuardBuilder, CliError> {
    Ok(Guard::builder(policy).store(open_store(spec, Mode::ReadOnly)?).max_staleness(std::time::Duration::MAX))
}

/// Warns on standard error of every stored event the policy cannot apply.
fn warn_quarantined(guard: &Guard, spec: &str) {
    let quarantined = guard.quarantined();
    for event in &quarantined {
        eprintln!("warning: {spec}: {event} (subject {:?})", event.subject);
    }
    if !quarantined.is_empty() {
        eprintln!(
            "warning: {spec}: {} events this policy cannot apply; decisions for their subjects are \
             consent_state_unavailable",
            quarantined.len()
        );
    }
}

/// `quarantine`: the stored events a policy cannot apply, as JSON lines.
fn quarantine(policy: &Path, spec: &str) -> Result<ExitCode, CliError> {
    let policy = Policy::from_toml_file(policy)?;
    let guard = snapshot_builder(policy, spec)?
        .build()
        .map_err(|e| CliError::Store { store: spec.to_owned(), message: e.to_string() })?;
    let quarantined = guard.quarantined();
    let mut out = io::stdout().lock();
    for event in &quarantined {
        let line = serde_json::json!({"position": event.position, "subject": event.subject, "reason": event.reason});
        writeln!(out, "{line}").map_err(CliError::Output)?;
    }
    warn_quarantined(&guard, spec);
    Ok(if quarantined.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `schema`: one JSON Schema, pretty-printed.
fn schema(name: &str, policy: Option<&Path>) -> Result<ExitCode, CliError> {
    let schema = if name == "openapi" {
        let components = match policy {
            Some(path) => consent_guard::schema::openapi_components_for(&Policy::from_toml_file(path)?),
            None => consent_guard::schema::openapi_components(),
        };
        serde_json::json!({ "components": { "schemas": components } })
    } else {
        consent_guard::schema::schema(name).ok_or_else(|| CliError::Usage(format!("unknown schema `{name}`")))?
    };
    let text = serde_json::to_string_pretty(&schema).map_err(|e| CliError::Output(e.into()))?;
    let mut out = io::stdout().lock();
    writeln!(out, "{text}").map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}

/// `history`: one subject's events from a store, as pretty JSON.
fn history(spec: &str, subject: &str) -> Result<ExitCode, CliError> {
    let store = open_store(spec, Mode::ReadOnly)?;
    let history =
        store.history(subject).map_err(|e| CliError::Store { store: spec.to_owned(), message: e.to_string() })?;
    let json = serde_json::to_string_pretty(&history)
        .map_err(|e| CliError::Store { store: spec.to_owned(), message: e.to_string() })?;
    let mut out = io::stdout().lock();
    writeln!(out, "{json}").map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}

/// The options of an audit log the CLI opens: the store's subject keys when a store is
/// given (a store that keeps none fails every record: the decisions are then denied
/// `audit_unavailable`, never audited with a plain id), else keys in memory, which
/// end with the process (its records cannot be exported afterwards). With them, the
/// warning to print when the store keeps no keys.
pub(crate) fn audit_options(
    durability: Durability,
    store: Option<&Arc<dyn consent_guard::store::ConsentStore>>,
    spec: &str,
) -> (AuditLogOptions, Option<String>) {
    let options = AuditLogOptions::new(durability);
    match store {
        Some(store) => {
            let warning = store.subject_keys().is_none().then(|| {
                format!(
                    "warning: {spec}: this store keeps no subject keys: the audit log cannot pseudonymise \
                     subjects, and every audited decision will be denied (audit_unavailable)"
                )
            });
            (options.subject_keys(Arc::new(consent_guard::store::StoreKeys(Arc::clone(store)))), warning)
        }
        None => (options, None),
    }
}

/// `check`: events first, then one decision per request.
fn check(args: &CheckArgs) -> Result<ExitCode, CliError> {
    let policy = Policy::from_toml_file(&args.policy)?;
    // With a store, the audit log pseudonymises subjects under the store's keys, so
    // that a subject's export finds its records and an erasure forgets them.
    // An audited check writes subject keys (a subject audited for the first time gets
    // one, durably, before its record): the store is then opened for writing, which a
    // service holding the same redb file refuses. It must exist: a mistyped path is an
    // error, not a new store.
    let store: Option<Arc<dyn consent_guard::store::ConsentStore>> = match &args.store {
        Some(spec) if args.audit.is_some() => {
            let is_url = spec.starts_with("postgres://") || spec.starts_with("postgresql://");
            if !is_url && !std::path::Path::new(spec).exists() {
                return Err(CliError::Store { store: spec.clone(), message: "no such store".to_owned() });
            }
            Some(Arc::from(open_store(spec, Mode::Writable)?))
        }
        Some(spec) => Some(Arc::from(open_store(spec, Mode::ReadOnly)?)),
        None => None,
    };
    let mut builder = match &store {
        Some(store) => Guard::builder(policy).store(Arc::clone(store)).max_staleness(std::time::Duration::MAX),
        None => Guard::builder(policy),
    };
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
            // One writable format: a file of the older one-file format (v1) is only
            // verified and exported, never extended.
            if path.is_file() {
                return Err(CliError::Audit {
                    file: display(path),
                    message: "this is an audit log of the older one-file format, which is read-only: \
                              `audit verify` and `audit export` still read it; give a directory (a new \
                              path becomes one) for the audit log"
                        .to_owned(),
                });
            }
            let (options, warning) =
                audit_options(Durability::Synced, store.as_ref(), args.store.as_deref().unwrap_or_default());
            if let Some(warning) = warning {
                eprintln!("{warning}");
            }
            Some((path, Arc::new(AuditLog::open_with(path, options).map_err(failed)?)))
        }
    };
    if let Some((_, sink)) = &sink {
        builder = builder.audit(Arc::clone(sink));
    }
    // With a store, building replays it; events the policy cannot apply are
    // quarantined, with a warning, and only their subjects fail closed.
    let guard = builder
        .build()
        .map_err(|e| CliError::Store { store: args.store.clone().unwrap_or_default(), message: e.to_string() })?;
    if let Some(spec) = &args.store {
        warn_quarantined(&guard, spec);
    }

    if let Some(path) = &args.events {
        record_events(&guard, path)?;
    }
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(BUFFER, stdout.lock());
    let mut unaudited = 0u64;
    let decided = match args.requests.as_deref() {
        // Unbuffered: every answer is flushed as it is written.
        _ if args.follow => follow(&guard, io::stdin().lock(), &mut io::stdout().lock(), &mut unaudited),
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
        if let Ok(head) = sink.flush() {
            let (records, hash) = (head.seq, head.hash);
            eprintln!("audit: {} holds {records} records; head {records}:{hash}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records the consent events of a file in order.
fn record_events(guard: &Guard, path: &Path) -> Result<(), CliError> {
    let file = display(path);
    for_each_record(open(path)?, &file, |bytes, line| {
        answer::record(guard, bytes).map_err(|e| CliError::Input { file: file.clone(), line, message: e.to_string() })
    })
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
        let bad = |e: AnswerError| CliError::Input { file: file.to_owned(), line, message: e.to_string() };
        answer::answer(guard, bytes, |decision| {
            if decision.code() == ReasonCode::AuditUnavailable {
                *unaudited += 1;
            }
            serde_json::to_writer(&mut *out, &decision).map_err(|e| CliError::Output(e.into()))?;
            out.write_all(b"\n").map_err(CliError::Output)
        })
        .map_err(bad)?
    })
}
/// `check --follow`: every line of `input` is a request or a consent event (it has a
/// `type`), answered at once with one flushed line, so that a co-process can write a
/// line and read its answer. A bad line is answered with an error and the rest goes on.
fn follow(guard: &Guard, mut input: impl BufRead, out: &mut impl Write, unaudited: &mut u64) -> Result<(), CliError> {
    /// Tells an event (it has a `type`) from a request.
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        kind: Option<serde::de::IgnoredAny>,
    }
    let mut buffer = Vec::with_capacity(4096);
    let mut line = 0u64;
    loop {
        buffer.clear();
        let read = (&mut input)
            .take(MAX_RECORD_BYTES + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(|source| CliError::Read { file: "<stdin>".to_owned(), source })?;
        if read == 0 {
            return Ok(());
        }
        line += 1;
        if buffer.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let answer = follow_line(guard, &buffer, line, unaudited, |bytes| {
            serde_json::from_slice::<Probe>(bytes).map(|p| p.kind.is_some())
        });
        out.write_all(&answer)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(CliError::Output)?;
    }
}

/// The answer to one line of `check --follow`.
fn follow_line(
    guard: &Guard,
    bytes: &[u8],
    line: u64,
    unaudited: &mut u64,
    is_event: impl Fn(&[u8]) -> Result<bool, serde_json::Error>,
) -> Vec<u8> {
    let failed =
        |message: String| serde_json::json!({ "error": format!("line {line}: {message}") }).to_string().into_bytes();
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return failed(too_long());
    }
    match is_event(bytes) {
        Err(e) => failed(explain_error(bytes, RecordKind::Request, &e)),
        Ok(true) => match answer::record(guard, bytes) {
            Ok(()) => {
                // Recorded; a purpose no rule governs is said, as the server says it.
                let warnings = answer::parse_event(bytes)
                    .map(|event| answer::ungoverned(guard.policy(), &event))
                    .unwrap_or_default();
                if warnings.is_empty() {
                    br#"{"recorded":1}"#.to_vec()
                } else {
                    serde_json::json!({ "recorded": 1, "warnings": warnings }).to_string().into_bytes()
                }
            }
            Err(e) => failed(e.to_string()),
        },
        Ok(false) => {
            let answered = answer::answer(guard, bytes, |decision| {
                if decision.code() == ReasonCode::AuditUnavailable {
                    *unaudited += 1;
                }
                serde_json::to_vec(&decision).map_err(|e| e.to_string())
            });
            match answered {
                Ok(Ok(json)) => json,
                Ok(Err(message)) => failed(message),
                Err(e) => failed(e.to_string()),
            }
        }
    }
}
