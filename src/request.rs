//! Access requests: everything the guard needs to know about one access to personal
//! data, and the small types of its dimensions (action, recipient, de-identification,
//! region, signals).
//!
//! An [`AccessRequest`] borrows where it can, so building one on the hot path need not
//! allocate: its categories can be a `&'static` slice of constants and its subject a
//! `&str`. Its JSON form is the one of `interchange.md`.
//!
//! ```
//! use consent_guard::{AccessRequest, Action, DataCategory, Purpose};
//!
//! let request = AccessRequest::new("u1", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG])
//!     .action(Action::Use);
//! assert_eq!(request.subject, "u1");
//! ```

use std::borrow::Cow;

use bitflags::bitflags;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::basis::LegalBasis;
use crate::category::DataCategory;
use crate::error::NameError;
use crate::purpose::Purpose;

/// What is done with the data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Collect it from the subject or a device.
    Collect,
    /// Keep it.
    Store,
    /// Process it (the default).
    #[default]
    Use,
    /// Provide it to another party.
    Share,
    /// Make it public.
    Disclose,
    /// Hand it to a successor in a merger or acquisition.
    Transfer,
    /// Delete it.
    Delete,
}

impl Action {
    /// Every action, in the vocabulary's order.
    pub const ALL: [Action; 7] = [
        Action::Collect,
        Action::Store,
        Action::Use,
        Action::Share,
        Action::Disclose,
        Action::Transfer,
        Action::Delete,
    ];

    /// The vocabulary's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Collect => "collect",
            Action::Store => "store",
            Action::Use => "use",
            Action::Share => "share",
            Action::Disclose => "disclose",
            Action::Transfer => "transfer",
            Action::Delete => "delete",
        }
    }

    #[inline]
    pub(crate) fn flag(self) -> Actions {
        match self {
            Action::Collect => Actions::COLLECT,
            Action::Store => Actions::STORE,
            Action::Use => Actions::USE,
            Action::Share => Actions::SHARE,
            Action::Disclose => Actions::DISCLOSE,
            Action::Transfer => Actions::TRANSFER,
            Action::Delete => Actions::DELETE,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

bitflags! {
    /// A set of [`Action`]s, as a rule permits them.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Actions: u8 {
        /// [`Action::Collect`]
        const COLLECT = 1;
        /// [`Action::Store`]
        const STORE = 1 << 1;
        /// [`Action::Use`]
        const USE = 1 << 2;
        /// [`Action::Share`]
        const SHARE = 1 << 3;
        /// [`Action::Disclose`]
        const DISCLOSE = 1 << 4;
        /// [`Action::Transfer`]
        const TRANSFER = 1 << 5;
        /// [`Action::Delete`]
        const DELETE = 1 << 6;
    }
}

/// Who receives the data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    /// The controller itself (the default).
    #[default]
    FirstParty,
    /// A company of the same group.
    Affiliate,
    /// A partner acting on instructions: cloud, payment, SDK.
    Processor,
    /// An independent controller.
    ThirdParty,
    /// The public.
    Public,
    /// An administrative or judicial authority.
    Authority,
}

impl RecipientKind {
    /// Every kind, in the vocabulary's order.
    pub const ALL: [RecipientKind; 6] = [
        RecipientKind::FirstParty,
        RecipientKind::Affiliate,
        RecipientKind::Processor,
        RecipientKind::ThirdParty,
        RecipientKind::Public,
        RecipientKind::Authority,
    ];

    /// The vocabulary's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::FirstParty => "first_party",
            RecipientKind::Affiliate => "affiliate",
            RecipientKind::Processor => "processor",
            RecipientKind::ThirdParty => "third_party",
            RecipientKind::Public => "public",
            RecipientKind::Authority => "authority",
        }
    }

    /// Parses a vocabulary name.
    pub fn from_name(name: &str) -> Option<RecipientKind> {
        RecipientKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    #[inline]
    pub(crate) fn flag(self) -> RecipientKinds {
        match self {
            RecipientKind::FirstParty => RecipientKinds::FIRST_PARTY,
            RecipientKind::Affiliate => RecipientKinds::AFFILIATE,
            RecipientKind::Processor => RecipientKinds::PROCESSOR,
            RecipientKind::ThirdParty => RecipientKinds::THIRD_PARTY,
            RecipientKind::Public => RecipientKinds::PUBLIC,
            RecipientKind::Authority => RecipientKinds::AUTHORITY,
        }
    }
}

impl std::fmt::Display for RecipientKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

bitflags! {
    /// A set of [`RecipientKind`]s, as a rule permits them.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct RecipientKinds: u8 {
        /// [`RecipientKind::FirstParty`]
        const FIRST_PARTY = 1;
        /// [`RecipientKind::Affiliate`]
        const AFFILIATE = 1 << 1;
        /// [`RecipientKind::Processor`]
        const PROCESSOR = 1 << 2;
        /// [`RecipientKind::ThirdParty`]
        const THIRD_PARTY = 1 << 3;
        /// [`RecipientKind::Public`]
        const PUBLIC = 1 << 4;
        /// [`RecipientKind::Authority`]
        const AUTHORITY = 1 << 5;
    }
}

/// The recipient of a request: a kind, and optionally the name of a recipient the
/// policy declares (`wechat_login`).
///
/// Built with [`Recipient::kind`], [`Recipient::named`] or [`Recipient::FIRST_PARTY`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Recipient<'a> {
    /// The kind of recipient.
    pub kind: RecipientKind,
    /// A recipient the policy declares.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
}

impl<'a> Recipient<'a> {
    /// The controller itself.
    pub const FIRST_PARTY: Recipient<'static> = Recipient { kind: RecipientKind::FirstParty, name: None };

    /// A recipient of a kind, unnamed.
    pub fn kind(kind: RecipientKind) -> Recipient<'static> {
        Recipient { kind, name: None }
    }

    /// A declared recipient, by name.
    pub fn named(kind: RecipientKind, name: impl Into<Cow<'a, str>>) -> Recipient<'a> {
        Recipient { kind, name: Some(name.into()) }
    }

    /// An owned copy.
    pub fn into_owned(self) -> Recipient<'static> {
        Recipient { kind: self.kind, name: self.name.map(|n| Cow::Owned(n.into_owned())) }
    }
}

/// How far data has been de-identified, weakest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deidentification {
    /// Identifiable (the default).
    #[default]
    None,
    /// De-identified, but re-identifiable with extra data.
    Pseudonymized,
    /// Cannot be re-identified.
    Anonymized,
}

impl Deidentification {
    /// The vocabulary's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Deidentification::None => "none",
            Deidentification::Pseudonymized => "pseudonymized",
            Deidentification::Anonymized => "anonymized",
        }
    }
}

impl std::fmt::Display for Deidentification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ISO 3166-1 alpha-2 region code (`CN`), stored as two upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region([u8; 2]);

impl Region {
    /// Parses a two-letter code; lower case is accepted and upper-cased.
    ///
    /// # Errors
    ///
    /// When the code is not two ASCII letters.
    pub fn new(code: &str) -> Result<Region, NameError> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Region([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(NameError::new("region", code)),
        }
    }

    /// The code, e.g. `CN`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Region {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Region, NameError> {
        Region::new(s)
    }
}

impl Serialize for Region {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Region, D::Error> {
        let code = Cow::<'de, str>::deserialize(deserializer)?;
        Region::new(&code).map_err(serde::de::Error::custom)
    }
}

/// Privacy signals a browser sent with the request.
///
/// More signals will come (IAB TCF and GPP strings): build one with
/// [`Signals::default`] and the `with_` methods, or read them from the headers with
/// the tower layer (feature `tower`).
///
/// ```
/// use consent_guard::Signals;
///
/// let signals = Signals::default().with_gpc(true);
/// assert!(signals.gpc && !signals.dnt);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Signals {
    /// Do Not Track.
    #[serde(default)]
    pub dnt: bool,
    /// Global Privacy Control.
    #[serde(default)]
    pub gpc: bool,
}

impl Signals {
    /// No signal sent.
    pub const NONE: Signals = Signals { dnt: false, gpc: false };

    /// Sets Do Not Track.
    #[must_use]
    pub const fn with_dnt(mut self, dnt: bool) -> Signals {
        self.dnt = dnt;
        self
    }

    /// Sets Global Privacy Control.
    #[must_use]
    pub const fn with_gpc(mut self, gpc: bool) -> Signals {
        self.gpc = gpc;
        self
    }

    fn is_none(&self) -> bool {
        !self.dnt && !self.gpc
    }
}

/// One access to personal data, as the guard sees it.
///
/// Required: subject, purpose and at least one category. Defaults: action `use`,
/// recipient first party, de-identification none, region the policy's home region,
/// no signals, `at` the guard's clock. `collected_at`, `collected_session` and
/// `session` matter where the policy limits retention.
///
/// The type will grow (`#[non_exhaustive]`): build it with [`AccessRequest::new`] and
/// the builder methods, or read it from JSON.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessRequest<'a> {
    #[serde(borrow)]
    /// The subject whose data is touched.
    pub subject: Cow<'a, str>,
    /// Why the data is touched.
    pub purpose: Purpose,
    #[serde(borrow, deserialize_with = "non_empty_categories")]
    /// What data is touched (at least one category).
    pub categories: Cow<'a, [DataCategory]>,
    #[serde(default)]
    /// What is done with it.
    pub action: Action,
    #[serde(default, borrow, deserialize_with = "object")]
    /// Who receives it.
    pub recipient: Recipient<'a>,
    #[serde(default)]
    /// How far it is de-identified.
    pub deidentification: Deidentification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The legal basis the caller relies on, where the rule lists several (the
    /// statutory cases of processing without consent); the rule's first when absent.
    /// One the rule does not list denies with `basis_not_permitted`.
    pub basis: Option<LegalBasis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Where it is stored or sent; the policy's home region when absent.
    pub region: Option<Region>,
    #[serde(default, skip_serializing_if = "Signals::is_none", deserialize_with = "object")]
    /// The browser signals.
    pub signals: Signals,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When the data was collected.
    pub collected_at: Option<DateTime<Utc>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    /// The session that collected the data.
    pub collected_session: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    /// The session of the request.
    pub session: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The time of the request; the guard's clock when absent.
    pub at: Option<DateTime<Utc>>,
}

impl AccessRequest<'_> {
    /// Whether `other` asks for the same access, whoever its subject is: what one
    /// template of an audit log's compact records stands for. Every field is named, so
    /// that a field added later cannot be forgotten here.
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    pub(crate) fn same_access(&self, other: &AccessRequest<'_>) -> bool {
        let AccessRequest {
            subject: _,
            purpose,
            categories,
            action,
            recipient,
            deidentification,
            basis,
            region,
            signals,
            collected_at,
            collected_session,
            session,
            at,
        } = self;
        *purpose == other.purpose
            && **categories == *other.categories
            && *action == other.action
            && *recipient == other.recipient
            && *deidentification == other.deidentification
            && *basis == other.basis
            && *region == other.region
            && *signals == other.signals
            && *collected_at == other.collected_at
            && *collected_session == other.collected_session
            && *session == other.session
            && *at == other.at
    }
}

fn non_empty_categories<'de, 'a, D>(deserializer: D) -> Result<Cow<'a, [DataCategory]>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let categories = Vec::<DataCategory>::deserialize(deserializer)?;
    if categories.is_empty() {
        return Err(serde::de::Error::invalid_length(0, &"at least one category"));
    }
    Ok(Cow::Owned(categories))
}

impl<'a> AccessRequest<'a> {
    /// A request with every optional field at its default.
    pub fn new(
        subject: impl Into<Cow<'a, str>>,
        purpose: Purpose,
        categories: impl Into<Cow<'a, [DataCategory]>>,
    ) -> AccessRequest<'a> {
        AccessRequest {
            subject: subject.into(),
            purpose,
            categories: categories.into(),
            action: Action::Use,
            recipient: Recipient::FIRST_PARTY,
            deidentification: Deidentification::None,
            basis: None,
            region: None,
            signals: Signals::default(),
            collected_at: None,
            collected_session: None,
            session: None,
            at: None,
        }
    }

    /// Sets the action.
    #[must_use]
    pub fn action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Sets the recipient.
    #[must_use]
    pub fn recipient(mut self, recipient: Recipient<'a>) -> Self {
        self.recipient = recipient;
        self
    }

    /// Sets the de-identification of the data.
    #[must_use]
    pub fn deidentification(mut self, level: Deidentification) -> Self {
        self.deidentification = level;
        self
    }

    /// Names the legal basis the access relies on, one of those the rule lists.
    #[must_use]
    pub fn basis(mut self, basis: LegalBasis) -> Self {
        self.basis = Some(basis);
        self
    }

    /// Sets where the data is stored or sent.
    #[must_use]
    pub fn region(mut self, region: Region) -> Self {
        self.region = Some(region);
        self
    }

    /// Sets the browser signals.
    #[must_use]
    pub fn signals(mut self, signals: Signals) -> Self {
        self.signals = signals;
        self
    }

    /// Sets when and in which session the data was collected.
    #[must_use]
    pub fn collected(mut self, at: DateTime<Utc>, session: Option<Cow<'a, str>>) -> Self {
        self.collected_at = Some(at);
        self.collected_session = session;
        self
    }

    /// Sets the session the request is made in.
    #[must_use]
    pub fn session(mut self, session: impl Into<Cow<'a, str>>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// Sets the time of the request (otherwise the guard's clock decides).
    #[must_use]
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }

    /// Sets the time only when the request names none of its own.
    #[must_use]
    pub fn at_or(mut self, at: DateTime<Utc>) -> Self {
        self.at.get_or_insert(at);
        self
    }

    /// An owned copy, for keeping beyond the borrowed input (audit sinks).
    pub fn into_owned(self) -> AccessRequest<'static> {
        AccessRequest {
            subject: Cow::Owned(self.subject.into_owned()),
            purpose: self.purpose,
            categories: Cow::Owned(self.categories.into_owned()),
            action: self.action,
            recipient: self.recipient.into_owned(),
            deidentification: self.deidentification,
            basis: self.basis,
            region: self.region,
            signals: self.signals,
            collected_at: self.collected_at,
            collected_session: self.collected_session.map(|s| Cow::Owned(s.into_owned())),
            session: self.session.map(|s| Cow::Owned(s.into_owned())),
            at: self.at,
        }
    }

    /// The same request for another subject, borrowing everything else from this one:
    /// what a prepared access hands to the audit sink, and what a batch compares to find
    /// requests that differ only in their subject, without allocating.
    pub fn for_subject<'b>(&'b self, subject: &'b str) -> AccessRequest<'b> {
        AccessRequest {
            subject: Cow::Borrowed(subject),
            purpose: self.purpose.clone(),
            categories: Cow::Borrowed(&self.categories),
            action: self.action,
            recipient: Recipient { kind: self.recipient.kind, name: self.recipient.name.as_deref().map(Cow::Borrowed) },
            deidentification: self.deidentification,
            basis: self.basis,
            region: self.region,
            signals: self.signals,
            collected_at: self.collected_at,
            collected_session: self.collected_session.as_deref().map(Cow::Borrowed),
            session: self.session.as_deref().map(Cow::Borrowed),
            at: self.at,
        }
    }
}

impl std::fmt::Debug for AccessRequest<'_> {
    /// Prints the dimensions of the request; the subject is redacted, since requests
    /// end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessRequest")
            .field("subject", &"<redacted>")
            .field("purpose", &self.purpose)
            .field("categories", &self.categories)
            .field("action", &self.action)
            .field("recipient", &self.recipient)
            .field("deidentification", &self.deidentification)
            .field("basis", &self.basis)
            .field("region", &self.region)
            .field("signals", &self.signals)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// Deserializes a struct only from a map (a JSON object): serde also reads a struct
/// written as an array of its fields, which the interchange format does not allow.
pub(crate) fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_map(ObjectOnly(std::marker::PhantomData))
}

/// [`object`], or `null` (absent).
pub(crate) fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OptionalObject<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for OptionalObject<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, deserializer: D2) -> Result<Option<T>, D2::Error> {
            object(deserializer).map(Some)
        }
    }
    deserializer.deserialize_option(OptionalObject(std::marker::PhantomData))
}

struct ObjectOnly<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
    }
}
