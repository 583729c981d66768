//! Audit: every decision produces an [`AuditRecord`] (time, request, decision) handed
//! to an [`AuditSink`]. Sinks compose through std types (`Arc`, `Box`, `Option`, `Vec`).
//!
//! Shipped sinks: [`NoAuditSink`] (keeps nothing), [`MemoryAuditSink`] (keeps every
//! record, compactly, in memory) and, with the `json` feature, [`JsonLinesAuditSink`]
//! (deprecated; plain subject ids, not erasure-safe), a file of JSON lines chained by
//! SHA-256 so that [`verify_log`] can tell an altered, removed, inserted or reordered
//! record from an intact log; and [`AuditLog`], the durable log for services: group
//! commit into a directory of hash-chained segments, `Synced` or `Buffered`
//! ([`Durability`]), compact records for prepared accesses, and no subject id in any
//! record: each holds the subject's pseudonym under its key ([`crate::keys`]), so that
//! destroying the key forgets the subject without breaking the chain. [`migrate`]
//! rewrites a log of the older format (plain ids) as one of pseudonyms.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decision::Decision;
use crate::error::AuditError;
use crate::request::AccessRequest;

#[cfg(feature = "json")]
mod chain;
#[cfg(feature = "json")]
mod log;
mod memory;
#[cfg(feature = "json")]
pub mod migrate;
#[cfg(feature = "json")]
pub mod segment;
#[cfg(feature = "json")]
#[expect(deprecated, reason = "re-exported for one release, for callers that still write the one-file format")]
pub use chain::JsonLinesAuditSink;
#[cfg(feature = "json")]
pub use chain::{verify_log, LogVerdict};
#[cfg(feature = "json")]
pub use log::{AuditLog, AuditLogOptions, AuditLogStats, Durability};
pub use memory::MemoryAuditSink;
#[cfg(feature = "json")]
pub use segment::{verify_dir, DirVerdict, Format, Head};

/// What the guard hands to the sink for each decision. The decision's `at` is the
/// time of the check.
#[derive(Clone, Copy, Debug, Serialize)]
#[non_exhaustive]
pub struct AuditRecord<'a> {
    /// The request as asked.
    pub request: &'a AccessRequest<'a>,
    /// The decision given.
    pub decision: &'a Decision<'a>,
}

impl<'a> AuditRecord<'a> {
    /// The record of `decision`, given for `request` (for sinks' own tests, and for
    /// tools that replay decisions into a sink).
    pub fn new(request: &'a AccessRequest<'a>, decision: &'a Decision<'a>) -> AuditRecord<'a> {
        AuditRecord { request, decision }
    }
}

impl AuditRecord<'_> {
    /// For a check of a prepared access ([`crate::Guard::prepare`]): a key, unique in
    /// this process, naming its template (the request without its subject). A sink can
    /// write the template once and then only the key, subject, code and time of each
    /// decision. `None` for a plain [`crate::Guard::check`].
    pub fn template_key(&self) -> Option<u64> {
        template_key_of(self.decision)
    }

    /// An owned copy.
    pub fn to_owned_record(&self) -> OwnedAuditRecord {
        OwnedAuditRecord { request: self.request.clone().into_owned(), decision: self.decision.clone().into_owned() }
    }
}

/// The template key of a prepared access's decision (see [`AuditRecord::template_key`]).
pub(crate) fn template_key_of(decision: &Decision<'_>) -> Option<u64> {
    match &decision.facts {
        // A what-if keeps its mark, which a compact record has no room for.
        crate::decision::Facts::Prepared { access, .. } if !decision.what_if => Some(access.key),
        _ => None,
    }
}

/// An audit record that owns its data, as [`MemoryAuditSink`] keeps it and as audit
/// logs are read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnedAuditRecord {
    /// The request as asked.
    #[serde(deserialize_with = "owned_request")]
    pub request: AccessRequest<'static>,
    /// The decision given.
    #[serde(deserialize_with = "owned_decision")]
    pub decision: Decision<'static>,
}

// Only the audit log and its export (feature `json`) rewrite a record's subject.
#[cfg_attr(not(feature = "json"), allow(dead_code))]
impl OwnedAuditRecord {
    /// Puts `subject` wherever the record names its subject: the request, the
    /// decision, and the text of a message read back with it (a message built later
    /// names the decision's subject). The audit writer puts the pseudonym there; a
    /// subject's export puts the id back.
    pub(crate) fn replace_subject(&mut self, subject: &str) {
        let old = std::mem::replace(&mut self.request.subject, std::borrow::Cow::Owned(subject.to_owned()));
        if !matches!(self.decision.facts, crate::decision::Facts::Owned(_)) {
            self.decision = self.decision.clone().into_owned();
        }
        if let crate::decision::Facts::Owned(facts) = &mut self.decision.facts {
            facts.subject = subject.to_owned();
            if let Some(message) = &mut facts.message {
                *message = replace_word(message, &old, subject);
            }
        }
    }

    /// [`OwnedAuditRecord::replace_subject`] with the subject's pseudonym, as the audit
    /// log writes records of format 3.
    pub(crate) fn pseudonymise(&mut self, pseudonym: &str) {
        self.replace_subject(pseudonym);
    }
}

/// `text` with every occurrence of `word` that stands as a word (no letter, digit, `_`,
/// `-` or `.` on either side) replaced by `with`: a message names its subject so
/// (`alice consented to …`, `… for alice`, `alice's consent …`), and an id such as `a`
/// must not take the `a` out of `ai_training`. An empty `word` is left alone.
#[cfg_attr(not(feature = "json"), allow(dead_code))]
fn replace_word(text: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return text.to_owned();
    }
    let joins = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(word) {
        let (head, tail) = rest.split_at(at);
        let prior = head.chars().next_back().or(before);
        let after = tail.get(word.len()..).unwrap_or_default();
        out.push_str(head);
        if !joins(prior) && !joins(after.chars().next()) {
            out.push_str(with);
        } else {
            out.push_str(word);
        }
        before = word.chars().next_back();
        rest = after;
    }
    out.push_str(rest);
    out
}

fn owned_request<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<AccessRequest<'static>, D::Error> {
    AccessRequest::deserialize(deserializer).map(AccessRequest::into_owned)
}

fn owned_decision<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Decision<'static>, D::Error> {
    Decision::deserialize(deserializer).map(Decision::into_owned)
}

/// Where audit records go.
///
/// # Obligations
///
/// `record` returns `Ok` only once the sink has kept the record as durably as it
/// promises; an `Err` makes the guard deny the access (`audit_unavailable`): an access
/// that cannot be audited does not happen. It is called on the check path, so it should
/// not block for long; it must not panic.
pub trait AuditSink: fmt::Debug + Send + Sync {
    /// Keeps one record.
    ///
    /// # Errors
    ///
    /// When the record could not be kept.
    fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError>;

    /// Whether the sink discards every record unread and never fails, as
    /// [`NoAuditSink`] does: the guard then skips building the records it would hand
    /// it. The answer must not change over the sink's life; the default, `false`, is
    /// always correct.
    fn discards_records(&self) -> bool {
        false
    }

    /// Keeps one record of a batch, and may return before the record is as durable as
    /// the sink promises: the caller releases nothing of the batch until
    /// [`AuditSink::commit`] returns `Ok`. Batches ([`crate::PreparedAccess::check_batch`],
    /// [`crate::sealed::select`]) use it so that all their records share one commit.
    /// The default is [`AuditSink::record`].
    ///
    /// # Errors
    ///
    /// When the record could not be kept.
    fn record_deferred(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        self.record(record)
    }

    /// Waits until every record this thread handed to the sink (by `record` or
    /// `record_deferred`) is as durable as the sink promises. The default, for sinks
    /// whose `record_deferred` already keeps the record, returns `Ok` at once.
    ///
    /// # Errors
    ///
    /// When a record could not be kept: the batch must be denied.
    fn commit(&self) -> Result<(), AuditError> {
        Ok(())
    }

    /// Whether [`AuditSink::record_deferred`] defers anything, so that batches are
    /// worth grouping before a [`AuditSink::commit`]. The default is `false`.
    fn defers_records(&self) -> bool {
        false
    }

    /// Keeps the record of a check of a prepared access ([`crate::PreparedAccess`]),
    /// handed as the access's template and the decision, which names the subject,
    /// instead of a request built for the record: a sink that writes a known template's
    /// records compactly ([`AuditLog`]) then builds no request on the checking thread.
    /// Obligations as [`AuditSink::record`]. The default builds the request (the
    /// template with the decision's subject) and calls `record`.
    ///
    /// # Errors
    ///
    /// When the record could not be kept.
    fn record_prepared(&self, template: &AccessRequest<'_>, decision: &Decision<'_>) -> Result<(), AuditError> {
        self.record(&AuditRecord { request: &template.for_subject(decision.subject()), decision })
    }

    /// [`AuditSink::record_prepared`] for a batch, as [`AuditSink::record_deferred`] is
    /// to `record`. The default builds the request and calls `record_deferred`.
    ///
    /// # Errors
    ///
    /// When the record could not be kept.
    fn record_prepared_deferred(
        &self,
        template: &AccessRequest<'_>,
        decision: &Decision<'_>,
    ) -> Result<(), AuditError> {
        self.record_deferred(&AuditRecord { request: &template.for_subject(decision.subject()), decision })
    }

    /// Keeps the one record of an application of a compiled filter
    /// ([`crate::filter`]): the filter, policy version, snapshot watermark and row
    /// counts by reason code, not one record per row. The default keeps nothing and
    /// fails, unless the sink discards every record: a sink that does not say it keeps
    /// these records makes the application fail closed.
    ///
    /// # Errors
    ///
    /// When the record could not be kept: the filtered rows must not be released.
    fn record_filter(&self, record: &crate::filter::FilterRecord) -> Result<(), AuditError> {
        let _ = record;
        if self.discards_records() {
            Ok(())
        } else {
            Err(AuditError::new("this audit sink keeps no records of filter applications"))
        }
    }
}

/// Keeps nothing: for benchmarks, and services that audit elsewhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAuditSink;

impl AuditSink for NoAuditSink {
    fn record(&self, _: &AuditRecord<'_>) -> Result<(), AuditError> {
        Ok(())
    }

    fn discards_records(&self) -> bool {
        true
    }
}

impl<S: AuditSink + ?Sized> AuditSink for Arc<S> {
    fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        (**self).record(record)
    }

    fn discards_records(&self) -> bool {
        (**self).discards_records()
    }

    fn record_deferred(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        (**self).record_deferred(record)
    }

    fn commit(&self) -> Result<(), AuditError> {
        (**self).commit()
    }

    fn defers_records(&self) -> bool {
        (**self).defers_records()
    }

    fn record_filter(&self, record: &crate::filter::FilterRecord) -> Result<(), AuditError> {
        (**self).record_filter(record)
    }

    fn record_prepared(&self, template: &AccessRequest<'_>, decision: &Decision<'_>) -> Result<(), AuditError> {
        (**self).record_prepared(template, decision)
    }

    fn record_prepared_deferred(
        &self,
        template: &AccessRequest<'_>,
        decision: &Decision<'_>,
    ) -> Result<(), AuditError> {
        (**self).record_prepared_deferred(template, decision)
    }
}

impl<S: AuditSink + ?Sized> AuditSink for Box<S> {
    fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        (**self).record(record)
    }

    fn discards_records(&self) -> bool {
        (**self).discards_records()
    }

    fn record_deferred(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        (**self).record_deferred(record)
    }

    fn commit(&self) -> Result<(), AuditError> {
        (**self).commit()
    }

    fn defers_records(&self) -> bool {
        (**self).defers_records()
    }

    fn record_filter(&self, record: &crate::filter::FilterRecord) -> Result<(), AuditError> {
        (**self).record_filter(record)
    }

    fn record_prepared(&self, template: &AccessRequest<'_>, decision: &Decision<'_>) -> Result<(), AuditError> {
        (**self).record_prepared(template, decision)
    }

    fn record_prepared_deferred(
        &self,
        template: &AccessRequest<'_>,
        decision: &Decision<'_>,
    ) -> Result<(), AuditError> {
        (**self).record_prepared_deferred(template, decision)
    }
}

impl<S: AuditSink> AuditSink for Option<S> {
    fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        self.as_ref().map_or(Ok(()), |sink| sink.record(record))
    }

    fn discards_records(&self) -> bool {
        self.as_ref().is_none_or(S::discards_records)
    }

    fn record_deferred(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        self.as_ref().map_or(Ok(()), |sink| sink.record_deferred(record))
    }

    fn commit(&self) -> Result<(), AuditError> {
        self.as_ref().map_or(Ok(()), S::commit)
    }

    fn defers_records(&self) -> bool {
        self.as_ref().is_some_and(S::defers_records)
    }

    fn record_filter(&self, record: &crate::filter::FilterRecord) -> Result<(), AuditError> {
        self.as_ref().map_or(Ok(()), |sink| sink.record_filter(record))
    }

    fn record_prepared(&self, template: &AccessRequest<'_>, decision: &Decision<'_>) -> Result<(), AuditError> {
        self.as_ref().map_or(Ok(()), |sink| sink.record_prepared(template, decision))
    }

    fn record_prepared_deferred(
        &self,
        template: &AccessRequest<'_>,
        decision: &Decision<'_>,
    ) -> Result<(), AuditError> {
        self.as_ref().map_or(Ok(()), |sink| sink.record_prepared_deferred(template, decision))
    }
}

/// Fans a record out to every sink; fails if any fails.
impl<S: AuditSink> AuditSink for Vec<S> {
    fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        self.iter().try_for_each(|sink| sink.record(record))
    }

    fn discards_records(&self) -> bool {
        self.iter().all(S::discards_records)
    }

    fn record_deferred(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        self.iter().try_for_each(|sink| sink.record_deferred(record))
    }

    fn commit(&self) -> Result<(), AuditError> {
        self.iter().try_for_each(S::commit)
    }

    fn defers_records(&self) -> bool {
        self.iter().any(S::defers_records)
    }

    fn record_filter(&self, record: &crate::filter::FilterRecord) -> Result<(), AuditError> {
        self.iter().try_for_each(|sink| sink.record_filter(record))
    }

    fn record_prepared(&self, template: &AccessRequest<'_>, decision: &Decision<'_>) -> Result<(), AuditError> {
        self.iter().try_for_each(|sink| sink.record_prepared(template, decision))
    }

    fn record_prepared_deferred(
        &self,
        template: &AccessRequest<'_>,
        decision: &Decision<'_>,
    ) -> Result<(), AuditError> {
        self.iter().try_for_each(|sink| sink.record_prepared_deferred(template, decision))
    }
}

#[cfg(test)]
mod tests {
    use super::replace_word;

    #[test]
    fn a_subject_is_replaced_only_where_it_stands_as_a_word() {
        assert_eq!(replace_word("a consented to ai_training (a.b)", "a", "X"), "X consented to ai_training (a.b)");
        assert_eq!(replace_word("a's consent to x ended for a", "a", "X"), "X's consent to x ended for X");
        assert_eq!(replace_word("u1 withdrew; u10 did not", "u1", "X"), "X withdrew; u10 did not");
        assert_eq!(replace_word("aa", "a", "X"), "aa");
        assert_eq!(replace_word("nothing", "", "X"), "nothing");
    }
}
