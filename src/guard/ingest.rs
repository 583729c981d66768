//! Keeping the ledger: recording consent events (validated against the policy, made
//! durable in the store, then applied to the in-memory state), replaying and following
//! the store, quarantining what the policy cannot read, and building a successor guard
//! for a reloaded policy. Deciding is in the parent module; the two share only the
//! consent state, so each changes without the other.

use chrono::{Datelike, NaiveDate};

use super::{Applied, Guard, QuarantinedEvent, SYNC_BATCH};
use crate::consent::state::{Change, ScopeMask, Terms};
use crate::consent::{ConsentEvent, ConsentHistory};
use crate::error::{EventError, StoreError};
use crate::policy::PolicyVersion;
use crate::purpose::Purpose;
use crate::store::ConsentStore;

impl Guard {
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
        self.load_tombstones()?;
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
        self.load_tombstones_async().await?;
        self.sync_async().await?;
        Ok(())
    }

    /// Reads the store's tombstones into the state, before a replay: the events of a
    /// subject erased before are then applied to an erased subject.
    #[cfg(feature = "json")]
    fn load_tombstones(&self) -> Result<(), EventError> {
        let Some(store) = &self.store else { return Ok(()) };
        let tombstones = store.tombstones()?;
        self.state.set_tombstones(tombstones).map_err(|_| unavailable())
    }

    #[cfg(feature = "json")]
    async fn load_tombstones_async(&self) -> Result<(), EventError> {
        let Some(store) = &self.store else { return Ok(()) };
        let tombstones = store.tombstones_async().await?;
        self.state.set_tombstones(tombstones).map_err(|_| unavailable())
    }

    #[cfg(not(feature = "json"))]
    fn load_tombstones(&self) -> Result<(), EventError> {
        Ok(())
    }

    #[cfg(not(feature = "json"))]
    async fn load_tombstones_async(&self) -> Result<(), EventError> {
        Ok(())
    }

    /// Applies the erasures the store made after position `start`, read after the
    /// events (so that every erasure before the last event applied is among them):
    /// new tombstones join the state's, the subjects the state holds under an erased
    /// id are marked erased (one HMAC per subject held, only when a tombstone is new),
    /// and the applied position moves over the tombstones' positions that follow it.
    #[cfg(feature = "json")]
    fn apply_erasures(
        &self,
        applied: &mut Applied,
        erasures: Vec<(u64, crate::keys::Locator, i64)>,
    ) -> Result<(), EventError> {
        if erasures.is_empty() {
            return Ok(());
        }
        let new = self
            .state
            .edit_tombstones(|tombstones| {
                let mut new = false;
                for (_, locator, at) in &erasures {
                    if tombstones.get(locator).is_none_or(|known| known > *at) {
                        tombstones.insert(*locator, *at);
                        new = true;
                    }
                }
                new
            })
            .map_err(|_| unavailable())?;
        if new {
            self.state.erase_tombstoned().map_err(|_| {
                self.state.set_available(false);
                unavailable()
            })?;
        }
        let positions: std::collections::BTreeSet<u64> = erasures.iter().map(|(position, _, _)| *position).collect();
        while let Some(next) = applied.through.checked_add(1) {
            if !positions.contains(&next) && !applied.ahead.contains(&next) {
                break;
            }
            applied.through = next;
        }
        applied.ahead = applied.ahead.split_off(&(applied.through + 1));
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
        let start = self.applied.lock().map(|applied| applied.through).unwrap_or(0);
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
        #[cfg(feature = "json")]
        let result = match result {
            Ok(count) => match store.erasures_since_async(start).await {
                Ok(erasures) => match self.applied.lock() {
                    Ok(mut applied) => self.apply_erasures(&mut applied, erasures).map(|()| count),
                    Err(_) => Err(EventError::Store(StoreError::new("guard poisoned by a panic"))),
                },
                Err(error) => Err(EventError::Store(error)),
            },
            Err(error) => Err(error),
        };
        #[cfg(not(feature = "json"))]
        let _ = start;
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
        let start = applied.through;
        let mut count = 0;
        loop {
            let batch = store.events_since(applied.through, SYNC_BATCH)?;
            if batch.is_empty() {
                break;
            }
            count += self.apply_synced(&mut applied, batch)?;
        }
        #[cfg(feature = "json")]
        self.apply_erasures(&mut applied, store.erasures_since(start)?)?;
        #[cfg(not(feature = "json"))]
        let _ = start;
        Ok(count)
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
    /// its store (see [`GuardBuilder::max_staleness`](crate::GuardBuilder::max_staleness)).
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
                        if let Some(field) = scope.empty_list() {
                            return Err(EventError::Inconsistent(format!(
                                "{field}: an empty list would limit nothing; omit the key for no limit, or record no grant"
                            )));
                        }
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
            ConsentEvent::End(end) => {
                Ok(Change::End { at: end.at.timestamp_millis(), purposes: purposes_mask(&end.purposes)? })
            }
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
    pub(crate) fn successor(
        &self,
        policy: crate::policy::Policy,
        store: Option<std::sync::Arc<dyn ConsentStore>>,
    ) -> Guard {
        Guard {
            policy,
            state: crate::consent::state::ConsentState::new(),
            audit: std::sync::Arc::clone(&self.audit),
            audit_discards: self.audit_discards,
            clock: std::sync::Arc::clone(&self.clock),
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

/// The state's lock was poisoned by a panic: the guard fails closed.
#[cfg(feature = "json")]
fn unavailable() -> EventError {
    EventError::Store(StoreError::new("consent state unavailable"))
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
