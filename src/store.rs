//! Consent stores: where consent events are kept so that they outlive the process and
//! can prove later what a subject agreed to.
//!
//! The guard decides from its in-memory state; a store is appended to before that
//! state changes, and replayed when a guard starts.

use std::fmt;
use std::sync::Mutex;

use crate::consent::{ConsentEvent, ConsentHistory};
use crate::error::StoreError;

/// Persistence for consent events.
///
/// # Obligations
///
/// Every implementation keeps these, and the conformance tests check them:
/// - `append` returns `Ok` only once every event of the batch is durable (a withdrawal
///   above all), and a batch is appended whole or not at all;
/// - the events of a subject are kept in the order appended and never rewritten;
/// - an `erase` is kept as an event, and the subject's personal attributes (birth date,
///   age) are removed from earlier events;
/// - a store that cannot answer returns an error, never a partial or stale history.
pub trait ConsentStore: fmt::Debug + Send + Sync {
    /// Appends events atomically.
    ///
    /// # Errors
    ///
    /// When the events could not be made durable; none of them is then stored.
    fn append(&self, events: &[ConsentEvent]) -> Result<(), StoreError>;

    /// Every event of one subject, in the order appended.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError>;

    /// Every event of every subject, in the order appended (to warm a guard).
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    fn events(&self) -> Result<Vec<ConsentEvent>, StoreError>;
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
    fn append(&self, events: &[ConsentEvent]) -> Result<(), StoreError> {
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
        Ok(())
    }

    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        Ok(ConsentHistory::new(subject, self.lock()?.iter().filter(|e| e.subject() == subject).cloned()))
    }

    fn events(&self) -> Result<Vec<ConsentEvent>, StoreError> {
        Ok(self.lock()?.clone())
    }
}

impl fmt::Debug for MemoryConsentStore {
    /// Prints a count, never the events: they are personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.events.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("MemoryConsentStore").field("events", &count).finish()
    }
}

impl<S: ConsentStore + ?Sized> ConsentStore for std::sync::Arc<S> {
    fn append(&self, events: &[ConsentEvent]) -> Result<(), StoreError> {
        (**self).append(events)
    }
    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        (**self).history(subject)
    }
    fn events(&self) -> Result<Vec<ConsentEvent>, StoreError> {
        (**self).events()
    }
}
