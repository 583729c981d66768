//! The consent state the guard reads on every check: per subject, the events compiled
//! to bit masks and milliseconds, sorted by time, in a sharded table built for one
//! cache miss per check and at most 64 bytes a subject.
//!
//! Layout, and why:
//! - **Shards behind `RwLock`s, each on its own cache lines.** A check takes one read
//!   lock on one of 64 shards, so two threads rarely touch the same lock word, and an
//!   update of a subject is applied whole under the write lock (a check sees the state
//!   before or after it, never half of it).
//! - **A keyed hash of the id, computed once.** It picks the shard, the slot and an
//!   8-bit tag; the id itself is compared only on a tag match. A [`Resolved`] id (the
//!   guard's `SubjectHandle`) keeps the key and the record number, so a check by
//!   handle hashes nothing and, while the hint holds, skips the index too.
//! - **One 48-byte record per subject**, in fixed-size chunks per shard (no vector
//!   doubling: at most one part-filled chunk per shard): the id (inline up to 15
//!   bytes; longer ids in a table of their own) and two 16-byte slots. A slot holds
//!   an event (time, up to three purposes, level and flags, the index of its terms),
//!   a statement of age, or an erasure. Most subjects have one or two events, so a
//!   check reads one record and nothing else: with a million subjects, every other
//!   memory access is a cache miss.
//! - **A subject that does not fit spills**: three or more items, a grant naming four
//!   or more purposes, an age that is not a whole day. Its events then lie in full
//!   form in the shard's event arena, and its facts (age, erasure, quarantine) in an
//!   overflow entry; the record holds where both are. A check reads the arena range
//!   straight from the record, so a spilled subject costs one more dependent load
//!   than an inline one, not two (record, entry, then a vector of its own). The
//!   record, the entry and the range change together under the shard's write lock.
//! - **What few grants carry** (an expiry, a scope, an older policy version) lives in
//!   a per-shard side table.
//! - **An index of `u32` slots** (linear probing, at most three quarters full): a tag
//!   and a record number, so a probe that meets another subject's slot is rejected
//!   without reading that subject's record. At a million subjects it is 8 MiB, which
//!   stays in the last-level cache while the records do not.
//! - **Grouped reads for batches.** A batch reads [`GROUP`] subjects at a time under
//!   one acquisition of their shards' read locks: it finds every record, then loads
//!   every spilled subject's range and entry, then decides each. A million subjects
//!   do not fit the caches, and a check is too long for the processor to start the
//!   next one's loads while it waits for its own; staged, the misses of a group
//!   overlap instead of following one another.
//! - **Tombstones beside the table.** A store that forgets erased subjects (issue 27)
//!   keeps only the keyed hash of their ids; the state keeps those [`Tombstones`] and
//!   asks them only when an id has no record (one HMAC; one atomic load when there are
//!   none), so a known subject's check reads nothing more.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::basis::ConsentLevel;
use crate::request::Region;
use crate::version::PolicyVersion;

const SHARDS: usize = 64;
// A grouped read names its shards in one `u64`.
const _: () = assert!(SHARDS <= 64);

/// How many subjects a grouped read ([`ConsentState::read_group`]) finds and loads
/// before it decides the first: enough for their cache misses to overlap, few enough
/// for a stage of them to fit the processor's out-of-order window.
pub(crate) const GROUP: usize = 16;

/// Full events to a 64-byte cache line (see [`Shard::warm`]).
const LINE_EVENTS: usize = 64 / std::mem::size_of::<StateEvent>();

/// The tombstones of subjects whose ids the store no longer keeps.
#[cfg(feature = "json")]
pub(crate) use crate::keys::Tombstones;

/// Without the `json` feature there are no keys, so no store forgets an id: never a
/// tombstone. (A field, not a unit struct, so that it is built as the other is, by
/// `Tombstones::default()`.)
#[cfg(not(feature = "json"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct Tombstones {
    _none: (),
}

#[cfg(not(feature = "json"))]
impl Tombstones {
    pub(crate) fn erased_at(&self, _: &str) -> Option<i64> {
        None
    }
    pub(crate) fn is_empty(&self) -> bool {
        true
    }
}

/// One compiled consent event of a subject: 32 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StateEvent {
    pub(crate) at: i64,
    /// The purposes the event names (not down-closed: a check tests them against the
    /// request purpose's ancestors), as two halves: a `u128` field would align the
    /// event to 16 bytes.
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
/// The end of purposes, not a consent event: the consent scan passes over it. Rare,
/// so it has no compact slot kind: a subject with one spills.
const END: u8 = 1 << 3;

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

    pub(crate) fn is_end(&self) -> bool {
        self.flags & END != 0
    }
}

/// A consent event read where it is kept, with no [`StateEvent`] built for it: a
/// compact slot of an inline record, or a full event of an overflow entry. The check's
/// consent scan is generic over it, so that an inline subject's slots are tested in
/// place (decoding each slot into a full event cost the scan about a third of a
/// check's instructions, issue 31).
pub(crate) trait EventRead {
    fn at(&self) -> i64;
    /// Whether the event names one of the purposes in `mask` (not down-closed: a check
    /// passes the request purpose with its ancestors).
    fn names_any(&self, mask: u128) -> bool;
    fn is_withdrawal(&self) -> bool;
    /// An `end` of purposes, which the consent scan passes over.
    fn is_end(&self) -> bool;
    fn by_guardian(&self) -> bool;
    /// The level of a grant (meaningless for a withdrawal).
    fn level(&self) -> ConsentLevel;
    /// The index of the grant's [`Terms`] in the shard's side table, when it has some.
    fn terms_index(&self) -> Option<u32>;
}

impl EventRead for StateEvent {
    #[inline(always)]
    fn at(&self) -> i64 {
        self.at
    }
    #[inline(always)]
    fn names_any(&self, mask: u128) -> bool {
        self.purposes() & mask != 0
    }
    #[inline(always)]
    fn is_withdrawal(&self) -> bool {
        StateEvent::is_withdrawal(self)
    }
    #[inline(always)]
    fn is_end(&self) -> bool {
        StateEvent::is_end(self)
    }
    #[inline(always)]
    fn by_guardian(&self) -> bool {
        StateEvent::by_guardian(self)
    }
    #[inline(always)]
    fn level(&self) -> ConsentLevel {
        self.level
    }
    #[inline(always)]
    fn terms_index(&self) -> Option<u32> {
        (self.flags & HAS_TERMS != 0).then_some(self.terms)
    }
}

impl EventRead for Slot {
    #[inline(always)]
    fn at(&self) -> i64 {
        self.at
    }
    /// Each of the three bit numbers against the mask; an unused place
    /// ([`NO_PURPOSE`]) shifts past the mask's width and reads as no bit.
    #[inline(always)]
    fn names_any(&self, mask: u128) -> bool {
        let hit = |bit: u8| mask.checked_shr(u32::from(bit)).unwrap_or(0);
        let [a, b, c] = self.purposes;
        (hit(a) | hit(b) | hit(c)) & 1 != 0
    }
    #[inline(always)]
    fn is_withdrawal(&self) -> bool {
        self.kind() == WITHDRAW
    }
    /// Ends have no compact form.
    #[inline(always)]
    fn is_end(&self) -> bool {
        false
    }
    #[inline(always)]
    fn by_guardian(&self) -> bool {
        self.meta & SLOT_GUARDIAN != 0
    }
    #[inline(always)]
    fn level(&self) -> ConsentLevel {
        level_of_bits(self.meta >> LEVEL_SHIFT)
    }
    #[inline(always)]
    fn terms_index(&self) -> Option<u32> {
        (self.meta & SLOT_TERMS != 0).then_some(self.extra)
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
    /// The purposes are over for the subject (an `end` event).
    End {
        at: i64,
        purposes: u128,
    },
}

/// `adult_from` of a subject whose age is unknown.
const AGE_UNKNOWN: i64 = i64::MIN;

/// Ids up to this many bytes are kept in the record itself.
const INLINE_ID: usize = 15;
/// The length byte of a longer id, kept in the shard's table of long ids; the first
/// four bytes are then its index there.
const LONG_ID: u8 = u8::MAX;

/// One inline item of a record: 16 bytes. What `at` and `extra` mean depends on the
/// kind, in the low bits of `meta`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Slot {
    /// An event's or an erasure's time; an age's `adult_from`.
    at: i64,
    /// A grant's terms index (with [`SLOT_TERMS`]); an age's `sensitive_until`, in
    /// days ([`DAYS_UNKNOWN`], [`DAYS_NEVER`]); a spilled record's overflow index.
    extra: u32,
    /// The purposes' bit numbers, [`NO_PURPOSE`] where unused.
    purposes: [u8; 3],
    /// The kind (low three bits), a grant's level (two bits), [`SLOT_GUARDIAN`],
    /// [`SLOT_TERMS`].
    meta: u8,
}

const KIND_MASK: u8 = 0b111;
const EMPTY: u8 = 0;
const GRANT: u8 = 1;
const WITHDRAW: u8 = 2;
const AGE: u8 = 3;
const ERASE: u8 = 4;
/// The record's state is in the shard's overflow table, at `extra`.
const SPILLED: u8 = 5;
const LEVEL_SHIFT: u8 = 3;
const SLOT_GUARDIAN: u8 = 1 << 5;
const SLOT_TERMS: u8 = 1 << 6;
const NO_PURPOSE: u8 = u8::MAX;
const DAY_MS: i64 = 86_400_000;
const DAYS_UNKNOWN: u32 = 0;
const DAYS_NEVER: u32 = u32::MAX;
/// Day numbers are kept shifted by this, so that 0 and `u32::MAX` stay free.
const DAYS_OFFSET: i64 = 1 << 31;

impl Slot {
    fn kind(&self) -> u8 {
        self.meta & KIND_MASK
    }

    fn is_event(&self) -> bool {
        matches!(self.kind(), GRANT | WITHDRAW)
    }

    /// An event in compact form, when it fits: at most three purposes.
    fn event(event: &StateEvent) -> Option<Slot> {
        if event.is_end() {
            return None;
        }
        let mut mask = event.purposes();
        let mut purposes = [NO_PURPOSE; 3];
        for place in &mut purposes {
            if mask == 0 {
                break;
            }
            *place = mask.trailing_zeros() as u8;
            mask &= mask - 1;
        }
        if mask != 0 {
            return None;
        }
        let kind = if event.is_withdrawal() { WITHDRAW } else { GRANT };
        let level = (level_bits(event.level)) << LEVEL_SHIFT;
        let guardian = if event.by_guardian() { SLOT_GUARDIAN } else { 0 };
        let terms = if event.flags & HAS_TERMS != 0 { SLOT_TERMS } else { 0 };
        Some(Slot { at: event.at, extra: event.terms, purposes, meta: kind | level | guardian | terms })
    }

    /// The event a compact slot holds, in full form.
    #[inline]
    fn to_event(self) -> StateEvent {
        // Without branches: this runs for every inline event of every check.
        let [low, high] = self
            .purposes
            .map(|bit| {
                let used = u64::from(bit != NO_PURPOSE);
                let word = used << (bit & 63);
                if bit & 64 == 0 {
                    [word, 0]
                } else {
                    [0, word]
                }
            })
            .into_iter()
            .fold([0u64; 2], |[l, h], [a, b]| [l | a, h | b]);
        let flags = (u8::from(self.kind() == WITHDRAW) * WITHDRAWAL)
            | (u8::from(self.meta & SLOT_GUARDIAN != 0) * BY_GUARDIAN)
            | (u8::from(self.meta & SLOT_TERMS != 0) * HAS_TERMS);
        StateEvent {
            at: self.at,
            purposes: [low, high],
            level: level_of_bits(self.meta >> LEVEL_SHIFT),
            flags,
            terms: self.extra,
        }
    }

    /// A statement of age, when `sensitive_until` is a whole day (it is midnight UTC of
    /// a birthday) or one of the two marks.
    fn age(adult_from: i64, sensitive_until: i64) -> Option<Slot> {
        let extra = match sensitive_until {
            AGE_UNKNOWN => DAYS_UNKNOWN,
            i64::MAX => DAYS_NEVER,
            at if at % DAY_MS == 0 => {
                u32::try_from((at / DAY_MS).checked_add(DAYS_OFFSET)?).ok().filter(|d| *d != 0 && *d != u32::MAX)?
            }
            _ => return None,
        };
        Some(Slot { at: adult_from, extra, purposes: [NO_PURPOSE; 3], meta: AGE })
    }

    fn sensitive_until(&self) -> i64 {
        match self.extra {
            DAYS_UNKNOWN => AGE_UNKNOWN,
            DAYS_NEVER => i64::MAX,
            days => (i64::from(days) - DAYS_OFFSET).saturating_mul(DAY_MS),
        }
    }
}

fn level_bits(level: ConsentLevel) -> u8 {
    match level {
        ConsentLevel::Implied => 0,
        ConsentLevel::Explicit => 1,
        ConsentLevel::Separate => 2,
    }
}

/// The inverse of [`level_bits`]; the one pattern it never writes reads as the weakest
/// level, so that a damaged slot can only ask for more consent.
fn level_of_bits(bits: u8) -> ConsentLevel {
    match bits & 0b11 {
        1 => ConsentLevel::Explicit,
        2 => ConsentLevel::Separate,
        _ => ConsentLevel::Implied,
    }
}

/// One subject: 48 bytes.
#[derive(Clone, Copy, Debug)]
struct Record {
    /// The id's bytes, then its length in the last byte (or [`LONG_ID`]).
    id: [u8; INLINE_ID + 1],
    /// Events first, sorted by time (events of one instant in the order recorded),
    /// then at most one age or erasure; or a [`SPILLED`] mark first.
    slots: [Slot; 2],
}

const NO_RECORD: Record =
    Record { id: [0; INLINE_ID + 1], slots: [Slot { at: 0, extra: 0, purposes: [0; 3], meta: EMPTY }; 2] };

impl Record {
    /// The index of a long id in the shard's table.
    fn long_id(&self) -> Option<usize> {
        let [a, b, c, d, ..] = self.id;
        (self.id[INLINE_ID] == LONG_ID).then(|| u32::from_le_bytes([a, b, c, d]) as usize)
    }

    /// The overflow index of a spilled record.
    #[inline]
    fn spilled(&self) -> Option<usize> {
        let [first, _] = &self.slots;
        (first.kind() == SPILLED).then_some(first.extra as usize)
    }

    /// The age or erasure slot of an inline record.
    #[inline]
    fn fact(&self) -> Option<&Slot> {
        self.slots.iter().find(|s| matches!(s.kind(), AGE | ERASE))
    }

    /// Where a spilled record's events lie in the shard's arena: the first slot holds
    /// the start (and the overflow index), the second the length and the capacity.
    #[inline]
    fn span(&self) -> Span {
        let [first, second] = &self.slots;
        Span { start: first.at as u32, len: second.extra, cap: second.at as u32 }
    }

    /// Marks the record spilled, its facts at overflow entry `overflow` and its events
    /// at `span`.
    fn set_spilled(&mut self, overflow: u32, span: Span) {
        self.slots = [
            Slot { at: i64::from(span.start), extra: overflow, purposes: [NO_PURPOSE; 3], meta: SPILLED },
            Slot { at: i64::from(span.cap), extra: span.len, purposes: [NO_PURPOSE; 3], meta: EMPTY },
        ];
    }
}

/// A spilled subject's events in the shard's arena: `len` events from `start`, with
/// room for `cap` before the range must move.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
    cap: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        let start = self.start as usize;
        start..start + self.len as usize
    }
}

/// What fills the unused room of a range: never read as an event.
const NO_EVENT: StateEvent = StateEvent { at: 0, purposes: [0; 2], level: ConsentLevel::Implied, flags: 0, terms: 0 };
/// The room a subject's range starts with when it spills; it doubles when full.
const FIRST_ROOM: u32 = 4;
/// The arena is compacted when this many of its events, and a quarter of it, are
/// room left behind by ranges that moved. (Small in unit tests, so that they compact.)
#[cfg(not(test))]
const MIN_GARBAGE: usize = 256;
#[cfg(test)]
const MIN_GARBAGE: usize = 64;

/// The facts of a subject whose state does not fit its record, in full form (its
/// events are in the shard's arena, sorted by time, events of equal time in the order
/// they were recorded in).
#[derive(Debug)]
struct Overflow {
    /// When the subject stops being a minor for this policy; [`AGE_UNKNOWN`]: unknown.
    adult_from: i64,
    /// When the subject's data stops being a minor's sensitive data (at or before
    /// `adult_from`); [`AGE_UNKNOWN`]: unknown.
    sensitive_until: i64,
    /// `i64::MAX` when not erased.
    erased_at: i64,
    /// The store holds an event of this subject that the policy cannot apply: its
    /// state is incomplete, so every check that reads it fails closed.
    quarantined: bool,
}

impl Overflow {
    /// The full form of an inline record's facts.
    fn of(record: &Record) -> Overflow {
        let mut overflow =
            Overflow { adult_from: AGE_UNKNOWN, sensitive_until: AGE_UNKNOWN, erased_at: i64::MAX, quarantined: false };
        match record.fact() {
            Some(slot) if slot.kind() == AGE => {
                overflow.adult_from = slot.at;
                overflow.sensitive_until = slot.sensitive_until();
            }
            Some(slot) => {
                overflow.erased_at = slot.at;
                overflow.adult_from = i64::MAX;
                overflow.sensitive_until = i64::MAX;
            }
            None => {}
        }
        overflow
    }

    /// Applies a change that is not an event (events go to the arena).
    fn apply_fact(&mut self, change: &Change) {
        match change {
            Change::Attributes { adult_from, sensitive_until } => {
                self.adult_from = self.adult_from.max(adult_from.unwrap_or(AGE_UNKNOWN));
                self.sensitive_until = self.sensitive_until.max(sensitive_until.unwrap_or(AGE_UNKNOWN));
            }
            Change::Erase { at } => {
                self.erased_at = self.erased_at.min(*at);
                self.adult_from = i64::MAX;
                self.sensitive_until = i64::MAX;
            }
            _ => {}
        }
    }
}

/// What the guard knows of one subject, borrowed from the state for one check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SubjectView<'s> {
    record: &'s Record,
    overflow: Option<&'s Overflow>,
    /// A spilled subject's events, from the arena; empty for an inline one.
    spilled: &'s [StateEvent],
    terms: &'s [Terms],
}

impl<'s> SubjectView<'s> {
    /// The view of a record that holds an erasure alone (see
    /// `ConsentState::erased_record`).
    fn erased(record: &'s Record) -> SubjectView<'s> {
        SubjectView { record, overflow: None, spilled: &[], terms: &[] }
    }

    /// When the subject was erased, if it was.
    #[inline]
    pub(crate) fn erased_at(&self) -> Option<i64> {
        match self.overflow {
            Some(o) => Some(o.erased_at).filter(|at| *at != i64::MAX),
            None => self.record.fact().filter(|s| s.kind() == ERASE).map(|s| s.at),
        }
    }

    /// When the subject stops being a minor; `None` when the age is unknown.
    #[inline]
    pub(crate) fn adult_from(&self) -> Option<i64> {
        let at = match self.overflow {
            Some(o) => o.adult_from,
            None => match self.record.fact() {
                Some(slot) if slot.kind() == AGE => slot.at,
                // An erasure forgets the age: a minor (fail closed).
                Some(_) => i64::MAX,
                None => AGE_UNKNOWN,
            },
        };
        Some(at).filter(|at| *at != AGE_UNKNOWN)
    }

    /// When the subject's data stops being a minor's sensitive data; `None` when the
    /// age is unknown.
    #[inline]
    pub(crate) fn sensitive_until(&self) -> Option<i64> {
        let at = match self.overflow {
            Some(o) => o.sensitive_until,
            None => match self.record.fact() {
                Some(slot) if slot.kind() == AGE => slot.sensitive_until(),
                Some(_) => i64::MAX,
                None => AGE_UNKNOWN,
            },
        };
        Some(at).filter(|at| *at != AGE_UNKNOWN)
    }

    /// The subject's events, sorted by time: those of the record (decoded), then those
    /// of its arena range. Apart, because a chained iterator costs the check's event
    /// scan about twice the instructions of two plain loops. Always inlined: with the
    /// deletion checks (issue 27) calling it too, the compiler stopped inlining it into
    /// the consent scan, which cost the check about 24 instructions.
    #[inline(always)]
    pub(crate) fn early_and_rest(&self) -> ([Option<StateEvent>; 2], &'s [StateEvent]) {
        match self.overflow {
            Some(_) => ([None, None], self.spilled),
            None => {
                let [first, second] = self.record.slots;
                ([first.is_event().then(|| first.to_event()), second.is_event().then(|| second.to_event())], &[])
            }
        }
    }

    /// The subject's events where they are kept, sorted by time: an inline record's
    /// event slots (events come first in a record), then an overflow entry's events;
    /// a subject has one or the other. Read through [`EventRead`], nothing decoded.
    #[inline(always)]
    pub(crate) fn events_in_place(&self) -> (&'s [Slot], &'s [StateEvent]) {
        // A spilled record's first slot is no event, so its part here is empty.
        let [first, second] = &self.record.slots;
        let events = usize::from(first.is_event()) + usize::from(first.is_event() && second.is_event());
        (self.record.slots.get(..events).unwrap_or_default(), self.spilled)
    }

    /// The events of a spilled subject, sorted by time; none for an inline one. The
    /// ends of purposes are always here (they have no compact slot).
    #[inline]
    pub(crate) fn spilled_events(&self) -> &'s [StateEvent] {
        self.spilled
    }

    /// The subject's events, sorted by time.
    #[cfg(test)]
    pub(crate) fn events(&self) -> Vec<StateEvent> {
        let (early, rest) = self.early_and_rest();
        early.iter().flatten().chain(rest).copied().collect()
    }

    /// The terms of a grant, when it has some. A grant whose terms cannot be found is
    /// an error, not a grant without terms: read as one, it would lose its expiry or
    /// scope and allow more than was consented to.
    #[inline(always)]
    pub(crate) fn terms(&self, event: &impl EventRead) -> Result<Option<&'s Terms>, Unavailable> {
        match event.terms_index() {
            None => Ok(None),
            Some(index) => self.terms.get(index as usize).map(Some).ok_or(Unavailable),
        }
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
#[derive(Clone, Copy)]
pub(crate) struct Probe<'s> {
    subject: &'s str,
    key: u64,
    /// The bytes and length of a short id, as a record keeps them; for a long id, zeros
    /// and [`LONG_ID`].
    id: [u8; INLINE_ID + 1],
}

impl<'s> Probe<'s> {
    /// Fills a group's unused places; never looked up.
    const UNUSED: Probe<'static> = Probe { subject: "", key: 0, id: [0; INLINE_ID + 1] };

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

/// A subject id resolved once against one state: its probe (key and inline form), and
/// the number of its record when it had one. The number is a hint, never trusted: a
/// check compares the record's id with the probe's before it reads anything, and
/// looks the key up in the index when they differ (after a reload, say).
#[derive(Clone, Copy)]
pub(crate) struct Resolved<'s> {
    probe: Probe<'s>,
    /// The [`ConsentState::id`] the key was computed for: another state's keys differ.
    state: u64,
    /// The record number plus one; 0: none.
    hint: u32,
}

impl<'s> Resolved<'s> {
    pub(crate) fn subject(&self) -> &'s str {
        self.probe.subject
    }

    /// Whether the subject had a record when it was resolved.
    pub(crate) fn was_known(&self) -> bool {
        self.hint != 0
    }
}

/// How a check names its subject.
#[derive(Clone, Copy)]
pub(crate) enum Lookup<'a> {
    /// By id: hashed on every check.
    Id(&'a str),
    /// Resolved before: nothing to hash.
    Resolved(&'a Resolved<'a>),
}

impl<'a> Lookup<'a> {
    /// The subject's id.
    #[inline]
    pub(crate) fn subject(self) -> &'a str {
        match self {
            Lookup::Id(subject) => subject,
            Lookup::Resolved(resolved) => resolved.subject(),
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

/// Records per chunk: a shard's records grow a chunk at a time, so that at most one
/// chunk per shard is part-filled (a doubling vector leaves up to half its room unused).
const CHUNK: usize = 512;

/// One shard: records in arrival order, and the index over them.
#[derive(Debug, Default)]
struct Shard {
    /// 0: empty; otherwise `tag << 24 | (record number + 1)`. Power-of-two length.
    slots: Vec<u32>,
    /// Record `n` is `chunks[n / CHUNK][n % CHUNK]`; every chunk is `CHUNK` long.
    chunks: Vec<Box<[Record]>>,
    /// How many records are in use.
    len: usize,
    overflows: Vec<Overflow>,
    /// The events of spilled subjects, each in a range named by its record.
    events: Vec<StateEvent>,
    /// Room in `events` that no record names any more (ranges that moved).
    garbage: usize,
    #[cfg(test)]
    compactions: usize,
    terms: Vec<Terms>,
    long_ids: Vec<Box<str>>,
}

impl Shard {
    #[inline]
    fn record(&self, number: usize) -> Option<&Record> {
        if number >= self.len {
            return None;
        }
        self.chunks.get(number / CHUNK)?.get(number % CHUNK)
    }

    fn record_mut(&mut self, number: usize) -> Option<&mut Record> {
        if number >= self.len {
            return None;
        }
        self.chunks.get_mut(number / CHUNK)?.get_mut(number % CHUNK)
    }

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
                if self.record(number).is_some_and(|r| self.is(r, probe)) {
                    return Some(number);
                }
            }
            slot = (slot + 1) & mask;
        }
        None
    }

    /// As [`Shard::find`], trying the hinted record (number plus one) first.
    #[inline]
    fn find_hinted(&self, probe: &Probe<'_>, hint: u32) -> Option<usize> {
        let number = (hint as usize).wrapping_sub(1);
        match self.record(number) {
            Some(record) if self.is(record, probe) => Some(number),
            _ => self.find(probe),
        }
    }

    fn insert(&mut self, probe: &Probe<'_>, hasher: &SubjectHasher) -> Result<usize, Unavailable> {
        let number = self.len;
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
        if number / CHUNK >= self.chunks.len() {
            self.chunks.push(vec![NO_RECORD; CHUNK].into_boxed_slice());
        }
        self.len += 1;
        *self.record_mut(number).ok_or(Unavailable)? = Record { id, ..NO_RECORD };
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
        let keys: Vec<u64> = (0..self.len).map(|n| self.record(n).map_or(0, |r| hasher.hash(self.id_of(r)))).collect();
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

    /// The subject's state; `Err` for a record that names an overflow entry that is
    /// not there, or a quarantined subject.
    #[inline]
    fn view(&self, number: usize) -> Result<Option<SubjectView<'_>>, Unavailable> {
        match self.record(number) {
            Some(record) => self.view_of(record).map(Some),
            None => Ok(None),
        }
    }

    /// The view of one of this shard's records.
    #[inline]
    fn view_of<'s>(&'s self, record: &'s Record) -> Result<SubjectView<'s>, Unavailable> {
        let (overflow, spilled) = match record.spilled() {
            None => (None, &[][..]),
            // Both read from the record alone: the range does not wait for the entry.
            Some(index) => {
                let spilled = self.events.get(record.span().range()).ok_or(Unavailable)?;
                (Some(self.overflows.get(index).ok_or(Unavailable)?), spilled)
            }
        };
        if overflow.is_some_and(|o| o.quarantined) {
            return Err(Unavailable);
        }
        Ok(SubjectView { record, overflow, spilled, terms: &self.terms })
    }

    /// Loads what a check of the record reads after the record itself (a spilled
    /// subject's arena range, every cache line of it, and its entry), and nothing else:
    /// a grouped read calls it for every subject of the group before deciding any, so
    /// that their misses overlap.
    #[inline]
    fn warm(&self, record: &Record) {
        let Some(index) = record.spilled() else { return };
        if let Some(events) = self.events.get(record.span().range()) {
            for event in events.iter().step_by(LINE_EVENTS).chain(events.last()) {
                std::hint::black_box(event.at);
            }
        }
        std::hint::black_box(self.overflows.get(index).map(|entry| entry.quarantined));
    }

    /// The overflow index of a record, moving its state out first if it is inline:
    /// its facts to a new entry, its events to a new range of the arena.
    fn spill(&mut self, number: usize) -> Result<usize, Unavailable> {
        let record = *self.record(number).ok_or(Unavailable)?;
        if let Some(index) = record.spilled() {
            return Ok(index);
        }
        let index = self.overflows.len();
        let entry = u32::try_from(index).map_err(|_| Unavailable)?;
        let events = record.slots.iter().filter(|s| s.is_event()).map(|s| s.to_event());
        let start = self.events.len();
        let span = Span { start: arena_index(start)?, len: 0, cap: FIRST_ROOM };
        arena_index(start + FIRST_ROOM as usize)?;
        self.events.extend(events);
        let len = self.events.len() - start;
        self.events.resize(start + FIRST_ROOM as usize, NO_EVENT);
        self.overflows.push(Overflow::of(&record));
        let span = Span { len: len as u32, ..span };
        self.record_mut(number).ok_or(Unavailable)?.set_spilled(entry, span);
        Ok(index)
    }

    /// Inserts an event of a spilled record in time order, after the events of the
    /// same instant. Usually it is the latest and goes at the end; an event from the
    /// past slides back. A full range moves to the arena's end with twice the room, so
    /// recording stays linear in a subject's events.
    fn insert_spilled(&mut self, number: usize, event: StateEvent) -> Result<(), Unavailable> {
        let record = *self.record(number).ok_or(Unavailable)?;
        let index = u32::try_from(record.spilled().ok_or(Unavailable)?).map_err(|_| Unavailable)?;
        let mut span = record.span();
        let position = self.events.get(span.range()).ok_or(Unavailable)?.partition_point(|e| e.at <= event.at);
        if span.len >= span.cap {
            let cap = span.cap.checked_mul(2).ok_or(Unavailable)?.max(FIRST_ROOM);
            let start = self.events.len();
            arena_index(start + cap as usize)?;
            self.events.extend_from_within(span.range());
            self.events.resize(start + cap as usize, NO_EVENT);
            self.garbage += span.cap as usize;
            span = Span { start: arena_index(start)?, len: span.len, cap };
        }
        let live = span.range();
        let room = self.events.get_mut(live.start..=live.end).ok_or(Unavailable)?;
        room.copy_within(position..room.len() - 1, position + 1);
        *room.get_mut(position).ok_or(Unavailable)? = event;
        span.len += 1;
        self.record_mut(number).ok_or(Unavailable)?.set_spilled(index, span);
        if self.garbage >= MIN_GARBAGE && self.garbage * 4 > self.events.len() {
            self.compact()?;
        }
        Ok(())
    }

    /// Copies every record's range, room included, into a new arena without the
    /// garbage.
    fn compact(&mut self) -> Result<(), Unavailable> {
        let mut events = Vec::with_capacity(self.events.len().saturating_sub(self.garbage));
        for number in 0..self.len {
            let record = *self.record(number).ok_or(Unavailable)?;
            let Some(index) = record.spilled() else { continue };
            let span = record.span();
            let start = span.start as usize;
            let moved = Span { start: arena_index(events.len())?, ..span };
            events.extend_from_slice(self.events.get(start..start + span.cap as usize).ok_or(Unavailable)?);
            let index = u32::try_from(index).map_err(|_| Unavailable)?;
            self.record_mut(number).ok_or(Unavailable)?.set_spilled(index, moved);
        }
        self.events = events;
        self.garbage = 0;
        #[cfg(test)]
        {
            self.compactions += 1;
        }
        Ok(())
    }

    /// Applies a group of changes to one record.
    fn apply(&mut self, number: usize, changes: impl IntoIterator<Item = Change>) -> Result<(), Unavailable> {
        for change in changes {
            let event = match &change {
                Change::Attributes { .. } | Change::Erase { .. } => None,
                Change::Withdraw { at, purposes } => {
                    Some(StateEvent::new(*at, *purposes, ConsentLevel::Implied, WITHDRAWAL, 0))
                }
                Change::End { at, purposes } => Some(StateEvent::new(*at, *purposes, ConsentLevel::Implied, END, 0)),
                Change::Grant { at, purposes, level, by_guardian, terms } => {
                    let mut flags = if *by_guardian { BY_GUARDIAN } else { 0 };
                    let mut index = 0;
                    if let Some(terms) = terms {
                        index = u32::try_from(self.terms.len()).map_err(|_| Unavailable)?;
                        self.terms.push(terms.clone());
                        flags |= HAS_TERMS;
                    }
                    Some(StateEvent::new(*at, *purposes, *level, flags, index))
                }
            };
            let record = self.record_mut(number).ok_or(Unavailable)?;
            if record.spilled().is_some() || !apply_inline(record, &change, event.as_ref()) {
                let index = self.spill(number)?;
                match event {
                    Some(event) => self.insert_spilled(number, event)?,
                    None => self.overflows.get_mut(index).ok_or(Unavailable)?.apply_fact(&change),
                }
            }
        }
        Ok(())
    }
}

/// An arena position as a record keeps it; an arena that outgrows `u32` is an error.
fn arena_index(position: usize) -> Result<u32, Unavailable> {
    u32::try_from(position).map_err(|_| Unavailable)
}

/// The slot of an erasure at `at`.
fn erasure_slot(at: i64) -> Slot {
    Slot { at, extra: 0, purposes: [NO_PURPOSE; 3], meta: ERASE }
}

/// Applies a change to an inline record, if the result still fits it; `false` leaves
/// the record as it was.
fn apply_inline(record: &mut Record, change: &Change, event: Option<&StateEvent>) -> bool {
    // Events in order, then the fact: the record's slots, taken apart.
    let mut events: [Slot; 3] = [Slot::default(); 3];
    let mut count = 0;
    for slot in record.slots.iter().filter(|s| s.is_event()) {
        if let Some(place) = events.get_mut(count) {
            *place = *slot;
            count += 1;
        }
    }
    let mut fact = record.fact().copied();
    match (change, event) {
        (_, Some(event)) => {
            let Some(slot) = Slot::event(event) else { return false };
            let position = events.iter().take(count).take_while(|e| e.at <= event.at).count();
            if count >= 2 {
                return false;
            }
            events.copy_within(position..count, position + 1);
            if let Some(place) = events.get_mut(position) {
                *place = slot;
            }
            count += 1;
        }
        (Change::Attributes { adult_from, sensitive_until }, None) => {
            if adult_from.is_none() && sensitive_until.is_none() {
                return true;
            }
            match fact {
                // An erasure forgot the age for good: later statements change nothing.
                Some(slot) if slot.kind() == ERASE => return true,
                Some(slot) => {
                    let adult = slot.at.max(adult_from.unwrap_or(AGE_UNKNOWN));
                    let sensitive = slot.sensitive_until().max(sensitive_until.unwrap_or(AGE_UNKNOWN));
                    let Some(age) = Slot::age(adult, sensitive) else { return false };
                    fact = Some(age);
                }
                None => {
                    let adult = adult_from.unwrap_or(AGE_UNKNOWN);
                    let sensitive = sensitive_until.unwrap_or(AGE_UNKNOWN);
                    let Some(age) = Slot::age(adult, sensitive) else { return false };
                    fact = Some(age);
                }
            }
        }
        (Change::Erase { at }, None) => {
            let at = match fact {
                Some(slot) if slot.kind() == ERASE => slot.at.min(*at),
                _ => *at,
            };
            fact = Some(erasure_slot(at));
        }
        _ => return false,
    }
    let mut slots = [Slot::default(); 2];
    for (used, item) in events.iter().take(count).chain(fact.as_ref()).enumerate() {
        match slots.get_mut(used) {
            Some(place) => *place = *item,
            None => return false,
        }
    }
    record.slots = slots;
    true
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
    /// Unique in the process: tells a [`Resolved`] id whether its key is this state's.
    id: u64,
    /// The state may be read by checks deciding before this instant (milliseconds of
    /// the guard's clock): `i64::MAX` for a state that cannot go stale, the last
    /// confirmation plus `max_staleness` for one kept fresh by a shared store, and
    /// `i64::MIN` for an unreadable state. One atomic serves both, so that a check
    /// pays one load and one comparison for them.
    fresh_until: AtomicI64,
    /// The store's tombstones: asked about ids that have no record. Behind an `Arc`
    /// so that a filter snapshot shares them without copying.
    tombstones: RwLock<Arc<Tombstones>>,
    /// Whether `tombstones` holds any, so that an unknown id costs one load when none.
    tombstoned: AtomicBool,
    /// Set only by [`ConsentState::erased_only`]: every id is a subject erased then.
    erased_only_at: Option<i64>,
}

/// The next [`ConsentState::id`].
static NEXT_STATE: AtomicU64 = AtomicU64::new(1);

/// The state cannot be read: the guard fails closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unavailable;

impl ConsentState {
    pub(crate) fn new() -> ConsentState {
        ConsentState {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            hasher: SubjectHasher::new(),
            id: NEXT_STATE.fetch_add(1, Ordering::Relaxed),
            fresh_until: AtomicI64::new(i64::MAX),
            tombstones: RwLock::new(Arc::new(Tombstones::default())),
            tombstoned: AtomicBool::new(false),
            erased_only_at: None,
        }
    }

    /// A state that holds no subject and answers every id as a subject erased at
    /// `erased_at` with no other state (what a tombstone stands for), readable until
    /// `fresh_until`: how a filter snapshot decides the rows of tombstoned ids.
    pub(crate) fn erased_only(erased_at: i64, fresh_until: i64) -> ConsentState {
        let mut state = ConsentState::new();
        state.fresh_until.store(fresh_until, Ordering::Release);
        state.tombstoned.store(true, Ordering::Release);
        state.erased_only_at = Some(erased_at);
        state
    }

    /// The tombstones, shared.
    pub(crate) fn tombstones(&self) -> Result<Arc<Tombstones>, Unavailable> {
        self.tombstones.read().map(|t| Arc::clone(&t)).map_err(|_| Unavailable)
    }

    #[cfg(feature = "json")]
    /// Replaces the tombstones (a guard's replay reads them from the store first).
    pub(crate) fn set_tombstones(&self, tombstones: Tombstones) -> Result<(), Unavailable> {
        let empty = tombstones.is_empty();
        *self.tombstones.write().map_err(|_| Unavailable)? = Arc::new(tombstones);
        self.tombstoned.store(!empty, Ordering::Release);
        Ok(())
    }

    #[cfg(feature = "json")]
    /// Changes the tombstones in place (a follower learns of erasures made elsewhere).
    pub(crate) fn edit_tombstones<R>(&self, edit: impl FnOnce(&mut Tombstones) -> R) -> Result<R, Unavailable> {
        let mut tombstones = self.tombstones.write().map_err(|_| Unavailable)?;
        let result = edit(Arc::make_mut(&mut tombstones));
        self.tombstoned.store(!tombstones.is_empty(), Ordering::Release);
        Ok(result)
    }

    /// The state of an id the state holds no record for: an erasure alone when a
    /// tombstone names it (the store forgot everything else of it), else `None`. One
    /// atomic load when there are no tombstones.
    #[inline]
    fn erased_record(&self, probe: &Probe<'_>) -> Option<Record> {
        if !self.tombstoned.load(Ordering::Acquire) {
            return None;
        }
        self.tombstone_of(probe.subject).map(|at| Record { id: probe.id, slots: [erasure_slot(at), Slot::default()] })
    }

    /// When an id with no record was erased, from the tombstones. Out of line and
    /// cold: only ids the state does not hold get here, and only when there are
    /// tombstones.
    #[cold]
    #[inline(never)]
    fn tombstone_of(&self, subject: &str) -> Option<i64> {
        if let Some(at) = self.erased_only_at {
            return Some(at);
        }
        // A poisoned lock fails closed: the id reads as erased at the dawn of time.
        match self.tombstones.read() {
            Ok(tombstones) => tombstones.erased_at(subject),
            Err(_) => Some(i64::MIN),
        }
    }

    #[inline]
    fn shard(&self, probe: &Probe<'_>) -> Result<&RwLock<Shard>, Unavailable> {
        self.shards.get(shard_of(probe.key)).map(|p| &p.0).ok_or(Unavailable)
    }

    /// Resolves a subject id once, for many checks: its key, and its record if it has
    /// one now.
    pub(crate) fn resolve<'s>(&self, subject: &'s str) -> Resolved<'s> {
        let probe = Probe::new(&self.hasher, subject);
        let number = self.shard(&probe).ok().and_then(|shard| shard.read().ok()).and_then(|shard| shard.find(&probe));
        let hint = number.and_then(|n| u32::try_from(n + 1).ok()).unwrap_or(0);
        Resolved { probe, state: self.id, hint }
    }

    /// Runs `f` on the subject's state (`None`: unknown subject) under a read lock,
    /// unless the state is unreadable; staleness is not considered (see
    /// [`ConsentState::read_at`]).
    #[cfg(test)]
    pub(crate) fn read<R>(
        &self,
        subject: &str,
        f: impl FnOnce(Option<SubjectView<'_>>) -> R,
    ) -> Result<R, Unavailable> {
        self.read_at(Lookup::Id(subject), i64::MIN, f)
    }

    /// As [`ConsentState::read`], for a check made at `now` (the guard's clock, in
    /// milliseconds): a state past its freshness bound, or a quarantined subject, is
    /// unavailable.
    #[inline]
    pub(crate) fn read_at<R>(
        &self,
        subject: Lookup<'_>,
        now: i64,
        f: impl FnOnce(Option<SubjectView<'_>>) -> R,
    ) -> Result<R, Unavailable> {
        self.read_at_or(subject, now, |view| Ok(f(view)), || Err(Unavailable))
    }

    /// As [`ConsentState::read_at`], answering `unavailable()` where it answers
    /// `Err`: the check's verdict is returned as it is, not moved through a `Result`
    /// (about 15 instructions a check, issue 31).
    #[inline(always)]
    pub(crate) fn read_at_or<R>(
        &self,
        subject: Lookup<'_>,
        now: i64,
        f: impl FnOnce(Option<SubjectView<'_>>) -> R,
        unavailable: impl FnOnce() -> R,
    ) -> R {
        if now >= self.fresh_until.load(Ordering::Acquire) {
            return unavailable();
        }
        let computed;
        let (probe, hint) = match subject {
            Lookup::Resolved(resolved) if resolved.state == self.id => (&resolved.probe, resolved.hint),
            // Another state's key: this state's hash of the id.
            Lookup::Resolved(resolved) => {
                computed = Probe::new(&self.hasher, resolved.probe.subject);
                (&computed, 0)
            }
            Lookup::Id(subject) => {
                computed = Probe::new(&self.hasher, subject);
                (&computed, 0)
            }
        };
        let Ok(shard) = self.shard(probe) else { return unavailable() };
        let Ok(shard) = shard.read() else { return unavailable() };
        let erased;
        let view = match shard.find_hinted(probe, hint) {
            Some(number) => match shard.view(number) {
                Ok(view) => view,
                Err(Unavailable) => return unavailable(),
            },
            None => {
                erased = self.erased_record(probe);
                erased.as_ref().map(SubjectView::erased)
            }
        };
        f(view)
    }

    /// As [`ConsentState::read_at_or`], for the first [`GROUP`] of `subjects` at once:
    /// `each` is called once for each, in order, with its position and its view
    /// (`Err`: unreadable). Every shard the group needs is read-locked once, in
    /// ascending order, for the whole group; then every record is found, then every
    /// spilled subject's range and entry loaded, and only then is each subject handed
    /// to `each`. So a batch waits for a group's cache misses together, not one after
    /// another (see the module doc). `each` must not read this state.
    #[inline]
    pub(crate) fn read_group(
        &self,
        subjects: &[Lookup<'_>],
        now: i64,
        mut each: impl FnMut(usize, Result<Option<SubjectView<'_>>, Unavailable>),
    ) {
        let subjects = subjects.get(..GROUP).unwrap_or(subjects);
        if now >= self.fresh_until.load(Ordering::Acquire) {
            (0..subjects.len()).for_each(|index| each(index, Err(Unavailable)));
            return;
        }
        let mut probes = [(Probe::UNUSED, 0u32); GROUP];
        let mut wanted = 0u64;
        for (place, subject) in probes.iter_mut().zip(subjects) {
            *place = match *subject {
                Lookup::Resolved(resolved) if resolved.state == self.id => (resolved.probe, resolved.hint),
                Lookup::Resolved(resolved) => (Probe::new(&self.hasher, resolved.probe.subject), 0),
                Lookup::Id(subject) => (Probe::new(&self.hasher, subject), 0),
            };
            wanted |= 1 << shard_of(place.0.key);
        }
        let probes = probes.get(..subjects.len()).unwrap_or(&[]);
        // Ascending order, each shard once: a thread that took one shard's lock twice
        // could wait on itself behind a writer. A group needs at most `GROUP` shards.
        let mut held: [Option<RwLockReadGuard<'_, Shard>>; GROUP] = Default::default();
        let mut place_of = [u8::MAX; SHARDS];
        let mut rest = wanted;
        for (guard, place) in held.iter_mut().zip(0u8..) {
            if rest == 0 {
                break;
            }
            let index = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if let (Some(shard), Some(at)) = (self.shards.get(index), place_of.get_mut(index)) {
                // A poisoned shard stays `None`: its subjects are unreadable.
                *guard = shard.0.read().ok();
                *at = place;
            }
        }
        let shard_for = |probe: &Probe<'_>| {
            let place = place_of.get(shard_of(probe.key)).copied().unwrap_or(u8::MAX);
            held.get(usize::from(place)).and_then(Option::as_ref)
        };
        // Each subject's shard (`None`: poisoned) and record (`None`: unknown).
        let mut shards: [Option<&Shard>; GROUP] = [None; GROUP];
        let mut records: [Option<&Record>; GROUP] = [None; GROUP];
        for ((shard, record), (probe, hint)) in shards.iter_mut().zip(&mut records).zip(probes) {
            *shard = shard_for(probe).map(|guard| &**guard);
            *record = shard.and_then(|shard| shard.find_hinted(probe, *hint).and_then(|number| shard.record(number)));
        }
        for (shard, record) in shards.iter().zip(&records) {
            if let (Some(shard), Some(record)) = (shard, record) {
                shard.warm(record);
            }
        }
        for (index, ((shard, record), (probe, _))) in shards.iter().zip(&records).zip(probes).enumerate() {
            let Some(shard) = shard else {
                each(index, Err(Unavailable));
                continue;
            };
            match record {
                Some(record) => each(index, shard.view_of(record).map(Some)),
                None => {
                    let erased = self.erased_record(probe);
                    each(index, Ok(erased.as_ref().map(SubjectView::erased)));
                }
            }
        }
    }

    /// Marks a subject whose stored events the policy cannot all apply: its checks
    /// fail closed until the state is rebuilt (by a guard whose policy knows them).
    pub(crate) fn quarantine(&self, subject: &str) -> Result<(), Unavailable> {
        let probe = Probe::new(&self.hasher, subject);
        let mut shard = self.shard(&probe)?.write().map_err(|_| Unavailable)?;
        let number = match shard.find(&probe) {
            Some(number) => number,
            None => shard.insert(&probe, &self.hasher)?,
        };
        let index = shard.spill(number)?;
        shard.overflows.get_mut(index).ok_or(Unavailable)?.quarantined = true;
        Ok(())
    }

    /// Checks deciding before this instant (milliseconds) may read the state.
    pub(crate) fn fresh_until(&self) -> i64 {
        self.fresh_until.load(Ordering::Acquire)
    }

    /// The state may be read by checks deciding before `until` (milliseconds).
    pub(crate) fn set_fresh_until(&self, until: i64) {
        self.fresh_until.store(until, Ordering::Release);
    }

    /// Applies changes to one subject atomically: a reader sees all or none of them.
    pub(crate) fn update(&self, subject: &str, changes: impl IntoIterator<Item = Change>) -> Result<(), Unavailable> {
        let probe = Probe::new(&self.hasher, subject);
        let mut shard = self.shard(&probe)?.write().map_err(|_| Unavailable)?;
        let number = match shard.find(&probe) {
            Some(number) => number,
            None => {
                let number = shard.insert(&probe, &self.hasher)?;
                // A subject new to the state may have been erased in the store before
                // (its earlier events deleted, a tombstone kept): it stays erased, as
                // it would had the state seen the erase.
                if self.tombstoned.load(Ordering::Acquire) {
                    if let Some(at) = self.tombstone_of(subject) {
                        shard.apply(number, [Change::Erase { at }])?;
                    }
                }
                number
            }
        };
        shard.apply(number, changes)
    }

    /// Marks the state as unreadable (store down) or readable again.
    pub(crate) fn set_available(&self, available: bool) {
        self.set_fresh_until(if available { i64::MAX } else { i64::MIN });
    }

    pub(crate) fn is_available(&self) -> bool {
        self.fresh_until.load(Ordering::Acquire) != i64::MIN
    }

    /// Every subject the state knows, with `f` run on its state (`Err` for a
    /// quarantined one), shard by shard under each shard's read lock; `Err` when a
    /// shard cannot be read.
    pub(crate) fn for_each_subject(
        &self,
        mut f: impl FnMut(&str, Result<Option<SubjectView<'_>>, Unavailable>),
    ) -> Result<(), Unavailable> {
        for shard in self.shards.iter() {
            let shard = shard.0.read().map_err(|_| Unavailable)?;
            for number in 0..shard.len {
                let Some(record) = shard.record(number) else { continue };
                let id = match record.long_id() {
                    Some(index) => shard.long_ids.get(index).map(|id| &**id),
                    None => {
                        let len = usize::from(record.id[INLINE_ID]).min(INLINE_ID);
                        record.id.get(..len).and_then(|bytes| std::str::from_utf8(bytes).ok())
                    }
                };
                if let Some(id) = id {
                    f(id, shard.view(number));
                }
            }
        }
        Ok(())
    }

    /// How many subjects are known.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().map(|shard| shard.len).unwrap_or(0)).sum()
    }

    /// How many subjects spilled out of their records (for the benches' figures).
    #[cfg(test)]
    fn spilled(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().map(|shard| shard.overflows.len()).unwrap_or(0)).sum()
    }

    /// Every known subject's id, shard by shard (for the compiled filter's snapshot,
    /// which must hold every subject the guard knows). The ids are copied out so that
    /// no shard lock is held while the caller decides them.
    pub(crate) fn subject_ids(&self) -> Result<Vec<Box<str>>, Unavailable> {
        let mut ids = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let shard = shard.0.read().map_err(|_| Unavailable)?;
            for number in 0..shard.len {
                let record = shard.record(number).ok_or(Unavailable)?;
                ids.push(shard.id_of(record).into());
            }
        }
        Ok(ids)
    }

    /// Forgets every subject (before a reload from a store).
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            if let Ok(mut shard) = shard.0.write() {
                *shard = Shard::default();
            }
        }
        if let Ok(mut tombstones) = self.tombstones.write() {
            *tombstones = Arc::new(Tombstones::default());
        }
        self.tombstoned.store(false, Ordering::Release);
    }

    #[cfg(feature = "json")]
    /// Marks erased every subject the state holds whose id has a tombstone (as an
    /// `erase` event would; the events it holds stay, as the guard that recorded the
    /// erase keeps them): run when
    /// new tombstones arrive from a store shared with other processes. Costs one HMAC
    /// per subject held (about a microsecond each), and only then. Returns how many
    /// subjects it marked.
    pub(crate) fn erase_tombstoned(&self) -> Result<usize, Unavailable> {
        let tombstones = self.tombstones()?;
        if tombstones.is_empty() {
            return Ok(0);
        }
        let mut hits = Vec::new();
        self.for_each_subject(|id, _| {
            if let Some(at) = tombstones.erased_at(id) {
                hits.push((Box::<str>::from(id), at));
            }
        })?;
        for (id, at) in &hits {
            self.update(id, [Change::Erase { at: *at }])?;
        }
        Ok(hits.len())
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
        state.read(subject, |s| s.unwrap().events().iter().map(|e| e.at).collect()).unwrap()
    }

    /// What a check could tell of a subject's view: unreadable, unknown, or its
    /// events' times and erasure.
    fn seen(view: Result<Option<SubjectView<'_>>, Unavailable>) -> Option<Option<(Vec<i64>, Option<i64>)>> {
        view.ok().map(|view| view.map(|v| (v.events().iter().map(|e| e.at).collect(), v.erased_at())))
    }

    #[test]
    fn a_grouped_read_sees_each_subject_as_a_single_read_does() {
        let state = ConsentState::new();
        let other = ConsentState::new();
        let ids: Vec<String> = (0..300).map(|i| format!("subject-{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            match i % 3 {
                // One event (inline), five (spilled), none (unknown).
                0 => state.update(id, [withdraw(i as i64)]).unwrap(),
                1 => state.update(id, (0..5).map(|at| withdraw(i as i64 + at))).unwrap(),
                _ => {}
            }
            if i % 10 == 4 {
                state.quarantine(id).unwrap();
            }
        }
        // Handles of this state (with hints), of another state (re-hashed), and ids.
        let mine: Vec<Resolved<'_>> = ids.iter().map(|id| state.resolve(id)).collect();
        let foreign: Vec<Resolved<'_>> = ids.iter().map(|id| other.resolve(id)).collect();
        let lookups: Vec<Lookup<'_>> = (0..ids.len())
            .map(|i| match i % 4 {
                0 | 1 => Lookup::Resolved(&mine[i]),
                2 => Lookup::Resolved(&foreign[i]),
                _ => Lookup::Id(&ids[i]),
            })
            .collect();
        let mut compared = 0;
        for (start, group) in lookups.chunks(GROUP - 3).enumerate().map(|(n, g)| (n * (GROUP - 3), g)) {
            let mut got = Vec::new();
            state.read_group(group, 0, |index, view| got.push((index, seen(view))));
            for (index, (at, view)) in got.iter().enumerate() {
                assert_eq!(*at, index, "in order, once each");
                let single = state.read_at_or(group[index], 0, |v| seen(Ok(v)), || None);
                assert_eq!(*view, single, "{}", ids[start + index]);
                compared += 1;
            }
            assert_eq!(got.len(), group.len());
        }
        assert_eq!(compared, ids.len());
        // Only the first group of a longer slice is read.
        let mut calls = 0;
        state.read_group(&lookups, 0, |_, _| calls += 1);
        assert_eq!(calls, GROUP);
        // Past the freshness bound every subject is unreadable.
        state.set_fresh_until(10);
        let mut views = Vec::new();
        state.read_group(&lookups[..5], 10, |_, view| views.push(seen(view)));
        assert_eq!(views, vec![None; 5]);
        // An id with no record that a tombstone names reads as erased.
        let erased = ConsentState::erased_only(7, i64::MAX);
        let mut views = Vec::new();
        erased.read_group(&lookups[..3], 0, |_, view| views.push(seen(view)));
        assert_eq!(views, vec![Some(Some((vec![], Some(7)))); 3]);
    }

    #[test]
    fn layout_stays_small() {
        assert_eq!(std::mem::size_of::<StateEvent>(), 32);
        assert_eq!(std::mem::size_of::<Slot>(), 16);
        assert_eq!(std::mem::size_of::<Record>(), 48);
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
                let events = view.events();
                assert_eq!(events.iter().map(|e| e.at).collect::<Vec<_>>(), [2, 4]);
                assert_eq!(view.terms(&events[0]).unwrap().unwrap().expires_at, 99);
                assert!(view.terms(&events[1]).unwrap().is_none());
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
        let order: Vec<u128> = state.read("u", |s| s.unwrap().events().iter().map(|e| e.purposes()).collect()).unwrap();
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
    fn spilled_ranges_move_and_compact_without_losing_or_reordering_events() {
        let state = ConsentState::new();
        let subjects: Vec<String> = (0..2_000).map(|n| format!("s{n}")).collect();
        // Round after round over every subject, so that each range fills, moves (from
        // 4 to 8 to 16 events) and leaves garbage behind until the arenas compact; odd
        // rounds go back in time, so that events also slide into a range's middle.
        for round in 0..12i64 {
            for subject in &subjects {
                let at = if round % 2 == 0 { 1_000 + round } else { 100 - round };
                state.update(subject, [withdraw(at)]).unwrap();
            }
        }
        let mut expected: Vec<i64> =
            (0..12).map(|round| if round % 2 == 0 { 1_000 + round } else { 100 - round }).collect();
        expected.sort_unstable();
        for subject in &subjects {
            assert_eq!(times(&state, subject), expected, "{subject}");
        }
        let compactions: usize = state.shards.iter().map(|s| s.0.read().unwrap().compactions).sum();
        assert!(compactions >= SHARDS, "{compactions} compactions");
        for shard in state.shards.iter() {
            let shard = shard.0.read().unwrap();
            assert!(shard.garbage < MIN_GARBAGE || shard.garbage * 4 <= shard.events.len());
        }
        assert_eq!(state.spilled(), subjects.len());
    }

    #[test]
    fn many_events_of_one_subject_record_in_linear_time() {
        let state = ConsentState::new();
        let started = std::time::Instant::now();
        for at in 0..200_000 {
            state.update("u", [withdraw(at)]).unwrap();
        }
        assert_eq!(state.read("u", |s| s.unwrap().events().len()).unwrap(), 200_000);
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

    #[test]
    fn a_stale_state_and_a_quarantined_subject_fail_closed() {
        let state = ConsentState::new();
        state.update("u", [withdraw(1)]).unwrap();
        state.set_fresh_until(1_000);
        assert!(state.read_at(Lookup::Id("u"), 999, |_| ()).is_ok());
        assert_eq!(state.read_at(Lookup::Id("u"), 1_000, |_| ()), Err(Unavailable));
        state.set_available(true);
        assert!(state.read_at(Lookup::Id("u"), i64::MAX - 1, |_| ()).is_ok());
        state.quarantine("q").unwrap();
        state.quarantine("u").unwrap();
        assert_eq!(state.read_at(Lookup::Id("q"), 0, |_| ()), Err(Unavailable));
        assert_eq!(state.read_at(Lookup::Id("u"), 0, |_| ()), Err(Unavailable));
        assert!(state.read_at(Lookup::Id("v"), 0, |v| v.is_none()).unwrap());
        state.clear();
        assert!(state.read_at(Lookup::Id("u"), 0, |v| v.is_none()).unwrap());
    }

    fn grant(at: i64, purposes: u128) -> Change {
        Change::Grant { at, purposes, level: ConsentLevel::Explicit, by_guardian: false, terms: None }
    }

    /// The end of a purpose has no compact slot: the subject spills, and the end is
    /// among its spilled events, after the grant it follows.
    #[test]
    fn an_end_spills() {
        let state = ConsentState::new();
        state.update("u", [grant(1, 2), Change::End { at: 5, purposes: 2 }]).unwrap();
        assert_eq!(state.spilled(), 1);
        let ends = state
            .read("u", |v| v.unwrap().spilled_events().iter().map(|e| (e.at, e.is_end())).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(ends, vec![(1, false), (5, true)]);
        let inline = ConsentState::new();
        inline.update("u", [grant(1, 2)]).unwrap();
        assert!(inline.read("u", |v| v.unwrap().spilled_events().is_empty()).unwrap());
    }

    /// Everything a record holds inline reads back as recorded, and what does not fit
    /// spills whole, reading back the same.
    #[test]
    fn inline_and_spilled_records_read_alike() {
        let day = DAY_MS;
        let age = Change::Attributes { adult_from: Some(40 * day), sensitive_until: Some(30 * day) };
        let cases: Vec<(Vec<Change>, bool)> = vec![
            (vec![grant(1, 1 << 3)], false),
            (vec![grant(2, 1 << 127 | 1 << 64 | 1), withdraw(1)], false),
            (vec![age.clone(), grant(1, 2)], false),
            (vec![grant(1, 2), Change::Erase { at: 9 }, Change::Erase { at: 5 }], false),
            (vec![age.clone(), Change::Erase { at: 9 }, grant(1, 2)], false),
            (vec![grant(1, 0b1111)], true),
            (vec![grant(1, 1), grant(2, 2), withdraw(3)], true),
            (vec![age.clone(), grant(1, 1), grant(2, 2)], true),
            (vec![Change::Attributes { adult_from: Some(5), sensitive_until: Some(day + 1) }], true),
        ];
        for (changes, spills) in cases {
            let state = ConsentState::new();
            state.update("u", changes.clone()).unwrap();
            assert_eq!(state.spilled(), usize::from(spills), "{changes:?}");
            // The same changes one at a time, forced to spill first: the full form.
            let spilled = ConsentState::new();
            spilled.update("u", [withdraw(i64::MIN)]).unwrap();
            spilled.update("u", [withdraw(i64::MIN), withdraw(i64::MIN)]).unwrap();
            for change in &changes {
                spilled.update("u", [change.clone()]).unwrap();
            }
            let read = |state: &ConsentState| {
                state
                    .read("u", |v| {
                        let v = v.unwrap();
                        let events: Vec<_> = v
                            .events()
                            .iter()
                            .filter(|e| e.at != i64::MIN)
                            .map(|e| (e.at, e.purposes(), e.is_withdrawal(), e.level, e.by_guardian()))
                            .collect();
                        (events, v.erased_at(), v.adult_from(), v.sensitive_until())
                    })
                    .unwrap()
            };
            assert_eq!(read(&state), read(&spilled), "{changes:?}");
        }
    }

    #[test]
    fn an_erasure_forgets_the_age_inline_too() {
        let state = ConsentState::new();
        let age = Change::Attributes { adult_from: Some(40 * DAY_MS), sensitive_until: None };
        state.update("u", [age.clone(), Change::Erase { at: 7 }, age]).unwrap();
        let facts = state.read("u", |v| v.map(|v| (v.erased_at(), v.adult_from(), v.sensitive_until()))).unwrap();
        assert_eq!(facts, Some((Some(7), Some(i64::MAX), Some(i64::MAX))));
        assert_eq!(state.spilled(), 0);
    }

    /// A resolved id's hint is checked against the record's id: after a reload that
    /// renumbers records, and for an id resolved while unknown, it reads the right
    /// subject or none.
    #[test]
    fn resolved_ids_survive_renumbering_and_other_states() {
        let state = ConsentState::new();
        state.update("a", [withdraw(1)]).unwrap();
        state.update("b", [withdraw(2)]).unwrap();
        let (a, b, c) = (state.resolve("a"), state.resolve("b"), state.resolve("c"));
        assert!(a.was_known() && b.was_known() && !c.was_known());
        let at = |state: &ConsentState, r: &Resolved<'_>| {
            state.read_at(Lookup::Resolved(r), 0, |v| v.map(|v| v.events()[0].at)).unwrap()
        };
        assert_eq!((at(&state, &a), at(&state, &b), at(&state, &c)), (Some(1), Some(2), None));
        state.update("c", [withdraw(3)]).unwrap();
        assert_eq!(at(&state, &c), Some(3), "known since");
        state.clear();
        state.update("b", [withdraw(20)]).unwrap();
        state.update("a", [withdraw(10)]).unwrap();
        assert_eq!((at(&state, &a), at(&state, &b), at(&state, &c)), (Some(10), Some(20), None));
        let other = ConsentState::new();
        other.update("a", [withdraw(100)]).unwrap();
        assert_eq!((at(&other, &a), at(&other, &b)), (Some(100), None), "another state's keys");
        state.quarantine("a").unwrap();
        assert_eq!(state.read_at(Lookup::Resolved(&a), 0, |_| ()), Err(Unavailable));
    }

    /// Tombstones answer only for ids the state holds nothing for; a subject new to
    /// the state under a tombstoned id starts erased; `erase_tombstoned` marks held
    /// subjects.
    #[cfg(feature = "json")]
    #[test]
    fn tombstones_stand_for_ids_the_state_does_not_hold() {
        let master = crate::keys::MasterKey::from_bytes([5; 32]);
        let state = ConsentState::new();
        state.update("held", [withdraw(1)]).unwrap();
        let erased_at = |state: &ConsentState, id: &str| state.read(id, |v| v.and_then(|v| v.erased_at())).unwrap();
        assert_eq!(erased_at(&state, "gone"), None);
        let tombstones = Tombstones::from_locators(
            master.clone(),
            [(master.locator("gone"), 40), (master.locator("held"), 30), (master.locator("back"), 50)],
        );
        state.set_tombstones(tombstones).unwrap();
        assert_eq!(erased_at(&state, "gone"), Some(40), "an unknown tombstoned id reads as erased");
        assert_eq!(state.read("gone", |v| v.map(|v| v.events().len())).unwrap(), Some(0));
        assert_eq!(erased_at(&state, "stranger"), None);
        assert_eq!(erased_at(&state, "held"), None, "a held subject is not looked up until marked");
        assert_eq!(state.len(), 1, "reading adds no subject");
        state.update("back", [withdraw(60)]).unwrap();
        assert_eq!(erased_at(&state, "back"), Some(50), "events after an erasure do not undo it");
        assert_eq!(times(&state, "back"), [60]);
        assert_eq!(state.erase_tombstoned().unwrap(), 2, "held and back");
        assert_eq!(erased_at(&state, "held"), Some(30));
        assert_eq!(times(&state, "held"), [1], "as an erase event would, the events stay");
        state.clear();
        assert_eq!(erased_at(&state, "gone"), None, "clear drops the tombstones");
        let only = ConsentState::erased_only(9, i64::MAX);
        assert_eq!(erased_at(&only, "anyone"), Some(9));
    }

    #[test]
    fn records_grow_by_chunks() {
        let state = ConsentState::new();
        for index in 0..(CHUNK * SHARDS * 3) {
            state.update(&format!("subject-with-a-long-id-{index}"), [withdraw(index as i64)]).unwrap();
        }
        for index in (0..(CHUNK * SHARDS * 3)).step_by(97) {
            assert_eq!(times(&state, &format!("subject-with-a-long-id-{index}")), [index as i64]);
        }
    }
}
