//! The step from a record of interchange JSON to an answer, the same for the command
//! line, `check --follow`, the HTTP service and golden tests: parse the request (an
//! error names the field at fault), validate it against the policy, then decide it with
//! [`Guard::check`], or with [`Guard::what_if`] when the request names its own `at`.
//!
//! ```
//! use consent_guard::interchange::answer::{answer, AnswerError};
//! use consent_guard::{Guard, Policy};
//!
//! let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
//! let request = br#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#;
//! let code = answer(&guard, request, |decision| decision.code())?;
//! assert_eq!(code.as_str(), "consent_missing");
//!
//! let misspelt = br#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"at":"now"}"#;
//! let error = answer(&guard, misspelt, |decision| decision.code()).unwrap_err();
//! assert_eq!(error.field(), Some("at"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::consent::ConsentEvent;
use crate::decision::Decision;
use crate::error::{EventError, RequestError};
use crate::guard::Guard;
use crate::policy::Policy;
use crate::request::{AccessRequest, RecipientKind};

use super::{event_message, explain, RecordKind};

/// Why a record got no answer: nothing was decided, recorded or audited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The record is not what it should be: `field: message`, or `malformed JSON: …`.
    #[error("{0}")]
    Malformed(String),
    /// The request names what the policy does not know.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The guard refused the consent event (nothing was recorded).
    #[error("{}", event_message(.0))]
    Event(#[from] EventError),
}

impl AnswerError {
    /// The field the error is about (`at`, `purpose`, `scope.categories`…), when the
    /// message names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            AnswerError::Malformed(message) => field_of(message),
            AnswerError::Request(RequestError::UnknownPurpose(_)) => Some("purpose"),
            AnswerError::Request(RequestError::UnknownCategory(_) | RequestError::NoCategory) => Some("categories"),
            AnswerError::Request(RequestError::Recipient(_)) => Some("recipient"),
            AnswerError::Event(EventError::UnknownPurpose(_)) => Some("purposes"),
            AnswerError::Event(EventError::UnknownCategory(_)) => Some("scope.categories"),
            AnswerError::Event(EventError::UnknownRecipient(_)) => Some("scope.recipients"),
            AnswerError::Event(EventError::Empty(field)) => Some(field),
            AnswerError::Event(_) => None,
        }
    }

    /// Whether the consent store failed (the record itself may be fine).
    pub fn is_store(&self) -> bool {
        matches!(self, AnswerError::Event(EventError::Store(_)))
    }
}

/// The field a `field: message` names: a dotted name of lower-case letters, digits and
/// `_` before the first `: `.
pub fn field_of(message: &str) -> Option<&str> {
    let (field, _) = message.split_once(": ")?;
    let name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.';
    (!field.is_empty() && field.chars().all(name)).then_some(field)
}

/// Parses an access request and validates it against `policy`.
///
/// # Errors
///
/// [`AnswerError::Malformed`] naming the field at fault, or [`AnswerError::Request`]
/// when it names what the policy does not know.
pub fn parse_request<'a>(policy: &Policy, record: &'a [u8]) -> Result<AccessRequest<'a>, AnswerError> {
    let request: AccessRequest<'a> =
        serde_json::from_slice(record).map_err(|e| AnswerError::Malformed(explain(record, RecordKind::Request, &e)))?;
    validate(policy, &request)?;
    Ok(request)
}

/// Validates a parsed request against `policy`: its subject is not empty (as an
/// event's may not be), and it names only what the policy knows.
///
/// # Errors
///
/// [`AnswerError::Malformed`] for an empty subject (`subject: must not be empty`),
/// [`AnswerError::Request`] for a name the policy does not know.
pub fn validate(policy: &Policy, request: &AccessRequest<'_>) -> Result<(), AnswerError> {
    if request.subject.is_empty() {
        return Err(AnswerError::Malformed("subject: must not be empty".to_owned()));
    }
    policy.validate_request(request)?;
    Ok(())
}

/// Parses a consent event.
///
/// # Errors
///
/// [`AnswerError::Malformed`] naming the field at fault.
pub fn parse_event(record: &[u8]) -> Result<ConsentEvent, AnswerError> {
    serde_json::from_slice(record).map_err(|e| AnswerError::Malformed(explain(record, RecordKind::Event, &e)))
}

/// Checks a consent event against `policy` beyond what recording checks: a grant's
/// scope names only declared recipients or recipient kinds (as a request's recipient
/// must).
///
/// # Errors
///
/// [`AnswerError::Event`] with [`EventError::UnknownRecipient`] (field
/// `scope.recipients`).
pub fn validate_event(policy: &Policy, event: &ConsentEvent) -> Result<(), AnswerError> {
    let ConsentEvent::Grant(grant) = event else {
        return Ok(());
    };
    let declared = &policy.document().recipients;
    let unknown = grant.scope.iter().flat_map(|scope| &scope.recipients).find(|name| {
        !declared.contains_key(name.as_str()) && !RecipientKind::ALL.iter().any(|kind| kind.as_str() == name.as_str())
    });
    match unknown {
        Some(name) => Err(AnswerError::Event(EventError::UnknownRecipient(name.clone()))),
        None => Ok(()),
    }
}

/// Warnings about a consent event `policy` would record but no rule of it uses: each
/// purpose that no rule governs (none names it, an ancestor or a descendant). The
/// event is valid and is stored (a later policy may govern the purpose); nothing
/// `check` decides depends on it now.
pub fn ungoverned(policy: &Policy, event: &ConsentEvent) -> Vec<String> {
    let purposes = match event {
        ConsentEvent::Grant(e) => &e.purposes,
        ConsentEvent::Withdraw(e) => &e.purposes,
        ConsentEvent::End(e) => &e.purposes,
        _ => return Vec::new(),
    };
    purposes
        .iter()
        .filter(|purpose| {
            policy.rule_for(purpose).is_none()
                && !policy.rules().iter().any(|rule| rule.purposes.iter().any(|governed| purpose.covers(governed)))
        })
        .map(|purpose| {
            format!("purposes: no rule of the policy governs `{purpose}`: the event is recorded, but no check depends on it")
        })
        .collect()
}

/// Decides a valid request: at the guard's clock, or as a what-if at the request's own
/// `at` (marked `"what_if": true`, audited as such). Audited either way.
#[inline]
pub fn decide<'a>(guard: &'a Guard, request: &'a AccessRequest<'_>) -> Decision<'a> {
    match request.at {
        Some(at) => guard.what_if(request, at),
        None => guard.check(request),
    }
}

/// Parses, validates and decides one record, handing the decision to `with` (it
/// borrows the record and the guard).
///
/// # Errors
///
/// As [`parse_request`]; then nothing was decided or audited.
pub fn answer<R>(guard: &Guard, record: &[u8], with: impl FnOnce(Decision<'_>) -> R) -> Result<R, AnswerError> {
    let request = parse_request(guard.policy(), record)?;
    Ok(with(decide(guard, &request)))
}

/// Parses a consent event and records it in `guard`.
///
/// # Errors
///
/// [`AnswerError::Malformed`], or [`AnswerError::Event`] when the guard refuses it.
pub fn record(guard: &Guard, record: &[u8]) -> Result<(), AnswerError> {
    let event = parse_event(record)?;
    validate_event(guard.policy(), &event)?;
    guard.record(&event)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(field_of("at: \"x\" is not an RFC 3339 time"), Some("at"));
        assert_eq!(field_of("scope.categories: unknown data category `x`"), Some("scope.categories"));
        assert_eq!(field_of("malformed JSON: EOF (column 3)"), None);
        assert_eq!(field_of("unknown field `basis` (expected one of: a, b)"), None);
        assert_eq!(AnswerError::Request(RequestError::NoCategory).field(), Some("categories"));
    }
}
