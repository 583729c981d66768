//! Errors, one enum per boundary: names, policy loading, consent events and requests,
//! stores. A denial is never an error: it is a [`crate::Decision`].

use std::fmt;

/// A string that is not a well-formed name of its kind (purpose, category, region…).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a valid {kind} name")]
pub struct NameError {
    kind: &'static str,
    name: String,
}

impl NameError {
    pub(crate) fn new(kind: &'static str, name: &str) -> NameError {
        NameError { kind, name: name.chars().take(80).collect() }
    }

    /// What kind of name was expected (`purpose`, `data category`, `region`…).
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// How serious a policy diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth a reviewer's eye; the policy still loads.
    Warning,
    /// The policy does not load.
    Error,
}

/// One problem found in a policy, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub(crate) severity: Severity,
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
    /// The warning's stable name (none for errors).
    pub(crate) warning: Option<&'static str>,
    /// The reason a rule's `allow` gives for accepting this warning.
    pub(crate) allowed: Option<String>,
    /// The id of the rule the problem is in, when it is in one.
    pub(crate) rule: Option<String>,
}

/// The stable names of policy warnings, as a rule's `allow` names them.
pub const WARNING_NAMES: [&str; 7] = [
    "redundant_purpose",
    "opt_out_sensitive",
    "sensitive_below_separate",
    "shadowed_rule",
    "unused_recipient",
    "unused_allow",
    "undeclared_material_change",
];

impl Diagnostic {
    /// A warning found outside the loader (by a tool comparing policies, say), at
    /// `file:line:col`, under one of the [`WARNING_NAMES`].
    pub fn warning(
        file: &str,
        line: usize,
        column: usize,
        name: &'static str,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
            warning: Some(name),
            allowed: None,
            rule: None,
        }
    }
    /// The same diagnostic, about the rule with this id.
    #[must_use]
    pub fn with_rule(mut self, id: impl Into<String>) -> Diagnostic {
        self.rule = Some(id.into());
        self
    }
    /// The id of the rule (`[[rule]]`) the problem is in; `None` for the policy's
    /// header, vocabulary, recipients and minors, and for syntax errors.
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }
    /// A warning's stable name (one of [`WARNING_NAMES`]); `None` for an error.
    pub fn warning_name(&self) -> Option<&'static str> {
        self.warning
    }
    /// When a rule's `allow` accepts this warning: the reason it gives.
    pub fn allowed(&self) -> Option<&str> {
        self.allowed.as_deref()
    }
    /// Error or warning.
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// The file the policy came from (`<builder>` for a built policy).
    pub fn file(&self) -> &str {
        &self.file
    }
    /// 1-based line, 0 when the location is unknown.
    pub fn line(&self) -> usize {
        self.line
    }
    /// 1-based column in characters, 0 when the location is unknown.
    pub fn column(&self) -> usize {
        self.column
    }
    /// What is wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning: ",
            Severity::Error => "",
        };
        write!(f, "{}:{}:{}: {}{}", self.file, self.line, self.column, level, self.message)
    }
}

/// A policy that could not be loaded: unreadable, not TOML, or invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{file}: cannot read policy: {source}")]
    Io {
        /// The path.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The policy has errors; every one found is listed.
    #[error("{}", display_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
}

fn display_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
    match errors.as_slice() {
        [] => "invalid policy".to_owned(),
        [only] => only.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more problems)", rest.len()),
    }
}

impl PolicyError {
    /// Every diagnostic (errors and warnings) of an invalid policy.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyError::Invalid(d) => d,
            PolicyError::Io { .. } => &[],
        }
    }
}

/// A consent event the guard refused: it names something the policy does not know, or
/// breaks the event rules. Nothing was recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// A purpose the policy neither has built in nor declares.
    #[error("unknown purpose `{0}`")]
    UnknownPurpose(String),
    /// A data category the policy neither has built in nor declares.
    #[error("unknown data category `{0}`")]
    UnknownCategory(String),
    /// A recipient name the policy does not declare.
    #[error("unknown recipient `{0}`")]
    UnknownRecipient(String),
    /// A field that must not be empty.
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
    /// A subject event with both `birth_date` and `age`, or an expiry before the grant.
    #[error("{0}")]
    Inconsistent(String),
    /// A policy version that is not dotted numbers.
    #[error("policy_version: {0}")]
    Version(String),
    /// The store could not make the event durable.
    #[error("consent store: {0}")]
    Store(#[from] StoreError),
}

/// An access request that names something the policy does not know. The guard itself
/// denies such requests; the CLI reports them as bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A purpose the policy neither has built in nor declares.
    #[error("purpose: unknown purpose `{0}`")]
    UnknownPurpose(String),
    /// A data category the policy neither has built in nor declares.
    #[error("categories: unknown data category `{0}`")]
    UnknownCategory(String),
    /// A recipient name the policy does not declare, or declared with another kind.
    #[error("recipient: {0}")]
    Recipient(String),
    /// No category named.
    #[error("categories: at least one category is required")]
    NoCategory,
}

/// A consent store failed. The guard fails closed on it: decisions that depend on the
/// subject's consent deny with `consent_state_unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A store error with a message.
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError { message: message.into(), source: None }
    }

    /// A store error caused by another error.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError { message: message.into(), source: Some(source.into()) }
    }
}

/// An audit sink could not keep a record. The guard fails closed on it: the decision
/// becomes a denial with code `audit_unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("audit sink: {message}")]
pub struct AuditError {
    message: String,
    #[source]
    source: Option<std::io::Error>,
}

impl AuditError {
    /// An audit error with a message.
    pub fn new(message: impl Into<String>) -> AuditError {
        AuditError { message: message.into(), source: None }
    }

    /// An audit error caused by an I/O error.
    pub fn io(message: impl Into<String>, source: std::io::Error) -> AuditError {
        AuditError { message: message.into(), source: Some(source) }
    }
}
