//! What is owed: the deletions the policy makes due now, subject by subject
//! ([`Guard::owed`]) or for every subject the guard knows ([`Guard::owed_all`]).
//!
//! Each entry answers as a `delete` request would: for the reasons that depend on the
//! subject alone (erasure, minors, withdrawal) a `delete` of the entry's purposes and
//! categories is `deletion_due`. The end of a purpose and retention make only the data
//! collected before some instant owed (`collected_before`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::plan::{Due, Plan};
use super::Guard;
use crate::consent::state::{Lookup, SubjectView};
use crate::request::{AccessRequest, Action};
use crate::rights::{Calendar, Owed, OwedReason};

/// The consent state could not be read: what is owed cannot be listed in full.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the consent state cannot be read{}: what is owed cannot be listed", .subject.as_deref().map_or(String::new(), |_| " for a subject".to_owned()))]
pub struct OwedUnavailable {
    /// The subject whose state is unreadable (quarantined), if it is one subject.
    pub subject: Option<String>,
}

impl Guard {
    /// The deletions owed of one subject's data at `at`: erasure, a minor the policy
    /// does not serve or whose guardian has not consented, a withdrawal under
    /// `[rights] withdrawal_deletes`, the end of a purpose past its
    /// `retention_after_end`. Deadlines come from the policy's `[rights]`, working
    /// days from `calendar` (Monday to Friday without one).
    ///
    /// # Errors
    ///
    /// When the subject's consent state cannot be read.
    pub fn owed(
        &self,
        subject: &str,
        at: DateTime<Utc>,
        calendar: Option<&Calendar>,
    ) -> Result<Vec<Owed>, OwedUnavailable> {
        let present = self.clock.now_millis().max(at.timestamp_millis());
        self.state
            .read_at(Lookup::Id(subject), present, |view| self.owed_of(subject, view, at, calendar))
            .map_err(|_| OwedUnavailable { subject: Some(subject.to_owned()) })
    }

    /// As [`Guard::owed`], for every subject the guard knows, after one entry per
    /// rule with a time-based retention (`subject` null: every subject's data
    /// collected before `collected_before`). Sorted by subject, then clause.
    ///
    /// # Errors
    ///
    /// When the consent state, or one subject's, cannot be read.
    pub fn owed_all(&self, at: DateTime<Utc>, calendar: Option<&Calendar>) -> Result<Vec<Owed>, OwedUnavailable> {
        let mut owed = Vec::new();
        let policy = &self.policy;
        for (index, rule) in policy.rules.iter().enumerate() {
            let (Some(retention), Some(document)) = (rule.retention, policy.document.rules.get(index)) else {
                continue;
            };
            let Some(limit) = retention.millis() else { continue };
            let Some(cutoff) = DateTime::from_timestamp_millis(at.timestamp_millis().saturating_sub(limit)) else {
                continue;
            };
            owed.push(Owed {
                subject: None,
                purposes: document.purposes.clone(),
                categories: document.categories.clone(),
                reason: OwedReason::RetentionExpired,
                clause: u16::try_from(index).ok().and_then(|i| policy.clause(i)).map(str::to_owned),
                due: at,
                collected_before: Some(cutoff),
                anonymizing_suffices: rule.retention_until_anonymized,
                deadline: None,
                overdue: false,
                settled_at: None,
            });
        }
        if !self.state.is_available() {
            return Err(OwedUnavailable { subject: None });
        }
        let mut unreadable = None;
        let mut subjects = Vec::new();
        self.state
            .for_each_subject(|subject, view| match view {
                Ok(view) => subjects.push((subject.to_owned(), self.owed_of(subject, view, at, calendar))),
                Err(_) => unreadable = Some(subject.to_owned()),
            })
            .map_err(|_| OwedUnavailable { subject: None })?;
        if let Some(subject) = unreadable {
            return Err(OwedUnavailable { subject: Some(subject) });
        }
        subjects.sort_by(|a, b| a.0.cmp(&b.0));
        owed.extend(subjects.into_iter().flat_map(|(_, entries)| entries));
        Ok(owed)
    }

    fn owed_of(
        &self,
        subject: &str,
        view: Option<SubjectView<'_>>,
        at: DateTime<Utc>,
        calendar: Option<&Calendar>,
    ) -> Vec<Owed> {
        let policy = &self.policy;
        let now = at.timestamp_millis();
        let rights = policy.document.rights.as_ref();
        // When the guard first knew of the subject: the earliest of its events.
        let first_known = view.and_then(|v| {
            let (early, rest) = v.early_and_rest();
            early.iter().flatten().chain(rest).map(|e| e.at).min()
        });
        let mut owed = Vec::new();
        for (index, document) in policy.document.rules.iter().enumerate() {
            let Some(rule) = policy.rules.get(index) else { continue };
            // (reason, due, collected before) -> purposes.
            let mut found: BTreeMap<(OwedReason, i64, Option<i64>), Vec<crate::Purpose>> = BTreeMap::new();
            for purpose in governed(policy, index, &document.purposes) {
                let purpose = &purpose;
                let request =
                    AccessRequest::new(subject, purpose.clone(), document.categories.as_slice()).action(Action::Delete);
                let Some(plan) = Plan::new(policy, &request) else { continue };
                let entry = match plan.subject_due(view, now) {
                    Some(Due::Erased) => {
                        let erased = view.and_then(|v| v.erased_at()).unwrap_or(now);
                        Some((OwedReason::SubjectErased, erased, None))
                    }
                    Some(Due::MinorNotServed) => {
                        Some((OwedReason::MinorNotServed, first_known.unwrap_or(now).min(now), None))
                    }
                    Some(Due::GuardianConsentMissing) => {
                        Some((OwedReason::GuardianConsentMissing, first_known.unwrap_or(now).min(now), None))
                    }
                    Some(Due::Withdrawn) => {
                        let withdrawn = plan.last_withdrawal(view, now).unwrap_or(now);
                        Some((OwedReason::ConsentWithdrawn, withdrawn, Some(withdrawn)))
                    }
                    Some(Due::RetentionExpired | Due::PurposeEnded) | None => view
                        .and_then(|v| plan.last_end_over(v, now))
                        .map(|(end, due)| (OwedReason::PurposeEnded, due, Some(end))),
                };
                if let Some(key) = entry {
                    found.entry(key).or_default().push(purpose.clone());
                }
            }
            for ((reason, due, collected_before), purposes) in found {
                let Some(due_at) = DateTime::from_timestamp_millis(due) else { continue };
                let within = match reason {
                    OwedReason::SubjectErased => rights.and_then(|r| r.erasure_within.or(r.deletion_within)),
                    _ => rights.and_then(|r| r.deletion_within),
                };
                let deadline = within.and_then(|w| w.after(due_at, calendar));
                let anonymizing_suffices =
                    matches!(reason, OwedReason::PurposeEnded) && rule.retention_until_anonymized;
                owed.push(Owed {
                    subject: Some(subject.to_owned()),
                    purposes,
                    categories: document.categories.clone(),
                    reason,
                    clause: u16::try_from(index).ok().and_then(|i| policy.clause(i)).map(str::to_owned),
                    due: due_at,
                    collected_before: collected_before.and_then(DateTime::from_timestamp_millis),
                    anonymizing_suffices,
                    overdue: deadline.is_some_and(|d| d <= at),
                    settled_at: None,
                    deadline,
                });
            }
        }
        owed
    }
}

/// The purposes a rule governs that a request can name: each purpose it lists, or,
/// where another rule governs a purpose under one (a request for it would be
/// `purpose_too_broad`), the highest purposes under it that this rule governs alone.
fn governed(policy: &crate::Policy, index: usize, listed: &[crate::Purpose]) -> Vec<crate::Purpose> {
    let tree = &policy.purposes;
    let ours = |node: usize| {
        policy.rule_for.get(node).copied().flatten().map(usize::from) == Some(index)
            && policy.too_broad & super::plan::bit(node) == 0
    };
    let mut nodes: u128 = 0;
    for purpose in listed {
        let Some(node) = tree.index(&purpose.0) else { continue };
        let mut under = tree.down(node) | super::plan::bit(node);
        while under != 0 {
            let candidate = under.trailing_zeros() as usize;
            under &= under.wrapping_sub(1);
            if ours(candidate) {
                nodes |= super::plan::bit(candidate);
            }
        }
    }
    let mut purposes = Vec::new();
    let mut rest = nodes;
    while rest != 0 {
        let node = rest.trailing_zeros() as usize;
        rest &= rest.wrapping_sub(1);
        // Only the highest: no proper ancestor among the chosen.
        if tree.up(node) & nodes == super::plan::bit(node) {
            if let Ok(purpose) = crate::Purpose::new(tree.name(node)) {
                purposes.push(purpose);
            }
        }
    }
    purposes
}
