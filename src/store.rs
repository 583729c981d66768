//! Consent stores: where consent events are kept so that they outlive the process and
//! can prove later what a subject agreed to.
//!
//! The guard decides from its in-memory state; a store is appended to before that
//! state changes, and replayed when a guard starts.
//!
//! A store that keeps subject keys (the memory store and the embedded file; see
//! [`crate::keys`]) forgets an erased subject: the `erase` destroys the subject's key
//! and deletes its events, and only a tombstone remains (the keyed hash of the id and
//! the erase time), which a guard reads so that the id is still answered
//! `subject_erased`. See `docs/erasure.md`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use crate::consent::{ConsentEvent, ConsentHistory};
use crate::error::StoreError;

/// The future an async store method returns: boxed, so that the trait stays usable as
/// `dyn ConsentStore`, and `Send`, so that it can be awaited in a spawned task.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Persistence for consent events.
///
/// Every appended event gets a *position*: 1 for the first event of the store, then
/// strictly increasing in append order. A guard replays positions from 1 when it starts
/// and follows new positions (its own and those of other processes) with
/// [`ConsentStore::events_since`].
///
/// # Obligations
///
/// Every implementation keeps these, and the conformance suite
/// (`crates/consent-guard-postgres/tests/store_conformance.rs`) checks them:
/// - `append` returns `Ok` only once every event of the batch is durable (a withdrawal
///   above all), and a batch is appended whole or not at all;
/// - the events of a subject are kept in the order appended and never rewritten;
///   `events_since(p)` never returns a position at or below one it returned before
///   for the same `p` (no event becomes visible behind the reader's back);
/// - an `erase` leaves no personal attribute (birth date, age) of the subject in any
///   earlier event; a store that keeps subject keys ([`ConsentStore::subject_keys`])
///   goes further: the erase destroys the subject's key, deletes every earlier event
///   of the subject, and keeps a tombstone instead of the erase event (its position
///   is taken, and skipped by `events_since`; [`ConsentStore::erasures_since`] and
///   [`ConsentStore::tombstones`] return it), and `history` of the id answers the
///   erase alone, rebuilt from the tombstone, then any event appended after it;
/// - a store that cannot answer returns an error, never a partial or stale history.
pub trait ConsentStore: fmt::Debug + Send + Sync {
    /// Appends events atomically; returns the position of the last one (the current
    /// last position when `events` is empty).
    ///
    /// # Errors
    ///
    /// When the events could not be made durable; none of them is then stored.
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError>;

    /// Every event of one subject, in the order appended.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError>;

    /// Up to `limit` events after position `after`, in position order, each with its
    /// position. `events_since(0, usize::MAX)` is the whole store.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError>;

    /// Waits until the store may have events after `after` (appended by any process),
    /// or until `timeout` passes. Returning early without a change is allowed; the
    /// default just sleeps, so callers poll.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached.
    fn wait_for_change(&self, after: u64, timeout: std::time::Duration) -> Result<(), StoreError> {
        let _ = after;
        std::thread::sleep(timeout);
        Ok(())
    }

    /// [`ConsentStore::append`] for async code. The default runs the blocking method
    /// when called, which suits stores that answer from memory or a local file; a store
    /// that waits on the network (PostgreSQL) overrides it to keep the caller's runtime
    /// free.
    fn append_async<'a>(&'a self, events: &'a [ConsentEvent]) -> StoreFuture<'a, u64> {
        Box::pin(std::future::ready(self.append(events)))
    }

    /// [`ConsentStore::history`] for async code; the default as for
    /// [`ConsentStore::append_async`].
    fn history_async<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, ConsentHistory> {
        Box::pin(std::future::ready(self.history(subject)))
    }

    /// [`ConsentStore::events_since`] for async code; the default as for
    /// [`ConsentStore::append_async`].
    fn events_since_async(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<(u64, ConsentEvent)>> {
        Box::pin(std::future::ready(self.events_since(after, limit)))
    }

    /// Whether other processes may append to this store behind the guard's back. A
    /// guard over a shared store knows its state only as of its last sync and, past
    /// its `max_staleness` (see [`GuardBuilder::max_staleness`]), fails closed. The
    /// default is `true`, the safe answer; a store only its own process writes
    /// (memory, the embedded file) says `false`.
    ///
    /// [`GuardBuilder::max_staleness`]: crate::GuardBuilder::max_staleness
    fn shared(&self) -> bool {
        true
    }

    /// The tombstones of the subjects erased in this store, with the master key that
    /// recognises their ids (see [`crate::keys`]). A guard reads them when it is built,
    /// so that an id whose history the store no longer keeps is still answered
    /// `subject_erased`. The default, for a store that keeps erased subjects' events,
    /// is none.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    #[cfg(feature = "json")]
    fn tombstones(&self) -> Result<crate::keys::Tombstones, StoreError> {
        Ok(crate::keys::Tombstones::new())
    }

    /// The tombstones written after position `after` (by any process), each with its
    /// position, its locator and when the subject was erased (ms since the epoch). A
    /// guard following a shared store reads them beside [`ConsentStore::events_since`]
    /// to learn of erasures made elsewhere. The default is none.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    #[cfg(feature = "json")]
    fn erasures_since(&self, after: u64) -> Result<Vec<(u64, crate::keys::Locator, i64)>, StoreError> {
        let _ = after;
        Ok(Vec::new())
    }

    /// The subject keys this store keeps, if it keeps them: what the audit log
    /// pseudonymises subjects with (see [`crate::keys`] and [`StoreKeys`]). The default
    /// is none.
    #[cfg(feature = "json")]
    fn subject_keys(&self) -> Option<&dyn crate::keys::SubjectKeys> {
        None
    }

    /// [`ConsentStore::tombstones`] for async code; the default as for
    /// [`ConsentStore::append_async`].
    #[cfg(feature = "json")]
    fn tombstones_async(&self) -> StoreFuture<'_, crate::keys::Tombstones> {
        Box::pin(std::future::ready(self.tombstones()))
    }

    /// [`ConsentStore::erasures_since`] for async code; the default as for
    /// [`ConsentStore::append_async`].
    #[cfg(feature = "json")]
    fn erasures_since_async(&self, after: u64) -> StoreFuture<'_, Vec<(u64, crate::keys::Locator, i64)>> {
        Box::pin(std::future::ready(self.erasures_since(after)))
    }
}

/// The subject keys of a store, shareable with an audit log's writer thread. A store
/// that keeps no keys answers every call with an error, so an audit log over it fails
/// closed rather than writing plain ids.
#[cfg(feature = "json")]
#[derive(Clone, Debug)]
pub struct StoreKeys(pub std::sync::Arc<dyn ConsentStore>);

#[cfg(feature = "json")]
impl StoreKeys {
    fn keys(&self) -> Result<&dyn crate::keys::SubjectKeys, StoreError> {
        self.0.subject_keys().ok_or_else(|| StoreError::new("this consent store keeps no subject keys"))
    }
}

#[cfg(feature = "json")]
impl crate::keys::SubjectKeys for StoreKeys {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<crate::keys::SubjectKey>, StoreError> {
        self.keys()?.keys_for(subjects)
    }
    fn key_of(&self, subject: &str) -> Result<Option<crate::keys::SubjectKey>, StoreError> {
        self.keys()?.key_of(subject)
    }
    fn destructions(&self) -> Option<u64> {
        self.0.subject_keys().and_then(crate::keys::SubjectKeys::destructions)
    }
}

/// Keeps events in memory: for tests, and for services that replay events from
/// elsewhere. Nothing survives the process.
///
/// With the `json` feature it keeps subject keys too ([`crate::keys::SubjectKeys`],
/// through [`ConsentStore::subject_keys`]) and forgets an erased subject as the
/// embedded store does: the erase destroys the key, deletes the subject's earlier
/// events, and keeps a tombstone (the id's [`Locator`](crate::keys::Locator) under the
/// store's master key, made at [`MemoryConsentStore::new`] unless given with
/// [`MemoryConsentStore::with_master_key`]) at the erase's position.
pub struct MemoryConsentStore {
    inner: Mutex<Memory>,
    #[cfg(feature = "json")]
    master: crate::keys::MasterKey,
    /// Keys destroyed by erasures (see `SubjectKeys::destructions`).
    #[cfg(feature = "json")]
    destroyed: std::sync::atomic::AtomicU64,
}

/// What a position of the memory store holds.
enum Entry {
    Event(ConsentEvent),
    /// An event of a subject erased since: deleted, its position kept (positions stay
    /// dense and increasing).
    #[cfg_attr(not(feature = "json"), allow(dead_code, reason = "only a store with keys deletes"))]
    Deleted,
    /// An erasure: the subject's locator and the erase time (ms), never the id.
    #[cfg(feature = "json")]
    Tombstone(crate::keys::Locator, i64),
}

#[derive(Default)]
struct Memory {
    entries: Vec<Entry>,
    /// Subject keys by id (this store lives in the process: the ids are in its events
    /// anyway until erased).
    #[cfg(feature = "json")]
    keys: std::collections::HashMap<String, crate::keys::SubjectKey>,
    /// Erase time by locator, the earliest when erased twice.
    #[cfg(feature = "json")]
    tombstones: std::collections::HashMap<crate::keys::Locator, i64>,
}

impl Default for MemoryConsentStore {
    fn default() -> MemoryConsentStore {
        MemoryConsentStore::new()
    }
}

impl MemoryConsentStore {
    /// An empty store. With the `json` feature, its master key is random: made from
    /// the operating system's randomness, or, if it gives none, fixed zeros (the
    /// locators then still tell ids apart; they are only not secret).
    pub fn new() -> MemoryConsentStore {
        MemoryConsentStore {
            inner: Mutex::new(Memory::default()),
            #[cfg(feature = "json")]
            master: crate::keys::MasterKey::generate().unwrap_or_else(|_| crate::keys::MasterKey::from_bytes([0; 32])),
            #[cfg(feature = "json")]
            destroyed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// An empty store whose tombstones are computed under `master`.
    #[cfg(feature = "json")]
    pub fn with_master_key(master: crate::keys::MasterKey) -> MemoryConsentStore {
        MemoryConsentStore {
            inner: Mutex::new(Memory::default()),
            master,
            destroyed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Memory>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::new("memory store poisoned by a panic"))
    }

    /// Applies an erase: with keys, forgets the subject and returns the tombstone to
    /// store at the erase's position; without, scrubs the subject's attributes and
    /// keeps the erase event.
    #[cfg(feature = "json")]
    fn erase(&self, memory: &mut Memory, erase: &crate::consent::EraseEvent) -> Entry {
        let locator = self.master.locator(&erase.subject);
        memory.keys.remove(&erase.subject);
        // Under the store's lock, as `keys_for` reads: the count moves with the key.
        self.destroyed.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        for entry in &mut memory.entries {
            if matches!(entry, Entry::Event(event) if event.subject() == erase.subject) {
                *entry = Entry::Deleted;
            }
        }
        let at = erase.at.timestamp_millis();
        let kept = memory.tombstones.entry(locator).or_insert(at);
        *kept = (*kept).min(at);
        Entry::Tombstone(locator, at)
    }

    #[cfg(not(feature = "json"))]
    fn erase(&self, memory: &mut Memory, erase: &crate::consent::EraseEvent) -> Entry {
        for entry in &mut memory.entries {
            if let Entry::Event(ConsentEvent::Subject(attributes)) = entry {
                if attributes.subject == erase.subject {
                    attributes.birth_date = None;
                    attributes.age = None;
                }
            }
        }
        Entry::Event(ConsentEvent::Erase(erase.clone()))
    }

    /// When `subject` was erased, if this store forgot it.
    #[cfg(feature = "json")]
    fn erased_at(&self, memory: &Memory, subject: &str) -> Option<i64> {
        if memory.tombstones.is_empty() {
            return None;
        }
        memory.tombstones.get(&self.master.locator(subject)).copied()
    }

    #[cfg(not(feature = "json"))]
    fn erased_at(&self, _: &Memory, _: &str) -> Option<i64> {
        None
    }
}

impl ConsentStore for MemoryConsentStore {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        // Every key the batch may need, drawn before anything changes, so that a
        // failure leaves the store as it was (a batch is appended whole or not at all).
        #[cfg(feature = "json")]
        let mut fresh = fresh_keys(events.len())?.into_iter();
        let mut memory = self.lock()?;
        for event in events {
            let entry = match event {
                ConsentEvent::Erase(erase) => self.erase(&mut memory, erase),
                other => {
                    // A subject with events has a key, as in the embedded store.
                    #[cfg(feature = "json")]
                    if !memory.keys.contains_key(other.subject()) {
                        let key = fresh.next().ok_or_else(|| StoreError::new("no subject key drawn"))?;
                        memory.keys.insert(other.subject().to_owned(), key);
                    }
                    Entry::Event(other.clone())
                }
            };
            memory.entries.push(entry);
        }
        Ok(memory.entries.len() as u64)
    }

    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        let memory = self.lock()?;
        let kept = memory.entries.iter().filter_map(|entry| match entry {
            Entry::Event(event) if event.subject() == subject => Some(event.clone()),
            _ => None,
        });
        // The erase event was not kept (it names the id): rebuilt from the tombstone,
        // with the id the caller gave. Events after it were kept as usual.
        let erase = self.erased_at(&memory, subject).map(|at| {
            let at = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default();
            ConsentEvent::Erase(crate::consent::EraseEvent::new(subject, at))
        });
        Ok(ConsentHistory::new(subject, erase.into_iter().chain(kept)))
    }

    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        let memory = self.lock()?;
        let skip = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(memory
            .entries
            .iter()
            .enumerate()
            .skip(skip)
            .filter_map(|(i, entry)| match entry {
                Entry::Event(event) => Some((i as u64 + 1, event.clone())),
                _ => None,
            })
            .take(limit)
            .collect())
    }

    fn shared(&self) -> bool {
        false
    }

    #[cfg(feature = "json")]
    fn tombstones(&self) -> Result<crate::keys::Tombstones, StoreError> {
        let memory = self.lock()?;
        Ok(crate::keys::Tombstones::from_locators(
            self.master.clone(),
            memory.tombstones.iter().map(|(locator, at)| (*locator, *at)),
        ))
    }

    #[cfg(feature = "json")]
    fn erasures_since(&self, after: u64) -> Result<Vec<(u64, crate::keys::Locator, i64)>, StoreError> {
        let memory = self.lock()?;
        let skip = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(memory
            .entries
            .iter()
            .enumerate()
            .skip(skip)
            .filter_map(|(i, entry)| match entry {
                Entry::Tombstone(locator, at) => Some((i as u64 + 1, *locator, *at)),
                _ => None,
            })
            .collect())
    }

    #[cfg(feature = "json")]
    fn subject_keys(&self) -> Option<&dyn crate::keys::SubjectKeys> {
        Some(self)
    }
}

/// `count` new random subject keys, from one request to the operating system.
#[cfg(feature = "json")]
fn fresh_keys(count: usize) -> Result<Vec<crate::keys::SubjectKey>, StoreError> {
    let mut bytes = vec![0u8; count.saturating_mul(32)];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::new(format!("cannot make a subject key: {e}")))?;
    Ok(bytes
        .chunks_exact(32)
        .map(|chunk| {
            let mut key = [0u8; 32];
            key.copy_from_slice(chunk);
            crate::keys::SubjectKey::from_bytes(key)
        })
        .collect())
}

#[cfg(feature = "json")]
impl crate::keys::SubjectKeys for MemoryConsentStore {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<crate::keys::SubjectKey>, StoreError> {
        let mut memory = self.lock()?;
        let mut found = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let key = match memory.keys.get(*subject) {
                Some(key) => key.clone(),
                None => {
                    let key = crate::keys::SubjectKey::generate()
                        .map_err(|e| StoreError::with_source("cannot make a subject key", e))?;
                    memory.keys.insert((*subject).to_owned(), key.clone());
                    key
                }
            };
            found.push(key);
        }
        Ok(found)
    }

    fn key_of(&self, subject: &str) -> Result<Option<crate::keys::SubjectKey>, StoreError> {
        Ok(self.lock()?.keys.get(subject).cloned())
    }

    fn destructions(&self) -> Option<u64> {
        Some(self.destroyed.load(std::sync::atomic::Ordering::Acquire))
    }
}

impl fmt::Debug for MemoryConsentStore {
    /// Prints a count, never the events: they are personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.inner.lock().map(|m| m.entries.len()).unwrap_or(0);
        f.debug_struct("MemoryConsentStore").field("positions", &count).finish_non_exhaustive()
    }
}

impl<S: ConsentStore + ?Sized> ConsentStore for Box<S> {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        (**self).append(events)
    }
    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        (**self).history(subject)
    }
    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        (**self).events_since(after, limit)
    }
    fn wait_for_change(&self, after: u64, timeout: std::time::Duration) -> Result<(), StoreError> {
        (**self).wait_for_change(after, timeout)
    }
    fn append_async<'a>(&'a self, events: &'a [ConsentEvent]) -> StoreFuture<'a, u64> {
        (**self).append_async(events)
    }
    fn history_async<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, ConsentHistory> {
        (**self).history_async(subject)
    }
    fn events_since_async(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<(u64, ConsentEvent)>> {
        (**self).events_since_async(after, limit)
    }
    fn shared(&self) -> bool {
        (**self).shared()
    }
    #[cfg(feature = "json")]
    fn tombstones(&self) -> Result<crate::keys::Tombstones, StoreError> {
        (**self).tombstones()
    }
    #[cfg(feature = "json")]
    fn erasures_since(&self, after: u64) -> Result<Vec<(u64, crate::keys::Locator, i64)>, StoreError> {
        (**self).erasures_since(after)
    }
    #[cfg(feature = "json")]
    fn subject_keys(&self) -> Option<&dyn crate::keys::SubjectKeys> {
        (**self).subject_keys()
    }
    #[cfg(feature = "json")]
    fn tombstones_async(&self) -> StoreFuture<'_, crate::keys::Tombstones> {
        (**self).tombstones_async()
    }
    #[cfg(feature = "json")]
    fn erasures_since_async(&self, after: u64) -> StoreFuture<'_, Vec<(u64, crate::keys::Locator, i64)>> {
        (**self).erasures_since_async(after)
    }
}

impl<S: ConsentStore + ?Sized> ConsentStore for std::sync::Arc<S> {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        (**self).append(events)
    }
    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        (**self).history(subject)
    }
    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        (**self).events_since(after, limit)
    }
    fn wait_for_change(&self, after: u64, timeout: std::time::Duration) -> Result<(), StoreError> {
        (**self).wait_for_change(after, timeout)
    }
    fn append_async<'a>(&'a self, events: &'a [ConsentEvent]) -> StoreFuture<'a, u64> {
        (**self).append_async(events)
    }
    fn history_async<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, ConsentHistory> {
        (**self).history_async(subject)
    }
    fn events_since_async(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<(u64, ConsentEvent)>> {
        (**self).events_since_async(after, limit)
    }
    fn shared(&self) -> bool {
        (**self).shared()
    }
    #[cfg(feature = "json")]
    fn tombstones(&self) -> Result<crate::keys::Tombstones, StoreError> {
        (**self).tombstones()
    }
    #[cfg(feature = "json")]
    fn erasures_since(&self, after: u64) -> Result<Vec<(u64, crate::keys::Locator, i64)>, StoreError> {
        (**self).erasures_since(after)
    }
    #[cfg(feature = "json")]
    fn subject_keys(&self) -> Option<&dyn crate::keys::SubjectKeys> {
        (**self).subject_keys()
    }
    #[cfg(feature = "json")]
    fn tombstones_async(&self) -> StoreFuture<'_, crate::keys::Tombstones> {
        (**self).tombstones_async()
    }
    #[cfg(feature = "json")]
    fn erasures_since_async(&self, after: u64) -> StoreFuture<'_, Vec<(u64, crate::keys::Locator, i64)>> {
        (**self).erasures_since_async(after)
    }
}

#[cfg(feature = "redb")]
mod embedded;
#[cfg(feature = "redb")]
pub use embedded::{Migration, RedbConsentStore};
#[cfg(feature = "redb")]
mod embedded_reader;
#[cfg(feature = "redb")]
pub use embedded_reader::ReadOnlyRedbStore;
