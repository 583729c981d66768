//! `serve`: the HTTP decision service (`consent_guard_server`) on a store and an audit
//! log named on the command line, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use consent_guard::audit::{AuditLog, Durability};
use consent_guard::observe::{Observer, SubjectField};
use consent_guard_server::{Server, ServerOptions, Tokens};

use crate::store::{open_store, Mode};
use crate::{display, with_sources, CliError};

/// The environment variable that may hold tokens (as a tokens file does).
const TOKENS_ENV: &str = "CONSENT_GUARD_TOKENS";

/// The environment variable that may hold the key of subject pseudonyms in traces.
const TRACE_KEY_ENV: &str = "CONSENT_GUARD_TRACE_KEY";

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The policy file (TOML); read again on SIGHUP and `POST /v1/policy/reload`.
    #[arg(long, value_name = "P")]
    policy: PathBuf,
    /// The consent store: a redb file (created if absent), or a `postgres://` URL
    /// (`postgres` feature).
    #[arg(long, value_name = "S")]
    store: String,
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8181")]
    listen: std::net::SocketAddr,
    /// Bearer tokens, one `ROLE TOKEN` per line (roles check, record, read, admin);
    /// also read from CONSENT_GUARD_TOKENS.
    #[arg(long, value_name = "F")]
    tokens: Option<PathBuf>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "C", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "K", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Record every decision in this durable audit log (a directory of hash-chained
    /// segments, as `check --audit`).
    #[arg(long, value_name = "A")]
    audit: Option<PathBuf>,
    /// `synced`: a decision is answered once its record is on disk; `buffered`: the
    /// log commits within 10 ms (see docs/audit.md).
    #[arg(long, value_enum, default_value_t = AuditDurability::Synced)]
    audit_durability: AuditDurability,
    /// Also serve `GET /metrics` on this address without a token (for a Prometheus
    /// that cannot send one); keep it private. The main address still serves it to
    /// the `read` role.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// The largest request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = consent_guard_server::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// The longest a request may take, in milliseconds (a slower client gets 408).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    request_timeout: u64,
    /// The most connections open at once; one more is closed when accepted. Keep it
    /// below the file-descriptor limit (`ulimit -n`).
    #[arg(long, value_name = "N", default_value_t = consent_guard_server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// A connection that sends and receives nothing for this long is closed, in
    /// milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    idle_timeout: u64,
    /// Accept HTTP/2 as well as HTTP/1.1 (off: a connection opening with the HTTP/2
    /// preface is closed).
    #[arg(long)]
    http2: bool,
    /// Threads answering requests (default: one per core). On a machine whose cores
    /// other processes share, fewer threads than cores keep the slowest answers
    /// shorter (BENCHMARKS.md, issue 31).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
    /// Over a store other processes write: how long the state stays usable after the
    /// store last confirmed it, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    max_staleness: u64,
    /// How subjects appear in traces: `keyed` (HMAC-SHA256 under the key in
    /// CONSENT_GUARD_TRACE_KEY), `omitted` or `plain`.
    #[arg(long, value_enum, default_value_t = TraceSubjects::Keyed)]
    trace_subjects: TraceSubjects,
    /// Write a tracing event per decision and per consent event as JSON lines on
    /// standard error (targets `consent_guard::decision`, `consent_guard::consent`).
    #[arg(long)]
    trace: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AuditDurability {
    Synced,
    Buffered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TraceSubjects {
    Keyed,
    Omitted,
    Plain,
}

fn config(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

pub(crate) fn run(args: &ServeArgs) -> Result<ExitCode, CliError> {
    let mut tokens = match &args.tokens {
        Some(path) => Tokens::from_file(path).map_err(config)?,
        None => Tokens::new(),
    };
    if let Some(more) = Tokens::from_env(TOKENS_ENV).map_err(config)? {
        tokens = tokens.merge(more);
    }
    let subjects = match args.trace_subjects {
        TraceSubjects::Omitted => SubjectField::Omitted,
        TraceSubjects::Plain => SubjectField::Plain,
        TraceSubjects::Keyed => match std::env::var(TRACE_KEY_ENV) {
            Ok(key) if !key.is_empty() => SubjectField::keyed(key.as_bytes()),
            // Without a key there is no pseudonym to give: leave subjects out.
            _ => SubjectField::Omitted,
        },
    };
    if args.trace {
        let subscriber =
            tracing_subscriber::fmt().json().with_max_level(tracing::Level::INFO).with_writer(std::io::stderr).finish();
        tracing::subscriber::set_global_default(subscriber).map_err(config)?;
    }
    let store: std::sync::Arc<dyn consent_guard::store::ConsentStore> =
        std::sync::Arc::from(open_store(&args.store, Mode::Writable)?);
    let mut options = ServerOptions::default()
        .listen(args.listen)
        .body_limit(args.body_limit)
        .request_timeout(Duration::from_millis(args.request_timeout))
        .max_connections(args.max_connections)
        .idle_timeout(Duration::from_millis(args.idle_timeout))
        .http2(args.http2)
        .max_staleness(Duration::from_millis(args.max_staleness));
    if let Some(address) = args.metrics_listen {
        options = options.metrics_listen(address);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        options = options.tls(cert, key);
    }
    let mut server = Server::from_policy_file(&args.policy, std::sync::Arc::clone(&store))
        .tokens(tokens)
        .options(options)
        .observer(Observer::new(subjects))
        .on_reload(|outcome| match outcome {
            Ok(done) => eprintln!("reload: policy {} {} (was {})", done.policy, done.version, done.previous_version),
            Err(e) => eprintln!("reload failed, the policy loaded before goes on serving: {}", with_sources(e)),
        });
    if let Some(path) = &args.audit {
        let durability = match args.audit_durability {
            AuditDurability::Synced => Durability::Synced,
            AuditDurability::Buffered => Durability::BUFFERED,
        };
        // Pseudonyms under the store's keys: the export finds a subject's records
        // through its key, and an erasure in the store forgets them.
        // A store that keeps no keys: every audited decision is denied
        // (`audit_unavailable`, the log's failure names the keys); stderr's lines are
        // left to the service's own messages.
        let (options, _no_keys) = crate::audit_options(durability, Some(&store), &args.store);
        let log = AuditLog::open_with(path, options)
            .map_err(|e| CliError::Audit { file: display(path), message: with_sources(&e) })?;
        server = server.audit(log);
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    let runtime = runtime
        .enable_all()
        .thread_name("consent-guard-http")
        .build()
        .map_err(|e| config(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let bound = server.bind().await.map_err(|e| CliError::Usage(with_sources(&e)))?;
        let addr = bound.local_addr().map_err(|e| config(&e))?;
        let scheme = if args.tls_cert.is_some() { "https" } else { "http" };
        eprintln!("consent-guard: listening on {scheme}://{addr}");
        if let Some(metrics) = bound.metrics_addr().map_err(|e| config(&e))? {
            eprintln!("consent-guard: metrics without a token on http://{metrics}/metrics");
        }
        bound.serve(shutdown()).await.map_err(|e| CliError::Usage(with_sources(&e)))?;
        eprintln!("consent-guard: stopped; requests drained, audit flushed");
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
