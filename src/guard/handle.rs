//! Subject handles: a subject id resolved once, so that the checks that follow hash no
//! string (see [`Guard::subject_handle`]).

use std::fmt;

use super::Guard;
use crate::consent::state::{Lookup, Resolved};

/// A subject id resolved by one guard for many checks ([`Guard::subject_handle`]): it
/// keeps the id's keyed hash and where the subject's record was, so a check by handle
/// ([`PreparedAccess::check_handle`](super::PreparedAccess::check_handle),
/// [`Guard::check_handle`]) neither hashes the id nor, usually, reads the index.
///
/// A handle is never trusted for more than a hint: every check compares the record's
/// id with the handle's before it reads the record, and looks the subject up again
/// when they differ. So a handle stays correct whatever happens after it was made:
/// events recorded for a subject it found unknown, a reload, or use with another
/// guard (which hashes the id, as a check by id does). It borrows the id, which is
/// what decisions and audit records name.
///
/// ```
/// use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, Guard, Policy, Purpose};
///
/// let guard = Guard::new(Policy::from_toml_file("examples/policies/exmo.toml")?);
/// let grant = r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;
/// guard.record(&serde_json::from_str::<ConsentEvent>(grant)?)?;
/// // A batch job resolves its subjects once...
/// let ids = ["u1", "u2"];
/// let handles: Vec<_> = ids.iter().map(|id| guard.subject_handle(id)).collect();
/// let template = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
///     .deidentification(Deidentification::Anonymized);
/// let training = guard.prepare(&template);
/// // ...and each check then hashes nothing.
/// let allowed: Vec<bool> = handles.iter().map(|h| training.check_handle(h).allowed()).collect();
/// assert_eq!(allowed, [true, false]);
/// assert_eq!(training.check_handle(&handles[0]).subject(), "u1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct SubjectHandle<'s> {
    resolved: Resolved<'s>,
}

impl<'s> SubjectHandle<'s> {
    /// The subject id.
    pub fn subject(&self) -> &'s str {
        self.resolved.subject()
    }

    /// Whether the guard knew the subject when the handle was made. A handle of an
    /// unknown subject still answers for events recorded since, at the cost of an
    /// index lookup per check (still without hashing).
    pub fn was_known(&self) -> bool {
        self.resolved.was_known()
    }

    pub(super) fn lookup(&self) -> Lookup<'_> {
        Lookup::Resolved(&self.resolved)
    }
}

impl fmt::Debug for SubjectHandle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The id is personal data.
        f.debug_struct("SubjectHandle").field("subject", &"<redacted>").field("was_known", &self.was_known()).finish()
    }
}

impl Guard {
    /// Resolves a subject id once, for many checks by handle: each check then hashes
    /// no string, and usually reads the subject's record without the index. Ids stay
    /// strings; a caller with numeric ids formats each once, here, instead of on every
    /// check.
    pub fn subject_handle<'s>(&self, subject: &'s str) -> SubjectHandle<'s> {
        SubjectHandle { resolved: self.state.resolve(subject) }
    }
}
