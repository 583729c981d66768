//! Decisions: what the guard answers. A [`Decision`] is allowed or not, with exactly one
//! [`ReasonCode`], the legal basis on an allow, the clause (rule id) that decided, and
//! the policy. Its message for people is built only when asked for.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::basis::{ConsentLevel, LegalBasis};
use crate::policy::{Policy, Retention};
use crate::purpose::Purpose;
use crate::request::AccessRequest;

/// Why a decision was made: stable, machine-readable. Allow codes are
/// `consent_given`, `legal_basis`, `deidentified_exempt` and `deletion_due`; every
/// other code denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReasonCode {
    /// Allowed: the subject consented at the level the rule needs.
    ConsentGiven,
    /// Allowed: a legal basis other than consent.
    LegalBasis,
    /// Allowed: the data is de-identified enough to need no consent.
    DeidentifiedExempt,
    /// Allowed: a `delete` the policy owes, whatever else the rule says: the subject
    /// was erased, is a minor the policy does not serve or whose guardian has not
    /// consented, or the data is past its retention or its purpose ended (a code this
    /// crate adds to the vocabulary's; the message names which).
    DeletionDue,
    /// The policy does not permit this purpose at all (deny by default).
    NoRule,
    /// The request names a purpose with children that different rules govern (or that
    /// no rule governs): no single clause can decide it, so the request must name the
    /// specific purpose (a code this crate adds to the vocabulary's).
    PurposeTooBroad,
    /// The request names a legal basis the rule does not list (a code this crate adds
    /// to the vocabulary's).
    BasisNotPermitted,
    /// A category the rule does not cover.
    CategoryNotPermitted,
    /// An action the rule does not permit.
    ActionNotPermitted,
    /// A recipient the rule (or the recipient's declaration) does not permit.
    RecipientNotPermitted,
    /// No grant covers the purpose (or the request's scope).
    ConsentMissing,
    /// The latest covering event is a withdrawal.
    ConsentWithdrawn,
    /// The grant has expired.
    ConsentExpired,
    /// The grant is below the rule's level.
    ConsentLevelInsufficient,
    /// Separate consent is needed and the grant is not separate.
    SeparateConsentRequired,
    /// The subject is a minor and the grant is not by a guardian.
    GuardianConsentRequired,
    /// The policy does not serve minors.
    MinorNotServed,
    /// The consent predates a material change of the rule.
    ReconsentRequired,
    /// The data must be de-identified further.
    DeidentificationRequired,
    /// The region is not permitted.
    RegionNotPermitted,
    /// The data is past its retention.
    RetentionExpired,
    /// The subject was erased.
    SubjectErased,
    /// A browser signal switched the rule off.
    OptOutSignal,
    /// The consent state could not be read: fail closed.
    ConsentStateUnavailable,
    /// The audit sink could not keep the record: an access that cannot be audited does
    /// not happen (a code this crate adds to the vocabulary's).
    AuditUnavailable,
}

impl ReasonCode {
    /// Every code, allow codes first.
    pub const ALL: [ReasonCode; 25] = [
        ReasonCode::ConsentGiven,
        ReasonCode::LegalBasis,
        ReasonCode::DeidentifiedExempt,
        ReasonCode::DeletionDue,
        ReasonCode::NoRule,
        ReasonCode::PurposeTooBroad,
        ReasonCode::BasisNotPermitted,
        ReasonCode::CategoryNotPermitted,
        ReasonCode::ActionNotPermitted,
        ReasonCode::RecipientNotPermitted,
        ReasonCode::ConsentMissing,
        ReasonCode::ConsentWithdrawn,
        ReasonCode::ConsentExpired,
        ReasonCode::ConsentLevelInsufficient,
        ReasonCode::SeparateConsentRequired,
        ReasonCode::GuardianConsentRequired,
        ReasonCode::MinorNotServed,
        ReasonCode::ReconsentRequired,
        ReasonCode::DeidentificationRequired,
        ReasonCode::RegionNotPermitted,
        ReasonCode::RetentionExpired,
        ReasonCode::SubjectErased,
        ReasonCode::OptOutSignal,
        ReasonCode::ConsentStateUnavailable,
        ReasonCode::AuditUnavailable,
    ];

    /// Whether the code allows.
    #[inline]
    pub fn is_allow(self) -> bool {
        matches!(
            self,
            ReasonCode::ConsentGiven
                | ReasonCode::LegalBasis
                | ReasonCode::DeidentifiedExempt
                | ReasonCode::DeletionDue
        )
    }

    /// The vocabulary's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::ConsentGiven => "consent_given",
            ReasonCode::LegalBasis => "legal_basis",
            ReasonCode::DeidentifiedExempt => "deidentified_exempt",
            ReasonCode::DeletionDue => "deletion_due",
            ReasonCode::NoRule => "no_rule",
            ReasonCode::PurposeTooBroad => "purpose_too_broad",
            ReasonCode::BasisNotPermitted => "basis_not_permitted",
            ReasonCode::CategoryNotPermitted => "category_not_permitted",
            ReasonCode::ActionNotPermitted => "action_not_permitted",
            ReasonCode::RecipientNotPermitted => "recipient_not_permitted",
            ReasonCode::ConsentMissing => "consent_missing",
            ReasonCode::ConsentWithdrawn => "consent_withdrawn",
            ReasonCode::ConsentExpired => "consent_expired",
            ReasonCode::ConsentLevelInsufficient => "consent_level_insufficient",
            ReasonCode::SeparateConsentRequired => "separate_consent_required",
            ReasonCode::GuardianConsentRequired => "guardian_consent_required",
            ReasonCode::MinorNotServed => "minor_not_served",
            ReasonCode::ReconsentRequired => "reconsent_required",
            ReasonCode::DeidentificationRequired => "deidentification_required",
            ReasonCode::RegionNotPermitted => "region_not_permitted",
            ReasonCode::RetentionExpired => "retention_expired",
            ReasonCode::SubjectErased => "subject_erased",
            ReasonCode::OptOutSignal => "opt_out_signal",
            ReasonCode::ConsentStateUnavailable => "consent_state_unavailable",
            ReasonCode::AuditUnavailable => "audit_unavailable",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts behind a decision, kept as plain values so that the message is built
/// only when someone reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Detail<'a> {
    #[default]
    None,
    /// The name at fault: a category, action, recipient, region, signal or level.
    Item(Cow<'a, str>),
    /// A consent event's time (grant, withdrawal, expiry, erasure), in milliseconds.
    At(i64),
    /// The level given (and when) against the level needed.
    Level { given: ConsentLevel, needed: ConsentLevel, at: i64 },
    /// Deemed (opt-out) consent where an affirmative one is needed.
    Deemed { needed: ConsentLevel },
    /// Retention: the limit, and when the data was collected (`None`: unknown).
    Retention { limit: Retention, collected: Option<i64> },
    /// Session retention, with the sessions compared.
    Session,
    /// The scope of the grant excludes the request.
    Scope(&'static str),
    /// Needs a separate grant naming the region.
    Transfer(Cow<'a, str>),
}

impl Detail<'_> {
    fn into_owned(self) -> Detail<'static> {
        let own = |text: Cow<'_, str>| Cow::Owned(text.into_owned());
        match self {
            Detail::None => Detail::None,
            Detail::Item(item) => Detail::Item(own(item)),
            Detail::At(at) => Detail::At(at),
            Detail::Level { given, needed, at } => Detail::Level { given, needed, at },
            Detail::Deemed { needed } => Detail::Deemed { needed },
            Detail::Retention { limit, collected } => Detail::Retention { limit, collected },
            Detail::Session => Detail::Session,
            Detail::Scope(what) => Detail::Scope(what),
            Detail::Transfer(region) => Detail::Transfer(own(region)),
        }
    }
}

/// What the guard answered for one request.
///
/// A denial is a value, never an error. The JSON form is the one of `interchange.md`.
///
/// A decision the guard returns borrows the policy and the request it was made for, so
/// answering costs no copy; [`Decision::into_owned`] keeps one beyond them.
#[derive(Clone)]
#[must_use = "a decision that is not looked at protects nothing"]
pub struct Decision<'a> {
    pub(crate) code: ReasonCode,
    pub(crate) basis: Option<LegalBasis>,
    /// The time decided for, in milliseconds since the Unix epoch: the calendar form is
    /// built only when asked for.
    pub(crate) at: i64,
    /// Decided at a time the caller chose, not at the guard's clock.
    pub(crate) what_if: bool,
    pub(crate) facts: Facts<'a>,
    pub(crate) detail: Detail<'a>,
}

/// A decision that owns what it says: [`Decision::into_owned`] makes one, and it lives
/// beyond the guard and the request it was made for. Return it from a helper that
/// builds the request itself (the borrowed [`Decision`] of [`crate::Guard::check`]
/// cannot outlive that request):
///
/// ```
/// use consent_guard::{AccessRequest, DataCategory, Guard, OwnedDecision, Policy, Purpose, ReasonCode};
///
/// fn may_personalise(guard: &Guard, user: &str) -> OwnedDecision {
///     let request = AccessRequest::new(user, Purpose::ADVERTISING_PERSONALIZED, &[DataCategory::BEHAVIOR_LOG][..]);
///     guard.check(&request).into_owned()
/// }
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let decision = may_personalise(&guard, "u1");
/// assert_eq!(decision.code(), ReasonCode::ConsentMissing);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The owned copy allocates (the subject, the policy's name and version, the clause);
/// the check itself stays borrowed and allocation-free, so code that decides and
/// answers in one scope keeps using [`Decision`]. An alias rather than a type of its
/// own, so that both share every method and the JSON form.
pub type OwnedDecision = Decision<'static>;

/// Which policy, clause, subject and purpose a decision is about.
#[derive(Clone)]
pub(crate) enum Facts<'a> {
    /// As the guard decided: borrowed from the policy and the request.
    /// `rule` is the deciding rule's index in the policy: smaller than its id, which
    /// keeps a decision small to return.
    Checked { policy: &'a Policy, rule: Option<u16>, request: &'a AccessRequest<'a> },
    /// As a prepared access decided: borrowed from it, with the subject checked.
    Prepared { access: &'a PreparedFacts<'a>, subject: &'a str },
    /// Kept beyond the guard, or read back from JSON.
    Owned(Box<OwnedFacts>),
}

/// What a prepared access decides about, the same for each of its subjects: the access
/// keeps one ([`crate::PreparedAccess`]) and each of its decisions borrows it. It lives
/// here, not in the guard, so that a decision does not depend on the guard that made it.
#[derive(Debug)]
pub(crate) struct PreparedFacts<'g> {
    pub(crate) policy: &'g Policy,
    /// The deciding rule's index in the policy; `None` when no rule governs the purpose.
    pub(crate) rule: Option<u16>,
    pub(crate) purpose: &'g Purpose,
    /// Unique in this process: audit sinks write the template once and then name it
    /// by this key in each record (see [`crate::audit::AuditRecord::template_key`]).
    pub(crate) key: u64,
}

impl<'g> PreparedFacts<'g> {
    pub(crate) fn clause(&self) -> Option<&'g str> {
        self.rule.and_then(|index| self.policy.clause(index))
    }
}

/// The facts of a decision that owns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnedFacts {
    pub(crate) clause: Option<String>,
    pub(crate) policy: String,
    pub(crate) policy_version: String,
    pub(crate) subject: String,
    pub(crate) purpose: Purpose,
    /// The message as read back from JSON; built from the detail otherwise.
    pub(crate) message: Option<String>,
}

impl<'a> Decision<'a> {
    /// Whether the access may go ahead.
    #[inline]
    pub fn allowed(&self) -> bool {
        self.code.is_allow()
    }

    /// Whether the decision answers "what would have been decided at this time?"
    /// rather than deciding an access now ([`Guard::what_if`](crate::Guard::what_if),
    /// or a dry run at the request's own time). A what-if is an answer about another
    /// time: never act on it as a permission for an access now.
    #[inline]
    pub fn is_what_if(&self) -> bool {
        self.what_if
    }

    /// The reason code.
    #[inline]
    pub fn code(&self) -> ReasonCode {
        self.code
    }

    /// The legal basis, on an allow.
    pub fn basis(&self) -> Option<LegalBasis> {
        self.basis
    }

    /// The id of the rule that decided (`None` for `no_rule`).
    pub fn clause(&self) -> Option<&str> {
        match &self.facts {
            Facts::Checked { policy, rule, .. } => rule.and_then(|index| policy.clause(index)),
            Facts::Prepared { access, .. } => access.clause(),
            Facts::Owned(facts) => facts.clause.as_deref(),
        }
    }

    /// The policy's name.
    pub fn policy(&self) -> &str {
        match &self.facts {
            Facts::Checked { policy, .. } => policy.name(),
            Facts::Prepared { access, .. } => access.policy.name(),
            Facts::Owned(facts) => &facts.policy,
        }
    }

    /// The policy's version.
    pub fn policy_version(&self) -> &str {
        match &self.facts {
            Facts::Checked { policy, .. } => policy.version(),
            Facts::Prepared { access, .. } => access.policy.version(),
            Facts::Owned(facts) => &facts.policy_version,
        }
    }

    /// The subject of the request.
    pub fn subject(&self) -> &str {
        match &self.facts {
            Facts::Checked { request, .. } => &request.subject,
            Facts::Prepared { subject, .. } => subject,
            Facts::Owned(facts) => &facts.subject,
        }
    }

    /// The purpose of the request.
    pub fn purpose(&self) -> &Purpose {
        match &self.facts {
            Facts::Checked { request, .. } => &request.purpose,
            Facts::Prepared { access, .. } => access.purpose,
            Facts::Owned(facts) => &facts.purpose,
        }
    }

    /// The time the request was decided for.
    pub fn at(&self) -> DateTime<Utc> {
        // In range by construction: it came from a `DateTime` or a clock.
        DateTime::from_timestamp_millis(self.at).unwrap_or_default()
    }

    /// Turns the decision into the denial of an access that could not be audited: an
    /// access that cannot be audited does not happen.
    pub(crate) fn unaudited(&mut self) {
        self.code = ReasonCode::AuditUnavailable;
        self.basis = None;
        self.detail = Detail::None;
    }

    /// The message as read back from JSON, if this decision was.
    pub(crate) fn stored_message(&self) -> Option<&str> {
        match &self.facts {
            Facts::Checked { .. } | Facts::Prepared { .. } => None,
            Facts::Owned(facts) => facts.message.as_deref(),
        }
    }

    /// A sentence for people; it may change between versions, the code does not.
    pub fn message(&self) -> Cow<'_, str> {
        if let Some(message) = self.stored_message() {
            return Cow::Borrowed(message);
        }
        Cow::Owned(self.build_message())
    }

    fn build_message(&self) -> String {
        let purpose = self.purpose();
        let subject = self.subject();
        let clause = self.clause().unwrap_or("the policy");
        let day = |ms: i64| {
            DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
        };
        let item = match &self.detail {
            Detail::Item(item) => item.as_ref(),
            _ => "",
        };
        match (self.code, &self.detail) {
            (ReasonCode::ConsentGiven, Detail::At(at)) => {
                format!("{subject} consented to {purpose} on {} ({clause})", day(*at))
            }
            (ReasonCode::ConsentGiven, _) => format!("{subject} has not opted out of {purpose} ({clause})"),
            (ReasonCode::LegalBasis, _) => {
                format!(
                    "{purpose} is permitted on the basis of {} ({clause})",
                    self.basis.map_or("law", LegalBasis::as_str)
                )
            }
            (ReasonCode::DeidentifiedExempt, _) => {
                format!("{purpose} on de-identified data needs no consent ({clause})")
            }
            (ReasonCode::DeletionDue, _) => {
                let why = match item {
                    "subject_erased" => format!("{subject} was erased"),
                    "minor_not_served" => format!("{subject} is a minor and the policy does not serve minors"),
                    "guardian_consent_missing" => {
                        format!("{subject} is a minor and no guardian consented to {purpose}")
                    }
                    "purpose_ended" => format!("{purpose} ended for {subject}"),
                    "consent_withdrawn" => {
                        format!("{subject} withdrew consent to {purpose} and the policy deletes on withdrawal")
                    }
                    _ => "the data is past its retention".to_owned(),
                };
                format!("deleting {subject}'s data for {purpose} is due ({item}): {why} ({clause})")
            }
            (ReasonCode::NoRule, _) => format!("the policy has no rule permitting {purpose}"),
            (ReasonCode::PurposeTooBroad, _) => {
                format!("{purpose} has children that other rules govern: name the specific purpose ({clause})")
            }
            (ReasonCode::BasisNotPermitted, _) => {
                format!("{clause} does not make {purpose} lawful on the basis of {item}")
            }
            (ReasonCode::CategoryNotPermitted, _) => format!("{clause} does not permit {item} data for {purpose}"),
            (ReasonCode::ActionNotPermitted, _) => format!("{clause} does not permit the action {item} for {purpose}"),
            (ReasonCode::RecipientNotPermitted, _) => {
                format!("{clause} does not permit recipient {item} for {purpose}")
            }
            (ReasonCode::ConsentMissing, Detail::Scope(what)) => {
                format!("{subject}'s consent to {purpose} does not extend to this {what}")
            }
            (ReasonCode::ConsentMissing, _) => format!("{subject} has not consented to {purpose}"),
            (ReasonCode::ConsentWithdrawn, Detail::At(at)) => {
                format!("{subject} withdrew consent to {purpose} on {}", day(*at))
            }
            (ReasonCode::ConsentWithdrawn, _) => format!("{subject} withdrew consent to {purpose}"),
            (ReasonCode::ConsentExpired, Detail::At(at)) => {
                format!("{subject}'s consent to {purpose} expired on {}", day(*at))
            }
            (ReasonCode::ConsentExpired, _) => format!("{subject}'s consent to {purpose} has expired"),
            (
                ReasonCode::ConsentLevelInsufficient | ReasonCode::SeparateConsentRequired,
                Detail::Level { given, needed, at },
            ) => {
                format!("{purpose} needs {needed} consent; {subject} gave {given} consent on {}", day(*at))
            }
            (ReasonCode::SeparateConsentRequired, Detail::Transfer(region)) => {
                format!("sending data for {purpose} to {region} needs separate consent naming {region}")
            }
            (ReasonCode::ConsentLevelInsufficient | ReasonCode::SeparateConsentRequired, Detail::Deemed { needed }) => {
                format!("{purpose} needs affirmative {needed} consent; {subject} has only not opted out")
            }
            (ReasonCode::ConsentLevelInsufficient | ReasonCode::SeparateConsentRequired, _) => {
                format!("{purpose} needs stronger consent from {subject}")
            }
            (ReasonCode::GuardianConsentRequired, _) => {
                format!("{subject} is a minor: {purpose} needs the consent of a guardian")
            }
            (ReasonCode::MinorNotServed, _) => format!("{subject} is a minor and the policy does not serve minors"),
            (ReasonCode::ReconsentRequired, Detail::At(at)) => {
                format!(
                    "{subject} consented to {purpose} on {} under a version older than the current terms of {clause}",
                    day(*at)
                )
            }
            (ReasonCode::ReconsentRequired, _) => format!("{subject} must renew consent to {purpose}"),
            (ReasonCode::DeidentificationRequired, _) => format!("{purpose} needs {item} data"),
            (ReasonCode::RegionNotPermitted, _) => format!("{clause} does not permit data for {purpose} in {item}"),
            (ReasonCode::RetentionExpired, Detail::Retention { limit, collected: Some(at) }) => {
                format!("data collected on {} is past the {limit} retention of {clause}", day(*at))
            }
            (ReasonCode::RetentionExpired, Detail::Retention { limit, collected: None }) => {
                format!("{clause} keeps data for {limit}; the request does not say when it was collected")
            }
            (ReasonCode::RetentionExpired, Detail::At(at)) => {
                format!("{purpose} ended for {subject} on {}: {clause} keeps its data no longer", day(*at))
            }
            (ReasonCode::RetentionExpired, _) => {
                format!("{clause} keeps data only for the session that collected it")
            }
            (ReasonCode::SubjectErased, Detail::At(at)) => format!("{subject} was erased on {}", day(*at)),
            (ReasonCode::SubjectErased, _) => format!("{subject} was erased"),
            (ReasonCode::OptOutSignal, _) => format!("the request carries a {item} signal that switches off {purpose}"),
            (ReasonCode::ConsentStateUnavailable, _) => {
                format!("the consent state of {subject} cannot be read: denied to fail closed")
            }
            (ReasonCode::AuditUnavailable, _) => "the audit record could not be kept: denied to fail closed".to_owned(),
        }
    }

    /// An owned copy, for keeping beyond the guard and the request. The message is
    /// still built only when asked for.
    pub fn into_owned(self) -> Decision<'static> {
        let facts = match self.facts {
            Facts::Owned(facts) => facts,
            Facts::Checked { policy, rule, request } => Box::new(OwnedFacts {
                clause: rule.and_then(|index| policy.clause(index)).map(str::to_owned),
                policy: policy.name().to_owned(),
                policy_version: policy.version().to_owned(),
                subject: request.subject.clone().into_owned(),
                purpose: request.purpose.clone(),
                message: None,
            }),
            Facts::Prepared { access, subject } => Box::new(OwnedFacts {
                clause: access.clause().map(str::to_owned),
                policy: access.policy.name().to_owned(),
                policy_version: access.policy.version().to_owned(),
                subject: subject.to_owned(),
                purpose: access.purpose.clone(),
                message: None,
            }),
        };
        Decision {
            code: self.code,
            basis: self.basis,
            at: self.at,
            what_if: self.what_if,
            facts: Facts::Owned(facts),
            detail: self.detail.into_owned(),
        }
    }
}

impl PartialEq for Decision<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.basis == other.basis
            && self.clause() == other.clause()
            && self.policy() == other.policy()
            && self.policy_version() == other.policy_version()
            && self.subject() == other.subject()
            && self.purpose() == other.purpose()
            && self.at == other.at
            && self.what_if == other.what_if
            && self.message() == other.message()
    }
}

impl fmt::Debug for Decision<'_> {
    /// The subject is redacted: decisions end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("allowed", &self.allowed())
            .field("code", &self.code)
            .field("basis", &self.basis)
            .field("clause", &self.clause())
            .field("policy", &self.policy())
            .field("purpose", self.purpose())
            .field("subject", &"<redacted>")
            .field("at", &self.at())
            .field("what_if", &self.what_if)
            .finish()
    }
}

/// The wire form of a decision, in the field order of `interchange.md`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionJson<'a> {
    allowed: bool,
    code: ReasonCode,
    #[serde(borrow)]
    message: Cow<'a, str>,
    basis: Option<LegalBasis>,
    #[serde(borrow)]
    clause: Option<Cow<'a, str>>,
    #[serde(borrow)]
    policy: Cow<'a, str>,
    #[serde(borrow)]
    policy_version: Cow<'a, str>,
    #[serde(borrow)]
    subject: Cow<'a, str>,
    purpose: Purpose,
    at: DateTime<Utc>,
    /// Present (and true) only on a what-if: the answer about another time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    what_if: bool,
}

impl Serialize for Decision<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        DecisionJson {
            allowed: self.allowed(),
            code: self.code,
            message: self.message(),
            basis: self.basis,
            clause: self.clause().map(Cow::Borrowed),
            policy: Cow::Borrowed(self.policy()),
            policy_version: Cow::Borrowed(self.policy_version()),
            subject: Cow::Borrowed(self.subject()),
            purpose: self.purpose().clone(),
            at: self.at(),
            what_if: self.what_if,
        }
        .serialize(serializer)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Decision<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Decision<'a>, D::Error> {
        let json = DecisionJson::deserialize(deserializer)?;
        if json.allowed != json.code.is_allow() {
            return Err(serde::de::Error::custom(format!(
                "`allowed` is {} but code `{}` {}",
                json.allowed,
                json.code,
                if json.code.is_allow() { "allows" } else { "denies" }
            )));
        }
        if json.basis.is_some() && !json.allowed {
            return Err(serde::de::Error::custom("a denial names no basis"));
        }
        Ok(Decision {
            code: json.code,
            basis: json.basis,
            at: json.at.timestamp_millis(),
            what_if: json.what_if,
            facts: Facts::Owned(Box::new(OwnedFacts {
                clause: json.clause.map(Cow::into_owned),
                policy: json.policy.into_owned(),
                policy_version: json.policy_version.into_owned(),
                subject: json.subject.into_owned(),
                purpose: json.purpose,
                message: Some(json.message.into_owned()),
            })),
            detail: Detail::None,
        })
    }
}
