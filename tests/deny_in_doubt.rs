//! The wrong allows an adversarial caller found from outside (issue 13), one class per
//! test, each read as a table of request → code. Every one of them allowed before its
//! fix; the semantics they pin are in `docs/policy-format.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail loudly")]

mod support;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use consent_guard::store::MemoryConsentStore;
use consent_guard::{AccessRequest, ConsentEvent, FixedClock, Guard, Policy, ReasonCode};
use support::{Scenario, NOW};

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn request(json: &str) -> AccessRequest<'static> {
    serde_json::from_str::<AccessRequest<'_>>(json).unwrap_or_else(|e| panic!("{json}: {e}")).into_owned()
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A set of categories that may contain sensitive data is sensitive, wherever the guard
/// reasons about categories.
#[test]
fn a_parent_category_is_as_sensitive_as_its_children() {
    let s = Scenario::new("aiart").events(
        r#"
        {"type":"subject","subject":"adult","birth_date":"1990-01-01"}
        {"type":"grant","subject":"scoped","purposes":["personalization"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"categories":["location.approximate"]}}
        "#,
    );
    let recommend = |who: &str, categories: &str| {
        format!(r#"{{"subject":"{who}","purpose":"personalization.recommendation","categories":{categories}}}"#)
    };
    let table = [
        // (subject, categories, code)
        ("adult", r#"["location.precise"]"#, "separate_consent_required"),
        // `location` may hold `location.precise`: allowed on the opt-out default before.
        ("adult", r#"["location"]"#, "separate_consent_required"),
        ("adult", r#"["location.approximate"]"#, "consent_given"),
        // A grant scoped to a child does not reach its parent; on this opt-out rule the
        // default stands, and deemed consent is never separate consent.
        ("scoped", r#"["location"]"#, "separate_consent_required"),
        ("scoped", r#"["location.approximate"]"#, "consent_given"),
    ];
    for (who, categories, code) in table {
        s.expect(&recommend(who, categories), code);
    }
    // A rule permitting only a child does not permit its parent.
    s.expect(
        r#"{"subject":"adult","purpose":"advertising.personalized","categories":["location"]}"#,
        "category_not_permitted",
    );
    assert!(s.guard().policy().is_sensitive(&consent_guard::DataCategory::LOCATION));
}

/// Age facts are facts with times: no statement is lost, the younger age holds in
/// doubt, and 29 February is a day like the others.
#[test]
fn age_facts_are_never_lost() {
    let grant = |who: &str| {
        format!(
            r#"{{"type":"grant","subject":"{who}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}}"#
        )
    };
    let s = Scenario::new("exmo").events(&format!(
        r#"
        {{"type":"subject","subject":"leap_age","age":10,"at":"2024-02-29T12:00:00Z"}}
        {{"type":"subject","subject":"leap_born","birth_date":"2012-02-29"}}
        {{"type":"subject","subject":"silent","birth_date":"2015-01-01"}}
        {{"type":"subject","subject":"silent"}}
        {{"type":"subject","subject":"contradicted","birth_date":"2015-01-01"}}
        {{"type":"subject","subject":"contradicted","birth_date":"1990-01-01"}}
        {{"type":"subject","subject":"adult","age":30,"at":"2024-02-29T12:00:00Z"}}
        {}
        {}
        {}
        {}
        {}
        "#,
        grant("leap_age"),
        grant("leap_born"),
        grant("silent"),
        grant("contradicted"),
        grant("adult")
    ));
    let training = |who: &str, at: &str| {
        format!(
            r#"{{"subject":"{who}","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"{at}}}"#
        )
    };
    let table = [
        // (subject, time, code): "now" is 2026-06-01.
        // Ten on 29 February 2024: born 28 February 2014 at the latest (was: unknown age).
        ("leap_age", "", "guardian_consent_required"),
        // Born 29 February 2012: 14 on 1 March 2026, not on 28 February.
        ("leap_born", r#","at":"2026-02-28T12:00:00Z""#, "guardian_consent_required"),
        ("leap_born", r#","at":"2026-03-01T00:00:00Z""#, "consent_given"),
        // A later statement that says nothing of age forgets nothing.
        ("silent", "", "guardian_consent_required"),
        // Two birth dates: the younger holds.
        ("contradicted", "", "guardian_consent_required"),
        ("adult", "", "consent_given"),
    ];
    for (who, at, code) in table {
        s.expect(&training(who, at), code);
    }
}

/// An erasure removes the age facts from the store whatever its time: the guard forgets
/// them at once too, so the subject is a minor before and after a restart. A store
/// that forgets erased subjects (issue 27: the memory store does) deletes the grant
/// too, at once: the running guard keeps what it recorded (and decides as the
/// reference model does), the restarted one finds no consent. Both deny.
#[test]
fn an_erasure_decides_the_same_before_and_after_a_restart() {
    let policy =
        || Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap();
    let store = Arc::new(MemoryConsentStore::new());
    let build =
        || Guard::builder(policy()).clock(FixedClock::new(time(NOW))).store(Arc::clone(&store)).build().unwrap();
    let running = build();
    for line in [
        r#"{"type":"subject","subject":"kid","birth_date":"2015-01-01"}"#,
        r#"{"type":"grant","subject":"kid","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
        // Scheduled for the end of the year: the birth date leaves the store now.
        r#"{"type":"erase","subject":"kid","at":"2026-12-01T00:00:00Z"}"#,
    ] {
        running.record(&event(line)).unwrap();
    }
    let restarted = build();
    let training = request(
        r#"{"subject":"kid","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#,
    );
    for (guard, code) in [(&running, ReasonCode::GuardianConsentRequired), (&restarted, ReasonCode::ConsentMissing)] {
        assert_eq!(guard.check(&training).code(), code);
        let past = guard.what_if(&training, time("2026-03-01T00:00:00Z"));
        assert_eq!(past.code(), code);
    }
}

/// A request for a purpose covers its children: consent to each leaf under it, and one
/// rule for all of them.
#[test]
fn a_parent_purpose_does_not_escape_its_children() {
    let s = Scenario::new("exmo").events(
        r#"
        {"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"u1","purposes":["ai_training.model_training"],"at":"2026-02-01T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["ai_training.model_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"u3","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let training = |who: &str, purpose: &str| {
        format!(
            r#"{{"subject":"{who}","purpose":"{purpose}","categories":["behavior.log"],"deidentification":"anonymized"}}"#
        )
    };
    let table = [
        ("u1", "ai_training", "consent_withdrawn"),
        ("u1", "ai_training.model_training", "consent_withdrawn"),
        ("u1", "ai_training.algorithm_optimization", "consent_given"),
        // Consent to one child is not consent to the parent.
        ("u2", "ai_training", "consent_missing"),
        ("u2", "ai_training.model_training", "consent_given"),
        ("u3", "ai_training", "consent_given"),
    ];
    for (who, purpose, code) in table {
        s.expect(&training(who, purpose), code);
    }
    // A purpose whose children other rules govern cannot be decided by one clause.
    let aiart = Scenario::new("aiart");
    aiart.expect(r#"{"subject":"u1","purpose":"account.login","categories":["contact.phone"]}"#, "purpose_too_broad");
    aiart.expect(r#"{"subject":"u1","purpose":"account.login.mobile","categories":["contact.phone"]}"#, "legal_basis");
}

/// Times a caller controls do not decide for the guard.
#[test]
fn times_a_caller_controls_fail_closed() {
    let kmengai = Scenario::new("kmengai");
    let account = |collected: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"account.registration","categories":["account.username"],"collected_at":"{collected}"}}"#
        )
    };
    // Collected after "now": fresh forever, before. Its collection time is not known.
    kmengai.expect(&account("2026-07-01T00:00:00Z"), "retention_expired");
    kmengai.expect(&account("2026-05-20T00:00:00Z"), "legal_basis");

    // Two empty session names are not one session.
    let exmo = Scenario::new("exmo");
    let upload = |session: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"session":"{session}","collected_session":"{session}"}}"#
        )
    };
    exmo.expect(&upload(""), "retention_expired");
    exmo.expect(&upload("s1"), "legal_basis");

    // A check decides now, whatever time the request names; a question about another
    // time is a what-if, marked as such.
    let exmo = exmo.events(
        r#"
        {"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}
        "#,
    );
    let asked_about_january = request(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized","at":"2026-01-15T00:00:00Z"}"#,
    );
    let now = exmo.guard().check(&asked_about_january);
    assert_eq!((now.code(), now.is_what_if(), now.at()), (ReasonCode::ConsentWithdrawn, false, time(NOW)));
    let then = exmo.guard().what_if(&asked_about_january, time("2026-01-15T00:00:00Z"));
    assert_eq!((then.code(), then.is_what_if()), (ReasonCode::ConsentGiven, true));
    assert!(serde_json::to_string(&then).unwrap().ends_with(r#","what_if":true}"#));
    let prepared = exmo.guard().prepare(&asked_about_january);
    assert_eq!(prepared.check("u1").code(), ReasonCode::ConsentWithdrawn);
}

/// A grant under a policy version the policy does not know yet is refused at `record`:
/// counted as newer than the policy, it would never need reconsent.
#[test]
fn a_grant_under_an_unknown_later_version_is_refused() {
    let s = Scenario::new("exmo");
    let grant = |version: &str| {
        event(&format!(
            r#"{{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"{version}"}}"#
        ))
    };
    let refused = s.guard().record(&grant("7.0")).unwrap_err();
    assert!(refused.to_string().contains("7.0"), "{refused}");
    s.guard().record(&grant("1.0")).unwrap();
    s.guard().record(&grant("0.9")).unwrap();
}

/// A scope names exactly what was agreed: a grant for an ad partner is no grant for
/// first-party use.
#[test]
fn a_scope_limits_first_party_use_too() {
    let policy = Policy::from_toml_str(
        r#"
[policy]
name = "ads"
version = "1.0"
home_region = "CN"

[recipients.ad_partner]
kind = "third_party"

[[rule]]
id = "ads.personalized"
purposes = ["advertising.personalized"]
basis = "consent"
level = "separate"
categories = ["device.identifier"]
actions = ["use", "share"]
recipients = ["first_party", "ad_partner"]
"#,
        "ads.toml",
    )
    .unwrap();
    let guard = Guard::builder(policy).clock(FixedClock::new(time(NOW))).build().unwrap();
    let grant = |who: &str, scope: &str| {
        event(&format!(
            r#"{{"type":"grant","subject":"{who}","purposes":["advertising"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{{"recipients":{scope}}}}}"#
        ))
    };
    guard.record(&grant("partner_only", r#"["ad_partner"]"#)).unwrap();
    guard.record(&grant("both", r#"["ad_partner","first_party"]"#)).unwrap();
    guard.record(&grant("by_kind", r#"["third_party"]"#)).unwrap();
    let ads = |who: &str, recipient: &str| {
        request(&format!(
            r#"{{"subject":"{who}","purpose":"advertising.personalized","action":"share","categories":["device.identifier"],"recipient":{recipient}}}"#
        ))
    };
    let first_party = r#"{"kind":"first_party"}"#;
    let partner = r#"{"kind":"third_party","name":"ad_partner"}"#;
    let table = [
        ("partner_only", first_party, ReasonCode::ConsentMissing),
        ("partner_only", partner, ReasonCode::ConsentGiven),
        ("both", first_party, ReasonCode::ConsentGiven),
        ("both", partner, ReasonCode::ConsentGiven),
        ("by_kind", partner, ReasonCode::ConsentGiven),
        ("by_kind", first_party, ReasonCode::ConsentMissing),
    ];
    for (who, recipient, code) in table {
        assert_eq!(guard.check(&ads(who, recipient)).code(), code, "{who} to {recipient}");
    }
}

/// Durations a policy cannot represent are errors, from TOML and from the builder.
#[test]
fn retention_beyond_representable_time_is_a_policy_error() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/kmengai.toml")).unwrap();
    for (retention, accepted) in [("1000y", true), ("1001y", false), ("300000000y", false), ("365000d", true)] {
        let edited = text.replacen("\nretention = \"30d\"", &format!("\nretention = \"{retention}\""), 1);
        match Policy::from_toml_str(&edited, "kmengai.toml") {
            Ok(_) => assert!(accepted, "{retention} accepted"),
            Err(error) => {
                assert!(!accepted, "{retention}: {error}");
                let text = error.to_string();
                assert!(text.contains("kmengai.toml:") && text.contains("1000 years"), "{text}");
            }
        }
    }
    let mut document = Policy::from_toml_str(&text, "kmengai.toml").unwrap().document().clone();
    if let Some(rule) = document.rules.first_mut() {
        rule.retention = Some(consent_guard::policy::Retention::Years(u32::MAX));
    }
    assert!(Policy::compile(document, "built").is_err());
}
