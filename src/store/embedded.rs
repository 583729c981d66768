//! The embedded consent store: one crash-safe [redb](https://docs.rs/redb) file.
//!
//! Layout (format version 2), holding no subject id in any form:
//! - `consent_guard.events`: position (`u64`, from 1) → a record: an event (tag 1, the
//!   subject's [`Locator`], a random 24-byte nonce, and the event's interchange JSON
//!   encrypted with XChaCha20-Poly1305 under a key derived from the subject's key,
//!   the locator and position authenticated beside it), or a tombstone (tag 2, the
//!   locator, the erase time in ms), which takes an erase's position;
//! - `consent_guard.by_subject`: (locator, position) → `()`, to read one subject's
//!   history without scanning the store;
//! - `consent_guard.keys`: locator → the subject's 32-byte key;
//! - `consent_guard.tombstones`: locator → (erase time in ms, position);
//! - `consent_guard.meta`: `format_version` → 2, `master_check` → a keyed hash that
//!   tells whether the master key given is the store's.
//!
//! An `erase`, in the transaction that appends it, deletes the subject's key, events
//! and index entries and writes the tombstone. redb copies pages on write, so freed
//! pages keep old bytes until reused: those are ciphertext under a key that no longer
//! exists, and locators. The destroyed key's own bytes may persist in a freed page
//! until it is reused (see `docs/erasure.md`); keep the master key apart from the
//! store directory, so that a copy of the file alone links nothing to an id.
//!
//! A file of format version 1 (plain JSON events, plain-id index) is refused: run
//! `consent-guard store migrate` ([`RedbConsentStore::migrate`]).
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

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, StorageError, TableDefinition};

use super::ConsentStore;
use crate::consent::{ConsentEvent, ConsentHistory};
use crate::error::StoreError;
use crate::keys::{Locator, MasterKey, SubjectKey, SubjectKeys, Tombstones};

pub(super) const EVENTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("consent_guard.events");
// Fixed-size keys and values as byte arrays by reference: redb compares and copies
// them as bytes (an array of `u8` by value is compared element by element).
pub(super) const BY_SUBJECT: TableDefinition<'static, (&[u8; 16], u64), ()> =
    TableDefinition::new("consent_guard.by_subject");
pub(super) const KEYS: TableDefinition<'static, &[u8; 16], &[u8; 32]> = TableDefinition::new("consent_guard.keys");
pub(super) const TOMBSTONES: TableDefinition<'static, &[u8; 16], (i64, u64)> =
    TableDefinition::new("consent_guard.tombstones");
pub(super) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("consent_guard.meta");
pub(super) const FORMAT_KEY: &str = "format_version";
pub(super) const MASTER_CHECK_KEY: &str = "master_check";
pub(super) const FORMAT_VERSION: u64 = 2;
/// Format version 1: events as plain JSON, indexed by plain subject id.
pub(super) const FORMAT_V1: u64 = 1;
pub(super) const V1_EVENTS: TableDefinition<'static, u64, &str> = TableDefinition::new("consent_guard.events");

/// The embedded default consent store: every event in one redb file, made durable
/// (fsync) before [`ConsentStore::append`] returns.
///
/// - One writer at a time: a second open of the same file, from this process or
///   another, is refused with an error saying so. Other processes may read the file
///   meanwhile with [`ReadOnlyRedbStore`](super::ReadOnlyRedbStore) (the CLI's
///   `history` and `check --store` do), which sees every commit as it is made.
/// - Every page is checksummed and the whole file is verified when it is opened: a
///   damaged file is refused, never read in part.
/// - Each event is encrypted under its subject's key, which the store keeps (it
///   implements [`SubjectKeys`], for the audit log). An `erase` deletes the subject's
///   key, events and index entries and keeps only a tombstone, in the transaction that
///   appends it: the file then holds nothing that names the subject.
/// - [`RedbConsentStore::open`] keeps the master key in `<path>.key` (made when
///   absent); [`RedbConsentStore::open_with_master_key`] takes it from elsewhere (a
///   secret store, `--master-key-file`), which is better: a copy of the store
///   directory alone then links no record to an id.
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
    master: MasterKey,
    /// Keys destroyed by committed erasures (see `SubjectKeys::destructions`).
    destroyed: std::sync::atomic::AtomicU64,
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
    locators: Vec<Locator>,
}

/// The most batches one commit writes: a bound on the transaction's size.
const GROUP_LIMIT: usize = 1024;

/// Commits since the store was opened, and events written (for benchmarks).
static COMMITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl RedbConsentStore {
    /// Opens the store at `path`, creating the file if it does not exist, with the
    /// master key kept in `<path>.key` (64 hex digits; made, readable by its owner
    /// only, together with a new store, and never for a store that exists: a key made
    /// then would not be the store's). Prefer
    /// [`RedbConsentStore::open_with_master_key`] with a key kept elsewhere.
    ///
    /// # Errors
    ///
    /// As [`RedbConsentStore::open_with_master_key`], and when the key file cannot be
    /// read or made.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbConsentStore, StoreError> {
        let path = path.as_ref();
        let key_path = key_file_of(path);
        let exists = std::fs::symlink_metadata(path).is_ok();
        let master = if exists { MasterKey::load(&key_path) } else { MasterKey::load_or_create(&key_path) };
        match master {
            Ok(master) => RedbConsentStore::open_with_master_key(path, master),
            Err(error) => {
                // What is wrong with the file itself matters more than the key.
                if exists {
                    refuse_headerless(path)?;
                    if file_version(path)? == Some(FORMAT_V1) {
                        return Err(v1_refused(path));
                    }
                }
                Err(StoreError::with_source(
                    format!(
                        "cannot read the master key of consent store {} from {} (give it with \
                         `open_with_master_key`, --master-key-file or CONSENT_GUARD_MASTER_KEY)",
                        path.display(),
                        key_path.display()
                    ),
                    error,
                ))
            }
        }
    }

    /// Opens the store at `path` with its master key, creating the file if it does not
    /// exist.
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
    /// or zeroed, is not a consent store, is of format version 1 (migrate it with
    /// `consent-guard store migrate`), or was made under another master key.
    pub fn open_with_master_key(path: impl AsRef<Path>, master: MasterKey) -> Result<RedbConsentStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        match std::fs::metadata(&path) {
            Ok(_) => {
                refuse_headerless(&path)?;
                guarded(&path, "open", || RedbConsentStore::open_existing(&path, master))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => RedbConsentStore::create_new(&path, master),
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

    fn open_existing(path: &Path, master: MasterKey) -> Result<RedbConsentStore, StoreError> {
        let db = RedbConsentStore::builder().open(path).map_err(|error| open_error(path, error))?;
        let store = RedbConsentStore {
            db,
            path: path.to_path_buf(),
            group: Group::default(),
            master,
            destroyed: std::sync::atomic::AtomicU64::new(0),
        };
        store.initialise()?;
        Ok(store)
    }

    /// Creates the store in a file of its own beside `path`, commits its format version,
    /// and only then links it in at `path`. A crash while redb lays out a new file can
    /// leave it empty or zeroed, and such a file cannot be told from a store that was
    /// truncated or zeroed after it held events: so the store path only ever names a
    /// committed file, and an empty or zeroed one there is damage, refused.
    fn create_new(path: &Path, master: MasterKey) -> Result<RedbConsentStore, StoreError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let fresh = path.with_file_name(format!(".{name}.creating-{}-{nanos}", std::process::id()));
        let created = guarded(&fresh, "create", || {
            let db = RedbConsentStore::builder().create(&fresh).map_err(|error| open_error(path, error))?;
            let store = RedbConsentStore {
                db,
                path: path.to_path_buf(),
                group: Group::default(),
                master: master.clone(),
                destroyed: std::sync::atomic::AtomicU64::new(0),
            };
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
            None => RedbConsentStore::open_with_master_key(path, master),
        }
    }
    /// The file the store is kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables of a new file, or checks the format version and master key
    /// of an old one.
    fn initialise(&self) -> Result<(), StoreError> {
        let failed = |e: redb::Error| self.fail("open the consent store", e);
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META).map_err(|e| failed(e.into()))?;
            let found = meta.get(FORMAT_KEY).map_err(|e| failed(e.into()))?.map(|v| v.value());
            match found {
                Some(FORMAT_VERSION) => {}
                Some(FORMAT_V1) => return Err(v1_refused(&self.path)),
                Some(other) => {
                    return Err(StoreError::new(format!(
                        "consent store {} has format version {other}; this build reads version {FORMAT_VERSION}",
                        self.path.display()
                    )))
                }
                None => {
                    // A file without a version that holds events is no store of ours;
                    // the events table is opened untyped, so a v1 table is seen too.
                    let untyped = redb::TableHandle::name(&EVENTS).to_owned();
                    let holds = txn
                        .list_tables()
                        .map_err(|e| failed(e.into()))?
                        .any(|table| redb::TableHandle::name(&table) == untyped);
                    if holds {
                        return Err(StoreError::new(format!(
                            "consent store {} holds events but no format version",
                            self.path.display()
                        )));
                    }
                    meta.insert(FORMAT_KEY, FORMAT_VERSION).map_err(|e| failed(e.into()))?;
                }
            }
            let check = master_check(&self.master);
            let kept = meta.get(MASTER_CHECK_KEY).map_err(|e| failed(e.into()))?.map(|v| v.value());
            match kept {
                Some(found) if found == check => {}
                Some(_) => return Err(wrong_master(&self.path)),
                None => {
                    meta.insert(MASTER_CHECK_KEY, check).map_err(|e| failed(e.into()))?;
                }
            }
            txn.open_table(EVENTS).map_err(|e| failed(e.into()))?;
            txn.open_table(BY_SUBJECT).map_err(|e| failed(e.into()))?;
            txn.open_table(KEYS).map_err(|e| failed(e.into()))?;
            txn.open_table(TOMBSTONES).map_err(|e| failed(e.into()))?;
        }
        txn.commit().map_err(|e| failed(e.into()))
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

/// The format version a store file says it has (read without its key); `None` when it
/// says none.
fn file_version(path: &Path) -> Result<Option<u64>, StoreError> {
    guarded(path, "open", || {
        let mut builder = Database::builder();
        builder.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
        let db = builder.open_read_only(path).map_err(|error| open_error(path, error))?;
        let read = |e: redb::Error| StoreError::with_source(format!("cannot read consent store {}", path.display()), e);
        let txn = db.begin_read().map_err(|e| read(e.into()))?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(read(e.into())),
        };
        let version = meta.get(FORMAT_KEY).map_err(|e| read(e.into()))?.map(|v| v.value());
        Ok(version)
    })
}

/// Where [`RedbConsentStore::open`] keeps the master key of the store at `path`:
/// `<path>.key`.
pub(super) fn key_file_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// The error for a file of format version 1.
pub(super) fn v1_refused(path: &Path) -> StoreError {
    StoreError::new(format!(
        "consent store {} has format version 1, which keeps subject ids in plain text and cannot forget an \
         erased subject; this build reads version {FORMAT_VERSION}: convert it with `consent-guard store migrate \
         --from {} --to NEW`, then delete the old file",
        path.display(),
        path.display()
    ))
}

/// The error for a master key that is not the store's.
pub(super) fn wrong_master(path: &Path) -> StoreError {
    StoreError::new(format!(
        "consent store {} was made under another master key: give the store's own (its key file, \
         --master-key-file or CONSENT_GUARD_MASTER_KEY)",
        path.display()
    ))
}

const MASTER_CHECK_DOMAIN: &[u8] = b"consent-guard/store-master-check/v2\0";
const EVENT_KEY_DOMAIN: &[u8] = b"consent-guard/event-key/v2\0";
const EVENT_AAD_DOMAIN: &[u8] = b"consent-guard/event/v2\0";

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Mac, SimpleHmac};
    // HMAC takes a key of any length, so `new_from_slice` cannot fail here.
    let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// What the store keeps to tell its own master key from another: 8 bytes of a keyed
/// hash (no use to anyone without the key).
pub(super) fn master_check(master: &MasterKey) -> u64 {
    let mac = hmac_sha256(master.as_bytes(), &[MASTER_CHECK_DOMAIN]);
    let [a, b, c, d, e, f, g, h, ..] = mac;
    u64::from_le_bytes([a, b, c, d, e, f, g, h])
}

/// The cipher of a subject's events: its key is derived from the subject key, so the
/// same secret never serves both the audit pseudonyms and the encryption.
fn cipher_of(key: &SubjectKey) -> XChaCha20Poly1305 {
    let derived = hmac_sha256(key.as_bytes(), &[EVENT_KEY_DOMAIN]);
    XChaCha20Poly1305::new(&derived.into())
}

/// What each event's ciphertext is bound to: its subject's locator and its position,
/// so that a record moved to another place or subject does not decrypt.
fn aad(locator: &Locator, position: u64) -> [u8; AAD] {
    let mut aad = [0u8; AAD];
    let (domain, rest) = aad.split_at_mut(EVENT_AAD_DOMAIN.len());
    domain.copy_from_slice(EVENT_AAD_DOMAIN);
    let (place, at) = rest.split_at_mut(16);
    place.copy_from_slice(locator.as_bytes());
    at.copy_from_slice(&position.to_le_bytes());
    aad
}

/// The length of [`aad`]: the domain, the locator, the position.
const AAD: usize = EVENT_AAD_DOMAIN.len() + 16 + 8;

const TAG_EVENT: u8 = 1;
const TAG_TOMBSTONE: u8 = 2;
const NONCE: usize = 24;

/// A stored record: an encrypted event, or a tombstone.
enum Stored<'a> {
    Event { locator: Locator, nonce: &'a [u8], ciphertext: &'a [u8] },
    Tombstone { locator: Locator, at: i64 },
}

fn locator_at(bytes: &[u8]) -> Option<Locator> {
    let array: [u8; 16] = bytes.get(1..17)?.try_into().ok()?;
    Some(Locator::from_bytes(array))
}

fn parse_record(position: u64, bytes: &[u8]) -> Result<Stored<'_>, StoreError> {
    let damaged = || StoreError::new(format!("stored record at position {position} cannot be read (damaged)"));
    let locator = locator_at(bytes).ok_or_else(damaged)?;
    match bytes.first() {
        Some(&TAG_EVENT) => {
            let nonce = bytes.get(17..17 + NONCE).ok_or_else(damaged)?;
            let ciphertext = bytes.get(17 + NONCE..).ok_or_else(damaged)?;
            Ok(Stored::Event { locator, nonce, ciphertext })
        }
        Some(&TAG_TOMBSTONE) => {
            let at: [u8; 8] = bytes.get(17..25).and_then(|b| b.try_into().ok()).ok_or_else(damaged)?;
            Ok(Stored::Tombstone { locator, at: i64::from_le_bytes(at) })
        }
        _ => Err(damaged()),
    }
}

fn tombstone_record(locator: &Locator, at: i64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(25);
    bytes.push(TAG_TOMBSTONE);
    bytes.extend_from_slice(locator.as_bytes());
    bytes.extend_from_slice(&at.to_le_bytes());
    bytes
}

fn encrypt(
    cipher: &XChaCha20Poly1305,
    nonce: &[u8; NONCE],
    locator: &Locator,
    position: u64,
    json: &str,
) -> Result<Vec<u8>, StoreError> {
    let aad = aad(locator, position);
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(nonce), Payload { msg: json.as_bytes(), aad: &aad })
        .map_err(|_| StoreError::new("cannot encrypt a consent event"))?;
    let mut bytes = Vec::with_capacity(1 + 16 + NONCE + ciphertext.len());
    bytes.push(TAG_EVENT);
    bytes.extend_from_slice(locator.as_bytes());
    bytes.extend_from_slice(nonce);
    bytes.extend_from_slice(&ciphertext);
    Ok(bytes)
}

/// Decrypts stored events, reading each subject's key once per call.
pub(super) struct Opener<'t, T: ReadableTable<&'static [u8; 16], &'static [u8; 32]>> {
    keys: &'t T,
    ciphers: std::collections::HashMap<Locator, XChaCha20Poly1305>,
}

impl<'t, T: ReadableTable<&'static [u8; 16], &'static [u8; 32]>> Opener<'t, T> {
    pub(super) fn new(keys: &'t T) -> Opener<'t, T> {
        Opener { keys, ciphers: std::collections::HashMap::new() }
    }

    /// The event of an encrypted record. A record whose key is gone, or that does not
    /// authenticate, is an error: never skipped, never read as something else.
    fn open(
        &mut self,
        position: u64,
        locator: Locator,
        nonce: &[u8],
        ciphertext: &[u8],
        fail: &impl Fn(redb::Error) -> StoreError,
    ) -> Result<ConsentEvent, StoreError> {
        let cipher = match self.ciphers.entry(locator) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let key = self.keys.get(locator.as_bytes()).map_err(|e| fail(e.into()))?.map(|v| *v.value());
                let Some(key) = key else {
                    return Err(StoreError::new(format!(
                        "stored event at position {position} has no subject key (damaged store)"
                    )));
                };
                entry.insert(cipher_of(&SubjectKey::from_bytes(key)))
            }
        };
        let aad = aad(&locator, position);
        let json = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| StoreError::new(format!("stored event at position {position} does not authenticate")))?;
        serde_json::from_slice(&json).map_err(|error| {
            StoreError::with_source(format!("stored event at position {position} cannot be read"), error)
        })
    }
}

/// One subject's history, read in one transaction (the writer's and the reader's
/// store): the erase rebuilt from its tombstone, when it was erased, then its events.
pub(super) fn read_history(
    txn: &redb::ReadTransaction,
    master: &MasterKey,
    subject: &str,
    fail: impl Fn(redb::Error) -> StoreError,
) -> Result<ConsentHistory, StoreError> {
    let locator = master.locator(subject);
    let table = txn.open_table(EVENTS).map_err(|e| fail(e.into()))?;
    let index = txn.open_table(BY_SUBJECT).map_err(|e| fail(e.into()))?;
    let keys = txn.open_table(KEYS).map_err(|e| fail(e.into()))?;
    let tombstones = txn.open_table(TOMBSTONES).map_err(|e| fail(e.into()))?;
    let mut events = Vec::new();
    if let Some(tombstone) = tombstones.get(locator.as_bytes()).map_err(|e| fail(e.into()))? {
        let (at, _) = tombstone.value();
        let at = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default();
        events.push(ConsentEvent::Erase(crate::consent::EraseEvent::new(subject, at)));
    }
    let mut opener = Opener::new(&keys);
    let bytes = locator.as_bytes();
    for entry in index.range((bytes, 0)..=(bytes, u64::MAX)).map_err(|e| fail(e.into()))? {
        let position = entry.map_err(|e| fail(e.into()))?.0.value().1;
        let Some(record) = table.get(position).map_err(|e| fail(e.into()))? else {
            return Err(StoreError::new(format!("consent store index names a missing event {position}")));
        };
        match parse_record(position, record.value())? {
            Stored::Event { locator: found, nonce, ciphertext } if found == locator => {
                events.push(opener.open(position, found, nonce, ciphertext, &fail)?);
            }
            _ => return Err(StoreError::new(format!("consent store index names a wrong record at {position}"))),
        }
    }
    Ok(ConsentHistory::new(subject, events))
}

/// Up to `limit` events after position `after`, read in one transaction; tombstones
/// are passed over.
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
    let table = txn.open_table(EVENTS).map_err(|e| fail(e.into()))?;
    let keys = txn.open_table(KEYS).map_err(|e| fail(e.into()))?;
    let mut opener = Opener::new(&keys);
    let mut events = Vec::with_capacity(limit.min(4096));
    for entry in table.range(first..).map_err(|e| fail(e.into()))? {
        let (position, record) = entry.map_err(|e| fail(e.into()))?;
        let position = position.value();
        if let Stored::Event { locator, nonce, ciphertext } = parse_record(position, record.value())? {
            events.push((position, opener.open(position, locator, nonce, ciphertext, &fail)?));
            if events.len() >= limit {
                break;
            }
        }
    }
    Ok(events)
}

/// The tombstones written after position `after`, in position order.
pub(super) fn read_erasures(
    txn: &redb::ReadTransaction,
    after: u64,
    fail: impl Fn(redb::Error) -> StoreError,
) -> Result<Vec<(u64, Locator, i64)>, StoreError> {
    let Some(first) = after.checked_add(1) else { return Ok(Vec::new()) };
    let table = txn.open_table(EVENTS).map_err(|e| fail(e.into()))?;
    let mut erasures = Vec::new();
    for entry in table.range(first..).map_err(|e| fail(e.into()))? {
        let (position, record) = entry.map_err(|e| fail(e.into()))?;
        let position = position.value();
        if let Stored::Tombstone { locator, at } = parse_record(position, record.value())? {
            erasures.push((position, locator, at));
        }
    }
    Ok(erasures)
}

/// Every tombstone, under the store's master key.
pub(super) fn read_tombstones(
    txn: &redb::ReadTransaction,
    master: &MasterKey,
    fail: impl Fn(redb::Error) -> StoreError,
) -> Result<Tombstones, StoreError> {
    let table = txn.open_table(TOMBSTONES).map_err(|e| fail(e.into()))?;
    let mut found = Vec::new();
    for entry in table.iter().map_err(|e| fail(e.into()))? {
        let (locator, value) = entry.map_err(|e| fail(e.into()))?;
        found.push((Locator::from_bytes(*locator.value()), value.value().0));
    }
    Ok(Tombstones::from_locators(master.clone(), found))
}

/// The key of `locator`, if it has one.
pub(super) fn read_key(
    txn: &redb::ReadTransaction,
    locator: &Locator,
    fail: impl Fn(redb::Error) -> StoreError,
) -> Result<Option<SubjectKey>, StoreError> {
    let keys = txn.open_table(KEYS).map_err(|e| fail(e.into()))?;
    let key = keys.get(locator.as_bytes()).map_err(|e| fail(e.into()))?.map(|v| *v.value());
    Ok(key.map(SubjectKey::from_bytes))
}

fn encode(event: &ConsentEvent) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|error| StoreError::with_source("cannot encode a consent event", error))
}

/// The tables a commit writes.
struct Tables<'t> {
    events: redb::Table<'t, u64, &'static [u8]>,
    index: redb::Table<'t, (&'static [u8; 16], u64), ()>,
    keys: redb::Table<'t, &'static [u8; 16], &'static [u8; 32]>,
    tombstones: redb::Table<'t, &'static [u8; 16], (i64, u64)>,
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
            let mut tables = Tables {
                events: txn.open_table(EVENTS).map_err(|e| write(e.into()))?,
                index: txn.open_table(BY_SUBJECT).map_err(|e| write(e.into()))?,
                keys: txn.open_table(KEYS).map_err(|e| write(e.into()))?,
                tombstones: txn.open_table(TOMBSTONES).map_err(|e| write(e.into()))?,
            };
            let mut position = tables.events.last().map_err(|e| write(e.into()))?.map_or(0, |(key, _)| key.value());
            // Ciphers of the subjects written in this commit, dropped when one is erased.
            let mut ciphers = std::collections::HashMap::new();
            for job in jobs {
                position = self.write_batch(&mut tables, &mut ciphers, position, job)?;
                lasts.push(position);
            }
        }
        txn.commit().map_err(|e| write(e.into()))?;
        COMMITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // After the commit: a reader of keys before it saw the old key, and the moved
        // count makes whoever kept something derived from it drop it.
        if jobs.iter().any(|job| job.events.iter().any(|e| matches!(e, ConsentEvent::Erase(_)))) {
            self.destroyed.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(lasts)
    }

    /// Writes one caller's batch after `position`; its last position.
    fn write_batch(
        &self,
        tables: &mut Tables<'_>,
        ciphers: &mut std::collections::HashMap<Locator, XChaCha20Poly1305>,
        mut position: u64,
        job: &Job,
    ) -> Result<u64, StoreError> {
        let write = |e: redb::Error| self.fail("write to the consent store", e);
        // Every nonce of the batch from one request to the operating system.
        let mut nonces = vec![0u8; NONCE * job.events.len()];
        getrandom::fill(&mut nonces).map_err(|e| StoreError::new(format!("no randomness for a nonce: {e}")))?;
        let mut nonces = nonces.chunks_exact(NONCE);
        for ((event, json), locator) in job.events.iter().zip(&job.encoded).zip(&job.locators) {
            let nonce: &[u8; NONCE] = nonces
                .next()
                .and_then(|nonce| nonce.try_into().ok())
                .ok_or_else(|| StoreError::new("a nonce was not drawn"))?;
            position = position.checked_add(1).ok_or_else(|| StoreError::new("consent store is full"))?;
            let bytes = locator.as_bytes();
            if let ConsentEvent::Erase(erase) = event {
                // Forget the subject: key, events, index entries; keep a tombstone.
                ciphers.remove(locator);
                tables.keys.remove(bytes).map_err(|e| write(e.into()))?;
                let earlier: Vec<u64> = tables
                    .index
                    .range((bytes, 0)..(bytes, position))
                    .map_err(|e| write(e.into()))?
                    .map(|entry| entry.map(|(key, _)| key.value().1))
                    .collect::<Result<_, _>>()
                    .map_err(|e| write(e.into()))?;
                for at in earlier {
                    tables.events.remove(at).map_err(|e| write(e.into()))?;
                    tables.index.remove((bytes, at)).map_err(|e| write(e.into()))?;
                }
                let at = erase.at.timestamp_millis();
                let kept = tables.tombstones.get(bytes).map_err(|e| write(e.into()))?.map(|v| v.value());
                let tombstone = match kept {
                    Some((first_at, first_position)) => (first_at.min(at), first_position),
                    None => (at, position),
                };
                tables.tombstones.insert(bytes, tombstone).map_err(|e| write(e.into()))?;
                tables
                    .events
                    .insert(position, tombstone_record(locator, at).as_slice())
                    .map_err(|e| write(e.into()))?;
                continue;
            }
            let cipher = match ciphers.entry(*locator) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let kept = tables.keys.get(bytes).map_err(|e| write(e.into()))?.map(|v| *v.value());
                    let key = match kept {
                        Some(key) => SubjectKey::from_bytes(key),
                        None => {
                            let key = SubjectKey::generate()
                                .map_err(|e| StoreError::with_source("cannot make a subject key", e))?;
                            tables.keys.insert(bytes, key.as_bytes()).map_err(|e| write(e.into()))?;
                            key
                        }
                    };
                    entry.insert(cipher_of(&key))
                }
            };
            let record = encrypt(cipher, nonce, locator, position, json)?;
            tables.events.insert(position, record.as_slice()).map_err(|e| write(e.into()))?;
            tables.index.insert((bytes, position), ()).map_err(|e| write(e.into()))?;
        }
        Ok(position)
    }

    /// The keys of `subjects`: those that exist from one read transaction, the missing
    /// ones made in one durable write transaction.
    fn keys_for_unguarded(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        let read = |e: redb::Error| self.fail("read the consent store", e);
        let locators: Vec<Locator> = subjects.iter().map(|s| self.master.locator(s)).collect();
        let mut found: Vec<Option<SubjectKey>> = Vec::with_capacity(subjects.len());
        {
            let txn = self.begin_read()?;
            let keys = txn.open_table(KEYS).map_err(|e| read(e.into()))?;
            for locator in &locators {
                let key = keys.get(locator.as_bytes()).map_err(|e| read(e.into()))?.map(|v| *v.value());
                found.push(key.map(SubjectKey::from_bytes));
            }
        }
        if found.iter().any(Option::is_none) {
            let write = |e: redb::Error| self.fail("write to the consent store", e);
            let txn = self.begin_write()?;
            {
                let mut keys = txn.open_table(KEYS).map_err(|e| write(e.into()))?;
                for (slot, locator) in found.iter_mut().zip(&locators) {
                    if slot.is_some() {
                        continue;
                    }
                    // Made meanwhile (by an append, or a key asked twice in one call)?
                    let now = keys.get(locator.as_bytes()).map_err(|e| write(e.into()))?.map(|v| *v.value());
                    let key = match now {
                        Some(key) => SubjectKey::from_bytes(key),
                        None => {
                            let key = SubjectKey::generate()
                                .map_err(|e| StoreError::with_source("cannot make a subject key", e))?;
                            keys.insert(locator.as_bytes(), key.as_bytes()).map_err(|e| write(e.into()))?;
                            key
                        }
                    };
                    *slot = Some(key);
                }
            }
            txn.commit().map_err(|e| write(e.into()))?;
        }
        found.into_iter().map(|key| key.ok_or_else(|| StoreError::new("a subject key was not made"))).collect()
    }

    /// Copies a store of format version 1 at `from` into a new store of format
    /// version 2 at `to` (which must not exist yet), under `master`, applying its
    /// erasures: an erased subject's events before its last erase are not copied, and
    /// each erase becomes a tombstone. Every other event is copied in order (positions
    /// are renumbered). The old file is left as it was: it still holds the ids in plain
    /// text, and the operator must delete it.
    ///
    /// # Errors
    ///
    /// When `from` cannot be read or is not a version 1 store, `to` exists or cannot
    /// be written, or an event cannot be read; `to` is then left incomplete (delete
    /// it and run again).
    pub fn migrate(from: impl AsRef<Path>, to: impl AsRef<Path>, master: MasterKey) -> Result<Migration, StoreError> {
        let (from, to) = (from.as_ref(), to.as_ref());
        if to.exists() {
            return Err(StoreError::new(format!("{} exists: migrate writes a new store", to.display())));
        }
        refuse_headerless(from)?;
        guarded(from, "migrate", || {
            let mut builder = Database::builder();
            builder.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
            let old = builder.open_read_only(from).map_err(|error| open_error(from, error))?;
            let fail =
                |e: redb::Error| StoreError::with_source(format!("cannot read consent store {}", from.display()), e);
            let txn = old.begin_read().map_err(|e| fail(e.into()))?;
            let meta = txn.open_table(META).map_err(|e| fail(e.into()))?;
            match meta.get(FORMAT_KEY).map_err(|e| fail(e.into()))?.map(|v| v.value()) {
                Some(FORMAT_V1) => {}
                Some(other) => {
                    return Err(StoreError::new(format!(
                        "{} has format version {other}; migrate reads version 1",
                        from.display()
                    )))
                }
                None => return Err(StoreError::new(format!("{} is not a consent store", from.display()))),
            }
            let events = txn.open_table(V1_EVENTS).map_err(|e| fail(e.into()))?;
            let decode = |position: u64, json: &str| -> Result<ConsentEvent, StoreError> {
                serde_json::from_str(json).map_err(|error| {
                    StoreError::with_source(
                        format!("{}: event at position {position} cannot be read", from.display()),
                        error,
                    )
                })
            };
            // First pass: the position of each erased subject's last erase.
            let mut last_erase: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
            for entry in events.iter().map_err(|e| fail(e.into()))? {
                let (position, json) = entry.map_err(|e| fail(e.into()))?;
                if let ConsentEvent::Erase(erase) = decode(position.value(), json.value())? {
                    last_erase.insert(erase.subject, position.value());
                }
            }
            let store = RedbConsentStore::open_with_master_key(to, master)?;
            let mut migration = Migration::default();
            let mut batch = Vec::with_capacity(MIGRATE_BATCH);
            for entry in events.iter().map_err(|e| fail(e.into()))? {
                let (position, json) = entry.map_err(|e| fail(e.into()))?;
                let position = position.value();
                let event = decode(position, json.value())?;
                migration.read += 1;
                let forgotten = !matches!(event, ConsentEvent::Erase(_))
                    && last_erase.get(event.subject()).is_some_and(|last| position < *last);
                if forgotten {
                    migration.forgotten += 1;
                    continue;
                }
                if matches!(event, ConsentEvent::Erase(_)) {
                    migration.erasures += 1;
                }
                batch.push(event);
                if batch.len() >= MIGRATE_BATCH {
                    store.append(&batch)?;
                    migration.written += batch.len() as u64;
                    batch.clear();
                }
            }
            store.append(&batch)?;
            migration.written += batch.len() as u64;
            migration.subjects_erased = last_erase.len() as u64;
            Ok(migration)
        })
    }
}

/// Events per transaction of a migration.
const MIGRATE_BATCH: usize = 10_000;

/// What [`RedbConsentStore::migrate`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// Events read from the old store.
    pub read: u64,
    /// Records written to the new one (events and tombstones).
    pub written: u64,
    /// Erase events turned into tombstones.
    pub erasures: u64,
    /// Subjects erased (each keeps only tombstones, and events after its last erase).
    pub subjects_erased: u64,
    /// Events of erased subjects not copied.
    pub forgotten: u64,
}

impl ConsentStore for RedbConsentStore {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return self.last_position();
        }
        // The JSON and the locators are computed before the queue, off the commit.
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            encoded.push(match event {
                ConsentEvent::Erase(_) => String::new(),
                other => encode(other)?,
            });
        }
        let locators = events.iter().map(|event| self.master.locator(event.subject())).collect();
        let poisoned = || StoreError::new("consent store poisoned by a panic");
        let mut queue = self.group.queue.lock().map_err(|_| poisoned())?;
        let ticket = queue.next_ticket;
        queue.next_ticket = ticket.wrapping_add(1);
        queue.waiting.push(Job { ticket, events: events.to_vec(), encoded, locators });
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
            read_history(&self.begin_read()?, &self.master, subject, |e| self.fail("read the consent store", e))
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

    fn tombstones(&self) -> Result<Tombstones, StoreError> {
        guarded(&self.path, "read", || {
            read_tombstones(&self.begin_read()?, &self.master, |e| self.fail("read the consent store", e))
        })
    }

    fn erasures_since(&self, after: u64) -> Result<Vec<(u64, Locator, i64)>, StoreError> {
        guarded(&self.path, "read", || {
            read_erasures(&self.begin_read()?, after, |e| self.fail("read the consent store", e))
        })
    }

    fn subject_keys(&self) -> Option<&dyn SubjectKeys> {
        Some(self)
    }
}

impl SubjectKeys for RedbConsentStore {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        guarded(&self.path, "write to", || self.keys_for_unguarded(subjects))
    }

    fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        guarded(&self.path, "read", || {
            read_key(&self.begin_read()?, &self.master.locator(subject), |e| self.fail("read the consent store", e))
        })
    }

    /// Only this process writes the file (one writer), so every erasure is seen here.
    fn destructions(&self) -> Option<u64> {
        Some(self.destroyed.load(std::sync::atomic::Ordering::Acquire))
    }
}

impl fmt::Debug for RedbConsentStore {
    /// Prints the file, never the events: they are personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbConsentStore").field("path", &self.path).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(subject: &str) -> ConsentEvent {
        serde_json::from_str(&format!(
            r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}}"#
        ))
        .unwrap()
    }

    /// A record is bound to its position and subject: moved elsewhere, it does not
    /// decrypt, and the read is an error (never another subject's event).
    #[test]
    fn a_moved_record_does_not_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbConsentStore::open(dir.path().join("s.redb")).unwrap();
        store.append(&[grant("alice-subject"), grant("alice-subject")]).unwrap();
        assert_eq!(store.events_since(0, 10).unwrap().len(), 2);
        let txn = store.db.begin_write().unwrap();
        {
            let mut events = txn.open_table(EVENTS).unwrap();
            let first = events.get(1).unwrap().unwrap().value().to_vec();
            events.insert(2, first.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let error = store.events_since(0, 10).unwrap_err();
        assert!(error.to_string().contains("position 2 does not authenticate"), "{error}");
        assert!(store.history("alice-subject").is_err());
    }

    /// The file names no subject: the id is in no record, index or key.
    #[test]
    fn the_file_holds_no_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = RedbConsentStore::open(&path).unwrap();
        store.append(&[grant("visible-subject-id")]).unwrap();
        store.keys_for(&["another-subject-id"]).unwrap();
        drop(store);
        let bytes = std::fs::read(&path).unwrap();
        for id in [&b"visible-subject-id"[..], b"another-subject-id"] {
            assert!(!bytes.windows(id.len()).any(|w| w == id));
        }
        assert_eq!(key_file_of(&path), dir.path().join("s.redb.key"));
    }
}
