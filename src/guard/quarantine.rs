//! Quarantined events: events a store holds that the guard's policy cannot apply (a
//! purpose or category it does not know, a grant under a later policy version). A
//! rolling policy upgrade produces them: a replica on the new policy records what a
//! replica on the old one cannot read.
//!
//! A replica skips such an event rather than stopping: only the subjects the
//! quarantined events name fail closed (`consent_state_unavailable`), every other
//! subject is decided as before. A guard built with a policy that knows the events
//! applies them when it replays the store.

use std::fmt;

/// An event a guard skipped because its policy cannot apply it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuarantinedEvent {
    /// The event's position in the store.
    pub position: u64,
    /// The subject it concerns: its consent state now fails closed.
    pub subject: String,
    /// Why the policy cannot apply it.
    pub reason: String,
}

impl fmt::Debug for QuarantinedEvent {
    /// The position and reason, never the subject: it is personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuarantinedEvent")
            .field("position", &self.position)
            .field("subject", &"<redacted>")
            .field("reason", &self.reason)
            .finish()
    }
}

impl fmt::Display for QuarantinedEvent {
    /// A warning line without the subject.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event at position {} quarantined: {}", self.position, self.reason)
    }
}
