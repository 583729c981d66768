//! The in-memory sink. It is handed a record on every audited check, so it keeps
//! records compactly rather than as owned copies: the strings of all records go into
//! one text arena, their categories into one category arena, and each record keeps
//! plain values and ranges into the arenas. Storing a record then costs a lock and a
//! few copies into buffers that grow amortised, never a per-record allocation; owned
//! records are rebuilt only when someone reads them.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use super::{AuditRecord, AuditSink, OwnedAuditRecord};
use crate::basis::{ConsentLevel, LegalBasis};
use crate::category::DataCategory;
use crate::decision::{Decision, Detail, Facts, OwnedFacts, ReasonCode};
use crate::error::AuditError;
use crate::policy::Retention;
use crate::purpose::Purpose;
use crate::request::{AccessRequest, Action, Deidentification, Recipient, RecipientKind, Region, Signals};

/// Keeps every record in memory, compactly; [`MemoryAuditSink::records`] gives them
/// back as owned records.
#[derive(Default)]
pub struct MemoryAuditSink {
    inner: Mutex<Arenas>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> MemoryAuditSink {
        MemoryAuditSink::default()
    }

    /// A copy of the records kept so far, rebuilt as owned records.
    pub fn records(&self) -> Vec<OwnedAuditRecord> {
        self.inner.lock().map(|arenas| arenas.rebuild_all()).unwrap_or_default()
    }

    /// How many records were kept.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|arenas| arenas.records.len()).unwrap_or(0)
    }

    /// Whether nothing was kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every record kept so far but keeps the memory that held them, so that
    /// as many records again are stored without allocating (a long-running test or
    /// service can drain the sink after reading it).
    ///
    /// A sink poisoned by a panic is usable again afterwards: once emptied, nothing a
    /// torn write could have left behind remains.
    pub fn clear(&self) {
        let mut arenas = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        arenas.clear();
        drop(arenas);
        self.inner.clear_poison();
    }

    fn lock(&self) -> Result<MutexGuard<'_, Arenas>, AuditError> {
        self.inner.lock().map_err(|_| AuditError::new("memory sink poisoned by a panic"))
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        self.lock()?.keep(record)
    }
}

impl fmt::Debug for MemoryAuditSink {
    /// Prints a count, never the records: they hold personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryAuditSink").field("records", &self.len()).finish()
    }
}

/// A range of one of the arenas. `u32` halves the size of a record's ranges; an
/// arena that would outgrow it makes `record` fail rather than wrap.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(self.start).ok()?;
        Some(start..start.checked_add(usize::try_from(self.len).ok()?)?)
    }
}

/// An optional `Span` in the size of a span (`Option<Span>` takes half as much again,
/// five times in every record). `None` is a span that would end past `u32::MAX`, which
/// the arenas never hand out.
#[derive(Clone, Copy)]
struct OptSpan(Span);

impl OptSpan {
    const NONE: OptSpan = OptSpan(Span { start: u32::MAX, len: u32::MAX });

    fn get(self) -> Option<Span> {
        self.0.start.checked_add(self.0.len).map(|_| self.0)
    }
}

/// [`Detail`] with its text in the arena: the detail is what the decision's message is
/// built from when read, so it is kept whole rather than as a message.
#[derive(Clone, Copy)]
enum CompactDetail {
    None,
    Item(Span),
    At(i64),
    Level { given: ConsentLevel, needed: ConsentLevel, at: i64 },
    Deemed { needed: ConsentLevel },
    Retention { limit: Retention, collected: Option<i64> },
    Session,
    Scope(&'static str),
    Transfer(Span),
}

/// One record: the request's fields, then the decision's.
struct CompactRecord {
    subject: Span,
    purpose: Purpose,
    categories: Span,
    action: Action,
    recipient_kind: RecipientKind,
    recipient_name: OptSpan,
    deidentification: Deidentification,
    requested_basis: Option<LegalBasis>,
    region: Option<Region>,
    signals: Signals,
    collected_at: Option<DateTime<Utc>>,
    collected_session: OptSpan,
    session: OptSpan,
    requested_at: Option<DateTime<Utc>>,
    code: ReasonCode,
    basis: Option<LegalBasis>,
    clause: OptSpan,
    policy: Span,
    policy_version: Span,
    decision_subject: Span,
    decision_purpose: Purpose,
    /// Milliseconds since the epoch, as the decision keeps it.
    decided_at: i64,
    what_if: bool,
    detail: CompactDetail,
    message: OptSpan,
}

#[derive(Default)]
struct Arenas {
    /// Bytes rather than a `String`: comparing with earlier text then skips the checks
    /// for character boundaries; every span still covers whole strings.
    text: Vec<u8>,
    categories: Vec<DataCategory>,
    records: Vec<CompactRecord>,
}

impl Arenas {
    /// Stores a record whole or not at all: when an arena is full, the arenas are cut
    /// back to where they were rather than keep half a record.
    fn keep(&mut self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        let (text_len, categories_len) = (self.text.len(), self.categories.len());
        match self.compact(record.request, record.decision) {
            Some(compact) => {
                self.records.push(compact);
                Ok(())
            }
            None => {
                self.text.truncate(text_len);
                self.categories.truncate(categories_len);
                Err(AuditError::new("memory sink full: its arenas are limited to 4 GiB each"))
            }
        }
    }

    /// `None` when an arena is full, the one way storing can fail: the helpers below
    /// return `Option` rather than `AuditError` so that their results stay in registers.
    #[inline]
    fn compact(&mut self, request: &AccessRequest<'_>, decision: &Decision<'_>) -> Option<CompactRecord> {
        // The policy, its version and the clause mostly repeat from one record to the
        // next: comparing with the previous record's text avoids storing them again.
        let previous = self.records.last().map(|r| (r.policy, r.policy_version, r.clause));
        let (previous_policy, previous_version, previous_clause) =
            (previous.map(|p| p.0), previous.map(|p| p.1), previous.and_then(|p| p.2.get()));
        let subject = self.text(&request.subject)?;
        // The guard's decisions borrow the request's subject: the very same bytes need
        // no comparing.
        let decision_subject = if std::ptr::eq::<str>(decision.subject(), request.subject.as_ref()) {
            subject
        } else {
            self.text_or_reuse(decision.subject(), Some(subject))?
        };
        let categories = self.categories(&request.categories)?;
        let recipient_name = self.optional_text(request.recipient.name.as_deref())?;
        let collected_session = self.optional_text(request.collected_session.as_deref())?;
        let session = self.optional_text(request.session.as_deref())?;
        let clause = match decision.clause() {
            Some(clause) => OptSpan(self.text_or_reuse(clause, previous_clause)?),
            None => OptSpan::NONE,
        };
        let policy = self.text_or_reuse(decision.policy(), previous_policy)?;
        let policy_version = self.text_or_reuse(decision.policy_version(), previous_version)?;
        let detail = match &decision.detail {
            Detail::None => CompactDetail::None,
            Detail::Item(item) => CompactDetail::Item(self.text(item)?),
            Detail::At(at) => CompactDetail::At(*at),
            Detail::Level { given, needed, at } => CompactDetail::Level { given: *given, needed: *needed, at: *at },
            Detail::Deemed { needed } => CompactDetail::Deemed { needed: *needed },
            Detail::Retention { limit, collected } => CompactDetail::Retention { limit: *limit, collected: *collected },
            Detail::Session => CompactDetail::Session,
            Detail::Scope(what) => CompactDetail::Scope(what),
            Detail::Transfer(region) => CompactDetail::Transfer(self.text(region)?),
        };
        let message = self.optional_text(decision.stored_message())?;
        Some(CompactRecord {
            subject,
            purpose: request.purpose.clone(),
            categories,
            action: request.action,
            recipient_kind: request.recipient.kind,
            recipient_name,
            deidentification: request.deidentification,
            requested_basis: request.basis,
            region: request.region,
            signals: request.signals,
            collected_at: request.collected_at,
            collected_session,
            session,
            requested_at: request.at,
            code: decision.code,
            basis: decision.basis,
            clause,
            policy,
            policy_version,
            decision_subject,
            decision_purpose: decision.purpose().clone(),
            decided_at: decision.at,
            what_if: decision.what_if,
            detail,
            message,
        })
    }

    #[inline]
    fn text(&mut self, text: &str) -> Option<Span> {
        let start = u32::try_from(self.text.len()).ok()?;
        let len = u32::try_from(text.len()).ok()?;
        start.checked_add(len)?;
        self.text.extend_from_slice(text.as_bytes());
        Some(Span { start, len })
    }

    #[inline]
    fn text_or_reuse(&mut self, text: &str, earlier: Option<Span>) -> Option<Span> {
        match earlier {
            Some(span) if self.bytes(span) == Some(text.as_bytes()) => Some(span),
            _ => self.text(text),
        }
    }

    /// `None` when the arena is full.
    #[inline]
    fn optional_text(&mut self, text: Option<&str>) -> Option<OptSpan> {
        match text {
            Some(text) => self.text(text).map(OptSpan),
            None => Some(OptSpan::NONE),
        }
    }

    #[inline]
    fn categories(&mut self, categories: &[DataCategory]) -> Option<Span> {
        let start = u32::try_from(self.categories.len()).ok()?;
        let len = u32::try_from(categories.len()).ok()?;
        start.checked_add(len)?;
        self.categories.extend_from_slice(categories);
        Some(Span { start, len })
    }

    fn bytes(&self, span: Span) -> Option<&[u8]> {
        self.text.get(span.range()?)
    }

    fn str(&self, span: Span) -> Option<&str> {
        std::str::from_utf8(self.bytes(span)?).ok()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.categories.clear();
        self.records.clear();
    }

    /// Every record rebuilt. Only ranges this sink wrote are read, so a range that does
    /// not resolve cannot happen; such a record would be left out rather than made up.
    fn rebuild_all(&self) -> Vec<OwnedAuditRecord> {
        self.records.iter().filter_map(|record| self.rebuild(record)).collect()
    }

    fn rebuild(&self, r: &CompactRecord) -> Option<OwnedAuditRecord> {
        let text = |span: Span| self.str(span).map(|s| Cow::Owned(s.to_owned()));
        // `None` when the range does not resolve, `Some(None)` when there was no text.
        let optional_text = |span: OptSpan| match span.get() {
            Some(span) => text(span).map(Some),
            None => Some(None),
        };
        let categories = self.categories.get(r.categories.range()?)?.to_vec();
        let request = AccessRequest {
            subject: text(r.subject)?,
            purpose: r.purpose.clone(),
            categories: Cow::Owned(categories),
            action: r.action,
            recipient: Recipient { kind: r.recipient_kind, name: optional_text(r.recipient_name)? },
            deidentification: r.deidentification,
            basis: r.requested_basis,
            region: r.region,
            signals: r.signals,
            collected_at: r.collected_at,
            collected_session: optional_text(r.collected_session)?,
            session: optional_text(r.session)?,
            at: r.requested_at,
        };
        let detail = match r.detail {
            CompactDetail::None => Detail::None,
            CompactDetail::Item(item) => Detail::Item(text(item)?),
            CompactDetail::At(at) => Detail::At(at),
            CompactDetail::Level { given, needed, at } => Detail::Level { given, needed, at },
            CompactDetail::Deemed { needed } => Detail::Deemed { needed },
            CompactDetail::Retention { limit, collected } => Detail::Retention { limit, collected },
            CompactDetail::Session => Detail::Session,
            CompactDetail::Scope(what) => Detail::Scope(what),
            CompactDetail::Transfer(region) => Detail::Transfer(text(region)?),
        };
        let decision = Decision {
            code: r.code,
            basis: r.basis,
            at: r.decided_at,
            what_if: r.what_if,
            facts: Facts::Owned(Box::new(OwnedFacts {
                clause: optional_text(r.clause)?.map(Cow::into_owned),
                policy: text(r.policy)?.into_owned(),
                policy_version: text(r.policy_version)?.into_owned(),
                subject: text(r.decision_subject)?.into_owned(),
                purpose: r.decision_purpose.clone(),
                message: optional_text(r.message)?.map(Cow::into_owned),
            })),
            detail,
        };
        Some(OwnedAuditRecord { request, decision })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 12, 30, 15).unwrap()
    }

    fn ms(day: u32) -> i64 {
        at(day).timestamp_millis()
    }

    const BEHAVIOR: &[DataCategory] = &[DataCategory::BEHAVIOR_LOG];

    fn decision<'a>(request: &'a AccessRequest<'a>, code: ReasonCode, detail: Detail<'a>) -> Decision<'a> {
        Decision {
            code,
            basis: code.is_allow().then_some(LegalBasis::Consent),
            at: ms(20),
            what_if: false,
            facts: Facts::Owned(Box::new(OwnedFacts {
                clause: Some("exmo.ai_training".to_owned()),
                policy: "exmo".to_owned(),
                policy_version: "1.0".to_owned(),
                subject: request.subject.to_string(),
                purpose: request.purpose.clone(),
                message: None,
            })),
            detail,
        }
    }

    fn facts<'d>(decision: &'d mut Decision<'_>) -> &'d mut OwnedFacts {
        match &mut decision.facts {
            Facts::Owned(facts) => facts,
            Facts::Checked { .. } | Facts::Prepared { .. } => panic!("the tests' decisions own their facts"),
        }
    }

    /// A request borrowing everything, as a service builds it on the hot path.
    fn borrowed() -> AccessRequest<'static> {
        AccessRequest::new("u1", Purpose::AI_TRAINING_MODEL_TRAINING, BEHAVIOR)
    }

    /// A request owning everything, with every optional field set, extension names
    /// and text that is not ASCII.
    fn owned() -> AccessRequest<'static> {
        let purpose: Purpose = "service.core.video_generation".parse().unwrap();
        let address: DataCategory = "contact.address".parse().unwrap();
        AccessRequest::new(String::from("用户-2"), purpose, vec![address, DataCategory::CONTACT_EMAIL])
            .action(Action::Share)
            .recipient(Recipient::named(RecipientKind::Processor, String::from("wechat_login")))
            .deidentification(Deidentification::Pseudonymized)
            .region(Region::new("us").unwrap())
            .signals(Signals { dnt: true, gpc: true })
            .collected(at(1), Some(Cow::Owned(String::from("session-a"))))
            .session(String::from("session-b"))
            .at(at(2))
    }

    fn details() -> Vec<(ReasonCode, Detail<'static>)> {
        vec![
            (ReasonCode::ConsentGiven, Detail::At(ms(3))),
            (ReasonCode::ConsentGiven, Detail::None),
            (ReasonCode::CategoryNotPermitted, Detail::Item(Cow::Borrowed("health.record"))),
            (ReasonCode::RecipientNotPermitted, Detail::Item(Cow::Owned(String::from("ad_network")))),
            (ReasonCode::OptOutSignal, Detail::Item(Cow::Borrowed(""))),
            (
                ReasonCode::ConsentLevelInsufficient,
                Detail::Level { given: ConsentLevel::Implied, needed: ConsentLevel::Explicit, at: ms(4) },
            ),
            (ReasonCode::SeparateConsentRequired, Detail::Deemed { needed: ConsentLevel::Separate }),
            (ReasonCode::RetentionExpired, Detail::Retention { limit: Retention::Days(30), collected: Some(ms(5)) }),
            (ReasonCode::RetentionExpired, Detail::Retention { limit: Retention::Hours(2), collected: None }),
            (ReasonCode::RetentionExpired, Detail::Session),
            (ReasonCode::ConsentMissing, Detail::Scope("region")),
            (ReasonCode::SeparateConsentRequired, Detail::Transfer(Cow::Owned(String::from("US")))),
            (ReasonCode::SeparateConsentRequired, Detail::Transfer(Cow::Borrowed("SG"))),
        ]
    }

    fn assert_same(kept: &[OwnedAuditRecord], expected: &[OwnedAuditRecord]) {
        assert_eq!(kept.len(), expected.len());
        for (kept, expected) in kept.iter().zip(expected) {
            assert_eq!(kept, expected);
            // `==` on decisions compares messages; the detail must be the same too,
            // since the message is built from it.
            assert_eq!(kept.decision.detail, expected.decision.detail);
            assert_eq!(kept.decision.stored_message(), expected.decision.stored_message());
            assert_eq!(kept.decision.message(), expected.decision.message());
        }
    }

    #[test]
    fn every_detail_round_trips_for_borrowed_and_owned_requests() {
        let sink = MemoryAuditSink::new();
        let requests = [borrowed(), owned()];
        let mut expected = Vec::new();
        for request in &requests {
            for (code, detail) in details() {
                let decision = decision(request, code, detail);
                let record = AuditRecord { request, decision: &decision };
                sink.record(&record).unwrap();
                expected.push(record.to_owned_record());
            }
        }
        assert_eq!(sink.len(), expected.len());
        assert_same(&sink.records(), &expected);
    }

    #[test]
    fn changing_text_is_kept_as_given() {
        let sink = MemoryAuditSink::new();
        let request = borrowed();
        let mut decisions = Vec::new();
        for (policy, version, clause) in [
            ("exmo", "1.0", Some("exmo.ai_training")),
            ("exmo", "1.0", Some("exmo.ai_training")),
            ("exmo", "1.1", None),
            ("exmo", "1.1", Some("exmo.ai_training")),
            ("aimate", "1.1", Some("exmo")),
            ("exmo", "1.0", Some("exmo")),
            ("", "", Some("")),
        ] {
            let mut decision = decision(&request, ReasonCode::NoRule, Detail::None);
            let facts = facts(&mut decision);
            facts.policy = policy.to_owned();
            facts.policy_version = version.to_owned();
            facts.clause = clause.map(str::to_owned);
            decisions.push(decision);
        }
        // A decision read back from JSON carries its message, and may name another
        // subject and purpose than the request.
        let mut read_back = decision(&request, ReasonCode::ConsentWithdrawn, Detail::None);
        let read_back_facts = facts(&mut read_back);
        read_back_facts.message = Some("u1 withdrew consent to ai_training.model_training".to_owned());
        read_back_facts.subject = "someone else".to_owned();
        read_back_facts.purpose = Purpose::ADVERTISING;
        decisions.push(read_back);
        let expected: Vec<_> = decisions
            .iter()
            .map(|decision| {
                let record = AuditRecord { request: &request, decision };
                sink.record(&record).unwrap();
                record.to_owned_record()
            })
            .collect();
        assert_same(&sink.records(), &expected);
    }

    #[test]
    fn repeated_policy_text_is_stored_once() {
        let sink = MemoryAuditSink::new();
        let request = borrowed();
        let decision = decision(&request, ReasonCode::ConsentGiven, Detail::At(ms(3)));
        let record = AuditRecord { request: &request, decision: &decision };
        sink.record(&record).unwrap();
        let first = sink.inner.lock().unwrap().text.len();
        sink.record(&record).unwrap();
        let second = sink.inner.lock().unwrap().text.len() - first;
        // Only the subject again: the decision's subject is the request's, and the
        // policy, version and clause are the previous record's.
        assert_eq!(second, "u1".len());
        assert_eq!(first, "u1exmo.ai_trainingexmo1.0".len());
        assert_same(&sink.records(), &[record.to_owned_record(), record.to_owned_record()]);
    }

    #[test]
    fn clear_forgets_records_and_keeps_the_memory() {
        let sink = MemoryAuditSink::new();
        assert!(sink.is_empty());
        let requests = [borrowed(), owned()];
        let decisions: Vec<_> = requests
            .iter()
            .flat_map(|request| details().into_iter().map(move |(code, detail)| decision(request, code, detail)))
            .collect();
        let records: Vec<_> = decisions
            .iter()
            .zip(requests.iter().flat_map(|r| std::iter::repeat_n(r, details().len())))
            .map(|(decision, request)| AuditRecord { request, decision })
            .collect();
        for record in &records {
            sink.record(record).unwrap();
        }
        sink.clear();
        assert!(sink.is_empty());
        assert!(sink.records().is_empty());
        let info = allocation_counter::measure(|| {
            for record in &records {
                sink.record(record).unwrap();
            }
        });
        assert_eq!(info.count_total, 0, "storing records allocated: {info:?}");
        let expected: Vec<_> = records.iter().map(AuditRecord::to_owned_record).collect();
        assert_same(&sink.records(), &expected);
    }

    #[test]
    fn a_poisoned_sink_refuses_records_until_cleared() {
        let sink = Arc::new(MemoryAuditSink::new());
        let request = borrowed();
        let decision = decision(&request, ReasonCode::ConsentGiven, Detail::None);
        let record = AuditRecord { request: &request, decision: &decision };
        sink.record(&record).unwrap();
        let poisoner = sink.clone();
        let _ = std::thread::spawn(move || {
            let _held = poisoner.inner.lock();
            panic!("poisoning the sink on purpose");
        })
        .join();
        assert!(sink.record(&record).is_err());
        assert_eq!(format!("{sink:?}"), "MemoryAuditSink { records: 0 }");
        sink.clear();
        sink.record(&record).unwrap();
        assert_eq!(sink.len(), 1);
    }

    #[test]
    fn debug_prints_a_count_only() {
        let sink = MemoryAuditSink::new();
        let request = owned();
        let decision = decision(&request, ReasonCode::ConsentGiven, Detail::None);
        sink.record(&AuditRecord { request: &request, decision: &decision }).unwrap();
        assert_eq!(format!("{sink:?}"), "MemoryAuditSink { records: 1 }");
    }

    #[cfg(feature = "toml")]
    mod with_a_guard {
        use super::*;
        use crate::clock::FixedClock;
        use crate::consent::ConsentEvent;
        use crate::guard::Guard;
        use crate::policy::Policy;

        pub(super) fn exmo() -> Policy {
            Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap()
        }

        pub(super) fn event(json: &str) -> ConsentEvent {
            serde_json::from_str(json).unwrap()
        }

        pub(super) fn guard(sink: Arc<MemoryAuditSink>) -> Guard {
            let guard = Guard::builder(exmo()).audit(sink).clock(FixedClock::new(at(25))).build().unwrap();
            for json in [
                r#"{"type":"grant","subject":"in","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z"}"#,
                r#"{"type":"grant","subject":"out","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z"}"#,
                r#"{"type":"withdraw","subject":"out","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}"#,
                r#"{"type":"grant","subject":"low","purposes":["ai_training","service.task_management"],"level":"implied","at":"2026-01-01T00:00:00Z"}"#,
            ] {
                guard.record(&event(json)).unwrap();
            }
            guard
        }

        pub(super) fn requests() -> Vec<AccessRequest<'static>> {
            let training = |subject: &'static str| {
                AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, BEHAVIOR)
                    .deidentification(Deidentification::Anonymized)
            };
            let tasks: Purpose = "service.task_management".parse().unwrap();
            vec![
                training("in"),
                training("out"),
                training("nobody"),
                training("low"),
                training("in").deidentification(Deidentification::None),
                training("in").action(Action::Disclose),
                training("in").region(Region::new("US").unwrap()),
                AccessRequest::new("in", Purpose::MARKETING_CAMPAIGNS, BEHAVIOR),
                AccessRequest::new(
                    String::from("in"),
                    Purpose::AI_TRAINING_MODEL_TRAINING,
                    vec![DataCategory::HEALTH_RECORD],
                ),
                AccessRequest::new("low", tasks.clone(), vec![DataCategory::BEHAVIOR_LOG]),
                AccessRequest::new("in", tasks, BEHAVIOR)
                    .recipient(Recipient::named(RecipientKind::Processor, "wechat_login"))
                    .session("s1")
                    .collected(at(1), Some(Cow::Borrowed("s0"))),
            ]
        }

        #[test]
        fn guard_decisions_round_trip() {
            let sink = Arc::new(MemoryAuditSink::new());
            let guard = guard(sink.clone());
            let requests = requests();
            let mut expected = Vec::new();
            let mut codes = Vec::new();
            for request in &requests {
                let decision = guard.check(request);
                codes.push(decision.code());
                expected.push(AuditRecord { request, decision: &decision }.to_owned_record());
            }
            codes.sort_by_key(|c| c.as_str());
            codes.dedup();
            assert!(codes.len() >= 6, "too few distinct codes: {codes:?}");
            assert_same(&sink.records(), &expected);
        }

        #[test]
        fn an_audited_check_allocates_nothing_once_the_sink_has_room() {
            let sink = Arc::new(MemoryAuditSink::new());
            let guard = guard(sink.clone());
            let requests = requests();
            for request in &requests {
                let _ = guard.check(request);
            }
            sink.clear();
            for request in &requests {
                let info = allocation_counter::measure(|| {
                    let _ = guard.check(request);
                });
                assert_eq!(info.count_total, 0, "{info:?}");
            }
            assert_eq!(sink.len(), requests.len());
        }
    }
}
