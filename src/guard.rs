//! The guard: every access to personal data passes through [`Guard::check`], which
//! answers a [`Decision`] from the compiled policy and the subject's consent state,
//! deny by default and fail closed, and hands an audit record to the sink.
//!
//! ```
//! use consent_guard::{AccessRequest, DataCategory, Deidentification, Guard, Policy, Purpose, ReasonCode};
//!
//! let policy = Policy::from_toml_file("examples/policies/exmo.toml")?;
//! let guard = Guard::new(policy);
//! let training = AccessRequest::new("u1", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
//!     .deidentification(Deidentification::Anonymized);
//! assert_eq!(guard.check(&training).code(), ReasonCode::ConsentMissing);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A job that checks one kind of access for many subjects prepares it once
//! ([`Guard::prepare`]): each [`PreparedAccess::check`] then reads only the subject's
//! consent, and answers what `check` would. A caller that names the same subjects
//! again and again resolves each id once ([`Guard::subject_handle`]):
//! [`PreparedAccess::check_handle`] and [`Guard::check_handle`] then hash no string.

mod handle;
mod plan;
mod prepared;
mod quarantine;

pub use handle::SubjectHandle;
pub use prepared::PreparedAccess;
pub use quarantine::QuarantinedEvent;

use std::fmt;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};

use crate::audit::{AuditRecord, AuditSink, NoAuditSink};
use crate::clock::{Clock, SystemClock};
use crate::consent::state::{Change, ConsentState, Lookup, ScopeMask, Terms};
use crate::consent::{ConsentEvent, ConsentHistory};
use crate::decision::{Decision, Facts};
use crate::error::{EventError, StoreError};
use crate::policy::{Policy, PolicyVersion};
use crate::purpose::Purpose;
use crate::request::AccessRequest;
use crate::store::ConsentStore;
use plan::Plan;

/// Decides every access to personal data. `Send + Sync`: share one guard between
/// threads; checks run concurrently with consent updates and see the state either
/// before or after each update.
pub struct Guard {
    policy: Policy,
    state: ConsentState,
    audit: Arc<dyn AuditSink>,
    /// The sink discards records unread: prepared checks skip building them.
    audit_discards: bool,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn ConsentStore>>,
    /// Store positions applied so far; appends and syncs serialise on it so that each
    /// position is applied once.
    applied: std::sync::Mutex<Applied>,
    /// How long the state stays usable after a sync confirmed it current, in
    /// milliseconds of the guard's clock; `None` when no other process writes the
    /// store (or there is none), so the state cannot go stale.
    max_staleness: Option<i64>,
    /// Stored events the policy cannot apply, skipped by syncs.
    quarantined: std::sync::Mutex<Vec<QuarantinedEvent>>,
}

/// How long a guard over a shared store may answer from its state after the store last
/// confirmed it current, unless [`GuardBuilder::max_staleness`] says.
pub const DEFAULT_MAX_STALENESS: std::time::Duration = std::time::Duration::from_secs(1);

/// Which store positions the guard's state reflects.
#[derive(Debug, Default)]
struct Applied {
    /// Every position up to this one is applied.
    through: u64,
    /// Positions above `through` already applied (this guard's own appends, awaiting
    /// the sync that closes the gap below them).
    ahead: std::collections::BTreeSet<u64>,
}

/// How many events a sync reads from the store at a time.
const SYNC_BATCH: usize = 4096;

/// Configures a [`Guard`]: audit sink, clock and consent store.
#[must_use]
pub struct GuardBuilder {
    policy: Policy,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn ConsentStore>>,
    max_staleness: std::time::Duration,
}

impl GuardBuilder {
    /// How long the guard may answer from its consent state after a store shared with
    /// other processes last confirmed it current (a successful [`Guard::sync`], which
    /// [`Guard::follow`] runs continually): [`DEFAULT_MAX_STALENESS`], 1 s, unless
    /// set. Past it, every check that depends on consent denies with
    /// `consent_state_unavailable` until a sync succeeds again, so a replica cut off
    /// from its store cannot go on allowing what another replica has seen withdrawn.
    /// Measured on the guard's clock; ignored for stores no other process writes
    /// ([`ConsentStore::shared`]). Rounded down to milliseconds.
    pub fn max_staleness(mut self, max_staleness: std::time::Duration) -> Self {
        self.max_staleness = max_staleness;
        self
    }

    /// Where audit records go ([`NoAuditSink`] by default).
    pub fn audit(mut self, sink: impl AuditSink + 'static) -> Self {
        self.audit = Arc::new(sink);
        self
    }

    /// Where "now" comes from ([`SystemClock`] by default).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where consent events are kept; the guard replays it when built and appends to it
    /// before every change of its state.
    pub fn store(mut self, store: impl ConsentStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Builds the guard, replaying the store if there is one.
    ///
    /// # Errors
    ///
    /// When the store cannot be read, or holds an event this policy cannot apply.
    pub fn build(self) -> Result<Guard, EventError> {
        let guard = self.assemble();
        guard.reload()?;
        Ok(guard)
    }

    /// As [`GuardBuilder::build`], replaying the store from async code (through
    /// [`ConsentStore::events_since_async`], which keeps a PostgreSQL store's I/O off
    /// the caller's runtime).
    ///
    /// # Errors
    ///
    /// As [`GuardBuilder::build`].
    pub async fn build_async(self) -> Result<Guard, EventError> {
        let guard = self.assemble();
        guard.reload_async().await?;
        Ok(guard)
    }

    fn assemble(self) -> Guard {
        let max_staleness = match &self.store {
            Some(store) if store.shared() => Some(i64::try_from(self.max_staleness.as_millis()).unwrap_or(i64::MAX)),
            _ => None,
        };
        Guard {
            policy: self.policy,
            state: ConsentState::new(),
            audit_discards: self.audit.discards_records(),
            audit: self.audit,
            clock: self.clock,
            store: self.store,
            applied: std::sync::Mutex::new(Applied::default()),
            max_staleness,
            quarantined: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl fmt::Debug for GuardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardBuilder").field("policy", &self.policy.name()).finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard with in-memory consent state, no audit and the system clock.
    pub fn new(policy: Policy) -> Guard {
        Guard {
            policy,
            state: ConsentState::new(),
            audit: Arc::new(NoAuditSink),
            audit_discards: true,
            clock: Arc::new(SystemClock),
            store: None,
            applied: std::sync::Mutex::new(Applied::default()),
            max_staleness: None,
            quarantined: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Configures a guard.
    pub fn builder(policy: Policy) -> GuardBuilder {
        GuardBuilder {
            policy,
            audit: Arc::new(NoAuditSink),
            clock: Arc::new(SystemClock),
            store: None,
            max_staleness: DEFAULT_MAX_STALENESS,
        }
    }

    /// The policy enforced.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many subjects the guard knows.
    pub fn subjects(&self) -> usize {
        self.state.len()
    }

    /// Records one consent event: validated against the policy, made durable in the
    /// store (if any), then applied. A check that starts after `record` returns sees
    /// the event, on any thread.
    ///
    /// # Errors
    ///
    /// When the event names what the policy does not know or breaks the event rules,
    /// or the store fails; nothing is recorded then.
    pub fn record(&self, event: &ConsentEvent) -> Result<(), EventError> {
        self.record_all(std::slice::from_ref(event))
    }

    /// Validates an event against the policy as [`Guard::record`] does, and records
    /// nothing: to tell which event of a refused batch is at fault.
    ///
    /// # Errors
    ///
    /// As [`Guard::record`], the store aside.
    pub fn validate_event(&self, event: &ConsentEvent) -> Result<(), EventError> {
        self.compile_event(event).map(drop)
    }

    /// Records a batch of events: all are validated first, appended to the store as
    /// one atomic batch, then applied.
    ///
    /// # Errors
    ///
    /// As [`Guard::record`]; nothing of the batch is recorded then.
    pub fn record_all(&self, events: &[ConsentEvent]) -> Result<(), EventError> {
        // What the guard assumes for an absent field is written down before the event
        // is stored: a grant keeps the policy version it was given under (proof of
        // consent), and an age keeps the time it was stated (a replay next year must
        // not make the subject a year younger).
        let stamped: Vec<ConsentEvent>;
        let events = if events.iter().any(|e| self.needs_stamp(e)) {
            stamped = events.iter().map(|e| self.stamp(e)).collect();
            stamped.as_slice()
        } else {
            events
        };
        let changes = events.iter().map(|e| self.compile_event(e)).collect::<Result<Vec<_>, _>>()?;
        let Some(store) = &self.store else { return self.apply(events, changes) };
        // The append runs without the lock on the applied positions, so that concurrent
        // `record` calls reach the store together and share its group commit (one
        // transaction, one fsync). A sync that ran meanwhile may have applied some of
        // the batch already; those are skipped here.
        let last = store.append(events)?;
        self.applied_after_append(events, changes, last)
    }

    /// Applies what an append of `events` ending at position `last` left unapplied, and
    /// notes the positions applied.
    fn applied_after_append(&self, events: &[ConsentEvent], changes: Vec<Change>, last: u64) -> Result<(), EventError> {
        let mut applied =
            self.applied.lock().map_err(|_| EventError::Store(StoreError::new("guard poisoned by a panic")))?;
        let count = events.len() as u64;
        let first = last.saturating_sub(count).saturating_add(1);
        let done = usize::try_from(applied.through.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        let done = done.min(events.len());
        if applied.through.saturating_add(1) >= first {
            applied.through = applied.through.max(last);
        } else {
            // Positions below the batch (another caller's, or another process's) are
            // not applied yet: they arrive with the next sync.
            applied.ahead.extend(first..=last);
        }
        let (events, changes) = (events.get(done..).unwrap_or_default(), changes.into_iter().skip(done).collect());
        self.apply(events, changes)
    }

    /// Applies compiled changes; consecutive changes of one subject are applied under one
    /// write lock, so a check sees a subject's batch whole or not at all.
    fn needs_stamp(&self, event: &ConsentEvent) -> bool {
        match event {
            ConsentEvent::Grant(grant) => grant.policy_version.is_none(),
            ConsentEvent::Subject(subject) => subject.at.is_none(),
            _ => false,
        }
    }

    fn stamp(&self, event: &ConsentEvent) -> ConsentEvent {
        match event {
            ConsentEvent::Grant(grant) if grant.policy_version.is_none() => {
                ConsentEvent::Grant(crate::consent::GrantEvent {
                    policy_version: Some(self.policy.version().to_owned()),
                    ..grant.clone()
                })
            }
            ConsentEvent::Subject(subject) if subject.at.is_none() => {
                ConsentEvent::Subject(crate::consent::SubjectEvent { at: Some(self.clock.now()), ..subject.clone() })
            }
            other => other.clone(),
        }
    }

    fn apply(&self, events: &[ConsentEvent], changes: Vec<Change>) -> Result<(), EventError> {
        let mut pending = events.iter().zip(changes).peekable();
        while let Some((event, change)) = pending.next() {
            let subject = event.subject();
            let mut group = vec![change];
            while let Some((_, next)) = pending.next_if(|(e, _)| e.subject() == subject) {
                group.push(next);
            }
            self.state.update(subject, group).map_err(|_| {
                // The state lock was poisoned: fail closed from now on.
                self.state.set_available(false);
                EventError::Store(StoreError::new("consent state unavailable"))
            })?;
        }
        Ok(())
    }

    /// Forgets the in-memory state and replays the store. Until it succeeds, the guard
    /// denies every consent-dependent request with `consent_state_unavailable`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or holds an event this policy cannot apply.
    pub fn reload(&self) -> Result<(), EventError> {
        if self.store.is_none() {
            return Ok(());
        }
        self.forget();
        self.sync()?;
        Ok(())
    }

    /// As [`Guard::reload`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Guard::reload`].
    pub async fn reload_async(&self) -> Result<(), EventError> {
        if self.store.is_none() {
            return Ok(());
        }
        self.forget();
        self.sync_async().await?;
        Ok(())
    }

    /// Drops the state, the positions applied and the quarantine, before a replay.
    fn forget(&self) {
        self.state.set_available(false);
        self.state.clear();
        if let Ok(mut applied) = self.applied.lock() {
            *applied = Applied::default();
        }
        if let Ok(mut quarantined) = self.quarantined.lock() {
            quarantined.clear();
        }
    }

    /// Applies the events other processes appended to the store since the last sync,
    /// and returns how many were applied. If the store cannot be read, the guard fails
    /// closed (`consent_state_unavailable`) until a sync succeeds again; call it from a
    /// loop (see [`Guard::follow`]) so that the guard recovers by itself.
    ///
    /// # Errors
    ///
    /// When the store cannot be read, or holds an event this policy cannot apply.
    pub fn sync(&self) -> Result<usize, EventError> {
        let Some(store) = &self.store else { return Ok(0) };
        // The store's head is read after this instant, so the state is current as of it.
        let started = self.clock.now_millis();
        let result = self.sync_from(store.as_ref());
        self.confirm(result.is_ok(), started);
        result
    }

    /// As [`Guard::sync`], from async code: reads the store through
    /// [`ConsentStore::events_since_async`], so a PostgreSQL store's I/O stays off the
    /// caller's runtime.
    ///
    /// # Errors
    ///
    /// As [`Guard::sync`].
    pub async fn sync_async(&self) -> Result<usize, EventError> {
        let Some(store) = &self.store else { return Ok(0) };
        let started = self.clock.now_millis();
        let mut count = 0;
        let result = loop {
            let through = match self.applied.lock() {
                Ok(applied) => applied.through,
                Err(_) => break Err(EventError::Store(StoreError::new("guard poisoned by a panic"))),
            };
            let batch = match store.events_since_async(through, SYNC_BATCH).await {
                Ok(batch) if batch.is_empty() => break Ok(count),
                Ok(batch) => batch,
                Err(error) => break Err(EventError::Store(error)),
            };
            let applied = self.applied.lock();
            match applied {
                Ok(mut applied) => match self.apply_synced(&mut applied, batch) {
                    Ok(applied) => count += applied,
                    Err(error) => break Err(error),
                },
                Err(_) => break Err(EventError::Store(StoreError::new("guard poisoned by a panic"))),
            }
        };
        self.confirm(result.is_ok(), started);
        result
    }

    /// After a sync: a success makes the state current as of `started` (for as long
    /// as `max_staleness` allows), a failure makes it unavailable.
    fn confirm(&self, success: bool, started: i64) {
        match (success, self.max_staleness) {
            (false, _) => self.state.set_available(false),
            (true, None) => self.state.set_available(true),
            (true, Some(bound)) => self.state.set_fresh_until(started.saturating_add(bound)),
        }
    }

    fn sync_from(&self, store: &dyn ConsentStore) -> Result<usize, EventError> {
        let mut applied =
            self.applied.lock().map_err(|_| EventError::Store(StoreError::new("guard poisoned by a panic")))?;
        let mut count = 0;
        loop {
            let batch = store.events_since(applied.through, SYNC_BATCH)?;
            if batch.is_empty() {
                return Ok(count);
            }
            count += self.apply_synced(&mut applied, batch)?;
        }
    }

    /// Applies a batch read from the store: positions already applied are skipped, and
    /// events the policy cannot apply are quarantined (their subjects fail closed)
    /// instead of stopping the sync for everyone. Returns how many were applied.
    fn apply_synced(&self, applied: &mut Applied, batch: Vec<(u64, ConsentEvent)>) -> Result<usize, EventError> {
        let Some(last) = batch.last().map(|(position, _)| *position) else { return Ok(0) };
        let through = applied.through;
        let mut events = Vec::with_capacity(batch.len());
        let mut changes = Vec::with_capacity(batch.len());
        for (position, event) in batch {
            if position <= through || applied.ahead.contains(&position) {
                continue;
            }
            match self.compile_stored(&event) {
                Ok(change) => {
                    events.push(event);
                    changes.push(change);
                }
                Err(error) => self.quarantine(position, &event, &error)?,
            }
        }
        let count = events.len();
        self.apply(&events, changes)?;
        applied.through = applied.through.max(last);
        applied.ahead = applied.ahead.split_off(&(applied.through + 1));
        Ok(count)
    }

    /// Compiles an event read from the store. Beyond what [`Guard::record`] checks, a
    /// grant given under a later policy version than this guard's is refused: it was
    /// recorded by a replica that already runs a newer policy, whose terms this one
    /// cannot know.
    fn compile_stored(&self, event: &ConsentEvent) -> Result<Change, EventError> {
        let change = self.compile_event(event)?;
        if let ConsentEvent::Grant(grant) = event {
            if let Some(text) = &grant.policy_version {
                let version = PolicyVersion::parse(text).map_err(EventError::Version)?;
                if version > self.policy.version {
                    return Err(EventError::Version(format!(
                        "grant under policy version {text}, later than this policy's {}",
                        self.policy.version()
                    )));
                }
            }
        }
        Ok(change)
    }

    fn quarantine(&self, position: u64, event: &ConsentEvent, error: &EventError) -> Result<(), EventError> {
        let unavailable = || EventError::Store(StoreError::new("consent state unavailable"));
        self.state.quarantine(event.subject()).map_err(|_| unavailable())?;
        let mut quarantined = self.quarantined.lock().map_err(|_| unavailable())?;
        quarantined.push(QuarantinedEvent { position, subject: event.subject().to_owned(), reason: error.to_string() });
        Ok(())
    }

    /// The stored events this guard's policy cannot apply, in store order. Each one's
    /// subject is decided `consent_state_unavailable` (fail closed) until a guard whose
    /// policy knows the event replays the store; other subjects are unaffected.
    pub fn quarantined(&self) -> Vec<QuarantinedEvent> {
        self.quarantined.lock().map(|q| q.clone()).unwrap_or_default()
    }

    /// The freshness bound of this guard's state: `None` when no other process writes
    /// its store (see [`GuardBuilder::max_staleness`]).
    pub fn max_staleness(&self) -> Option<std::time::Duration> {
        self.max_staleness.map(|ms| std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// Follows the store until `stop` is set: waits for changes (or polls every
    /// `interval`) and syncs. Store failures make the guard fail closed and are retried
    /// at the next interval. Run it on a thread of its own (in an async service too:
    /// it is a blocking loop, and the PostgreSQL store does its I/O on its own runtime).
    ///
    /// Every round ends with a sync, which is what confirms the state current (a
    /// notification is only a hint to sync sooner). Over a shared store the wait is
    /// kept to a quarter of `max_staleness`, so that a healthy guard never goes stale.
    pub fn follow(&self, interval: std::time::Duration, stop: &std::sync::atomic::AtomicBool) {
        let Some(store) = &self.store else { return };
        let interval = match self.max_staleness() {
            Some(bound) => interval.min(bound / 4),
            None => interval,
        };
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            let after = self.applied.lock().map(|a| a.through).unwrap_or(0);
            if store.wait_for_change(after, interval).is_err() {
                if self.max_staleness.is_none() {
                    self.state.set_available(false);
                }
                // The sync below decides; wait first so that a failing wait does not spin.
                std::thread::sleep(interval);
            }
            if self.sync().is_err() {
                // Already failing closed; wait before asking again so that a store
                // whose wait returns at once does not make this loop spin.
                std::thread::sleep(interval);
            }
        }
    }

    /// Marks the consent state unreadable (`false`) or readable again: a service that
    /// loses its store calls this so that the guard fails closed.
    ///
    /// Over a shared store, `true` makes the state current as of now, for
    /// `max_staleness`, as a sync would.
    pub fn set_state_available(&self, available: bool) {
        self.confirm(available, self.clock.now_millis());
    }

    /// The subject's history from the store, for proof of consent and portability.
    ///
    /// # Errors
    ///
    /// When there is no store or it cannot be read.
    pub fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        match &self.store {
            Some(store) => store.history(subject),
            None => Err(StoreError::new("this guard has no consent store")),
        }
    }

    /// As [`Guard::history`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Guard::history`].
    pub async fn history_async(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        match &self.store {
            Some(store) => store.history_async(subject).await,
            None => Err(StoreError::new("this guard has no consent store")),
        }
    }

    /// As [`Guard::record`], from async code: the append goes through
    /// [`ConsentStore::append_async`], so a PostgreSQL store's I/O stays off the
    /// caller's runtime. The check itself stays synchronous and in memory.
    ///
    /// # Errors
    ///
    /// As [`Guard::record`].
    pub async fn record_async(&self, event: &ConsentEvent) -> Result<(), EventError> {
        self.record_all_async(std::slice::from_ref(event)).await
    }

    /// As [`Guard::record_all`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Guard::record`]; nothing of the batch is recorded then.
    pub async fn record_all_async(&self, events: &[ConsentEvent]) -> Result<(), EventError> {
        let stamped: Vec<ConsentEvent> = events.iter().map(|e| self.stamp(e)).collect();
        let changes = stamped.iter().map(|e| self.compile_event(e)).collect::<Result<Vec<_>, _>>()?;
        let Some(store) = &self.store else { return self.apply(&stamped, changes) };
        // The lock on the applied positions cannot be held across the append (it is
        // not held across an await); a sync that ran meanwhile may have applied some
        // of the batch already, and those are skipped here.
        let last = store.append_async(&stamped).await?;
        self.applied_after_append(&stamped, changes, last)
    }

    /// Decides one request now, at the guard's clock, and hands the audit record to the
    /// sink. A denial is a value; if the audit sink fails, an allow becomes a denial
    /// with code `audit_unavailable`.
    ///
    /// The request's own `at` does not change the time decided for: a caller who asks
    /// about the past must not get a present-day allow from consent that has since been
    /// withdrawn. Questions about another time are [`Guard::what_if`].
    #[inline]
    pub fn check<'a>(&'a self, request: &'a AccessRequest<'_>) -> Decision<'a> {
        let mut decision = self.decide_at(request, self.clock.now_millis(), false);
        self.hand_to_sink(request, &mut decision);
        decision
    }

    /// Answers what would have been decided for `request` at `at` (a replay, or a
    /// question about the future), and audits it as such: the decision is marked
    /// [`Decision::is_what_if`], in its JSON (`"what_if": true`) and in the audit
    /// record. It is an answer about another time, never a permission for an access
    /// now; sealed data ([`crate::sealed`]) opens only on [`Guard::check`].
    ///
    /// ```
    /// use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let grant = r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;
    /// let withdraw = r#"{"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}"#;
    /// for line in [grant, withdraw] {
    ///     guard.record(&serde_json::from_str::<ConsentEvent>(line)?)?;
    /// }
    /// let training = AccessRequest::new("u1", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
    ///     .deidentification(Deidentification::Anonymized);
    /// let january = guard.what_if(&training, "2026-01-15T00:00:00Z".parse()?);
    /// assert!(january.allowed() && january.is_what_if());
    /// assert!(!guard.check(&training).allowed(), "withdrawn since");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn what_if<'a>(&'a self, request: &'a AccessRequest<'_>, at: chrono::DateTime<chrono::Utc>) -> Decision<'a> {
        let mut decision = self.decide_at(request, at.timestamp_millis(), true);
        self.hand_to_sink(request, &mut decision);
        decision
    }

    /// Hands the audit record of a decision to the sink, unless the sink discards
    /// records; an access that cannot be audited does not happen.
    #[inline]
    fn hand_to_sink(&self, request: &AccessRequest<'_>, decision: &mut Decision<'_>) {
        if !self.audit_discards && self.audit.record(&AuditRecord { request, decision }).is_err() {
            decision.unaudited();
        }
    }

    /// As [`Guard::check`], but hands the record with
    /// [`AuditSink::record_deferred`]: the caller releases nothing before
    /// [`Guard::audit_commit`] returns `Ok` (batches share one commit).
    #[inline]
    pub(crate) fn check_deferred<'a>(&'a self, request: &'a AccessRequest<'_>) -> Decision<'a> {
        let mut decision = self.decide(request);
        if !self.audit_discards && self.audit.record_deferred(&AuditRecord { request, decision: &decision }).is_err() {
            decision.unaudited();
        }
        decision
    }

    /// Waits until the records this thread handed to the sink are kept.
    pub(crate) fn audit_commit(&self) -> Result<(), crate::error::AuditError> {
        self.audit.commit()
    }

    /// Whether the sink defers records, so that batches should share one commit.
    pub(crate) fn audit_defers(&self) -> bool {
        !self.audit_discards && self.audit.defers_records()
    }

    /// Decides one request without auditing it: for dry runs (`explain`, tests of a
    /// policy), never for real access. It decides at the request's `at` when it names
    /// one (a what-if, marked as such), else at the guard's clock.
    #[inline]
    pub fn decide<'a>(&'a self, request: &'a AccessRequest<'_>) -> Decision<'a> {
        match request.at {
            Some(at) => self.decide_at(request, at.timestamp_millis(), true),
            None => self.decide_at(request, self.clock.now_millis(), false),
        }
    }

    #[inline]
    fn decide_at<'a>(&'a self, request: &'a AccessRequest<'_>, at: i64, what_if: bool) -> Decision<'a> {
        self.decide_by(request, Lookup::Id(&request.subject), at, what_if)
    }

    /// As [`Guard::check`], naming the subject by a handle of `request.subject`
    /// ([`Guard::subject_handle`]), so that the check hashes no string. A handle of
    /// another subject is not used: the request's own subject is decided.
    #[inline]
    pub fn check_handle<'a>(&'a self, request: &'a AccessRequest<'_>, handle: &SubjectHandle<'_>) -> Decision<'a> {
        let lookup = if handle.subject() == request.subject { handle.lookup() } else { Lookup::Id(&request.subject) };
        let mut decision = self.decide_by(request, lookup, self.clock.now_millis(), false);
        self.hand_to_sink(request, &mut decision);
        decision
    }

    #[inline]
    fn decide_by<'a>(
        &'a self,
        request: &'a AccessRequest<'_>,
        subject: Lookup<'_>,
        at: i64,
        what_if: bool,
    ) -> Decision<'a> {
        // A state that is stale now does not answer for the past either: a late event
        // may be dated before the time asked about.
        let present = if what_if { self.clock.now_millis() } else { at };
        let plan = Plan::new(&self.policy, request);
        let (verdict, basis) = plan::decide(plan.as_ref(), &self.state, subject, at, present);
        let rule = plan.map(|plan| plan.index);
        Decision {
            code: verdict.code,
            basis,
            at,
            what_if,
            facts: Facts::Checked { policy: &self.policy, rule, request },
            detail: verdict.detail,
        }
    }

    /// Prepares one kind of access (purpose, categories, action, recipient, region,
    /// de-identification, signals, retention facts, time) for checking many subjects:
    /// what depends on the request alone is evaluated once, here, and each
    /// [`PreparedAccess::check`] reads only the subject's consent. The template's own
    /// subject is not used.
    ///
    /// A prepared check answers exactly what [`Guard::check`] answers for the template
    /// with the subject filled in, and audits the same record.
    ///
    /// ```
    /// use consent_guard::{AccessRequest, DataCategory, Guard, Policy, Purpose, ReasonCode};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let template = AccessRequest::new("", Purpose::ADVERTISING_PERSONALIZED, &[DataCategory::BEHAVIOR_LOG][..]);
    /// let ads = guard.prepare(&template);
    /// for subject in ["u1", "u2"] {
    ///     assert_eq!(ads.check(subject).code(), ReasonCode::ConsentMissing);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prepare<'g>(&'g self, template: &'g AccessRequest<'_>) -> PreparedAccess<'g> {
        PreparedAccess::new(self, template)
    }

    /// Validates an event against the policy and compiles it.
    fn compile_event(&self, event: &ConsentEvent) -> Result<Change, EventError> {
        let policy = &self.policy;
        if event.subject().is_empty() {
            return Err(EventError::Empty("subject"));
        }
        let purposes_mask = |purposes: &[Purpose]| -> Result<u128, EventError> {
            if purposes.is_empty() {
                return Err(EventError::Empty("purposes"));
            }
            policy.purpose_mask_of(purposes).map_err(|unknown| EventError::UnknownPurpose(unknown.to_string()))
        };
        match event {
            ConsentEvent::Subject(subject) => {
                let stated_at = subject.at.unwrap_or_else(|| self.clock.now());
                let birth = match (subject.birth_date, subject.age) {
                    (Some(_), Some(_)) => {
                        return Err(EventError::Inconsistent(
                            "a subject event gives either `birth_date` or `age`, not both".into(),
                        ))
                    }
                    (Some(date), None) => Some(date),
                    // The youngest the subject can be: fail closed on who is a minor. A
                    // day that does not exist that year (29 February) is the last day
                    // of its month, still the youngest.
                    (None, Some(age)) => {
                        let birth = stated_at.date_naive().checked_sub_months(chrono::Months::new(u32::from(age) * 12));
                        Some(birth.ok_or_else(|| EventError::Inconsistent(format!("age {age} is out of range")))?)
                    }
                    (None, None) => None,
                };
                let minors = &policy.minors;
                let at_age = |age: Option<u8>| birth.zip(age).map(|(birth, age)| coming_of_age(birth, age));
                Ok(Change::Attributes {
                    adult_from: at_age(minors.under),
                    sensitive_until: at_age(minors.sensitive_under),
                })
            }
            ConsentEvent::Grant(grant) => {
                let purposes = purposes_mask(&grant.purposes)?;
                let version = match &grant.policy_version {
                    Some(text) => PolicyVersion::parse(text).map_err(EventError::Version)?,
                    None => policy.version,
                };
                // A grant under a version this policy does not know yet cannot be read
                // as consent to it: it would never need reconsent.
                if version > policy.version {
                    return Err(EventError::Version(format!(
                        "the grant names policy version {}, later than the enforced version {}",
                        grant.policy_version.as_deref().unwrap_or_default(),
                        policy.version()
                    )));
                }
                let expires_at = grant.expires_at.map_or(i64::MAX, |t| t.timestamp_millis());
                if expires_at <= grant.at.timestamp_millis() {
                    return Err(EventError::Inconsistent("`expires_at` is not after `at`".into()));
                }
                let scope = match &grant.scope {
                    None => None,
                    Some(scope) => {
                        if let Some(unknown) = scope.categories.iter().find(|c| !policy.knows_category(c)) {
                            return Err(EventError::UnknownCategory(unknown.to_string()));
                        }
                        let mut recipients = 0u64;
                        let mut recipient_kinds = crate::request::RecipientKinds::empty();
                        for name in &scope.recipients {
                            // A recipient the policy does not declare can match no
                            // request; it is kept out of the mask, not an error, so
                            // that old grants survive a recipient's removal.
                            if let Some(kind) = crate::request::RecipientKind::from_name(name) {
                                recipient_kinds |= kind.flag();
                            } else if let Some(index) = policy.recipient_index(name) {
                                recipients |= 1u64 << (index % 64);
                            }
                        }
                        Some(Box::new(ScopeMask {
                            recipients_limited: !scope.recipients.is_empty(),
                            recipients,
                            recipient_kinds,
                            regions: scope.regions.clone(),
                            categories: policy.category_mask_of(&scope.categories).unwrap_or(0),
                        }))
                    }
                };
                let plain = version == policy.version && expires_at == i64::MAX && scope.is_none();
                Ok(Change::Grant {
                    at: grant.at.timestamp_millis(),
                    purposes,
                    level: grant.level,
                    by_guardian: grant.by_guardian,
                    terms: (!plain).then_some(Terms { version, expires_at, scope }),
                })
            }
            ConsentEvent::Withdraw(withdraw) => Ok(Change::Withdraw {
                at: withdraw.at.timestamp_millis(),
                purposes: purposes_mask(&withdraw.purposes)?,
            }),
            ConsentEvent::Erase(erase) => Ok(Change::Erase { at: erase.at.timestamp_millis() }),
        }
    }
}

/// What [`crate::reload::GuardHandle`] needs to build the guard for a new policy: kept
/// apart from the decision code above so that the two change independently.
#[cfg(feature = "reload")]
impl Guard {
    /// A guard for `policy` that shares this guard's audit sink, clock, store and
    /// freshness bound, with an empty consent state: [`Guard::reload`] fills it from
    /// the store. `store` is used when this guard has none.
    pub(crate) fn successor(&self, policy: Policy, store: Option<Arc<dyn ConsentStore>>) -> Guard {
        Guard {
            policy,
            state: ConsentState::new(),
            audit: Arc::clone(&self.audit),
            audit_discards: self.audit_discards,
            clock: Arc::clone(&self.clock),
            store: self.store.clone().or(store),
            applied: std::sync::Mutex::new(Applied::default()),
            max_staleness: self.max_staleness,
            quarantined: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Whether the guard keeps its events in a store, so that a successor can replay them.
    pub(crate) fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// One round of [`Guard::follow`]: waits for a change of the store (at most
    /// `interval`) and syncs, failing closed as `follow` does.
    pub(crate) fn follow_round(&self, interval: std::time::Duration) {
        let Some(store) = &self.store else {
            std::thread::sleep(interval);
            return;
        };
        let interval = match self.max_staleness() {
            Some(bound) => interval.min(bound / 4),
            None => interval,
        };
        let after = self.applied.lock().map(|a| a.through).unwrap_or(0);
        if store.wait_for_change(after, interval).is_err() {
            if self.max_staleness.is_none() {
                self.state.set_available(false);
            }
            std::thread::sleep(interval);
        }
        if self.sync().is_err() {
            std::thread::sleep(interval);
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("policy", &self.policy.name())
            .field("version", &self.policy.version())
            .field("state", &self.state)
            .field("audit", &self.audit)
            .field("store", &self.store)
            .finish()
    }
}

/// Midnight UTC of the day the subject turns `age`. Someone born on 29 February comes
/// of age on 1 March in a year without one: in doubt, the younger age holds.
fn coming_of_age(birth: NaiveDate, age: u8) -> i64 {
    let year = birth.year().checked_add(i32::from(age));
    let date = year.and_then(|year| {
        NaiveDate::from_ymd_opt(year, birth.month(), birth.day()).or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))
    });
    date.and_then(|date| date.and_hms_opt(0, 0, 0)).map_or(i64::MAX, |t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::ReasonCode;

    /// Services share one guard between threads: a field that is not `Send + Sync`
    /// must fail this test at compile time.
    #[test]
    fn guard_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Guard>();
        shareable::<Policy>();
        shareable::<Decision<'static>>();
        shareable::<PreparedAccess<'static>>();
    }

    /// A sink that cannot keep the record.
    #[derive(Debug)]
    struct BrokenSink;

    impl AuditSink for BrokenSink {
        fn record(&self, _: &AuditRecord<'_>) -> Result<(), crate::error::AuditError> {
            Err(crate::error::AuditError::new("disk full"))
        }
    }

    /// An access that cannot be audited does not happen, whether checked plainly or
    /// through a prepared access, and a dry run is not audited at all.
    #[test]
    fn an_allow_that_cannot_be_audited_is_denied() {
        let policy = Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let guard = Guard::builder(policy).audit(BrokenSink).build().unwrap_or_else(|e| panic!("{e}"));
        assert!(!guard.audit_discards);
        let request = AccessRequest::new("u1", crate::Purpose::SECURITY, &[crate::DataCategory::DEVICE_INFO][..]);
        assert!(guard.decide(&request).allowed(), "{}", guard.decide(&request).message());
        let plain = guard.check(&request);
        assert_eq!((plain.code(), plain.basis()), (ReasonCode::AuditUnavailable, None));
        let prepared = guard.prepare(&request);
        assert!(prepared.decide("u2").allowed());
        let decision = prepared.check("u2");
        assert_eq!((decision.code(), decision.basis()), (ReasonCode::AuditUnavailable, None));
        assert_eq!(decision.subject(), "u2");
    }

    /// Every check returns a decision by value: a large one costs a copy on every
    /// access (it was about 200 bytes before it borrowed the policy and request).
    #[test]
    fn a_decision_is_small_to_move() {
        let size = std::mem::size_of::<Decision<'static>>();
        assert!(size <= 80, "{size} bytes");
    }
}
