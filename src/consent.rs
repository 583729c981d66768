//! Consent records: the events that say who agreed to what (`subject`, `grant`,
//! `withdraw`, `erase`), the append-only history of one subject that can prove later
//! what they agreed to, and (inside the crate) the compiled state the guard reads.
//!
//! Events are the interchange JSON of `interchange.md`; they name purposes and
//! categories by their dotted names, so a history outlives any one policy.
//!
//! ```
//! use consent_guard::{ConsentEvent, ConsentHistory, Purpose};
//!
//! let events: Vec<ConsentEvent> = [
//!     r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#,
//!     r#"{"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}"#,
//! ].iter().map(|line| serde_json::from_str(line)).collect::<Result<_, _>>()?;
//! let history = ConsentHistory::new("u1", events);
//! let january = "2026-01-15T00:00:00Z".parse()?;
//! assert!(history.consent_for(&Purpose::AI_TRAINING_MODEL_TRAINING, january).is_some());
//! let march = "2026-03-01T00:00:00Z".parse()?;
//! assert!(history.consent_for(&Purpose::AI_TRAINING_MODEL_TRAINING, march).is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod state;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::basis::ConsentLevel;
use crate::category::DataCategory;
use crate::purpose::Purpose;
use crate::request::Region;

/// One consent event. The JSON form is tagged by `type`.
///
/// More kinds of events may come (`#[non_exhaustive]`): a `match` needs a `_` arm.
/// Each variant's event has a constructor and builder methods, and converts into a
/// `ConsentEvent`:
///
/// ```
/// use consent_guard::consent::{GrantEvent, WithdrawEvent};
/// use consent_guard::{ConsentEvent, ConsentLevel, Purpose};
///
/// let at = "2026-01-02T00:00:00Z".parse()?;
/// let grant: ConsentEvent =
///     GrantEvent::new("u1", vec![Purpose::AI_TRAINING], ConsentLevel::Separate, at).policy_version("1.0").into();
/// let withdraw = ConsentEvent::from(WithdrawEvent::new("u1", vec![Purpose::AI_TRAINING], at));
/// assert_eq!((grant.kind(), withdraw.kind()), ("grant", "withdraw"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConsentEvent {
    /// Attributes of a data subject (its age).
    Subject(SubjectEvent),
    /// The subject (or a guardian) agreed to purposes.
    Grant(GrantEvent),
    /// The subject withdrew consent for purposes (and their children).
    Withdraw(WithdrawEvent),
    /// The account was cancelled.
    Erase(EraseEvent),
    /// The purposes (and their children) are over for the subject: the data collected
    /// for them is kept no longer than the rule's `retention_after_end`.
    End(EndEvent),
}

impl ConsentEvent {
    /// The subject the event is about.
    pub fn subject(&self) -> &str {
        match self {
            ConsentEvent::Subject(e) => &e.subject,
            ConsentEvent::Grant(e) => &e.subject,
            ConsentEvent::Withdraw(e) => &e.subject,
            ConsentEvent::Erase(e) => &e.subject,
            ConsentEvent::End(e) => &e.subject,
        }
    }

    /// When the event took effect, if it says.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            ConsentEvent::Subject(e) => e.at,
            ConsentEvent::Grant(e) => Some(e.at),
            ConsentEvent::Withdraw(e) => Some(e.at),
            ConsentEvent::Erase(e) => Some(e.at),
            ConsentEvent::End(e) => Some(e.at),
        }
    }

    /// The event's type name as in the JSON (`grant`…).
    pub fn kind(&self) -> &'static str {
        match self {
            ConsentEvent::Subject(_) => "subject",
            ConsentEvent::Grant(_) => "grant",
            ConsentEvent::Withdraw(_) => "withdraw",
            ConsentEvent::Erase(_) => "erase",
            ConsentEvent::End(_) => "end",
        }
    }
}

/// Attributes of a data subject: `birth_date`, or `age` in whole years at the event's
/// time, lets the guard know minors.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SubjectEvent {
    /// The subject.
    pub subject: String,
    /// Date of birth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    /// Age in whole years at `at` (or when the event is recorded).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole_years")]
    pub age: Option<u16>,
    /// When the attributes were stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SubjectEvent {
    /// The birth date and age are personal data: printed redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectEvent")
            .field("subject", &self.subject)
            .field("birth_date", &self.birth_date.map(|_| "<redacted>"))
            .field("age", &self.age.map(|_| "<redacted>"))
            .field("at", &self.at)
            .finish()
    }
}

/// The subject (or a guardian) agreed to purposes at a level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GrantEvent {
    /// The subject.
    pub subject: String,
    /// The purposes agreed to; each covers its children.
    pub purposes: Vec<Purpose>,
    /// How strongly.
    pub level: ConsentLevel,
    /// When.
    pub at: DateTime<Utc>,
    /// The policy version consented to; the enforced policy's version when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Given by a guardian on behalf of a minor.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_guardian: bool,
    /// Until when the grant holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Limits of the grant; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::request::optional_object")]
    pub scope: Option<Scope>,
}

/// Limits a grant to named recipients, regions and categories (each empty list means
/// no limit on that dimension). In JSON an absent key means no limit, and a list
/// written empty is remembered: `record` refuses it ([`Scope::empty_list`]), since a
/// consent screen with nothing ticked must not become consent to everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ScopeWire")]
#[non_exhaustive]
pub struct Scope {
    /// Recipients (declared names) that may receive data under the grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Regions the data may go to under the grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Region>,
    /// Categories the grant covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<DataCategory>,
    /// The first list the JSON wrote empty (`scope.categories`, ...), if any.
    #[serde(skip)]
    empty: Option<&'static str>,
}

/// A scope as written: each list absent or present, so that an empty list is told
/// apart from an absent one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeWire {
    #[serde(default, deserialize_with = "present")]
    recipients: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    regions: Option<Vec<Region>>,
    #[serde(default, deserialize_with = "present")]
    categories: Option<Vec<DataCategory>>,
}

/// A list that is written is a list: `null` is refused, not read as "no limit" (as an
/// empty list is refused).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Vec::deserialize(deserializer).map(Some)
}

/// An age in whole years: a JSON integer, or a number with no fraction (`14.0`, which
/// JSON Schema's `integer` also admits), or `null` (absent).
pub(crate) fn whole_years<'de, D>(deserializer: D) -> Result<Option<u16>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Whole(u16),
        Float(f64),
    }
    match Option::<Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Number::Whole(years)) => Ok(Some(years)),
        Some(Number::Float(years)) if years.fract() == 0.0 && (0.0..=f64::from(u16::MAX)).contains(&years) =>
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a whole number in range")]
            Ok(Some(years as u16))
        }
        Some(Number::Float(years)) => {
            Err(serde::de::Error::custom(format!("{years} is not an age in whole years (0 to {})", u16::MAX)))
        }
    }
}

impl From<ScopeWire> for Scope {
    fn from(wire: ScopeWire) -> Scope {
        let empty = [
            ("scope.categories", wire.categories.as_ref().is_some_and(Vec::is_empty)),
            ("scope.recipients", wire.recipients.as_ref().is_some_and(Vec::is_empty)),
            ("scope.regions", wire.regions.as_ref().is_some_and(Vec::is_empty)),
        ]
        .into_iter()
        .find_map(|(field, empty)| empty.then_some(field));
        Scope {
            recipients: wire.recipients.unwrap_or_default(),
            regions: wire.regions.unwrap_or_default(),
            categories: wire.categories.unwrap_or_default(),
            empty,
        }
    }
}

/// The subject withdrew consent for purposes, from `at` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WithdrawEvent {
    /// The subject.
    pub subject: String,
    /// The purposes withdrawn; each covers its children.
    pub purposes: Vec<Purpose>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The account was cancelled: from `at` on only `compliance.*` purposes on a
/// non-consent basis may touch the subject's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EraseEvent {
    /// The subject.
    pub subject: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The purposes are over for the subject ("we retain your personal information for
/// the period necessary for the purpose"): from `at` on, data collected for them at or
/// before `at` is kept only for the governing rule's `retention_after_end`, then it is
/// `retention_expired` and its deletion is due. Data collected after `at` belongs to
/// a new period. Unlike a withdrawal, it does not end consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EndEvent {
    /// The subject.
    pub subject: String,
    /// The purposes that are over; each covers its children.
    pub purposes: Vec<Purpose>,
    /// When the purpose ended.
    pub at: DateTime<Utc>,
}

impl EndEvent {
    /// The end of `purposes` for `subject` at `at`.
    pub fn new(subject: impl Into<String>, purposes: Vec<Purpose>, at: DateTime<Utc>) -> Self {
        EndEvent { subject: subject.into(), purposes, at }
    }
}

impl From<EndEvent> for ConsentEvent {
    fn from(event: EndEvent) -> Self {
        ConsentEvent::End(event)
    }
}

impl SubjectEvent {
    /// Attributes of `subject`, none stated yet.
    pub fn new(subject: impl Into<String>) -> SubjectEvent {
        SubjectEvent { subject: subject.into(), birth_date: None, age: None, at: None }
    }

    /// Sets the date of birth.
    #[must_use]
    pub fn birth_date(mut self, date: NaiveDate) -> Self {
        self.birth_date = Some(date);
        self
    }

    /// Sets the age in whole years at `at`.
    #[must_use]
    pub fn age(mut self, age: u16) -> Self {
        self.age = Some(age);
        self
    }

    /// Sets when the attributes were stated.
    #[must_use]
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }
}

impl GrantEvent {
    /// A grant of `purposes` at `level`, at `at`, without expiry, scope or policy
    /// version (the enforced version is stamped when recorded).
    pub fn new(subject: impl Into<String>, purposes: Vec<Purpose>, level: ConsentLevel, at: DateTime<Utc>) -> Self {
        GrantEvent {
            subject: subject.into(),
            purposes,
            level,
            at,
            policy_version: None,
            by_guardian: false,
            expires_at: None,
            scope: None,
        }
    }

    /// Sets the policy version consented to.
    #[must_use]
    pub fn policy_version(mut self, version: impl Into<String>) -> Self {
        self.policy_version = Some(version.into());
        self
    }

    /// Marks the grant as given by a guardian.
    #[must_use]
    pub fn by_guardian(mut self, by_guardian: bool) -> Self {
        self.by_guardian = by_guardian;
        self
    }

    /// Sets until when the grant holds.
    #[must_use]
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Limits the grant.
    #[must_use]
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }
}

impl Scope {
    /// No limit on any dimension; narrow it with the other methods.
    pub fn new() -> Scope {
        Scope::default()
    }

    /// Limits the recipients (declared names).
    #[must_use]
    pub fn recipients(mut self, recipients: Vec<String>) -> Self {
        self.recipients = recipients;
        self
    }

    /// Limits the regions.
    #[must_use]
    pub fn regions(mut self, regions: Vec<Region>) -> Self {
        self.regions = regions;
        self
    }

    /// Limits the categories.
    #[must_use]
    pub fn categories(mut self, categories: Vec<DataCategory>) -> Self {
        self.categories = categories;
        self
    }

    /// The first list the scope's JSON wrote empty (`"scope.categories"`,
    /// `"scope.recipients"` or `"scope.regions"`): such a grant is refused at
    /// `record`. A scope built in Rust has none (an empty `Vec` is an absent key).
    pub fn empty_list(&self) -> Option<&'static str> {
        self.empty
    }
}

impl WithdrawEvent {
    /// A withdrawal of `purposes` from `at` on.
    pub fn new(subject: impl Into<String>, purposes: Vec<Purpose>, at: DateTime<Utc>) -> Self {
        WithdrawEvent { subject: subject.into(), purposes, at }
    }
}

impl EraseEvent {
    /// The erasure of `subject`'s account at `at`.
    pub fn new(subject: impl Into<String>, at: DateTime<Utc>) -> Self {
        EraseEvent { subject: subject.into(), at }
    }
}

impl From<SubjectEvent> for ConsentEvent {
    fn from(event: SubjectEvent) -> Self {
        ConsentEvent::Subject(event)
    }
}

impl From<GrantEvent> for ConsentEvent {
    fn from(event: GrantEvent) -> Self {
        ConsentEvent::Grant(event)
    }
}

impl From<WithdrawEvent> for ConsentEvent {
    fn from(event: WithdrawEvent) -> Self {
        ConsentEvent::Withdraw(event)
    }
}

impl From<EraseEvent> for ConsentEvent {
    fn from(event: EraseEvent) -> Self {
        ConsentEvent::Erase(event)
    }
}

/// The append-only history of one subject's consent events, in the order they were
/// recorded. It answers "what did the subject agree to at time T, and on which event?".
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentHistory {
    subject: String,
    events: Vec<ConsentEvent>,
}

impl ConsentHistory {
    /// A history of the given events; events about other subjects are left out.
    pub fn new(subject: impl Into<String>, events: impl IntoIterator<Item = ConsentEvent>) -> Self {
        let subject = subject.into();
        let events = events.into_iter().filter(|e| e.subject() == subject).collect();
        ConsentHistory { subject, events }
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Every event, in recorded order.
    pub fn events(&self) -> &[ConsentEvent] {
        &self.events
    }

    /// Appends an event (of this subject; others are ignored). History is never
    /// rewritten.
    pub fn push(&mut self, event: ConsentEvent) {
        if event.subject() == self.subject {
            self.events.push(event);
        }
    }

    /// The grant on which the subject consented to `purpose` at `at`: the latest grant
    /// covering the purpose, made at or before `at`, not expired, with no covering
    /// withdrawal or erasure between it and `at`. `None` when there is none.
    pub fn consent_for(&self, purpose: &Purpose, at: DateTime<Utc>) -> Option<&GrantEvent> {
        let mut best: Option<&GrantEvent> = None;
        let mut cut: Option<DateTime<Utc>> = None;
        for event in &self.events {
            match event {
                ConsentEvent::Grant(grant)
                    if grant.at <= at
                        && grant.purposes.iter().any(|p| p.covers(purpose))
                        && best.is_none_or(|b| b.at <= grant.at) =>
                {
                    best = Some(grant);
                }
                ConsentEvent::Withdraw(w) if w.at <= at && w.purposes.iter().any(|p| p.covers(purpose)) => {
                    cut = cut.max(Some(w.at));
                }
                ConsentEvent::Erase(e) if e.at <= at => cut = cut.max(Some(e.at)),
                _ => {}
            }
        }
        best.filter(|grant| cut.is_none_or(|c| grant.at > c))
            .filter(|grant| grant.expires_at.is_none_or(|expiry| at < expiry))
    }
}

impl std::fmt::Debug for ConsentHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentHistory").field("subject", &self.subject).field("events", &self.events.len()).finish()
    }
}

#[cfg(all(test, feature = "json"))]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_missing_level_are_errors() {
        let typo = r#"{"type":"grant","subject":"u","purposes":["ai_training"],"level":"explicit","at":"2026-01-01T00:00:00Z","levle":"x"}"#;
        assert!(serde_json::from_str::<ConsentEvent>(typo).is_err());
        let no_level = r#"{"type":"grant","subject":"u","purposes":["ai_training"],"at":"2026-01-01T00:00:00Z"}"#;
        let err = serde_json::from_str::<ConsentEvent>(no_level).unwrap_err();
        assert!(err.to_string().contains("level"), "{err}");
    }

    #[test]
    fn a_later_grant_reopens_after_withdrawal() {
        let lines = [
            r#"{"type":"grant","subject":"u","purposes":["advertising"],"level":"separate","at":"2026-01-01T00:00:00Z"}"#,
            r#"{"type":"withdraw","subject":"u","purposes":["advertising.personalized"],"at":"2026-02-01T00:00:00Z"}"#,
            r#"{"type":"grant","subject":"u","purposes":["advertising.personalized"],"level":"separate","at":"2026-03-01T00:00:00Z"}"#,
        ];
        let events = lines.iter().map(|l| serde_json::from_str(l).unwrap());
        let history = ConsentHistory::new("u", events);
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let p = Purpose::ADVERTISING_PERSONALIZED;
        assert!(history.consent_for(&p, at("2026-01-15T00:00:00Z")).is_some());
        assert!(history.consent_for(&p, at("2026-02-15T00:00:00Z")).is_none());
        assert!(history.consent_for(&Purpose::ADVERTISING_MEASUREMENT, at("2026-02-15T00:00:00Z")).is_some());
        let reopened = history.consent_for(&p, at("2026-03-15T00:00:00Z")).unwrap();
        assert_eq!(reopened.at, at("2026-03-01T00:00:00Z"));
    }
}
