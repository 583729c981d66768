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
mod ingest;
mod owed;
mod plan;
mod prepared;
mod quarantine;

pub use handle::SubjectHandle;
pub use owed::OwedUnavailable;
// The audit log (feature `json`) keys its own templates from the same counter.
#[cfg(feature = "json")]
pub(crate) use prepared::next_template_key;
pub use prepared::PreparedAccess;
pub use quarantine::QuarantinedEvent;

use std::fmt;
use std::sync::Arc;

use crate::audit::{AuditRecord, AuditSink, NoAuditSink};
use crate::clock::{Clock, SystemClock};
use crate::consent::state::{ConsentState, Lookup};
use crate::decision::{Decision, Facts};
use crate::error::EventError;
use crate::policy::Policy;
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
}

/// What the compiled filter (`crate::filter`) reads of a guard: its state, clock,
/// store and sink, and how far it has applied the store.
impl Guard {
    pub(crate) fn consent_state(&self) -> &ConsentState {
        &self.state
    }

    pub(crate) fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    pub(crate) fn consent_store(&self) -> Option<&Arc<dyn ConsentStore>> {
        self.store.as_ref()
    }

    /// Every store position up to this one is applied; `None` if a panic poisoned the
    /// lock (the caller fails closed).
    pub(crate) fn applied_through(&self) -> Option<u64> {
        self.applied.lock().ok().map(|applied| applied.through)
    }

    pub(crate) fn audit_sink(&self) -> &dyn AuditSink {
        self.audit.as_ref()
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
