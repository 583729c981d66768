//! A PostgreSQL consent store, for services with several replicas.
//!
//! Events live in the append-only table `consent_guard_events` created by the
//! versioned migrations of `migrations/` (recorded in `consent_guard_schema_version`).
//! Replicas learn of each other's appends through `LISTEN`/`NOTIFY` on the channel
//! `consent_guard_events`, whose payload is the last position appended and never a
//! subject id; the wait falls back to polling when no notification comes.

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::{Client, Config, NoTls, Statement};

use super::ConsentStore;
use crate::consent::{ConsentEvent, ConsentHistory};
use crate::error::StoreError;

/// The migrations shipped with the crate, applied in order: (version, name, SQL).
const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "events", include_str!("../../migrations/V1__events.sql"))];

/// The channel appends notify, with the last position appended as payload.
const CHANNEL: &str = "consent_guard_events";

/// Advisory lock key taken by every append until its transaction ends (ASCII "cg-event").
const APPEND_LOCK: i64 = 0x6367_2d65_7665_6e74;

/// Advisory lock key taken while the schema is migrated (ASCII "cg-schem").
const MIGRATION_LOCK: i64 = 0x6367_2d73_6368_656d;

/// Idle connections kept for reuse; more are opened under load and closed after.
const MAX_IDLE: usize = 8;

/// How long a connection attempt may take unless the connection string says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A consent store in a PostgreSQL database, shared by every replica of a service.
///
/// - An append is one transaction, durable when PostgreSQL acknowledges the commit
///   (the store turns `synchronous_commit = off` back on for its sessions).
/// - Appends take a transaction-level advisory lock before drawing positions, so
///   positions become visible in order and a reader following
///   [`ConsentStore::events_since`] never skips an event that commits late.
/// - [`ConsentStore::wait_for_change`] listens for `NOTIFY` on a dedicated connection
///   and falls back to polling at the caller's interval.
/// - A lost connection is an error (the guard fails closed); the next call connects
///   again, so the guard recovers by itself once the database is back.
///
/// Connections are made without TLS; use a local socket or a trusted network.
///
/// ```no_run
/// use consent_guard::store::PostgresConsentStore;
/// use consent_guard::{Guard, Policy};
///
/// let store = PostgresConsentStore::connect("postgres://app@127.0.0.1:5432/app")?;
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
    config: Config,
    idle: Mutex<Vec<Connection>>,
    listener: Mutex<Listener>,
}

impl PostgresConsentStore {
    /// Connects to the database named by a connection string (URL
    /// `postgres://user:password@host:port/database?…` or `key=value` pairs) and
    /// applies the schema migrations it lacks.
    ///
    /// # Errors
    ///
    /// When the string is invalid, the database cannot be reached, or the schema cannot
    /// be migrated.
    pub fn connect(url: &str) -> Result<PostgresConsentStore, StoreError> {
        let config = url
            .parse::<Config>()
            .map_err(|error| StoreError::with_source("invalid postgresql connection string", error))?;
        PostgresConsentStore::with_config(config)
    }

    /// As [`PostgresConsentStore::connect`], from a parsed configuration. A connect
    /// timeout of 5 s and the application name `consent-guard` are set unless given.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached or the schema cannot be migrated.
    pub fn with_config(mut config: Config) -> Result<PostgresConsentStore, StoreError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("consent-guard");
        }
        let mut client = open_client(&config)?;
        migrate(&mut client)
            .map_err(|error| StoreError::with_source("cannot migrate the consent store schema", error))?;
        let connection = Connection::new(client)?;
        let store = PostgresConsentStore {
            config,
            idle: Mutex::new(vec![connection]),
            listener: Mutex::new(Listener { client: None, signalled: 0 }),
        };
        Ok(store)
    }

    fn idle(&self) -> Result<MutexGuard<'_, Vec<Connection>>, StoreError> {
        self.idle.lock().map_err(|_| StoreError::new("postgresql store poisoned by a panic"))
    }

    /// An idle connection (`true`) or a new one (`false`).
    fn acquire(&self) -> Result<(Connection, bool), StoreError> {
        if let Some(connection) = self.idle()?.pop() {
            return Ok((connection, true));
        }
        Ok((Connection::new(open_client(&self.config)?)?, false))
    }

    fn release(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle() {
            if idle.len() < MAX_IDLE && !connection.client.is_closed() {
                idle.push(connection);
            }
        }
    }

    /// Runs `op` on a connection. When the connection turns out to be lost, every idle
    /// connection is dropped (they are likely lost too) and, if `op` may be repeated
    /// (`retry`) or failed before sending anything that matters, it runs once more on
    /// a new connection.
    fn run<T>(
        &self,
        action: &str,
        retry: bool,
        mut op: impl FnMut(&mut Connection) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let mut retried = false;
        loop {
            let (mut connection, reused) = self.acquire()?;
            let error = match op(&mut connection) {
                Ok(value) => {
                    self.release(connection);
                    return Ok(value);
                }
                Err(Failure::Store(error)) => {
                    self.release(connection);
                    return Err(error);
                }
                Err(Failure::Before(error)) => (error, true),
                Err(Failure::During(error)) => (error, retry),
            };
            let (error, repeatable) = error;
            if !is_connection_lost(&error, &connection.client) {
                // An SQL error: the transaction was rolled back, the connection is fine.
                self.release(connection);
                return Err(StoreError::with_source(format!("cannot {action}"), error));
            }
            drop(connection);
            if let Ok(mut idle) = self.idle() {
                idle.clear();
            }
            if repeatable && reused && !retried {
                retried = true;
                continue;
            }
            return Err(StoreError::with_source(format!("cannot {action}: lost the connection to postgresql"), error));
        }
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        let last = self.run("read the consent store", true, |connection| {
            let row = connection.client.query_one(&connection.statements.last, &[]).map_err(Failure::During)?;
            row.try_get::<_, i64>(0).map_err(Failure::During)
        })?;
        position(last)
    }
}

/// Why an operation on a connection failed.
enum Failure {
    /// Failed before anything but `BEGIN` was sent: safe to repeat.
    Before(::postgres::Error),
    /// Failed while running.
    During(::postgres::Error),
    /// The database answered something the store cannot read.
    Store(StoreError),
}

/// Whether `error` means the connection is unusable (closed, reset, or the server
/// ended the session), rather than an SQL error on a live connection.
fn is_connection_lost(error: &::postgres::Error, client: &Client) -> bool {
    if error.is_closed() || client.is_closed() {
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

fn open_client(config: &Config) -> Result<Client, StoreError> {
    config.connect(NoTls).map_err(|error| StoreError::with_source("cannot connect to postgresql", error))
}

fn position(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::new(format!("invalid consent store position {value}")))
}

fn decode(position: i64, json: &str) -> Result<ConsentEvent, StoreError> {
    serde_json::from_str(json)
        .map_err(|error| StoreError::with_source(format!("stored event at position {position} cannot be read"), error))
}

/// Applies the migrations the database lacks, in one transaction, under an advisory
/// lock so that replicas starting together do not race.
fn migrate(client: &mut Client) -> Result<(), ::postgres::Error> {
    let mut txn = client.transaction()?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS consent_guard_schema_version (
            version    integer     PRIMARY KEY,
            name       text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )?;
    let current: i32 =
        txn.query_one("SELECT coalesce(max(version), 0) FROM consent_guard_schema_version", &[])?.try_get(0)?;
    // A newer schema (from a newer replica during a rolling upgrade) is left alone:
    // migrations only ever add.
    for (version, name, sql) in MIGRATIONS {
        if *version > current {
            txn.batch_execute(sql)?;
            txn.execute("INSERT INTO consent_guard_schema_version (version, name) VALUES ($1, $2)", &[version, name])?;
        }
    }
    txn.commit()
}

/// A connection with its prepared statements.
struct Connection {
    client: Client,
    statements: Statements,
}

struct Statements {
    lock: Statement,
    positions: Statement,
    insert: Statement,
    scrub: Statement,
    notify: Statement,
    since: Statement,
    history: Statement,
    last: Statement,
}

impl Connection {
    fn new(mut client: Client) -> Result<Connection, StoreError> {
        // `append` returns once the commit is durable: a server or role configured with
        // `synchronous_commit = off` would acknowledge commits it can still lose.
        client
            .batch_execute(
                "SELECT set_config('synchronous_commit', 'on', false) \
                 WHERE current_setting('synchronous_commit') = 'off'",
            )
            .map_err(|error| StoreError::with_source("cannot configure the postgresql session", error))?;
        let statements = Statements::prepare(&mut client)
            .map_err(|error| StoreError::with_source("cannot prepare the consent store queries", error))?;
        Ok(Connection { client, statements })
    }
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Statements, ::postgres::Error> {
        Ok(Statements {
            lock: client.prepare("SELECT pg_advisory_xact_lock($1)")?,
            positions: client.prepare(
                "SELECT nextval(pg_get_serial_sequence('consent_guard_events', 'position')) \
                 FROM generate_series(1, $1::bigint)",
            )?,
            insert: client.prepare(
                "INSERT INTO consent_guard_events (position, subject, event) \
                 SELECT p, s, e::jsonb FROM unnest($1::bigint[], $2::text[], $3::text[]) AS batch (p, s, e)",
            )?,
            scrub: client.prepare(
                "UPDATE consent_guard_events SET event = event - 'birth_date' - 'age' \
                 WHERE subject = $1 AND position < $2 AND event->>'type' = 'subject' \
                 AND event ?| array['birth_date', 'age']",
            )?,
            notify: client.prepare("SELECT pg_notify('consent_guard_events', $1)")?,
            since: client.prepare(
                "SELECT position, event::text FROM consent_guard_events \
                 WHERE position > $1 ORDER BY position LIMIT $2",
            )?,
            history: client.prepare(
                "SELECT position, event::text FROM consent_guard_events WHERE subject = $1 ORDER BY position",
            )?,
            last: client.prepare("SELECT coalesce(max(position), 0)::bigint FROM consent_guard_events")?,
        })
    }
}

/// The connection that listens for notifications, and the highest position already
/// reported to a waiter.
struct Listener {
    client: Option<(Client, Statement)>,
    signalled: u64,
}

impl Listener {
    fn wait(&mut self, config: &Config, after: u64, deadline: Instant) -> Result<(), StoreError> {
        let lost = |error| StoreError::with_source("cannot wait for consent store changes", error);
        if self.client.is_none() {
            let mut client = open_client(config)?;
            client.batch_execute(&format!("LISTEN {CHANNEL}")).map_err(lost)?;
            let last =
                client.prepare("SELECT coalesce(max(position), 0)::bigint FROM consent_guard_events").map_err(lost)?;
            self.client = Some((client, last));
        }
        let Some((client, last)) = self.client.as_mut() else {
            return Err(StoreError::new("cannot wait for consent store changes: no connection"));
        };
        // Positions up to `signalled` were reported already: a caller that asks again
        // without having moved past them (its sync failed) waits for newer ones rather
        // than being woken at once in a loop.
        let threshold = after.max(self.signalled);
        // LISTEN is active before this read, so an append committed after it notifies.
        let current = position(client.query_one(&*last, &[]).map_err(lost)?.try_get::<_, i64>(0).map_err(lost)?)?;
        if current > threshold {
            self.signalled = current;
            return Ok(());
        }
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(());
            }
            let next = client.notifications().timeout_iter(remaining).next();
            match next {
                Ok(Some(notification)) => match notification.payload().parse::<u64>() {
                    Ok(notified) if notified <= threshold => {}
                    Ok(notified) => {
                        self.signalled = notified;
                        return Ok(());
                    }
                    Err(_) => return Ok(()),
                },
                Ok(None) if client.is_closed() => {
                    return Err(StoreError::new(
                        "cannot wait for consent store changes: lost the connection to postgresql",
                    ))
                }
                Ok(None) => return Ok(()),
                Err(error) => return Err(lost(error)),
            }
        }
    }
}

impl ConsentStore for PostgresConsentStore {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return self.last_position();
        }
        let count = i64::try_from(events.len()).map_err(|_| StoreError::new("consent event batch too large"))?;
        let subjects: Vec<&str> = events.iter().map(ConsentEvent::subject).collect();
        let encoded = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| StoreError::with_source("cannot encode a consent event", error))?;
        let last = self.run("append to the consent store", false, |connection| {
            let Connection { client, statements } = connection;
            let mut txn = client.transaction().map_err(Failure::Before)?;
            // Sequence values are drawn before commit, so without this lock a
            // transaction holding position 7 could commit after one holding 8, and a
            // reader that had seen 8 would never look below it again. Holding the lock
            // from drawing the positions to the commit makes positions visible in
            // order; appends are serialised, which a consent store can afford.
            txn.execute(&statements.lock, &[&APPEND_LOCK]).map_err(Failure::During)?;
            let rows = txn.query(&statements.positions, &[&count]).map_err(Failure::During)?;
            let mut positions = rows
                .iter()
                .map(|row| row.try_get::<_, i64>(0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Failure::During)?;
            positions.sort_unstable();
            txn.execute(&statements.insert, &[&positions, &subjects, &encoded]).map_err(Failure::During)?;
            for (event, position) in events.iter().zip(&positions) {
                if let ConsentEvent::Erase(erase) = event {
                    txn.execute(&statements.scrub, &[&erase.subject, position]).map_err(Failure::During)?;
                }
            }
            let Some(last) = positions.last().copied() else {
                return Err(Failure::Store(StoreError::new("postgresql drew no positions")));
            };
            txn.execute(&statements.notify, &[&last.to_string()]).map_err(Failure::During)?;
            txn.commit().map_err(Failure::During)?;
            Ok(last)
        })?;
        position(last)
    }

    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        let events = self.run("read the consent store", true, |connection| {
            let rows = connection.client.query(&connection.statements.history, &[&subject]).map_err(Failure::During)?;
            rows.iter()
                .map(|row| {
                    let position: i64 = row.try_get(0).map_err(Failure::During)?;
                    let json: &str = row.try_get(1).map_err(Failure::During)?;
                    decode(position, json).map_err(Failure::Store)
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(ConsentHistory::new(subject, events))
    }

    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        let Ok(after) = i64::try_from(after) else { return Ok(Vec::new()) };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("read the consent store", true, |connection| {
            let rows =
                connection.client.query(&connection.statements.since, &[&after, &limit]).map_err(Failure::During)?;
            rows.iter()
                .map(|row| {
                    let at: i64 = row.try_get(0).map_err(Failure::During)?;
                    let json: &str = row.try_get(1).map_err(Failure::During)?;
                    let event = decode(at, json).map_err(Failure::Store)?;
                    Ok((position(at).map_err(Failure::Store)?, event))
                })
                .collect()
        })
    }

    fn wait_for_change(&self, after: u64, timeout: Duration) -> Result<(), StoreError> {
        let deadline = Instant::now().checked_add(timeout).unwrap_or_else(Instant::now);
        let mut listener = self.listener.lock().map_err(|_| StoreError::new("postgresql store poisoned by a panic"))?;
        let result = listener.wait(&self.config, after, deadline);
        if result.is_err() {
            // Connect again next time.
            listener.client = None;
        }
        result
    }
}

impl fmt::Debug for PostgresConsentStore {
    /// Prints the database's name, never the password nor the events.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConsentStore")
            .field("dbname", &self.config.get_dbname())
            .field("idle_connections", &self.idle.lock().map(|idle| idle.len()).unwrap_or(0))
            .finish_non_exhaustive()
    }
}
