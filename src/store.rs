//! Consent stores: where consent events are kept so that they outlive the process and
//! can prove later what a subject agreed to.
//!
//! The guard decides from its in-memory state; a store is appended to before that
//! state changes, and replayed when a guard starts.

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
/// - an `erase` is kept as an event, and the subject's personal attributes (birth date,
///   age) are removed from earlier events;
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
}

/// Keeps events in memory: for tests, and for services that replay events from
/// elsewhere. Nothing survives the process.
#[derive(Default)]
pub struct MemoryConsentStore {
    events: Mutex<Vec<ConsentEvent>>,
}

impl MemoryConsentStore {
    /// An empty store.
    pub fn new() -> MemoryConsentStore {
        MemoryConsentStore::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Vec<ConsentEvent>>, StoreError> {
        self.events.lock().map_err(|_| StoreError::new("memory store poisoned by a panic"))
    }
}

impl ConsentStore for MemoryConsentStore {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        let mut stored = self.lock()?;
        for event in events {
            if let ConsentEvent::Erase(erase) = event {
                for earlier in stored.iter_mut() {
                    if let ConsentEvent::Subject(attributes) = earlier {
                        if attributes.subject == erase.subject {
                            attributes.birth_date = None;
                            attributes.age = None;
                        }
                    }
                }
            }
            stored.push(event.clone());
        }
        Ok(stored.len() as u64)
    }

    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        Ok(ConsentHistory::new(subject, self.lock()?.iter().filter(|e| e.subject() == subject).cloned()))
    }

    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        let stored = self.lock()?;
        let skip = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(stored.iter().enumerate().skip(skip).take(limit).map(|(i, e)| (i as u64 + 1, e.clone())).collect())
    }

    fn shared(&self) -> bool {
        false
    }
}

impl fmt::Debug for MemoryConsentStore {
    /// Prints a count, never the events: they are personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.events.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("MemoryConsentStore").field("events", &count).finish()
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
}

#[cfg(feature = "redb")]
mod embedded;
#[cfg(feature = "redb")]
pub use embedded::RedbConsentStore;
#[cfg(feature = "redb")]
mod embedded_reader;
#[cfg(feature = "redb")]
pub use embedded_reader::ReadOnlyRedbStore;
