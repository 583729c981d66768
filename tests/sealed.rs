//! Behaviour tests for sealed personal data (`consent_guard::sealed`) under the EXMO
//! policy (`examples/policies/exmo.toml`): redaction, openings granted and denied,
//! retention read from the record's own tags, auditing, derived data, bulk selection.
#![allow(clippy::unwrap_used, clippy::panic, reason = "the helpers outside #[test] fns fail the test loudly too")]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use consent_guard::sealed::{self, Access, Personal, SealedAccess, Tags, Tally};
use consent_guard::{
    Action, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, MemoryAuditSink, Policy, Purpose,
    ReasonCode, Recipient, RecipientKind,
};

const NOW: &str = "2026-06-01T00:00:00Z";
const SECRET: &str = "u1 searched for a divorce lawyer";

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn policy() -> Policy {
    Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap()
}

/// A guard at `NOW`, auditing into the returned sink, with these consent events.
fn guard(events: &str) -> (Guard, Arc<MemoryAuditSink>, Arc<FixedClock>) {
    let audit = Arc::new(MemoryAuditSink::new());
    let clock = Arc::new(FixedClock::new(now()));
    let guard = Guard::builder(policy()).clock(clock.clone()).audit(audit.clone()).build().unwrap();
    for line in events.lines().map(str::trim).filter(|l| !l.is_empty()) {
        record(&guard, line);
    }
    (guard, audit, clock)
}

fn record(guard: &Guard, json: &str) {
    let event: ConsentEvent = serde_json::from_str(json).unwrap_or_else(|e| panic!("bad event {json}: {e}"));
    guard.record(&event).unwrap();
}

const OPTED_IN: &str = r#"
    {"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
    {"type":"grant","subject":"u2","purposes":["ai_training"],"level":"implied","at":"2026-01-02T00:00:00Z"}
"#;

fn log(subject: &str, value: &str) -> Personal<String> {
    Personal::new(Tags::new(subject, DataCategory::BEHAVIOR_LOG, now() - Duration::days(3)), value.to_owned())
}

fn anonymous_log(subject: &str, value: &str) -> Personal<String> {
    log(subject, value).deidentify(Deidentification::Anonymized, |v| v)
}

fn training() -> Access<'static> {
    Access::new(Purpose::AI_TRAINING_MODEL_TRAINING)
}

#[test]
fn debug_display_and_serialize_print_a_redaction() {
    let record = log("u1", SECRET);
    let debug = format!("{record:?}");
    let pretty = format!("{record:#?}");
    let display = record.to_string();
    let json = serde_json::to_string(&record).unwrap();
    for printed in [&debug, &pretty, &display, &json] {
        assert!(!printed.contains("divorce"), "value leaked: {printed}");
        assert!(printed.contains("behavior.log") && printed.contains("u1"), "{printed}");
    }
    assert_eq!(display, "<redacted behavior.log of u1>");
    assert_eq!(json, r#"{"redacted":true,"category":"behavior.log","subject":"u1"}"#);
    // Also inside containers and derived records, whatever the value's type.
    let nested = serde_json::to_value(vec![record.clone().map(|v| v.len())]).unwrap();
    assert_eq!(nested, serde_json::json!([{"redacted": true, "category": "behavior.log", "subject": "u1"}]));
}

#[test]
fn a_grant_reads_the_value_and_serialises_it_a_denial_does_not() {
    let (guard, _, _) = guard(OPTED_IN);
    let raw = log("u1", SECRET);
    let anonymous = anonymous_log("u1", "searched: lawyer");

    let granted = guard.open(&anonymous, &training()).unwrap();
    assert_eq!(granted.as_str(), "searched: lawyer");
    assert_eq!(granted.decision().code(), ReasonCode::ConsentGiven);
    assert_eq!(granted.decision().clause(), Some("exmo.training"));
    assert_eq!(serde_json::to_string(&granted).unwrap(), r#""searched: lawyer""#);
    assert!(!format!("{granted:?}").contains("lawyer"), "Debug of a grant is a log line: still redacted");

    // The identifiable log is refused for training, whatever the caller would claim:
    // de-identification comes from the record's tags.
    let denied = guard.open(&raw, &training()).unwrap_err();
    assert_eq!(denied.code(), ReasonCode::DeidentificationRequired);
    assert!(!denied.allowed());

    // u2 gave only implied consent (anonymized training needs explicit), u3 none; and nobody may use logs for marketing.
    assert_eq!(
        guard.open(&anonymous_log("u2", "x"), &training()).unwrap_err().code(),
        ReasonCode::ConsentLevelInsufficient
    );
    assert_eq!(guard.open(&anonymous_log("u3", "x"), &training()).unwrap_err().code(), ReasonCode::ConsentMissing);
    assert_eq!(
        guard.open(&anonymous, &Access::new(Purpose::MARKETING_CAMPAIGNS)).unwrap_err().code(),
        ReasonCode::NoRule
    );
    // Training data stays in house.
    let to_partner = training().recipient(Recipient::kind(RecipientKind::ThirdParty));
    assert_eq!(guard.open(&anonymous, &to_partner).unwrap_err().code(), ReasonCode::RecipientNotPermitted);
}

#[test]
fn the_decision_sees_the_records_own_category() {
    let (guard, _, _) = guard(OPTED_IN);
    // A chat message is not behaviour data: training on it is not permitted, even
    // anonymised and with consent.
    let chat = Personal::new(
        Tags::new("u1", DataCategory::CONTENT_CHAT, now()).deidentification(Deidentification::Anonymized),
        SECRET.to_owned(),
    );
    assert_eq!(guard.open(&chat, &training()).unwrap_err().code(), ReasonCode::CategoryNotPermitted);
}

/// "Uploaded files ... are used only for the current generation or analysis session":
/// `exmo.uploads` has `retention = "session"`, and the record knows its session.
#[test]
fn session_retention_uses_the_records_own_session() {
    let (guard, _, _) = guard("");
    let upload = |session: Option<&str>| {
        let tags = Tags::new("u1", DataCategory::CONTENT_UPLOAD, now() - Duration::minutes(5));
        Personal::new(
            match session {
                Some(s) => tags.session(s),
                None => tags,
            },
            b"%PDF-1.7".to_vec(),
        )
    };
    let processing = |session: &'static str| Access::new(Purpose::SERVICE_UPLOAD_PROCESSING).session(session);

    let in_s1 = upload(Some("s1"));
    let granted = guard.open(&in_s1, &processing("s1")).unwrap();
    assert_eq!(granted.decision().code(), ReasonCode::LegalBasis);
    assert_eq!(&granted[..4], b"%PDF");

    // A later session may not read it back.
    assert_eq!(guard.open(&in_s1, &processing("s2")).unwrap_err().code(), ReasonCode::RetentionExpired);
    // Nor may anyone outside a session.
    let no_session = Access::new(Purpose::SERVICE_UPLOAD_PROCESSING);
    assert_eq!(guard.open(&in_s1, &no_session).unwrap_err().code(), ReasonCode::RetentionExpired);
    // A record that does not know its session cannot be read by claiming one: the
    // access has no way to state the collecting session, the record does.
    let unknown = upload(None);
    assert_eq!(guard.open(&unknown, &processing("s1")).unwrap_err().code(), ReasonCode::RetentionExpired);
    // Deleting expired data is what retention asks for.
    let delete = processing("s2").action(Action::Delete);
    assert!(guard.open(&in_s1, &delete).is_ok());
}

#[test]
fn openings_are_audited_with_the_records_tags_and_without_the_value() {
    let (guard, audit, _) = guard(OPTED_IN);
    let collected = now() - Duration::days(3);
    let upload =
        Personal::new(Tags::new("u1", DataCategory::CONTENT_UPLOAD, collected).session("s1"), SECRET.to_owned());
    let before = audit.len();
    let _ = guard.open(&upload, &Access::new(Purpose::SERVICE_UPLOAD_PROCESSING).session("s1")).unwrap();
    let _ = guard.open(&upload, &Access::new(Purpose::SERVICE_UPLOAD_PROCESSING).session("s9")).unwrap_err();
    let _ = guard.share(&upload, &Access::new(Purpose::MARKETING)).unwrap_err();
    let records = audit.records();
    assert_eq!(records.len() - before, 3);

    let first = &records[before];
    assert_eq!(first.request.subject, "u1");
    assert_eq!(first.request.categories.as_ref(), [DataCategory::CONTENT_UPLOAD]);
    assert_eq!(first.request.collected_at, Some(collected));
    assert_eq!(first.request.collected_session.as_deref(), Some("s1"));
    assert_eq!(first.request.session.as_deref(), Some("s1"));
    assert_eq!(first.request.deidentification, Deidentification::None);
    assert!(first.decision.allowed());
    assert_eq!(records[before + 1].decision.code(), ReasonCode::RetentionExpired);
    assert_eq!(records[before + 2].decision.code(), ReasonCode::NoRule);

    let log = serde_json::to_string(&records).unwrap();
    assert!(!log.contains("divorce"), "the audit log holds the request, never the value");
}

#[test]
fn derived_data_keeps_its_tags() {
    let collected = now() - Duration::hours(1);
    let subject: Arc<str> = Arc::from("u1");
    let chat = Personal::new(Tags::new(subject.clone(), DataCategory::CONTENT_CHAT, collected).session("s1"), SECRET);

    let length = chat.by_ref().map(|text| text.len());
    assert_eq!(length.tags(), chat.tags());
    assert!(Arc::ptr_eq(&length.tags().subject, &subject), "records of one subject share its id");

    let topics = chat.clone().map_into(DataCategory::BEHAVIOR_SEMANTIC_TAGS, |text| text.contains("lawyer"));
    assert_eq!(topics.category(), &DataCategory::BEHAVIOR_SEMANTIC_TAGS);
    assert_eq!(topics.subject(), "u1");
    assert_eq!(topics.tags().collected_at, collected);
    assert_eq!(topics.tags().session.as_deref(), Some("s1"));
    assert_eq!(topics.tags().deidentification, Deidentification::None);

    let anonymous = chat.deidentify(Deidentification::Anonymized, |text| text.split_whitespace().count());
    assert_eq!(anonymous.tags().deidentification, Deidentification::Anonymized);
    assert_eq!(anonymous.category(), &DataCategory::CONTENT_CHAT);

    // The derived record is still sealed, and decided on its own (derived) tags.
    let (guard, _, _) = guard(OPTED_IN);
    let behaviour = Personal::new(Tags::new("u1", DataCategory::CONTENT_CHAT, collected), SECRET)
        .map_into(DataCategory::BEHAVIOR_SEMANTIC_TAGS, |text| text.len())
        .deidentify(Deidentification::Anonymized, |n| n / 10);
    assert_eq!(*guard.open(&behaviour, &training()).unwrap(), SECRET.len() / 10);
    assert_eq!(
        serde_json::to_string(&behaviour).unwrap(),
        r#"{"redacted":true,"category":"behavior.semantic_tags","subject":"u1"}"#
    );
}

#[test]
fn sharing_hands_over_an_owned_value_or_gives_the_record_back() {
    let (guard, audit, _) = guard("");
    let email = Personal::new(Tags::new("u1", DataCategory::CONTACT_EMAIL, now()), String::from("u1@example.com"));
    let authority = Access::new(Purpose::COMPLIANCE_AUTHORITY_REQUEST)
        .action(Action::Share)
        .recipient(Recipient::kind(RecipientKind::Authority));

    let copy = guard.share(&email, &authority).unwrap();
    assert_eq!(copy.decision().code(), ReasonCode::LegalBasis);
    assert!(!format!("{copy:?}").contains("example.com"));
    assert_eq!(copy.into_value(), "u1@example.com");

    // To an advertiser: refused, and the record comes back sealed.
    let advertiser =
        Access::new(Purpose::ADVERTISING).action(Action::Share).recipient(Recipient::kind(RecipientKind::ThirdParty));
    let denied = email.into_shared(&guard, &advertiser).unwrap_err();
    assert_eq!(denied.decision.code(), ReasonCode::ActionNotPermitted);
    let email = denied.personal;
    let shared = sealed::into_shared(&guard, email, &authority).unwrap();
    assert_eq!(shared.tags().category, DataCategory::CONTACT_EMAIL);
    assert_eq!(*shared, "u1@example.com");
    assert_eq!(audit.len(), 3);
}

#[test]
fn select_keeps_only_allowed_values_and_counts_the_rest_per_reason() {
    let (guard, audit, _) = guard(
        r#"
        {"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["ai_training"],"level":"implied","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"u4","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"u4","purposes":["ai_training"],"at":"2026-03-01T00:00:00Z"}
        "#,
    );
    let records = vec![
        anonymous_log("u1", "a"),
        log("u1", "identifiable"),
        anonymous_log("u2", "implied only"),
        anonymous_log("u3", "never asked"),
        anonymous_log("u4", "withdrew"),
        anonymous_log("u1", "b"),
    ];
    let before = audit.len();
    let access = training();
    let mut selection = sealed::select(&guard, &records, &access);
    let kept: Vec<&String> = selection.by_ref().collect();
    assert_eq!(kept, ["a", "b"]);

    let tally = selection.into_tally();
    assert_eq!((tally.kept(), tally.withheld(), tally.seen()), (2, 4, 6));
    let reasons: Vec<(ReasonCode, u64)> = tally.reasons().collect();
    assert_eq!(
        reasons,
        [
            (ReasonCode::ConsentMissing, 1),
            (ReasonCode::ConsentWithdrawn, 1),
            (ReasonCode::ConsentLevelInsufficient, 1),
            (ReasonCode::DeidentificationRequired, 1),
        ]
    );
    assert_eq!(
        tally.to_string(),
        "kept 2 of 6, withheld 4 (consent_missing 1, consent_withdrawn 1, consent_level_insufficient 1, \
         deidentification_required 1)"
    );
    assert_eq!(
        serde_json::to_value(tally).unwrap(),
        serde_json::json!({"kept": 2, "withheld": {
            "consent_missing": 1, "consent_withdrawn": 1, "consent_level_insufficient": 1, "deidentification_required": 1
        }})
    );
    assert_eq!(audit.len() - before, 6, "every record is one audited check");

    // The owned form moves the kept values out and drops the rest.
    let owned: Vec<String> = guard.select_owned(records, &access).collect();
    assert_eq!(owned, ["a", "b"]);
}

#[test]
fn a_withdrawal_during_a_selection_withholds_the_subjects_next_record() {
    let (guard, _, clock) = guard(OPTED_IN);
    let records: Vec<Personal<String>> = (0..6).map(|i| anonymous_log("u1", &format!("step {i}"))).collect();
    let access = training();
    let mut selection = guard.select(&records, &access);
    let first: Vec<&String> = selection.by_ref().take(3).collect();
    assert_eq!(first.len(), 3);

    clock.set(now() + Duration::minutes(1));
    record(&guard, r#"{"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-06-01T00:00:30Z"}"#);
    assert_eq!(selection.next(), None, "nothing of u1 after the withdrawal");
    let tally = *selection.tally();
    assert_eq!(tally.kept(), 3);
    assert_eq!(tally.withheld_for(ReasonCode::ConsentWithdrawn), 3);

    let mut total = Tally::default();
    total += tally;
    total += tally;
    assert_eq!((total.kept(), total.withheld()), (6, 6));
}

/// Sealed data opens only on a decision made now: an access names no time of its own,
/// so consent given once and withdrawn since cannot be replayed into an opening.
#[test]
fn an_opening_is_decided_at_the_guards_clock() {
    let (guard, _, clock) = guard(OPTED_IN);
    let log = anonymous_log("u1", "a");
    let decision = guard.open(&log, &training()).unwrap().decision().clone();
    assert_eq!((decision.at(), decision.is_what_if()), (now(), false));
    clock.set(now() + Duration::minutes(1));
    record(&guard, r#"{"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-06-01T00:00:30Z"}"#);
    assert_eq!(guard.open(&log, &training()).unwrap_err().code(), ReasonCode::ConsentWithdrawn);
}
