//! The consent state the guard reads on every check: per subject, the events compiled
//! to bit masks and milliseconds, sorted by time, in a sharded table built for one
//! cache miss per check.
//!
//! Layout, and why:
//! - **Shards behind `RwLock`s, each on its own cache lines.** A check takes one read
//!   lock on one of 64 shards, so two threads rarely touch the same lock word, and an
//!   update of a subject is applied whole under the write lock (a check sees the state
//!   before or after it, never half of it).
//! - **A keyed hash of the id, computed once.** It picks the shard, the slot and an
//!   8-bit tag; the id itself is compared only on a tag match.
//! - **One 88-byte record per subject**, in one vector per shard: the id (inline up
//!   to 15 bytes; longer ids in a table of their own) and the first two events. Most
//!   subjects have one or two events and no stated age, so a check usually reads one
//!   record and nothing else: with a million subjects, every other memory access is a
//!   cache miss. Later events, age and erasure live in an overflow box;
//!   what few grants carry (an expiry, a scope, an older policy version) lives in a
//!   per-shard side table.
//! - **An index of `u32` slots** (linear probing, at most three quarters full): a tag
//!   and a record number, so a probe that meets another subject's slot is rejected
//!   without reading that subject's record.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::basis::ConsentLevel;
use crate::policy::PolicyVersion;
use crate::request::Region;

const SHARDS: usize = 64;

/// One compiled consent event of a subject: 32 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StateEvent {
    pub(crate) at: i64,
    /// The purposes the event names (not down-closed: a check tests them against the
    /// request purpose's ancestors), as two halves: a `u128` field would align the
    /// event, and the record holding it, to 16 bytes.
    purposes: [u64; 2],
    /// The level of a grant (unused for a withdrawal).
    pub(crate) level: ConsentLevel,
    flags: u8,
    /// Index of the grant's [`Terms`] in the shard's side table, when it has some.
    terms: u32,
}

const WITHDRAWAL: u8 = 1;
const BY_GUARDIAN: u8 = 1 << 1;
const HAS_TERMS: u8 = 1 << 2;

impl StateEvent {
    fn new(at: i64, purposes: u128, level: ConsentLevel, flags: u8, terms: u32) -> StateEvent {
        StateEvent { at, purposes: [purposes as u64, (purposes >> 64) as u64], level, flags, terms }
    }

    #[inline]
    pub(crate) fn purposes(&self) -> u128 {
        let [low, high] = self.purposes;
        u128::from(high) << 64 | u128::from(low)
    }

    pub(crate) fn is_withdrawal(&self) -> bool {
        self.flags & WITHDRAWAL != 0
    }

    pub(crate) fn by_guardian(&self) -> bool {
        self.flags & BY_GUARDIAN != 0
    }
}

/// What a grant carries beyond level and guardian, when it carries anything: most
/// grants are given under the current policy version, for good and without scope, and
/// store none of this.
#[derive(Clone, Debug)]
pub(crate) struct Terms {
    pub(crate) version: PolicyVersion,
    /// `i64::MAX` when the grant does not expire.
    pub(crate) expires_at: i64,
    pub(crate) scope: Option<Box<ScopeMask>>,
}

/// A grant's scope, compiled. A zero mask or empty list means no limit.
#[derive(Clone, Debug, Default)]
pub(crate) struct ScopeMask {
    pub(crate) recipients_limited: bool,
    /// Declared recipients listed by name.
    pub(crate) recipients: u64,
    /// Recipient kinds listed (`first_party`, `processor`, ...).
    pub(crate) recipient_kinds: crate::request::RecipientKinds,
    pub(crate) regions: Vec<Region>,
    pub(crate) categories: u128,
}

/// A compiled change to a subject's state.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// A statement of age: when the subject comes of age for this policy (`None`: the
    /// statement says nothing the policy uses).
    Attributes {
        adult_from: Option<i64>,
        /// When the subject's data stops being sensitive as a minor's.
        sensitive_until: Option<i64>,
    },
    Withdraw {
        at: i64,
        purposes: u128,
    },
    Grant {
        at: i64,
        purposes: u128,
        level: ConsentLevel,
        by_guardian: bool,
        /// `None`: the current policy version, no expiry, no scope.
        terms: Option<Terms>,
    },
    Erase {
        at: i64,
    },
}

/// `adult_from` of a subject whose age is unknown.
const AGE_UNKNOWN: i64 = i64::MIN;

/// Ids up to this many bytes are kept in the record itself.
const INLINE_ID: usize = 15;
/// The length byte of a longer id, kept in the shard's table of long ids; the first
/// four bytes are then its index there.
const LONG_ID: u8 = u8::MAX;

/// One subject: 88 bytes.
#[derive(Debug)]
struct Record {
    /// The id's bytes, then its length in the last byte (or [`LONG_ID`]).
    id: [u8; INLINE_ID + 1],
    /// The two earliest events, sorted by time; the second is set only if the first is.
    early: [Option<StateEvent>; 2],
    overflow: Option<Box<Overflow>>,
}

/// The rarer parts of a subject's state.
#[derive(Debug)]
struct Overflow {
    /// Events after the first two, sorted by time; events of equal time keep the order they
    /// were recorded in. Growable, so that recording is linear in a subject's events.
    rest: Vec<StateEvent>,
    /// When the subject stops being a minor for this policy; [`AGE_UNKNOWN`]: unknown.
    adult_from: i64,
    /// When the subject's data stops being a minor's sensitive data (at or before
    /// `adult_from`); [`AGE_UNKNOWN`]: unknown.
    sensitive_until: i64,
    /// `i64::MAX` when not erased.
    erased_at: i64,
}

impl Default for Overflow {
    fn default() -> Self {
        Overflow { rest: Vec::new(), adult_from: AGE_UNKNOWN, sensitive_until: AGE_UNKNOWN, erased_at: i64::MAX }
    }
}

impl Record {
    /// The index of a long id in the shard's table.
    fn long_id(&self) -> Option<usize> {
        let [a, b, c, d, ..] = self.id;
        (self.id[INLINE_ID] == LONG_ID).then(|| u32::from_le_bytes([a, b, c, d]) as usize)
    }

    fn overflow(&mut self) -> &mut Overflow {
        self.overflow.get_or_insert_with(Box::default)
    }

    /// Inserts an event in time order, after the events of the same instant. Usually
    /// it is the latest and is pushed at the end; an event from the past slides back.
    fn insert(&mut self, event: StateEvent) {
        let early_before = self.early.iter().take_while(|e| e.is_some_and(|e| e.at <= event.at)).count();
        let [first, second] = &mut self.early;
        let spilled = match early_before {
            0 => first.replace(event).and_then(|earlier_first| second.replace(earlier_first)),
            1 => second.replace(event),
            _ => {
                let rest = &mut self.overflow().rest;
                let position = rest.partition_point(|e| e.at <= event.at);
                rest.insert(position, event);
                return;
            }
        };
        if let Some(spilled) = spilled {
            self.overflow().rest.insert(0, spilled);
        }
    }
}

/// What the guard knows of one subject, borrowed from the state for one check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SubjectView<'s> {
    record: &'s Record,
    terms: &'s [Terms],
}

impl<'s> SubjectView<'s> {
    /// When the subject was erased, if it was.
    pub(crate) fn erased_at(&self) -> Option<i64> {
        self.record.overflow.as_ref().map(|o| o.erased_at).filter(|at| *at != i64::MAX)
    }

    /// When the subject stops being a minor; `None` when the age is unknown.
    pub(crate) fn adult_from(&self) -> Option<i64> {
        self.record.overflow.as_ref().map(|o| o.adult_from).filter(|at| *at != AGE_UNKNOWN)
    }

    /// When the subject's data stops being a minor's sensitive data; `None` when the
    /// age is unknown.
    pub(crate) fn sensitive_until(&self) -> Option<i64> {
        self.record.overflow.as_ref().map(|o| o.sensitive_until).filter(|at| *at != AGE_UNKNOWN)
    }

    /// The subject's two earliest events (kept in the record) and the later ones,
    /// sorted by time. Apart, because a chained iterator costs the check's event scan
    /// about twice the instructions of two plain loops.
    #[inline]
    pub(crate) fn early_and_rest(&self) -> (&'s [Option<StateEvent>; 2], &'s [StateEvent]) {
        let rest: &'s [StateEvent] = self.record.overflow.as_ref().map_or(&[], |o| &o.rest);
        (&self.record.early, rest)
    }

    /// The subject's events, sorted by time.
    #[cfg(test)]
    pub(crate) fn events(&self) -> impl Iterator<Item = &'s StateEvent> {
        let (early, rest) = self.early_and_rest();
        early.iter().flatten().chain(rest)
    }

    /// The terms of a grant, when it has some. A grant whose terms cannot be found is
    /// an error, not a grant without terms: read as one, it would lose its expiry or
    /// scope and allow more than was consented to.
    pub(crate) fn terms(&self, event: &StateEvent) -> Result<Option<&'s Terms>, Unavailable> {
        if event.flags & HAS_TERMS == 0 {
            return Ok(None);
        }
        self.terms.get(event.terms as usize).map(Some).ok_or(Unavailable)
    }
}

/// A per-process keyed hash of subject ids (a folded multiply, as in foldhash):
/// subject ids are chosen by users, and a fixed function would let someone pick ids
/// that all land in one slot. A collision costs probes, never a wrong answer: the id
/// is compared before a record is used.
#[derive(Clone, Copy, Debug)]
struct SubjectHasher {
    seeds: [u64; 2],
}

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl SubjectHasher {
    fn new() -> SubjectHasher {
        // std's RandomState draws its keys from the operating system.
        let random = RandomState::new();
        SubjectHasher { seeds: [random.hash_one(1u64), random.hash_one(2u64)] }
    }

    /// The key of a subject id.
    #[inline]
    fn hash(&self, id: &str) -> u64 {
        match inline_words(id.as_bytes()) {
            Some(words) => self.hash_inline(words),
            None => self.hash_long(id.as_bytes()),
        }
    }

    /// The key of a short id, from its inline form (which holds its length).
    #[inline]
    fn hash_inline(&self, [low, high]: [u64; 2]) -> u64 {
        let [seed, other] = self.seeds;
        let state = folded_multiply(seed ^ low, other ^ MIX);
        let state = folded_multiply(state ^ high, other);
        folded_multiply(state, seed ^ MIX)
    }

    fn hash_long(&self, bytes: &[u8]) -> u64 {
        let [seed, other] = self.seeds;
        let mut state = seed ^ (bytes.len() as u64).wrapping_mul(MIX);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            state = folded_multiply(state ^ word, other ^ MIX);
        }
        let mut tail = [0u8; 8];
        let remainder = words.remainder();
        if let Some(space) = tail.get_mut(..remainder.len()) {
            space.copy_from_slice(remainder);
        }
        state = folded_multiply(state ^ u64::from_le_bytes(tail), other);
        folded_multiply(state, seed ^ MIX)
    }
}

/// A short id's inline form, as two little-endian words: its bytes, zeros, and its
/// length in the last byte; `None` for an id longer than [`INLINE_ID`]. Built from
/// fixed-size, overlapping loads, because a copy of a variable length is a call to
/// `memcpy`, and this runs on every check.
#[inline]
fn inline_words(bytes: &[u8]) -> Option<[u64; 2]> {
    let len = bytes.len();
    let byte = |at: usize| bytes.get(at).copied().map_or(0, u64::from);
    let word4 = |at: usize| bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes);
    let word8 = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
    // Bytes that two loads both cover are equal, so OR-ing the loads is exact.
    let (low, high) = match len {
        0 => (0, 0),
        1..=3 => (byte(0) | byte(len / 2) << (len / 2 * 8) | byte(len - 1) << ((len - 1) * 8), 0),
        4..=7 => (u64::from(word4(0)) | u64::from(word4(len - 4)) << ((len - 4) * 8), 0),
        8..=INLINE_ID => (word8(0), word8(len - 8).checked_shr(((16 - len) * 8) as u32).unwrap_or(0)),
        _ => return None,
    };
    Some([low, high | (len as u64) << 56])
}

/// A subject id made ready for the lookup: its key, and its inline form.
struct Probe<'s> {
    subject: &'s str,
    key: u64,
    /// The bytes and length of a short id, as a record keeps them; for a long id, zeros
    /// and [`LONG_ID`].
    id: [u8; INLINE_ID + 1],
}

impl<'s> Probe<'s> {
    #[inline]
    fn new(hasher: &SubjectHasher, subject: &'s str) -> Probe<'s> {
        match inline_words(subject.as_bytes()) {
            Some(words) => {
                let id = (u128::from(words[0]) | u128::from(words[1]) << 64).to_le_bytes();
                Probe { subject, key: hasher.hash_inline(words), id }
            }
            None => {
                let mut id = [0u8; INLINE_ID + 1];
                id[INLINE_ID] = LONG_ID;
                Probe { subject, key: hasher.hash_long(subject.as_bytes()), id }
            }
        }
    }
}

/// The shard a key belongs to: its top bits (the slot uses the low bits).
fn shard_of(key: u64) -> usize {
    (key >> 58) as usize % SHARDS
}

/// The 8-bit tag kept in a slot: bits the shard and slot choice do not use.
fn tag_of(key: u64) -> u32 {
    ((key >> 40) & 0xFF) as u32
}

/// Record numbers that fit a slot beside the tag.
const MAX_RECORDS: usize = (1 << 24) - 1;

/// One shard: records in arrival order, and the index over them.
#[derive(Debug, Default)]
struct Shard {
    /// 0: empty; otherwise `tag << 24 | (record number + 1)`. Power-of-two length.
    slots: Vec<u32>,
    records: Vec<Record>,
    terms: Vec<Terms>,
    long_ids: Vec<Box<str>>,
}

impl Shard {
    /// Whether a record is the probe's subject: a short id is one 16-byte comparison,
    /// length included; a long one compares the text in the table of long ids.
    #[inline]
    fn is(&self, record: &Record, probe: &Probe<'_>) -> bool {
        match record.long_id() {
            None => record.id == probe.id,
            Some(index) => {
                probe.id[INLINE_ID] == LONG_ID && self.long_ids.get(index).map(|id| &**id) == Some(probe.subject)
            }
        }
    }

    #[inline]
    fn find(&self, probe: &Probe<'_>) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let tag = tag_of(probe.key);
        let mut slot = probe.key as usize & mask;
        // The index is never full, so an empty slot ends every probe; the count only
        // bounds the loop.
        for _ in 0..self.slots.len() {
            let entry = *self.slots.get(slot)?;
            if entry == 0 {
                return None;
            }
            if entry >> 24 == tag {
                let number = ((entry & 0x00FF_FFFF) as usize).wrapping_sub(1);
                if self.records.get(number).is_some_and(|r| self.is(r, probe)) {
                    return Some(number);
                }
            }
            slot = (slot + 1) & mask;
        }
        None
    }

    fn insert(&mut self, probe: &Probe<'_>, hasher: &SubjectHasher) -> Result<usize, Unavailable> {
        let number = self.records.len();
        if number >= MAX_RECORDS {
            return Err(Unavailable);
        }
        // At most three quarters full, so probes stay short and always end.
        if (number + 1) * 4 > self.slots.len() * 3 {
            self.grow(hasher);
        }
        let mut id = probe.id;
        if probe.id[INLINE_ID] == LONG_ID {
            let index = u32::try_from(self.long_ids.len()).map_err(|_| Unavailable)?;
            if let Some(bytes) = id.get_mut(..4) {
                bytes.copy_from_slice(&index.to_le_bytes());
            }
            self.long_ids.push(probe.subject.into());
        }
        self.records.push(Record { id, early: [None, None], overflow: None });
        self.place(probe.key, number);
        Ok(number)
    }

    fn place(&mut self, key: u64, number: usize) {
        let mask = self.slots.len().wrapping_sub(1);
        let mut slot = key as usize & mask;
        while let Some(entry) = self.slots.get_mut(slot) {
            if *entry == 0 {
                *entry = tag_of(key) << 24 | (number as u32 + 1);
                return;
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Doubles the index. Records keep no key (it would cost 8 bytes a subject), so
    /// their ids are hashed again.
    fn grow(&mut self, hasher: &SubjectHasher) {
        let size = (self.slots.len() * 2).max(16);
        self.slots = vec![0; size];
        let keys: Vec<u64> = self.records.iter().map(|r| hasher.hash(self.id_of(r))).collect();
        for (number, key) in keys.into_iter().enumerate() {
            self.place(key, number);
        }
    }

    fn id_of<'r>(&'r self, record: &'r Record) -> &'r str {
        let text = match record.long_id() {
            Some(index) => self.long_ids.get(index).map(|id| id.as_bytes()),
            None => record.id.get(..usize::from(record.id[INLINE_ID])),
        };
        // Both were copied from a `&str` whole, so they are valid UTF-8.
        text.and_then(|bytes| std::str::from_utf8(bytes).ok()).unwrap_or_default()
    }

    fn view(&self, number: usize) -> Option<SubjectView<'_>> {
        Some(SubjectView { record: self.records.get(number)?, terms: &self.terms })
    }

    /// Applies a group of changes to one record.
    fn apply(&mut self, number: usize, changes: impl IntoIterator<Item = Change>) -> Result<(), Unavailable> {
        for change in changes {
            let event = match change {
                Change::Attributes { adult_from, sensitive_until } => {
                    // Every statement of age counts and none is forgotten: in doubt,
                    // the younger age (the later coming of age) holds.
                    if adult_from.is_some() || sensitive_until.is_some() {
                        let overflow = self.records.get_mut(number).ok_or(Unavailable)?.overflow();
                        overflow.adult_from = overflow.adult_from.max(adult_from.unwrap_or(AGE_UNKNOWN));
                        overflow.sensitive_until = overflow.sensitive_until.max(sensitive_until.unwrap_or(AGE_UNKNOWN));
                    }
                    continue;
                }
                Change::Erase { at } => {
                    // Erasure removes the age facts from the store, so the state forgets
                    // them too, at once and whatever the erasure's time: a subject
                    // whose age is gone counts as a minor (fail closed), the same
                    // before and after a restart.
                    let overflow = self.records.get_mut(number).ok_or(Unavailable)?.overflow();
                    overflow.erased_at = overflow.erased_at.min(at);
                    overflow.adult_from = i64::MAX;
                    overflow.sensitive_until = i64::MAX;
                    continue;
                }
                Change::Withdraw { at, purposes } => {
                    StateEvent::new(at, purposes, ConsentLevel::Implied, WITHDRAWAL, 0)
                }
                Change::Grant { at, purposes, level, by_guardian, terms } => {
                    let mut flags = if by_guardian { BY_GUARDIAN } else { 0 };
                    let mut index = 0;
                    if let Some(terms) = terms {
                        index = u32::try_from(self.terms.len()).map_err(|_| Unavailable)?;
                        self.terms.push(terms);
                        flags |= HAS_TERMS;
                    }
                    StateEvent::new(at, purposes, level, flags, index)
                }
            };
            self.records.get_mut(number).ok_or(Unavailable)?.insert(event);
        }
        Ok(())
    }
}

/// A shard on cache lines of its own, so that readers of neighbouring shards do not
/// invalidate each other's lock word.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(RwLock<Shard>);

/// The consent state of every subject a guard knows.
pub(crate) struct ConsentState {
    shards: Box<[Padded]>,
    hasher: SubjectHasher,
    available: AtomicBool,
}

/// The state cannot be read: the guard fails closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unavailable;

impl ConsentState {
    pub(crate) fn new() -> ConsentState {
        ConsentState {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            hasher: SubjectHasher::new(),
            available: AtomicBool::new(true),
        }
    }

    #[inline]
    fn locate<'s>(&self, subject: &'s str) -> (Probe<'s>, Result<&RwLock<Shard>, Unavailable>) {
        let probe = Probe::new(&self.hasher, subject);
        let shard = self.shards.get(shard_of(probe.key)).map(|p| &p.0).ok_or(Unavailable);
        (probe, shard)
    }

    /// Runs `f` on the subject's state (`None`: unknown subject) under a read lock.
    #[inline]
    pub(crate) fn read<R>(
        &self,
        subject: &str,
        f: impl FnOnce(Option<SubjectView<'_>>) -> R,
    ) -> Result<R, Unavailable> {
        if !self.available.load(Ordering::Acquire) {
            return Err(Unavailable);
        }
        let (probe, shard) = self.locate(subject);
        let shard = shard?.read().map_err(|_| Unavailable)?;
        Ok(f(shard.find(&probe).and_then(|number| shard.view(number))))
    }

    /// Applies changes to one subject atomically: a reader sees all or none of them.
    pub(crate) fn update(&self, subject: &str, changes: impl IntoIterator<Item = Change>) -> Result<(), Unavailable> {
        let (probe, shard) = self.locate(subject);
        let mut shard = shard?.write().map_err(|_| Unavailable)?;
        let number = match shard.find(&probe) {
            Some(number) => number,
            None => shard.insert(&probe, &self.hasher)?,
        };
        shard.apply(number, changes)
    }

    /// Marks the state as unreadable (store down) or readable again.
    pub(crate) fn set_available(&self, available: bool) {
        self.available.store(available, Ordering::Release);
    }

    pub(crate) fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// How many subjects are known.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().map(|shard| shard.records.len()).unwrap_or(0)).sum()
    }

    /// Forgets every subject (before a reload from a store).
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            if let Ok(mut shard) = shard.0.write() {
                *shard = Shard::default();
            }
        }
    }
}

impl std::fmt::Debug for ConsentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentState").field("subjects", &self.len()).field("available", &self.is_available()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn withdraw(at: i64) -> Change {
        Change::Withdraw { at, purposes: 1 }
    }

    fn times(state: &ConsentState, subject: &str) -> Vec<i64> {
        state.read(subject, |s| s.unwrap().events().map(|e| e.at).collect()).unwrap()
    }

    #[test]
    fn layout_stays_small() {
        assert_eq!(std::mem::size_of::<StateEvent>(), 32);
        assert_eq!(std::mem::size_of::<Record>(), 88);
    }

    #[test]
    fn events_stay_sorted_by_time_and_stable() {
        let state = ConsentState::new();
        for at in [5, 1, 5, 3] {
            state.update("u", [withdraw(at)]).unwrap();
        }
        assert_eq!(times(&state, "u"), [1, 3, 5, 5]);
        assert!(state.read("v", |s| s.is_none()).unwrap());
    }

    #[test]
    fn a_batch_applies_in_order_and_keeps_terms() {
        let state = ConsentState::new();
        let terms = Terms { version: PolicyVersion::parse("1.0").unwrap(), expires_at: 99, scope: None };
        state
            .update(
                "u",
                [
                    Change::Grant { at: 4, purposes: 2, level: ConsentLevel::Separate, by_guardian: true, terms: None },
                    Change::Grant {
                        at: 2,
                        purposes: 4,
                        level: ConsentLevel::Explicit,
                        by_guardian: false,
                        terms: Some(terms),
                    },
                    Change::Attributes { adult_from: Some(7), sensitive_until: Some(5) },
                    Change::Erase { at: 9 },
                    Change::Erase { at: 8 },
                ],
            )
            .unwrap();
        state
            .read("u", |view| {
                let view = view.unwrap();
                let events: Vec<_> = view.events().collect();
                assert_eq!(events.iter().map(|e| e.at).collect::<Vec<_>>(), [2, 4]);
                assert_eq!(view.terms(events[0]).unwrap().unwrap().expires_at, 99);
                assert!(view.terms(events[1]).unwrap().is_none());
                assert!(events[1].by_guardian() && !events[0].by_guardian());
                assert_eq!(view.adult_from(), Some(i64::MAX), "an erased subject's age is gone: a minor");
                assert_eq!(view.erased_at(), Some(8));
            })
            .unwrap();
    }

    #[test]
    fn events_of_one_instant_keep_their_recorded_order_across_the_inline_pair() {
        let state = ConsentState::new();
        let grant = |at, purposes| Change::Grant {
            at,
            purposes,
            level: ConsentLevel::Explicit,
            by_guardian: false,
            terms: None,
        };
        // Purposes tell the events apart: 1, 2, 3 at time 5, then 4 at time 1, 5 at time 5.
        for change in [grant(5, 1), grant(5, 2), grant(5, 3), grant(1, 4), grant(5, 5), grant(0, 6)] {
            state.update("u", [change]).unwrap();
        }
        let order: Vec<u128> = state.read("u", |s| s.unwrap().events().map(|e| e.purposes()).collect()).unwrap();
        assert_eq!(order, [6, 4, 1, 2, 3, 5]);
    }

    #[test]
    fn the_youngest_statement_of_age_holds_and_silence_forgets_nothing() {
        let state = ConsentState::new();
        for adult_from in [Some(10), Some(30), None, Some(20)] {
            state.update("u", [Change::Attributes { adult_from, sensitive_until: adult_from }]).unwrap();
        }
        assert_eq!(state.read("u", |s| s.unwrap().adult_from()).unwrap(), Some(30));
    }

    /// Recording is linear in a subject's events (it was quadratic: every event rebuilt
    /// the list); 200,000 events took more than a minute.
    #[test]
    fn many_events_of_one_subject_record_in_linear_time() {
        let state = ConsentState::new();
        let started = std::time::Instant::now();
        for at in 0..200_000 {
            state.update("u", [withdraw(at)]).unwrap();
        }
        assert_eq!(state.read("u", |s| s.unwrap().events().count()).unwrap(), 200_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn ids_short_and_long_and_similar_are_told_apart() {
        let state = ConsentState::new();
        let long = "a-subject-id-longer-than-fifteen-bytes";
        let ids = ["", "u", "u1", "u10", "exactly15bytes!", "exactly16bytes!!", long];
        for (at, id) in ids.iter().enumerate() {
            state.update(id, [withdraw(at as i64)]).unwrap();
        }
        for (at, id) in ids.iter().enumerate() {
            assert_eq!(times(&state, id), [at as i64], "{id}");
        }
        assert!(state.read(&long[..long.len() - 1], |s| s.is_none()).unwrap());
        assert!(state.read("exactly15bytes?", |s| s.is_none()).unwrap());
        assert_eq!(state.len(), ids.len());
    }

    #[test]
    fn many_subjects_survive_growth() {
        let state = ConsentState::new();
        for index in 0..20_000 {
            state.update(&format!("s{index}"), [withdraw(index)]).unwrap();
        }
        assert_eq!(state.len(), 20_000);
        for index in (0..20_000).step_by(7) {
            assert_eq!(times(&state, &format!("s{index}")), [index]);
        }
        assert!(state.read("s20000", |s| s.is_none()).unwrap());
        state.clear();
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn inline_words_hold_the_bytes_zeros_and_the_length() {
        let text = "abcdefghijklmnopqrstuvwxyz";
        for len in 0..=INLINE_ID {
            let bytes = &text.as_bytes()[..len];
            let mut expected = [0u8; INLINE_ID + 1];
            expected[..len].copy_from_slice(bytes);
            expected[INLINE_ID] = len as u8;
            let [low, high] = inline_words(bytes).unwrap();
            assert_eq!((u128::from(low) | u128::from(high) << 64).to_le_bytes(), expected, "{len} bytes");
        }
        assert_eq!(inline_words(&text.as_bytes()[..INLINE_ID + 1]), None);
    }

    #[test]
    fn hash_depends_on_every_byte_and_the_length() {
        let hasher = SubjectHasher::new();
        let base = hasher.hash("subject-000000001");
        assert_ne!(base, hasher.hash("subject-000000002"));
        assert_ne!(base, hasher.hash("Subject-000000001"));
        assert_ne!(hasher.hash("a"), hasher.hash("a\0"));
        assert_ne!(SubjectHasher::new().hash("u1"), hasher.hash("u1"), "keyed per state");
    }

    #[test]
    fn unavailable_state_fails_closed() {
        let state = ConsentState::new();
        state.set_available(false);
        assert_eq!(state.read("u", |_| ()), Err(Unavailable));
    }
}
