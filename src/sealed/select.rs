//! Bulk access for pipelines: a training job or an analytics export streams sealed
//! records through the guard and gets only the values it may use, with a count of
//! what was withheld and why.
//!
//! The per-record path allocates nothing: the request borrows the record's subject and
//! category and the access's recipient and session, and only the reason code of the
//! decision is kept. Every record is still one [`Guard::check`], audited, read against
//! the consent state of that moment: a withdrawal recorded while a selection runs
//! withholds the subject's next record.

use std::collections::VecDeque;
use std::fmt;
use std::iter::FusedIterator;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Access, Personal, Tags};
use crate::decision::ReasonCode;
use crate::guard::Guard;

/// How many reason codes there are: one counter each.
const CODES: usize = ReasonCode::ALL.len();

/// What a selection kept and withheld, with a count per [`ReasonCode`].
///
/// `Display` prints `kept 2 of 5, withheld 3 (consent_missing 2, consent_withdrawn 1)`;
/// `Serialize` writes `{"kept":2,"withheld":{"consent_missing":2,"consent_withdrawn":1}}`.
///
/// ```
/// use consent_guard::sealed::{self, Access, Personal, Tags};
/// use consent_guard::{DataCategory, Guard, Policy, Purpose, ReasonCode};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let now = chrono::Utc::now();
/// let records = [
///     Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, now), 1),
///     Personal::new(Tags::new("u1", DataCategory::CONTENT_CHAT, now), 2),
/// ];
/// let access = Access::new(Purpose::SECURITY_OPERATIONS);
/// let mut selection = sealed::select(&guard, &records, &access);
/// assert_eq!(selection.by_ref().count(), 1);
/// let tally = selection.into_tally();
/// assert_eq!((tally.kept(), tally.withheld()), (1, 1));
/// assert_eq!(tally.withheld_for(ReasonCode::CategoryNotPermitted), 1);
/// assert_eq!(tally.to_string(), "kept 1 of 2, withheld 1 (category_not_permitted 1)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    kept: u64,
    withheld: [u64; CODES],
}

impl Tally {
    /// How many records were kept.
    ///
    /// ```
    /// assert_eq!(consent_guard::sealed::Tally::default().kept(), 0);
    /// ```
    pub fn kept(&self) -> u64 {
        self.kept
    }

    /// How many records were withheld, for any reason.
    ///
    /// ```
    /// assert_eq!(consent_guard::sealed::Tally::default().withheld(), 0);
    /// ```
    pub fn withheld(&self) -> u64 {
        self.withheld.iter().sum()
    }

    /// How many records were withheld for one reason.
    ///
    /// ```
    /// use consent_guard::ReasonCode;
    ///
    /// assert_eq!(consent_guard::sealed::Tally::default().withheld_for(ReasonCode::ConsentWithdrawn), 0);
    /// ```
    pub fn withheld_for(&self, code: ReasonCode) -> u64 {
        slot(code).and_then(|i| self.withheld.get(i)).copied().unwrap_or(0)
    }

    /// The reasons records were withheld for, with their counts, in the order of
    /// [`ReasonCode::ALL`]; reasons that withheld nothing are left out.
    ///
    /// ```
    /// assert_eq!(consent_guard::sealed::Tally::default().reasons().count(), 0);
    /// ```
    pub fn reasons(&self) -> impl Iterator<Item = (ReasonCode, u64)> + '_ {
        ReasonCode::ALL.iter().zip(self.withheld.iter()).filter(|(_, n)| **n > 0).map(|(code, n)| (*code, *n))
    }

    /// How many records were seen: kept and withheld.
    ///
    /// ```
    /// assert_eq!(consent_guard::sealed::Tally::default().seen(), 0);
    /// ```
    pub fn seen(&self) -> u64 {
        self.kept + self.withheld()
    }

    /// Decides one record and counts the answer; whether it may be used.
    fn admit(&mut self, guard: &Guard, access: &Access<'_>, tags: &Tags) -> bool {
        let request = access.request(tags);
        let code = guard.check(&request).code();
        self.count(code)
    }

    /// As `admit`, for a chunk that shares one audit commit: nothing admitted may be
    /// released before [`Guard::audit_commit`] returns `Ok`.
    fn admit_deferred(&mut self, guard: &Guard, access: &Access<'_>, tags: &Tags) -> bool {
        let request = access.request(tags);
        let code = guard.check_deferred(&request).code();
        self.count(code)
    }

    /// `count` allows of a chunk whose commit failed become `audit_unavailable`.
    fn unaudit(&mut self, count: usize) {
        let count = count as u64;
        self.kept = self.kept.saturating_sub(count);
        if let Some(slot) = slot(ReasonCode::AuditUnavailable).and_then(|i| self.withheld.get_mut(i)) {
            *slot += count;
        }
    }

    fn count(&mut self, code: ReasonCode) -> bool {
        if code.is_allow() {
            self.kept += 1;
            return true;
        }
        if let Some(count) = slot(code).and_then(|i| self.withheld.get_mut(i)) {
            *count += 1;
        }
        false
    }
}

/// The counter of a code: its position in [`ReasonCode::ALL`]. `None` only if the
/// enum grew without `ALL`, which its own tests forbid.
fn slot(code: ReasonCode) -> Option<usize> {
    ReasonCode::ALL.iter().position(|c| *c == code)
}

impl std::ops::AddAssign for Tally {
    /// Adds another tally: the total of several batches.
    fn add_assign(&mut self, other: Tally) {
        self.kept += other.kept;
        for (mine, theirs) in self.withheld.iter_mut().zip(other.withheld) {
            *mine += theirs;
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kept {} of {}, withheld {}", self.kept, self.seen(), self.withheld())?;
        let mut reasons = self.reasons();
        if let Some((code, count)) = reasons.next() {
            write!(f, " ({code} {count}")?;
            for (code, count) in reasons {
                write!(f, ", {code} {count}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Serialize for Tally {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Reasons<'t>(&'t Tally);
        impl Serialize for Reasons<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                for (code, count) in self.0.reasons() {
                    map.serialize_entry(code.as_str(), &count)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("kept", &self.kept)?;
        map.serialize_entry("withheld", &Reasons(self))?;
        map.end()
    }
}

/// Selects, from borrowed records, the values the guard allows for an access: an
/// iterator of `&T`, lazily, one audited [`Guard::check`] per record. The
/// [`Tally`] counts what was kept and withheld so far.
///
/// ```
/// use consent_guard::sealed::{self, Access, Personal, Tags};
/// use consent_guard::{DataCategory, Deidentification, Guard, Policy, Purpose, ReasonCode};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// # let grant = r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2025-01-01T00:00:00Z"}"#;
/// # guard.record(&serde_json::from_str(grant)?)?;
/// // u1 gave separate consent to training; u2 did not.
/// let now = chrono::Utc::now();
/// let anonymous = |subject: &str| Tags::new(subject, DataCategory::BEHAVIOR_LOG, now).deidentification(Deidentification::Anonymized);
/// let records = vec![
///     Personal::new(anonymous("u1"), "opened task 7"),
///     Personal::new(anonymous("u2"), "opened task 8"),
///     Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, now), "u1 opened task 9"),
/// ];
/// let training = Access::new(Purpose::AI_TRAINING_MODEL_TRAINING);
/// let mut selection = sealed::select(&guard, &records, &training);
/// let batch: Vec<&&str> = selection.by_ref().collect();
/// assert_eq!(batch, [&"opened task 7"]);
/// assert_eq!(selection.tally().withheld_for(ReasonCode::ConsentMissing), 1);
/// assert_eq!(selection.tally().withheld_for(ReasonCode::DeidentificationRequired), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn select<'g, 'a, 'p, T: 'p, I>(guard: &'g Guard, records: I, access: &'a Access<'a>) -> Select<'g, 'a, I::IntoIter>
where
    I: IntoIterator<Item = &'p Personal<T>>,
{
    let defers = guard.audit_defers();
    Select { guard, access, records: records.into_iter(), tally: Tally::default(), defers, ready: VecDeque::new() }
}

/// Selects, from owned records, the values the guard allows for an access, moving them
/// out: an iterator of `T`. Records withheld are dropped.
///
/// ```
/// use consent_guard::sealed::{self, Access, Personal, Tags};
/// use consent_guard::{DataCategory, Guard, Policy, Purpose};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let now = chrono::Utc::now();
/// let records = (0..3).map(|i| Personal::new(Tags::new(format!("u{i}"), DataCategory::BEHAVIOR_LOG, now), i));
/// let access = Access::new(Purpose::SECURITY_OPERATIONS);
/// assert_eq!(sealed::select_owned(&guard, records, &access).sum::<i32>(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn select_owned<'g, 'a, T, I>(
    guard: &'g Guard,
    records: I,
    access: &'a Access<'a>,
) -> SelectOwned<'g, 'a, I::IntoIter>
where
    I: IntoIterator<Item = Personal<T>>,
{
    let defers = guard.audit_defers();
    SelectOwned { guard, access, records: records.into_iter(), tally: Tally::default(), defers, ready: VecDeque::new() }
}

/// How many records a selection decides before it waits for their one audit commit,
/// when the sink defers records (a synced [`crate::audit::AuditLog`]).
const CHUNK: usize = 4096;

/// With a sink that defers records: decides up to [`CHUNK`] records, waits for their
/// one commit, then releases the allowed ones. The consent state is read when a chunk
/// is decided, up to a chunk ahead of what is released. If the commit fails, the
/// chunk's allows are withheld as `audit_unavailable`.
fn next_deferred<R, I: Iterator<Item = R>>(
    guard: &Guard,
    access: &Access<'_>,
    records: &mut I,
    tally: &mut Tally,
    ready: &mut VecDeque<R>,
    tags: impl Fn(&R) -> &Tags,
) -> Option<R> {
    loop {
        if let Some(record) = ready.pop_front() {
            return Some(record);
        }
        let mut seen = 0;
        for record in records.by_ref() {
            if tally.admit_deferred(guard, access, tags(&record)) {
                ready.push_back(record);
            }
            seen += 1;
            if seen == CHUNK {
                break;
            }
        }
        if seen == 0 {
            return None;
        }
        if guard.audit_commit().is_err() {
            tally.unaudit(ready.len());
            ready.clear();
        }
    }
}

/// The iterator of [`select`]: the values of the allowed records, borrowed.
///
/// ```
/// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
/// use consent_guard::{DataCategory, Guard, Policy, Purpose};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let records = [Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 1)];
/// let access = Access::new(Purpose::SECURITY_OPERATIONS);
/// let mut selection = guard.select(&records, &access);
/// assert_eq!(selection.next(), Some(&1));
/// assert_eq!(selection.next(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Select<'g, 'a, I: Iterator> {
    guard: &'g Guard,
    access: &'a Access<'a>,
    records: I,
    tally: Tally,
    /// The sink defers records: decide a chunk, commit once, then release it.
    defers: bool,
    /// Records of a committed chunk that were allowed, not yet handed out.
    ready: VecDeque<I::Item>,
}

impl<I: Iterator> Select<'_, '_, I> {
    /// What was kept and withheld so far.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let records = [Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 1)];
    /// let access = Access::new(Purpose::SECURITY_OPERATIONS);
    /// let mut selection = guard.select(&records, &access);
    /// assert_eq!(selection.tally().seen(), 0);
    /// selection.next();
    /// assert_eq!(selection.tally().kept(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The tally, once the selection is done.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let records = [Personal::new(Tags::new("u1", DataCategory::CONTENT_CHAT, chrono::Utc::now()), 1)];
    /// let access = Access::new(Purpose::SECURITY_OPERATIONS);
    /// let mut selection = guard.select(&records, &access);
    /// selection.by_ref().for_each(drop);
    /// assert_eq!(selection.into_tally().withheld(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_tally(self) -> Tally {
        self.tally
    }
}

impl<'p, T: 'p, I: Iterator<Item = &'p Personal<T>>> Iterator for Select<'_, '_, I> {
    type Item = &'p T;

    fn next(&mut self) -> Option<&'p T> {
        if self.defers {
            return next_deferred(self.guard, self.access, &mut self.records, &mut self.tally, &mut self.ready, |p| {
                &p.tags
            })
            .map(|personal| &personal.value);
        }
        for personal in self.records.by_ref() {
            if self.tally.admit(self.guard, self.access, &personal.tags) {
                return Some(&personal.value);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.records.size_hint().1)
    }
}

impl<'p, T: 'p, I: FusedIterator<Item = &'p Personal<T>>> FusedIterator for Select<'_, '_, I> {}

impl<I: Iterator> fmt::Debug for Select<'_, '_, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select").field("access", self.access).field("tally", &self.tally).finish_non_exhaustive()
    }
}

/// The iterator of [`select_owned`]: the values of the allowed records, moved out.
///
/// ```
/// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
/// use consent_guard::{DataCategory, Guard, Policy, Purpose};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let records = vec![Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 1)];
/// let access = Access::new(Purpose::SECURITY_OPERATIONS);
/// let mut selection = guard.select_owned(records, &access);
/// assert_eq!(selection.next(), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SelectOwned<'g, 'a, I: Iterator> {
    guard: &'g Guard,
    access: &'a Access<'a>,
    records: I,
    tally: Tally,
    /// The sink defers records: decide a chunk, commit once, then release it.
    defers: bool,
    /// Records of a committed chunk that were allowed, not yet handed out.
    ready: VecDeque<I::Item>,
}

impl<I: Iterator> SelectOwned<'_, '_, I> {
    /// What was kept and withheld so far.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let records = vec![Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 1)];
    /// let access = Access::new(Purpose::SECURITY_OPERATIONS);
    /// let mut selection = guard.select_owned(records, &access);
    /// selection.next();
    /// assert_eq!(selection.tally().kept(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The tally, once the selection is done.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let records = vec![Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 1)];
    /// let access = Access::new(Purpose::MARKETING);
    /// let mut selection = guard.select_owned(records, &access);
    /// selection.by_ref().for_each(drop);
    /// assert_eq!(selection.into_tally().withheld(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_tally(self) -> Tally {
        self.tally
    }
}

impl<T, I: Iterator<Item = Personal<T>>> Iterator for SelectOwned<'_, '_, I> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.defers {
            return next_deferred(self.guard, self.access, &mut self.records, &mut self.tally, &mut self.ready, |p| {
                &p.tags
            })
            .map(|personal| personal.value);
        }
        for personal in self.records.by_ref() {
            if self.tally.admit(self.guard, self.access, &personal.tags) {
                return Some(personal.value);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.records.size_hint().1)
    }
}

impl<T, I: FusedIterator<Item = Personal<T>>> FusedIterator for SelectOwned<'_, '_, I> {}

impl<I: Iterator> fmt::Debug for SelectOwned<'_, '_, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectOwned").field("access", self.access).field("tally", &self.tally).finish_non_exhaustive()
    }
}
