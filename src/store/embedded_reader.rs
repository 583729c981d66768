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

use super::embedded::{
    guarded, key_file_of, master_check, open_error, read_erasures, read_history, read_key, read_since, read_tombstones,
    refuse_headerless, v1_refused, wrong_master, FORMAT_KEY, FORMAT_V1, FORMAT_VERSION, MASTER_CHECK_KEY, META,
};
use super::ConsentStore;
use crate::consent::{ConsentEvent, ConsentHistory};
use crate::error::StoreError;
use crate::keys::{Locator, MasterKey, SubjectKey, SubjectKeys, Tombstones};

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
    master: MasterKey,
}

impl ReadOnlyRedbStore {
    /// Opens the store at `path` for reading, with the master key in `<path>.key` (as
    /// [`RedbConsentStore::open`](super::RedbConsentStore::open) keeps it; a missing key
    /// file is an error, never made here).
    ///
    /// # Errors
    ///
    /// As [`ReadOnlyRedbStore::open_with_master_key`], and when the key file cannot
    /// be read.
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnlyRedbStore, StoreError> {
        let path = path.as_ref();
        let key_path = key_file_of(path);
        // A missing or unreadable key is said after the file's own checks (missing,
        // damaged, of format version 1), which matter more.
        let master = MasterKey::load(&key_path).map_err(|error| {
            StoreError::with_source(
                format!(
                    "cannot read the master key of consent store {} from {} (give it with --master-key-file \
                     or CONSENT_GUARD_MASTER_KEY)",
                    path.display(),
                    key_path.display()
                ),
                error,
            )
        });
        ReadOnlyRedbStore::open_inner(path, master)
    }

    /// Opens the store at `path` for reading, with its master key. A missing file is an error: nothing is
    /// created, so a mistyped path cannot pass for an empty store. The checksum of
    /// every page is verified first, as the writer's open does, so opening takes time
    /// in proportion to the file's size and a damaged file is refused, never read in
    /// part.
    ///
    /// # Errors
    ///
    /// When there is no file at `path`, it cannot be read, it is damaged, empty or
    /// zeroed, it is not a consent store, it is of format version 1 (see
    /// `consent-guard store migrate`), `master` is not its master key, or a process
    /// that does not share the file (consent-guard 0.1) has it open.
    pub fn open_with_master_key(path: impl AsRef<Path>, master: MasterKey) -> Result<ReadOnlyRedbStore, StoreError> {
        ReadOnlyRedbStore::open_inner(path.as_ref(), Ok(master))
    }

    fn open_inner(path: &Path, master: Result<MasterKey, StoreError>) -> Result<ReadOnlyRedbStore, StoreError> {
        let path = path.to_path_buf();
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
        refuse_headerless(&path)?;
        guarded(&path, "open", || ReadOnlyRedbStore::open_verified(path.clone(), master))
    }

    fn open_verified(path: PathBuf, master: Result<MasterKey, StoreError>) -> Result<ReadOnlyRedbStore, StoreError> {
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
        // The key is needed only once the file is known to be a store of this format.
        let mut store = ReadOnlyRedbStore { db, path, master: MasterKey::from_bytes([0; 32]) };
        // The read transaction pins the commit it sees, so the writer reuses none of its
        // pages while the check below walks them (the check reads that commit or a later
        // one, whose pages the pin keeps too).
        let pinned = store.begin_read()?;
        store.verify()?;
        drop(pinned);
        store.check_version()?;
        store.master = master?;
        store.check_master()?;
        Ok(store)
    }

    /// Verifies every checksum of the file as the writer's open does. redb's read-only
    /// open checks none, and its integrity check commits a repair, so the check runs on
    /// a second handle whose writes stay in memory ([`Overlay`]): the file is never
    /// written, and no lock is taken that would stop the writer.
    fn verify(&self) -> Result<(), StoreError> {
        let file = std::fs::File::open(&self.path)
            .map_err(|e| StoreError::with_source(format!("cannot open consent store {}", self.path.display()), e))?;
        let mut builder = Database::builder();
        builder.set_check_integrity_on_open(true);
        // The repair's commit copies only the pages it writes; the cache is what a check
        // of one file needs, not redb's default of 1 GiB.
        builder.set_cache_size(16 << 20);
        let checked = builder.create_with_backend(Overlay::new(file)).map_err(|error| open_error(&self.path, error))?;
        drop(checked);
        Ok(())
    }

    /// The file the store is read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_version(&self) -> Result<(), StoreError> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(|e| self.fail("open the consent store", e))?;
        let found = meta.get(FORMAT_KEY).map_err(|e| self.fail("open the consent store", e))?.map(|v| v.value());
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
                return Err(StoreError::new(format!(
                    "{} is not a consent store (no format version)",
                    self.path.display()
                )))
            }
        }
        Ok(())
    }

    fn check_master(&self) -> Result<(), StoreError> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(|e| self.fail("open the consent store", e))?;
        let check = meta.get(MASTER_CHECK_KEY).map_err(|e| self.fail("open the consent store", e))?.map(|v| v.value());
        if check != Some(master_check(&self.master)) {
            return Err(wrong_master(&self.path));
        }
        Ok(())
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
        guarded(&self.path, "read", || {
            read_history(&self.begin_read()?, &self.master, subject, |e| self.fail("read the consent store", e))
        })
    }

    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        guarded(&self.path, "read", || {
            read_since(&self.begin_read()?, after, limit, |e| self.fail("read the consent store", e))
        })
    }

    /// Another process writes the file.
    fn shared(&self) -> bool {
        true
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

/// A read-only store finds keys and makes none: `keys_for` of a subject without a key
/// is an error (an audit writer over it fails closed).
impl SubjectKeys for ReadOnlyRedbStore {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        subjects
            .iter()
            .map(|subject| {
                self.key_of(subject)?.ok_or_else(|| {
                    StoreError::new(format!("consent store {} is open read-only: no key is made", self.path.display()))
                })
            })
            .collect()
    }

    fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        guarded(&self.path, "read", || {
            read_key(&self.begin_read()?, &self.master.locator(subject), |e| self.fail("read the consent store", e))
        })
    }
}

impl fmt::Debug for ReadOnlyRedbStore {
    /// Prints the file, never the events: they are personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyRedbStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A copy-on-write view of a store file for redb's integrity check: reads come from the
/// file unless a block was written, writes go to memory, and the file stays as it was.
/// It takes no lock (redb then proceeds without), so a running writer is not stopped.
struct Overlay {
    file: std::fs::File,
    /// The file's length when the check began: bytes a running writer adds later are no
    /// part of the view.
    file_len: u64,
    state: std::sync::Mutex<OverlayState>,
}

struct OverlayState {
    len: u64,
    /// Written blocks of `BLOCK` bytes, by block number.
    blocks: std::collections::HashMap<u64, Vec<u8>>,
}

const BLOCK: u64 = 4096;

impl Overlay {
    fn new(file: std::fs::File) -> Overlay {
        let len = file.metadata().map_or(0, |m| m.len());
        let state = OverlayState { len, blocks: std::collections::HashMap::new() };
        Overlay { file, file_len: len, state: std::sync::Mutex::new(state) }
    }

    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, OverlayState>> {
        self.state.lock().map_err(|_| std::io::Error::other("store check poisoned by a panic"))
    }

    /// The bytes of block `number` as the file holds them (zeros past its end). Called
    /// with the state locked, so seeks and reads of the shared handle do not interleave.
    fn base_block(&self, number: u64) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek};
        let mut block = vec![0u8; BLOCK as usize];
        let start = number.saturating_mul(BLOCK);
        let wanted = usize::try_from(self.file_len.saturating_sub(start).min(BLOCK)).unwrap_or(0);
        let mut file = &self.file;
        file.seek(std::io::SeekFrom::Start(start))?;
        let mut done = 0usize;
        while let Some(rest) = block.get_mut(done..wanted).filter(|rest| !rest.is_empty()) {
            match file.read(rest) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(block)
    }
}

fn out_of_range() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end of the consent store")
}

impl fmt::Debug for Overlay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overlay").finish_non_exhaustive()
    }
}

impl redb::StorageBackend for Overlay {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.lock()?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let state = self.lock()?;
        let end = offset.checked_add(out.len() as u64).ok_or_else(out_of_range)?;
        if end > state.len {
            return Err(out_of_range());
        }
        let mut at = offset;
        let mut filled = 0usize;
        while at < end {
            let number = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let take = ((BLOCK as usize) - within).min((end - at) as usize);
            let target = out.get_mut(filled..filled + take).ok_or_else(out_of_range)?;
            match state.blocks.get(&number) {
                Some(block) => target.copy_from_slice(block.get(within..within + take).ok_or_else(out_of_range)?),
                None => {
                    let block = self.base_block(number)?;
                    target.copy_from_slice(block.get(within..within + take).ok_or_else(out_of_range)?);
                }
            }
            at += take as u64;
            filled += take;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut state = self.lock()?;
        if len < state.len {
            // Bytes past a shrink read as zeros if the file grows again.
            let first_gone = len.div_ceil(BLOCK);
            state.blocks.retain(|number, _| *number < first_gone);
            if !len.is_multiple_of(BLOCK) {
                let number = len / BLOCK;
                let mut block = match state.blocks.remove(&number) {
                    Some(block) => block,
                    None => self.base_block(number)?,
                };
                if let Some(tail) = block.get_mut((len % BLOCK) as usize..) {
                    tail.fill(0);
                }
                state.blocks.insert(number, block);
            }
            // Blocks of the file past the new end must read as zeros too.
            let old_blocks = state.len.div_ceil(BLOCK);
            for number in first_gone..old_blocks {
                state.blocks.insert(number, vec![0u8; BLOCK as usize]);
            }
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut state = self.lock()?;
        let end = offset.checked_add(data.len() as u64).ok_or_else(out_of_range)?;
        let mut at = offset;
        let mut taken = 0usize;
        while at < end {
            let number = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let take = ((BLOCK as usize) - within).min((end - at) as usize);
            if !state.blocks.contains_key(&number) {
                let base = if number.saturating_mul(BLOCK) < state.len {
                    self.base_block(number)?
                } else {
                    vec![0u8; BLOCK as usize]
                };
                state.blocks.insert(number, base);
            }
            let source = data.get(taken..taken + take).ok_or_else(out_of_range)?;
            if let Some(target) = state.blocks.get_mut(&number).and_then(|b| b.get_mut(within..within + take)) {
                target.copy_from_slice(source);
            }
            at += take as u64;
            taken += take;
        }
        state.len = state.len.max(end);
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use redb::StorageBackend;

    use super::*;
    use crate::store::RedbConsentStore;

    #[test]
    fn the_overlay_reads_its_writes_and_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, vec![7u8; 5000]).unwrap();
        let overlay = Overlay::new(std::fs::File::open(&path).unwrap());
        overlay.write(4090, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
        let mut out = [0u8; 12];
        overlay.read(4089, &mut out).unwrap();
        assert_eq!(out, [7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 7]);
        overlay.set_len(4092).unwrap();
        overlay.set_len(9000).unwrap();
        let mut tail = [9u8; 8];
        overlay.read(4090, &mut tail).unwrap();
        assert_eq!(tail, [1, 2, 0, 0, 0, 0, 0, 0]);
        assert!(overlay.read(8999, &mut [0u8; 2]).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 5000]);
    }

    #[test]
    fn the_read_only_open_verifies_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = RedbConsentStore::open(&path).unwrap();
        let grant = r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;
        store.append(&[serde_json::from_str(grant).unwrap()]).unwrap();
        drop(store);
        let before = std::fs::read(&path).unwrap();
        let reader = ReadOnlyRedbStore::open(&path).unwrap();
        assert_eq!(reader.history("u1").unwrap().events().len(), 1);
        drop(reader);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
