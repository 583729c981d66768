//! Consent where the data lives: one kind of access compiled into a filter over rows,
//! with a consent snapshot the guard computes, so that SQL and Arrow users filter
//! tables and training sets without re-implementing the policy.
//!
//! - [`Guard::filter`] compiles a [`FilterSpec`] (an [`AccessRequest`] without its
//!   subject, and a [`RowFacts`] naming the row's columns) into a [`Filter`], or names
//!   what it cannot compile ([`FilterError`]).
//! - [`Guard::snapshot`] decides the filter once per subject the guard knows, at one
//!   time, through the guard's own prepared checks: a [`Snapshot`] of
//!   [`SnapshotEntry`] (16 bytes a subject beside its id: three codes, the cutoff of
//!   the subject's ends, `until`), the answer for subjects it does not hold, and a
//!   [`Watermark`] (store position and time).
//!   [`Snapshot::refresh`] re-decides only the subjects named by the store's events
//!   since the watermark, and those whose answer changes by the clock alone (an
//!   erasure in a store that forgets names no subject: the snapshot is rebuilt).
//! - Erased subjects the store forgot (issue 27) are known only by tombstone: the
//!   snapshot hashes an id it does not hold against them, and its answer for consumers
//!   that cannot hash ([`Snapshot::unknown`]) fails closed when there are some.
//! - [`Filter::apply`] opens an [`Application`] at a time T: it fails closed when the
//!   snapshot is older than `max_staleness`, unless applied as a [`Apply::Replay`].
//!   [`Application::code`] answers one row; the Arrow kernel and the SQL fragment of
//!   `consent-guard-filter` answer the same from the same snapshot.
//! - [`Application::finish`] writes one [`FilterRecord`] to the guard's audit sink:
//!   rows in, rows allowed and counts by reason code, not one record per row.
//!
//! Only row facts become column tests: retention against the row's collection time
//! (or session), and the row's collection time against the subject's cutoff, the
//! latest end of the purpose whose `retention_after_end` has run out. Everything else
//! is the guard's answer per subject. A row's answer is `entry.ended` when the subject
//! has a cutoff and the row was not collected after it (nor carries a time at or
//! before T), else `entry.fresh` when the row passes its fact test and `entry.stale`
//! when it does not, all computed by the guard with the facts set each way; a row whose
//! subject's entry changes by the clock before T (`entry.until <= T`) is denied with
//! `consent_state_unavailable` until the snapshot is refreshed. See
//! `docs/filters.md`, "Ends of a purpose".
//!
//! ```
//! use consent_guard::filter::{Apply, Counts, FilterSpec, RowFacts};
//! use consent_guard::{AccessRequest, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose, ReasonCode};
//!
//! let clock = FixedClock::new("2026-03-01T00:00:00Z".parse()?);
//! let guard = Guard::builder(Policy::from_toml_file("examples/policies/exmo.toml")?).clock(clock).build()?;
//! let grant = r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;
//! guard.record(&serde_json::from_str(grant)?)?;
//! let training = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
//!     .deidentification(Deidentification::Anonymized);
//! let filter = guard.filter(FilterSpec::new(training, RowFacts::new("user_id").collected_at("ts")))?;
//! let snapshot = guard.snapshot(&filter)?;
//! let application = filter.apply(&snapshot, guard_now(), Apply::Live)?;
//! let collected = "2026-02-20T00:00:00Z".parse::<chrono::DateTime<chrono::Utc>>()?.timestamp_millis();
//! assert_eq!(application.code(Some("u1"), Some(collected), None), ReasonCode::ConsentGiven);
//! assert_eq!(application.code(Some("u2"), Some(collected), None), ReasonCode::ConsentMissing);
//! # fn guard_now() -> chrono::DateTime<chrono::Utc> { "2026-03-01T00:00:00Z".parse().unwrap_or_default() }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it differs from per-access audit
//!
//! [`Guard::check`] writes one record per access, naming the subject. A filter
//! application writes one [`FilterRecord`] for the whole set of rows, naming no
//! subject: which filter, which policy version, which snapshot (watermark), how many
//! rows came in, how many were allowed and how many were denied for each reason. To
//! prove later which subjects a given build excluded and why, keep the
//! [`ExcludedSubjects`] the application collected beside the record (its
//! `record_id` ties them together).

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::consent::state::{Lookup, SubjectView, Unavailable, GROUP};
use crate::decision::ReasonCode;
use crate::error::{AuditError, StoreError};
use crate::guard::Guard;
use crate::policy::Retention;
use crate::request::{AccessRequest, Action};

/// Which columns of a row hold its subject and its facts. Names are the table's or
/// the batch's own; SQL quotes them, Arrow looks them up in the schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RowFacts {
    /// The column holding the subject id.
    pub subject: String,
    /// The column holding when the row was collected (a timestamp), if any.
    pub collected_at: Option<String>,
    /// The column holding the session that collected the row, if any.
    pub collected_session: Option<String>,
}

impl RowFacts {
    /// Rows whose subject id is in `subject_column`, with no row facts.
    pub fn new(subject_column: impl Into<String>) -> RowFacts {
        RowFacts { subject: subject_column.into(), collected_at: None, collected_session: None }
    }

    /// The column holding the row's collection time.
    #[must_use]
    pub fn collected_at(mut self, column: impl Into<String>) -> RowFacts {
        self.collected_at = Some(column.into());
        self
    }

    /// The column holding the session that collected the row.
    #[must_use]
    pub fn collected_session(mut self, column: impl Into<String>) -> RowFacts {
        self.collected_session = Some(column.into());
        self
    }
}

/// Everything a filter is compiled from: the access (an [`AccessRequest`] whose
/// subject is not used) and the row description.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FilterSpec<'a> {
    /// The access; its subject is ignored, its `at` must be absent (a filter decides
    /// at the time it is applied), and row facts come from the row, not from here.
    pub template: AccessRequest<'a>,
    /// The row description.
    pub rows: RowFacts,
    /// How old a snapshot may be when applied live ([`Apply::Live`]): 1 s unless set.
    pub max_staleness: std::time::Duration,
}

impl<'a> FilterSpec<'a> {
    /// A spec with the default `max_staleness` (1 s).
    pub fn new(template: AccessRequest<'a>, rows: RowFacts) -> FilterSpec<'a> {
        FilterSpec { template, rows, max_staleness: crate::guard::DEFAULT_MAX_STALENESS }
    }

    /// How old a snapshot may be when applied live.
    #[must_use]
    pub fn max_staleness(mut self, max_staleness: std::time::Duration) -> FilterSpec<'a> {
        self.max_staleness = max_staleness;
        self
    }
}

/// What cannot be compiled or applied; every error leaves the rows unreleased.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A column name that no query could quote safely.
    #[error("row description: the {fact} column `{column}`: {problem}")]
    Column {
        /// Which fact (`subject`, `collected_at`, `collected_session`).
        fact: &'static str,
        /// The name given (the escaped debug form).
        column: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The template fixes what the rows are said to carry.
    #[error(
        "the template sets `{field}`, which the filter reads from the row's `{column}` column: set one or the other"
    )]
    FactTwice {
        /// The template's field.
        field: &'static str,
        /// The row's column.
        column: String,
    },
    /// The rule limits retention, and the row description names no column for it.
    #[error(
        "the rule keeps data {limit}, and the row description names no `{fact}` column (nor does the template set it)"
    )]
    MissingFact {
        /// The fact the rule needs.
        fact: &'static str,
        /// The rule's retention.
        limit: String,
    },
    /// The template names a time.
    #[error("the template sets `at`: a filter decides at the time it is applied (`Filter::apply`)")]
    TemplateTime,
    /// A deletion is not filtered: whether one is due turns on each row's collection
    /// time against the subject's ends and retention (issue 27), which a snapshot
    /// entry does not hold. `Guard::owed` lists what is due; `Guard::check` decides a
    /// row.
    #[error("the template's action is `delete`: deletions are listed by `Guard::owed` and decided per row by `Guard::check`, not filtered")]
    Deletion,
    /// The snapshot belongs to another filter or policy.
    #[error("the snapshot was built for another filter or policy version")]
    SnapshotMismatch,
    /// The snapshot is older than the filter allows.
    #[error("the snapshot is {age_ms} ms old at the time applied, more than max_staleness ({max_ms} ms): refresh it, or apply it as a replay")]
    Stale {
        /// Its age at the time applied.
        age_ms: i64,
        /// The filter's bound.
        max_ms: i64,
    },
    /// The time applied is before the snapshot's.
    #[error("applied at {at}, before the snapshot's time {snapshot}: a snapshot does not answer for the past")]
    BeforeSnapshot {
        /// The time applied.
        at: DateTime<Utc>,
        /// The snapshot's time.
        snapshot: DateTime<Utc>,
    },
    /// The guard's consent state cannot be read.
    #[error("the consent state cannot be read: {0}")]
    Unavailable(&'static str),
    /// The store's events could not be read.
    #[error("reading the store's events: {0}")]
    Store(#[from] StoreError),
    /// The audit record could not be kept.
    #[error("the filter application could not be audited: {0}")]
    Audit(#[from] AuditError),
}

/// The test a row's facts must pass for the row to be answered by the subject's
/// `fresh` code (else its `stale` code).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "test", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RowTest {
    /// No row fact matters: every row of a subject gets `fresh`.
    None,
    /// `T - limit_ms <= collected_at <= T`, in whole milliseconds (the guard's
    /// reading); a row without a collection time fails.
    CollectedWithin {
        /// The column.
        column: String,
        /// The retention limit, in milliseconds.
        limit_ms: i64,
    },
    /// `collected_session = session`, a session that is not empty; a row without one
    /// fails.
    SameSession {
        /// The column.
        column: String,
        /// The request's session (`None`: no row passes).
        #[serde(skip)]
        session: Option<String>,
    },
    /// The template's own facts decide, the same for every row.
    Fixed {
        /// Whether every row passes.
        passes: bool,
    },
}

/// A compiled filter: what [`Guard::filter`] returns.
#[derive(Clone, Debug)]
pub struct Filter {
    template: AccessRequest<'static>,
    rows: RowFacts,
    test: RowTest,
    max_staleness_ms: i64,
    policy_name: String,
    policy_version: String,
    /// Ties snapshots to the filter they were decided for.
    key: u64,
}

/// How [`Filter::apply`] treats the snapshot's age.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Apply {
    /// An application now: a snapshot older than `max_staleness` is an error.
    Live,
    /// A deliberate replay with an old snapshot (rebuilding a past training set): no
    /// staleness bound, and the audit record says so.
    Replay,
}

/// The store position and time a snapshot reflects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Watermark {
    /// Every store event up to this position is reflected (0 without a store).
    pub position: u64,
    /// The time the snapshot answers for (the guard's clock when it was decided).
    pub at: DateTime<Utc>,
}

/// One subject's answers in a snapshot: 16 bytes (`until`, and one word packing the
/// three codes with the cutoff of the subject's ends).
///
/// A row of the subject at T is answered:
///
/// ```text
/// T >= until                                   → consent_state_unavailable (refresh)
/// an end, and the row not collected in (cutoff, T] → ended    (a missing time is not after it)
/// the row passes the filter's row test        → fresh
/// otherwise                                   → stale
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SnapshotEntry {
    until: i64,
    // INVARIANT: bits 0-4, 5-9 and 10-14 hold the indexes in `ReasonCode::ALL` of
    // `fresh`, `stale` and `ended` (25 codes: 5 bits each); bits 16-63 the cutoff, a
    // signed 48-bit count of milliseconds: `NO_END` (its least value) when no end
    // bears on the subject's rows, `EVERY_ROW` (its greatest) when every row takes
    // `ended`. 48 bits reach the years -2492 to 6432; a cutoff outside them is moved
    // so that more rows take `ended`, never fewer (`SnapshotEntry::new`).
    packed: u64,
}

/// The cutoff of a subject no end bears on.
const NO_END: i64 = -(1 << 47);
/// The cutoff past which every row is collected up to the end.
const EVERY_ROW: i64 = (1 << 47) - 1;

impl SnapshotEntry {
    fn new(until: i64, fresh: ReasonCode, stale: ReasonCode, ended: Option<(i64, ReasonCode)>) -> SnapshotEntry {
        let (cutoff, ended_code) = match ended {
            None => (NO_END, stale),
            // Clamped the strict way: a cutoff below the range is raised (rows collected
            // in between take `ended` too), one above it ends every row.
            Some((cutoff, code)) => (cutoff.clamp(NO_END + 1, EVERY_ROW), code),
        };
        let codes = (fresh as u64) | ((stale as u64) << 5) | ((ended_code as u64) << 10);
        SnapshotEntry { until, packed: ((cutoff as u64) << 16) | codes }
    }

    #[inline]
    fn code_at(&self, shift: u32) -> ReasonCode {
        let index = ((self.packed >> shift) & 0x1f) as usize;
        // INVARIANT above: always a code's index; a corrupt one fails closed.
        ReasonCode::ALL.get(index).copied().unwrap_or(ReasonCode::ConsentStateUnavailable)
    }

    #[inline]
    fn cutoff(&self) -> i64 {
        // An arithmetic shift: the 48-bit cutoff, sign-extended.
        (self.packed as i64) >> 16
    }

    /// The answer for a row that passes the filter's [`RowTest`] (and was not
    /// collected up to an end, see [`SnapshotEntry::ended`]).
    pub fn fresh(&self) -> ReasonCode {
        self.code_at(0)
    }

    /// The answer for a row that fails it (and was not collected up to an end).
    pub fn stale(&self) -> ReasonCode {
        self.code_at(5)
    }

    /// When an `end` of the purpose has run out its `retention_after_end` for this
    /// subject by the snapshot's time, and the rows carry their collection time: the
    /// cutoff (milliseconds since the epoch, the latest such end; `i64::MAX` for one
    /// beyond the years an entry holds, every row ended) and the answer for a row
    /// collected at or before it, without a collection time, or with one after T,
    /// whether or not it passes the row test. `None`: no end bears on the rows.
    pub fn ended(&self) -> Option<(i64, ReasonCode)> {
        match self.cutoff() {
            NO_END => None,
            EVERY_ROW => Some((i64::MAX, self.code_at(10))),
            cutoff => Some((cutoff, self.code_at(10))),
        }
    }

    /// The first instant (milliseconds since the epoch) at which the subject's answer
    /// may change by the clock alone (an expiry, a birthday, an event dated later, an
    /// end's `retention_after_end` running out); `i64::MAX` for never.
    pub fn until_millis(&self) -> i64 {
        self.until
    }

    /// The answer at `at_ms` for a row that passes the row test (`passes`) or not,
    /// collected at `collected_at_ms` (whole milliseconds); an entry past its `until`
    /// answers `consent_state_unavailable`.
    #[inline]
    pub fn code(&self, passes: bool, collected_at_ms: Option<i64>, at_ms: i64) -> ReasonCode {
        if at_ms >= self.until {
            return ReasonCode::ConsentStateUnavailable;
        }
        let cutoff = self.cutoff();
        if cutoff != NO_END {
            // The guard reads a collection time after T as unknown, and an unknown one
            // as not after the end.
            let after = collected_at_ms.is_some_and(|c| c > cutoff && c <= at_ms) && cutoff != EVERY_ROW;
            if !after {
                return self.code_at(10);
            }
        }
        if passes {
            self.fresh()
        } else {
            self.stale()
        }
    }
}

impl fmt::Debug for SnapshotEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotEntry")
            .field("until", &self.until)
            .field("fresh", &self.fresh())
            .field("stale", &self.stale())
            .field("ended", &self.ended())
            .finish()
    }
}

/// A seeded multiply-fold hasher (as in foldhash) for the snapshot's index: subject
/// ids are chosen by users, so the seed is per process.
#[derive(Clone, Copy)]
pub struct SubjectHasher {
    seed: u64,
}

impl SubjectHasher {
    fn new() -> SubjectHasher {
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u64(0x9e37_79b9_7f4a_7c15);
        SubjectHasher { seed: random.finish() | 1 }
    }
}

impl fmt::Debug for SubjectHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectHasher")
    }
}

impl BuildHasher for SubjectHasher {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { seed: self.seed, acc: self.seed.rotate_left(17) }
    }
}

/// The hasher of [`SubjectHasher`]. Its `Debug` prints no key.
pub struct FoldHasher {
    seed: u64,
    acc: u64,
}

impl fmt::Debug for FoldHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FoldHasher")
    }
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.acc = fold(self.acc ^ u64::from_le_bytes(word), self.seed ^ 0xa076_1d64_78bd_642f);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            for (slot, byte) in word.iter_mut().zip(rest) {
                *slot = *byte;
            }
            self.acc = fold(self.acc ^ u64::from_le_bytes(word), self.seed ^ 0xe703_7ed1_a0b4_28db);
        }
        self.acc = self.acc.wrapping_add(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.acc = fold(self.acc ^ u64::from(byte), self.seed ^ 0x8ebc_6af0_9c88_c6e3);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold(self.acc, self.seed ^ 0x5899_65cc_7537_4cc3)
    }
}

/// The snapshot's subjects: every id end to end in one arena, their entries in a
/// vector, and an open-addressed table (linear probing, at most 7/8 full) of slots
/// `(hash >> 32) << 32 | (index + 1)` (0: empty). About 13 bytes of table, 4 of
/// offset and the 16-byte entry a subject beside its id, where a map of boxed ids
/// costs an allocation, a pointer and a length besides (issue 25, the memory target).
struct Subjects {
    hasher: SubjectHasher,
    // INVARIANT: `starts` has one more element than `entries`, starts at 0 and never
    // decreases; id `i` is `arena[starts[i]..starts[i + 1]]`, a whole `&str`.
    arena: String,
    starts: Vec<u32>,
    entries: Vec<SnapshotEntry>,
    // INVARIANT: a power of two, at least 8 long, with more empty slots than an eighth
    // of it: every probe sequence reaches an empty slot.
    slots: Vec<u64>,
}

impl Subjects {
    fn with_capacity(subjects: usize) -> Subjects {
        // (Capped: more subjects than that do not fit in memory; `insert` grows it.)
        let mut slots = 8usize;
        while slots / 8 * 7 <= subjects && slots < 1 << 40 {
            slots *= 2;
        }
        let mut starts = Vec::with_capacity(subjects.saturating_add(1));
        starts.push(0);
        Subjects {
            hasher: SubjectHasher::new(),
            arena: String::with_capacity(subjects.saturating_mul(12)),
            starts,
            entries: Vec::with_capacity(subjects),
            slots: vec![0; slots],
        }
    }

    #[inline]
    fn hash(&self, id: &str) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(id.as_bytes());
        hasher.finish()
    }

    #[inline]
    fn id(&self, index: usize) -> &str {
        let (Some(start), Some(end)) = (self.starts.get(index), self.starts.get(index.wrapping_add(1))) else {
            return "";
        };
        self.arena.get(*start as usize..*end as usize).unwrap_or("")
    }

    #[inline]
    fn find(&self, id: &str, hash: u64) -> Option<usize> {
        let mask = self.slots.len().wrapping_sub(1);
        let tag = hash >> 32;
        let mut at = hash as usize & mask;
        loop {
            let slot = *self.slots.get(at)?;
            if slot == 0 {
                return None;
            }
            if slot >> 32 == tag {
                let index = (slot as u32 as usize).wrapping_sub(1);
                if self.id(index) == id {
                    return Some(index);
                }
            }
            at = (at + 1) & mask;
        }
    }

    #[inline]
    fn get(&self, id: &str) -> Option<&SnapshotEntry> {
        self.find(id, self.hash(id)).and_then(|index| self.entries.get(index))
    }

    fn place(slots: &mut [u64], hash: u64, index: usize) {
        let mask = slots.len().wrapping_sub(1);
        let mut at = hash as usize & mask;
        while let Some(slot) = slots.get_mut(at) {
            if *slot == 0 {
                *slot = (hash >> 32) << 32 | (index as u64 + 1);
                return;
            }
            at = (at + 1) & mask;
        }
    }

    /// Sets `id`'s entry, adding the id if it is new.
    fn insert(&mut self, id: &str, entry: SnapshotEntry) -> Result<(), FilterError> {
        let hash = self.hash(id);
        if let Some(index) = self.find(id, hash) {
            if let Some(slot) = self.entries.get_mut(index) {
                *slot = entry;
            }
            return Ok(());
        }
        let index = self.entries.len();
        let too_many = FilterError::Unavailable("a snapshot holds at most 4 GiB of ids and 2^32 - 2 subjects");
        let end = u32::try_from(self.arena.len().saturating_add(id.len())).map_err(|_| too_many)?;
        if index >= u32::MAX as usize - 1 {
            return Err(FilterError::Unavailable("a snapshot holds at most 4 GiB of ids and 2^32 - 2 subjects"));
        }
        if (index + 1) > self.slots.len() / 8 * 7 {
            let mut slots = vec![0; self.slots.len().saturating_mul(2)];
            for old in 0..index {
                Subjects::place(&mut slots, self.hash(self.id(old)), old);
            }
            self.slots = slots;
        }
        self.arena.push_str(id);
        self.starts.push(end);
        self.entries.push(entry);
        Subjects::place(&mut self.slots, hash, index);
        Ok(())
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &SnapshotEntry)> + '_ {
        self.entries.iter().enumerate().map(|(index, entry)| (self.id(index), entry))
    }
}

/// Per subject at one time, the filter's answers, decided by the guard: what SQL and
/// Arrow join rows to. Its `Debug` prints counts, never subject ids.
pub struct Snapshot {
    key: u64,
    policy_version: String,
    entries: Subjects,
    unknown: SnapshotEntry,
    /// When the guard holds tombstones (ids its store forgot): the answers for them,
    /// and for a consumer that cannot tell them from unknown ids.
    erased: Option<Box<ErasedRows>>,
    watermark: Watermark,
    /// Subjects whose answer changes by the clock, soonest first.
    pending: BinaryHeap<Reverse<(i64, Box<str>)>>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("subjects", &self.entries.len())
            .field("unknown", &self.unknown)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

/// How a snapshot answers the ids of erased subjects its guard knows only by
/// tombstone: it cannot name them, so it hashes an unknown id (one HMAC) to tell.
struct ErasedRows {
    tombstones: std::sync::Arc<crate::consent::state::Tombstones>,
    /// The answers for a tombstoned id.
    entry: SnapshotEntry,
    /// The answers for an id not held, for a consumer that cannot hash it (SQL,
    /// Spark, Arrow metadata): where the unknown answer allows, the tombstoned one.
    blind: SnapshotEntry,
}

/// What a [`Snapshot::refresh`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refreshed {
    /// Store events read since the old watermark.
    pub events: usize,
    /// Subjects decided again.
    pub subjects: usize,
    /// Whether it rebuilt the whole snapshot (a guard without a store names no
    /// events to refresh from).
    pub rebuilt: bool,
}

impl Snapshot {
    /// The answers for one subject; for one it does not hold, the unknown subject's,
    /// or, when the guard's store forgot erased subjects and `subject` is one of them
    /// (its tombstone; one HMAC, only when there are tombstones), an erased subject's.
    #[inline]
    pub fn entry(&self, subject: &str) -> &SnapshotEntry {
        match self.entries.get(subject) {
            Some(entry) => entry,
            None => self.not_held(subject),
        }
    }

    /// The answers for an id the snapshot does not hold: a tombstoned id's when the
    /// guard's store forgot it (one HMAC, only when there are tombstones), else the
    /// unknown subject's.
    #[cold]
    fn not_held(&self, subject: &str) -> &SnapshotEntry {
        match &self.erased {
            Some(erased) if erased.tombstones.erased_at(subject).is_some() => &erased.entry,
            _ => &self.unknown,
        }
    }

    /// The entries of `N` subjects at once (`None` for a row without one), each what
    /// [`Snapshot::entry`] gives: the lookups go through the index in steps, each step's
    /// memory reads independent of one another, so that a large snapshot's cache misses
    /// overlap instead of waiting for each other.
    pub fn entries_of<'s, const N: usize>(&'s self, subjects: &[Option<&str>; N]) -> [Option<&'s SnapshotEntry>; N] {
        let index = &self.entries;
        let mask = index.slots.len().wrapping_sub(1);
        let mut hashes = [0u64; N];
        for (hash, subject) in hashes.iter_mut().zip(subjects) {
            if let Some(subject) = subject {
                *hash = index.hash(subject);
            }
        }
        // Step 1: the first slot of each probe sequence.
        let mut candidates = [usize::MAX; N];
        for (candidate, hash) in candidates.iter_mut().zip(&hashes) {
            let slot = index.slots.get(*hash as usize & mask).copied().unwrap_or(0);
            if slot != 0 && slot >> 32 == *hash >> 32 {
                *candidate = (slot as u32 as usize).wrapping_sub(1);
            }
        }
        // Step 2: where it holds a candidate, the candidate's id bounds.
        let mut bounds = [(0u32, 0u32); N];
        for (bound, candidate) in bounds.iter_mut().zip(&candidates) {
            if let (Some(start), Some(end)) =
                (index.starts.get(*candidate), index.starts.get(candidate.wrapping_add(1)))
            {
                *bound = (*start, *end);
            }
        }
        // Step 3: the id itself; step 4: the entry. A probe the first slot did not
        // settle goes the whole way (`Subjects::find`).
        let mut found = [None; N];
        for (((found, subject), candidate), (bound, hash)) in
            found.iter_mut().zip(subjects).zip(&candidates).zip(bounds.iter().zip(&hashes))
        {
            if let Some(subject) = subject {
                let same =
                    *candidate != usize::MAX && index.arena.get(bound.0 as usize..bound.1 as usize) == Some(*subject);
                let at = if same { Some(*candidate) } else { index.find(subject, *hash) };
                *found = Some(match at.and_then(|at| index.entries.get(at)) {
                    Some(entry) => entry,
                    None => self.not_held(subject),
                });
            }
        }
        found
    }

    /// The answers for subjects the snapshot does not hold, for a consumer that
    /// cannot hash ids (the SQL fragment, Spark, the Arrow metadata): what the guard
    /// gives a subject it does not know, except when its store forgot erased subjects
    /// (tombstones): an unknown id may then be one of theirs, so where the unknown
    /// answer would allow, this gives the erased subject's denial (fail closed).
    /// [`Snapshot::entry`] and [`Snapshot::entries_of`] tell the two apart.
    pub fn unknown(&self) -> &SnapshotEntry {
        match &self.erased {
            Some(erased) => &erased.blind,
            None => &self.unknown,
        }
    }

    /// Whether the guard's store forgot erased subjects, so that [`Snapshot::unknown`]
    /// may deny where the guard allows an id it does not know.
    pub fn has_tombstones(&self) -> bool {
        self.erased.is_some()
    }

    /// The store position and time reflected.
    pub fn watermark(&self) -> Watermark {
        self.watermark
    }

    /// The policy version decided under.
    pub fn policy_version(&self) -> &str {
        &self.policy_version
    }

    /// How many subjects it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bytes its subjects take on the heap: the ids, their offsets, the entries and
    /// the index's table (capacity, not length), not the few subjects waiting on the
    /// clock.
    pub fn heap_bytes(&self) -> usize {
        let subjects = &self.entries;
        subjects.arena.capacity()
            + subjects.starts.capacity() * std::mem::size_of::<u32>()
            + subjects.entries.capacity() * std::mem::size_of::<SnapshotEntry>()
            + subjects.slots.capacity() * std::mem::size_of::<u64>()
    }

    /// Whether it holds no subject.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// Every subject held and its answers, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SnapshotEntry)> + '_ {
        self.entries.iter()
    }

    /// Decides again, through `guard`, the subjects named by the store's events since
    /// the watermark and those whose answer changed by the clock since, and moves the
    /// watermark to the guard's position and clock. A guard without a store names no
    /// events: the snapshot is rebuilt whole.
    ///
    /// # Errors
    ///
    /// When `filter` is not the snapshot's, the store cannot be read, or the guard's
    /// state is unreadable.
    pub fn refresh(&mut self, guard: &Guard, filter: &Filter) -> Result<Refreshed, FilterError> {
        self.same_filter(guard, filter)?;
        let Some(store) = guard.consent_store() else {
            *self = guard.snapshot(filter)?;
            return Ok(Refreshed { events: 0, subjects: self.entries.len(), rebuilt: true });
        };
        // The guard's position first: what it has applied is what the decisions read,
        // and events past it are read below anyway (their subjects decided again).
        let through = guard.applied_through().ok_or(FilterError::Unavailable("guard poisoned by a panic"))?;
        if erased_since(store.as_ref(), self.watermark.position, through)? {
            return self.rebuild(guard, filter);
        }
        let (mut changed, mut events, mut after) = (Vec::new(), 0, self.watermark.position);
        while after < through {
            let batch = store.events_since(after, 4096)?;
            let Some((last, _)) = batch.last() else { break };
            after = *last;
            events += batch.len();
            changed.extend(batch.iter().map(|(_, event)| Box::<str>::from(event.subject())));
        }
        self.decide_again(guard, filter, through, changed, events)
    }

    /// As [`Snapshot::refresh`], reading the store from async code
    /// ([`ConsentStore::events_since_async`](crate::store::ConsentStore::events_since_async):
    /// a PostgreSQL store's I/O stays off the caller's runtime).
    ///
    /// # Errors
    ///
    /// As [`Snapshot::refresh`].
    pub async fn refresh_async(&mut self, guard: &Guard, filter: &Filter) -> Result<Refreshed, FilterError> {
        self.same_filter(guard, filter)?;
        let Some(store) = guard.consent_store() else {
            *self = guard.snapshot(filter)?;
            return Ok(Refreshed { events: 0, subjects: self.entries.len(), rebuilt: true });
        };
        let through = guard.applied_through().ok_or(FilterError::Unavailable("guard poisoned by a panic"))?;
        if erased_since_async(store.as_ref(), self.watermark.position, through).await? {
            return self.rebuild(guard, filter);
        }
        let (mut changed, mut events, mut after) = (Vec::new(), 0, self.watermark.position);
        while after < through {
            let batch = store.events_since_async(after, 4096).await?;
            let Some((last, _)) = batch.last() else { break };
            after = *last;
            events += batch.len();
            changed.extend(batch.iter().map(|(_, event)| Box::<str>::from(event.subject())));
        }
        self.decide_again(guard, filter, through, changed, events)
    }

    /// Rebuilds the whole snapshot: an erasure in the store since the watermark names
    /// no subject (its event was not kept), so every subject is decided again.
    fn rebuild(&mut self, guard: &Guard, filter: &Filter) -> Result<Refreshed, FilterError> {
        *self = guard.snapshot(filter)?;
        Ok(Refreshed { events: 0, subjects: self.entries.len(), rebuilt: true })
    }

    fn same_filter(&self, guard: &Guard, filter: &Filter) -> Result<(), FilterError> {
        if filter.key != self.key || guard.policy().version() != self.policy_version {
            return Err(FilterError::SnapshotMismatch);
        }
        Ok(())
    }

    /// Decides again the subjects named by events, and those whose answer changed by
    /// the clock, at the guard's clock; moves the watermark to `through` and it.
    fn decide_again(
        &mut self,
        guard: &Guard,
        filter: &Filter,
        through: u64,
        mut changed: Vec<Box<str>>,
        events: usize,
    ) -> Result<Refreshed, FilterError> {
        let at = guard.now_millis().max(self.watermark.at.timestamp_millis());
        let probes = probes(filter, at);
        let decider = Decider::new(guard, &probes, at);
        while let Some(Reverse((until, _))) = self.pending.peek() {
            if *until > at {
                break;
            }
            if let Some(Reverse((_, subject))) = self.pending.pop() {
                changed.push(subject);
            }
        }
        changed.sort_unstable();
        changed.dedup();
        let (pending, entries) = (&mut self.pending, &mut self.entries);
        decider.entries(&changed, |subject, entry| {
            if entry.until != i64::MAX {
                pending.push(Reverse((entry.until, subject.clone())));
            }
            entries.insert(subject, entry)
        })?;
        self.watermark = Watermark { position: through.max(self.watermark.position), at: millis_to_time(at) };
        Ok(Refreshed { events, subjects: changed.len(), rebuilt: false })
    }
}

/// Whether the store erased a subject at a position in (`after`, `through`]: its
/// tombstone names no id, so a refresh cannot tell whose answer changed.
#[cfg(feature = "json")]
fn erased_since(store: &dyn crate::store::ConsentStore, after: u64, through: u64) -> Result<bool, FilterError> {
    Ok(store.erasures_since(after)?.iter().any(|(position, _, _)| *position <= through))
}

#[cfg(feature = "json")]
async fn erased_since_async(
    store: &dyn crate::store::ConsentStore,
    after: u64,
    through: u64,
) -> Result<bool, FilterError> {
    Ok(store.erasures_since_async(after).await?.iter().any(|(position, _, _)| *position <= through))
}

#[cfg(not(feature = "json"))]
fn erased_since(_: &dyn crate::store::ConsentStore, _: u64, _: u64) -> Result<bool, FilterError> {
    Ok(false)
}

#[cfg(not(feature = "json"))]
async fn erased_since_async(_: &dyn crate::store::ConsentStore, _: u64, _: u64) -> Result<bool, FilterError> {
    Ok(false)
}

fn millis_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The probes of a filter at one time S: the template with its row facts set so that
/// the row test passes (`fresh`) and so that it fails (`stale`), each collected after
/// any end that has run out by S where it can be (at S; for a failed retention window,
/// just before it); and `ended`, the failing facts without a collection time, which
/// the guard reads as collected up to every end.
struct Probes {
    fresh: AccessRequest<'static>,
    stale: AccessRequest<'static>,
    ended: AccessRequest<'static>,
    /// How long before S the `fresh` and `stale` probes were collected (when the rows
    /// carry their collection time; `None` otherwise).
    fresh_before: Option<i64>,
    stale_before: Option<i64>,
}

fn probes(filter: &Filter, at: i64) -> Probes {
    let when = millis_to_time(at);
    let mut fresh = filter.template.clone().at(when);
    let mut stale = filter.template.clone().at(when);
    match &filter.test {
        RowTest::SameSession { session, .. } => {
            fresh.collected_session = session.clone().map(Cow::Owned);
            stale.collected_session = None;
        }
        RowTest::CollectedWithin { .. } | RowTest::None | RowTest::Fixed { .. } => {}
    }
    // Where the rows carry their collection time (the template then has none: a fact
    // set twice does not compile), the probes carry one too; otherwise the template's
    // own (or none) decides every row alike, ends included.
    let (fresh_before, stale_before) = match (&filter.rows.collected_at, &filter.test) {
        (None, _) => (None, None),
        (Some(_), RowTest::CollectedWithin { limit_ms, .. }) => (Some(0), Some(limit_ms.saturating_add(1))),
        (Some(_), _) => (Some(0), Some(0)),
    };
    if let Some(before) = fresh_before {
        fresh.collected_at = Some(millis_to_time(at.saturating_sub(before)));
    }
    if let Some(before) = stale_before {
        stale.collected_at = Some(millis_to_time(at.saturating_sub(before)));
    }
    let mut ended = stale.clone();
    if filter.rows.collected_at.is_some() {
        ended.collected_at = None;
    }
    Probes { fresh, stale, ended, fresh_before, stale_before }
}

/// Decides snapshot entries through the guard's prepared checks (prepared once).
struct Decider<'g> {
    guard: &'g Guard,
    fresh: crate::guard::PreparedAccess<'g>,
    stale: crate::guard::PreparedAccess<'g>,
    ended: crate::guard::PreparedAccess<'g>,
    fresh_before: Option<i64>,
    stale_before: Option<i64>,
    at: i64,
}

impl<'g> Decider<'g> {
    fn new(guard: &'g Guard, probes: &'g Probes, at: i64) -> Decider<'g> {
        Decider {
            guard,
            fresh: guard.prepare(&probes.fresh),
            stale: guard.prepare(&probes.stale),
            ended: guard.prepare(&probes.ended),
            fresh_before: probes.fresh_before,
            stale_before: probes.stale_before,
            at,
        }
    }

    fn entry(&self, subject: &str) -> Result<SnapshotEntry, FilterError> {
        // (Fallible for the reads a later version may add; none fails today.)
        let state = self.guard.consent_state();
        let readable = self.guard.now_millis() < state.fresh_until();
        Ok(state
            .read_at(Lookup::Id(subject), i64::MIN, |view| self.entry_of(Ok(view), readable))
            .unwrap_or_else(|unreadable| self.entry_of(Err(unreadable), readable)))
    }

    /// The entries of `subjects`, in order, as [`Decider::entry`] decides each: read in
    /// groups (`ConsentState::read_group`), every probe decided from one read of the
    /// subject's state, where `entry` reads it once per probe.
    fn entries<'s>(
        &self,
        subjects: &'s [Box<str>],
        mut each: impl FnMut(&'s Box<str>, SnapshotEntry) -> Result<(), FilterError>,
    ) -> Result<(), FilterError> {
        let state = self.guard.consent_state();
        for group in subjects.chunks(GROUP) {
            let readable = self.guard.now_millis() < state.fresh_until();
            let mut lookups = [Lookup::Id(""); GROUP];
            for (lookup, subject) in lookups.iter_mut().zip(group) {
                *lookup = Lookup::Id(subject);
            }
            let mut entries = [None; GROUP];
            // Staleness is judged above, for the codes only: the next change of the
            // state is read whatever its age, as `entry` reads it.
            state.read_group(lookups.get(..group.len()).unwrap_or(&[]), i64::MIN, |index, view| {
                if let Some(place) = entries.get_mut(index) {
                    *place = Some(self.entry_of(view, readable));
                }
            });
            for (subject, entry) in group.iter().zip(entries) {
                // Every place was filled; one that was not is decided alone.
                let entry = match entry {
                    Some(entry) => entry,
                    None => self.entry(subject)?,
                };
                each(subject, entry)?;
            }
        }
        Ok(())
    }

    /// A subject's entry from its state read apart (`Err`: unreadable), `readable`
    /// saying whether the state was fresh enough to decide on at the guard's clock.
    fn entry_of(&self, view: Result<Option<SubjectView<'_>>, Unavailable>, readable: bool) -> SnapshotEntry {
        let decided = if readable { view } else { Err(Unavailable) };
        let fresh = self.fresh.code_of_view(decided);
        let stale = self.stale.code_of_view(decided);
        let at = self.at;
        let (mut until, over) = match view {
            Ok(view) => view.map_or((i64::MAX, None), |view| {
                let (over, next_due) = self.fresh.ends(view, at);
                (next_change(view, at).min(next_due.unwrap_or(i64::MAX)), over)
            }),
            // A subject whose state cannot be read (quarantined) was just decided
            // `consent_state_unavailable` by both probes: it stays denied until the
            // next rebuild, and does not stop the snapshot of everyone else.
            Err(_) => (i64::MAX, None),
        };
        let (Some(cutoff), Some(fresh_before), Some(stale_before)) = (over, self.fresh_before, self.stale_before)
        else {
            // No end has run out, or the rows carry no collection time: the probes'
            // own facts are every row's, ends included.
            return SnapshotEntry::new(until, fresh, stale, None);
        };
        // The purpose ended for this subject (the latest end whose
        // `retention_after_end` has run out by S is at `cutoff`): a row collected up
        // to it takes `ended`, whether or not it passes the row test (the end and the
        // retention window deny with the same code and yield to the same
        // anonymization); a row collected after it is answered as if no end had been.
        let ended = self.ended.code_of_view(decided);
        // A probe collected up to the cutoff answered `ended`, not its class: no row
        // of its class exists yet at S (its class is the rows collected in (cutoff,
        // T - before]), and the entry is decided again when the first one can.
        let mut class = |before: i64, code: ReasonCode| {
            if at.saturating_sub(before) > cutoff {
                code
            } else {
                until = until.min(cutoff.saturating_add(before).saturating_add(1));
                ended
            }
        };
        let (fresh, stale) = (class(fresh_before, fresh), class(stale_before, stale));
        SnapshotEntry::new(until, fresh, stale, Some((cutoff, ended)))
    }
}

/// The first instant after `at` at which a decision over this subject's state can
/// change with time alone: the decision reads time only against these instants.
fn next_change(view: SubjectView<'_>, at: i64) -> i64 {
    let mut next = i64::MAX;
    let mut consider = |t: i64| {
        if t > at && t < next {
            next = t;
        }
    };
    for t in [view.erased_at(), view.adult_from(), view.sensitive_until()].into_iter().flatten() {
        consider(t);
    }
    let (early, rest) = view.early_and_rest();
    for event in early.iter().flatten().chain(rest) {
        consider(event.at);
        match view.terms(event) {
            Ok(Some(terms)) => consider(terms.expires_at),
            Ok(None) => {}
            // Unreadable terms already deny (`consent_state_unavailable`); deciding
            // again at once changes nothing.
            Err(_) => {}
        }
    }
    next
}

fn check_column(fact: &'static str, column: &str) -> Result<(), FilterError> {
    let problem = if column.is_empty() {
        Some("is empty")
    } else if column.contains('\0') {
        Some("contains a NUL character")
    } else if column.len() > 63 {
        Some("is longer than PostgreSQL's 63-byte identifiers")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(FilterError::Column { fact, column: format!("{column:?}"), problem }),
        None => Ok(()),
    }
}

impl Guard {
    /// Compiles one kind of access over rows into a [`Filter`]; see [`crate::filter`].
    ///
    /// # Errors
    ///
    /// A [`FilterError`] naming what cannot be compiled: a column name no query can
    /// quote, a fact set both in the template and as a column, a retention limit with
    /// no column for the collection time or session, a template with a time.
    pub fn filter(&self, spec: FilterSpec<'_>) -> Result<Filter, FilterError> {
        let FilterSpec { template, rows, max_staleness } = spec;
        if template.at.is_some() {
            return Err(FilterError::TemplateTime);
        }
        if template.action == Action::Delete {
            return Err(FilterError::Deletion);
        }
        check_column("subject", &rows.subject)?;
        if let Some(column) = &rows.collected_at {
            check_column("collected_at", column)?;
            if template.collected_at.is_some() {
                return Err(FilterError::FactTwice { field: "collected_at", column: column.clone() });
            }
        }
        if let Some(column) = &rows.collected_session {
            check_column("collected_session", column)?;
            if template.collected_session.is_some() {
                return Err(FilterError::FactTwice { field: "collected_session", column: column.clone() });
            }
        }
        let policy = self.policy();
        let retention = policy
            .purposes
            .index(&template.purpose.0)
            .and_then(|node| policy.rule_for.get(node).copied().flatten())
            .and_then(|index| policy.rules.get(usize::from(index)))
            .and_then(|rule| rule.retention)
            // Collecting starts the clock, and deleting is what retention asks: the
            // guard does not test retention for them.
            .filter(|_| !matches!(template.action, Action::Collect | Action::Delete));
        let test = match retention {
            None => RowTest::None,
            Some(limit) => match (limit, limit.millis()) {
                (_, Some(limit_ms)) => match &rows.collected_at {
                    Some(column) => RowTest::CollectedWithin { column: column.clone(), limit_ms },
                    None if template.collected_at.is_some() => {
                        // The template's time decides every row alike: probe it.
                        RowTest::Fixed { passes: true }
                    }
                    None => return Err(FilterError::MissingFact { fact: "collected_at", limit: format!("{limit:?}") }),
                },
                (_, None) => match &rows.collected_session {
                    Some(column) => RowTest::SameSession {
                        column: column.clone(),
                        session: template.session.as_deref().filter(|s| !s.is_empty()).map(str::to_owned),
                    },
                    None if template.collected_session.is_some() => RowTest::Fixed { passes: true },
                    None => {
                        return Err(FilterError::MissingFact {
                            fact: "collected_session",
                            limit: "for the session only".to_owned(),
                        })
                    }
                },
            },
        };
        let _: Option<Retention> = retention;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&format!("{template:?}|{rows:?}|{test:?}"), &mut hasher);
        std::hash::Hash::hash(policy.version(), &mut hasher);
        Ok(Filter {
            template: template.for_subject("").into_owned(),
            rows,
            test,
            max_staleness_ms: i64::try_from(max_staleness.as_millis()).unwrap_or(i64::MAX),
            policy_name: policy.name().to_owned(),
            policy_version: policy.version().to_owned(),
            key: hasher.finish(),
        })
    }

    /// Decides `filter` for every subject this guard knows, now (the guard's clock),
    /// through its prepared checks, and for a subject it does not know.
    ///
    /// # Errors
    ///
    /// When the filter was compiled under another policy version, or the consent
    /// state cannot be read.
    pub fn snapshot(&self, filter: &Filter) -> Result<Snapshot, FilterError> {
        if filter.policy_version != self.policy().version() {
            return Err(FilterError::SnapshotMismatch);
        }
        let position = self.applied_through().ok_or(FilterError::Unavailable("guard poisoned by a panic"))?;
        let at = self.now_millis();
        let ids = self.consent_state().subject_ids().map_err(|_| FilterError::Unavailable("a shard is poisoned"))?;
        let probes = probes(filter, at);
        let decider = Decider::new(self, &probes, at);
        let mut entries = Subjects::with_capacity(ids.len());
        let mut pending = BinaryHeap::new();
        decider.entries(&ids, |id, entry| {
            if entry.until != i64::MAX {
                pending.push(Reverse((entry.until, id.clone())));
            }
            entries.insert(id, entry)
        })?;
        // An id the guard does not hold (none of the ids held starts with NUL... but
        // try until one is absent rather than trust that).
        let mut unknown_id = String::from("\0unknown-subject");
        while entries.get(&unknown_id).is_some() {
            unknown_id.push('\0');
        }
        let unknown = decider.entry(&unknown_id)?;
        let tombstones =
            self.consent_state().tombstones().map_err(|_| FilterError::Unavailable("the tombstones are poisoned"))?;
        let erased = (!tombstones.is_empty()).then(|| {
            // Decided as erased before any time asked about: a row of a tombstoned id
            // is never allowed for want of an erasure time.
            let entry = SnapshotEntry::new(
                i64::MAX,
                decider.fresh.decide_erased(i64::MIN),
                decider.stale.decide_erased(i64::MIN),
                None,
            );
            let blind = |plain: ReasonCode, erased: ReasonCode| if plain.is_allow() { erased } else { plain };
            let blind = SnapshotEntry::new(
                unknown.until,
                blind(unknown.fresh(), entry.fresh()),
                blind(unknown.stale(), entry.stale()),
                unknown.ended().map(|(cutoff, code)| (cutoff, blind(code, entry.stale()))),
            );
            Box::new(ErasedRows { tombstones, entry, blind })
        });
        Ok(Snapshot {
            key: filter.key,
            policy_version: filter.policy_version.clone(),
            entries,
            unknown,
            erased,
            watermark: Watermark { position, at: millis_to_time(at) },
            pending,
        })
    }
}

impl Filter {
    /// The row description.
    pub fn rows(&self) -> &RowFacts {
        &self.rows
    }

    /// The row fact test.
    pub fn row_test(&self) -> &RowTest {
        &self.test
    }

    /// The access (its subject empty).
    pub fn template(&self) -> &AccessRequest<'static> {
        &self.template
    }

    /// The policy version compiled under.
    pub fn policy_version(&self) -> &str {
        &self.policy_version
    }

    /// How old a snapshot may be when applied live, in milliseconds.
    pub fn max_staleness_millis(&self) -> i64 {
        self.max_staleness_ms
    }

    /// Opens an application of the filter at `at` with `snapshot`.
    ///
    /// # Errors
    ///
    /// When the snapshot is another filter's, `at` is before its time, or (live) it is
    /// older than `max_staleness` at `at`.
    pub fn apply<'s>(
        &'s self,
        snapshot: &'s Snapshot,
        at: DateTime<Utc>,
        mode: Apply,
    ) -> Result<Application<'s>, FilterError> {
        if snapshot.key != self.key {
            return Err(FilterError::SnapshotMismatch);
        }
        let (at_ms, taken) = (at.timestamp_millis(), snapshot.watermark.at.timestamp_millis());
        if at_ms < taken {
            return Err(FilterError::BeforeSnapshot { at, snapshot: snapshot.watermark.at });
        }
        let age_ms = at_ms.saturating_sub(taken);
        if mode == Apply::Live && age_ms > self.max_staleness_ms {
            return Err(FilterError::Stale { age_ms, max_ms: self.max_staleness_ms });
        }
        let window = match &self.test {
            RowTest::CollectedWithin { limit_ms, .. } => Some((at_ms.saturating_sub(*limit_ms), at_ms)),
            _ => None,
        };
        Ok(Application { filter: self, snapshot, at_ms, mode, window })
    }
}

/// One application of a filter at a time T: answers rows from the snapshot.
#[derive(Debug)]
pub struct Application<'s> {
    filter: &'s Filter,
    snapshot: &'s Snapshot,
    at_ms: i64,
    mode: Apply,
    window: Option<(i64, i64)>,
}

impl<'s> Application<'s> {
    /// The filter applied.
    pub fn filter(&self) -> &'s Filter {
        self.filter
    }

    /// The snapshot answering.
    pub fn snapshot(&self) -> &'s Snapshot {
        self.snapshot
    }

    /// T, in milliseconds since the epoch.
    pub fn at_millis(&self) -> i64 {
        self.at_ms
    }

    /// For a [`RowTest::CollectedWithin`], the inclusive bounds (milliseconds) a row's
    /// collection time must fall within at T.
    pub fn collected_window(&self) -> Option<(i64, i64)> {
        self.window
    }

    /// Whether a row with these facts passes the row test (times in milliseconds; a
    /// finer time is floored to its millisecond, as the guard reads it).
    #[inline]
    pub fn passes(&self, collected_at_ms: Option<i64>, collected_session: Option<&str>) -> bool {
        match &self.filter.test {
            RowTest::None => true,
            RowTest::Fixed { passes } => *passes,
            RowTest::CollectedWithin { .. } => match (self.window, collected_at_ms) {
                (Some((low, high)), Some(t)) => low <= t && t <= high,
                _ => false,
            },
            RowTest::SameSession { session, .. } => match (session, collected_session) {
                (Some(session), Some(row)) => session == row,
                _ => false,
            },
        }
    }

    /// The answer for one row. A row without a subject is denied
    /// (`consent_missing`): nobody consented to it.
    #[inline]
    pub fn code(
        &self,
        subject: Option<&str>,
        collected_at_ms: Option<i64>,
        collected_session: Option<&str>,
    ) -> ReasonCode {
        self.code_of(subject.map(|subject| self.snapshot.entry(subject)), collected_at_ms, collected_session)
    }

    /// As [`Application::code`], for a row whose subject's entry was looked up already
    /// ([`Snapshot::entries_of`]; `None`: the row has no subject).
    #[inline]
    pub fn code_of(
        &self,
        entry: Option<&SnapshotEntry>,
        collected_at_ms: Option<i64>,
        collected_session: Option<&str>,
    ) -> ReasonCode {
        match entry {
            None => ReasonCode::ConsentMissing,
            Some(entry) => entry.code(self.passes(collected_at_ms, collected_session), collected_at_ms, self.at_ms),
        }
    }

    /// Writes the one audit record of this application to the guard's sink and
    /// returns it. Release no row before it returns `Ok`.
    ///
    /// # Errors
    ///
    /// When the sink cannot keep it ([`FilterError::Audit`]).
    pub fn finish(
        self,
        guard: &Guard,
        counts: &Counts,
        excluded: Option<&ExcludedSubjects>,
    ) -> Result<FilterRecord, FilterError> {
        let filter = self.filter;
        let template = &filter.template;
        let record = FilterRecord {
            record_id: format!("{:016x}-{}-{}", filter.key, self.snapshot.watermark.position, self.at_ms),
            policy: filter.policy_name.clone(),
            policy_version: filter.policy_version.clone(),
            purpose: template.purpose.as_str().to_owned(),
            categories: template.categories.iter().map(|c| c.as_str().to_owned()).collect(),
            action: template.action.as_str().to_owned(),
            rows: filter.rows.clone(),
            row_test: filter.test.clone(),
            watermark: self.snapshot.watermark,
            at: millis_to_time(self.at_ms),
            mode: self.mode,
            rows_in: counts.total(),
            rows_allowed: counts.allowed(),
            counts: counts.iter().map(|(code, n)| (code.as_str().to_owned(), n)).collect(),
            excluded_subjects: excluded.map(ExcludedSubjects::len),
        };
        guard.audit_sink().record_filter(&record)?;
        Ok(record)
    }
}

/// Rows counted by reason code.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Counts([u64; ReasonCode::ALL.len()]);

impl Default for Counts {
    fn default() -> Counts {
        Counts([0; ReasonCode::ALL.len()])
    }
}

impl fmt::Debug for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(code, n)| (code.as_str(), n))).finish()
    }
}

impl Counts {
    /// Counts one row with `code`.
    #[inline]
    pub fn add(&mut self, code: ReasonCode) {
        self.add_n(code, 1);
    }

    /// Counts `n` rows with `code`.
    #[inline]
    pub fn add_n(&mut self, code: ReasonCode, n: u64) {
        if let Some(slot) = self.0.get_mut(code as usize) {
            *slot += n;
        }
    }

    /// Rows counted with `code`.
    pub fn get(&self, code: ReasonCode) -> u64 {
        self.0.get(code as usize).copied().unwrap_or(0)
    }

    /// Adds another count.
    pub fn merge(&mut self, other: &Counts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine += theirs;
        }
    }

    /// Every row counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Rows allowed.
    pub fn allowed(&self) -> u64 {
        self.iter().filter(|(code, _)| code.is_allow()).map(|(_, n)| n).sum()
    }

    /// The codes counted at least once, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (ReasonCode, u64)> + '_ {
        ReasonCode::ALL.iter().map(|code| (*code, self.get(*code))).filter(|(_, n)| *n > 0)
    }
}

/// The subjects an application excluded, each with the code of its first excluded
/// row: kept beside the [`FilterRecord`] they prove. Its `Debug` prints a count.
#[derive(Default)]
pub struct ExcludedSubjects {
    subjects: std::collections::BTreeMap<String, ReasonCode>,
}

impl fmt::Debug for ExcludedSubjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExcludedSubjects").field("subjects", &self.subjects.len()).finish()
    }
}

impl ExcludedSubjects {
    /// Notes an excluded row's subject (the first code per subject is kept).
    pub fn note(&mut self, subject: &str, code: ReasonCode) {
        if !self.subjects.contains_key(subject) {
            self.subjects.insert(subject.to_owned(), code);
        }
    }

    /// How many subjects.
    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// The subjects and their codes, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ReasonCode)> + '_ {
        self.subjects.iter().map(|(s, c)| (s.as_str(), *c))
    }

    /// Writes `subject<TAB>code` lines, headed by the record id they belong to.
    ///
    /// # Errors
    ///
    /// When the writer fails.
    pub fn write_tsv(&self, record: &FilterRecord, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(out, "# record_id\t{}", record.record_id)?;
        for (subject, code) in self.iter() {
            writeln!(out, "{}\t{}", subject.replace(['\t', '\n'], " "), code.as_str())?;
        }
        Ok(())
    }
}

/// The audit record of one filter application (no subject in it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FilterRecord {
    /// Ties the record to the excluded subjects kept beside it.
    pub record_id: String,
    /// The policy's name.
    pub policy: String,
    /// The policy's version.
    pub policy_version: String,
    /// The access's purpose.
    pub purpose: String,
    /// Its categories.
    pub categories: Vec<String>,
    /// Its action.
    pub action: String,
    /// The row description.
    pub rows: RowFacts,
    /// The row fact test.
    pub row_test: RowTest,
    /// The snapshot's watermark.
    pub watermark: Watermark,
    /// T.
    pub at: DateTime<Utc>,
    /// Live or replay.
    pub mode: Apply,
    /// Rows in.
    pub rows_in: u64,
    /// Rows allowed.
    pub rows_allowed: u64,
    /// Rows by reason code.
    pub counts: Vec<(String, u64)>,
    /// How many excluded subjects were kept beside the record, if they were.
    pub excluded_subjects: Option<usize>,
}

/// An audit sink that keeps filter records in a JSON-lines file of their own, one
/// line per application, synced before `record_filter` returns, and hands everything
/// else to `inner`: for sinks that do not keep filter records themselves.
///
/// ```
/// use consent_guard::filter::WithFilterLog;
/// use consent_guard::{Guard, MemoryAuditSink, Policy};
///
/// let dir = tempfile::tempdir()?;
/// let sink = WithFilterLog::open(MemoryAuditSink::new(), dir.path().join("filters.jsonl"))?;
/// let guard = Guard::builder(Policy::from_toml_file("examples/policies/exmo.toml")?).audit(sink).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "json")]
pub struct WithFilterLog<S> {
    inner: S,
    file: std::sync::Mutex<std::fs::File>,
}

#[cfg(feature = "json")]
impl<S: crate::audit::AuditSink> WithFilterLog<S> {
    /// `inner`, with filter records appended to `path` (created if missing).
    ///
    /// # Errors
    ///
    /// When the file cannot be opened for appending.
    pub fn open(inner: S, path: impl AsRef<std::path::Path>) -> std::io::Result<WithFilterLog<S>> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(WithFilterLog { inner, file: std::sync::Mutex::new(file) })
    }
}

#[cfg(feature = "json")]
impl<S: fmt::Debug> fmt::Debug for WithFilterLog<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithFilterLog").field("inner", &self.inner).finish_non_exhaustive()
    }
}

#[cfg(feature = "json")]
impl<S: crate::audit::AuditSink> crate::audit::AuditSink for WithFilterLog<S> {
    fn record(&self, record: &crate::audit::AuditRecord<'_>) -> Result<(), AuditError> {
        self.inner.record(record)
    }

    fn record_deferred(&self, record: &crate::audit::AuditRecord<'_>) -> Result<(), AuditError> {
        self.inner.record_deferred(record)
    }

    fn record_prepared(&self, template: &AccessRequest<'_>, decision: &crate::Decision<'_>) -> Result<(), AuditError> {
        self.inner.record_prepared(template, decision)
    }

    fn record_prepared_deferred(
        &self,
        template: &AccessRequest<'_>,
        decision: &crate::Decision<'_>,
    ) -> Result<(), AuditError> {
        self.inner.record_prepared_deferred(template, decision)
    }

    fn commit(&self) -> Result<(), AuditError> {
        self.inner.commit()
    }

    fn defers_records(&self) -> bool {
        self.inner.defers_records()
    }

    fn record_filter(&self, record: &FilterRecord) -> Result<(), AuditError> {
        use std::io::Write as _;
        let mut line = serde_json::to_vec(record).map_err(|e| AuditError::new(format!("filter record: {e}")))?;
        line.push(b'\n');
        let mut file = self.file.lock().map_err(|_| AuditError::new("filter log poisoned by a panic"))?;
        file.write_all(&line).and_then(|()| file.sync_data()).map_err(|e| AuditError::new(format!("filter log: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_16_bytes() {
        assert_eq!(std::mem::size_of::<SnapshotEntry>(), 16);
    }

    /// The index finds every id it holds, after growing, and none it does not; an
    /// update keeps one id once.
    #[test]
    fn the_index_finds_what_it_holds() {
        let entry = |n: i64| SnapshotEntry::new(n, ReasonCode::ConsentGiven, ReasonCode::ConsentMissing, None);
        let mut subjects = Subjects::with_capacity(3);
        for n in 0..10_000i64 {
            subjects.insert(&format!("user-{n}"), entry(n)).unwrap();
        }
        subjects.insert("", entry(-1)).unwrap();
        subjects.insert("user-7", entry(70)).unwrap();
        assert_eq!(subjects.len(), 10_001);
        for n in 0..10_000i64 {
            let want = if n == 7 { 70 } else { n };
            assert_eq!(subjects.get(&format!("user-{n}")).map(SnapshotEntry::until_millis), Some(want));
        }
        assert_eq!(subjects.get("").map(SnapshotEntry::until_millis), Some(-1));
        assert!(subjects.get("user-10000").is_none() && subjects.get("user-").is_none());
        assert_eq!(subjects.iter().filter(|(id, _)| id.starts_with("user-")).count(), 10_000);
        assert!(subjects.slots.len().is_power_of_two() && subjects.len() * 8 <= subjects.slots.len() * 7);
    }

    /// Every code in every slot, cutoffs across the 48-bit range and beyond it (moved
    /// the strict way), and the rows each answer reaches.
    #[test]
    fn an_entry_packs_its_codes_and_cutoff() {
        for (i, code) in ReasonCode::ALL.iter().enumerate() {
            let other = ReasonCode::ALL[(i + 7) % ReasonCode::ALL.len()];
            let third = ReasonCode::ALL[(i + 13) % ReasonCode::ALL.len()];
            for cutoff in [-(1 << 47) + 1, -1, 0, 1, 1_772_323_200_000, (1 << 47) - 2] {
                let entry = SnapshotEntry::new(99, *code, other, Some((cutoff, third)));
                assert_eq!((entry.fresh(), entry.stale(), entry.ended()), (*code, other, Some((cutoff, third))));
            }
            let entry = SnapshotEntry::new(i64::MAX, *code, other, None);
            assert_eq!(
                (entry.fresh(), entry.stale(), entry.ended(), entry.until_millis()),
                (*code, other, None, i64::MAX)
            );
        }
        let (given, expired) = (ReasonCode::ConsentGiven, ReasonCode::RetentionExpired);
        assert_eq!(SnapshotEntry::new(1, given, given, Some((i64::MIN, expired))).ended(), Some((NO_END + 1, expired)));
        for beyond in [1 << 47, i64::MAX] {
            let entry = SnapshotEntry::new(i64::MAX, given, given, Some((beyond, expired)));
            assert_eq!(entry.ended(), Some((i64::MAX, expired)));
            assert_eq!(entry.code(true, Some(i64::MAX - 1), i64::MAX - 1), expired, "every row ended");
        }
        let entry = SnapshotEntry::new(1000, given, ReasonCode::ConsentMissing, Some((500, expired)));
        assert_eq!(entry.code(true, Some(500), 900), expired, "at the cutoff");
        assert_eq!(entry.code(true, Some(501), 900), given, "after it");
        assert_eq!(entry.code(false, Some(501), 900), ReasonCode::ConsentMissing, "after it, failing the test");
        assert_eq!(entry.code(true, None, 900), expired, "no time");
        assert_eq!(entry.code(true, Some(901), 900), expired, "a time after T");
        assert_eq!(entry.code(true, Some(900), 900), given, "at T");
        assert_eq!(entry.code(true, Some(600), 1000), ReasonCode::ConsentStateUnavailable, "past until");
    }

    /// `Counts` indexes by the code's discriminant: it must be its place in `ALL`.
    #[test]
    fn codes_count_in_their_own_slot() {
        for (index, code) in ReasonCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, index, "{code:?}");
        }
        let mut counts = Counts::default();
        counts.add(ReasonCode::AuditUnavailable);
        counts.add_n(ReasonCode::ConsentGiven, 2);
        assert_eq!((counts.total(), counts.allowed(), counts.get(ReasonCode::AuditUnavailable)), (3, 2, 1));
    }
}
