//! Sealed personal data: values that cannot be read, logged or serialised except
//! through a decision of the [`Guard`].
//!
//! A [`Personal<T>`] holds a value with its [`Tags`]: the subject, the data category,
//! when (and in which session) it was collected and how far it is de-identified. It
//! has no public field, no `Deref`, no accessor: `Debug`, `Display` and `Serialize`
//! print a redaction. The only way to the value is to ask the guard for a stated
//! purpose, action and recipient ([`Access`]):
//!
//! - [`open`] borrows it: a [`Granted<'p, T>`](Granted) derefs to `&T` and cannot
//!   outlive the record it borrows;
//! - [`share`] and [`into_shared`] hand over an owned value ([`Shared<T>`]);
//! - [`select`] and [`select_owned`] filter a stream of records for a pipeline, and
//!   count what they withhold per [`ReasonCode`](crate::ReasonCode) ([`Tally`]).
//!
//! Each of them builds the [`AccessRequest`] from the record's own tags, so retention
//! and session rules see when and where the data was really collected (a caller cannot
//! leave `collected_at` out), and passes it to [`Guard::check`], so that every opening
//! is audited like any other check.
//!
//! ```
//! use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
//! use consent_guard::{DataCategory, Guard, Policy, Purpose, ReasonCode};
//!
//! let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
//! let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), "opened task 7");
//! assert_eq!(format!("{log}"), "<redacted behavior.log of u1>");
//!
//! // Risk control may read behaviour logs on its own basis ...
//! let granted = guard.open(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).map_err(|d| d.message().into_owned())?;
//! assert_eq!(*granted, "opened task 7");
//! // ... training needs anonymised data (and the subject's separate consent).
//! let denied = guard.open(&log, &Access::new(Purpose::AI_TRAINING_MODEL_TRAINING));
//! assert_eq!(denied.err().map(|d| d.code()), Some(ReasonCode::DeidentificationRequired));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What the compiler enforces
//!
//! Reading the value without the guard does not compile: the field is private,
//! ```compile_fail,E0616
//! # use consent_guard::sealed::{Personal, Tags};
//! # use consent_guard::DataCategory;
//! let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("x"));
//! let value: &String = &log.value;
//! ```
//! there is no accessor,
//! ```compile_fail,E0599
//! # use consent_guard::sealed::{Personal, Tags};
//! # use consent_guard::DataCategory;
//! let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("x"));
//! let value: &String = log.value();
//! ```
//! ```compile_fail,E0599
//! # use consent_guard::sealed::{Personal, Tags};
//! # use consent_guard::DataCategory;
//! let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("x"));
//! let value: String = log.into_inner();
//! ```
//! and no `Deref`:
//! ```compile_fail,E0599
//! # use consent_guard::sealed::{Personal, Tags};
//! # use consent_guard::DataCategory;
//! let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("x"));
//! let length = log.len();
//! ```
//! ```compile_fail,E0614
//! # use consent_guard::sealed::{Personal, Tags};
//! # use consent_guard::DataCategory;
//! let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("x"));
//! let value: &String = &*log;
//! ```
//! A grant cannot outlive the record it borrows,
//! ```compile_fail,E0597
//! # use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
//! # use consent_guard::{DataCategory, Guard, Policy, Purpose};
//! # let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml").unwrap());
//! let access = Access::new(Purpose::SECURITY_OPERATIONS);
//! let granted;
//! {
//!     let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("x"));
//!     granted = guard.open(&log, &access).unwrap();
//! }
//! println!("{}", granted.len());
//! ```
//! nor survive the record being dropped or moved,
//! ```compile_fail,E0505
//! # use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
//! # use consent_guard::{DataCategory, Guard, Policy, Purpose};
//! # let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml").unwrap());
//! let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("x"));
//! let granted = guard.open(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).unwrap();
//! drop(log);
//! println!("{}", granted.len());
//! ```
//! and cannot be serialised once its scope is gone, for instance later on another
//! thread:
//! ```compile_fail,E0597
//! # use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
//! # use consent_guard::{DataCategory, Guard, Policy, Purpose};
//! # let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml").unwrap());
//! let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("x"));
//! let granted = guard.open(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).unwrap();
//! std::thread::spawn(move || serde_json::to_string(&granted));
//! ```
//!
//! # What it cannot enforce
//!
//! The closures given to [`Personal::map`], [`Personal::map_into`] and
//! [`Personal::deidentify`] see the value without a decision, so that derived data can
//! be computed without reading it into the caller's scope; they must not leak it
//! (store it elsewhere, log it), which Rust cannot prevent. Prefer pure transforms.
//! Likewise the tags are what the collecting code states: [`Personal::deidentify`]
//! trusts that its closure de-identifies. And a granted value can be copied by the
//! code it was granted to: the guard decides the access, not what happens after.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::category::DataCategory;
use crate::decision::Decision;
use crate::guard::Guard;
use crate::purpose::Purpose;
use crate::request::{AccessRequest, Action, Deidentification, Recipient, Region, Signals};

mod select;

pub use select::{select, select_owned, Select, SelectOwned, Tally};

/// What a [`Personal`] value is, apart from the value: whose, which category, when and
/// in which session it was collected, how far it is de-identified.
///
/// Cheap to clone: the subject and session are shared `Arc<str>`s, so the records of one
/// subject can share one allocation of its id.
///
/// ```
/// use std::sync::Arc;
/// use consent_guard::sealed::Tags;
/// use consent_guard::{DataCategory, Deidentification};
///
/// let alice: Arc<str> = Arc::from("alice");
/// let tags = Tags::new(alice.clone(), DataCategory::CONTENT_UPLOAD, chrono::Utc::now())
///     .session("s-42")
///     .deidentification(Deidentification::Pseudonymized);
/// assert!(Arc::ptr_eq(&tags.subject, &alice));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tags {
    /// The subject the data is about.
    pub subject: Arc<str>,
    /// What data it is.
    pub category: DataCategory,
    /// When it was collected: the start of its retention.
    pub collected_at: DateTime<Utc>,
    /// The session that collected it, for `retention = "session"` rules.
    pub session: Option<Arc<str>>,
    /// How far it is de-identified.
    pub deidentification: Deidentification,
}

impl Tags {
    /// Identifiable data of a subject and category, collected at `collected_at`
    /// outside any session.
    ///
    /// ```
    /// use consent_guard::sealed::Tags;
    /// use consent_guard::{DataCategory, Deidentification};
    ///
    /// let tags = Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now());
    /// assert_eq!(tags.deidentification, Deidentification::None);
    /// assert_eq!(tags.session, None);
    /// ```
    pub fn new(subject: impl Into<Arc<str>>, category: DataCategory, collected_at: DateTime<Utc>) -> Tags {
        Tags {
            subject: subject.into(),
            category,
            collected_at,
            session: None,
            deidentification: Deidentification::None,
        }
    }

    /// Sets the session that collected the data.
    ///
    /// ```
    /// use consent_guard::sealed::Tags;
    /// use consent_guard::DataCategory;
    ///
    /// let tags = Tags::new("u1", DataCategory::CONTENT_UPLOAD, chrono::Utc::now()).session("s1");
    /// assert_eq!(tags.session.as_deref(), Some("s1"));
    /// ```
    #[must_use]
    pub fn session(mut self, session: impl Into<Arc<str>>) -> Tags {
        self.session = Some(session.into());
        self
    }

    /// Sets how far the data is de-identified, as the code that collects it knows.
    ///
    /// ```
    /// use consent_guard::sealed::Tags;
    /// use consent_guard::{DataCategory, Deidentification};
    ///
    /// let tags = Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now())
    ///     .deidentification(Deidentification::Anonymized);
    /// assert_eq!(tags.deidentification, Deidentification::Anonymized);
    /// ```
    #[must_use]
    pub fn deidentification(mut self, level: Deidentification) -> Tags {
        self.deidentification = level;
        self
    }

    /// Seals a value with these tags; the same as [`Personal::new`].
    ///
    /// ```
    /// use consent_guard::sealed::Tags;
    /// use consent_guard::DataCategory;
    ///
    /// let log = Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()).seal("clicked");
    /// assert_eq!(log.tags().subject.as_ref(), "u1");
    /// ```
    pub fn seal<T>(self, value: T) -> Personal<T> {
        Personal::new(self, value)
    }
}

/// A personal value, sealed: readable only through a [`Guard`] decision.
///
/// No public field, no `Deref`, no accessor; `Debug` and `Display` print its category
/// and subject, never the value, and `Serialize` writes
/// `{"redacted":true,"category":…,"subject":…}`. See the [module](self) for the ways
/// to the value.
///
/// ```
/// use consent_guard::sealed::{Personal, Tags};
/// use consent_guard::DataCategory;
///
/// let email = Personal::new(Tags::new("u1", DataCategory::CONTACT_EMAIL, chrono::Utc::now()), "u1@example.com");
/// assert!(!format!("{email:?} {email}").contains("example.com"));
/// assert_eq!(
///     serde_json::to_string(&email)?,
///     r#"{"redacted":true,"category":"contact.email","subject":"u1"}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct Personal<T> {
    tags: Tags,
    value: T,
}

impl<T> Personal<T> {
    /// Seals a value. Allocates nothing beyond what `tags` already holds.
    ///
    /// ```
    /// use consent_guard::sealed::{Personal, Tags};
    /// use consent_guard::DataCategory;
    ///
    /// let phone = Personal::new(Tags::new("u1", DataCategory::CONTACT_PHONE, chrono::Utc::now()), 13800000000u64);
    /// assert_eq!(phone.tags().category, DataCategory::CONTACT_PHONE);
    /// ```
    pub fn new(tags: Tags, value: T) -> Personal<T> {
        Personal { tags, value }
    }

    /// The tags: who, what, when, where collected. There is no way to change them.
    ///
    /// ```
    /// use consent_guard::sealed::{Personal, Tags};
    /// use consent_guard::DataCategory;
    ///
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), ());
    /// assert_eq!(&*log.tags().subject, "u1");
    /// ```
    pub fn tags(&self) -> &Tags {
        &self.tags
    }

    /// The subject the value is about.
    ///
    /// ```
    /// use consent_guard::sealed::{Personal, Tags};
    /// use consent_guard::DataCategory;
    ///
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), ());
    /// assert_eq!(log.subject(), "u1");
    /// ```
    pub fn subject(&self) -> &str {
        &self.tags.subject
    }

    /// The data category of the value.
    ///
    /// ```
    /// use consent_guard::sealed::{Personal, Tags};
    /// use consent_guard::DataCategory;
    ///
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), ());
    /// assert_eq!(log.category(), &DataCategory::BEHAVIOR_LOG);
    /// ```
    pub fn category(&self) -> &DataCategory {
        &self.tags.category
    }

    /// Derives a value of the same subject and category, with the same collection time
    /// and session: derived data is as personal as its source.
    ///
    /// The closure sees the value without a guard decision so that the value never
    /// reaches the caller's scope; it must not leak it (copy it out, log it), which
    /// Rust cannot prevent. Keep it a pure transform.
    ///
    /// ```
    /// use consent_guard::sealed::{Personal, Tags};
    /// use consent_guard::DataCategory;
    ///
    /// let chat = Personal::new(Tags::new("u1", DataCategory::CONTENT_CHAT, chrono::Utc::now()), String::from("hello"));
    /// let length = chat.map(|text| text.len());
    /// assert_eq!(length.category(), &DataCategory::CONTENT_CHAT);
    /// assert_eq!(length.subject(), "u1");
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Personal<U> {
        Personal { tags: self.tags, value: f(self.value) }
    }

    /// Derives a value of another category, which the caller names: a feature vector
    /// computed from chat messages is `behavior.semantic_tags`, not `content.chat`.
    /// The other tags are kept. As for [`Personal::map`], the closure must not leak
    /// the value.
    ///
    /// ```
    /// use consent_guard::sealed::{Personal, Tags};
    /// use consent_guard::DataCategory;
    ///
    /// let chat = Personal::new(Tags::new("u1", DataCategory::CONTENT_CHAT, chrono::Utc::now()), String::from("hello"));
    /// let topics = chat.map_into(DataCategory::BEHAVIOR_SEMANTIC_TAGS, |text| vec![text.contains("hello")]);
    /// assert_eq!(topics.category(), &DataCategory::BEHAVIOR_SEMANTIC_TAGS);
    /// ```
    pub fn map_into<U>(self, category: DataCategory, f: impl FnOnce(T) -> U) -> Personal<U> {
        let tags = Tags { category, ..self.tags };
        Personal { tags, value: f(self.value) }
    }

    /// Derives a de-identified value: the closure removes what identifies the subject
    /// and the result is tagged with `level`. The guard trusts the tag, so the closure
    /// must really de-identify (and, as for [`Personal::map`], not leak the value).
    ///
    /// ```
    /// use consent_guard::sealed::{Personal, Tags};
    /// use consent_guard::{DataCategory, Deidentification};
    ///
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), ("u1", "opened task 7"));
    /// let anonymous = log.deidentify(Deidentification::Anonymized, |(_user, action)| action);
    /// assert_eq!(anonymous.tags().deidentification, Deidentification::Anonymized);
    /// ```
    pub fn deidentify<U>(self, level: Deidentification, f: impl FnOnce(T) -> U) -> Personal<U> {
        let tags = Tags { deidentification: level, ..self.tags };
        Personal { tags, value: f(self.value) }
    }

    /// A sealed borrow of the value with the same tags, for deriving without
    /// consuming: `record.by_ref().map(|v| v.len())`.
    ///
    /// ```
    /// use consent_guard::sealed::{Personal, Tags};
    /// use consent_guard::DataCategory;
    ///
    /// let chat = Personal::new(Tags::new("u1", DataCategory::CONTENT_CHAT, chrono::Utc::now()), String::from("hello"));
    /// let length = chat.by_ref().map(|text| text.len());
    /// assert_eq!(length.subject(), chat.subject());
    /// ```
    pub fn by_ref(&self) -> Personal<&T> {
        Personal { tags: self.tags.clone(), value: &self.value }
    }

    /// Hands the value over, consuming the record, if the guard allows the access: the
    /// same as [`into_shared`](fn@into_shared). Denied, the record comes back sealed.
    ///
    /// # Errors
    ///
    /// [`Denied`], with the guard's decision and the record, when the guard denies.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 7);
    /// let denied = log.into_shared(&guard, &Access::new(Purpose::MARKETING)).err();
    /// assert_eq!(denied.map(|d| d.personal.subject().to_owned()).as_deref(), Some("u1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[expect(clippy::result_large_err, reason = "the Ok variant is as large: boxing the denial saves nothing")]
    pub fn into_shared(self, guard: &Guard, access: &Access<'_>) -> Result<Shared<T>, Denied<T>> {
        into_shared(guard, self, access)
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Personal")
            .field("category", &self.tags.category)
            .field("subject", &self.tags.subject)
            .field("value", &format_args!("<redacted>"))
            .finish()
    }
}

impl<T> fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} of {}>", self.tags.category, self.tags.subject)
    }
}

impl<T> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut redaction = serializer.serialize_struct("Personal", 3)?;
        redaction.serialize_field("redacted", &true)?;
        redaction.serialize_field("category", &self.tags.category)?;
        redaction.serialize_field("subject", &*self.tags.subject)?;
        redaction.end()
    }
}

/// What an opening is for: purpose, action, recipient, region, signals, the session and
/// the time of the access. What the data is (subject, category, collection time and
/// session, de-identification) comes from the record's own [`Tags`], never from here.
///
/// ```
/// use consent_guard::sealed::Access;
/// use consent_guard::{Action, Purpose, Recipient, RecipientKind};
///
/// let login = Access::new(Purpose::ACCOUNT_LOGIN)
///     .action(Action::Share)
///     .recipient(Recipient::named(RecipientKind::Processor, "wechat_login"));
/// assert_eq!(login.action, Action::Share);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Access<'a> {
    /// Why the data is touched.
    pub purpose: Purpose,
    /// What is done with it (`use` by default).
    pub action: Action,
    /// Who receives it (first party by default).
    pub recipient: Recipient<'a>,
    /// Where it is stored or sent; the policy's home region when absent.
    pub region: Option<Region>,
    /// The browser signals of the request.
    pub signals: Signals,
    /// The session the access is made in, for `retention = "session"` rules.
    pub session: Option<Cow<'a, str>>,
}

impl<'a> Access<'a> {
    /// An access for a purpose: action `use`, first party, home region, no signals, no
    /// session. Sealed data opens only on a decision made now, at the guard's clock:
    /// an access has no time of its own.
    ///
    /// ```
    /// use consent_guard::sealed::Access;
    /// use consent_guard::{Action, Purpose, Recipient};
    ///
    /// let access = Access::new(Purpose::ANALYTICS_FEEDBACK);
    /// assert_eq!((access.action, access.recipient), (Action::Use, Recipient::FIRST_PARTY));
    /// ```
    pub fn new(purpose: Purpose) -> Access<'a> {
        Access {
            purpose,
            action: Action::Use,
            recipient: Recipient::FIRST_PARTY,
            region: None,
            signals: Signals::default(),
            session: None,
        }
    }

    /// Sets the action.
    ///
    /// ```
    /// use consent_guard::sealed::Access;
    /// use consent_guard::{Action, Purpose};
    ///
    /// assert_eq!(Access::new(Purpose::SECURITY).action(Action::Store).action, Action::Store);
    /// ```
    #[must_use]
    pub fn action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Sets the recipient.
    ///
    /// ```
    /// use consent_guard::sealed::Access;
    /// use consent_guard::{Purpose, Recipient, RecipientKind};
    ///
    /// let access = Access::new(Purpose::COMPLIANCE_AUTHORITY_REQUEST).recipient(Recipient::kind(RecipientKind::Authority));
    /// assert_eq!(access.recipient.kind, RecipientKind::Authority);
    /// ```
    #[must_use]
    pub fn recipient(mut self, recipient: Recipient<'a>) -> Self {
        self.recipient = recipient;
        self
    }

    /// Sets where the data is stored or sent.
    ///
    /// ```
    /// use consent_guard::sealed::Access;
    /// use consent_guard::{Purpose, Region};
    ///
    /// let access = Access::new(Purpose::SERVICE_CORE).region(Region::new("SG")?);
    /// assert_eq!(access.region.map(|r| r.to_string()).as_deref(), Some("SG"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn region(mut self, region: Region) -> Self {
        self.region = Some(region);
        self
    }

    /// Sets the browser signals.
    ///
    /// ```
    /// use consent_guard::sealed::Access;
    /// use consent_guard::{Purpose, Signals};
    ///
    /// let access = Access::new(Purpose::ADVERTISING).signals(Signals::default().with_gpc(true));
    /// assert!(access.signals.gpc);
    /// ```
    #[must_use]
    pub fn signals(mut self, signals: Signals) -> Self {
        self.signals = signals;
        self
    }

    /// Sets the session the access is made in.
    ///
    /// ```
    /// use consent_guard::sealed::Access;
    /// use consent_guard::Purpose;
    ///
    /// let access = Access::new(Purpose::SERVICE_UPLOAD_PROCESSING).session("s1");
    /// assert_eq!(access.session.as_deref(), Some("s1"));
    /// ```
    #[must_use]
    pub fn session(mut self, session: impl Into<Cow<'a, str>>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// The request the guard decides for one record: everything borrowed from the
    /// record and the access, so that building it allocates nothing.
    fn request<'r>(&'r self, tags: &'r Tags) -> AccessRequest<'r> {
        let recipient =
            Recipient { kind: self.recipient.kind, name: self.recipient.name.as_deref().map(Cow::Borrowed) };
        let mut request = AccessRequest::new(
            Cow::Borrowed(&*tags.subject),
            self.purpose.clone(),
            Cow::Borrowed(std::slice::from_ref(&tags.category)),
        )
        .action(self.action)
        .recipient(recipient)
        .deidentification(tags.deidentification)
        .signals(self.signals)
        .collected(tags.collected_at, tags.session.as_deref().map(Cow::Borrowed));
        request.region = self.region;
        request.session = self.session.as_deref().map(Cow::Borrowed);
        request
    }
}

/// A granted borrow of a sealed value: derefs to `&T`, carries the [`Decision`] that
/// allowed it, and cannot outlive the [`Personal`] it borrows.
///
/// `Serialize` writes the value itself (the grant is the permission); `Debug` still
/// prints a redaction, since logging is an access of its own.
///
/// ```
/// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
/// use consent_guard::{DataCategory, Guard, Policy, Purpose, ReasonCode};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), vec![1, 2, 3]);
/// let granted = guard.open(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).map_err(|d| d.message().into_owned())?;
/// assert_eq!(granted.len(), 3);
/// assert_eq!(granted.decision().code(), ReasonCode::LegalBasis);
/// assert_eq!(serde_json::to_string(&granted)?, "[1,2,3]");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Granted<'p, T> {
    personal: &'p Personal<T>,
    decision: Decision<'static>,
}

impl<T> Granted<'_, T> {
    /// The decision that allowed the access.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), ());
    /// let granted = guard.open(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).map_err(|d| d.message().into_owned())?;
    /// assert_eq!(granted.decision().clause(), Some("exmo.security"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decision(&self) -> &Decision<'static> {
        &self.decision
    }

    /// The tags of the record opened.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), ());
    /// let granted = guard.open(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).map_err(|d| d.message().into_owned())?;
    /// assert_eq!(&*granted.tags().subject, "u1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tags(&self) -> &Tags {
        &self.personal.tags
    }
}

impl<T> Deref for Granted<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.personal.value
    }
}

impl<T> fmt::Debug for Granted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Granted").field("personal", self.personal).field("decision", &self.decision).finish()
    }
}

impl<T: Serialize> Serialize for Granted<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.personal.value.serialize(serializer)
    }
}

/// An owned value handed over by a decision ([`share`], [`into_shared`]): once shared,
/// the value is the recipient's, so it is no longer bound to the record.
///
/// ```
/// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
/// use consent_guard::{Action, DataCategory, Guard, Policy, Purpose, Recipient, RecipientKind};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let name = Personal::new(Tags::new("u1", DataCategory::ACCOUNT_USERNAME, chrono::Utc::now()), String::from("neo"));
/// let access = Access::new(Purpose::COMPLIANCE_AUTHORITY_REQUEST)
///     .action(Action::Share)
///     .recipient(Recipient::kind(RecipientKind::Authority));
/// let shared = guard.share(&name, &access).map_err(|d| d.message().into_owned())?;
/// assert_eq!(shared.into_value(), "neo");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Shared<T> {
    tags: Tags,
    value: T,
    decision: Decision<'static>,
}

impl<T> Shared<T> {
    /// The decision that allowed the hand-over.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 7);
    /// let shared = log.into_shared(&guard, &Access::new(Purpose::SECURITY_OPERATIONS)).map_err(|d| d.decision.message().into_owned())?;
    /// assert!(shared.decision().allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decision(&self) -> &Decision<'static> {
        &self.decision
    }

    /// The tags of the record shared.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 7);
    /// let shared = log.into_shared(&guard, &Access::new(Purpose::SECURITY_OPERATIONS)).map_err(|d| d.decision.message().into_owned())?;
    /// assert_eq!(shared.tags().category, DataCategory::BEHAVIOR_LOG);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tags(&self) -> &Tags {
        &self.tags
    }

    /// The value, for the recipient to keep.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 7);
    /// let shared = log.into_shared(&guard, &Access::new(Purpose::SECURITY_OPERATIONS)).map_err(|d| d.decision.message().into_owned())?;
    /// assert_eq!(shared.into_value(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("category", &self.tags.category)
            .field("subject", &self.tags.subject)
            .field("value", &format_args!("<redacted>"))
            .field("decision", &self.decision)
            .finish()
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

/// A refused [`into_shared`]: the denial, and the record back, still sealed.
///
/// ```
/// use consent_guard::sealed::{Access, Personal, Tags};
/// use consent_guard::{DataCategory, Guard, Policy, Purpose, ReasonCode};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 7);
/// let Err(denied) = log.into_shared(&guard, &Access::new(Purpose::MARKETING)) else { unreachable!() };
/// assert_eq!(denied.decision.code(), ReasonCode::NoRule);
/// assert_eq!(denied.personal.subject(), "u1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Denied<T> {
    /// Why not.
    pub decision: Decision<'static>,
    /// The record, unopened.
    pub personal: Personal<T>,
}

/// Opens a sealed value for an access: the guard decides (and audits) the request
/// built from the record's tags and the access, and answers either a [`Granted`]
/// borrow or the denial.
///
/// # Errors
///
/// The guard's decision, when it denies.
///
/// ```
/// use consent_guard::sealed::{self, Access, Personal, Tags};
/// use consent_guard::{DataCategory, Guard, Policy, Purpose, ReasonCode};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), "opened task 7");
/// let denied = sealed::open(&guard, &log, &Access::new(Purpose::MARKETING)).err();
/// assert_eq!(denied.map(|d| d.code()), Some(ReasonCode::NoRule));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open<'p, T>(
    guard: &Guard,
    personal: &'p Personal<T>,
    access: &Access<'_>,
) -> Result<Granted<'p, T>, Decision<'static>> {
    let request = access.request(&personal.tags);
    let decision = guard.check(&request);
    if decision.allowed() {
        Ok(Granted { personal, decision: decision.into_owned() })
    } else {
        Err(decision.into_owned())
    }
}

/// Shares an owned copy of a sealed value, if the guard allows the access; the record
/// stays sealed.
///
/// # Errors
///
/// The guard's decision, when it denies.
///
/// ```
/// use consent_guard::sealed::{self, Access, Personal, Tags};
/// use consent_guard::{Action, DataCategory, Guard, Policy, Purpose, Recipient, RecipientKind};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let profile = Personal::new(Tags::new("u1", DataCategory::ACCOUNT_PROFILE, chrono::Utc::now()), String::from("avatar.png"));
/// let login = Access::new(Purpose::ACCOUNT_LOGIN)
///     .action(Action::Share)
///     .recipient(Recipient::named(RecipientKind::Processor, "wechat_login"));
/// let shared = sealed::share(&guard, &profile, &login).map_err(|d| d.message().into_owned())?;
/// assert_eq!(*shared, "avatar.png");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn share<T: Clone>(
    guard: &Guard,
    personal: &Personal<T>,
    access: &Access<'_>,
) -> Result<Shared<T>, Decision<'static>> {
    let granted = open(guard, personal, access)?;
    Ok(Shared { tags: personal.tags.clone(), value: personal.value.clone(), decision: granted.decision })
}

/// Hands a sealed value over, consuming the record, if the guard allows the access.
///
/// # Errors
///
/// [`Denied`], with the guard's decision and the record back, when it denies.
///
/// ```
/// use consent_guard::sealed::{self, Access, Personal, Tags};
/// use consent_guard::{Action, DataCategory, Guard, Policy, Purpose, Recipient, RecipientKind};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let email = Personal::new(Tags::new("u1", DataCategory::CONTACT_EMAIL, chrono::Utc::now()), String::from("u1@example.com"));
/// let authority = Access::new(Purpose::COMPLIANCE_AUTHORITY_REQUEST)
///     .action(Action::Share)
///     .recipient(Recipient::kind(RecipientKind::Authority));
/// let shared = sealed::into_shared(&guard, email, &authority).map_err(|d| d.decision.message().into_owned())?;
/// assert_eq!(shared.into_value(), "u1@example.com");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[expect(
    clippy::result_large_err,
    reason = "the Ok variant carries the same decision: boxing the denial saves nothing"
)]
pub fn into_shared<T>(guard: &Guard, personal: Personal<T>, access: &Access<'_>) -> Result<Shared<T>, Denied<T>> {
    let outcome = {
        let request = access.request(&personal.tags);
        let decision = guard.check(&request);
        (decision.allowed(), decision.into_owned())
    };
    match outcome {
        (true, decision) => Ok(Shared { tags: personal.tags, value: personal.value, decision }),
        (false, decision) => Err(Denied { decision, personal }),
    }
}

mod private {
    /// Keeps [`super::SealedAccess`] implemented by the guard alone.
    pub trait Sealed {}
    impl Sealed for crate::guard::Guard {}
}

/// The ways to sealed values, as methods of the [`Guard`]: `guard.open(&record, &access)`.
/// Each is the free function of the same name in [`crate::sealed`]; the consuming
/// [`into_shared`](fn@into_shared) is a method of the record, [`Personal::into_shared`].
///
/// ```
/// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
/// use consent_guard::{DataCategory, Guard, Policy, Purpose};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 7);
/// assert!(guard.open(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait SealedAccess: private::Sealed {
    /// [`open`]: a granted borrow, or the denial.
    ///
    /// # Errors
    ///
    /// The guard's decision, when it denies.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose, ReasonCode};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 7);
    /// let denied = guard.open(&log, &Access::new(Purpose::ADVERTISING_PERSONALIZED)).err();
    /// assert_eq!(denied.map(|d| d.code()), Some(ReasonCode::ConsentMissing));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn open<'p, T>(&self, personal: &'p Personal<T>, access: &Access<'_>) -> Result<Granted<'p, T>, Decision<'static>>;

    /// [`share`]: an owned copy, or the denial.
    ///
    /// # Errors
    ///
    /// The guard's decision, when it denies.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let log = Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), 7);
    /// let shared = guard.share(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).map_err(|d| d.message().into_owned())?;
    /// assert_eq!(*shared, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn share<T: Clone>(&self, personal: &Personal<T>, access: &Access<'_>) -> Result<Shared<T>, Decision<'static>>;

    /// [`select`]: the values of the records the guard allows, borrowed.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let now = chrono::Utc::now();
    /// let logs = [
    ///     Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, now), 1),
    ///     Personal::new(Tags::new("u2", DataCategory::CONTENT_CHAT, now), 2),
    /// ];
    /// let access = Access::new(Purpose::SECURITY_OPERATIONS);
    /// let kept: Vec<&i32> = guard.select(&logs, &access).collect();
    /// assert_eq!(kept, [&1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn select<'g, 'a, 'p, T: 'p, I>(&'g self, records: I, access: &'a Access<'a>) -> Select<'g, 'a, I::IntoIter>
    where
        I: IntoIterator<Item = &'p Personal<T>>;

    /// [`select_owned`]: the values of the records the guard allows, moved out.
    ///
    /// ```
    /// use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
    /// use consent_guard::{DataCategory, Guard, Policy, Purpose};
    ///
    /// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
    /// let now = chrono::Utc::now();
    /// let logs = vec![Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, now), String::from("a"))];
    /// let access = Access::new(Purpose::SECURITY_OPERATIONS);
    /// let kept: Vec<String> = guard.select_owned(logs, &access).collect();
    /// assert_eq!(kept, ["a"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn select_owned<'g, 'a, T, I>(&'g self, records: I, access: &'a Access<'a>) -> SelectOwned<'g, 'a, I::IntoIter>
    where
        I: IntoIterator<Item = Personal<T>>;
}

impl SealedAccess for Guard {
    fn open<'p, T>(&self, personal: &'p Personal<T>, access: &Access<'_>) -> Result<Granted<'p, T>, Decision<'static>> {
        open(self, personal, access)
    }

    fn share<T: Clone>(&self, personal: &Personal<T>, access: &Access<'_>) -> Result<Shared<T>, Decision<'static>> {
        share(self, personal, access)
    }

    fn select<'g, 'a, 'p, T: 'p, I>(&'g self, records: I, access: &'a Access<'a>) -> Select<'g, 'a, I::IntoIter>
    where
        I: IntoIterator<Item = &'p Personal<T>>,
    {
        select(self, records, access)
    }

    fn select_owned<'g, 'a, T, I>(&'g self, records: I, access: &'a Access<'a>) -> SelectOwned<'g, 'a, I::IntoIter>
    where
        I: IntoIterator<Item = Personal<T>>,
    {
        select_owned(self, records, access)
    }
}
