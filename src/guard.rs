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

use std::borrow::Cow;
use std::fmt;

use chrono::{Datelike, NaiveDate};

use crate::audit::{AuditRecord, AuditSink, NoAuditSink};
use crate::basis::{ConsentLevel, LegalBasis};
use crate::clock::{Clock, SystemClock};
use crate::consent::state::{Change, ConsentState, ScopeMask, StateEvent, SubjectView, Terms};
use crate::consent::{ConsentEvent, ConsentHistory};
use crate::decision::{Decision, Detail, Facts, ReasonCode};
use crate::error::{EventError, StoreError};
use crate::name::MAX_NODES;
use crate::policy::{Policy, PolicyVersion, Retention, Rule};
use crate::purpose::Purpose;
use crate::request::{AccessRequest, Action, RecipientKind, Region};
use crate::store::ConsentStore;

/// Decides every access to personal data. `Send + Sync`: share one guard between
/// threads; checks run concurrently with consent updates and see the state either
/// before or after each update.
pub struct Guard {
    policy: Policy,
    state: ConsentState,
    audit: Box<dyn AuditSink>,
    clock: Box<dyn Clock>,
    store: Option<Box<dyn ConsentStore>>,
    /// Store positions applied so far; appends and syncs serialise on it so that each
    /// position is applied once.
    applied: std::sync::Mutex<Applied>,
}

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
    audit: Box<dyn AuditSink>,
    clock: Box<dyn Clock>,
    store: Option<Box<dyn ConsentStore>>,
}

impl GuardBuilder {
    /// Where audit records go ([`NoAuditSink`] by default).
    pub fn audit(mut self, sink: impl AuditSink + 'static) -> Self {
        self.audit = Box::new(sink);
        self
    }

    /// Where "now" comes from ([`SystemClock`] by default).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Where consent events are kept; the guard replays it when built and appends to it
    /// before every change of its state.
    pub fn store(mut self, store: impl ConsentStore + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Builds the guard, replaying the store if there is one.
    ///
    /// # Errors
    ///
    /// When the store cannot be read, or holds an event this policy cannot apply.
    pub fn build(self) -> Result<Guard, EventError> {
        let guard = Guard {
            policy: self.policy,
            state: ConsentState::new(),
            audit: self.audit,
            clock: self.clock,
            store: self.store,
            applied: std::sync::Mutex::new(Applied::default()),
        };
        guard.reload()?;
        Ok(guard)
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
            audit: Box::new(NoAuditSink),
            clock: Box::new(SystemClock),
            store: None,
            applied: std::sync::Mutex::new(Applied::default()),
        }
    }

    /// Configures a guard.
    pub fn builder(policy: Policy) -> GuardBuilder {
        GuardBuilder { policy, audit: Box::new(NoAuditSink), clock: Box::new(SystemClock), store: None }
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
        let mut applied =
            self.applied.lock().map_err(|_| EventError::Store(StoreError::new("guard poisoned by a panic")))?;
        let last = store.append(events)?;
        let count = events.len() as u64;
        if applied.through + count == last {
            applied.through = last;
        } else {
            // Another process appended in between: its events arrive with the next sync.
            applied.ahead.extend(last.saturating_sub(count) + 1..=last);
        }
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
        self.state.set_available(false);
        self.state.clear();
        if let Ok(mut applied) = self.applied.lock() {
            *applied = Applied::default();
        }
        self.sync()?;
        Ok(())
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
        let result = self.sync_from(store.as_ref());
        self.state.set_available(result.is_ok());
        result
    }

    fn sync_from(&self, store: &dyn ConsentStore) -> Result<usize, EventError> {
        let mut applied =
            self.applied.lock().map_err(|_| EventError::Store(StoreError::new("guard poisoned by a panic")))?;
        let mut count = 0;
        loop {
            let batch = store.events_since(applied.through, SYNC_BATCH)?;
            let Some((last, _)) = batch.last() else { return Ok(count) };
            let last = *last;
            let (positions, events): (Vec<u64>, Vec<ConsentEvent>) =
                batch.into_iter().filter(|(position, _)| !applied.ahead.contains(position)).unzip();
            let changes = events.iter().map(|e| self.compile_event(e)).collect::<Result<Vec<_>, _>>()?;
            self.apply(&events, changes)?;
            count += positions.len();
            applied.through = last;
            applied.ahead = applied.ahead.split_off(&(last + 1));
        }
    }

    /// Follows the store until `stop` is set: waits for changes (or polls every
    /// `interval`) and syncs. Store failures make the guard fail closed and are retried
    /// at the next interval. Run it on a thread of its own.
    pub fn follow(&self, interval: std::time::Duration, stop: &std::sync::atomic::AtomicBool) {
        let Some(store) = &self.store else { return };
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            let after = self.applied.lock().map(|a| a.through).unwrap_or(0);
            if store.wait_for_change(after, interval).is_err() {
                self.state.set_available(false);
                std::thread::sleep(interval);
                continue;
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
    pub fn set_state_available(&self, available: bool) {
        self.state.set_available(available);
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

    /// Decides one request and hands the audit record to the sink. A denial is a
    /// value; if the audit sink fails, an allow becomes a denial with code
    /// `audit_unavailable`.
    #[inline]
    pub fn check<'a>(&'a self, request: &'a AccessRequest<'_>) -> Decision<'a> {
        let mut decision = self.decide(request);
        if self.audit.record(&AuditRecord { request, decision: &decision }).is_err() {
            decision.code = ReasonCode::AuditUnavailable;
            decision.basis = None;
            decision.detail = Detail::None;
        }
        decision
    }

    /// Decides one request without auditing it: for dry runs (`explain`, tests of a
    /// policy), never for real access.
    #[inline]
    pub fn decide<'a>(&'a self, request: &'a AccessRequest<'_>) -> Decision<'a> {
        let at = match request.at {
            Some(at) => at.timestamp_millis(),
            None => self.clock.now_millis(),
        };
        let (clause, verdict, basis) = match self.rule_for(request) {
            None => (None, Verdict { code: ReasonCode::NoRule, detail: Detail::None }, None),
            Some((rule, clause, node)) => {
                let verdict = Evaluation { policy: &self.policy, rule, request, node, now: at }.run(&self.state);
                let basis = verdict.code.is_allow().then_some(rule.basis);
                (Some(clause), verdict, basis)
            }
        };
        Decision {
            code: verdict.code,
            basis,
            at,
            facts: Facts::Checked { policy: &self.policy, clause, request },
            detail: verdict.detail,
        }
    }

    /// The rule for the request's purpose, its clause id and the purpose's node.
    fn rule_for(&self, request: &AccessRequest<'_>) -> Option<(&Rule, &str, usize)> {
        let node = self.policy.purposes.index(&request.purpose.0)?;
        let index = usize::from(self.policy.rule_for.get(node).copied().flatten()?);
        let rule = self.policy.rules.get(index)?;
        let document = self.policy.document.rules.get(index)?;
        Some((rule, &document.id, node))
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
                    // The youngest the subject can be: fail closed on who is a minor.
                    (None, Some(age)) => stated_at.date_naive().with_year(stated_at.year() - i32::from(age)),
                    (None, None) => None,
                };
                let adult_from = match (birth, policy.minors.under) {
                    (Some(birth), Some(age)) => Some(coming_of_age(birth, age)),
                    _ => None,
                };
                Ok(Change::Attributes { adult_from })
            }
            ConsentEvent::Grant(grant) => {
                let purposes = purposes_mask(&grant.purposes)?;
                let version = match &grant.policy_version {
                    Some(text) => PolicyVersion::parse(text).map_err(EventError::Version)?,
                    None => policy.version,
                };
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
                        for name in &scope.recipients {
                            // A recipient the policy does not declare can match no
                            // request; it is kept out of the mask, not an error, so
                            // that old grants survive a recipient's removal.
                            if let Some(index) = policy.recipient_index(name) {
                                recipients |= 1u64 << (index % 64);
                            }
                        }
                        Some(Box::new(ScopeMask {
                            recipients_limited: !scope.recipients.is_empty(),
                            recipients,
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

/// Midnight UTC of the day the subject turns `age`.
fn coming_of_age(birth: NaiveDate, age: u8) -> i64 {
    let date = birth.checked_add_months(chrono::Months::new(u32::from(age) * 12)).unwrap_or(NaiveDate::MAX);
    date.and_hms_opt(0, 0, 0).map_or(i64::MAX, |t| t.and_utc().timestamp_millis())
}

struct Verdict<'a> {
    code: ReasonCode,
    detail: Detail<'a>,
}

fn deny(code: ReasonCode, detail: Detail<'_>) -> Verdict<'_> {
    Verdict { code, detail }
}

/// One evaluation of one request against one rule.
struct Evaluation<'a, 'r> {
    policy: &'a Policy,
    rule: &'a Rule,
    request: &'a AccessRequest<'r>,
    /// The request purpose's node in the policy's purpose tree.
    node: usize,
    now: i64,
}

impl<'a> Evaluation<'a, '_> {
    fn run(&self, state: &ConsentState) -> Verdict<'a> {
        let request = self.request;
        // Purposes under `compliance` on a basis other than consent do not depend on
        // the subject at all: they survive erasure and an unreadable state.
        let compliance = self.policy.compliance & bit(self.node) != 0 && self.rule.basis != LegalBasis::Consent;
        match state.read(&request.subject, |subject| self.with_subject(subject, compliance)) {
            Ok(verdict) => verdict,
            Err(_) if compliance => self.with_subject(None, compliance),
            Err(_) => deny(ReasonCode::ConsentStateUnavailable, Detail::None),
        }
    }

    fn with_subject(&self, subject: Option<SubjectView<'_>>, compliance: bool) -> Verdict<'a> {
        let (policy, rule, request, now) = (self.policy, self.rule, self.request, self.now);

        if let Some(erased_at) = subject.and_then(|s| s.erased_at()).filter(|at| *at <= now) {
            if !compliance {
                return deny(ReasonCode::SubjectErased, Detail::At(erased_at));
            }
        }
        let minor = policy.minors.under.is_some()
            && subject.and_then(|s| s.adult_from()).map_or(policy.minors.unknown_is_minor, |adult| now < adult);
        if minor && policy.minors.not_served && !rule.basis.is_imposed_by_law() {
            return deny(ReasonCode::MinorNotServed, Detail::None);
        }
        if !rule.actions.contains(request.action.flag()) {
            return deny(ReasonCode::ActionNotPermitted, Detail::Item(Cow::Borrowed(request.action.as_str())));
        }

        // Categories: one bit test once the request's mask is known.
        let mut requested = 0u128;
        for category in request.categories.iter() {
            match policy.categories.index(&category.0) {
                Some(node) if rule.categories & bit(node) != 0 => requested |= bit(node),
                _ => return deny(ReasonCode::CategoryNotPermitted, Detail::Item(Cow::Borrowed(category.as_str()))),
            }
        }
        if requested == 0 {
            return deny(ReasonCode::CategoryNotPermitted, Detail::Item(Cow::Borrowed("no")));
        }

        let recipient = &request.recipient;
        let named = match &recipient.name {
            None => None,
            Some(name) => match policy.recipient_index(name) {
                Some(index) => policy.recipients.get(index).map(|declared| (index, declared)),
                None => return deny(ReasonCode::RecipientNotPermitted, Detail::Item(Cow::Borrowed(name.as_ref()))),
            },
        };
        let recipient_name = || Cow::Borrowed(recipient.name.as_deref().unwrap_or(recipient.kind.as_str()));
        let kind_permitted = rule.recipient_kinds.contains(recipient.kind.flag());
        if let Some((index, declared)) = named {
            let permitted = declared.kind == recipient.kind
                && (kind_permitted || rule.recipient_names & (1u64 << (index % 64)) != 0)
                && declared.purposes & bit(self.node) != 0
                && requested & !declared.categories == 0;
            if !permitted {
                return deny(ReasonCode::RecipientNotPermitted, Detail::Item(recipient_name()));
            }
        } else if !kind_permitted {
            return deny(ReasonCode::RecipientNotPermitted, Detail::Item(recipient_name()));
        }

        let region: &'a Region = request.region.as_ref().unwrap_or(&policy.document.policy.home_region);
        let transfer = if rule.regions.contains(region) {
            false
        } else if rule.transfer_regions.contains(*region) {
            true
        } else {
            return deny(ReasonCode::RegionNotPermitted, Detail::Item(Cow::Borrowed(region.as_str())));
        };

        let needed_deidentification =
            named.map_or(rule.deidentification, |(_, d)| d.deidentification.max(rule.deidentification));
        if request.deidentification < needed_deidentification {
            return deny(
                ReasonCode::DeidentificationRequired,
                Detail::Item(Cow::Borrowed(needed_deidentification.as_str())),
            );
        }

        if let Some(retention) = rule.retention {
            if let Some(verdict) = self.retention(retention) {
                return verdict;
            }
        }

        if rule.dnt && request.signals.dnt {
            return deny(ReasonCode::OptOutSignal, Detail::Item(Cow::Borrowed("dnt")));
        }
        if rule.gpc && request.signals.gpc {
            return deny(ReasonCode::OptOutSignal, Detail::Item(Cow::Borrowed("gpc")));
        }

        let purpose_up = policy.purposes.up(self.node);
        if rule.basis != LegalBasis::Consent {
            if transfer {
                let verdict = self.consent(subject, purpose_up, requested, minor, Some(region), ConsentLevel::Separate);
                if !verdict.code.is_allow() {
                    return match verdict.code {
                        ReasonCode::ConsentMissing | ReasonCode::ConsentLevelInsufficient => {
                            deny(ReasonCode::SeparateConsentRequired, Detail::Transfer(Cow::Borrowed(region.as_str())))
                        }
                        _ => verdict,
                    };
                }
            }
            let code = if rule.basis == LegalBasis::ResearchDeidentified {
                ReasonCode::DeidentifiedExempt
            } else {
                ReasonCode::LegalBasis
            };
            return Verdict { code, detail: Detail::None };
        }
        if rule.anonymized_exempt && request.deidentification == crate::request::Deidentification::Anonymized {
            return Verdict { code: ReasonCode::DeidentifiedExempt, detail: Detail::None };
        }

        let triggers = &policy.separate;
        let escalate = (triggers.sensitive && requested & policy.sensitive != 0)
            || (triggers.minor && minor)
            || (triggers.third_party && recipient.kind == RecipientKind::ThirdParty)
            || (triggers.public && (recipient.kind == RecipientKind::Public || request.action == Action::Disclose))
            || (triggers.cross_border && !policy.storage_regions.contains(region));
        let needed = if escalate { ConsentLevel::Separate } else { rule.level };
        let transfer_region = transfer.then_some(region);
        self.consent(subject, purpose_up, requested, minor, transfer_region, needed)
    }

    fn retention(&self, retention: Retention) -> Option<Verdict<'a>> {
        let request = self.request;
        // Collecting starts the clock; deleting expired data is what retention asks.
        if matches!(request.action, Action::Collect | Action::Delete) {
            return None;
        }
        match retention.millis() {
            None => {
                let same = match (&request.session, &request.collected_session) {
                    (Some(now), Some(then)) => now == then,
                    _ => false,
                };
                (!same).then(|| deny(ReasonCode::RetentionExpired, Detail::Session))
            }
            Some(limit) => match request.collected_at.map(|t| t.timestamp_millis()) {
                None => {
                    Some(deny(ReasonCode::RetentionExpired, Detail::Retention { limit: retention, collected: None }))
                }
                Some(collected) if self.now.saturating_sub(collected) > limit => Some(deny(
                    ReasonCode::RetentionExpired,
                    Detail::Retention { limit: retention, collected: Some(collected) },
                )),
                Some(_) => None,
            },
        }
    }

    /// The subject's consent to the purpose, at the needed level.
    fn consent(
        &self,
        subject: Option<SubjectView<'_>>,
        purpose_up: u128,
        requested: u128,
        minor: bool,
        transfer: Option<&'a Region>,
        needed: ConsentLevel,
    ) -> Verdict<'a> {
        let Some(subject) = subject else { return deny(ReasonCode::ConsentMissing, Detail::None) };
        let guardian_needed = minor && !self.policy.minors.not_served;
        let mut verdict: Option<Verdict<'a>> = None;
        for event in subject.events().take_while(|e| e.at <= self.now) {
            if event.purposes() & purpose_up == 0 {
                continue;
            }
            if event.is_withdrawal() {
                // A withdrawal ends every earlier grant; only later grants re-open.
                verdict = Some(deny(ReasonCode::ConsentWithdrawn, Detail::At(event.at)));
                continue;
            }
            if verdict.as_ref().is_some_and(|v| v.code.is_allow()) {
                continue;
            }
            let Ok(terms) = subject.terms(event) else {
                return deny(ReasonCode::ConsentStateUnavailable, Detail::None);
            };
            verdict = Some(self.grant(event, terms, requested, guardian_needed, transfer, needed));
        }
        match verdict {
            Some(verdict) => verdict,
            None if self.rule.opt_out && transfer.is_none() => {
                // Deemed consent: given until withdrawn, but never guardian or
                // separate consent.
                if guardian_needed {
                    deny(ReasonCode::GuardianConsentRequired, Detail::None)
                } else if needed > self.rule.level {
                    deny(ReasonCode::SeparateConsentRequired, Detail::Deemed { needed })
                } else {
                    Verdict { code: ReasonCode::ConsentGiven, detail: Detail::None }
                }
            }
            None => deny(ReasonCode::ConsentMissing, Detail::None),
        }
    }

    fn grant(
        &self,
        grant: &StateEvent,
        terms: Option<&Terms>,
        requested: u128,
        guardian_needed: bool,
        transfer: Option<&'a Region>,
        needed: ConsentLevel,
    ) -> Verdict<'a> {
        let (request, at) = (self.request, grant.at);
        let scope = terms.and_then(|t| t.scope.as_deref());
        if let Some(expires_at) = terms.map(|t| t.expires_at).filter(|at| *at <= self.now) {
            return deny(ReasonCode::ConsentExpired, Detail::At(expires_at));
        }
        if let Some(scope) = scope {
            if scope.categories != 0 && requested & !scope.categories != 0 {
                return deny(ReasonCode::ConsentMissing, Detail::Scope("data category"));
            }
            let region = request.region.unwrap_or(self.policy.document.policy.home_region);
            if !scope.regions.is_empty() && !scope.regions.contains(&region) {
                return deny(ReasonCode::ConsentMissing, Detail::Scope("region"));
            }
            if scope.recipients_limited && request.recipient.kind != RecipientKind::FirstParty {
                let named = request.recipient.name.as_deref().and_then(|n| self.policy.recipient_index(n));
                if named.is_none_or(|index| scope.recipients & (1u64 << (index % 64)) == 0) {
                    return deny(ReasonCode::ConsentMissing, Detail::Scope("recipient"));
                }
            }
        }
        if let Some(region) = transfer {
            let names_region = scope.is_some_and(|s| s.regions.contains(region));
            if grant.level < ConsentLevel::Separate || !names_region {
                return deny(ReasonCode::SeparateConsentRequired, Detail::Transfer(Cow::Borrowed(region.as_str())));
            }
        }
        if guardian_needed && !grant.by_guardian() {
            return deny(ReasonCode::GuardianConsentRequired, Detail::None);
        }
        if grant.level < needed {
            let code = if needed == ConsentLevel::Separate {
                ReasonCode::SeparateConsentRequired
            } else {
                ReasonCode::ConsentLevelInsufficient
            };
            return deny(code, Detail::Level { given: grant.level, needed, at });
        }
        if self.rule.changed_in.is_some_and(|changed| terms.map_or(self.policy.version, |t| t.version) < changed) {
            return deny(ReasonCode::ReconsentRequired, Detail::At(at));
        }
        Verdict { code: ReasonCode::ConsentGiven, detail: Detail::At(at) }
    }
}

#[inline]
fn bit(index: usize) -> u128 {
    if index < MAX_NODES {
        1u128 << index
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Services share one guard between threads: a field that is not `Send + Sync`
    /// must fail this test at compile time.
    #[test]
    fn guard_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Guard>();
        shareable::<Policy>();
        shareable::<Decision<'static>>();
    }

    /// Every check returns a decision by value: a large one costs a copy on every
    /// access (it was about 200 bytes before it borrowed the policy and request).
    #[test]
    fn a_decision_is_small_to_move() {
        let size = std::mem::size_of::<Decision<'static>>();
        assert!(size <= 80, "{size} bytes");
    }
}
