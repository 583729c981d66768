//! The compiled filter of issue 25 from the library's side: what compiles and what does
//! not, unknown subjects under consent and opt-out rules, staleness and replay,
//! refresh from the store's events, the audit record and the excluded subjects.
//! (The Arrow and SQL legs, and the differential test, are in
//! `crates/consent-guard-filter/tests/`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use consent_guard::audit::{AuditRecord, AuditSink};
use consent_guard::error::AuditError;
use consent_guard::filter::{
    Apply, Counts, ExcludedSubjects, FilterError, FilterRecord, FilterSpec, RowFacts, RowTest,
};
use consent_guard::store::MemoryConsentStore;
use consent_guard::{
    AccessRequest, Action, ConsentEvent, DataCategory, FixedClock, Guard, Policy, Purpose, ReasonCode,
};

const POLICY: &str = r#"
[policy]
name = "filters"
version = "1.0"
home_region = "CN"
storage_regions = ["CN"]

[[rule]]
id = "training"
purposes = ["ai_training"]
basis = "consent"
level = "explicit"
default = "opt_in"
categories = ["behavior"]
retention = "30d"
separate_consent_lifts_retention = true

[[rule]]
id = "notifications"
purposes = ["service.notifications"]
basis = "consent"
level = "implied"
default = "opt_out"
categories = ["behavior"]
"#;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap()
}

fn training() -> AccessRequest<'static> {
    AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
}

fn notifications() -> AccessRequest<'static> {
    AccessRequest::new("", Purpose::new("service.notifications").unwrap(), &[DataCategory::BEHAVIOR_LOG][..])
}

fn rows() -> RowFacts {
    RowFacts::new("user_id").collected_at("ts")
}

fn guard_at(now: &str) -> (Guard, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(at(now)));
    let policy = Policy::from_toml_str(POLICY, "filters.toml").unwrap();
    let guard = Guard::builder(policy).clock(Arc::clone(&clock)).store(MemoryConsentStore::new()).build().unwrap();
    (guard, clock)
}

#[test]
fn what_cannot_be_compiled_is_named() {
    let (guard, _) = guard_at("2026-03-01T00:00:00Z");
    let error = guard.filter(FilterSpec::new(training(), RowFacts::new("user_id"))).unwrap_err();
    assert!(matches!(error, FilterError::MissingFact { fact: "collected_at", .. }), "{error}");
    let error = guard.filter(FilterSpec::new(training().at(at("2026-01-01T00:00:00Z")), rows())).unwrap_err();
    assert!(matches!(error, FilterError::TemplateTime), "{error}");
    // Deletions turn on each row against the subject's ends (issue 27): not filtered.
    let error = guard.filter(FilterSpec::new(training().action(Action::Delete), rows())).unwrap_err();
    assert!(matches!(error, FilterError::Deletion), "{error}");
    let error =
        guard.filter(FilterSpec::new(training().collected(at("2026-01-01T00:00:00Z"), None), rows())).unwrap_err();
    assert!(matches!(error, FilterError::FactTwice { field: "collected_at", .. }), "{error}");
    let error = guard.filter(FilterSpec::new(training(), RowFacts::new("").collected_at("ts"))).unwrap_err();
    assert!(matches!(error, FilterError::Column { fact: "subject", .. }), "{error}");
    assert!(error.to_string().contains("subject column"), "{error}");
    // A rule without retention reads no row fact.
    let filter = guard.filter(FilterSpec::new(notifications(), RowFacts::new("user_id"))).unwrap();
    assert_eq!(filter.row_test(), &RowTest::None);
    let filter = guard.filter(FilterSpec::new(training(), rows())).unwrap();
    assert_eq!(filter.row_test(), &RowTest::CollectedWithin { column: "ts".into(), limit_ms: 30 * 86_400_000 });
}

#[test]
fn unknown_subjects_get_what_the_guard_gives_them() {
    let (guard, _) = guard_at("2026-03-01T00:00:00Z");
    guard.record(&event(r#"{"type":"grant","subject":"known","purposes":["ai_training"],"level":"explicit","at":"2026-02-01T00:00:00Z"}"#)).unwrap();
    let consent = guard.filter(FilterSpec::new(training(), rows())).unwrap();
    let snapshot = guard.snapshot(&consent).unwrap();
    assert_eq!(snapshot.unknown().fresh(), ReasonCode::ConsentMissing, "a consent rule denies the unknown");
    let opt_out = guard.filter(FilterSpec::new(notifications(), RowFacts::new("user_id"))).unwrap();
    let snapshot = guard.snapshot(&opt_out).unwrap();
    assert_eq!(snapshot.unknown().fresh(), ReasonCode::ConsentGiven, "an opt-out rule allows the unknown");
    let application = opt_out.apply(&snapshot, at("2026-03-01T00:00:00Z"), Apply::Live).unwrap();
    assert_eq!(application.code(Some("never-seen"), None, None), ReasonCode::ConsentGiven);
    assert_eq!(application.code(None, None, None), ReasonCode::ConsentMissing, "a row without a subject");
}

#[test]
fn retention_is_a_column_test_and_separate_consent_lifts_it() {
    let (guard, _) = guard_at("2026-03-01T00:00:00Z");
    guard.record(&event(r#"{"type":"grant","subject":"a","purposes":["ai_training"],"level":"explicit","at":"2026-01-01T00:00:00Z"}"#)).unwrap();
    guard.record(&event(r#"{"type":"grant","subject":"b","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z"}"#)).unwrap();
    let filter = guard.filter(FilterSpec::new(training(), rows())).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    let now = at("2026-03-01T00:00:00Z");
    let application = filter.apply(&snapshot, now, Apply::Live).unwrap();
    let edge = now.timestamp_millis() - 30 * 86_400_000;
    assert_eq!(application.code(Some("a"), Some(edge), None), ReasonCode::ConsentGiven, "at the limit");
    assert_eq!(application.code(Some("a"), Some(edge - 1), None), ReasonCode::RetentionExpired, "past it");
    assert_eq!(application.code(Some("a"), None, None), ReasonCode::RetentionExpired, "no collection time");
    assert_eq!(application.code(Some("b"), Some(edge - 1), None), ReasonCode::ConsentGiven, "lifted");
    assert_eq!(application.collected_window(), Some((edge, now.timestamp_millis())));
}

#[test]
fn a_stale_snapshot_fails_closed_unless_replayed() {
    let (guard, clock) = guard_at("2026-03-01T00:00:00Z");
    let spec = FilterSpec::new(training(), rows()).max_staleness(Duration::from_secs(60));
    let filter = guard.filter(spec).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    let later = at("2026-03-01T00:01:01Z");
    let error = filter.apply(&snapshot, later, Apply::Live).unwrap_err();
    assert!(matches!(error, FilterError::Stale { age_ms: 61_000, max_ms: 60_000 }), "{error}");
    assert!(filter.apply(&snapshot, later, Apply::Replay).is_ok(), "a deliberate replay");
    let error = filter.apply(&snapshot, at("2026-02-01T00:00:00Z"), Apply::Replay).unwrap_err();
    assert!(matches!(error, FilterError::BeforeSnapshot { .. }), "{error}");
    // Another filter's snapshot is refused.
    let other = guard.filter(FilterSpec::new(notifications(), RowFacts::new("user_id"))).unwrap();
    assert!(matches!(other.apply(&snapshot, later, Apply::Replay), Err(FilterError::SnapshotMismatch)));
    clock.set(later);
}

#[test]
fn a_refresh_reads_the_events_since_the_watermark_and_the_clock() {
    let (guard, clock) = guard_at("2026-03-01T00:00:00Z");
    for subject in ["a", "b"] {
        guard.record(&event(&format!(r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"explicit","at":"2026-02-01T00:00:00Z"}}"#))).unwrap();
    }
    // c's consent expires between the snapshot and T.
    guard.record(&event(r#"{"type":"grant","subject":"c","purposes":["ai_training"],"level":"explicit","at":"2026-02-02T00:00:00Z","expires_at":"2026-03-01T00:00:30Z"}"#)).unwrap();
    let filter = guard.filter(FilterSpec::new(training(), rows())).unwrap();
    let mut snapshot = guard.snapshot(&filter).unwrap();
    assert_eq!(snapshot.len(), 3);
    assert_eq!(snapshot.watermark().position, 3);
    // a withdraws after the snapshot.
    guard
        .record(&event(r#"{"type":"withdraw","subject":"a","purposes":["ai_training"],"at":"2026-03-01T00:00:10Z"}"#))
        .unwrap();
    let t = at("2026-03-01T00:01:00Z");
    clock.set(t);
    let fresh = t.timestamp_millis() - 1000;
    {
        let stale = filter.apply(&snapshot, t, Apply::Replay).unwrap();
        assert_eq!(stale.code(Some("c"), Some(fresh), None), ReasonCode::ConsentStateUnavailable, "past its until");
    }
    let refreshed = snapshot.refresh(&guard, &filter).unwrap();
    assert_eq!((refreshed.events, refreshed.subjects, refreshed.rebuilt), (1, 2, false));
    assert_eq!(snapshot.watermark().position, 4);
    let application = filter.apply(&snapshot, t, Apply::Live).unwrap();
    assert_eq!(application.code(Some("a"), Some(fresh), None), ReasonCode::ConsentWithdrawn);
    assert_eq!(application.code(Some("b"), Some(fresh), None), ReasonCode::ConsentGiven);
    assert_eq!(application.code(Some("c"), Some(fresh), None), ReasonCode::ConsentExpired);
}

/// A sink that keeps filter records.
#[derive(Debug, Default)]
struct FilterSink(Mutex<Vec<FilterRecord>>);

impl AuditSink for FilterSink {
    fn record(&self, _: &AuditRecord<'_>) -> Result<(), AuditError> {
        Ok(())
    }

    fn record_filter(&self, record: &FilterRecord) -> Result<(), AuditError> {
        self.0.lock().unwrap().push(record.clone());
        Ok(())
    }
}

#[derive(Debug)]
struct OldSink;

impl AuditSink for OldSink {
    fn record(&self, _: &AuditRecord<'_>) -> Result<(), AuditError> {
        Ok(())
    }
}

#[test]
fn one_audit_record_per_application_and_the_excluded_beside_it() {
    let sink = Arc::new(FilterSink::default());
    let clock = Arc::new(FixedClock::new(at("2026-03-01T00:00:00Z")));
    let policy = Policy::from_toml_str(POLICY, "filters.toml").unwrap();
    let guard = Guard::builder(policy).clock(Arc::clone(&clock)).audit(Arc::clone(&sink)).build().unwrap();
    guard.record(&event(r#"{"type":"grant","subject":"a","purposes":["ai_training"],"level":"explicit","at":"2026-02-01T00:00:00Z"}"#)).unwrap();
    let filter = guard.filter(FilterSpec::new(training(), rows())).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    let application = filter.apply(&snapshot, at("2026-03-01T00:00:00Z"), Apply::Live).unwrap();
    let fresh = Some(at("2026-02-20T00:00:00Z").timestamp_millis());
    let (mut counts, mut excluded) = (Counts::default(), ExcludedSubjects::default());
    for subject in ["a", "a", "secret-id-b", "secret-id-b"] {
        let code = application.code(Some(subject), fresh, None);
        counts.add(code);
        if !code.is_allow() {
            excluded.note(subject, code);
        }
    }
    let record = application.finish(&guard, &counts, Some(&excluded)).unwrap();
    assert_eq!((record.rows_in, record.rows_allowed, record.excluded_subjects), (4, 2, Some(1)));
    assert_eq!(record.counts, vec![("consent_given".to_owned(), 2), ("consent_missing".to_owned(), 2)]);
    assert_eq!(sink.0.lock().unwrap().len(), 1, "one record, not one per row");
    let mut proof = Vec::new();
    excluded.write_tsv(&record, &mut proof).unwrap();
    let proof = String::from_utf8(proof).unwrap();
    assert!(proof.contains(&record.record_id) && proof.contains("secret-id-b\tconsent_missing"), "{proof}");
    // Debug never prints a subject id.
    let shown = format!("{snapshot:?} {excluded:?} {filter:?} {record:?}");
    assert!(!shown.contains("secret-id-b") && !shown.contains("\"a\""), "{shown}");

    // A sink that does not say it keeps filter records fails the application.
    let old = Guard::builder(Policy::from_toml_str(POLICY, "filters.toml").unwrap()).audit(OldSink).build().unwrap();
    let filter = old.filter(FilterSpec::new(training(), rows())).unwrap();
    let snapshot = old.snapshot(&filter).unwrap();
    let application = filter.apply(&snapshot, snapshot.watermark().at, Apply::Live).unwrap();
    assert!(matches!(application.finish(&old, &counts, None), Err(FilterError::Audit(_))));

    // Beside it, a JSON-lines file of filter records.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filters.jsonl");
    let sink = consent_guard::filter::WithFilterLog::open(OldSink, &path).unwrap();
    let logged = Guard::builder(Policy::from_toml_str(POLICY, "filters.toml").unwrap()).audit(sink).build().unwrap();
    let filter = logged.filter(FilterSpec::new(training(), rows())).unwrap();
    let snapshot = logged.snapshot(&filter).unwrap();
    let application = filter.apply(&snapshot, snapshot.watermark().at, Apply::Live).unwrap();
    application.finish(&logged, &counts, None).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("\"rows_in\":4"), "{text}");
}

/// The policy of the end-of-purpose tests, shared with the filter crate's PostgreSQL
/// test and the Python Spark test.
const ENDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/filter/ends.toml");

/// The filter's code for each row against `Guard::check` of the same row at T (with
/// the facts the filter's rows carry).
fn agree(
    guard: &Guard,
    template: &AccessRequest<'_>,
    application: &consent_guard::filter::Application<'_>,
    rows: &[(&str, Option<&str>, Option<&str>)],
) {
    let facts = application.filter().rows();
    for (subject, collected, session) in rows {
        let collected = collected.filter(|_| facts.collected_at.is_some()).map(at);
        let session = session.filter(|_| facts.collected_session.is_some());
        let mut request = template.for_subject(subject);
        request.collected_at = collected;
        request.collected_session = session.map(Into::into);
        let expected = guard.check(&request).code();
        let got = application.code(Some(subject), collected.map(|t| t.timestamp_millis()), session);
        assert_eq!(got, expected, "{subject}, collected {collected:?}, session {session:?}");
    }
}

/// Issue 29's ends against the snapshot: rows collected up to the latest end whose
/// `retention_after_end` has run are `retention_expired`, rows collected after it are
/// answered as before, whatever the row test (a retention window, a session, none);
/// an end whose grace runs out after the snapshot bounds the entry.
#[test]
fn rows_collected_after_an_end_are_answered_as_the_guard_answers_them() {
    let (clock, now) = (Arc::new(FixedClock::new(at("2026-03-01T00:00:00Z"))), "2026-03-01T00:00:00Z");
    let policy = Policy::from_toml_file(ENDS).unwrap();
    let guard = Guard::builder(policy).clock(Arc::clone(&clock)).store(MemoryConsentStore::new()).build().unwrap();
    for line in [
        // a: two ends over by now (the later one on 02-15), a grant after both.
        r#"{"type":"grant","subject":"a","purposes":["ai_training","service.notifications"],"level":"separate","at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"end","subject":"a","purposes":["ai_training","service.notifications","service.upload_processing"],"at":"2026-02-01T00:00:00Z"}"#,
        r#"{"type":"end","subject":"a","purposes":["ai_training","service.notifications","service.upload_processing"],"at":"2026-02-15T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"a","purposes":["ai_training","service.notifications"],"level":"explicit","at":"2026-02-16T00:00:00Z"}"#,
        // b: an end whose grace (7 days) runs out after the snapshot.
        r#"{"type":"grant","subject":"b","purposes":["ai_training"],"level":"explicit","at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"end","subject":"b","purposes":["ai_training"],"at":"2026-02-27T00:00:00Z"}"#,
    ] {
        guard.record(&event(line)).unwrap();
    }
    let rows = [
        ("a", Some("2026-02-10T00:00:00Z"), None),
        ("a", Some("2026-02-15T00:00:00Z"), None),
        ("a", Some("2026-02-15T00:00:00.001Z"), None),
        ("a", Some("2026-02-20T00:00:00Z"), Some("s1")),
        ("a", Some("2026-01-20T00:00:00Z"), Some("s1")),
        ("a", None, Some("s1")),
        ("a", Some("2026-03-01T00:00:00.002Z"), Some("s1")),
        ("b", Some("2026-02-20T00:00:00Z"), None),
        ("b", Some("2026-02-28T00:00:00Z"), None),
        ("c", Some("2026-02-20T00:00:00Z"), None),
    ];
    let uploads =
        AccessRequest::new("", Purpose::new("service.upload_processing").unwrap(), &[DataCategory::BEHAVIOR_LOG][..])
            .session("s1");
    let cases = [
        (training(), rows_facts("ts", None)),
        (notifications(), rows_facts("ts", None)),
        (notifications(), RowFacts::new("user_id")),
        (uploads, rows_facts("ts", Some("session"))),
    ];
    for (template, facts) in cases {
        clock.set(at(now));
        let filter = guard.filter(FilterSpec::new(template.clone(), facts)).unwrap();
        let mut snapshot = guard.snapshot(&filter).unwrap();
        let application = filter.apply(&snapshot, at(now), Apply::Live).unwrap();
        agree(&guard, &template, &application, &rows);
        // b's end runs out on 03-06: its entry changes by the clock then.
        let later = at("2026-03-07T00:00:00Z");
        clock.set(later);
        snapshot.refresh(&guard, &filter).unwrap();
        let application = filter.apply(&snapshot, later, Apply::Live).unwrap();
        agree(&guard, &template, &application, &rows);
    }
}

fn rows_facts(collected: &str, session: Option<&str>) -> RowFacts {
    let facts = RowFacts::new("user_id").collected_at(collected);
    match session {
        Some(column) => facts.collected_session(column),
        None => facts,
    }
}
