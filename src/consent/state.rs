//! The consent state the guard reads on every check: per subject, the events compiled
//! to bit masks and milliseconds, sorted by time, in a sharded map.
//!
//! Why sharded `RwLock`s: a check takes one uncontended read lock on one of many
//! shards, so readers on different subjects do not share a cache line, and an update
//! of a subject is applied whole under the write lock (a check sees the state before
//! or after it, never half of it). Subject ids are hashed once with a per-process key
//! (std's SipHash), and that hash is the map key, so the id is not hashed twice.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::basis::ConsentLevel;
use crate::policy::PolicyVersion;
use crate::request::Region;

const SHARDS: usize = 64;

/// One compiled consent event of a subject.
#[derive(Clone, Debug)]
pub(crate) struct StateEvent {
    pub(crate) at: i64,
    /// The purposes the event names (not down-closed: a check tests them against the
    /// request purpose's ancestors).
    pub(crate) purposes: u128,
    pub(crate) kind: EventKind,
}

#[derive(Clone, Debug)]
pub(crate) enum EventKind {
    Withdraw,
    Grant(Grant),
}

#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) level: ConsentLevel,
    pub(crate) by_guardian: bool,
    pub(crate) version: PolicyVersion,
    /// `i64::MAX` when the grant does not expire.
    pub(crate) expires_at: i64,
    pub(crate) scope: Option<Box<ScopeMask>>,
}

/// A grant's scope, compiled. A zero mask or empty list means no limit.
#[derive(Clone, Debug, Default)]
pub(crate) struct ScopeMask {
    pub(crate) recipients_limited: bool,
    pub(crate) recipients: u64,
    pub(crate) regions: Vec<Region>,
    pub(crate) categories: u128,
}

/// What the guard knows of one subject.
#[derive(Clone, Debug)]
pub(crate) struct SubjectState {
    /// When the subject stops being a minor for this policy; [`AGE_UNKNOWN`]: unknown.
    adult_from: i64,
    /// `i64::MAX` when not erased.
    pub(crate) erased_at: i64,
    /// Sorted by time; events of equal time keep the order they were recorded in.
    /// A boxed slice sized exactly: most subjects have one or two events, and a
    /// growable vector would reserve room for four.
    pub(crate) events: Box<[StateEvent]>,
}

/// `adult_from` of a subject whose age is unknown.
const AGE_UNKNOWN: i64 = i64::MIN;

impl Default for SubjectState {
    fn default() -> Self {
        SubjectState { adult_from: AGE_UNKNOWN, erased_at: i64::MAX, events: Box::default() }
    }
}

/// A compiled change to a subject's state.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    Attributes { adult_from: Option<i64> },
    Event(StateEvent),
    Erase { at: i64 },
}

impl SubjectState {
    /// When the subject stops being a minor; `None` when the age is unknown.
    pub(crate) fn adult_from(&self) -> Option<i64> {
        (self.adult_from != AGE_UNKNOWN).then_some(self.adult_from)
    }

    /// Applies a group of changes, rebuilding the event list once.
    pub(crate) fn apply(&mut self, changes: impl IntoIterator<Item = Change>) {
        let mut events: Option<Vec<StateEvent>> = None;
        for change in changes {
            match change {
                Change::Attributes { adult_from } => self.adult_from = adult_from.unwrap_or(AGE_UNKNOWN),
                Change::Event(event) => {
                    let list = events.get_or_insert_with(|| std::mem::take(&mut self.events).into_vec());
                    // Usually appended at the end; an event from the past slides back
                    // to its place in time, after the events of the same instant.
                    let position = list.partition_point(|e| e.at <= event.at);
                    list.insert(position, event);
                }
                Change::Erase { at } => self.erased_at = self.erased_at.min(at),
            }
        }
        if let Some(list) = events {
            self.events = list.into_boxed_slice();
        }
    }
}

struct Entry {
    subject: Box<str>,
    state: SubjectState,
}

/// Entries under one 64-bit key: almost always one; a hash collision adds more (a
/// boxed slice, empty without allocating, keeps the common slot small).
struct Slot {
    first: Entry,
    others: Box<[Entry]>,
}

impl Slot {
    fn find(&self, subject: &str) -> Option<&SubjectState> {
        if &*self.first.subject == subject {
            return Some(&self.first.state);
        }
        self.others.iter().find(|e| &*e.subject == subject).map(|e| &e.state)
    }
}

/// The keys are already keyed SipHash outputs, so the map passes them through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type Shard = HashMap<u64, Slot, BuildHasherDefault<PassThrough>>;

/// The consent state of every subject a guard knows.
pub(crate) struct ConsentState {
    shards: Box<[RwLock<Shard>]>,
    keys: RandomState,
    available: AtomicBool,
}

/// The state cannot be read: the guard fails closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unavailable;

impl ConsentState {
    pub(crate) fn new() -> ConsentState {
        ConsentState {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            keys: RandomState::new(),
            available: AtomicBool::new(true),
        }
    }

    fn locate(&self, subject: &str) -> (u64, Option<&RwLock<Shard>>) {
        let key = self.keys.hash_one(subject);
        // The high bits pick the shard; the map uses the low bits for its buckets.
        let shard = (key >> 58) as usize % SHARDS;
        (key, self.shards.get(shard))
    }

    /// Runs `f` on the subject's state (`None`: unknown subject) under a read lock.
    pub(crate) fn read<R>(&self, subject: &str, f: impl FnOnce(Option<&SubjectState>) -> R) -> Result<R, Unavailable> {
        if !self.available.load(Ordering::Acquire) {
            return Err(Unavailable);
        }
        let (key, shard) = self.locate(subject);
        let guard = shard.ok_or(Unavailable)?.read().map_err(|_| Unavailable)?;
        Ok(f(guard.get(&key).and_then(|slot| slot.find(subject))))
    }

    /// Applies changes to one subject atomically: a reader sees all or none of them.
    pub(crate) fn update(&self, subject: &str, changes: impl IntoIterator<Item = Change>) -> Result<(), Unavailable> {
        let (key, shard) = self.locate(subject);
        let mut guard = shard.ok_or(Unavailable)?.write().map_err(|_| Unavailable)?;
        let slot = guard.entry(key).or_insert_with(|| Slot {
            first: Entry { subject: subject.into(), state: SubjectState::default() },
            others: Box::default(),
        });
        let state = if &*slot.first.subject == subject {
            &mut slot.first.state
        } else {
            let index = match slot.others.iter().position(|e| &*e.subject == subject) {
                Some(index) => index,
                None => {
                    let mut others = std::mem::take(&mut slot.others).into_vec();
                    others.push(Entry { subject: subject.into(), state: SubjectState::default() });
                    slot.others = others.into_boxed_slice();
                    slot.others.len() - 1
                }
            };
            match slot.others.get_mut(index) {
                Some(entry) => &mut entry.state,
                None => return Err(Unavailable),
            }
        };
        state.apply(changes);
        Ok(())
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
        self.shards
            .iter()
            .map(|s| s.read().map(|m| m.values().map(|slot| 1 + slot.others.len()).sum::<usize>()).unwrap_or(0))
            .sum()
    }

    /// Forgets every subject (before a reload from a store).
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            if let Ok(mut map) = shard.write() {
                map.clear();
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
        Change::Event(StateEvent { at, purposes: 1, kind: EventKind::Withdraw })
    }

    #[test]
    fn events_stay_sorted_by_time_and_stable() {
        let state = ConsentState::new();
        for at in [5, 1, 5, 3] {
            state.update("u", [withdraw(at)]).unwrap();
        }
        let times = state.read("u", |s| s.unwrap().events.iter().map(|e| e.at).collect::<Vec<_>>()).unwrap();
        assert_eq!(times, [1, 3, 5, 5]);
        assert!(state.read("v", |s| s.is_none()).unwrap());
    }

    #[test]
    fn unavailable_state_fails_closed() {
        let state = ConsentState::new();
        state.set_available(false);
        assert_eq!(state.read("u", |_| ()), Err(Unavailable));
    }
}
