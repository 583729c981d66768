//! Observability of decisions and consent events: counters and a latency histogram
//! through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`), and a
//! `tracing` event per decision and per consent event (feature `tracing`), the subject
//! pseudonymised with HMAC-SHA256 under a configured key unless configured otherwise.
//!
//! Nothing here runs inside [`crate::Guard::check`]: a service observes the decisions it
//! got ([`Observer::decision`], with the latency it measured, as `consent-guard serve`
//! does), or wraps its audit sink in an [`ObservedSink`], which observes every record
//! the guard hands it. An application installs the metrics recorder (an exporter) and
//! the tracing subscriber of its choice; without them every call costs a check of a
//! flag.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `consent_guard_decisions_total` | counter | `code`, `clause` (empty when none) |
//! | `consent_guard_check_duration_seconds` | histogram | |
//! | `consent_guard_events_recorded_total` | counter | `type` |
//! | `consent_guard_store_lag_seconds` | gauge | (set by the server) |
//! | `consent_guard_audit_queue_depth` | gauge | (set by the server) |
//!
//! Tracing events have the target `consent_guard::decision` (fields `code`, `allowed`,
//! `clause`, `purpose`, `what_if`, `latency_us`, `subject`) and
//! `consent_guard::consent` (fields `type`, `subject`), at level `INFO`.

#[cfg(feature = "metrics")]
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::audit::{AuditRecord, AuditSink};
use crate::consent::ConsentEvent;
use crate::decision::Decision;
#[cfg(feature = "metrics")]
use crate::decision::ReasonCode;
use crate::error::AuditError;
use crate::request::AccessRequest;

/// Decisions, by `code` and `clause`.
pub const DECISIONS: &str = "consent_guard_decisions_total";
/// The time a check took, in seconds, as measured by the caller.
pub const CHECK_SECONDS: &str = "consent_guard_check_duration_seconds";
/// Consent events recorded, by `type`.
pub const EVENTS: &str = "consent_guard_events_recorded_total";
/// Seconds since the consent store last confirmed the state current.
pub const STORE_LAG: &str = "consent_guard_store_lag_seconds";
/// Audit records handed to the log and not yet committed.
pub const AUDIT_QUEUE: &str = "consent_guard_audit_queue_depth";

/// Describes the five metrics to the installed recorder, each with its unit and help
/// text, so that an exporter writes them (Prometheus: a `# HELP` line each). Call it
/// once after installing the recorder; `consent-guard serve` does.
#[cfg(feature = "metrics")]
pub fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(DECISIONS, Unit::Count, "Decisions of the guard, by reason code and deciding clause.");
    metrics::describe_histogram!(
        CHECK_SECONDS,
        Unit::Seconds,
        "Time a check took, in seconds, as measured by the caller."
    );
    metrics::describe_counter!(EVENTS, Unit::Count, "Consent events recorded, by type.");
    metrics::describe_gauge!(
        STORE_LAG,
        Unit::Seconds,
        "Time since the consent store last confirmed the guard's state current, in seconds."
    );
    metrics::describe_gauge!(
        AUDIT_QUEUE,
        Unit::Count,
        "Audit records handed to the log and not yet committed (records)."
    );
}

/// How subject ids appear in tracing events.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum SubjectField {
    /// Not at all (the default: no key was configured).
    #[default]
    Omitted,
    /// As the hex HMAC-SHA256 of the id under this key: the same subject gets the same
    /// pseudonym in every event, and no one without the key can tell whose it is.
    Keyed(std::sync::Arc<[u8]>),
    /// The raw id: only where the traces are as protected as the store.
    Plain,
}

impl fmt::Debug for SubjectField {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubjectField::Omitted => "Omitted",
            SubjectField::Keyed(_) => "Keyed(<redacted>)",
            SubjectField::Plain => "Plain",
        })
    }
}

impl SubjectField {
    /// Keyed pseudonyms under `key` (at least 16 bytes are advisable).
    pub fn keyed(key: &[u8]) -> SubjectField {
        SubjectField::Keyed(key.into())
    }

    /// What a tracing event carries for `subject`; `None` when omitted.
    pub fn render(&self, subject: &str) -> Option<String> {
        match self {
            SubjectField::Omitted => None,
            SubjectField::Plain => Some(subject.to_owned()),
            SubjectField::Keyed(key) => Some(pseudonym(key, subject)),
        }
    }
}

/// The hex HMAC-SHA256 of `subject` under `key`.
#[cfg(feature = "tracing")]
fn pseudonym(key: &[u8], subject: &str) -> String {
    use hmac::{Mac, SimpleHmac};
    // HMAC takes a key of any length; `SimpleHmac` avoids the block-level API.
    let Ok(mut mac) = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(key) else { return String::new() };
    mac.update(subject.as_bytes());
    crate::audit::segment::hex(&mac.finalize().into_bytes())
}

#[cfg(not(feature = "tracing"))]
fn pseudonym(_: &[u8], _: &str) -> String {
    String::new()
}

/// Observes decisions and consent events: metrics and tracing, as the features allow.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    #[cfg_attr(not(feature = "tracing"), allow(dead_code, reason = "only tracing events carry the subject"))]
    subject: SubjectField,
}

impl Observer {
    /// An observer writing subjects in tracing events as `subject` says.
    pub fn new(subject: SubjectField) -> Observer {
        Observer { subject }
    }

    /// Observes one decision, with the time its check took when the caller measured it.
    pub fn decision(&self, decision: &Decision<'_>, latency: Option<Duration>) {
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(DECISIONS, "code" => decision.code().as_str(), "clause" => decision.clause().unwrap_or_default().to_owned())
                .increment(1);
            if let Some(latency) = latency {
                metrics::histogram!(CHECK_SECONDS).record(latency.as_secs_f64());
            }
        }
        #[cfg(feature = "tracing")]
        if tracing::enabled!(target: "consent_guard::decision", tracing::Level::INFO) {
            self.trace(decision, latency);
        }
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        let _ = (decision, latency);
    }

    /// Observes a batch of decisions that took `latency` together: counters once per
    /// (code, clause) rather than per decision, the histogram once per decision at
    /// the batch's mean, and a tracing event per decision only when enabled.
    pub fn batch(&self, decisions: &[Decision<'_>], latency: Duration) {
        #[cfg(feature = "tracing")]
        if tracing::enabled!(target: "consent_guard::decision", tracing::Level::INFO) {
            for decision in decisions {
                self.trace(decision, None);
            }
        }
        #[cfg(feature = "metrics")]
        {
            let mut tally = DecisionTally::default();
            for decision in decisions {
                tally.add(decision);
            }
            tally.flush();
            let count = u32::try_from(decisions.len()).unwrap_or(u32::MAX).max(1);
            let mean = (latency / count).as_secs_f64();
            let histogram = metrics::histogram!(CHECK_SECONDS);
            for _ in decisions {
                histogram.record(mean);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = latency;
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        let _ = decisions;
    }

    #[cfg(feature = "tracing")]
    fn trace(&self, decision: &Decision<'_>, latency: Option<Duration>) {
        let latency_us = latency.map(|l| u64::try_from(l.as_micros()).unwrap_or(u64::MAX));
        tracing::info!(
            target: "consent_guard::decision",
            code = decision.code().as_str(),
            allowed = decision.allowed(),
            clause = decision.clause(),
            purpose = decision.purpose().as_str(),
            what_if = decision.is_what_if(),
            latency_us,
            subject = self.subject.render(decision.subject()).as_deref(),
        );
    }

    /// Observes one recorded consent event.
    pub fn consent_event(&self, event: &ConsentEvent) {
        #[cfg(feature = "metrics")]
        metrics::counter!(EVENTS, "type" => event.kind()).increment(1);
        #[cfg(feature = "tracing")]
        if tracing::enabled!(target: "consent_guard::consent", tracing::Level::INFO) {
            tracing::info!(
                target: "consent_guard::consent",
                r#type = event.kind(),
                subject = self.subject.render(event.subject()).as_deref(),
            );
        }
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        let _ = event;
    }
}

#[cfg(feature = "metrics")]
/// Counts decisions by (code, clause) to emit the counters once.
#[derive(Debug, Default)]
struct DecisionTally {
    counts: HashMap<(ReasonCode, String), u64>,
}

#[cfg(feature = "metrics")]
impl DecisionTally {
    fn add(&mut self, decision: &Decision<'_>) {
        let key = (decision.code(), decision.clause().unwrap_or_default());
        // Look up by borrowed parts first: most decisions of a batch share a key.
        match self.counts.iter_mut().find(|((code, clause), _)| *code == key.0 && clause == key.1) {
            Some((_, count)) => *count += 1,
            None => {
                self.counts.insert((key.0, key.1.to_owned()), 1);
            }
        }
    }

    fn flush(self) {
        for ((code, clause), count) in self.counts {
            metrics::counter!(DECISIONS, "code" => code.as_str(), "clause" => clause).increment(count);
        }
    }
}

/// An audit sink that observes every record handed to it ([`Observer::decision`],
/// without a latency) and passes it on to `inner`. A record the inner sink refuses is
/// observed as the `audit_unavailable` denial the guard turns it into.
#[derive(Debug)]
pub struct ObservedSink<S> {
    inner: S,
    observer: Observer,
}

impl<S: AuditSink> ObservedSink<S> {
    /// Observes the records handed to `inner`.
    pub fn new(inner: S, observer: Observer) -> ObservedSink<S> {
        ObservedSink { inner, observer }
    }

    fn observed(&self, decision: &Decision<'_>, kept: Result<(), AuditError>) -> Result<(), AuditError> {
        match &kept {
            Ok(()) => self.observer.decision(decision, None),
            Err(_) => {
                let mut denied = decision.clone();
                denied.unaudited();
                self.observer.decision(&denied, None);
            }
        }
        kept
    }
}

impl<S: AuditSink> AuditSink for ObservedSink<S> {
    fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        self.observed(record.decision, self.inner.record(record))
    }

    fn record_deferred(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        self.observed(record.decision, self.inner.record_deferred(record))
    }

    fn record_prepared(&self, template: &AccessRequest<'_>, decision: &Decision<'_>) -> Result<(), AuditError> {
        self.observed(decision, self.inner.record_prepared(template, decision))
    }

    fn record_prepared_deferred(
        &self,
        template: &AccessRequest<'_>,
        decision: &Decision<'_>,
    ) -> Result<(), AuditError> {
        self.observed(decision, self.inner.record_prepared_deferred(template, decision))
    }

    fn commit(&self) -> Result<(), AuditError> {
        self.inner.commit()
    }

    fn defers_records(&self) -> bool {
        self.inner.defers_records()
    }

    fn discards_records(&self) -> bool {
        self.inner.discards_records()
    }

    fn record_filter(&self, record: &crate::filter::FilterRecord) -> Result<(), AuditError> {
        self.inner.record_filter(record)
    }
}

#[cfg(test)]
mod forwarding {
    use super::*;
    use crate::audit::NoAuditSink;

    /// Observing a sink changes nothing of what it keeps: a sink that discards records
    /// still says so (the guard then builds none), and filter applications reach it.
    #[test]
    fn an_observed_sink_forwards_what_it_keeps() {
        let observed = ObservedSink::new(NoAuditSink, Observer::default());
        assert!(observed.discards_records(), "the guard would build records only to drop them");
        assert!(!ObservedSink::new(crate::audit::MemoryAuditSink::new(), Observer::default()).discards_records());
    }
}

#[cfg(all(test, feature = "tracing"))]
mod tests {
    use super::*;

    /// A keyed pseudonym is stable, differs between subjects and keys, and is not the id.
    #[test]
    fn keyed_pseudonyms() {
        let keyed = SubjectField::keyed(b"a key of sixteen+ bytes");
        let (a, b) = (keyed.render("alice"), keyed.render("bob"));
        assert_eq!(a, keyed.render("alice"));
        assert_ne!(a, b);
        assert_ne!(a, SubjectField::keyed(b"another key, also long").render("alice"));
        let a = a.unwrap_or_default();
        assert_eq!(a.len(), 64);
        assert!(!a.contains("alice"));
        assert_eq!(SubjectField::Omitted.render("alice"), None);
        assert_eq!(SubjectField::Plain.render("alice").as_deref(), Some("alice"));
        assert_eq!(format!("{keyed:?}"), "Keyed(<redacted>)");
    }
}
