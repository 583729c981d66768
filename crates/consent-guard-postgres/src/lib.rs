//! A PostgreSQL consent store, for services with several replicas.
//!
//! Events live in the append-only table `consent_guard_events`, created by the
//! migrations of `migrations/` run by refinery (recorded in
//! `consent_guard_schema_history`). Replicas learn of each other's appends through
//! `LISTEN`/`NOTIFY` on the channel `consent_guard_events`, whose payload is the last
//! position appended and never a subject id; a notification is a wake-up hint only, and
//! the guard's sync (a query) is what confirms its state current.
//!
//! # Design: I/O off the caller's threads
//!
//! The store runs tokio-postgres, with a deadpool-postgres pool, on a tokio runtime of
//! its own (one worker thread, named `consent-guard-postgres`). Every operation is a
//! task on that runtime:
//! - the async methods ([`PostgresConsentStore::connect_async`],
//!   [`ConsentStore::append_async`] and the rest, used by
//!   [`Guard::record_async`](consent_guard::Guard::record_async) and
//!   [`Guard::sync_async`](consent_guard::Guard::sync_async)) await the task, so a service's
//!   own runtime workers never block on the database;
//! - the blocking methods of [`ConsentStore`] wait for the task on the calling
//!   thread. They work anywhere, inside a tokio runtime too (no "runtime within a
//!   runtime" panic), but in async code they hold a worker: call them from threads of
//!   your own, as [`Guard::follow`](consent_guard::Guard::follow) is.
//!
//! # Bounded waits
//!
//! No call waits on the database for longer than the store's timeout (1 s unless
//! [`PostgresStoreBuilder::timeout`] says): each operation is cancelled on the client
//! side when it passes it (a network path that stops forwarding answers nothing, so a
//! server-side limit alone would not do), and its connections are dropped rather than
//! reused. On the server, every session runs with `statement_timeout`, `lock_timeout`
//! and `idle_in_transaction_session_timeout` of the same length, so a replica cut off in
//! the middle of an append cannot hold the append lock for longer. Connections are made
//! with a connect timeout, TCP keepalives (idle 5 s, interval 1 s, 3 probes) and a TCP
//! user timeout, so a dead peer is noticed without waiting for the system's two hours.

mod tls;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{AsyncMessage, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use consent_guard::consent::{ConsentEvent, ConsentHistory, EraseEvent};
use consent_guard::error::StoreError;
use consent_guard::keys::{Locator, MasterKey, SubjectKey, SubjectKeys, Tombstones};
use consent_guard::store::{ConsentStore, StoreFuture};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The table refinery records applied migrations in.
const MIGRATION_TABLE: &str = "consent_guard_schema_history";

/// The channel appends notify, with the last position appended as payload.
const CHANNEL: &str = "consent_guard_events";

/// Advisory lock key taken while the schema is migrated (ASCII "cg-schem").
const MIGRATION_LOCK: i64 = 0x6367_2d73_6368_656d;

/// How long a store call may wait on the database, unless configured.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long making a connection (TCP, TLS, authentication, session set-up) may take,
/// unless configured.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections the pool keeps at most, unless configured.
const DEFAULT_MAX_CONNECTIONS: usize = 8;

/// One statement appends a batch: lock, positions, insert, erasure (events and key
/// deleted, tombstone written), notify (`migrations/V3__subject_keys_and_tombstones.sql`).
/// The advisory lock it takes until commit has the key 0x6367_2d65_7665_6e74 (ASCII
/// "cg-event").
const APPEND_SQL: &str = "SELECT consent_guard_append($1::text[], $2::text[], $3::bytea[], $4::bigint[])";

/// Appends waiting for the group writer, at most; more wait for room.
const APPEND_QUEUE: usize = 4096;

/// Events one group carries at most (a request larger than that goes alone).
const GROUP_EVENTS: usize = 10_000;
const SINCE_SQL: &str =
    "SELECT position, event::text FROM consent_guard_events WHERE position > $1 ORDER BY position LIMIT $2";
const HISTORY_SQL: &str = "SELECT position, event::text FROM consent_guard_events WHERE subject = $1 ORDER BY position";
/// Tombstones take positions of the event sequence too (an erase has no row).
const LAST_SQL: &str = "SELECT greatest((SELECT coalesce(max(position), 0) FROM consent_guard_events), \
                        (SELECT coalesce(max(position), 0) FROM consent_guard_tombstones))::bigint";
const TOMBSTONES_SINCE_SQL: &str =
    "SELECT position, locator, erased_at_ms FROM consent_guard_tombstones WHERE position > $1 ORDER BY position";
const TOMBSTONE_SQL: &str =
    "SELECT position, erased_at_ms FROM consent_guard_tombstones WHERE locator = $1 ORDER BY position";
const KEYS_SQL: &str = "SELECT locator, key FROM consent_guard_subject_keys WHERE locator = ANY($1::bytea[])";
const NEW_KEYS_SQL: &str = "INSERT INTO consent_guard_subject_keys (locator, key) \
                            SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (locator) DO NOTHING";

/// A consent store in a PostgreSQL database, shared by every replica of a service.
///
/// - An append is one transaction, durable when PostgreSQL acknowledges the commit
///   (the store turns `synchronous_commit = off` back on for its sessions).
/// - Appends take a transaction-level advisory lock before drawing positions, so
///   positions become visible in order and a reader following
///   [`ConsentStore::events_since`] never skips an event that commits late.
/// - An append that times out or loses its connection returns an error, and its
///   events may still have been committed: the guard then sees them with its next
///   sync. Record a withdrawal again when in doubt; applying one twice changes nothing.
/// - A lost or silent connection is an error (the guard fails closed); the next call
///   connects again, so the guard recovers by itself once the database answers.
/// - TLS by rustls, chosen in the connection string: `sslmode=require`, `verify-ca`
///   or `verify-full`, with `sslrootcert=<PEM file>` for a private authority.
///
/// The store owns a small tokio runtime (see `docs/stores.md`); it is made and
/// used from any thread, inside an async runtime or not.
///
/// ```no_run
/// use consent_guard_postgres::PostgresConsentStore;
/// use consent_guard::{Guard, Policy};
///
/// let store = PostgresConsentStore::connect("postgres://app@db.internal/app?sslmode=verify-full")?;
/// let guard = Guard::builder(Policy::from_toml_file("examples/policies/exmo.toml")?).store(store).build()?;
/// let stop = std::sync::atomic::AtomicBool::new(false);
/// std::thread::scope(|s| {
///     s.spawn(|| guard.follow(std::time::Duration::from_millis(200), &stop));
///     // … serve requests with guard.check(…) …
///     stop.store(true, std::sync::atomic::Ordering::Release);
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PostgresConsentStore {
    inner: Arc<Inner>,
    /// `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

/// Configures a [`PostgresConsentStore`]: timeouts and pool size.
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresStoreBuilder {
    url: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_connections: usize,
    master_key: Option<MasterKey>,
}

impl PostgresStoreBuilder {
    /// The longest a store call waits on the database (1 s by default): each
    /// operation, each connection attempt, and the session's `statement_timeout`,
    /// `lock_timeout` and `idle_in_transaction_session_timeout`. Keep it at or below
    /// the guards' `max_staleness`, so that a replica cut off from the database
    /// notices within that bound. At least 10 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// The longest making a new connection may take (2 s by default; at least 10 ms):
    /// TCP, TLS, authentication and session set-up. A call that needs a new connection
    /// waits at most this plus [`PostgresStoreBuilder::timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// The most connections the pool opens (8 by default; at least 1). The listener
    /// for notifications uses one more.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// The master key the store derives subject locators from (see
    /// [`consent_guard::keys`]). Every replica must be given the same one. Without it,
    /// the store keeps a generated key in the table `consent_guard_master_key`: it
    /// works, but whoever reads the database can then tell whether a guessed id was
    /// erased. Keep the key elsewhere in production (`docs/erasure.md`).
    pub fn master_key(mut self, key: MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// Connects, from blocking code (any thread, inside a tokio runtime too).
    ///
    /// # Errors
    ///
    /// As [`PostgresConsentStore::connect`].
    pub fn connect(self) -> Result<PostgresConsentStore, StoreError> {
        let runtime = store_runtime()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let settings = self;
        runtime.spawn(async move {
            let _ = tx.send(Inner::connect(settings).await);
        });
        let (inner, appends) = rx.recv().map_err(|_| StoreError::new("the postgresql store's runtime stopped"))??;
        Ok(PostgresConsentStore::start(inner, appends, runtime))
    }

    /// Connects, from async code: the connection is made on the store's runtime, and
    /// this future only waits for it.
    ///
    /// # Errors
    ///
    /// As [`PostgresConsentStore::connect`].
    pub async fn connect_async(self) -> Result<PostgresConsentStore, StoreError> {
        let runtime = store_runtime()?;
        let settings = self;
        let task = runtime.spawn(async move { Inner::connect(settings).await });
        let (inner, appends) =
            task.await.map_err(|error| StoreError::with_source("the postgresql store's task failed", error))??;
        Ok(PostgresConsentStore::start(inner, appends, runtime))
    }
}

fn store_runtime() -> Result<tokio::runtime::Runtime, StoreError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .thread_name("consent-guard-postgres")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|error| StoreError::with_source("cannot start the postgresql store's runtime", error))
}

impl PostgresConsentStore {
    /// The store, with its group writer running.
    fn start(inner: Inner, appends: Queue, runtime: tokio::runtime::Runtime) -> PostgresConsentStore {
        let inner = Arc::new(inner);
        runtime.spawn(write_groups(Arc::downgrade(&inner), appends));
        PostgresConsentStore { inner, runtime: Some(runtime) }
    }

    /// Connects to the database named by a connection string (URL
    /// `postgres://user:password@host:port/database?…` or `key=value` pairs) with the
    /// default timeouts, and applies the schema migrations it lacks. Call it from any
    /// thread; in async code prefer [`PostgresConsentStore::connect_async`].
    ///
    /// # Errors
    ///
    /// When the string is invalid, the database cannot be reached, or the schema cannot
    /// be migrated.
    pub fn connect(url: &str) -> Result<PostgresConsentStore, StoreError> {
        PostgresConsentStore::builder(url).connect()
    }

    /// As [`PostgresConsentStore::connect`], without blocking the caller's runtime.
    ///
    /// # Errors
    ///
    /// As [`PostgresConsentStore::connect`].
    pub async fn connect_async(url: &str) -> Result<PostgresConsentStore, StoreError> {
        PostgresConsentStore::builder(url).connect_async().await
    }

    /// Configures a store for the database the connection string names.
    pub fn builder(url: &str) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            master_key: None,
        }
    }

    /// Runs `future` on the store's runtime and waits for it on this thread.
    fn block<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(runtime) = &self.runtime else { return Err(StoreError::new("the postgresql store is closed")) };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().map_err(|_| StoreError::new("the postgresql store's runtime stopped"))?
    }

    /// Runs `future` on the store's runtime; the returned future waits for it.
    fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let Some(runtime) = &self.runtime else {
            return Box::pin(std::future::ready(Err(StoreError::new("the postgresql store is closed"))));
        };
        let task = runtime.spawn(future);
        Box::pin(async move {
            task.await.map_err(|error| StoreError::with_source("the postgresql store's task failed", error))?
        })
    }

    /// The store's timeout: the longest any call waits on the database.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// A connection from the store's pool (opened on the store's runtime, usable from
    /// any), for data kept beside the consent events in the same database: the
    /// consent snapshots of `consent-guard-filter` are loaded through it. Dropping it
    /// returns it to the pool.
    ///
    /// # Errors
    ///
    /// When no connection can be had.
    pub async fn connection(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.spawn(async move { inner.get().await }).await
    }
}

impl Drop for PostgresConsentStore {
    fn drop(&mut self) {
        // A runtime dropped the ordinary way waits for its tasks, which is refused in
        // an async context; the store's tasks only talk to the database, so they may
        // simply stop.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the store's tasks share.
struct Inner {
    pool: Pool,
    timeout: Duration,
    connect_timeout: Duration,
    /// For the listener's own connection (not pooled: it stays in `LISTEN`).
    config: Config,
    tls: MakeRustlsConnect,
    listener: tokio::sync::Mutex<Listener>,
    /// The highest position a notification announced.
    notified: tokio::sync::watch::Sender<u64>,
    /// Appends waiting for the group writer.
    appends: tokio::sync::mpsc::Sender<Pending>,
    /// Set once the schema is migrated: configured, or kept in the database.
    master: std::sync::OnceLock<MasterKey>,
}

type Queue = tokio::sync::mpsc::Receiver<Pending>;

/// One caller's batch, waiting to be appended with others.
struct Pending {
    subjects: Vec<String>,
    events: Vec<String>,
    /// Each event's subject locator.
    locators: Vec<Vec<u8>>,
    /// For an erase, when (ms since the epoch); `None` for other events.
    erased_at: Vec<Option<i64>>,
    /// The position of the batch's last event, once it is durable.
    reply: tokio::sync::oneshot::Sender<Result<u64, StoreError>>,
}

/// Group commit: every append that arrives while one is in flight joins the next, and
/// each group is one statement in one transaction, whole or not at all. A caller's
/// events stay together and in order, so its positions are consecutive.
async fn write_groups(inner: Weak<Inner>, mut queue: Queue) {
    while let Some(first) = queue.recv().await {
        let mut count = first.events.len();
        let mut group = vec![first];
        while count < GROUP_EVENTS {
            match queue.try_recv() {
                Ok(next) => {
                    count += next.events.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        let subjects: Vec<&str> = group.iter().flat_map(|p| p.subjects.iter().map(String::as_str)).collect();
        let events: Vec<&str> = group.iter().flat_map(|p| p.events.iter().map(String::as_str)).collect();
        let locators: Vec<&[u8]> = group.iter().flat_map(|p| p.locators.iter().map(Vec::as_slice)).collect();
        let erased_at: Vec<Option<i64>> = group.iter().flat_map(|p| p.erased_at.iter().copied()).collect();
        let result = inner.append_group(&subjects, &events, &locators, &erased_at).await;
        drop(inner);
        match result {
            Ok(last) => {
                // The group's positions are consecutive, ending at `last`.
                let mut end = last.saturating_sub(count as u64);
                for pending in group {
                    end = end.saturating_add(pending.events.len() as u64);
                    let _ = pending.reply.send(Ok(end));
                }
            }
            Err(error) => {
                let message = error.to_string();
                let mut group = group.into_iter();
                if let Some(first) = group.next() {
                    let _ = first.reply.send(Err(error));
                }
                for pending in group {
                    let _ = pending.reply.send(Err(StoreError::new(message.clone())));
                }
            }
        }
    }
}

/// The connection that listens for notifications, and the highest position already
/// reported to a waiter.
struct Listener {
    client: Option<(tokio_postgres::Client, Arc<AtomicBool>)>,
    signalled: u64,
}

/// Why an operation on a connection failed.
enum Failure {
    /// Failed before anything was committed: safe to repeat.
    Before(tokio_postgres::Error),
    /// Failed while running.
    During(tokio_postgres::Error),
    /// The database answered something the store cannot read.
    Store(StoreError),
}

impl Inner {
    async fn connect(settings: PostgresStoreBuilder) -> Result<(Inner, Queue), StoreError> {
        let tls_settings = tls::split(&settings.url)?;
        let mut config = tls_settings
            .rest
            .parse::<Config>()
            .map_err(|error| StoreError::with_source("invalid postgresql connection string", error))?;
        let (timeout, connect_timeout) = (settings.timeout, settings.connect_timeout);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("consent-guard");
        }
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3)
            .tcp_user_timeout(timeout.max(Duration::from_secs(5)));
        let tls = MakeRustlsConnect::new(tls::client_config(&tls_settings)?);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let millis = timeout.as_millis();
        let session = format!(
            "SELECT set_config('synchronous_commit', 'on', false) WHERE current_setting('synchronous_commit') = 'off'; \
             SET statement_timeout = {millis}; SET lock_timeout = {millis}; \
             SET idle_in_transaction_session_timeout = {millis}"
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(timeout))
            .post_create(Hook::async_fn(move |client, _| {
                // `append` returns once the commit is durable: a server or role
                // configured with `synchronous_commit = off` would acknowledge commits
                // it can still lose. The time limits bound what a silent client can hold.
                let session = session.clone();
                Box::pin(async move { client.batch_execute(&session).await.map_err(HookError::Backend) })
            }))
            .build()
            .map_err(|error| StoreError::with_source("cannot build the postgresql connection pool", error))?;
        let (appends, queue) = tokio::sync::mpsc::channel(APPEND_QUEUE);
        let inner = Inner {
            pool,
            timeout,
            connect_timeout,
            config,
            tls,
            listener: tokio::sync::Mutex::new(Listener { client: None, signalled: 0 }),
            notified: tokio::sync::watch::Sender::new(0),
            appends,
            master: std::sync::OnceLock::new(),
        };
        inner.migrate().await?;
        let master = inner.master_key(settings.master_key).await?;
        inner.forget_erased_rows(&master).await?;
        let _ = inner.master.set(master);
        Ok((inner, queue))
    }

    /// Applies the migrations the database lacks, one replica at a time.
    async fn migrate(&self) -> Result<(), StoreError> {
        let fail =
            |error: tokio_postgres::Error| StoreError::with_source("cannot migrate the consent store schema", error);
        let mut client = self.get().await?;
        let migration = async {
            // Session-level, so it spans refinery's transactions; released below, and
            // with the session if this one dies.
            client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(fail)?;
            let report = embedded::migrations::runner()
                .set_migration_table_name(MIGRATION_TABLE)
                .run_async(&mut **client)
                .await
                .map_err(|error| StoreError::with_source("cannot migrate the consent store schema", error));
            client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await.map_err(fail)?;
            report.map(drop)
        };
        // Migrations may take longer than one query, but not forever.
        let limit = self.timeout.saturating_mul(30);
        match tokio::time::timeout(limit, migration).await {
            Ok(result) => result,
            Err(_) => {
                drop(Object::take(client));
                Err(StoreError::new(format!("cannot migrate the consent store schema within {limit:?}")))
            }
        }
    }

    async fn get(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|error| StoreError::with_source("cannot connect to postgresql", error))
    }

    fn master(&self) -> Result<&MasterKey, StoreError> {
        self.master.get().ok_or_else(|| StoreError::new("the postgresql store has no master key yet"))
    }

    /// The configured master key, or the one kept in the database (made on first use,
    /// by whichever replica gets there first).
    async fn master_key(&self, configured: Option<MasterKey>) -> Result<MasterKey, StoreError> {
        if let Some(key) = configured {
            return Ok(key);
        }
        let generated = MasterKey::generate().map_err(|e| StoreError::with_source("cannot make a master key", e))?;
        let candidate = generated.as_bytes().to_vec();
        let stored = self
            .run("read the master key", true, |client| {
                let candidate = candidate.clone();
                async move {
                    client
                        .execute(
                            "INSERT INTO consent_guard_master_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                            &[&candidate],
                        )
                        .await
                        .map_err(Failure::During)?;
                    let row = client
                        .query_one("SELECT key FROM consent_guard_master_key WHERE id = 1", &[])
                        .await
                        .map_err(Failure::During)?;
                    row.try_get::<_, Vec<u8>>(0).map_err(Failure::During)
                }
            })
            .await?;
        let bytes: [u8; 32] =
            stored.try_into().map_err(|_| StoreError::new("the stored master key is not 32 bytes"))?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// Takes a database written before schema version 3 forward: each erase event
    /// still stored with its id becomes a tombstone, and the subject's events up to it
    /// and its key are deleted. One transaction, under the migration lock.
    async fn forget_erased_rows(&self, master: &MasterKey) -> Result<(), StoreError> {
        let fail = |error: tokio_postgres::Error| StoreError::with_source("cannot convert erased subjects", error);
        let mut client = self.get().await?;
        let conversion = async {
            let transaction = client.transaction().await.map_err(fail)?;
            transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(fail)?;
            let rows = transaction
                .query(
                    "SELECT position, subject, event::text FROM consent_guard_events \
                     WHERE event->>'type' = 'erase' ORDER BY position",
                    &[],
                )
                .await
                .map_err(fail)?;
            for row in &rows {
                let position: i64 = row.try_get(0).map_err(fail)?;
                let subject: String = row.try_get(1).map_err(fail)?;
                let json: String = row.try_get(2).map_err(fail)?;
                let erased_at = match decode(position, &json)? {
                    ConsentEvent::Erase(erase) => erase.at.timestamp_millis(),
                    _ => return Err(StoreError::new(format!("stored event at position {position} is not an erase"))),
                };
                let locator = master.locator(&subject).as_bytes().to_vec();
                transaction
                    .execute("SELECT set_config('consent_guard.erasing', $1, true)", &[&subject])
                    .await
                    .map_err(fail)?;
                transaction
                    .execute(
                        "DELETE FROM consent_guard_events WHERE subject = $1 AND position <= $2",
                        &[&subject, &position],
                    )
                    .await
                    .map_err(fail)?;
                transaction
                    .execute("DELETE FROM consent_guard_subject_keys WHERE locator = $1", &[&locator])
                    .await
                    .map_err(fail)?;
                transaction
                    .execute(
                        "INSERT INTO consent_guard_tombstones (position, locator, erased_at_ms) VALUES ($1, $2, $3) \
                         ON CONFLICT (position) DO NOTHING",
                        &[&position, &locator, &erased_at],
                    )
                    .await
                    .map_err(fail)?;
            }
            transaction.execute("SELECT set_config('consent_guard.erasing', '', true)", &[]).await.map_err(fail)?;
            transaction.commit().await.map_err(fail)
        };
        let limit = self.timeout.saturating_mul(30);
        match tokio::time::timeout(limit, conversion).await {
            Ok(result) => result,
            Err(_) => {
                drop(Object::take(client));
                Err(StoreError::new(format!("cannot convert erased subjects within {limit:?}")))
            }
        }
    }

    async fn tombstones_since(&self, after: u64) -> Result<Vec<(u64, Locator, i64)>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.run("read the consent store", true, |client| async move {
            let statement = client.prepare_cached(TOMBSTONES_SINCE_SQL).await.map_err(Failure::Before)?;
            let rows = client.query(&statement, &[&after]).await.map_err(Failure::During)?;
            rows.iter()
                .map(|row| {
                    let at: i64 = row.try_get(0).map_err(Failure::During)?;
                    let locator: &[u8] = row.try_get(1).map_err(Failure::During)?;
                    let erased_at: i64 = row.try_get(2).map_err(Failure::During)?;
                    Ok((
                        position(at).map_err(Failure::Store)?,
                        locator_from(locator).map_err(Failure::Store)?,
                        erased_at,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn keys_for(&self, subjects: Vec<String>) -> Result<Vec<SubjectKey>, StoreError> {
        let master = self.master()?.clone();
        let locators: Vec<Vec<u8>> = subjects.iter().map(|s| master.locator(s).as_bytes().to_vec()).collect();
        // Made before the transaction so that a retried attempt offers the same keys.
        let mut fresh = Vec::with_capacity(locators.len());
        for _ in &locators {
            let key = SubjectKey::generate().map_err(|e| StoreError::with_source("cannot make a subject key", e))?;
            fresh.push(key.as_bytes().to_vec());
        }
        let (locators_ref, fresh_ref) = (&locators, &fresh);
        let found = self
            .run("read subject keys", true, |client| async move {
                let select = client.prepare_cached(KEYS_SQL).await.map_err(Failure::Before)?;
                let mut found = read_keys(&client.query(&select, &[locators_ref]).await.map_err(Failure::During)?)
                    .map_err(Failure::Store)?;
                if found.len() < locators_ref.len() {
                    // Missing keys are inserted; a racing replica's insert wins, and both
                    // read back the same key.
                    let (missing, keys): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = locators_ref
                        .iter()
                        .zip(fresh_ref)
                        .filter(|(locator, _)| !found.contains_key(locator.as_slice()))
                        .unzip();
                    let insert = client.prepare_cached(NEW_KEYS_SQL).await.map_err(Failure::Before)?;
                    client.execute(&insert, &[&missing, &keys]).await.map_err(Failure::During)?;
                    found = read_keys(&client.query(&select, &[locators_ref]).await.map_err(Failure::During)?)
                        .map_err(Failure::Store)?;
                }
                Ok(found)
            })
            .await?;
        locators
            .iter()
            .map(|locator| {
                found.get(locator.as_slice()).cloned().ok_or_else(|| StoreError::new("a subject key was not kept"))
            })
            .collect()
    }

    /// Runs `op` on a pooled connection within the timeout. When it times out or the
    /// connection turns out to be lost, every idle connection is dropped (they are
    /// likely lost too) and, if `op` may be repeated (`retry`) or failed before
    /// sending anything that matters, it runs once more on a new connection.
    async fn run<T, F, Fut>(&self, action: &str, retry: bool, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut(Object) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut retried = false;
        loop {
            let started = Instant::now();
            let client = tokio::time::timeout(self.connect_timeout.saturating_add(self.timeout), self.get())
                .await
                .map_err(|_| StoreError::new(format!("cannot {action}: no connection to postgresql")))??;
            let reused = Object::metrics(&client).recycle_count > 0;
            let remaining = self.timeout.saturating_sub(started.elapsed()).max(self.timeout / 2);
            if client.is_closed() {
                // Closed after it was recycled (a terminated backend): nothing was sent.
                drop(client);
                self.pool.retain(|_, _| false);
                if !retried {
                    retried = true;
                    continue;
                }
                return Err(StoreError::new(format!("cannot {action}: lost the connection to postgresql")));
            }
            let error = match tokio::time::timeout(remaining, op(client)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(Failure::Store(error))) => return Err(error),
                Ok(Err(Failure::Before(error))) => (error, true),
                Ok(Err(Failure::During(error))) => (error, retry),
                Err(_) => {
                    // The connection went back to the pool with the cancelled future;
                    // it may be stuck on a silent path, so none is reused.
                    self.pool.retain(|_, _| false);
                    return Err(StoreError::new(format!(
                        "cannot {action}: postgresql did not answer within {:?}",
                        self.timeout
                    )));
                }
            };
            let (error, repeatable) = error;
            if !is_connection_lost(&error) {
                // An SQL error: the transaction was rolled back, the connection is fine.
                return Err(StoreError::with_source(format!("cannot {action}"), error));
            }
            self.pool.retain(|_, _| false);
            if repeatable && reused && !retried {
                retried = true;
                continue;
            }
            return Err(StoreError::with_source(format!("cannot {action}: lost the connection to postgresql"), error));
        }
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        let last = self
            .run("read the consent store", true, |client| async move {
                let statement = client.prepare_cached(LAST_SQL).await.map_err(Failure::Before)?;
                let row = client.query_one(&statement, &[]).await.map_err(Failure::During)?;
                row.try_get::<_, i64>(0).map_err(Failure::During)
            })
            .await?;
        position(last)
    }

    async fn append(&self, events: Vec<ConsentEvent>) -> Result<u64, StoreError> {
        if events.is_empty() {
            return self.last_position().await;
        }
        let master = self.master()?;
        let subjects = events.iter().map(|e| e.subject().to_owned()).collect();
        let locators = events.iter().map(|e| master.locator(e.subject()).as_bytes().to_vec()).collect();
        let erased_at = events
            .iter()
            .map(|e| match e {
                ConsentEvent::Erase(erase) => Some(erase.at.timestamp_millis()),
                _ => None,
            })
            .collect();
        let encoded = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| StoreError::with_source("cannot encode a consent event", error))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::new("cannot append to the consent store: the store is closing");
        // A group in flight, then this one: each bounded by the timeout.
        let limit = self.timeout.saturating_mul(2);
        let queued = Pending { subjects, events: encoded, locators, erased_at, reply };
        let appended = async {
            self.appends.send(queued).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        };
        match tokio::time::timeout(limit, appended).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(format!(
                "cannot append to the consent store: postgresql did not answer within {limit:?}"
            ))),
        }
    }

    /// Appends one group of events in one statement: one round trip, one transaction.
    async fn append_group(
        &self,
        subjects: &[&str],
        events: &[&str],
        locators: &[&[u8]],
        erased_at: &[Option<i64>],
    ) -> Result<u64, StoreError> {
        let last = self
            .run("append to the consent store", false, |client| async move {
                let statement = client.prepare_cached(APPEND_SQL).await.map_err(Failure::Before)?;
                // One statement in its own transaction: an error the server sent in
                // answer (even "terminating connection") means it did not commit, so
                // the group may be sent again on a new connection. A connection that
                // closed without an answer may have committed: that is not repeated.
                let row = client.query_one(&statement, &[&subjects, &events, &locators, &erased_at]).await.map_err(
                    |error| {
                        if error.as_db_error().is_some() {
                            Failure::Before(error)
                        } else {
                            Failure::During(error)
                        }
                    },
                )?;
                row.try_get::<_, i64>(0).map_err(Failure::During)
            })
            .await?;
        position(last)
    }

    async fn history(&self, subject: String) -> Result<ConsentHistory, StoreError> {
        let locator = self.master()?.locator(&subject).as_bytes().to_vec();
        let (subject_ref, locator_ref) = (&subject, &locator);
        let events = self
            .run("read the consent store", true, |client| async move {
                let statement = client.prepare_cached(HISTORY_SQL).await.map_err(Failure::Before)?;
                let rows = client.query(&statement, &[subject_ref]).await.map_err(Failure::During)?;
                let mut events = rows
                    .iter()
                    .map(|row| {
                        let position: i64 = row.try_get(0).map_err(Failure::During)?;
                        let json: &str = row.try_get(1).map_err(Failure::During)?;
                        Ok((position, decode(position, json).map_err(Failure::Store)?))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // An erasure left no row with the id: its tombstone stands for it, as an
                // erase event the caller's id is put back into.
                let statement = client.prepare_cached(TOMBSTONE_SQL).await.map_err(Failure::Before)?;
                for row in client.query(&statement, &[locator_ref]).await.map_err(Failure::During)? {
                    let position: i64 = row.try_get(0).map_err(Failure::During)?;
                    let erased_at: i64 = row.try_get(1).map_err(Failure::During)?;
                    let at = chrono::DateTime::from_timestamp_millis(erased_at).ok_or_else(|| {
                        Failure::Store(StoreError::new(format!("tombstone at position {position} has an invalid time")))
                    })?;
                    events.push((position, ConsentEvent::Erase(EraseEvent::new(subject_ref.clone(), at))));
                }
                events.sort_by_key(|(position, _)| *position);
                Ok(events.into_iter().map(|(_, event)| event).collect::<Vec<_>>())
            })
            .await?;
        Ok(ConsentHistory::new(&subject, events))
    }

    async fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        let Ok(after) = i64::try_from(after) else { return Ok(Vec::new()) };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("read the consent store", true, |client| async move {
            let statement = client.prepare_cached(SINCE_SQL).await.map_err(Failure::Before)?;
            let rows = client.query(&statement, &[&after, &limit]).await.map_err(Failure::During)?;
            rows.iter()
                .map(|row| {
                    let at: i64 = row.try_get(0).map_err(Failure::During)?;
                    let json: &str = row.try_get(1).map_err(Failure::During)?;
                    let event = decode(at, json).map_err(Failure::Store)?;
                    Ok((position(at).map_err(Failure::Store)?, event))
                })
                .collect()
        })
        .await
    }

    /// Waits until a notification announces a position after `after` (or after what
    /// was reported before), or `timeout` passes.
    async fn wait_for_change(&self, after: u64, timeout: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + timeout.min(Duration::from_secs(24 * 3600));
        let mut listener = self.listener.lock().await;
        let result = self.wait_locked(&mut listener, after, deadline).await;
        if result.is_err() {
            // Connect again next time.
            listener.client = None;
        }
        result
    }

    async fn wait_locked(
        &self,
        listener: &mut Listener,
        after: u64,
        deadline: tokio::time::Instant,
    ) -> Result<(), StoreError> {
        let alive = listener
            .client
            .as_ref()
            .is_some_and(|(client, alive)| alive.load(Ordering::Acquire) && !client.is_closed());
        if !alive {
            listener.client = None;
            let client = tokio::time::timeout(self.timeout, self.listen())
                .await
                .map_err(|_| StoreError::new("cannot wait for consent store changes: postgresql did not answer"))??;
            listener.client = Some(client);
        }
        let mut notified = self.notified.subscribe();
        // Positions up to `signalled` were reported already: a caller that asks again
        // without having moved past them (its sync failed) waits for newer ones rather
        // than being woken at once in a loop.
        let threshold = after.max(listener.signalled);
        // LISTEN is active before this read, so an append committed after it notifies.
        let current = self.last_position().await?;
        if current > threshold {
            listener.signalled = current;
            return Ok(());
        }
        loop {
            let seen = *notified.borrow_and_update();
            if seen > threshold {
                listener.signalled = seen;
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, notified.changed()).await {
                Err(_) => return Ok(()),
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(StoreError::new("cannot wait for consent store changes: store closed")),
            }
            if listener.client.as_ref().is_some_and(|(_, alive)| !alive.load(Ordering::Acquire)) {
                return Err(StoreError::new(
                    "cannot wait for consent store changes: lost the connection to postgresql",
                ));
            }
        }
    }

    /// Opens the listening connection: its messages are pumped by a task that
    /// forwards notifications to `notified`.
    async fn listen(&self) -> Result<(tokio_postgres::Client, Arc<AtomicBool>), StoreError> {
        let lost = |error| StoreError::with_source("cannot wait for consent store changes", error);
        let (client, mut connection) = self.config.connect(self.tls.clone()).await.map_err(lost)?;
        let alive = Arc::new(AtomicBool::new(true));
        let (flag, notified) = (alive.clone(), self.notified.clone());
        tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        // A payload that is not a position still means "something changed".
                        let position = notification.payload().parse::<u64>().unwrap_or(u64::MAX);
                        notified.send_if_modified(|highest| {
                            let newer = position > *highest;
                            *highest = (*highest).max(position);
                            newer
                        });
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            flag.store(false, Ordering::Release);
            // Wake the waiter, which then sees the listener is gone.
            notified.send_modify(|_| {});
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(lost)?;
        Ok((client, alive))
    }
}

/// Whether `error` means the connection is unusable (closed, reset, or the server
/// ended the session), rather than an SQL error on a live connection.
fn is_connection_lost(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.as_db_error() {
        None => true,
        Some(db) => {
            let code = db.code().code();
            matches!(db.severity(), "FATAL" | "PANIC") || code.starts_with("08") || code.starts_with("57P")
        }
    }
}

fn position(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::new(format!("postgresql returned an invalid position {value}")))
}

fn locator_from(bytes: &[u8]) -> Result<Locator, StoreError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| StoreError::new("a stored locator is not 16 bytes"))?;
    Ok(Locator::from_bytes(bytes))
}

fn read_keys(rows: &[tokio_postgres::Row]) -> Result<std::collections::HashMap<Vec<u8>, SubjectKey>, StoreError> {
    rows.iter()
        .map(|row| {
            let unreadable = |error| StoreError::with_source("cannot read a subject key", error);
            let locator: Vec<u8> = row.try_get(0).map_err(unreadable)?;
            let key: &[u8] = row.try_get(1).map_err(unreadable)?;
            let key: [u8; 32] = key.try_into().map_err(|_| StoreError::new("a stored subject key is not 32 bytes"))?;
            Ok((locator, SubjectKey::from_bytes(key)))
        })
        .collect()
}

fn decode(position: i64, json: &str) -> Result<ConsentEvent, StoreError> {
    serde_json::from_str(json)
        .map_err(|error| StoreError::with_source(format!("stored event at position {position} cannot be read"), error))
}

impl ConsentStore for PostgresConsentStore {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        let (inner, events) = (self.inner.clone(), events.to_vec());
        self.block(async move { inner.append(events).await })
    }

    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        let (inner, subject) = (self.inner.clone(), subject.to_owned());
        self.block(async move { inner.history(subject).await })
    }

    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        let inner = self.inner.clone();
        self.block(async move { inner.events_since(after, limit).await })
    }

    fn wait_for_change(&self, after: u64, timeout: Duration) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        self.block(async move { inner.wait_for_change(after, timeout).await })
    }

    fn append_async<'a>(&'a self, events: &'a [ConsentEvent]) -> StoreFuture<'a, u64> {
        let (inner, events) = (self.inner.clone(), events.to_vec());
        self.spawn(async move { inner.append(events).await })
    }

    fn history_async<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, ConsentHistory> {
        let (inner, subject) = (self.inner.clone(), subject.to_owned());
        self.spawn(async move { inner.history(subject).await })
    }

    fn events_since_async(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<(u64, ConsentEvent)>> {
        let inner = self.inner.clone();
        self.spawn(async move { inner.events_since(after, limit).await })
    }

    fn shared(&self) -> bool {
        true
    }

    fn tombstones(&self) -> Result<Tombstones, StoreError> {
        let inner = self.inner.clone();
        let all = self.block(async move { inner.tombstones_since(0).await })?;
        let master = self.inner.master()?.clone();
        Ok(Tombstones::from_locators(master, all.into_iter().map(|(_, locator, at)| (locator, at))))
    }

    fn erasures_since(&self, after: u64) -> Result<Vec<(u64, Locator, i64)>, StoreError> {
        let inner = self.inner.clone();
        self.block(async move { inner.tombstones_since(after).await })
    }

    fn subject_keys(&self) -> Option<&dyn SubjectKeys> {
        Some(self)
    }
}

/// The subject keys are rows of `consent_guard_subject_keys`, found by locator; an
/// erase deletes its subject's row in the append's transaction.
impl SubjectKeys for PostgresConsentStore {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let (inner, subjects) = (self.inner.clone(), subjects.iter().map(|s| (*s).to_owned()).collect());
        self.block(async move { inner.keys_for(subjects).await })
    }

    fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        let locator = self.inner.master()?.locator(subject).as_bytes().to_vec();
        let inner = self.inner.clone();
        self.block(async move {
            let locators = vec![locator.clone()];
            let locators_ref = &locators;
            let mut found = inner
                .run("read subject keys", true, |client| async move {
                    let select = client.prepare_cached(KEYS_SQL).await.map_err(Failure::Before)?;
                    read_keys(&client.query(&select, &[locators_ref]).await.map_err(Failure::During)?)
                        .map_err(Failure::Store)
                })
                .await?;
            Ok(found.remove(locator.as_slice()))
        })
    }
}

impl fmt::Debug for PostgresConsentStore {
    /// Prints the database's name, never the password nor the events.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PostgresConsentStore")
            .field("dbname", &self.inner.config.get_dbname())
            .field("timeout", &self.inner.timeout)
            .field("connections", &status.size)
            .field("idle_connections", &status.available)
            .finish_non_exhaustive()
    }
}
