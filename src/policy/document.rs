//! The policy as written: the serde model of a policy file, field for field. It is
//! what TOML loads into and what the builder fills; [`crate::Policy::compile`] turns it
//! into a validated, compiled policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::basis::{Bases, ConsentLevel, LegalBasis};
use crate::category::DataCategory;
use crate::purpose::Purpose;
use crate::request::{Action, Deidentification, RecipientKind, Region};

/// A whole policy file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Name, version, regions.
    pub policy: PolicyHeader,
    /// How minors are treated; absent: as adults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minors: Option<MinorsSection>,
    /// The subjects' rights: deadlines of the deletions owed, deletion on withdrawal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rights: Option<RightsSection>,
    /// The policy's own purposes and categories.
    #[serde(default, skip_serializing_if = "VocabularySection::is_empty")]
    pub vocabulary: VocabularySection,
    /// Declared recipients, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recipients: BTreeMap<String, RecipientDeclaration>,
    /// The rules, one per clause.
    #[serde(default, rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleDocument>,
}

/// The `[policy]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyHeader {
    /// Appears in every decision.
    pub name: String,
    /// Dotted numbers (`1.0`, `2025.4.1`, `v2`).
    pub version: String,
    /// Where data is by default.
    pub home_region: Region,
    /// Where data may be stored; `[home_region]` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_regions: Option<Vec<Region>>,
    /// Which privacy policy text this encodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Situations that escalate consent rules to separate consent; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separate_consent_for: Option<Vec<SeparateTrigger>>,
}

/// A situation in which the law asks for separate consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SeparateTrigger {
    /// Sensitive personal information (PIPL art. 29).
    Sensitive,
    /// A subject under the guardian age (PIPL art. 28, 31).
    Minor,
    /// Providing data to an independent controller (PIPL art. 23).
    ThirdParty,
    /// Making data public (PIPL art. 25).
    Public,
    /// Sending data outside the storage regions (PIPL art. 39).
    CrossBorder,
}

impl SeparateTrigger {
    /// Every trigger: the default.
    pub const ALL: [SeparateTrigger; 5] = [
        SeparateTrigger::Sensitive,
        SeparateTrigger::Minor,
        SeparateTrigger::ThirdParty,
        SeparateTrigger::Public,
        SeparateTrigger::CrossBorder,
    ];
}

/// The `[minors]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MinorsSection {
    /// Subjects younger than this need guardian consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardian_consent_under: Option<u8>,
    /// Subjects younger than this are not served at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_served_under: Option<u8>,
    /// Subjects younger than this have sensitive personal information as a whole (PIPL
    /// art. 28: 14), which triggers separate consent (`minor` in
    /// `separate_consent_for`); the guardian age when absent. It may be lower than
    /// `guardian_consent_under`: AI Art asks a guardian's consent under 18, and only
    /// under-14 data is sensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_under: Option<u8>,
    /// The least level of a guardian's grant, on every rule: "express consent of
    /// parents or other guardians" is `explicit`. A rule asking more still asks more;
    /// absent, a consent rule asks its own level. Only with `guardian_consent_under`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardian_level: Option<ConsentLevel>,
    /// How to treat a subject whose age is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_age: Option<UnknownAge>,
}

/// The `[rights]` table: how long the deletions owed may take, and whether a
/// withdrawal of consent makes the data owed (issue 27, `docs/erasure.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RightsSection {
    /// How long after an erasure its deletions may take ("15 working days").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_within: Option<crate::rights::Deadline>,
    /// How long every other deletion owed may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_within: Option<crate::rights::Deadline>,
    /// A withdrawal of consent makes the data processed on consent owed to deletion
    /// (PIPL art. 47(3)); a `delete` of it is then `deletion_due`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawal_deletes: Option<bool>,
}

/// How to treat a subject whose age is unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnknownAge {
    /// As an adult (the interchange default).
    #[default]
    Adult,
    /// As a minor (fail closed).
    Minor,
}

/// The `[vocabulary]` table: extensions of the built-in names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VocabularySection {
    /// New purposes, each under an existing parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<Purpose>,
    /// New categories, each under an existing parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<DataCategory>,
    /// Categories to treat as sensitive besides the vocabulary's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<DataCategory>,
}

impl VocabularySection {
    fn is_empty(&self) -> bool {
        self.purposes.is_empty() && self.categories.is_empty() && self.sensitive.is_empty()
    }
}

/// A `[recipients.NAME]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RecipientDeclaration {
    /// What kind of recipient it is.
    pub kind: RecipientKind,
    /// The only purposes it may receive data for; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purposes: Option<Vec<Purpose>>,
    /// The only categories it may receive; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<DataCategory>>,
    /// The minimum de-identification of what it receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deidentification: Option<Deidentification>,
    /// Free text for reviewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Whether a consent rule's consent is absent until granted or given until withdrawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentDefault {
    /// Absent until granted.
    #[default]
    OptIn,
    /// Given until withdrawn.
    OptOut,
}

/// A browser privacy signal a rule honours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Do Not Track.
    Dnt,
    /// Global Privacy Control.
    Gpc,
}

/// How long data may be kept for a rule's purposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Only within the session that collected it.
    Session,
    /// A number of hours.
    Hours(u32),
    /// A number of days.
    Days(u32),
    /// A number of years of 365 days.
    Years(u32),
}

impl Retention {
    /// The longest retention a policy may state, in years: longer limits are an error
    /// rather than a number that overflows (and no privacy policy keeps data longer).
    pub const MAX_YEARS: u32 = 1000;

    /// The limit in milliseconds, `None` for session retention. A year counts 365 days.
    pub fn millis(self) -> Option<i64> {
        const HOUR: i64 = 3_600_000;
        let hours = match self {
            Retention::Session => return None,
            Retention::Hours(n) => i64::from(n),
            Retention::Days(n) => i64::from(n).saturating_mul(24),
            Retention::Years(n) => i64::from(n).saturating_mul(365 * 24),
        };
        Some(hours.saturating_mul(HOUR))
    }

    /// Rejects a limit longer than [`Retention::MAX_YEARS`] (a builder can state one
    /// that the parser would refuse).
    pub(crate) fn check_bounds(self) -> Result<(), String> {
        let (n, per_year) = match self {
            Retention::Session => return Ok(()),
            Retention::Hours(n) => (n, 365 * 24),
            Retention::Days(n) => (n, 365),
            Retention::Years(n) => (n, 1),
        };
        if n == 0 {
            return Err(format!("retention `{self}` must be longer than zero"));
        }
        if n > Retention::MAX_YEARS * per_year {
            return Err(format!("retention `{self}` is longer than {} years", Retention::MAX_YEARS));
        }
        Ok(())
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retention::Session => f.write_str("session"),
            Retention::Hours(n) => write!(f, "{n}h"),
            Retention::Days(n) => write!(f, "{n}d"),
            Retention::Years(n) => write!(f, "{n}y"),
        }
    }
}

impl std::str::FromStr for Retention {
    type Err = String;
    fn from_str(s: &str) -> Result<Retention, String> {
        if s == "session" {
            return Ok(Retention::Session);
        }
        let bad = || format!("retention `{s}` is neither `session` nor a duration like `12h`, `30d`, `1y`");
        let unit_at = s.len().checked_sub(1).ok_or_else(bad)?;
        let (number, unit) = (s.get(..unit_at).ok_or_else(bad)?, s.get(unit_at..).ok_or_else(bad)?);
        let n: u32 = number.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(format!("retention `{s}` must be longer than zero"));
        }
        let retention = match unit {
            "h" => Retention::Hours(n),
            "d" => Retention::Days(n),
            "y" => Retention::Years(n),
            _ => return Err(bad()),
        };
        retention.check_bounds()?;
        Ok(retention)
    }
}

impl Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Retention, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A `[[rule]]` table. Build one with [`RuleDocument::new`] and set the optional
/// fields: the table grows as the format does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleDocument {
    /// The clause it encodes (`exmo.training`); unique.
    pub id: String,
    /// The purposes it governs; each covers its subtree.
    pub purposes: Vec<Purpose>,
    /// On which legal basis, or bases (the first is the default).
    pub basis: Bases,
    /// Consent rules: the minimum level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<ConsentLevel>,
    /// Consent rules: opt-in (default) or opt-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ConsentDefault>,
    /// Opt-out rules: deem consent only for a subject the guard knows (one with any
    /// event), as when consent is implied by using the service; by default nobody has
    /// opted out who never said anything, known or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_subject: Option<bool>,
    /// Which data; each covers its subtree.
    pub categories: Vec<DataCategory>,
    /// Which actions; collect, store, use and delete when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Action>>,
    /// Recipient kinds and declared recipient names; first party when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
    /// The minimum de-identification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deidentification: Option<Deidentification>,
    /// Consent rules: anonymized data needs no consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymized_exempt: Option<bool>,
    /// Consent rules: the level anonymized requests need, below `level` ("with
    /// explicit consent ... anonymized behavioural data", separate consent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymized_level: Option<ConsentLevel>,
    /// How long data may be kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The retention limit applies until the data is anonymized: anonymized data
    /// outlives it ("deleted or anonymized").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_until_anonymized: Option<bool>,
    /// A separate consent of the subject lifts the retention limit ("only for the
    /// current session unless separately authorized").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separate_consent_lifts_retention: Option<bool>,
    /// How long data may be kept after an `end` event says the purpose is over for
    /// the subject ("for the period necessary for the purpose"); data collected
    /// before the end is `retention_expired` after it. Absent: none (expired at the
    /// end). A duration, not `session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_after_end: Option<Retention>,
    /// Where data may be; the policy's storage regions when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<Region>>,
    /// Regions reachable only with separate consent naming them (`*`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_regions: Option<Vec<String>>,
    /// Signals that switch the rule off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out_signals: Option<Vec<Signal>>,
    /// The version from which the rule's terms last changed materially.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_in: Option<String>,
    /// Rules on a basis other than consent: what the subject's consent adds ("after
    /// obtaining your explicit consent, we will share your personal information with
    /// other parties").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_consent: Option<WithConsent>,
    /// The sentence of the privacy policy the rule encodes, quoted, for reviewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Warnings about this rule that its authors accept, each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AllowWarning>,
}

/// One entry of a rule's `allow`: a named lint warning accepted, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AllowWarning {
    /// The warning's stable name (`sensitive_below_separate`...).
    pub warning: String,
    /// Why the rule is right as written; shown by `lint` and `explain`.
    pub reason: String,
}

impl AllowWarning {
    /// Allows the warning `warning` for `reason`.
    pub fn new(warning: impl Into<String>, reason: impl Into<String>) -> AllowWarning {
        AllowWarning { warning: warning.into(), reason: reason.into() }
    }
}

/// `[rule.with_consent]`: actions and recipients a rule on another basis permits only
/// with the subject's consent at `level` (separate-consent triggers still apply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WithConsent {
    /// The consent needed.
    pub level: ConsentLevel,
    /// The actions consent adds; `share` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Action>>,
    /// The recipient kinds and declared recipient names consent adds; the rule's own
    /// recipients when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
}

impl WithConsent {
    /// Consent at `level` to share with the rule's recipients.
    pub fn new(level: ConsentLevel) -> WithConsent {
        WithConsent { level, actions: None, recipients: None }
    }
}

impl RuleDocument {
    /// The actions a rule permits when it lists none.
    pub const DEFAULT_ACTIONS: [Action; 4] = [Action::Collect, Action::Store, Action::Use, Action::Delete];

    /// The actions the rule permits, its default applied.
    pub fn effective_actions(&self) -> &[Action] {
        self.actions.as_deref().unwrap_or(&Self::DEFAULT_ACTIONS)
    }

    /// The recipient kinds and names the rule permits, its default (`first_party`)
    /// applied.
    pub fn effective_recipients(&self) -> impl Iterator<Item = &str> {
        let listed = self.recipients.as_deref().map(|list| list.iter().map(String::as_str));
        let default = listed.is_none().then_some(RecipientKind::FirstParty.as_str());
        listed.into_iter().flatten().chain(default)
    }

    /// The minimum de-identification the guard enforces on a request decided on the
    /// rule's first basis: research on de-identified data needs pseudonymized data at
    /// least, whatever the rule says.
    pub fn effective_deidentification(&self) -> Deidentification {
        let written = self.deidentification.unwrap_or_default();
        if self.basis.first() == LegalBasis::ResearchDeidentified {
            written.max(Deidentification::Pseudonymized)
        } else {
            written
        }
    }

    /// The regions the rule permits, the policy's storage regions when it lists none.
    pub fn effective_regions<'a>(&'a self, storage_regions: &'a [Region]) -> &'a [Region] {
        self.regions.as_deref().unwrap_or(storage_regions)
    }

    /// The consent level the rule needs (consent rules only).
    pub fn effective_level(&self) -> Option<ConsentLevel> {
        (self.basis == LegalBasis::Consent).then_some(self.level.unwrap_or(ConsentLevel::Separate))
    }

    /// A rule with only its required fields.
    pub fn new(
        id: impl Into<String>,
        purposes: Vec<Purpose>,
        basis: impl Into<Bases>,
        categories: Vec<DataCategory>,
    ) -> RuleDocument {
        RuleDocument {
            id: id.into(),
            purposes,
            basis: basis.into(),
            level: None,
            default: None,
            known_subject: None,
            categories,
            actions: None,
            recipients: None,
            deidentification: None,
            anonymized_exempt: None,
            anonymized_level: None,
            retention: None,
            retention_until_anonymized: None,
            separate_consent_lifts_retention: None,
            retention_after_end: None,
            regions: None,
            transfer_regions: None,
            opt_out_signals: None,
            changed_in: None,
            with_consent: None,
            source: None,
            allow: Vec::new(),
        }
    }
}
