//! The HTTP decision service behind `consent-guard serve`: one
//! [`Guard`] over a consent store and a durable [`AuditLog`], answering the JSON of
//! `docs/interchange.md` over HTTP/1.1 (axum on tokio, TLS by rustls). The API is in
//! `docs/openapi.yaml`; deployment in `docs/deploying.md`.
//!
//! | endpoint | role | answers |
//! |---|---|---|
//! | `POST /v1/check` | `check` | one decision, at the server's clock; a request with its own `at` gets a what-if (`"what_if": true`) |
//! | `POST /v1/check/batch` | `check` | a JSON array or JSON lines of requests in, JSON lines of decisions streamed out |
//! | `POST /v1/check/compact` | `check` | one request without its subject and a list of subjects in, columns of answers out (`allowed`, `codes`, `clauses`) |
//! | `POST /v1/events` | `record` | one event, an array or JSON lines, durable in the store before `200` |
//! | `GET /v1/subjects/{id}/history` | `read` | the subject's consent history (proof of consent); `404` when it has none |
//! | `GET /v1/subjects/{id}/export` | `read` | the subject's own export: history and every decision about the subject in the audit log (`docs/erasure.md`); `404` when neither holds anything, `503` when the log does not verify |
//! | `GET /v1/policy` | any | what `explain --format json` says, for the policy enforced now (`consent_guard::policy::explain`) |
//! | `POST /v1/policy/reload` | `admin` | reloads the policy (also on SIGHUP); a failure changes nothing |
//! | `GET /metrics` | `read` | Prometheus text |
//! | `GET /healthz` | none | the process answers |
//! | `GET /readyz` | none | the store answers and the state is current (`503` otherwise) |
//!
//! Every request but the probes needs `Authorization: Bearer TOKEN` ([`Tokens`]),
//! checked on the headers before any body is read: none or an unknown token gets
//! `401`, a token without the role `403`. Every error is an RFC 9457 problem
//! (`application/problem+json`, one mapping, listed in `docs/deploying.md`): bad JSON
//! gets `400` with the command line's `field: message` (and the `field`, `line` or
//! `item`), a body over the limit `413` (at once when its `Content-Length` says so), a
//! client slower than the request timeout `408`, a store that cannot answer `503`. A
//! decision is never an HTTP error: a guard whose state is stale answers `200` with
//! the denial `consent_state_unavailable`, as the library does.

mod auth;
mod body;
mod conn;
mod handlers;
mod problem;

pub use auth::{Role, Tokens};

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum_server::accept::NoDelayAcceptor;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::Semaphore;

use consent_guard::audit::{AuditLog, AuditSink};
use consent_guard::error::{AuditError, EventError, PolicyError};
use consent_guard::observe::{Observer, CHECK_SECONDS};
use consent_guard::policy::Policy;
use consent_guard::reload::{GuardHandle, ReloadError};
use consent_guard::store::ConsentStore;
use consent_guard::Guard;

/// Every route the server answers, as (method, path): the contract `docs/openapi.yaml`
/// documents (a test holds the two to each other).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/check"),
    ("POST", "/v1/check/batch"),
    ("POST", "/v1/check/compact"),
    ("POST", "/v1/events"),
    ("GET", "/v1/subjects/{id}/history"),
    ("GET", "/v1/subjects/{id}/export"),
    ("GET", "/v1/policy"),
    ("POST", "/v1/policy/reload"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
];

/// Why the server could not start, serve or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting is wrong (tokens, TLS files, the listen address).
    #[error("{0}")]
    Config(String),
    /// The policy did not load or compile.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// The consent store could not be replayed.
    #[error("consent store: {0}")]
    Store(#[from] EventError),
    /// The audit log failed.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// The new policy could not take over (the old one goes on serving).
    #[error("{0}")]
    Reload(#[from] ReloadError),
    /// The listen address could not be bound (in use, or not this machine's).
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Listening or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The default body limit, 8 MiB: a batch of 10,000 checks of about 800 bytes each fits.
pub const DEFAULT_BODY_LIMIT: usize = 8 << 20;

/// The default cap on open connections: under the common file-descriptor limit of
/// 1,024 with room for the store, the audit log and the listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How the server listens and how long it waits.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Where to listen (`127.0.0.1:8181`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// The largest request body, in bytes ([`DEFAULT_BODY_LIMIT`], 8 MiB): a larger one
    /// gets `413`.
    pub body_limit: usize,
    /// The longest a request may take, body included (10 s): a slower one gets `408`.
    pub request_timeout: Duration,
    /// The longest a client may take to send a request's headers (5 s), and to send
    /// the first byte after connecting (or finish a TLS handshake); the connection is
    /// closed then. An HTTP/1 connection idle between requests is closed after it too.
    pub header_timeout: Duration,
    /// A connection that neither sends nor receives a byte for this long is closed
    /// (30 s), whatever its protocol or state.
    pub idle_timeout: Duration,
    /// The most connections open at once (512); one more is closed as soon as it is
    /// accepted. Keep it below the process's file-descriptor limit (`ulimit -n`), less
    /// what the store and the audit log use.
    pub max_connections: usize,
    /// Accept HTTP/2 (`false`). Off, a connection that opens with the HTTP/2 preface
    /// is closed; TLS offers only `http/1.1` either way.
    pub http2: bool,
    /// How long a graceful shutdown waits for requests in flight (10 s).
    pub shutdown_timeout: Duration,
    /// How often the guard syncs with the store (250 ms; at most a quarter of
    /// `max_staleness` over a shared store).
    pub sync_interval: Duration,
    /// How long the guard may answer from its state after the store last confirmed it
    /// current, over a store other processes write ([`consent_guard::GuardBuilder::max_staleness`]).
    pub max_staleness: Duration,
    /// TLS: the certificate chain and the private key, PEM files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Reload the policy on SIGHUP (`true`).
    pub reload_on_sighup: bool,
    /// Also serve `GET /metrics` here, without a token, as exporters usually do (a
    /// Prometheus that cannot send a bearer token scrapes it). Keep it on a private
    /// network: it tells decision counts by clause. `None` (the default): only the
    /// main address serves `/metrics`, to the `read` role.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8181)),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            http2: false,
            shutdown_timeout: Duration::from_secs(10),
            sync_interval: Duration::from_millis(250),
            max_staleness: consent_guard::guard::DEFAULT_MAX_STALENESS,
            metrics_listen: None,
            tls: None,
            reload_on_sighup: true,
        }
    }
}

impl ServerOptions {
    /// Sets the listen address.
    #[must_use]
    pub fn listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Serves `GET /metrics` without a token on `address` too (port 0 picks one).
    #[must_use]
    pub fn metrics_listen(mut self, address: SocketAddr) -> Self {
        self.metrics_listen = Some(address);
        self
    }

    /// Sets the body limit.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the header timeout.
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Sets the idle timeout.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the cap on open connections (at least 1).
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Accepts HTTP/2 (with prior knowledge, on plaintext) or not.
    #[must_use]
    pub fn http2(mut self, accept: bool) -> Self {
        self.http2 = accept;
        self
    }

    /// Sets the shutdown timeout.
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets the sync interval.
    #[must_use]
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = interval;
        self
    }

    /// Sets the staleness bound.
    #[must_use]
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.max_staleness = bound;
        self
    }

    /// Serves TLS with this certificate chain and key (PEM files).
    #[must_use]
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert.into(), key.into()));
        self
    }

    /// Whether SIGHUP reloads the policy.
    #[must_use]
    pub fn reload_on_sighup(mut self, reload: bool) -> Self {
        self.reload_on_sighup = reload;
        self
    }
}

/// Loads the policy, at start and at every reload.
pub type PolicyLoader = Arc<dyn Fn() -> Result<Policy, PolicyError> + Send + Sync>;

/// Told the outcome of every reload, from `POST /v1/policy/reload` or SIGHUP.
pub type ReloadListener = Arc<dyn Fn(&Result<Reloaded, ServerError>) + Send + Sync>;

/// A reload that took effect.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Reloaded {
    /// The policy's name.
    pub policy: String,
    /// The version now enforced.
    pub version: String,
    /// The version enforced before.
    pub previous_version: String,
}

/// A decision service, configured; [`Server::bind`] starts it.
#[must_use]
pub struct Server {
    load: PolicyLoader,
    store: Arc<dyn ConsentStore>,
    audit: Option<Arc<AuditLog>>,
    tokens: Tokens,
    options: ServerOptions,
    observer: Observer,
    on_reload: Option<ReloadListener>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("store", &self.store)
            .field("audit", &self.audit)
            .field("tokens", &self.tokens)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A service deciding by the policy `load` returns (called again at every reload),
    /// over `store`.
    pub fn new(
        load: impl Fn() -> Result<Policy, PolicyError> + Send + Sync + 'static,
        store: impl ConsentStore + 'static,
    ) -> Server {
        Server {
            load: Arc::new(load),
            store: Arc::new(store),
            audit: None,
            tokens: Tokens::new(),
            options: ServerOptions::default(),
            observer: Observer::default(),
            on_reload: None,
        }
    }

    /// A service deciding by the policy file at `path` (TOML), read again at every reload.
    pub fn from_policy_file(path: impl Into<PathBuf>, store: impl ConsentStore + 'static) -> Server {
        let path = path.into();
        Server::new(move || Policy::from_toml_file(&path), store)
    }

    /// Audits every decision in `log`. With [`consent_guard::audit::Durability::Synced`], a
    /// decision is answered only once its record is on disk; checks then run on
    /// tokio's blocking threads, and a batch shares one commit.
    ///
    /// The log's records hold pseudonyms under its subject keys, and the export
    /// (`GET /v1/subjects/{id}/export`) finds a subject's records through the same keys
    /// ([`AuditLog::subject_keys`]). Open it with the store's keys,
    /// `AuditLogOptions::subject_keys(Arc::new(StoreKeys(store)))` over the store the
    /// service reads, as `consent-guard serve` does: with the default keys in memory,
    /// records written before a restart are never found again.
    pub fn audit(mut self, log: AuditLog) -> Self {
        self.audit = Some(Arc::new(log));
        self
    }

    /// The tokens accepted.
    pub fn tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = tokens;
        self
    }

    /// Listening, limits and timeouts.
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// How decisions and consent events are observed (metrics, tracing).
    pub fn observer(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    /// Told the outcome of every reload.
    pub fn on_reload(mut self, listener: impl Fn(&Result<Reloaded, ServerError>) + Send + Sync + 'static) -> Self {
        self.on_reload = Some(Arc::new(listener));
        self
    }

    /// Loads the policy, replays the store, reads the TLS files and binds the listen
    /// address; nothing is served until [`Bound::serve`].
    ///
    /// # Errors
    ///
    /// When there is no token, the policy or the store fails, the TLS files are
    /// unreadable or the address cannot be bound.
    pub async fn bind(self) -> Result<Bound, ServerError> {
        if self.tokens.is_empty() {
            return Err(ServerError::Config(
                "no bearer token configured: give a tokens file or CONSENT_GUARD_TOKENS".to_owned(),
            ));
        }
        let tls = match &self.options.tls {
            None => None,
            Some((cert, key)) => Some(tls_config(cert, key)?),
        };
        let address = self.options.listen;
        let listener = std::net::TcpListener::bind(address)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|source| ServerError::Listen { address, source })?;
        let metrics_listener = match self.options.metrics_listen {
            None => None,
            Some(address) => Some(
                std::net::TcpListener::bind(address)
                    .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                    .map_err(|source| ServerError::Listen { address, source })?,
            ),
        };
        let audit_blocks = self.audit.as_ref().is_some_and(|log| log.defers_records());
        let (load, store, audit, staleness) =
            (Arc::clone(&self.load), Arc::clone(&self.store), self.audit.clone(), self.options.max_staleness);
        let guard = tokio::task::spawn_blocking(move || build_guard(&load, store, audit, staleness))
            .await
            .map_err(|e| ServerError::Config(format!("the policy loader panicked: {e}")))??;
        let app = Arc::new(App {
            guards: GuardHandle::new(guard),
            load: self.load,
            audit: self.audit,
            audit_blocks,
            tokens: self.tokens,
            observer: self.observer,
            metrics: prometheus(),
            options: self.options,
            reloading: tokio::sync::Mutex::new(()),
            last_sync: AtomicI64::new(i64::MIN),
            audit_handed: AtomicU64::new(0),
            on_reload: self.on_reload,
        });
        app.synced();
        Ok(Bound { app, listener, metrics_listener, tls })
    }
}

/// A bound server, not yet serving.
#[derive(Debug)]
pub struct Bound {
    app: Arc<App>,
    listener: std::net::TcpListener,
    metrics_listener: Option<std::net::TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Bound {
    /// The address listened on (with the port picked when it was 0).
    ///
    /// # Errors
    ///
    /// When the socket cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.listener.local_addr()?)
    }

    /// The address `/metrics` is served on without a token, when
    /// [`ServerOptions::metrics_listen`] is set.
    ///
    /// # Errors
    ///
    /// When the socket cannot tell.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ServerError> {
        Ok(self.metrics_listener.as_ref().map(std::net::TcpListener::local_addr).transpose()?)
    }

    /// Serves until `shutdown` completes, then drains: no new connection is accepted,
    /// requests in flight get up to `shutdown_timeout` to finish, the audit log is
    /// flushed, and the store follower stops.
    ///
    /// # Errors
    ///
    /// When serving fails, or the audit log cannot be flushed.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let Bound { app, listener, metrics_listener, tls } = self;
        let metrics_task = match metrics_listener {
            None => None,
            Some(listener) => {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let router = handlers::metrics_router(Arc::clone(&app));
                Some(tokio::spawn(async move {
                    let _ = axum::serve(listener, router).await;
                }))
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let follower = {
            let (app, stop) = (Arc::clone(&app), Arc::clone(&stop));
            std::thread::Builder::new().name("consent-guard-sync".into()).spawn(move || app.follow(&stop))?
        };
        #[cfg(unix)]
        if app.options.reload_on_sighup {
            let app = Arc::clone(&app);
            let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    let _ = app.reload().await;
                }
            });
        }
        let handle = axum_server::Handle::new();
        {
            let (handle, grace) = (handle.clone(), app.options.shutdown_timeout);
            tokio::spawn(async move {
                shutdown.await;
                handle.graceful_shutdown(Some(grace));
            });
        }
        let router = handlers::router(Arc::clone(&app)).into_make_service();
        let limits = conn::Limits {
            permits: Arc::new(Semaphore::new(app.options.max_connections.clamp(1, Semaphore::MAX_PERMITS))),
            first_byte: app.options.header_timeout,
            idle: app.options.idle_timeout,
            http2: app.options.http2,
        };
        let served = match tls {
            None => {
                // Without TCP_NODELAY a streamed batch's last chunk waits for the client's
                // delayed ACK (40 ms on Linux).
                let acceptor = conn::LimitAcceptor { inner: NoDelayAcceptor::new(), limits };
                let mut server = axum_server::from_tcp(listener).acceptor(acceptor).handle(handle);
                app.configure(server.http_builder());
                server.serve(router).await
            }
            Some(config) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(NoDelayAcceptor::new());
                let acceptor = conn::LimitAcceptor { inner: acceptor, limits };
                let mut server = axum_server::from_tcp(listener).acceptor(acceptor).handle(handle);
                app.configure(server.http_builder());
                server.serve(router).await
            }
        };
        if let Some(task) = metrics_task {
            task.abort();
        }
        stop.store(true, Ordering::Release);
        let _ = follower.join();
        let flushed = match &app.audit {
            Some(log) => log.flush().map(drop).map_err(ServerError::from),
            None => Ok(()),
        };
        served?;
        flushed
    }
}

/// The rustls configuration of the certificate chain and key files.
fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad =
        |file: &std::path::Path, e: &dyn std::fmt::Display| ServerError::Config(format!("{}: {e}", file.display()));
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    // rustls 0.23.48 deprecates the ring provider for lacking post-quantum key
    // exchange; the workspace keeps ring (no C toolchain beyond ring's own, no cmake)
    // until it moves to aws-lc-rs. Classical X25519/P-256 key exchange is unchanged.
    #[allow(deprecated, reason = "ring has no post-quantum key exchange; see the comment above")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| bad(key, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The Prometheus recorder, installed once per process (the `metrics` facade has one
/// global recorder): every server of the process renders the same counters.
fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Microseconds to tens of milliseconds: a check in memory to one waiting on
            // an fsync of the audit log.
            let buckets = [
                0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
                0.025, 0.05, 0.1,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(CHECK_SECONDS.to_owned()), &buckets)
                .ok()?
                .install_recorder()
                .ok()?;
            // `# HELP` lines, with the unit.
            consent_guard::observe::describe();
            Some(handle)
        })
        .clone()
}

/// Loads the policy and builds a guard over the store and audit log, replaying the
/// store. Blocking.
fn build_guard(
    load: &PolicyLoader,
    store: Arc<dyn ConsentStore>,
    audit: Option<Arc<AuditLog>>,
    max_staleness: Duration,
) -> Result<Guard, ServerError> {
    let policy = load()?;
    let mut builder = Guard::builder(policy).store(store).max_staleness(max_staleness);
    if let Some(log) = audit {
        builder = builder.audit(log);
    }
    Ok(builder.build()?)
}

/// What every handler shares.
struct App {
    /// The guard being served, replaced whole by a reload (requests that loaded the
    /// old one finish on it).
    guards: GuardHandle,
    load: PolicyLoader,
    audit: Option<Arc<AuditLog>>,
    /// The audit log is synced: a check waits for an fsync, off the runtime's threads.
    audit_blocks: bool,
    tokens: Tokens,
    observer: Observer,
    metrics: Option<PrometheusHandle>,
    options: ServerOptions,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// When the store last confirmed the state current (ms since the epoch).
    last_sync: AtomicI64,
    /// Audit records handed to the log, for the queue depth.
    audit_handed: AtomicU64,
    on_reload: Option<ReloadListener>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("guards", &self.guards).field("options", &self.options).finish_non_exhaustive()
    }
}

impl App {
    fn configure(&self, builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.options.header_timeout)
            .keep_alive(true);
        // HTTP/2 has no header timeout in hyper: the connection's idle timeout and the
        // request timeout bound it, and few streams per connection bound its memory.
        builder.http2().timer(hyper_util::rt::TokioTimer::new()).max_concurrent_streams(64);
    }

    /// Notes that the store confirmed the state current just now.
    fn synced(&self) {
        self.last_sync.store(chrono::Utc::now().timestamp_millis(), Ordering::Release);
    }

    /// Syncs the guard being served with the store until `stop`.
    fn follow(&self, stop: &AtomicBool) {
        let interval = self.options.sync_interval.min(self.options.max_staleness / 4).max(Duration::from_millis(1));
        while !stop.load(Ordering::Acquire) {
            if self.guards.load().sync().is_ok() {
                self.synced();
            }
            if let Some(metrics) = &self.metrics {
                metrics.run_upkeep();
            }
            std::thread::sleep(interval);
        }
    }

    /// Builds a guard on the policy as it loads now and swaps it in; on any error the
    /// guard being served is left as it was.
    async fn reload(self: &Arc<Self>) -> Result<Reloaded, ServerError> {
        let outcome = self.try_reload().await;
        if let Some(listener) = &self.on_reload {
            listener(&outcome);
        }
        outcome
    }

    async fn try_reload(self: &Arc<Self>) -> Result<Reloaded, ServerError> {
        let _one_at_a_time = self.reloading.lock().await;
        let app = Arc::clone(self);
        // The handle builds the new guard beside the running one, replays the store on
        // it and publishes it atomically; on any error the running guard stays.
        let (previous, guard) = tokio::task::spawn_blocking(move || -> Result<_, ServerError> {
            let policy = (app.load)()?;
            let previous = app.guards.swap_policy(policy)?;
            Ok((previous, app.guards.load()))
        })
        .await
        .map_err(|e| ServerError::Config(format!("the policy loader panicked: {e}")))??;
        Ok(Reloaded {
            policy: guard.policy().name().to_owned(),
            version: guard.policy().version().to_owned(),
            previous_version: previous.policy().version().to_owned(),
        })
    }
}
