//! The embedded consent store: one crash-safe [redb](https://docs.rs/redb) file.
//!
//! Layout (format version 1):
//! - `consent_guard.events`: position (`u64`, from 1) → the event as interchange JSON;
//! - `consent_guard.by_subject`: (subject, position) → `()`, to read one subject's
//!   history without scanning the store;
//! - `consent_guard.meta`: `format_version` → 1.
//!
//! Appends are committed with `Durability::Immediate` and two-phase commit (two
//! fsyncs) in write transactions shared by concurrent callers (group commit): an
//! `append` that arrives while a commit is in flight queues its events, and the next
//! commit writes every queued batch, each whole and in queue order, with one pair of
//! fsyncs. Each caller returns once the commit holding its own events is durable. Two-phase commit is what makes a damaged file an
//! error: with redb's default one-phase commit a latest commit that fails its checksum
//! is taken for a torn write and silently rolled back to the commit before, which would
//! hand back a history without its newest, acknowledged events.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, StorageError, TableDefinition};

use super::ConsentStore;
use crate::consent::{ConsentEvent, ConsentHistory};
use crate::error::StoreError;

pub(super) const EVENTS: TableDefinition<'static, u64, &str> = TableDefinition::new("consent_guard.events");
pub(super) const BY_SUBJECT: TableDefinition<'static, (&str, u64), ()> =
    TableDefinition::new("consent_guard.by_subject");
pub(super) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("consent_guard.meta");
pub(super) const FORMAT_KEY: &str = "format_version";
pub(super) const FORMAT_VERSION: u64 = 1;

/// The embedded default consent store: every event in one redb file, made durable
/// (fsync) before [`ConsentStore::append`] returns.
///
/// - One writer at a time: a second open of the same file, from this process or
///   another, is refused with an error saying so. Other processes may read the file
///   meanwhile with [`ReadOnlyRedbStore`](super::ReadOnlyRedbStore) (the CLI's
///   `history` and `check --store` do), which sees every commit as it is made.
/// - Every page is checksummed and the whole file is verified when it is opened: a
///   damaged file is refused, never read in part.
/// - An `erase` rewrites the subject's earlier `subject` events without their birth
///   date and age, in the same transaction as the erase event.
///
/// ```no_run
/// use consent_guard::store::RedbConsentStore;
/// use consent_guard::{Guard, Policy};
///
/// let store = RedbConsentStore::open("consent.redb")?;
/// let policy = Policy::from_toml_file("examples/policies/exmo.toml")?;
/// let guard = Guard::builder(policy).store(store).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedbConsentStore {
    db: Database,
    path: PathBuf,
    group: Group,
}

/// Appends waiting for a commit, and whether a caller is committing (the leader).
#[derive(Default)]
struct Group {
    queue: Mutex<Queue>,
    /// Signalled after each commit, and when the leader steps down.
    committed: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Batches not yet taken by a leader, in arrival order.
    waiting: Vec<Job>,
    /// A caller is writing a transaction.
    leading: bool,
    /// Outcomes by ticket: the last position of the batch, or why it failed.
    done: std::collections::HashMap<u64, Result<u64, String>>,
    next_ticket: u64,
}

struct Job {
    ticket: u64,
    events: Vec<ConsentEvent>,
    encoded: Vec<String>,
}

/// The most batches one commit writes: a bound on the transaction's size.
const GROUP_LIMIT: usize = 1024;

/// Commits since the store was opened, and events written (for benchmarks).
static COMMITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl RedbConsentStore {
    /// Opens the store at `path`, creating the file if it does not exist.
    ///
    /// The whole file is read and its checksums verified, so opening takes time in
    /// proportion to its size. A new store is created and committed under a name of
    /// its own and only then linked in at `path`, so an empty or zeroed file there is
    /// damage (a truncated or overwritten store), refused and left as it is, never
    /// taken for a new store.
    ///
    /// # Errors
    ///
    /// When the file cannot be created or read, is open elsewhere, is damaged, is empty
    /// or zeroed, or is not a consent store.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbConsentStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        match std::fs::metadata(&path) {
            Ok(_) => {
                refuse_headerless(&path)?;
                guarded(&path, "open", || RedbConsentStore::open_existing(&path))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => RedbConsentStore::create_new(&path),
            Err(error) => Err(StoreError::with_source(format!("cannot open consent store {}", path.display()), error)),
        }
    }

    fn builder() -> redb::Builder {
        let mut builder = Database::builder();
        builder.set_check_integrity_on_open(true);
        // One writer, and any number of read-only processes following its commits.
        builder.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
        builder
    }

    fn open_existing(path: &Path) -> Result<RedbConsentStore, StoreError> {
        let db = RedbConsentStore::builder().open(path).map_err(|error| open_error(path, error))?;
        let store = RedbConsentStore { db, path: path.to_path_buf(), group: Group::default() };
        store.initialise()?;
        Ok(store)
    }

    /// Creates the store in a file of its own beside `path`, commits its format version,
    /// and only then links it in at `path`. A crash while redb lays out a new file can
    /// leave it empty or zeroed, and such a file cannot be told from a store that was
    /// truncated or zeroed after it held events: so the store path only ever names a
    /// committed file, and an empty or zeroed one there is damage, refused.
    fn create_new(path: &Path) -> Result<RedbConsentStore, StoreError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let fresh = path.with_file_name(format!(".{name}.creating-{}-{nanos}", std::process::id()));
        let created = guarded(&fresh, "create", || {
            let db = RedbConsentStore::builder().create(&fresh).map_err(|error| open_error(path, error))?;
            let store = RedbConsentStore { db, path: path.to_path_buf(), group: Group::default() };
            store.initialise()?;
            Ok(store)
        });
        let linked = created.and_then(|store| match std::fs::hard_link(&fresh, path) {
            Ok(()) => {
                sync_parent(path);
                Ok(Some(store))
            }
            // Another process created the store meanwhile: open that one.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
            Err(error) => {
                Err(StoreError::with_source(format!("cannot create consent store {}", path.display()), error))
            }
        });
        // The file was created by this call and either linked in or never committed to
        // the store path: its own name goes in every case.
        let _ = std::fs::remove_file(&fresh);
        match linked? {
            Some(store) => Ok(store),
            None => RedbConsentStore::open(path),
        }
    }
    /// The file the store is kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables of a new file, or checks the format version of an old one.
    fn initialise(&self) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.fail("open the consent store", e))?;
            let found = meta.get(FORMAT_KEY).map_err(|e| self.fail("open the consent store", e))?.map(|v| v.value());
            let events = txn.open_table(EVENTS).map_err(|e| self.fail("open the consent store", e))?;
            txn.open_table(BY_SUBJECT).map_err(|e| self.fail("open the consent store", e))?;
            match found {
                Some(FORMAT_VERSION) => {}
                Some(other) => {
                    return Err(StoreError::new(format!(
                        "consent store {} has format version {other}; this build reads version {FORMAT_VERSION}",
                        self.path.display()
                    )))
                }
                None if events.last().map_err(|e| self.fail("open the consent store", e))?.is_some() => {
                    return Err(StoreError::new(format!(
                        "consent store {} holds events but no format version",
                        self.path.display()
                    )))
                }
                None => {
                    meta.insert(FORMAT_KEY, FORMAT_VERSION).map_err(|e| self.fail("open the consent store", e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.fail("open the consent store", e))
    }

    /// A write transaction that is durable on commit: one fsync for the data and the
    /// commit slot, one for the switch to it.
    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.fail("write to the consent store", e))?;
        txn.set_durability(Durability::Immediate).map_err(|e| self.fail("write to the consent store", e))?;
        txn.set_two_phase_commit(true);
        Ok(txn)
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(|e| self.fail("read the consent store", e))
    }

    fn last_position(&self) -> Result<u64, StoreError> {
        guarded(&self.path, "read", || self.last_position_unguarded())
    }

    fn last_position_unguarded(&self) -> Result<u64, StoreError> {
        let txn = self.begin_read()?;
        let events = txn.open_table(EVENTS).map_err(|e| self.fail("read the consent store", e))?;
        let last = events.last().map_err(|e| self.fail("read the consent store", e))?;
        Ok(last.map_or(0, |(position, _)| position.value()))
    }

    /// A store error for a failed `action`, saying so when redb found the file damaged.
    fn fail(&self, action: &str, error: impl Into<redb::Error>) -> StoreError {
        let error: redb::Error = error.into();
        match error {
            redb::Error::Corrupted(_) => StoreError::with_source(
                format!("cannot {action}: consent store {} is corrupted", self.path.display()),
                error,
            ),
            _ => StoreError::with_source(format!("cannot {action} {}", self.path.display()), error),
        }
    }
}

/// Refuses a file with no redb header (empty, or zeroed where the header goes): the
/// store path only ever names a committed file (see `create_new`), so such a file was
/// truncated or zeroed after it held events, and taking it for a new store would forget
/// every withdrawal it held.
pub(super) fn refuse_headerless(path: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    let mut header = [0u8; 512];
    let mut file = std::fs::File::open(path)
        .map_err(|e| StoreError::with_source(format!("cannot open consent store {}", path.display()), e))?;
    let mut read = 0;
    while read < header.len() {
        let Some(rest) = header.get_mut(read..) else { break };
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::with_source(format!("cannot read consent store {}", path.display()), e)),
        }
    }
    if header.iter().all(|b| *b == 0) {
        let state = if read == 0 { "empty" } else { "zeroed at its header" };
        return Err(StoreError::new(format!(
            "consent store {} is corrupted: the file is {state} (truncated or overwritten); it is never \
             taken for a new store: restore it from a backup",
            path.display()
        )));
    }
    Ok(())
}

/// Fsyncs the directory of `path`, so that a new link to the store survives a crash.
/// Best effort: some platforms cannot open a directory.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

/// Runs `work` on a redb file and turns a panic inside redb into an error: redb asserts
/// on some damage it does not detect by checksum (an `unreachable` in its b-tree, an
/// `unwrap` of a `Utf8Error`), and a damaged store must be refused, never crash the
/// process or, in a server, a worker.
pub(super) fn guarded<T>(
    path: &Path,
    action: &str,
    work: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(StoreError::new(format!(
            "cannot {action} consent store {}: it is corrupted (redb panicked reading it: {why})",
            path.display()
        )))
    })
}

/// The error of a failed open, naming the cases an operator must act on.
pub(super) fn open_error(path: &Path, error: DatabaseError) -> StoreError {
    let path = path.display();
    match error {
        DatabaseError::DatabaseAlreadyOpen => StoreError::with_source(
            format!("consent store {path} is already open, by another process or another store in this one"),
            error,
        ),
        DatabaseError::Storage(StorageError::Corrupted(_)) => StoreError::with_source(
            format!("consent store {path} is corrupted and was not opened; restore it from a backup"),
            error,
        ),
        DatabaseError::Storage(StorageError::Io(ref io)) if io.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::with_source(format!("cannot open consent store {path}: not a redb file"), error)
        }
        DatabaseError::Storage(StorageError::Io(_)) => {
            StoreError::with_source(format!("cannot open consent store {path}"), error)
        }
        _ => StoreError::with_source(format!("cannot open consent store {path}: not a readable consent store"), error),
    }
}

/// One subject's events, read in one transaction (the writer's and the reader's store).
pub(super) fn read_history(
    txn: &redb::ReadTransaction,
    subject: &str,
    fail: impl Fn(redb::Error) -> StoreError,
) -> Result<ConsentHistory, StoreError> {
    let read = |e: redb::Error| fail(e);
    let table = txn.open_table(EVENTS).map_err(|e| read(e.into()))?;
    let index = txn.open_table(BY_SUBJECT).map_err(|e| read(e.into()))?;
    let mut events = Vec::new();
    for entry in index.range((subject, 0)..=(subject, u64::MAX)).map_err(|e| read(e.into()))? {
        let position = entry.map_err(|e| read(e.into()))?.0.value().1;
        let Some(json) = table.get(position).map_err(|e| read(e.into()))? else {
            return Err(StoreError::new(format!("consent store index names a missing event {position}")));
        };
        events.push(decode(position, json.value())?);
    }
    Ok(ConsentHistory::new(subject, events))
}

/// Up to `limit` events after position `after`, read in one transaction.
pub(super) fn read_since(
    txn: &redb::ReadTransaction,
    after: u64,
    limit: usize,
    fail: impl Fn(redb::Error) -> StoreError,
) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
    let Some(first) = after.checked_add(1) else { return Ok(Vec::new()) };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let read = |e: redb::Error| fail(e);
    let table = txn.open_table(EVENTS).map_err(|e| read(e.into()))?;
    let mut events = Vec::with_capacity(limit.min(4096));
    for entry in table.range(first..).map_err(|e| read(e.into()))?.take(limit) {
        let (position, json) = entry.map_err(|e| read(e.into()))?;
        let position = position.value();
        events.push((position, decode(position, json.value())?));
    }
    Ok(events)
}

pub(super) fn decode(position: u64, json: &str) -> Result<ConsentEvent, StoreError> {
    serde_json::from_str(json)
        .map_err(|error| StoreError::with_source(format!("stored event at position {position} cannot be read"), error))
}

fn encode(event: &ConsentEvent) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|error| StoreError::with_source("cannot encode a consent event", error))
}

impl RedbConsentStore {
    /// How many write transactions appends have committed in this process, over every
    /// store (for benchmarks of the group commit).
    pub fn commits() -> u64 {
        COMMITS.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes the batches of several callers in one transaction, each whole, in order;
    /// the last position of each.
    fn commit_group(&self, jobs: &[Job]) -> Result<Vec<u64>, StoreError> {
        let write = |e: redb::Error| self.fail("write to the consent store", e);
        let txn = self.begin_write()?;
        let mut lasts = Vec::with_capacity(jobs.len());
        {
            let mut table = txn.open_table(EVENTS).map_err(|e| write(e.into()))?;
            let mut index = txn.open_table(BY_SUBJECT).map_err(|e| write(e.into()))?;
            let mut position = table.last().map_err(|e| write(e.into()))?.map_or(0, |(key, _)| key.value());
            for job in jobs {
                position = self.write_batch(&mut table, &mut index, position, &job.events, &job.encoded)?;
                lasts.push(position);
            }
        }
        txn.commit().map_err(|e| write(e.into()))?;
        COMMITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(lasts)
    }

    /// Writes one caller's batch after `position`; its last position.
    fn write_batch(
        &self,
        table: &mut redb::Table<'_, u64, &'static str>,
        index: &mut redb::Table<'_, (&'static str, u64), ()>,
        mut position: u64,
        events: &[ConsentEvent],
        encoded: &[String],
    ) -> Result<u64, StoreError> {
        let write = |e: redb::Error| self.fail("write to the consent store", e);
        for (event, json) in events.iter().zip(encoded) {
            position = position.checked_add(1).ok_or_else(|| StoreError::new("consent store is full"))?;
            if let ConsentEvent::Erase(erase) = event {
                let earlier: Vec<u64> = index
                    .range((erase.subject.as_str(), 0)..(erase.subject.as_str(), position))
                    .map_err(|e| write(e.into()))?
                    .map(|entry| entry.map(|(key, _)| key.value().1))
                    .collect::<Result<_, _>>()
                    .map_err(|e| write(e.into()))?;
                for at in earlier {
                    let Some(stored) = table.get(at).map_err(|e| write(e.into()))?.map(|v| v.value().to_owned()) else {
                        return Err(StoreError::new(format!("consent store index names a missing event {at}")));
                    };
                    if let ConsentEvent::Subject(mut attributes) = decode(at, &stored)? {
                        if attributes.birth_date.is_some() || attributes.age.is_some() {
                            attributes.birth_date = None;
                            attributes.age = None;
                            let scrubbed = encode(&ConsentEvent::Subject(attributes))?;
                            table.insert(at, scrubbed.as_str()).map_err(|e| write(e.into()))?;
                        }
                    }
                }
            }
            table.insert(position, json.as_str()).map_err(|e| write(e.into()))?;
            index.insert((event.subject(), position), ()).map_err(|e| write(e.into()))?;
        }
        Ok(position)
    }
}

impl ConsentStore for RedbConsentStore {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return self.last_position();
        }
        let encoded = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let poisoned = || StoreError::new("consent store poisoned by a panic");
        let mut queue = self.group.queue.lock().map_err(|_| poisoned())?;
        let ticket = queue.next_ticket;
        queue.next_ticket = ticket.wrapping_add(1);
        queue.waiting.push(Job { ticket, events: events.to_vec(), encoded });
        loop {
            if let Some(outcome) = queue.done.remove(&ticket) {
                return outcome.map_err(StoreError::new);
            }
            if queue.leading {
                queue = self.group.committed.wait(queue).map_err(|_| poisoned())?;
                continue;
            }
            // Lead one commit of everything queued, the own batch included (it is
            // queued and not done, so it is among them).
            queue.leading = true;
            let take = queue.waiting.len().min(GROUP_LIMIT);
            let jobs: Vec<Job> = queue.waiting.drain(..take).collect();
            drop(queue);
            let outcome = guarded(&self.path, "write to", || self.commit_group(&jobs));
            queue = self.group.queue.lock().map_err(|_| poisoned())?;
            queue.leading = false;
            match outcome {
                Ok(lasts) => {
                    for (job, last) in jobs.iter().zip(lasts) {
                        queue.done.insert(job.ticket, Ok(last));
                    }
                }
                Err(error) => {
                    let message = format!("{error} (in a group commit: none of its events was stored)");
                    for job in &jobs {
                        queue.done.insert(job.ticket, Err(message.clone()));
                    }
                }
            }
            self.group.committed.notify_all();
        }
    }

    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        guarded(&self.path, "read", || {
            read_history(&self.begin_read()?, subject, |e| self.fail("read the consent store", e))
        })
    }

    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        guarded(&self.path, "read", || {
            read_since(&self.begin_read()?, after, limit, |e| self.fail("read the consent store", e))
        })
    }

    /// One process at a time writes the file, so a guard over it is never stale.
    fn shared(&self) -> bool {
        false
    }
}

impl fmt::Debug for RedbConsentStore {
    /// Prints the file, never the events: they are personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbConsentStore").field("path", &self.path).finish_non_exhaustive()
    }
}
