//! The durable audit log: group commit of hash-chained records into segment files.
//!
//! Checks never take a lock that all threads share. Each thread puts its record, as a
//! structured entry (template key, subject, code, time, basis; a full record as the
//! owned record), into one of several shards (a queue behind a mutex that only the
//! threads mapped to it, and the writer once per batch, take). One writer thread takes
//! every shard's entries, asks the [`SubjectKeys`] once for the keys of the batch's
//! distinct subjects, writes each record with the subject's pseudonym in place of its
//! id (format 3, [`super::segment`]), adds the template lines the batch needs, chains
//! the batch with SHA-256, writes it and fsyncs once: every record that arrived while
//! the previous fsync was in flight joins the next one (group commit). Formatting and
//! pseudonymising happen on the writer thread, never on the checking one.
//!
//! The writer keeps the pseudonyms it computed from one batch to the next only while
//! the keys report no destruction ([`SubjectKeys::destructions`]: the memory and redb
//! stores see every erasure; PostgreSQL, shared with other processes, does not, so its
//! keys are asked every batch). A subject erased in the store (its key destroyed) gets
//! a new, unrelated key from the next batch on.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::segment::{self, hex, Head, FORMAT};
use super::{AuditRecord, AuditSink, OwnedAuditRecord};
use crate::basis::LegalBasis;
use crate::decision::{Decision, ReasonCode};
use crate::error::AuditError;
use crate::keys::{MemorySubjectKeys, Pseudonym, SubjectKeys};
use crate::request::AccessRequest;

/// When a record counts as kept, and what a power failure can take.
///
/// What the writer thread has written survives a crash of the process (`kill -9`, an
/// abort): it is in the operating system's page cache. Only fsynced batches survive a
/// power failure or a kernel crash. See `docs/audit.md` for the full table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `record` returns only once the record's batch is written and fsynced: an allow is
    /// released only once its record is on disk. Callers who arrive while an fsync is
    /// in flight share the next one. A power failure loses no record whose `record`
    /// returned; it may leave a torn tail of a batch never acknowledged, which is cut
    /// off at the next open.
    Synced,
    /// `record` returns at once; the writer commits (write and fsync) at least every
    /// `within`. A crash of the process loses the records still in memory, and a power
    /// failure those not yet fsynced: at most the last `within` plus one commit's time
    /// of decisions, already released. If the writer fails, or the queue stays full longer than the log's
    /// `full_timeout`, `record` fails from then on and the guard denies
    /// (`audit_unavailable`); no record is ever dropped silently.
    Buffered {
        /// The longest a record waits in memory (10 ms by default).
        within: Duration,
    },
}

impl Durability {
    /// `Buffered` within 10 ms.
    pub const BUFFERED: Durability = Durability::Buffered { within: Duration::from_millis(10) };
}

/// How an [`AuditLog`] is set up: durability, segment rotation, queue bounds, and
/// where the subject keys come from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AuditLogOptions {
    /// See [`Durability`].
    pub durability: Durability,
    /// A segment is closed once it holds this many bytes (64 MiB by default).
    pub segment_bytes: u64,
    /// A segment is closed once it is this old (one day by default).
    pub segment_age: Duration,
    /// A shard holding this many bytes not yet taken by the writer is full (8 MiB).
    /// Counted as the subjects' bytes plus a fixed estimate per record (about the
    /// length of its line): the queue holds entries, not lines.
    pub shard_bytes: usize,
    /// How long `record` waits on a full shard before it fails (1 s by default).
    pub full_timeout: Duration,
    /// Where the writer gets each subject's key, to write its pseudonym: the consent
    /// store's keys (`StoreKeys`). `None` (the default): fresh
    /// [`MemorySubjectKeys`] of the log's own, lost when the process ends, so that
    /// records written then cannot be found again (by a subject's export) afterwards.
    pub subject_keys: Option<Arc<dyn SubjectKeys>>,
}

impl AuditLogOptions {
    /// The defaults, with this durability.
    pub fn new(durability: Durability) -> AuditLogOptions {
        AuditLogOptions {
            durability,
            segment_bytes: 64 << 20,
            segment_age: Duration::from_secs(24 * 3600),
            shard_bytes: 8 << 20,
            full_timeout: Duration::from_secs(1),
            subject_keys: None,
        }
    }

    /// Sets where subject keys come from: the consent store's keys
    /// ([`crate::store::StoreKeys`] over the store the guard reads), so that a subject's
    /// records can be found again through its key, and forgotten by destroying it.
    #[must_use]
    pub fn subject_keys(mut self, keys: Arc<dyn SubjectKeys>) -> Self {
        self.subject_keys = Some(keys);
        self
    }

    /// Sets the segment size at which the log rotates.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }

    /// Sets the segment age at which the log rotates.
    #[must_use]
    pub fn segment_age(mut self, age: Duration) -> Self {
        self.segment_age = age;
        self
    }

    /// Sets the bound of each shard's queue, in bytes.
    #[must_use]
    pub fn shard_bytes(mut self, bytes: usize) -> Self {
        self.shard_bytes = bytes.max(1);
        self
    }

    /// Sets how long `record` waits on a full queue before it fails.
    #[must_use]
    pub fn full_timeout(mut self, timeout: Duration) -> Self {
        self.full_timeout = timeout;
        self
    }
}

/// Counters of the writer, for benchmarks and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditLogStats {
    /// Batches committed.
    pub commits: u64,
    /// fsyncs of segment files (directory syncs at rotation not counted).
    pub fsyncs: u64,
    /// Records committed.
    pub records: u64,
    /// Bytes written, every line included.
    pub bytes: u64,
    /// Segments created.
    pub segments: u64,
}

/// How many shards: threads map to them by a per-thread number, so that up to this
/// many threads never share one.
const SHARDS: usize = 32;

/// Templates kept for compact records over the log's life: a service that prepares an
/// access per request would otherwise grow the registry without end. Records of
/// templates beyond it are written in full.
const MAX_TEMPLATES: usize = 4096;

/// Template keys each shard remembers as registered.
const KNOWN_PER_SHARD: usize = 64;

/// Distinct subjects per thread below which a batch's pseudonyms are computed on the
/// writer thread alone (a thread costs tens of microseconds; this many HMACs, about a
/// millisecond).
const PARALLEL_SUBJECTS: usize = 2048;

/// Pseudonyms the writer keeps from one batch to the next, at most (about 30 MiB at
/// most); past it the cache starts again empty.
const PSEUDONYM_CACHE: usize = 1 << 18;

/// At most this many threads compute a batch's pseudonyms.
const MAX_PSEUDONYM_THREADS: usize = 4;

/// What a compact entry counts for in a shard's bytes, beside its subject: about the
/// rest of its line.
const COMPACT_BYTES: usize = 48;

/// What a full record counts for in a shard's bytes: about its line.
const FULL_BYTES: usize = 640;

/// One record as the checking thread leaves it for the writer: nothing formatted,
/// nothing pseudonymised.
enum Entry {
    /// A decision of a registered template; the subject is `subjects[start..end]` of
    /// its shard's batch.
    Compact { key: u64, start: usize, end: usize, code: ReasonCode, at: i64, basis: Option<LegalBasis> },
    /// A record written in full.
    Full(Box<OwnedAuditRecord>),
}

/// One shard's queue: its entries, and the subjects of its compact ones.
#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    /// The subjects of the compact entries, one after another.
    subjects: String,
    /// The bytes the queue counts for (see [`AuditLogOptions::shard_bytes`]).
    bytes: usize,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.subjects.clear();
        self.bytes = 0;
    }
}

/// One shard: a queue of entries, and the generation they belong to.
#[derive(Default)]
struct ShardState {
    buffer: Batch,
    /// The generation of the records now in `buffer` (from 1).
    generation: u64,
    /// Every generation up to this one is on disk.
    durable: u64,
    /// Templates known to be registered with the log: checked before the registry.
    known: Vec<u64>,
    /// The templates this shard registered for plain checks, most recent last: a check
    /// asking for one of these accesses is written as a compact record.
    checked: Vec<CheckTemplate>,
    /// The templates the entries in `buffer` name, each once, and the last one added:
    /// the writer puts their lines before the batch without looking for them.
    keys: Vec<u64>,
    last_key: Option<u64>,
}

/// The template of plain checks ([`crate::Guard::check`]) that ask for one access:
/// what the template line says, so that a record is compact only when its line would
/// say the same.
struct CheckTemplate {
    key: u64,
    request: crate::request::AccessRequest<'static>,
    policy: Box<str>,
    policy_version: Box<str>,
    clause: Option<Box<str>>,
}

impl CheckTemplate {
    fn stands_for(&self, record: &AuditRecord<'_>) -> bool {
        let decision = record.decision;
        self.request.same_access(record.request)
            && *self.policy_version == *decision.policy_version()
            && *self.policy == *decision.policy()
            && self.clause.as_deref() == decision.clause()
    }
}

/// A time in ms and its decimal text.
struct TimeText {
    at: i64,
    text: Vec<u8>,
}

impl Default for TimeText {
    fn default() -> TimeText {
        // No decision is made at i64::MIN ms: out of range for a calendar time.
        TimeText { at: i64::MIN, text: Vec::with_capacity(24) }
    }
}

/// One shard's queue as the writer took it.
struct Taken {
    shard: usize,
    generation: u64,
    batch: Batch,
    keys: Vec<u64>,
}

#[repr(align(128))]
struct Shard {
    state: Mutex<ShardState>,
    kept: Condvar,
}

struct Shared {
    options: AuditLogOptions,
    shards: Vec<Shard>,
    /// Template key → its line without the id (`"request":…` onwards).
    templates: Mutex<HashMap<u64, Vec<u8>>>,
    writer: OnceLock<std::thread::Thread>,
    stop: AtomicBool,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    head: Mutex<Head>,
    subject_keys: Arc<dyn SubjectKeys>,
    commits: AtomicU64,
    fsyncs: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    segments: AtomicU64,
}

/// The durable audit log: an [`AuditSink`] that writes hash-chained records into a
/// directory of segment files with group commit. See [`Durability`] for what each mode
/// promises and can lose, and [`super::segment`] for the format (`consent-guard audit
/// verify DIR` checks it, `audit export DIR` prints it as full JSON lines).
///
/// - No record holds a subject id: each holds the subject's pseudonym under its key,
///   from [`AuditLogOptions::subject_keys`] (the consent store's, `StoreKeys`). Without
///   them the log makes keys of its own in memory, and its records cannot be found
///   again once the process ends.
/// - Records of a prepared access ([`crate::Guard::prepare`]) are compact: the template
///   once per segment, then about 80 bytes per decision.
/// - One writer per log: the directory's `lock` file is locked exclusively; a second
///   opener, in this process or another, gets an error saying so.
/// - Each open starts a new segment; a torn tail of the last one is cut off first.
/// - After each commit the head (`SEQ:HASH`) is written to the `head` file (not
///   fsynced: it may lag the log by a commit after a power failure). Copy it somewhere
///   else to catch a log cut at its end or rewritten.
///
/// ```
/// use consent_guard::audit::{AuditLog, Durability};
/// use consent_guard::{AccessRequest, DataCategory, Guard, Policy, Purpose};
///
/// let dir = tempfile::tempdir()?;
/// let log = std::sync::Arc::new(AuditLog::open(dir.path(), Durability::Synced)?);
/// let guard = Guard::builder(Policy::from_toml_file("examples/policies/exmo.toml")?).audit(log.clone()).build()?;
/// let request = AccessRequest::new("u1", Purpose::SECURITY, &[DataCategory::DEVICE_INFO][..]);
/// assert!(guard.check(&request).allowed()); // its record is on disk
/// assert_eq!(log.head()?.seq, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AuditLog {
    shared: Arc<Shared>,
    dir: PathBuf,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Held for the log's life: the exclusive lock.
    _lock: File,
}

static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static THREAD_NUMBER: usize = usize::try_from(NEXT_THREAD.fetch_add(1, Ordering::Relaxed)).unwrap_or(0);
}

impl AuditLog {
    /// Opens (or creates) the log in directory `dir` with the default options.
    ///
    /// # Errors
    ///
    /// As [`AuditLog::open_with`].
    pub fn open(dir: impl AsRef<Path>, durability: Durability) -> Result<AuditLog, AuditError> {
        AuditLog::open_with(dir, AuditLogOptions::new(durability))
    }

    /// Opens (or creates) the log in directory `dir`: verifies the last segments (from
    /// the last one with a whole header: opening takes time in proportion to a
    /// segment, not to the log; `audit verify` checks the whole chain), cuts a torn
    /// tail off the last one, and starts the writer.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created or read, another writer holds it, the log
    /// is not intact (its chain cannot be continued honestly), or it is of format 2
    /// (plain subject ids), which is never extended: `consent-guard audit migrate`
    /// rewrites it as a new log.
    pub fn open_with(dir: impl AsRef<Path>, options: AuditLogOptions) -> Result<AuditLog, AuditError> {
        let dir = dir.as_ref().to_path_buf();
        let shown = dir.display().to_string();
        std::fs::create_dir_all(&dir).map_err(|e| AuditError::io(format!("cannot create {shown}"), e))?;
        let lock = lock_file(&dir.join("lock"), &shown)?;
        let scan = segment::scan_tail(&dir).map_err(|e| AuditError::io(format!("cannot read audit log {shown}"), e))?;
        if let Some(format @ segment::Format::PlainIds) = scan.format {
            return Err(AuditError::new(format!(
                "audit log {shown} is of format {format}, which holds plain subject ids: it is still read (verify, \
                 export) but never extended; rewrite it as a new log with `consent-guard audit migrate --from \
                 {shown} --to NEW --store S` and write to the new one"
            )));
        }
        let (head, next) = match scan.verdict {
            segment::DirVerdict::Tampered { segment, line, reason } => {
                return Err(AuditError::new(format!(
                    "audit log {shown} is not intact at segment {segment} line {line}: {reason}; refusing to extend it"
                )))
            }
            segment::DirVerdict::Intact { head, .. } | segment::DirVerdict::TornTail { head, .. } => {
                if let Some((number, path, committed)) = &scan.last {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| AuditError::io(format!("cannot open {}", path.display()), e))?;
                    if file.metadata().map(|m| m.len()).unwrap_or(0) != *committed {
                        file.set_len(*committed).and_then(|()| file.sync_all()).map_err(|e| {
                            AuditError::io(format!("cannot cut the torn tail of {}", path.display()), e)
                        })?;
                    }
                    (head, number.saturating_add(1))
                } else {
                    (head, 1)
                }
            }
        };
        let shards = (0..SHARDS)
            .map(|_| Shard {
                state: Mutex::new(ShardState { generation: 1, ..ShardState::default() }),
                kept: Condvar::new(),
            })
            .collect();
        let subject_keys = options.subject_keys.clone().unwrap_or_else(|| Arc::new(MemorySubjectKeys::new()));
        let shared = Arc::new(Shared {
            options,
            shards,
            templates: Mutex::new(HashMap::new()),
            writer: OnceLock::new(),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            head: Mutex::new(head.clone()),
            subject_keys,
            commits: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            segments: AtomicU64::new(0),
        });
        let writer = Writer {
            shared: Arc::clone(&shared),
            dir: dir.clone(),
            next_segment: next,
            file: None,
            head,
            written: HashSet::new(),
            out: Vec::with_capacity(1 << 16),
            spare: Vec::new(),
            head_file: None,
            time: TimeText::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_PSEUDONYM_THREADS),
            cache: HashMap::new(),
            cached_at: None,
        };
        let handle = std::thread::Builder::new()
            .name("consent-guard-audit".into())
            .spawn(move || writer.run())
            .map_err(|e| AuditError::io("cannot start the audit writer thread", e))?;
        let _ = shared.writer.set(handle.thread().clone());
        Ok(AuditLog { shared, dir, writer: Mutex::new(Some(handle)), _lock: lock })
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The subject keys the log writes pseudonyms under: what a subject's export must
    /// look its key up in ([`crate::interchange::export::decisions_about`]).
    pub fn subject_keys(&self) -> &Arc<dyn SubjectKeys> {
        &self.shared.subject_keys
    }

    /// The head of the chain as last committed.
    ///
    /// # Errors
    ///
    /// When a panic poisoned the log.
    pub fn head(&self) -> Result<Head, AuditError> {
        self.shared.head.lock().map(|h| h.clone()).map_err(|_| AuditError::new("audit log poisoned by a panic"))
    }

    /// The writer's counters.
    pub fn stats(&self) -> AuditLogStats {
        let commits = self.shared.commits.load(Ordering::Acquire);
        AuditLogStats {
            commits,
            fsyncs: self.shared.fsyncs.load(Ordering::Acquire),
            records: self.shared.records.load(Ordering::Acquire),
            bytes: self.shared.bytes.load(Ordering::Acquire),
            segments: self.shared.segments.load(Ordering::Acquire),
        }
    }

    /// Waits until every record handed to the log so far, by any thread, is on disk;
    /// returns the head then.
    ///
    /// # Errors
    ///
    /// When the writer failed: records handed before may be lost.
    pub fn flush(&self) -> Result<Head, AuditError> {
        for shard in &self.shared.shards {
            let state = self.shared.lock(shard)?;
            let target = if state.buffer.is_empty() { state.generation.saturating_sub(1) } else { state.generation };
            self.shared.wait(shard, state, target)?;
        }
        self.head()
    }

    /// Commits what is pending, stops the writer and returns the head.
    ///
    /// # Errors
    ///
    /// When the writer failed.
    pub fn close(self) -> Result<Head, AuditError> {
        let head = self.flush();
        self.stop();
        head
    }

    fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }

    /// This thread's shard, locked, with room for a line. Inlined, as `kept` and
    /// `put_prepared` are: each call cost the checking thread its prologue and the
    /// moves of its result, about 60 instructions a record in all (issue 31).
    #[inline(always)]
    fn shard(&self) -> Result<(&Shard, MutexGuard<'_, ShardState>), AuditError> {
        let shared = &*self.shared;
        shared.check_failed()?;
        let index = THREAD_NUMBER.with(|n| *n) % SHARDS;
        let shard = shared.shards.get(index).ok_or_else(|| AuditError::new("no shard"))?;
        let mut state = shared.lock(shard)?;
        if state.buffer.bytes >= shared.options.shard_bytes {
            state = shared.wait_for_room(shard, state)?;
        }
        Ok((shard, state))
    }

    /// Puts the record's entry into this thread's shard; returns the shard and the
    /// generation to wait for.
    fn put(&self, record: &AuditRecord<'_>) -> Result<(&Shard, u64), AuditError> {
        let shared = &*self.shared;
        let (shard, mut state) = self.shard()?;
        let compact = match record.template_key() {
            Some(key) if state.known.contains(&key) => Some(key),
            Some(key) if shared.register(key, record)? => {
                if state.known.len() >= KNOWN_PER_SHARD {
                    state.known.remove(0);
                }
                state.known.push(key);
                Some(key)
            }
            Some(_) => None,
            None => shared.check_template(&mut state.checked, record)?,
        };
        match compact {
            Some(key) => push_compact(&mut state.buffer, key, &record.request.subject, record.decision),
            None => {
                let full = record.to_owned_record();
                state.buffer.bytes += FULL_BYTES + full.request.subject.len();
                state.buffer.entries.push(Entry::Full(Box::new(full)));
            }
        }
        Ok(self.kept(shard, state, compact))
    }

    /// [`AuditLog::put`] for a check of a prepared access whose template this shard
    /// has registered: the compact entry is made from the decision alone, with no
    /// request built. Any other goes through `put` with the request built.
    #[inline(always)]
    fn put_prepared(&self, template: &AccessRequest<'_>, decision: &Decision<'_>) -> Result<(&Shard, u64), AuditError> {
        if let Some(key) = super::template_key_of(decision) {
            let (shard, mut state) = self.shard()?;
            // The batch's last template is registered (templates never are
            // unregistered): most records of a run of prepared checks need no search.
            if state.last_key == Some(key) || state.known.contains(&key) {
                push_compact(&mut state.buffer, key, decision.subject(), decision);
                return Ok(self.kept(shard, state, Some(key)));
            }
        }
        self.put_in_full(template, decision)
    }

    /// A prepared check's record the first time its template is seen (or when the log
    /// keeps it in full): out of line, so that the compact path stays short.
    #[cold]
    #[inline(never)]
    fn put_in_full(&self, template: &AccessRequest<'_>, decision: &Decision<'_>) -> Result<(&Shard, u64), AuditError> {
        self.put(&AuditRecord { request: &template.for_subject(decision.subject()), decision })
    }

    /// Notes the template of an entry just put into the shard, and wakes the writer
    /// when the shard fills.
    #[inline(always)]
    fn kept<'s>(
        &self,
        shard: &'s Shard,
        mut state: MutexGuard<'s, ShardState>,
        compact: Option<u64>,
    ) -> (&'s Shard, u64) {
        if let Some(key) = compact {
            if state.last_key != Some(key) {
                if !state.keys.contains(&key) {
                    state.keys.push(key);
                }
                state.last_key = Some(key);
            }
        }
        let generation = state.generation;
        let large = state.buffer.bytes >= self.shared.options.shard_bytes / 2;
        drop(state);
        if large {
            self.shared.wake();
        }
        (shard, generation)
    }
}

impl Shared {
    #[inline]
    fn lock<'s>(&self, shard: &'s Shard) -> Result<MutexGuard<'s, ShardState>, AuditError> {
        shard.state.lock().map_err(|_| AuditError::new("audit log poisoned by a panic"))
    }

    fn wake(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    /// Every record's first step: one load, inlined; the error is built out of line.
    #[inline]
    fn check_failed(&self) -> Result<(), AuditError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(self.failure());
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn failure(&self) -> AuditError {
        let message = self.failure.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
        AuditError::new(format!("audit log writer failed: {message}"))
    }

    /// Waits until generation `target` of `shard` is on disk.
    fn wait(&self, shard: &Shard, mut state: MutexGuard<'_, ShardState>, target: u64) -> Result<(), AuditError> {
        if state.durable >= target {
            return Ok(());
        }
        self.wake();
        while state.durable < target {
            self.check_failed()?;
            if self.stop.load(Ordering::Acquire) && self.writer_gone() {
                return Err(AuditError::new("audit log closed"));
            }
            state = shard
                .kept
                .wait_timeout(state, Duration::from_millis(100))
                .map_err(|_| AuditError::new("audit log poisoned by a panic"))?
                .0;
        }
        Ok(())
    }

    fn writer_gone(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    fn wait_for_room<'s>(
        &self,
        shard: &'s Shard,
        mut state: MutexGuard<'s, ShardState>,
    ) -> Result<MutexGuard<'s, ShardState>, AuditError> {
        let deadline = Instant::now() + self.options.full_timeout;
        self.wake();
        while state.buffer.bytes >= self.options.shard_bytes {
            self.check_failed()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(AuditError::new(format!(
                    "audit queue full for longer than {:?}: the writer does not keep up",
                    self.options.full_timeout
                )));
            }
            state =
                shard.kept.wait_timeout(state, left).map_err(|_| AuditError::new("audit log poisoned by a panic"))?.0;
        }
        Ok(state)
    }

    /// Registers a template's line (once per key, for the life of the log); `false`
    /// when the registry is full, and the record is written in full instead.
    fn register(&self, key: u64, record: &AuditRecord<'_>) -> Result<bool, AuditError> {
        let mut templates = self.templates.lock().map_err(|_| AuditError::new("audit log poisoned by a panic"))?;
        if templates.contains_key(&key) {
            return Ok(true);
        }
        if templates.len() >= MAX_TEMPLATES {
            return Ok(false);
        }
        let mut line = Vec::with_capacity(512);
        line.extend_from_slice(b"\"request\":");
        let template = record.request.for_subject("");
        serde_json::to_writer(&mut line, &template).map_err(json_error)?;
        line.extend_from_slice(b",\"policy\":");
        serde_json::to_writer(&mut line, record.decision.policy()).map_err(json_error)?;
        line.extend_from_slice(b",\"policy_version\":");
        serde_json::to_writer(&mut line, record.decision.policy_version()).map_err(json_error)?;
        line.extend_from_slice(b",\"clause\":");
        serde_json::to_writer(&mut line, &record.decision.clause()).map_err(json_error)?;
        line.extend_from_slice(b"}\n");
        templates.insert(key, line);
        Ok(true)
    }

    /// The template key of a plain check's record, registering the template when this
    /// shard has not seen the access; `None` for a record written in full. A what-if
    /// keeps its mark, which a compact record has no room for; a request naming its
    /// collection time or sessions would make a template of nearly every check.
    fn check_template(
        &self,
        checked: &mut Vec<CheckTemplate>,
        record: &AuditRecord<'_>,
    ) -> Result<Option<u64>, AuditError> {
        let request = record.request;
        if record.decision.what_if
            || request.at.is_some()
            || request.collected_at.is_some()
            || request.collected_session.is_some()
            || request.session.is_some()
        {
            return Ok(None);
        }
        // Most recent first: a service asks for few accesses, and again and again.
        if let Some(found) = checked.iter().rev().find(|t| t.stands_for(record)) {
            return Ok(Some(found.key));
        }
        let key = crate::guard::next_template_key();
        if !self.register(key, record)? {
            return Ok(None);
        }
        if checked.len() >= KNOWN_PER_SHARD {
            checked.remove(0);
        }
        let decision = record.decision;
        checked.push(CheckTemplate {
            key,
            request: request.for_subject("").into_owned(),
            policy: decision.policy().into(),
            policy_version: decision.policy_version().into(),
            clause: decision.clause().map(Into::into),
        });
        Ok(Some(key))
    }

    fn fail(&self, message: String) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(message);
        }
        self.failed.store(true, Ordering::Release);
        for shard in &self.shards {
            // Take the lock so that no waiter misses the notification.
            let _state = shard.state.lock();
            shard.kept.notify_all();
        }
    }
}

fn json_error(e: serde_json::Error) -> AuditError {
    AuditError::new(format!("cannot serialise record: {e}"))
}

/// The compact entry of a decision of template `key`: the subject copied into the
/// batch's subjects, the rest as values. Nothing is formatted here.
fn push_compact(batch: &mut Batch, key: u64, subject: &str, decision: &Decision<'_>) {
    let start = batch.subjects.len();
    batch.subjects.push_str(subject);
    batch.bytes += COMPACT_BYTES + subject.len();
    batch.entries.push(Entry::Compact {
        key,
        start,
        end: batch.subjects.len(),
        code: decision.code,
        at: decision.at,
        basis: decision.basis,
    });
}

/// `[K,"<pseudonym>","code",at]` or with `,"basis"` on an allow.
fn write_compact(
    out: &mut Vec<u8>,
    time: &mut TimeText,
    key: u64,
    pseudonym: &[u8],
    code: ReasonCode,
    at: i64,
    basis: Option<LegalBasis>,
) {
    out.push(b'[');
    push_u64(out, key);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(pseudonym);
    out.extend_from_slice(b"\",\"");
    out.extend_from_slice(code.as_str().as_bytes());
    out.extend_from_slice(b"\",");
    if time.at != at {
        time.text.clear();
        if at < 0 {
            time.text.push(b'-');
        }
        push_u64(&mut time.text, at.unsigned_abs());
        time.at = at;
    }
    out.extend_from_slice(&time.text);
    if let Some(basis) = basis {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(basis.as_str().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"]\n");
}

/// `{"record":…}` with the pseudonym wherever the record held the subject.
fn write_full(out: &mut Vec<u8>, record: &mut OwnedAuditRecord, pseudonym: &str) -> Result<(), String> {
    record.pseudonymise(pseudonym);
    out.extend_from_slice(b"{\"record\":");
    serde_json::to_writer(&mut *out, &*record).map_err(|e| format!("cannot serialise record: {e}"))?;
    out.extend_from_slice(b"}\n");
    Ok(())
}

fn push_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn lock_file(path: &Path, shown: &str) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| AuditError::io(format!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AuditError::new(format!(
            "audit log {shown} is already open for writing, by another process or another log in this one: \
             two writers would fork its chain"
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(AuditError::io(format!("cannot lock {}", path.display()), e)),
    }
}

impl AuditSink for AuditLog {
    fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        let (shard, generation) = self.put(record)?;
        match self.shared.options.durability {
            Durability::Synced => self.shared.wait(shard, self.shared.lock(shard)?, generation),
            Durability::Buffered { .. } => Ok(()),
        }
    }

    fn record_deferred(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        self.put(record).map(drop)
    }

    fn record_prepared(&self, template: &AccessRequest<'_>, decision: &Decision<'_>) -> Result<(), AuditError> {
        let (shard, generation) = self.put_prepared(template, decision)?;
        match self.shared.options.durability {
            Durability::Synced => self.shared.wait(shard, self.shared.lock(shard)?, generation),
            Durability::Buffered { .. } => Ok(()),
        }
    }

    fn record_prepared_deferred(
        &self,
        template: &AccessRequest<'_>,
        decision: &Decision<'_>,
    ) -> Result<(), AuditError> {
        self.put_prepared(template, decision).map(drop)
    }

    fn commit(&self) -> Result<(), AuditError> {
        let index = THREAD_NUMBER.with(|n| *n) % SHARDS;
        let shard = self.shared.shards.get(index).ok_or_else(|| AuditError::new("no shard"))?;
        let state = self.shared.lock(shard)?;
        let target = if state.buffer.is_empty() { state.generation.saturating_sub(1) } else { state.generation };
        self.shared.wait(shard, state, target)
    }

    fn defers_records(&self) -> bool {
        self.shared.options.durability == Durability::Synced
    }
}

impl Drop for AuditLog {
    /// Commits what is pending and stops the writer.
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.dir)
            .field("durability", &self.shared.options.durability)
            .finish_non_exhaustive()
    }
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    next_segment: u64,
    /// The open segment, its length and when it was created.
    file: Option<(File, u64, Instant)>,
    head: Head,
    /// Templates written to the open segment.
    written: HashSet<u64>,
    out: Vec<u8>,
    spare: Vec<Batch>,
    head_file: Option<File>,
    /// The last decision time written, as text: records of the same millisecond (most,
    /// at a million a second) copy it instead of formatting it again.
    time: TimeText,
    /// How many threads may compute a large batch's pseudonyms.
    threads: usize,
    /// Pseudonyms of earlier batches, by subject, valid while the keys'
    /// `destructions` stays `cached_at`.
    cache: HashMap<Box<str>, [u8; 32]>,
    cached_at: Option<u64>,
}

impl Writer {
    fn run(mut self) {
        let interval = match self.shared.options.durability {
            Durability::Synced => Duration::from_millis(50),
            Durability::Buffered { within } => (within / 2).max(Duration::from_micros(100)),
        };
        loop {
            let stopping = self.shared.stop.load(Ordering::Acquire);
            let started = Instant::now();
            let taken = self.take();
            if taken.is_empty() {
                if stopping {
                    return;
                }
                std::thread::park_timeout(interval);
                continue;
            }
            let mut taken = taken;
            if let Err(e) = self.commit(&mut taken) {
                // Whatever was formatted of the batch is not written.
                self.out.clear();
                self.shared.fail(e);
                return;
            }
            self.publish(taken);
            if let Durability::Buffered { .. } = self.shared.options.durability {
                if !stopping {
                    std::thread::park_timeout(interval.saturating_sub(started.elapsed()));
                }
            }
        }
    }

    /// Takes every shard's buffer.
    fn take(&mut self) -> Vec<Taken> {
        let mut taken = Vec::new();
        for (index, shard) in self.shared.shards.iter().enumerate() {
            let Ok(mut state) = shard.state.lock() else { continue };
            if state.buffer.is_empty() {
                continue;
            }
            let fresh = self.spare.pop().unwrap_or_default();
            let batch = std::mem::replace(&mut state.buffer, fresh);
            let generation = state.generation;
            state.generation = generation.saturating_add(1);
            let keys = std::mem::take(&mut state.keys);
            state.last_key = None;
            drop(state);
            // Waiters on a full queue may go on.
            shard.kept.notify_all();
            taken.push(Taken { shard: index, generation, batch, keys });
        }
        taken
    }

    fn publish(&mut self, taken: Vec<Taken>) {
        for Taken { shard: index, generation, mut batch, .. } in taken {
            if let Some(shard) = self.shared.shards.get(index) {
                if let Ok(mut state) = shard.state.lock() {
                    state.durable = state.durable.max(generation);
                }
                shard.kept.notify_all();
            }
            batch.clear();
            if batch.subjects.capacity() <= self.shared.options.shard_bytes.saturating_mul(2) {
                self.spare.push(batch);
            }
        }
    }

    /// The pseudonym of each entry of the batch, in order, as 32 hex digits: from the
    /// pseudonyms kept from earlier batches, and for the other subjects from one call
    /// to the subject keys. Fails (and nothing of the batch is written) when the keys
    /// cannot be had: a record is never written with a plain id.
    fn pseudonyms(&mut self, taken: &[Taken]) -> Result<Vec<[u8; 32]>, String> {
        // Pseudonyms kept from earlier batches stand while no key has been destroyed
        // since: the keys say so (`destructions`), read before they are asked, so a
        // destruction racing this batch drops the cache at the next one.
        let destructions = self.shared.subject_keys.destructions();
        if destructions.is_none() || destructions != self.cached_at {
            self.cache.clear();
        }
        self.cached_at = destructions;
        let entries: usize = taken.iter().map(|t| t.batch.entries.len()).sum();
        let mut pseudonyms = Vec::with_capacity(entries);
        // Entries whose subject is not kept: their place, and their subject.
        let mut missing: Vec<(usize, &str)> = Vec::new();
        for batch in taken {
            for entry in &batch.batch.entries {
                let subject = match entry {
                    Entry::Compact { start, end, .. } => batch.batch.subjects.get(*start..*end).unwrap_or_default(),
                    Entry::Full(record) => &record.request.subject,
                };
                match self.cache.get(subject) {
                    Some(known) => pseudonyms.push(*known),
                    None => {
                        missing.push((pseudonyms.len(), subject));
                        pseudonyms.push([0u8; 32]);
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(pseudonyms);
        }
        // One HMAC per distinct subject: sized for every entry a distinct subject, so
        // the index never grows (a rehash of thousands costs the writer more).
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(missing.len());
        let mut asked: Vec<&str> = Vec::new();
        let slots: Vec<usize> = missing
            .iter()
            .map(|(_, subject)| {
                *index.entry(subject).or_insert_with(|| {
                    asked.push(subject);
                    asked.len() - 1
                })
            })
            .collect();
        let fresh = self.compute_pseudonyms(&asked)?;
        for ((place, _), slot) in missing.iter().zip(slots) {
            if let (Some(out), Some(text)) = (pseudonyms.get_mut(*place), fresh.get(slot)) {
                *out = *text;
            }
        }
        if destructions.is_some() {
            if self.cache.len().saturating_add(asked.len()) > PSEUDONYM_CACHE {
                self.cache.clear();
            }
            for (subject, text) in asked.iter().zip(&fresh) {
                self.cache.insert(Box::from(*subject), *text);
            }
        }
        Ok(pseudonyms)
    }

    /// The pseudonyms of `subjects` (distinct), as 32 hex digits, from one call to the
    /// subject keys.
    fn compute_pseudonyms(&self, subjects: &[&str]) -> Result<Vec<[u8; 32]>, String> {
        let keys = self.shared.subject_keys.keys_for(subjects).map_err(|e| format!("cannot get subject keys: {e}"))?;
        if keys.len() != subjects.len() {
            return Err(format!("the subject keys gave {} keys for {} subjects", keys.len(), subjects.len()));
        }
        let mut pseudonyms = vec![[0u8; 32]; subjects.len()];
        let work = |subjects: &[&str], keys: &[crate::keys::SubjectKey], out: &mut [[u8; 32]]| {
            for ((subject, key), text) in subjects.iter().zip(keys).zip(out) {
                hex::encode_to_slice(Pseudonym::of(key, subject).as_bytes(), text)
                    .map_err(|e| format!("pseudonym: {e}"))?;
            }
            Ok::<(), String>(())
        };
        // An HMAC per distinct subject is most of a large batch's cost, and a synced
        // batch's caller waits for it: large batches spread it over the cores (the
        // callers waiting leave theirs idle). Never on a checking thread.
        let threads = self.threads.min(subjects.len() / PARALLEL_SUBJECTS).max(1);
        if threads == 1 {
            work(subjects, &keys, &mut pseudonyms)?;
        } else {
            let chunk = subjects.len().div_ceil(threads);
            let all_spawned = std::thread::scope(|scope| {
                let mut handles = Vec::with_capacity(threads);
                let mut all_spawned = true;
                let parts = subjects.chunks(chunk).zip(keys.chunks(chunk)).zip(pseudonyms.chunks_mut(chunk));
                for ((subjects, keys), out) in parts {
                    // `spawn_scoped` on a Builder returns an error where `spawn` would
                    // panic (and a writer that panicked would leave callers waiting).
                    let spawned = std::thread::Builder::new()
                        .name("consent-guard-audit-hmac".into())
                        .spawn_scoped(scope, move || work(subjects, keys, out));
                    match spawned {
                        Ok(handle) => handles.push(handle),
                        Err(_) => all_spawned = false,
                    }
                }
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().unwrap_or_else(|_| Err("pseudonym thread panicked".into())))
                    .map(|()| all_spawned)
            })?;
            // A thread the system would not give: every pseudonym on this thread.
            if !all_spawned {
                work(subjects, &keys, &mut pseudonyms)?;
            }
        }
        Ok(pseudonyms)
    }

    /// Writes one batch and its commit line, fsyncs, and writes the head file.
    fn commit(&mut self, taken: &mut [Taken]) -> Result<(), String> {
        // Keys first: if they cannot be had, nothing of the batch is written, and no
        // segment is opened for it.
        let pseudonyms = self.pseudonyms(taken)?;
        let mut pseudonyms = pseudonyms.iter();
        let rotate = match &self.file {
            None => true,
            Some((_, len, created)) => {
                *len >= self.shared.options.segment_bytes || created.elapsed() >= self.shared.options.segment_age
            }
        };
        if rotate {
            self.open_segment()?;
        }
        let mut records = 0u64;
        {
            let templates = self.shared.templates.lock().map_err(|_| "template registry poisoned".to_owned())?;
            for batch in taken.iter_mut() {
                // A template's line comes before the first batch that names it.
                for key in &batch.keys {
                    if self.written.insert(*key) {
                        let Some(template) = templates.get(key) else {
                            return Err(format!("template {key} was never registered"));
                        };
                        self.out.extend_from_slice(b"{\"template\":");
                        push_u64(&mut self.out, *key);
                        self.out.push(b',');
                        self.out.extend_from_slice(template);
                    }
                }
                let Batch { entries, .. } = &mut batch.batch;
                for entry in entries.iter_mut() {
                    let pseudonym = pseudonyms.next().ok_or("a record without a pseudonym")?;
                    match entry {
                        Entry::Compact { key, code, at, basis, .. } => {
                            write_compact(&mut self.out, &mut self.time, *key, pseudonym, *code, *at, *basis);
                        }
                        Entry::Full(record) => {
                            let text = std::str::from_utf8(pseudonym).map_err(|e| format!("pseudonym: {e}"))?;
                            write_full(&mut self.out, record, text)?;
                        }
                    }
                }
                records += entries.len() as u64;
            }
        }
        let seq = self.head.seq.checked_add(records).ok_or_else(|| "audit log is full".to_owned())?;
        let mut hasher = Sha256::new();
        hasher.update(&self.out);
        let start = self.out.len();
        self.out.extend_from_slice(b"{\"commit\":");
        push_u64(&mut self.out, seq);
        self.out.extend_from_slice(b",\"records\":");
        push_u64(&mut self.out, records);
        self.out.extend_from_slice(b",\"prev\":\"");
        self.out.extend_from_slice(self.head.hash.as_bytes());
        self.out.push(b'"');
        hasher.update(self.out.get(start..).unwrap_or_default());
        let hash = hex(&hasher.finalize());
        self.out.extend_from_slice(segment::HASH_MARK);
        self.out.extend_from_slice(hash.as_bytes());
        self.out.extend_from_slice(b"\"}\n");
        let Some((file, len, _)) = &mut self.file else { return Err("no open segment".into()) };
        if let Err(e) = file.write_all(&self.out) {
            // Whatever part reached the file is an uncommitted tail, cut at the next open.
            return Err(format!("cannot write the audit log: {e}"));
        }
        file.sync_data().map_err(|e| format!("cannot sync the audit log: {e}"))?;
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        *len = len.saturating_add(self.out.len() as u64);
        self.shared.bytes.fetch_add(self.out.len() as u64, Ordering::Relaxed);
        self.out.clear();
        self.head = Head { seq, hash };
        if let Ok(mut head) = self.shared.head.lock() {
            head.clone_from(&self.head);
        }
        self.shared.records.fetch_add(records, Ordering::Relaxed);
        self.shared.commits.fetch_add(1, Ordering::Release);
        self.write_head();
        Ok(())
    }

    /// Creates the next segment and puts its header at the start of the next batch.
    fn open_segment(&mut self) -> Result<(), String> {
        let number = self.next_segment;
        let path = self.dir.join(segment::segment_name(number));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        // The new file's name must survive a power failure with its contents.
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| format!("cannot sync the log directory: {e}"))?;
        self.next_segment = number.saturating_add(1);
        self.file = Some((file, 0, Instant::now()));
        self.written.clear();
        let header = format!(
            "{{\"segment\":{number},\"format\":\"{FORMAT}\",\"seq\":{},\"prev\":\"{}\"}}\n",
            self.head.seq, self.head.hash
        );
        self.out.extend_from_slice(header.as_bytes());
        self.shared.segments.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The head file: `SEQ:HASH`, written over the previous one in place (it only
    /// grows, as the record count does). Not fsynced, and not written aside and
    /// renamed, which costs a file creation per commit: it is a convenience copy, the
    /// log itself is the record.
    fn write_head(&mut self) {
        use std::io::{Seek, SeekFrom};
        if self.head_file.is_none() {
            self.head_file =
                OpenOptions::new().create(true).truncate(true).write(true).open(self.dir.join("head")).ok();
        }
        let line = format!("{}\n", self.head);
        let written = self
            .head_file
            .as_mut()
            .map(|file| file.seek(SeekFrom::Start(0)).and_then(|_| file.write_all(line.as_bytes())));
        if let Some(Err(_)) = written {
            self.head_file = None;
        }
    }
}
