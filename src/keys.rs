//! Subject keys: the secrets that let the audit log and the consent store forget a
//! subject (crypto-shredding, issue 27).
//!
//! - A [`MasterKey`] belongs to a deployment. It never leaves the process and is never
//!   written to the audit log. Stores derive [`Locator`]s from it: the keyed hash of an
//!   id under which they find the subject's key and, after erasure, its tombstone,
//!   without keeping the id.
//! - A [`SubjectKey`] is random, one per subject, kept in the consent store. Audit
//!   records carry the subject's [`Pseudonym`] under it, never the id. Erasing the
//!   subject destroys the key: the records stay, the hash chain stays intact, and
//!   nobody can tell any more whom they were about.
//! - [`SubjectKeys`] is the extension point: a store that keeps keys implements it,
//!   and the audit writer asks it, off the checking thread, for the keys of the
//!   subjects in each batch. [`MemorySubjectKeys`] keeps them in memory.
//! - [`Tombstones`] are the locators of erased subjects. A guard that restarts on a
//!   store which kept only tombstones still answers `subject_erased` for those ids.
//!
//! ```
//! use consent_guard::keys::{MasterKey, MemorySubjectKeys, Pseudonym, SubjectKeys};
//!
//! let keys = MemorySubjectKeys::new();
//! let key = keys.keys_for(&["alice"])?.remove(0);
//! let pseudonym = Pseudonym::of(&key, "alice");
//! assert_eq!(pseudonym.to_string().len(), 32);
//! assert_eq!(keys.key_of("alice")?, Some(key.clone()));
//!
//! keys.destroy("alice")?;
//! assert_eq!(keys.key_of("alice")?, None);
//! // A new key for the same id gives a pseudonym unlinkable to the old one.
//! let fresh = keys.keys_for(&["alice"])?.remove(0);
//! assert_ne!(Pseudonym::of(&fresh, "alice"), pseudonym);
//!
//! let master = MasterKey::from_hex(&"11".repeat(32))?;
//! assert_eq!(master.locator("alice"), master.locator("alice"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use hmac::{Mac, SimpleHmac};
use sha2::Sha256;

use crate::error::StoreError;

/// Domain separation: the same secret never yields a pseudonym and a locator that
/// could be compared.
const PSEUDONYM_DOMAIN: &[u8] = b"consent-guard/pseudonym/v1\0";
const LOCATOR_DOMAIN: &[u8] = b"consent-guard/locator/v1\0";

/// Why a key could not be read or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key given as text is not 64 hex digits.
    #[error("{origin}: a key is 64 hex digits (32 bytes)")]
    Malformed {
        /// Where the text came from (a file path, an environment variable).
        origin: String,
    },
    /// The operating system gave no random bytes.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

fn random_bytes<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(bytes)
}

fn hmac(key: &[u8], domain: &[u8], subject: &str) -> [u8; 32] {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail here.
    let mut mac = <SimpleHmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(domain);
    mac.update(subject.as_bytes());
    mac.finalize().into_bytes().into()
}

fn parse_hex32(text: &str, origin: &str) -> Result<[u8; 32], KeyError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| KeyError::Malformed { origin: origin.to_owned() })?;
    Ok(bytes)
}

/// A deployment's master key: 32 bytes. Stores derive [`Locator`]s from it.
///
/// Configure it as 64 hex digits in a file or an environment variable; keep it apart
/// from the store's files where you can (see `docs/erasure.md`). Its `Debug` prints a
/// redaction.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// A master key from 64 hex digits (surrounding white space is ignored).
    ///
    /// # Errors
    ///
    /// [`KeyError::Malformed`] when the text is not 64 hex digits.
    pub fn from_hex(text: &str) -> Result<MasterKey, KeyError> {
        parse_hex32(text, "master key").map(MasterKey)
    }

    /// A new random master key.
    ///
    /// # Errors
    ///
    /// [`KeyError::Random`] when the operating system gives no randomness.
    pub fn generate() -> Result<MasterKey, KeyError> {
        random_bytes().map(MasterKey)
    }

    /// Reads the key from `path` (64 hex digits); a missing file is an error.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or holds something else than a key.
    pub fn load(path: &Path) -> Result<MasterKey, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
        parse_hex32(&text, &path.display().to_string()).map(MasterKey)
    }

    /// Reads the key from `path` (64 hex digits), or, when the file does not exist,
    /// makes a new random key and writes it there (readable by its owner only, on
    /// Unix).
    ///
    /// # Errors
    ///
    /// When the file cannot be read or written, or holds something else than a key.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, KeyError> {
        let io = |source| KeyError::Io { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => parse_hex32(&text, &path.display().to_string()).map(MasterKey),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate()?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io)?;
                std::io::Write::write_all(&mut file, format!("{}\n", key.to_hex()).as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key as 64 hex digits, to store it elsewhere.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The locator of `subject` under this key.
    pub fn locator(&self, subject: &str) -> Locator {
        let mac = hmac(&self.0, LOCATOR_DOMAIN, subject);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&mac[..16]);
        Locator(bytes)
    }

    /// The 32 bytes, for a store that derives further secrets from them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// One subject's secret key: 32 random bytes, kept in the consent store until the
/// subject is erased. Its `Debug` prints a redaction.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey([u8; 32]);

impl SubjectKey {
    /// A subject key from its 32 bytes (as a store reads it back).
    pub fn from_bytes(bytes: [u8; 32]) -> SubjectKey {
        SubjectKey(bytes)
    }

    /// A new random key.
    ///
    /// # Errors
    ///
    /// [`KeyError::Random`] when the operating system gives no randomness.
    pub fn generate() -> Result<SubjectKey, KeyError> {
        random_bytes().map(SubjectKey)
    }

    /// The 32 bytes, for a store to keep.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey(<redacted>)")
    }
}

/// What an audit record carries instead of a subject id: the first 16 bytes of
/// HMAC-SHA256 under the subject's key, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym([u8; 16]);

impl Pseudonym {
    /// The pseudonym of `subject` under its key.
    pub fn of(key: &SubjectKey, subject: &str) -> Pseudonym {
        let mac = hmac(&key.0, PSEUDONYM_DOMAIN, subject);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&mac[..16]);
        Pseudonym(bytes)
    }

    /// Reads the 32 hex digits an audit record holds.
    pub fn parse(text: &str) -> Option<Pseudonym> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        // Only the lowercase form is written; another spelling is not one of ours.
        (hex::encode(bytes) == text).then_some(Pseudonym(bytes))
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 32];
        // 16 bytes always fit 32 hex digits.
        hex::encode_to_slice(self.0, &mut text).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pseudonym({self})")
    }
}

/// The keyed hash of a subject id under the [`MasterKey`]: how a store indexes a
/// subject's key and tombstone without keeping the id. 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Locator([u8; 16]);

impl Locator {
    /// A locator from its 16 bytes (as a store reads it back).
    pub fn from_bytes(bytes: [u8; 16]) -> Locator {
        Locator(bytes)
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// Where the keys of subjects are kept: the consent store, usually.
///
/// # Obligations
///
/// - `keys_for` returns one key per subject, in order. A subject that has a key gets
///   it back; one that has none gets a new random key, and `keys_for` returns `Ok`
///   only once every new key is durable (an audit record written under a key that a
///   crash then loses could never be found again).
/// - Two calls for the same subject, with no destruction between them, return the
///   same key, from this process or another sharing the store.
/// - `key_of` never creates a key.
/// - Erasing a subject (an `erase` event appended to the store, or
///   [`MemorySubjectKeys::destroy`]) removes its key for good; a later `keys_for`
///   makes a new one, unrelated to the old.
/// - An error is an error: never a made-up key.
pub trait SubjectKeys: fmt::Debug + Send + Sync {
    /// The key of each subject, in order, making keys for those that have none.
    ///
    /// # Errors
    ///
    /// When a key cannot be read, or a new one cannot be made durable.
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError>;

    /// The key of `subject`, if it has one.
    ///
    /// # Errors
    ///
    /// When the keys cannot be read.
    fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError>;

    /// How many times keys have been destroyed here so far, when every destruction
    /// happens where this value sees it (it then grows with each, after the key is
    /// gone). A caller may keep what it derived from keys (the audit writer keeps
    /// pseudonyms) while the count stays the same, and must drop it all when it
    /// changes. `None`, the default: keys may be destroyed unseen (by another process
    /// sharing the store), so nothing derived may be kept from one call to the next.
    fn destructions(&self) -> Option<u64> {
        None
    }
}

impl<K: SubjectKeys + ?Sized> SubjectKeys for std::sync::Arc<K> {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        (**self).keys_for(subjects)
    }
    fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        (**self).key_of(subject)
    }
    fn destructions(&self) -> Option<u64> {
        (**self).destructions()
    }
}

impl<K: SubjectKeys + ?Sized> SubjectKeys for Box<K> {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        (**self).keys_for(subjects)
    }
    fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        (**self).key_of(subject)
    }
    fn destructions(&self) -> Option<u64> {
        (**self).destructions()
    }
}

/// Subject keys in memory: for tests, and for an audit log whose records need not be
/// found again after the process ends (every key is lost with it).
#[derive(Default)]
pub struct MemorySubjectKeys {
    keys: Mutex<HashMap<String, SubjectKey>>,
    destroyed: std::sync::atomic::AtomicU64,
}

impl MemorySubjectKeys {
    /// No keys yet.
    pub fn new() -> MemorySubjectKeys {
        MemorySubjectKeys::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, SubjectKey>>, StoreError> {
        self.keys.lock().map_err(|_| StoreError::new("subject keys poisoned by a panic"))
    }

    /// Destroys the key of `subject`, as an erasure does.
    ///
    /// # Errors
    ///
    /// When the keys are poisoned by a panic.
    pub fn destroy(&self, subject: &str) -> Result<(), StoreError> {
        let mut keys = self.lock()?;
        keys.remove(subject);
        // Counted while the lock is held: no `keys_for` can hand out the old key after
        // the count has moved.
        self.destroyed.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        drop(keys);
        Ok(())
    }
}

impl SubjectKeys for MemorySubjectKeys {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        let mut keys = self.lock()?;
        let mut found = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let key = match keys.get(*subject) {
                Some(key) => key.clone(),
                None => {
                    let key =
                        SubjectKey::generate().map_err(|e| StoreError::with_source("cannot make a subject key", e))?;
                    keys.insert((*subject).to_owned(), key.clone());
                    key
                }
            };
            found.push(key);
        }
        Ok(found)
    }

    fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        Ok(self.lock()?.get(subject).cloned())
    }

    fn destructions(&self) -> Option<u64> {
        Some(self.destroyed.load(std::sync::atomic::Ordering::Acquire))
    }
}

impl fmt::Debug for MemorySubjectKeys {
    /// A count, never the ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.keys.lock().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("MemorySubjectKeys").field("keys", &count).finish()
    }
}

/// The locators of erased subjects, with when each was erased (ms since the epoch),
/// and the master key to compute an id's locator. A guard asks it about a subject
/// it holds no state for.
#[derive(Clone, Default)]
pub struct Tombstones {
    master: Option<MasterKey>,
    erased: HashMap<Locator, i64>,
}

impl Tombstones {
    /// No tombstones.
    pub fn new() -> Tombstones {
        Tombstones::default()
    }

    /// Tombstones under `master`, from (locator, erased at in ms) pairs.
    pub fn from_locators(master: MasterKey, erased: impl IntoIterator<Item = (Locator, i64)>) -> Tombstones {
        Tombstones { master: Some(master), erased: erased.into_iter().collect() }
    }

    /// Adds a tombstone; the earlier time wins when there are two.
    pub fn insert(&mut self, locator: Locator, erased_at: i64) {
        let at = self.erased.entry(locator).or_insert(erased_at);
        *at = (*at).min(erased_at);
    }

    /// When the subject with this locator was erased, if it has a tombstone.
    pub fn get(&self, locator: &Locator) -> Option<i64> {
        self.erased.get(locator).copied()
    }

    /// The locators and erase times, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&Locator, &i64)> + '_ {
        self.erased.iter()
    }

    /// The master key the locators are computed under, if any.
    pub fn master(&self) -> Option<&MasterKey> {
        self.master.as_ref()
    }

    /// When `subject` was erased, if it has a tombstone. Costs one HMAC, and nothing
    /// when there are no tombstones.
    pub fn erased_at(&self, subject: &str) -> Option<i64> {
        if self.erased.is_empty() {
            return None;
        }
        let master = self.master.as_ref()?;
        self.erased.get(&master.locator(subject)).copied()
    }

    /// The number of tombstones.
    pub fn len(&self) -> usize {
        self.erased.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.erased.is_empty()
    }
}

impl fmt::Debug for Tombstones {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tombstones").field("erased", &self.erased.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_depend_on_the_key_and_the_id() {
        let a = SubjectKey::from_bytes([1; 32]);
        let b = SubjectKey::from_bytes([2; 32]);
        assert_eq!(Pseudonym::of(&a, "u"), Pseudonym::of(&a, "u"));
        assert_ne!(Pseudonym::of(&a, "u"), Pseudonym::of(&b, "u"));
        assert_ne!(Pseudonym::of(&a, "u"), Pseudonym::of(&a, "v"));
        let text = Pseudonym::of(&a, "u").to_string();
        assert_eq!(Pseudonym::parse(&text), Some(Pseudonym::of(&a, "u")));
        assert_eq!(Pseudonym::parse(&text.to_uppercase()), None);
        assert_eq!(Pseudonym::parse("zz"), None);
    }

    #[test]
    fn a_locator_is_not_a_pseudonym_under_the_same_bytes() {
        let master = MasterKey::from_bytes([7; 32]);
        let key = SubjectKey::from_bytes([7; 32]);
        assert_ne!(master.locator("u").as_bytes(), Pseudonym::of(&key, "u").as_bytes());
    }

    #[test]
    fn keys_print_no_secret() {
        let master = MasterKey::from_bytes([0xab; 32]);
        assert!(!format!("{master:?}").contains("ab"));
        assert!(!format!("{:?}", SubjectKey::from_bytes([0xab; 32])).contains("ab"));
    }

    #[test]
    fn master_keys_are_read_as_written_and_malformed_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let made = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(MasterKey::load_or_create(&path).unwrap(), made);
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(MasterKey::load_or_create(&path), Err(KeyError::Malformed { .. })));
        assert!(MasterKey::from_hex(&"0".repeat(63)).is_err());
    }

    #[test]
    fn tombstones_answer_only_for_erased_ids() {
        let master = MasterKey::from_bytes([3; 32]);
        let tombstones = Tombstones::from_locators(master.clone(), [(master.locator("gone"), 5)]);
        assert_eq!(tombstones.erased_at("gone"), Some(5));
        assert_eq!(tombstones.erased_at("here"), None);
        assert_eq!(Tombstones::new().erased_at("gone"), None);
    }
}
