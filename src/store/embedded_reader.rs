//! Reading an embedded store that another process has open: the privacy team's CLI
//! (`history`, `check --store`) beside a running service.
//!
//! The writer ([`RedbConsentStore`](super::RedbConsentStore)) opens its file in redb's
//! single-writer mode, which lets any number of read-only handles share the file and
//! follow its commits; this store is such a handle. It never creates a file, never
//! writes, and takes no lock that would stop the writer.

use std::fmt;
use std::path::{Path, PathBuf};

use redb::{Database, ReadOnlyDatabase, ReadableDatabase};

use super::embedded::{open_error, read_history, read_since, FORMAT_KEY, FORMAT_VERSION, META};
use super::ConsentStore;
use crate::consent::{ConsentEvent, ConsentHistory};
use crate::error::StoreError;

/// An embedded consent store opened read-only, beside the process that writes it.
///
/// ```no_run
/// use consent_guard::store::{ConsentStore, ReadOnlyRedbStore};
///
/// let store = ReadOnlyRedbStore::open("consent.redb")?; // while the service runs
/// let history = store.history("u1")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReadOnlyRedbStore {
    db: ReadOnlyDatabase,
    path: PathBuf,
}

impl ReadOnlyRedbStore {
    /// Opens the store at `path` for reading. A missing file is an error: nothing is
    /// created, so a mistyped path cannot pass for an empty store.
    ///
    /// # Errors
    ///
    /// When there is no file at `path`, it cannot be read, it is not a consent store,
    /// or a process that does not share the file (consent-guard 0.1) has it open.
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnlyRedbStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => {}
            Ok(_) => return Err(StoreError::new(format!("{} is not a consent store file", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::new(format!(
                    "no consent store at {}: check the path (a store is never created by reading it)",
                    path.display()
                )))
            }
            Err(error) => {
                return Err(StoreError::with_source(format!("cannot open consent store {}", path.display()), error))
            }
        }
        let mut builder = Database::builder();
        builder.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
        let db = builder.open_read_only(&path).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::with_source(
                format!(
                    "consent store {} is open by a process that does not share it (consent-guard 0.1): \
                     stop it, or ask the running service",
                    path.display()
                ),
                error,
            ),
            other => open_error(&path, other),
        })?;
        let store = ReadOnlyRedbStore { db, path };
        store.check_format()?;
        Ok(store)
    }

    /// The file the store is read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_format(&self) -> Result<(), StoreError> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(|e| self.fail("open the consent store", e))?;
        let found = meta.get(FORMAT_KEY).map_err(|e| self.fail("open the consent store", e))?.map(|v| v.value());
        match found {
            Some(FORMAT_VERSION) => Ok(()),
            Some(other) => Err(StoreError::new(format!(
                "consent store {} has format version {other}; this build reads version {FORMAT_VERSION}",
                self.path.display()
            ))),
            None => Err(StoreError::new(format!("{} is not a consent store (no format version)", self.path.display()))),
        }
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(|e| self.fail("read the consent store", e))
    }

    fn fail(&self, action: &str, error: impl Into<redb::Error>) -> StoreError {
        let error: redb::Error = error.into();
        match error {
            redb::Error::Corrupted(_) => StoreError::with_source(
                format!("cannot {action}: consent store {} is corrupted", self.path.display()),
                error,
            ),
            redb::Error::TableDoesNotExist(_) => {
                StoreError::with_source(format!("{} is not a consent store", self.path.display()), error)
            }
            _ => StoreError::with_source(format!("cannot {action} {}", self.path.display()), error),
        }
    }
}

impl ConsentStore for ReadOnlyRedbStore {
    fn append(&self, _: &[ConsentEvent]) -> Result<u64, StoreError> {
        Err(StoreError::new(format!("consent store {} is open read-only", self.path.display())))
    }

    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        read_history(&self.begin_read()?, subject, |e| self.fail("read the consent store", e))
    }

    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        read_since(&self.begin_read()?, after, limit, |e| self.fail("read the consent store", e))
    }

    /// Another process writes the file.
    fn shared(&self) -> bool {
        true
    }
}

impl fmt::Debug for ReadOnlyRedbStore {
    /// Prints the file, never the events: they are personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyRedbStore").field("path", &self.path).finish_non_exhaustive()
    }
}
