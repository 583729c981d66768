//! The evaluation of a request, in two parts: the [`Plan`], everything that depends on
//! the request alone (computed once per request by `Guard::check`, once per kind of
//! access by `PreparedAccess`), and its run against one subject's consent state.
//!
//! The order of the checks is the policy's, whichever part computes them: erasure,
//! minors not served, then action, category, recipient, region and de-identification,
//! retention, opt-out signals, and last the basis and the subject's consent. A plan
//! keeps the first request-only denial and returns it only after the subject's own
//! checks that come before it, so a prepared check answers the same code as a plain one.

use std::borrow::Cow;
use std::ops::ControlFlow;

use crate::basis::{ConsentLevel, LegalBasis};
use crate::consent::state::{ConsentState, EventRead, Lookup, StateEvent, SubjectView, Terms, Unavailable};
use crate::decision::{Detail, ReasonCode};
use crate::name::MAX_NODES;
use crate::policy::{Policy, Retention, Rule};
use crate::request::{AccessRequest, Action, Deidentification, RecipientKind, Region};

pub(super) struct Verdict<'a> {
    pub(super) code: ReasonCode,
    pub(super) detail: Detail<'a>,
}

fn deny(code: ReasonCode, detail: Detail<'_>) -> Verdict<'_> {
    Verdict { code, detail }
}

/// The verdict for one subject at `now` and, on an allow, the rule's basis; without a
/// plan (no rule for the purpose), `no_rule`. `present` is the guard's clock when the
/// check is made (`now` too, unless the request names a time): the consent state's
/// freshness is judged against it.
#[inline]
pub(super) fn decide<'a>(
    plan: Option<&Plan<'a>>,
    state: &ConsentState,
    subject: Lookup<'_>,
    now: i64,
    present: i64,
) -> (Verdict<'a>, Option<LegalBasis>) {
    match plan {
        None => (deny(ReasonCode::NoRule, Detail::None), None),
        Some(plan) => {
            let verdict = plan.run(state, subject, now, present);
            let basis = plan.basis_of(verdict.code);
            (verdict, basis)
        }
    }
}

/// As [`decide`], for the first [`GROUP`](crate::consent::state::GROUP) of `subjects`
/// read together ([`ConsentState::read_group`]): `each` gets every subject's position,
/// verdict and basis, once each and in order.
#[inline]
pub(super) fn decide_group<'a>(
    plan: Option<&Plan<'a>>,
    state: &ConsentState,
    subjects: &[Lookup<'_>],
    now: i64,
    present: i64,
    mut each: impl FnMut(usize, Verdict<'a>, Option<LegalBasis>),
) {
    let subjects = subjects.get(..crate::consent::state::GROUP).unwrap_or(subjects);
    match plan {
        None => (0..subjects.len()).for_each(|index| each(index, deny(ReasonCode::NoRule, Detail::None), None)),
        Some(plan) => state.read_group(subjects, present, |index, view| {
            let verdict = plan.verdict_of(view, now);
            let basis = plan.basis_of(verdict.code);
            each(index, verdict, basis);
        }),
    }
}

/// The verdict of a plan (or `no_rule` without one) for a subject's state read apart
/// (`Err`: unreadable, staleness included), as [`decide`] answers it: for callers
/// that decide several accesses from one read of the state (a filter's snapshot).
pub(super) fn verdict_of_view<'a>(
    plan: Option<&Plan<'a>>,
    view: Result<Option<SubjectView<'_>>, Unavailable>,
    now: i64,
) -> Verdict<'a> {
    match plan {
        None => deny(ReasonCode::NoRule, Detail::None),
        Some(plan) => plan.verdict_of(view, now),
    }
}

/// The consent scan of one subject for one leaf purpose (given with its ancestors):
/// the verdict so far, moved by each event in time order.
struct Scan<'p, 'a, 's> {
    plan: &'p Plan<'a>,
    subject: SubjectView<'s>,
    purpose_up: u128,
    guardian_needed: bool,
    transfer: Option<&'a Region>,
    needed: ConsentLevel,
    now: i64,
    verdict: Option<Verdict<'a>>,
}

impl<'a> Scan<'_, 'a, '_> {
    /// Applies one event: `Break(None)` at the first event after `now`,
    /// `Break(Some(denial))` for a grant whose terms cannot be read.
    #[inline(always)]
    fn step(&mut self, event: &impl EventRead) -> ControlFlow<Option<Verdict<'a>>> {
        if event.at() > self.now {
            return ControlFlow::Break(None);
        }
        if !event.names_any(self.purpose_up) || event.is_end() {
            return ControlFlow::Continue(());
        }
        if event.is_withdrawal() {
            // A withdrawal ends every earlier grant; only later grants re-open.
            self.verdict = Some(deny(ReasonCode::ConsentWithdrawn, Detail::At(event.at())));
        } else if !self.verdict.as_ref().is_some_and(|v| v.code.is_allow()) {
            let Ok(terms) = self.subject.terms(event) else {
                return ControlFlow::Break(Some(deny(ReasonCode::ConsentStateUnavailable, Detail::None)));
            };
            let plan = self.plan;
            let granted = plan.grant(event, terms, self.guardian_needed, self.transfer, self.needed, self.now);
            // On an opt-out rule only a withdrawal turns consent off: a grant that has
            // expired or does not reach this request leaves the default as it was.
            // (One that is too weak, or not a guardian's, still speaks.)
            let lapsed = matches!(granted.code, ReasonCode::ConsentExpired | ReasonCode::ConsentMissing);
            if !(lapsed && plan.rule.opt_out && self.transfer.is_none()) {
                self.verdict = Some(granted);
            }
        }
        ControlFlow::Continue(())
    }
}

/// A request's subject-independent evaluation against its rule.
pub(super) struct Plan<'a> {
    policy: &'a Policy,
    rule: &'a Rule,
    /// The rule's index in the policy.
    pub(super) index: u16,
    request: &'a AccessRequest<'a>,
    /// Purposes under `compliance` on a basis other than consent do not depend on the
    /// subject at all: they survive erasure and an unreadable state.
    compliance: bool,
    /// The basis the request is decided on: the one it names, else consent where only
    /// `with_consent` reaches it, else the rule's first.
    basis: LegalBasis,
    /// The first denial among basis, action, category, recipient, region and
    /// de-identification.
    early: Option<(ReasonCode, Detail<'a>)>,
    /// The opt-out signal that denies, if any.
    signal: Option<&'static str>,
    /// The requested categories as a mask of the policy's category tree.
    requested: u128,
    /// The request's purpose and its ancestors.
    purpose_up: u128,
    /// The leaf purposes under the request's purpose (itself if it is a leaf): a
    /// request for a purpose needs consent to each of its children.
    leaves: u128,
    /// Another rule (or none) governs a child of the request's purpose.
    too_broad: bool,
    /// The purposes whose `end` ends the request's: its ancestors, itself and every
    /// purpose under it (the end of one leaf ends a request for its parent).
    ended_by: u128,
    region: &'a Region,
    /// The region is reachable only as a transfer, which needs separate consent.
    transfer: bool,
    /// The declared recipient's index in the policy, if the request names one.
    recipient: Option<usize>,
    /// Separate consent is needed whatever the subject's age.
    escalate: bool,
    /// Anonymized data that the rule exempts from consent.
    exempt: bool,
    /// The consent level the rule needs for this request's de-identification.
    level: ConsentLevel,
    /// The rule's basis does not reach this action or recipient, its `with_consent`
    /// does: the request needs consent at this level.
    by_consent: Option<ConsentLevel>,
}

impl<'a> Plan<'a> {
    /// The plan for `request`; `None` if the policy has no rule for its purpose.
    pub(super) fn new(policy: &'a Policy, request: &'a AccessRequest<'a>) -> Option<Plan<'a>> {
        let node = policy.purposes.index(&request.purpose.0)?;
        let index = policy.rule_for.get(node).copied().flatten()?;
        let rule = policy.rules.get(usize::from(index))?;
        let mut plan = Plan {
            policy,
            rule,
            index,
            request,
            compliance: false,
            basis: rule.basis,
            early: None,
            signal: None,
            requested: 0,
            purpose_up: policy.purposes.up(node),
            leaves: match policy.purposes.down(node) & policy.leaf_purposes {
                0 => bit(node),
                leaves => leaves,
            },
            too_broad: policy.too_broad & bit(node) != 0,
            ended_by: policy.purposes.up(node) | policy.purposes.down(node),
            region: request.region.as_ref().unwrap_or(&policy.document.policy.home_region),
            transfer: false,
            recipient: None,
            escalate: false,
            exempt: false,
            level: rule.level,
            by_consent: None,
        };
        // Whether only `with_consent` reaches the request's action or recipient is read
        // from what the request asks, before any check: it decides whether an erasure
        // is lifted, which comes first.
        if let Some(extension) = rule.with_consent {
            let (action, kind) = (request.action.flag(), request.recipient.kind.flag());
            let named = request.recipient.name.as_deref().and_then(|name| policy.recipient_index(name));
            let lists = |kinds: crate::request::RecipientKinds, names: u64| {
                kinds.contains(kind) || named.is_some_and(|index| names & (1u64 << (index % 64)) != 0)
            };
            let (own_action, own_recipient) =
                (rule.actions.contains(action), lists(rule.recipient_kinds, rule.recipient_names));
            let reached = (own_action || extension.actions.contains(action))
                && (own_recipient || lists(extension.recipient_kinds, extension.recipient_names));
            plan.by_consent = (reached && !(own_action && own_recipient)).then_some(extension.level);
        }
        if plan.by_consent.is_some() {
            plan.basis = LegalBasis::Consent;
        }
        plan.basis = request.basis.unwrap_or(plan.basis);
        // What only consent permits is not a duty that survives erasure.
        plan.compliance = policy.compliance & bit(node) != 0 && plan.basis != LegalBasis::Consent;
        plan.early = plan.request_only(node).err();
        plan.signal = if rule.dnt && request.signals.dnt {
            Some("dnt")
        } else if rule.gpc && request.signals.gpc {
            Some("gpc")
        } else {
            None
        };
        let triggers = &policy.separate;
        let recipient = &request.recipient;
        plan.escalate = (triggers.sensitive && plan.requested & policy.may_be_sensitive != 0)
            || (triggers.third_party && recipient.kind == RecipientKind::ThirdParty)
            || (triggers.public && (recipient.kind == RecipientKind::Public || request.action == Action::Disclose))
            || (triggers.cross_border && !policy.storage_regions.contains(plan.region));
        let anonymized = request.deidentification == Deidentification::Anonymized;
        plan.exempt = rule.anonymized_exempt && anonymized;
        if let Some(level) = rule.anonymized_level.filter(|_| anonymized) {
            plan.level = level;
        }
        Some(plan)
    }

    /// Basis, action, categories, recipient, region and de-identification, in that
    /// order.
    fn request_only(&mut self, node: usize) -> Result<(), (ReasonCode, Detail<'a>)> {
        let (policy, rule, request) = (self.policy, self.rule, self.request);
        if let Some(named) = request.basis {
            let listed = match self.by_consent {
                Some(_) => named == LegalBasis::Consent,
                None => rule.bases & named.bit() != 0,
            };
            if !listed {
                return Err((ReasonCode::BasisNotPermitted, Detail::Item(Cow::Borrowed(named.as_str()))));
            }
        }
        let extension = rule.with_consent;
        let own_action = rule.actions.contains(request.action.flag());
        if !own_action && !extension.is_some_and(|e| e.actions.contains(request.action.flag())) {
            return Err((ReasonCode::ActionNotPermitted, Detail::Item(Cow::Borrowed(request.action.as_str()))));
        }

        for category in request.categories.iter() {
            match policy.categories.index(&category.0) {
                Some(node) if rule.categories & bit(node) != 0 => self.requested |= bit(node),
                _ => return Err((ReasonCode::CategoryNotPermitted, Detail::Item(Cow::Borrowed(category.as_str())))),
            }
        }
        if self.requested == 0 {
            return Err((ReasonCode::CategoryNotPermitted, Detail::Item(Cow::Borrowed("no"))));
        }

        let recipient = &request.recipient;
        let named = match &recipient.name {
            None => None,
            Some(name) => match policy.recipient_index(name) {
                Some(index) => policy.recipients.get(index).map(|declared| (index, declared)),
                None => return Err((ReasonCode::RecipientNotPermitted, Detail::Item(Cow::Borrowed(name.as_ref())))),
            },
        };
        self.recipient = named.map(|(index, _)| index);
        let recipient_name = || Cow::Borrowed(recipient.name.as_deref().unwrap_or(recipient.kind.as_str()));
        let requested = self.requested;
        let lists = |kinds: crate::request::RecipientKinds, names: u64| match named {
            Some((index, declared)) => {
                declared.kind == recipient.kind
                    && (kinds.contains(recipient.kind.flag()) || names & (1u64 << (index % 64)) != 0)
                    && declared.purposes & bit(node) != 0
                    && requested & !declared.categories == 0
            }
            None => kinds.contains(recipient.kind.flag()),
        };
        let own_recipient = lists(rule.recipient_kinds, rule.recipient_names);
        if !own_recipient && !extension.is_some_and(|e| lists(e.recipient_kinds, e.recipient_names)) {
            return Err((ReasonCode::RecipientNotPermitted, Detail::Item(recipient_name())));
        }

        let region = self.region;
        if rule.regions.contains(region) {
            self.transfer = false;
        } else if rule.transfer_regions.contains(*region) {
            self.transfer = true;
        } else {
            return Err((ReasonCode::RegionNotPermitted, Detail::Item(Cow::Borrowed(region.as_str()))));
        }

        // Research on de-identified data needs pseudonymized data at least.
        let own = match self.basis {
            LegalBasis::ResearchDeidentified => rule.deidentification.max(Deidentification::Pseudonymized),
            _ => rule.deidentification,
        };
        let needed = named.map_or(own, |(_, d)| d.deidentification.max(own));
        if request.deidentification < needed {
            return Err((ReasonCode::DeidentificationRequired, Detail::Item(Cow::Borrowed(needed.as_str()))));
        }
        Ok(())
    }

    /// The basis an allow rests on: the rule's own, except for a deletion the policy
    /// owes, which rests on the duty to delete.
    #[inline]
    fn basis_of(&self, code: ReasonCode) -> Option<LegalBasis> {
        match code {
            ReasonCode::DeletionDue => Some(LegalBasis::LegalObligation),
            code => code.is_allow().then_some(self.basis),
        }
    }

    /// The verdict for one subject at `now` (milliseconds), from a state read at
    /// `present`.
    #[inline]
    fn run(&self, state: &ConsentState, subject: Lookup<'_>, now: i64, present: i64) -> Verdict<'a> {
        if self.too_broad {
            return deny(ReasonCode::PurposeTooBroad, Detail::None);
        }
        if self.request.action == Action::Delete {
            return self.run_delete(state, subject, now, present);
        }
        state.read_at_or(subject, present, |view| self.with_subject(view, now), || self.unreadable(now))
    }

    /// [`Plan::run`] for a state read apart: every branch of `run` and `run_delete`,
    /// from the view instead of a read.
    #[inline]
    fn verdict_of(&self, view: Result<Option<SubjectView<'_>>, Unavailable>, now: i64) -> Verdict<'a> {
        if self.too_broad {
            return deny(ReasonCode::PurposeTooBroad, Detail::None);
        }
        if self.request.action == Action::Delete {
            return match view {
                Ok(view) => self.for_subject(view, now),
                // As `unreadable`: the same exception, the same denial.
                Err(_) if self.stands_without_state() => self.for_subject(None, now),
                Err(_) => deny(ReasonCode::ConsentStateUnavailable, Detail::None),
            };
        }
        match view {
            Ok(view) => self.with_subject(view, now),
            Err(_) => self.unreadable(now),
        }
    }

    /// The verdict when the subject's state cannot be read. Out of line: it is rare,
    /// and inlined beside the read it would cost every check registers.
    #[cold]
    #[inline(never)]
    fn unreadable(&self, now: i64) -> Verdict<'a> {
        if self.stands_without_state() {
            self.with_subject(None, now)
        } else {
            deny(ReasonCode::ConsentStateUnavailable, Detail::None)
        }
    }

    /// As [`Plan::run`], for a `delete`: a deletion the policy owes is allowed
    /// (`deletion_due`), any other is decided as every access. Out of line
    /// (`#[cold]`), so that every other action pays one comparison and the check's
    /// instruction budget stays as it was.
    #[cold]
    #[inline(never)]
    fn run_delete(&self, state: &ConsentState, subject: Lookup<'_>, now: i64, present: i64) -> Verdict<'a> {
        // `verdict_of` holds the deletion's rules, the unreadable state's included.
        state.read_at_or(
            subject,
            present,
            |view| self.verdict_of(Ok(view), now),
            || self.verdict_of(Err(Unavailable), now),
        )
    }

    /// Whether the request is decided without the subject's state when it cannot be
    /// read. A compliance duty does not need the subject's consent, but where the
    /// policy knows minors and the basis is not one the law imposes, the subject's age
    /// decides: an unreadable state must not read as an adult's.
    fn stands_without_state(&self) -> bool {
        self.compliance && !self.age_decides()
    }

    /// Whether the subject's age can change the verdict: guardian consent or unserved
    /// minors, on a basis the law does not impose.
    fn age_decides(&self) -> bool {
        self.policy.minors.under.is_some() && !self.basis.is_imposed_by_law()
    }

    /// The verdict for one subject: a deletion the policy owes is allowed
    /// (`deletion_due`), every other request decided by [`Plan::with_subject`].
    fn for_subject(&self, subject: Option<SubjectView<'_>>, now: i64) -> Verdict<'a> {
        match self.deletion_due(subject, now) {
            Some(why) => Verdict { code: ReasonCode::DeletionDue, detail: Detail::Item(Cow::Borrowed(why.as_str())) },
            None => self.with_subject(subject, now),
        }
    }

    /// Why the subject's data for this purpose must be deleted now, if it must: in
    /// the order of the checks, erasure, a minor the policy does not serve, a minor
    /// without a guardian's live grant, then (only where the rule reaches the request:
    /// action, categories, recipient, region, de-identification) retention and the
    /// end of the purpose. A compliance duty that survives erasure is not owed.
    pub(super) fn deletion_due(&self, subject: Option<SubjectView<'_>>, now: i64) -> Option<Due> {
        if let Some(due) = self.subject_due(subject, now) {
            return Some(due);
        }
        let (policy, rule) = (self.policy, self.rule);
        let minors = &policy.minors;
        let under_age = |until: Option<i64>| until.map_or(minors.unknown_is_minor, |until| now < until);
        let minor = minors.under.is_some() && under_age(subject.and_then(|s| s.adult_from()));
        if self.early.is_some() {
            return None;
        }
        let anonymized = self.request.deidentification == Deidentification::Anonymized;
        if let Some(retention) = rule.retention {
            if self.expired(retention, now).is_some() {
                let yields = (rule.retention_until_anonymized && anonymized)
                    || (rule.separate_consent_lifts_retention
                        && self.consent(subject, minor, None, ConsentLevel::Separate, now).code.is_allow());
                if !yields {
                    return Some(Due::RetentionExpired);
                }
            }
        }
        if subject.and_then(|s| self.ended_over(s, now)).is_some() && !(rule.retention_until_anonymized && anonymized) {
            return Some(Due::PurposeEnded);
        }
        None
    }

    /// The reasons a deletion is due that depend on the subject alone, not on what the
    /// request asks: erasure, a minor not served, a minor without a guardian's grant,
    /// and (under `[rights] withdrawal_deletes`) a withdrawal of the consent the basis
    /// rests on.
    pub(super) fn subject_due(&self, subject: Option<SubjectView<'_>>, now: i64) -> Option<Due> {
        if subject.and_then(|s| s.erased_at()).is_some_and(|at| at <= now) && !self.compliance {
            return Some(Due::Erased);
        }
        let minors = &self.policy.minors;
        let under_age = |until: Option<i64>| until.map_or(minors.unknown_is_minor, |until| now < until);
        let minor = minors.under.is_some() && under_age(subject.and_then(|s| s.adult_from()));
        if minor && !self.basis.is_imposed_by_law() {
            if minors.not_served {
                return Some(Due::MinorNotServed);
            }
            if !self.each_leaf(|up| self.guardian_live(subject, up, now)) {
                return Some(Due::GuardianConsentMissing);
            }
        }
        let withdrawal_deletes =
            self.policy.document.rights.as_ref().is_some_and(|r| r.withdrawal_deletes == Some(true));
        if withdrawal_deletes
            && self.basis == LegalBasis::Consent
            && !self.each_leaf(|up| !self.withdrawn(subject, up, now))
        {
            return Some(Due::Withdrawn);
        }
        None
    }

    /// The latest withdrawal by `now` covering a leaf under the request's purpose.
    pub(super) fn last_withdrawal(&self, subject: Option<SubjectView<'_>>, now: i64) -> Option<i64> {
        let subject = subject?;
        let (early, rest) = subject.early_and_rest();
        let mut last = None;
        for event in early.iter().flatten().chain(rest) {
            if event.at > now {
                break;
            }
            if event.is_withdrawal() && event.purposes() & (self.purpose_up | self.leaves_up()) != 0 {
                last = Some(event.at);
            }
        }
        last
    }

    /// The leaves under the request's purpose and their ancestors.
    fn leaves_up(&self) -> u128 {
        let mut up = 0;
        let mut leaves = self.leaves;
        while leaves != 0 {
            let leaf = leaves & leaves.wrapping_neg();
            leaves &= !leaf;
            up |= self.up_of(leaf);
        }
        up
    }

    /// The latest `end` covering the request's purpose whose `retention_after_end`
    /// has run by `now`: its time, and when its grace ran out.
    pub(super) fn last_end_over(&self, subject: SubjectView<'_>, now: i64) -> Option<(i64, i64)> {
        let grace = self.rule.retention_after_end;
        subject
            .spilled_events()
            .iter()
            .filter(|e| self.ends_purpose(e) && e.at.saturating_add(grace) <= now)
            .map(|e| (e.at, e.at.saturating_add(grace)))
            .max()
    }

    /// Whether `test` holds for each leaf purpose under the request's (given as the
    /// leaf and its ancestors).
    fn each_leaf(&self, mut test: impl FnMut(u128) -> bool) -> bool {
        if self.leaves & self.leaves.wrapping_sub(1) == 0 {
            let own = self.leaves == 0 || self.leaves & self.purpose_up != 0;
            return test(if own { self.purpose_up } else { self.up_of(self.leaves) });
        }
        let mut leaves = self.leaves;
        while leaves != 0 {
            let leaf = leaves & leaves.wrapping_neg();
            leaves &= !leaf;
            if !test(self.up_of(leaf)) {
                return false;
            }
        }
        true
    }

    /// Whether the latest event covering a leaf (given with its ancestors) by `now` is
    /// a withdrawal.
    fn withdrawn(&self, subject: Option<SubjectView<'_>>, up: u128, now: i64) -> bool {
        let Some(subject) = subject else { return false };
        let (early, rest) = subject.early_and_rest();
        let mut withdrawn = false;
        for event in early.iter().flatten().chain(rest) {
            if event.at > now {
                break;
            }
            if event.purposes() & up != 0 && !event.is_end() {
                withdrawn = event.is_withdrawal();
            }
        }
        withdrawn
    }

    /// Whether a guardian's grant, unexpired and not withdrawn since, covers a leaf
    /// (given with its ancestors).
    fn guardian_live(&self, subject: Option<SubjectView<'_>>, up: u128, now: i64) -> bool {
        let Some(subject) = subject else { return false };
        let mut live = false;
        let (early, rest) = subject.early_and_rest();
        for event in early.iter().flatten().chain(rest) {
            if event.at > now {
                break;
            }
            if event.purposes() & up == 0 || event.is_end() {
                continue;
            }
            if event.is_withdrawal() {
                live = false;
            } else if event.by_guardian() {
                // Terms that cannot be read do not stand in the way of a deletion.
                let unexpired = subject.terms(event).is_ok_and(|terms| terms.is_none_or(|t| t.expires_at > now));
                live = live || unexpired;
            }
        }
        live
    }

    fn with_subject(&self, subject: Option<SubjectView<'_>>, now: i64) -> Verdict<'a> {
        let (policy, rule) = (self.policy, self.rule);

        if let Some(erased_at) = subject.and_then(|s| s.erased_at()).filter(|at| *at <= now) {
            if !self.compliance {
                return deny(ReasonCode::SubjectErased, Detail::At(erased_at));
            }
        }
        let minors = &policy.minors;
        let under_age = |until: Option<i64>| until.map_or(minors.unknown_is_minor, |until| now < until);
        let minor = minors.under.is_some() && under_age(subject.and_then(|s| s.adult_from()));
        // A minor young enough that all its data is sensitive (PIPL art. 28).
        let young = minor && under_age(subject.and_then(|s| s.sensitive_until()));
        if minor && minors.not_served && !self.basis.is_imposed_by_law() {
            return deny(ReasonCode::MinorNotServed, Detail::None);
        }
        if let Some((code, detail)) = &self.early {
            return deny(*code, detail.clone());
        }
        if let Some(retention) = rule.retention {
            if let Some(expired) = self.retention(retention, now) {
                // Some limits yield: to anonymization ("deleted or anonymized"), or to
                // a separate consent ("unless separately authorized").
                let anonymized = self.request.deidentification == Deidentification::Anonymized;
                let yields = (rule.retention_until_anonymized && anonymized)
                    || (rule.separate_consent_lifts_retention
                        && self.consent(subject, minor, None, ConsentLevel::Separate, now).code.is_allow());
                if !yields {
                    return expired;
                }
            }
        }
        if let Some(ended) = subject.and_then(|s| self.ended(s, now)) {
            // "Deleted or anonymized" holds after the end of the purpose too.
            let anonymized = self.request.deidentification == Deidentification::Anonymized;
            if !(rule.retention_until_anonymized && anonymized) {
                return ended;
            }
        }
        if let Some(signal) = self.signal {
            return deny(ReasonCode::OptOutSignal, Detail::Item(Cow::Borrowed(signal)));
        }

        let region = self.region;
        if let Some(level) = self.by_consent {
            let escalate = self.escalate || (policy.separate.minor && young);
            let needed = if escalate { ConsentLevel::Separate } else { level };
            return self.consent(subject, minor, self.transfer.then_some(region), needed, now);
        }
        // An exemption from consent (a basis in law, or anonymized data) is not the
        // separate grant that a transfer region needs, nor, for a minor, the guardian's
        // consent that only the law itself can stand in for (PIPL art. 31).
        if self.basis != LegalBasis::Consent || self.exempt {
            let guardian = !self.exempt && minor && !minors.not_served && !self.basis.is_imposed_by_law();
            if self.transfer || guardian {
                let separate = self.transfer || (policy.separate.minor && young);
                let needed = if separate { ConsentLevel::Separate } else { ConsentLevel::Explicit };
                let verdict = self.consent(subject, guardian, self.transfer.then_some(region), needed, now);
                if !verdict.code.is_allow() {
                    return match verdict.code {
                        ReasonCode::ConsentMissing | ReasonCode::ConsentLevelInsufficient if self.transfer => {
                            deny(ReasonCode::SeparateConsentRequired, Detail::Transfer(Cow::Borrowed(region.as_str())))
                        }
                        ReasonCode::ConsentMissing => deny(ReasonCode::GuardianConsentRequired, Detail::None),
                        _ => verdict,
                    };
                }
            }
            let code = if self.basis == LegalBasis::ResearchDeidentified || self.exempt {
                ReasonCode::DeidentifiedExempt
            } else {
                ReasonCode::LegalBasis
            };
            return Verdict { code, detail: Detail::None };
        }

        let escalate = self.escalate || (policy.separate.minor && young);
        let needed = if escalate { ConsentLevel::Separate } else { self.level };
        self.consent(subject, minor, self.transfer.then_some(region), needed, now)
    }

    fn retention(&self, retention: Retention, now: i64) -> Option<Verdict<'a>> {
        // Collecting starts the clock; deleting expired data is what retention asks.
        if matches!(self.request.action, Action::Collect | Action::Delete) {
            return None;
        }
        self.expired(retention, now)
    }

    /// `retention_expired` when the data is past the rule's retention, whatever the
    /// action. Inlined into [`Plan::retention`], as it was before it was split out.
    #[inline(always)]
    fn expired(&self, retention: Retention, now: i64) -> Option<Verdict<'a>> {
        let request = self.request;
        match retention.millis() {
            None => {
                // An empty session names no session: two of them are not one session.
                let same = match (&request.session, &request.collected_session) {
                    (Some(now), Some(then)) => !now.is_empty() && now == then,
                    _ => false,
                };
                (!same).then(|| deny(ReasonCode::RetentionExpired, Detail::Session))
            }
            // Data collected after the decision time would be fresh forever: the
            // collection time is not known.
            Some(limit) => match request.collected_at.map(|t| t.timestamp_millis()).filter(|t| *t <= now) {
                None => {
                    Some(deny(ReasonCode::RetentionExpired, Detail::Retention { limit: retention, collected: None }))
                }
                Some(collected) if now.saturating_sub(collected) > limit => Some(deny(
                    ReasonCode::RetentionExpired,
                    Detail::Retention { limit: retention, collected: Some(collected) },
                )),
                Some(_) => None,
            },
        }
    }

    /// `retention_expired` when an `end` of the purpose, past the rule's
    /// `retention_after_end`, came after the data was collected (a collection time
    /// that is missing, or later than the decision time, is not known to be after it).
    fn ended(&self, subject: SubjectView<'_>, now: i64) -> Option<Verdict<'a>> {
        // Collecting starts a new period; deleting is what the end makes due.
        if matches!(self.request.action, Action::Collect | Action::Delete) {
            return None;
        }
        self.ended_over(subject, now)
    }

    /// As [`Plan::ended`], whatever the action. Inlined into [`Plan::ended`], as it
    /// was before it was split out.
    #[inline(always)]
    fn ended_over(&self, subject: SubjectView<'_>, now: i64) -> Option<Verdict<'a>> {
        let request = self.request;
        let collected = request.collected_at.map(|t| t.timestamp_millis()).filter(|t| *t <= now);
        let grace = self.rule.retention_after_end;
        // Ends never sit in a compact record: an inline subject costs nothing here.
        subject.spilled_events().iter().find_map(|event| {
            let over = self.ends_purpose(event)
                && event.at.saturating_add(grace) <= now
                && collected.is_none_or(|c| c <= event.at);
            over.then(|| deny(ReasonCode::RetentionExpired, Detail::At(event.at)))
        })
    }

    /// Whether `event` is an `end` of the request's purpose, of one above it or of one
    /// below it.
    #[inline(always)]
    fn ends_purpose(&self, event: &StateEvent) -> bool {
        event.is_end() && event.purposes() & self.ended_by != 0
    }

    /// For a snapshot of this access (`crate::filter`): the latest `end` of the purpose
    /// whose `retention_after_end` has run out by `now` (data collected up to it is
    /// over), and the first instant after `now` at which another end's runs out.
    pub(crate) fn ends(&self, subject: SubjectView<'_>, now: i64) -> (Option<i64>, Option<i64>) {
        if matches!(self.request.action, Action::Collect | Action::Delete) {
            return (None, None);
        }
        let grace = self.rule.retention_after_end;
        let next = subject
            .spilled_events()
            .iter()
            .filter(|e| self.ends_purpose(e))
            .map(|e| e.at.saturating_add(grace))
            .filter(|due| *due > now)
            .min();
        (self.last_end_over(subject, now).map(|(at, _)| at), next)
    }

    /// The subject's consent to the purpose, at the needed level: for a purpose with
    /// children, to each leaf under it (the first leaf that denies decides).
    fn consent(
        &self,
        subject: Option<SubjectView<'_>>,
        minor: bool,
        transfer: Option<&'a Region>,
        needed: ConsentLevel,
        now: i64,
    ) -> Verdict<'a> {
        if self.leaves & self.leaves.wrapping_sub(1) == 0 {
            // One leaf: the request's own purpose (or its only descendant leaf, whose
            // ancestors include the purpose's).
            let own = self.leaves == 0 || self.leaves & self.purpose_up != 0;
            let up = if own { self.purpose_up } else { self.up_of(self.leaves) };
            return self.consent_to(up, subject, minor, transfer, needed, now);
        }
        let mut first_allow = None;
        let mut leaves = self.leaves;
        while leaves != 0 {
            let leaf = leaves & leaves.wrapping_neg();
            leaves &= !leaf;
            let verdict = self.consent_to(self.up_of(leaf), subject, minor, transfer, needed, now);
            if !verdict.code.is_allow() {
                return verdict;
            }
            first_allow.get_or_insert(verdict);
        }
        first_allow.unwrap_or_else(|| deny(ReasonCode::ConsentMissing, Detail::None))
    }

    /// A purpose node (given as its bit) and its ancestors.
    fn up_of(&self, node_bit: u128) -> u128 {
        self.policy.purposes.up(node_bit.trailing_zeros() as usize)
    }

    /// The subject's consent to one leaf purpose, given as it and its ancestors.
    /// Always inlined (into `consent`, which calls it for one leaf or for each): its
    /// own frame, the `Scan` built in it and the verdict moved out cost a check about
    /// 60 instructions (issue 31). Inlining `consent` or `with_subject` as well gained
    /// little or lost.
    #[inline(always)]
    fn consent_to(
        &self,
        purpose_up: u128,
        subject: Option<SubjectView<'_>>,
        minor: bool,
        transfer: Option<&'a Region>,
        needed: ConsentLevel,
        now: i64,
    ) -> Verdict<'a> {
        let guardian_needed = minor && !self.policy.minors.not_served;
        let Some(subject) = subject else {
            // Nobody has opted out who never said anything, unless the rule deems
            // consent only for the subjects it knows.
            if self.rule.known_subject {
                return deny(ReasonCode::ConsentMissing, Detail::None);
            }
            return self.deemed(guardian_needed, transfer, needed);
        };
        let mut scan = Scan { plan: self, subject, purpose_up, guardian_needed, transfer, needed, now, verdict: None };
        // Two plain loops, each monomorphic: a record's slots are tested in place, an
        // arena range's events as they are (a subject has one or the other).
        let (inline, spilled) = subject.events_in_place();
        let mut flow = ControlFlow::Continue(());
        for slot in inline {
            flow = scan.step(slot);
            if flow.is_break() {
                break;
            }
        }
        if flow.is_continue() {
            for event in spilled {
                flow = scan.step(event);
                if flow.is_break() {
                    break;
                }
            }
        }
        if let ControlFlow::Break(Some(unavailable)) = flow {
            return unavailable;
        }
        let verdict = scan.verdict;
        match verdict {
            Some(verdict) => verdict,
            None => self.deemed(guardian_needed, transfer, needed),
        }
    }

    /// The verdict without a covering event: an opt-out rule deems consent given until
    /// withdrawn, but never guardian or separate consent, and never for a transfer.
    fn deemed(&self, guardian_needed: bool, transfer: Option<&'a Region>, needed: ConsentLevel) -> Verdict<'a> {
        if !self.rule.opt_out || transfer.is_some() {
            deny(ReasonCode::ConsentMissing, Detail::None)
        } else if guardian_needed {
            deny(ReasonCode::GuardianConsentRequired, Detail::None)
        } else if needed > self.rule.level {
            deny(ReasonCode::SeparateConsentRequired, Detail::Deemed { needed })
        } else {
            Verdict { code: ReasonCode::ConsentGiven, detail: Detail::None }
        }
    }

    fn grant(
        &self,
        grant: &impl EventRead,
        terms: Option<&Terms>,
        guardian_needed: bool,
        transfer: Option<&'a Region>,
        needed: ConsentLevel,
        now: i64,
    ) -> Verdict<'a> {
        let at = grant.at();
        let scope = terms.and_then(|t| t.scope.as_deref());
        if let Some(expires_at) = terms.map(|t| t.expires_at).filter(|at| *at <= now) {
            return deny(ReasonCode::ConsentExpired, Detail::At(expires_at));
        }
        if let Some(scope) = scope {
            if scope.categories != 0 && self.requested & !scope.categories != 0 {
                return deny(ReasonCode::ConsentMissing, Detail::Scope("data category"));
            }
            if !scope.regions.is_empty() && !scope.regions.contains(self.region) {
                return deny(ReasonCode::ConsentMissing, Detail::Scope("region"));
            }
            // A scope names exactly what was agreed: listing recipients limits
            // first-party use too, unless it lists `first_party`.
            if scope.recipients_limited {
                let by_name = self.recipient.is_some_and(|index| scope.recipients & (1u64 << (index % 64)) != 0);
                if !by_name && !scope.recipient_kinds.contains(self.request.recipient.kind.flag()) {
                    return deny(ReasonCode::ConsentMissing, Detail::Scope("recipient"));
                }
            }
        }
        if let Some(region) = transfer {
            let names_region = scope.is_some_and(|s| s.regions.contains(region));
            if grant.level() < ConsentLevel::Separate || !names_region {
                return deny(ReasonCode::SeparateConsentRequired, Detail::Transfer(Cow::Borrowed(region.as_str())));
            }
        }
        if guardian_needed && !grant.by_guardian() {
            return deny(ReasonCode::GuardianConsentRequired, Detail::None);
        }
        // "Express consent of parents or other guardians": the policy's least level of
        // a guardian's grant, on top of what the rule asks.
        let needed = if guardian_needed { needed.max(self.policy.minors.guardian_level) } else { needed };
        if grant.level() < needed {
            let code = if needed == ConsentLevel::Separate {
                ReasonCode::SeparateConsentRequired
            } else {
                ReasonCode::ConsentLevelInsufficient
            };
            return deny(code, Detail::Level { given: grant.level(), needed, at });
        }
        if self.rule.changed_in.is_some_and(|changed| terms.map_or(self.policy.version, |t| t.version) < changed) {
            return deny(ReasonCode::ReconsentRequired, Detail::At(at));
        }
        Verdict { code: ReasonCode::ConsentGiven, detail: Detail::At(at) }
    }
}

/// Why a deletion is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// The subject was erased.
    Erased,
    /// The subject is a minor and the policy does not serve minors.
    MinorNotServed,
    /// The subject is a minor and no guardian's grant covers the purpose.
    GuardianConsentMissing,
    /// The data is past its retention.
    RetentionExpired,
    /// The purpose ended for the subject and its `retention_after_end` has run.
    PurposeEnded,
    /// The subject withdrew the consent the basis rests on, and the policy deletes on
    /// withdrawal.
    Withdrawn,
}

impl Due {
    /// The name used in decisions and in what is owed.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Due::Erased => "subject_erased",
            Due::MinorNotServed => "minor_not_served",
            Due::GuardianConsentMissing => "guardian_consent_missing",
            Due::RetentionExpired => "retention_expired",
            Due::PurposeEnded => "purpose_ended",
            Due::Withdrawn => "consent_withdrawn",
        }
    }
}

#[inline]
pub(super) fn bit(index: usize) -> u128 {
    if index < MAX_NODES {
        1u128 << index
    } else {
        0
    }
}
