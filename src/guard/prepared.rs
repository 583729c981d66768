//! Prepared accesses: one kind of access checked for many subjects, with the
//! request-only part of the evaluation done once.

use std::fmt;

use super::plan::{self, Plan};
use super::{Guard, SubjectHandle};
use crate::consent::state::{Lookup, SubjectView, Unavailable, GROUP};
use crate::decision::{Decision, Facts, PreparedFacts, ReasonCode};
use crate::request::AccessRequest;

/// One kind of access, prepared by [`Guard::prepare`] for checking many subjects: a
/// batch job over every user, or a request handler's fixed access point. Each check
/// costs a lookup of the subject's consent and the scan of its events; the policy's
/// request-only checks (rule, action, categories, recipient, region,
/// de-identification, signals) were decided when it was prepared.
///
/// It borrows the guard, so consent recorded after it was prepared is seen by its next
/// check, exactly as with [`Guard::check`]. `Send + Sync`: threads may share it.
pub struct PreparedAccess<'g> {
    guard: &'g Guard,
    template: &'g AccessRequest<'g>,
    /// `None`: the policy has no rule for the purpose.
    plan: Option<Plan<'g>>,
    /// What each of its decisions borrows.
    facts: PreparedFacts<'g>,
}

/// The next template key ([`PreparedAccess`], and the templates an audit log keeps for
/// plain checks); never reused within a process.
static NEXT_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A template key no other template of this process has.
pub(crate) fn next_template_key() -> u64 {
    NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl<'g> PreparedAccess<'g> {
    pub(super) fn new(guard: &'g Guard, template: &'g AccessRequest<'_>) -> PreparedAccess<'g> {
        let plan = Plan::new(&guard.policy, template);
        let facts = PreparedFacts {
            policy: &guard.policy,
            rule: plan.as_ref().map(|plan| plan.index),
            purpose: &template.purpose,
            key: next_template_key(),
        };
        PreparedAccess { guard, template, plan, facts }
    }

    /// Decides the access for every subject now, at the guard's clock (as
    /// [`PreparedAccess::check`]), hands all the records to the sink, and
    /// waits once for them to be kept ([`AuditSink::commit`](crate::audit::AuditSink::commit)):
    /// with a synced durable log, the whole batch shares one commit and one fsync, and
    /// no allow is returned before its record is on disk. If the commit fails, every
    /// allow of the batch becomes `audit_unavailable`.
    ///
    /// The subjects are read in groups, each group's records loaded before any of them
    /// is decided, so that over more subjects than the caches hold their misses
    /// overlap (at a million subjects about twice as fast as checking one by one; see
    /// BENCHMARKS.md).
    pub fn check_batch<'a, S: AsRef<str>>(&'a self, subjects: &'a [S]) -> Vec<Decision<'a>> {
        self.check_grouped(subjects, |subject| Lookup::Id(subject.as_ref()))
    }

    /// As [`PreparedAccess::check_batch`], naming the subjects by handles: no id is
    /// hashed, and the records are read in groups as there.
    ///
    /// ```
    /// use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let grant = r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;
    /// guard.record(&serde_json::from_str::<ConsentEvent>(grant)?)?;
    /// let ids = ["u1", "u2", "u3"];
    /// let handles: Vec<_> = ids.iter().map(|id| guard.subject_handle(id)).collect();
    /// let template = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
    ///     .deidentification(Deidentification::Anonymized);
    /// let training = guard.prepare(&template);
    /// let allowed: Vec<bool> = training.check_handles(&handles).iter().map(|d| d.allowed()).collect();
    /// assert_eq!(allowed, [true, false, false]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_handles<'a>(&'a self, handles: &'a [SubjectHandle<'a>]) -> Vec<Decision<'a>> {
        self.check_grouped(handles, SubjectHandle::lookup)
    }

    /// Decides `subjects` in groups of [`GROUP`] at one reading of the clock, then
    /// hands the records to the sink with one commit.
    fn check_grouped<'a, T>(&'a self, subjects: &'a [T], lookup: impl Fn(&'a T) -> Lookup<'a>) -> Vec<Decision<'a>> {
        // Like `check`, at the guard's clock: one reading for the whole batch.
        let now = self.guard.clock.now_millis();
        let mut decisions: Vec<Decision<'a>> = Vec::with_capacity(subjects.len());
        for group in subjects.chunks(GROUP) {
            let mut lookups = [Lookup::Id(""); GROUP];
            for (place, subject) in lookups.iter_mut().zip(group) {
                *place = lookup(subject);
            }
            let lookups = lookups.get(..group.len()).unwrap_or(&[]);
            plan::decide_group(self.plan.as_ref(), &self.guard.state, lookups, now, now, |index, verdict, basis| {
                let subject = lookups.get(index).map_or("", |lookup| lookup.subject());
                decisions.push(Decision {
                    code: verdict.code,
                    basis,
                    at: now,
                    what_if: false,
                    facts: Facts::Prepared { access: &self.facts, subject },
                    detail: verdict.detail,
                });
            });
        }
        self.hand_batch_to_sink(&mut decisions);
        decisions
    }

    /// Hands a batch's records to the sink and waits once for them to be kept; an
    /// allow whose record may not be kept becomes `audit_unavailable`.
    fn hand_batch_to_sink(&self, decisions: &mut [Decision<'_>]) {
        if self.guard.audit_discards {
            return;
        }
        let mut failed = false;
        for decision in decisions.iter_mut() {
            if self.guard.audit.record_prepared_deferred(self.template, decision).is_err() {
                decision.unaudited();
                failed = true;
            }
        }
        if self.guard.audit.commit().is_err() || failed {
            // A record that was handed may not be kept: release nothing of the batch.
            decisions.iter_mut().filter(|d| d.allowed()).for_each(Decision::unaudited);
        }
    }

    /// The ends of the purpose bearing on this access for one subject's state at
    /// `now` (see `Plan::ends`); none without a rule.
    pub(crate) fn ends(&self, subject: crate::consent::state::SubjectView<'_>, now: i64) -> (Option<i64>, Option<i64>) {
        self.plan.as_ref().map_or((None, None), |plan| plan.ends(subject, now))
    }

    /// The request this access was prepared from (its subject is not used).
    pub fn template(&self) -> &AccessRequest<'g> {
        self.template
    }

    /// Decides the access for one subject now, at the guard's clock, and hands the
    /// audit record (the template with this subject) to the guard's sink, as
    /// [`Guard::check`] does: the template's own `at` does not change the time.
    #[inline]
    pub fn check<'a>(&'a self, subject: &'a str) -> Decision<'a> {
        let mut decision = self.decide_at(subject, Lookup::Id(subject), self.guard.clock.now_millis(), false);
        self.hand_to_sink(&mut decision);
        decision
    }

    /// As [`PreparedAccess::check`], naming the subject by a handle
    /// ([`Guard::subject_handle`]): the check hashes no string and, while the
    /// subject's record stays where the handle found it, reads no index. It answers
    /// and audits exactly what `check(handle.subject())` would.
    #[inline]
    pub fn check_handle<'a>(&'a self, handle: &SubjectHandle<'a>) -> Decision<'a> {
        let subject = handle.subject();
        let mut decision = self.decide_at(subject, handle.lookup(), self.guard.clock.now_millis(), false);
        self.hand_to_sink(&mut decision);
        decision
    }

    /// As [`PreparedAccess::decide`], naming the subject by a handle: a dry run,
    /// never for real access.
    #[inline]
    pub fn decide_handle<'a>(&'a self, handle: &SubjectHandle<'a>) -> Decision<'a> {
        let (at, what_if) = self.dry_run_at();
        self.decide_at(handle.subject(), handle.lookup(), at, what_if)
    }

    /// Decides the access for one subject without auditing it: for dry runs, never for
    /// real access. As [`Guard::decide`], at the template's `at` when it names one (a
    /// what-if), else at the guard's clock.
    #[inline]
    pub fn decide<'a>(&'a self, subject: &'a str) -> Decision<'a> {
        let (at, what_if) = self.dry_run_at();
        self.decide_at(subject, Lookup::Id(subject), at, what_if)
    }

    /// When a dry run of this access decides, and whether that is a what-if: at the
    /// template's own `at` when it names one, else at the guard's clock.
    #[inline]
    fn dry_run_at(&self) -> (i64, bool) {
        match self.template.at {
            Some(at) => (at.timestamp_millis(), true),
            None => (self.guard.clock.now_millis(), false),
        }
    }

    /// Hands the decision's record to the sink as the template and the decision (no
    /// request built), unless the sink discards records; an access that cannot be
    /// audited does not happen.
    #[inline]
    fn hand_to_sink(&self, decision: &mut Decision<'_>) {
        if !self.guard.audit_discards && self.guard.audit.record_prepared(self.template, decision).is_err() {
            decision.unaudited();
        }
    }

    #[inline]
    fn decide_at<'a>(&'a self, subject: &'a str, lookup: Lookup<'_>, at: i64, what_if: bool) -> Decision<'a> {
        // A state that is stale now does not answer for the past either: a late event
        // may be dated before the time asked about.
        let present = if what_if { self.guard.clock.now_millis() } else { at };
        let (verdict, basis) = plan::decide(self.plan.as_ref(), &self.guard.state, lookup, at, present);
        Decision {
            code: verdict.code,
            basis,
            at,
            what_if,
            facts: Facts::Prepared { access: &self.facts, subject },
            detail: verdict.detail,
        }
    }

    /// The code of this access for an id the store forgot (a tombstone: erased, and
    /// nothing else of it kept), as [`PreparedAccess::decide`] answers it: decided
    /// against a state that holds the erasure alone, so that a filter snapshot can
    /// answer tombstoned ids it cannot name.
    pub(crate) fn decide_erased(&self, erased_at: i64) -> ReasonCode {
        let state = crate::consent::state::ConsentState::erased_only(erased_at, self.guard.state.fresh_until());
        let (at, what_if) = self.dry_run_at();
        // As `decide_at`: staleness is judged now, whatever time is asked about.
        let present = if what_if { self.guard.clock.now_millis() } else { at };
        plan::decide(self.plan.as_ref(), &state, Lookup::Id(""), at, present).0.code
    }

    /// The code [`PreparedAccess::decide`] answers for a subject whose state was read
    /// apart (`Err`: unreadable, staleness at the guard's clock included): a filter's
    /// snapshot decides its three probes from one read of each subject.
    pub(crate) fn code_of_view(&self, view: Result<Option<SubjectView<'_>>, Unavailable>) -> ReasonCode {
        let (at, _) = self.dry_run_at();
        plan::verdict_of_view(self.plan.as_ref(), view, at).code
    }

    pub(crate) fn clause(&self) -> Option<&'g str> {
        self.facts.clause()
    }
}

impl fmt::Debug for PreparedAccess<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedAccess")
            .field("request", self.template)
            .field("clause", &self.clause())
            .finish_non_exhaustive()
    }
}
