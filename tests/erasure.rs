//! What is owed (issue 27 item 2): `Guard::owed`, `Guard::owed_all`, the `[rights]`
//! deadlines and the holiday calendar, and the agreement of what is owed with what a
//! `delete` request is answered.
#![allow(clippy::panic, reason = "tests fail loudly")]

mod support;

use chrono::{DateTime, Utc};
use consent_guard::rights::{Calendar, Owed, OwedReason};
use consent_guard::{AccessRequest, Action, ConsentEvent, FixedClock, Guard, Policy, ReasonCode};
use support::Scenario;

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn cn_2026() -> Calendar {
    Calendar::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/calendars/cn-2026.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Each entry owed for a reason of the subject's own is a deletion the guard allows:
/// a `delete` of each of its purposes and categories is `deletion_due`.
fn assert_deletable(guard: &Guard, owed: &[Owed], at: DateTime<Utc>) {
    for entry in owed.iter().filter(|e| e.collected_before.is_none()) {
        let subject = entry.subject.as_deref().unwrap_or_else(|| panic!("{entry:?}"));
        for purpose in &entry.purposes {
            let request =
                AccessRequest::new(subject, purpose.clone(), entry.categories.as_slice()).action(Action::Delete);
            let decision = guard.what_if(&request, at);
            assert_eq!(decision.code(), ReasonCode::DeletionDue, "{entry:?} {purpose}: {}", decision.message());
            assert!(decision.message().contains(entry.reason.as_str()), "{}", decision.message());
        }
    }
}

/// AI Art 5.(3): "We will cancel your account within 15 days": an erasure owes the
/// deletion of the subject's data under every clause but the duties of law, due from
/// the erasure and overdue 15 days later.
#[test]
fn an_erasure_is_owed_within_the_policys_deadline() {
    let s = Scenario::new("aiart").events(
        r#"
        {"type":"subject","subject":"u1","birth_date":"1990-01-01"}
        {"type":"grant","subject":"u1","purposes":["personalization"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"erase","subject":"u1","at":"2026-03-01T00:00:00Z"}
        "#,
    );
    let guard = s.guard();
    let early = guard.owed("u1", t("2026-03-10T00:00:00Z"), None).unwrap_or_else(|e| panic!("{e}"));
    assert!(!early.is_empty());
    for entry in &early {
        assert_eq!(entry.reason, OwedReason::SubjectErased, "{entry:?}");
        assert_eq!(entry.due, t("2026-03-01T00:00:00Z"));
        assert_eq!(entry.deadline, Some(t("2026-03-16T00:00:00Z")));
        assert!(!entry.overdue);
        assert_ne!(entry.clause.as_deref(), Some("aiart.legal_obligation"), "the law keeps it");
    }
    let clauses: Vec<&str> = early.iter().filter_map(|e| e.clause.as_deref()).collect();
    for clause in ["aiart.core", "aiart.recommendation", "aiart.customer_support"] {
        assert!(clauses.contains(&clause), "{clause} missing from {clauses:?}");
    }
    let late = guard.owed("u1", t("2026-03-17T00:00:00Z"), None).unwrap_or_else(|e| panic!("{e}"));
    assert!(late.iter().all(|e| e.overdue));
    assert_deletable(guard, &late, t("2026-03-17T00:00:00Z"));
    // The JSON line names subject, purposes, categories, reason, clause and dates.
    let line = serde_json::to_value(&late[0]).unwrap_or_else(|e| panic!("{e}"));
    for field in ["subject", "purposes", "categories", "reason", "clause", "due", "deadline", "overdue"] {
        assert!(line.get(field).is_some(), "{field} missing in {line}");
    }
    assert_eq!(line["reason"], "subject_erased");
    // The Debug form redacts the subject.
    assert!(!format!("{:?}", late[0]).contains("u1"));
    // Nothing is owed of a subject who asked nothing.
    let s = s.events(r#"{"type":"subject","subject":"u2","birth_date":"1990-01-01"}"#);
    assert_eq!(s.guard().owed("u2", t("2026-03-17T00:00:00Z"), None).map(|o| o.len()), Ok(0));
}

/// AI Art VII.2 and "within fifteen working days": a minor's data without a
/// guardian's consent is owed; its deadline counts working days, which the mainland
/// China 2026 calendar makes longer over the National Day week.
#[test]
fn a_minors_data_is_owed_in_working_days_of_the_calendar() {
    let s = Scenario::new("aiart").events(
        r#"
        {"type":"subject","subject":"teen","birth_date":"2010-01-01"}
        {"type":"subject","subject":"teen_guardian","birth_date":"2010-01-01"}
        {"type":"grant","subject":"teen_guardian","purposes":["service","personalization","analytics","advertising","marketing","profiling","research","account","security","compliance"],"level":"separate","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let at = t("2026-09-24T02:00:00Z");
    let guard = s.guard();
    let owed = guard.owed("teen", at, Some(&cn_2026())).unwrap_or_else(|e| panic!("{e}"));
    assert!(owed.iter().any(|e| e.clause.as_deref() == Some("aiart.core")), "{owed:?}");
    for entry in &owed {
        assert_eq!(entry.reason, OwedReason::GuardianConsentMissing, "{entry:?}");
        // Thursday 24 September (Beijing): 28-30 September, 8-9 October, Saturday 10
        // October, 12-16 and 19-22 October: the 15th working day ends Thursday 22
        // October at midnight, Beijing time.
        assert_eq!(entry.deadline, Some(t("2026-10-22T16:00:00Z")), "{entry:?}");
    }
    assert_deletable(guard, &owed, at);
    // Without a calendar, working days are Monday to Friday (UTC): 15 October.
    let plain = guard.owed("teen", at, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(plain.iter().all(|e| e.deadline == Some(t("2026-10-16T00:00:00Z"))), "{plain:?}");
    // A guardian's grant to every purpose: nothing owed.
    let covered = guard.owed("teen_guardian", at, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(covered, Vec::new());
}

/// The end of a purpose (issue 29) makes its data owed once `retention_after_end` has
/// run: only the data collected before the end, and anonymizing it suffices where the
/// rule says "deleted or anonymized".
#[test]
fn an_ended_purpose_owes_the_data_collected_before_it() {
    let s = Scenario::new("aiart").events(
        r#"
        {"type":"subject","subject":"u1","birth_date":"1990-01-01"}
        {"type":"end","subject":"u1","purposes":["service"],"at":"2026-04-01T00:00:00Z"}
        "#,
    );
    let owed = s.guard().owed("u1", t("2026-06-01T00:00:00Z"), None).unwrap_or_else(|e| panic!("{e}"));
    let core = owed.iter().find(|e| e.clause.as_deref() == Some("aiart.core"));
    let core = core.unwrap_or_else(|| panic!("{owed:?}"));
    assert_eq!(core.reason, OwedReason::PurposeEnded);
    assert_eq!(core.collected_before, Some(t("2026-04-01T00:00:00Z")));
    assert!(core.anonymizing_suffices);
    assert!(owed.iter().all(|e| e.reason == OwedReason::PurposeEnded));
}

/// `[rights] withdrawal_deletes` (PIPL art. 47(3)): a withdrawal of the consent a
/// rule rests on makes the data owed, and a `delete` of it allowed; without it, a
/// withdrawal only stops the processing.
#[test]
fn a_withdrawal_owes_the_data_where_the_policy_says_so() {
    let policy = |rights: &str| {
        let text = format!(
            r#"
[policy]
name = "shop"
version = "1"
home_region = "CN"
{rights}
[[rule]]
id = "shop.recommendations"
purposes = ["personalization.recommendation"]
basis = "consent"
level = "explicit"
categories = ["behavior.log"]
"#
        );
        Policy::from_toml_str(&text, "shop.toml").unwrap_or_else(|e| panic!("{e}"))
    };
    let events = [
        r#"{"type":"grant","subject":"u1","purposes":["personalization"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#,
        r#"{"type":"withdraw","subject":"u1","purposes":["personalization"],"at":"2026-02-01T00:00:00Z"}"#,
    ];
    let now = t("2026-03-01T00:00:00Z");
    let delete = AccessRequest::new(
        "u1",
        consent_guard::Purpose::PERSONALIZATION_RECOMMENDATION,
        &[consent_guard::DataCategory::BEHAVIOR_LOG][..],
    )
    .action(Action::Delete);
    for (rights, owed_reason, code) in [
        ("[rights]\nwithdrawal_deletes = true\ndeletion_within = \"15 working days\"\n", true, ReasonCode::DeletionDue),
        ("", false, ReasonCode::ConsentWithdrawn),
    ] {
        let guard =
            Guard::builder(policy(rights)).clock(FixedClock::new(now)).build().unwrap_or_else(|e| panic!("{e}"));
        for line in events {
            let event: ConsentEvent = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
            guard.record(&event).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(guard.check(&delete).code(), code, "{rights}");
        let owed = guard.owed_all(now, Some(&cn_2026())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(owed.len(), usize::from(owed_reason), "{owed:?}");
        if let Some(entry) = owed.first() {
            assert_eq!(entry.reason, OwedReason::ConsentWithdrawn);
            assert_eq!(entry.due, t("2026-02-01T00:00:00Z"));
            assert_eq!(entry.collected_before, Some(t("2026-02-01T00:00:00Z")));
            // 1 February 2026 (Beijing, Sunday): 2-6, 9-13 February, Saturday 14
            // February, then the Spring Festival to the 23rd, 24-27 February: the
            // 15th working day is Friday 27 February.
            assert_eq!(entry.deadline, Some(t("2026-02-27T16:00:00Z")));
            assert!(entry.overdue, "asked on 1 March");
        }
    }
}

/// The scan lists every subject's entries after the retention cut-offs, which hold
/// for every subject (`subject` null).
#[test]
fn the_scan_lists_retention_and_every_subject() {
    let s = Scenario::new("kmengai").events(
        r#"
        {"type":"subject","subject":"a","birth_date":"1990-01-01"}
        {"type":"erase","subject":"a","at":"2026-05-01T00:00:00Z"}
        {"type":"subject","subject":"b","birth_date":"1990-01-01"}
        {"type":"subject","subject":"a_subject_id_longer_than_fifteen_bytes","birth_date":"1990-01-01"}
        {"type":"erase","subject":"a_subject_id_longer_than_fifteen_bytes","at":"2026-05-02T00:00:00Z"}
        "#,
    );
    let at = t("2026-06-01T00:00:00Z");
    let owed = s.guard().owed_all(at, None).unwrap_or_else(|e| panic!("{e}"));
    let retention: Vec<&Owed> = owed.iter().filter(|e| e.subject.is_none()).collect();
    assert!(!retention.is_empty());
    for entry in &retention {
        assert_eq!(entry.reason, OwedReason::RetentionExpired);
        assert_eq!(entry.collected_before, Some(t("2026-05-02T00:00:00Z")), "30 days before");
    }
    let subjects: std::collections::BTreeSet<&str> = owed.iter().filter_map(|e| e.subject.as_deref()).collect();
    assert_eq!(subjects.into_iter().collect::<Vec<_>>(), ["a", "a_subject_id_longer_than_fifteen_bytes"]);
    assert_deletable(s.guard(), &owed, at);
}
