//! The last doubtful allows of issue 29, and purposes that end: each test allowed (or
//! accepted) before its fix. The semantics they pin are in `docs/policy-format.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail loudly")]

use chrono::{DateTime, Utc};
use consent_guard::store::{ConsentStore, MemoryConsentStore};
use consent_guard::{AccessRequest, ConsentEvent, FixedClock, Guard, Policy};

const NOW: &str = "2026-06-01T00:00:00Z";

fn event(json: &str) -> ConsentEvent {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn request(json: &str) -> AccessRequest<'static> {
    serde_json::from_str::<AccessRequest<'_>>(json).unwrap_or_else(|e| panic!("{json}: {e}")).into_owned()
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn policy(text: &str) -> Policy {
    Policy::from_toml_str(text, "case.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn guard(text: &str) -> Guard {
    Guard::builder(policy(text)).clock(FixedClock::new(time(NOW))).build().unwrap()
}

fn code(guard: &Guard, json: &str) -> &'static str {
    guard.check(&request(json)).code().as_str()
}

const HEADER: &str = r#"
[policy]
name = "case"
version = "1.0"
home_region = "CN"
"#;

/// A compliance purpose on a basis other than consent survives an unreadable state
/// only where the answer cannot depend on the subject: where the policy knows minors
/// and the basis is not one the law imposes, the subject's age decides, and an
/// unreadable state (here: quarantined during a policy upgrade) must not read as an
/// adult's.
#[test]
fn an_unreadable_state_never_reads_as_an_adult() {
    let rules = r#"
[[rule]]
id = "review"
purposes = ["compliance.legal_obligation"]
basis = ["contract", "legal_obligation"]
categories = ["account"]
"#;
    for (minors, readable_code) in [
        ("[minors]\nguardian_consent_under = 14\n", "guardian_consent_required"),
        ("[minors]\nnot_served_under = 18\n", "minor_not_served"),
    ] {
        let text = format!("{HEADER}\n{minors}\n{rules}");
        let store = MemoryConsentStore::new();
        store
            .append(&[
                event(r#"{"type":"subject","subject":"kid","age":12,"at":"2026-01-01T00:00:00Z"}"#),
                event(r#"{"type":"subject","subject":"stuck","age":12,"at":"2026-01-01T00:00:00Z"}"#),
                // Recorded by a replica on a later policy: this guard cannot read it.
                event(
                    r#"{"type":"grant","subject":"stuck","purposes":["service"],"level":"explicit","at":"2026-01-02T00:00:00Z","policy_version":"9.0"}"#,
                ),
            ])
            .unwrap();
        let guard = Guard::builder(policy(&text)).clock(FixedClock::new(time(NOW))).store(store).build().unwrap();
        assert_eq!(guard.quarantined().len(), 1);
        let contract = |who: &str| {
            format!(
                r#"{{"subject":"{who}","purpose":"compliance.legal_obligation","categories":["account.username"],"basis":"contract"}}"#
            )
        };
        let law = |who: &str| {
            format!(
                r#"{{"subject":"{who}","purpose":"compliance.legal_obligation","categories":["account.username"],"basis":"legal_obligation"}}"#
            )
        };
        assert_eq!(code(&guard, &contract("kid")), readable_code, "{minors}");
        // Allowed as an unknown adult before.
        assert_eq!(code(&guard, &contract("stuck")), "consent_state_unavailable", "{minors}");
        // A basis the law imposes does not ask the subject's age: it still holds.
        assert_eq!(code(&guard, &law("stuck")), "legal_basis", "{minors}");
    }
    // Without [minors] nothing about the subject decides a compliance duty.
    let store = MemoryConsentStore::new();
    store
        .append(&[event(
            r#"{"type":"grant","subject":"stuck","purposes":["service"],"level":"explicit","at":"2026-01-02T00:00:00Z","policy_version":"9.0"}"#,
        )])
        .unwrap();
    let guard = Guard::builder(policy(&format!("{HEADER}\n{rules}")))
        .clock(FixedClock::new(time(NOW)))
        .store(store)
        .build()
        .unwrap();
    assert_eq!(
        code(
            &guard,
            r#"{"subject":"stuck","purpose":"compliance.legal_obligation","categories":["account.username"],"basis":"contract"}"#
        ),
        "legal_basis"
    );
}

/// A consent screen with nothing ticked is no consent to everything: an empty list in
/// a grant's scope is refused at `record`, naming the field; an absent key stays "no
/// limit".
#[test]
fn an_empty_scope_list_is_refused_at_record() {
    let guard = guard(&format!(
        "{HEADER}\n[[rule]]\nid = \"ads\"\npurposes = [\"advertising\"]\nbasis = \"consent\"\nlevel = \"separate\"\ncategories = [\"device\"]\n"
    ));
    for list in ["categories", "recipients", "regions"] {
        let json = format!(
            r#"{{"type":"grant","subject":"u1","purposes":["advertising"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{{"{list}":[]}}}}"#
        );
        let error = match serde_json::from_str::<ConsentEvent>(&json) {
            // The JSON is read; `record` refuses it.
            Ok(parsed) => guard.record(&parsed).expect_err(&json).to_string(),
            Err(error) => panic!("{json}: {error}"),
        };
        assert!(error.contains(&format!("scope.{list}")), "{list}: {error}");
    }
    assert_eq!(
        code(&guard, r#"{"subject":"u1","purpose":"advertising.personalized","categories":["device.identifier"]}"#),
        "consent_missing"
    );
    // An absent key limits nothing.
    guard
        .record(&event(
            r#"{"type":"grant","subject":"u1","purposes":["advertising"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"regions":["CN"]}}"#,
        ))
        .unwrap();
    assert_eq!(
        code(&guard, r#"{"subject":"u1","purpose":"advertising.personalized","categories":["device.identifier"]}"#),
        "consent_given"
    );
    // A typo in a scope is still an error, not a list.
    let typo = r#"{"type":"grant","subject":"u1","purposes":["advertising"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"categorie":["device"]}}"#;
    let error = serde_json::from_str::<ConsentEvent>(typo).unwrap_err().to_string();
    assert!(error.contains("unknown field `categorie`"), "{error}");
    // What a grant serializes to reads back the same.
    let grant = event(
        r#"{"type":"grant","subject":"u1","purposes":["advertising"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"regions":["CN"]}}"#,
    );
    let again: ConsentEvent = serde_json::from_str(&serde_json::to_string(&grant).unwrap()).unwrap();
    assert_eq!(again, grant);
}

/// "Express consent of parents or other guardians": a policy may ask a guardian's
/// grant at a level of its own, on consent rules too.
#[test]
fn a_policy_may_require_a_guardian_level() {
    let text = format!(
        "{HEADER}\n[minors]\nguardian_consent_under = 18\nsensitive_under = 14\nguardian_level = \"explicit\"\n
[[rule]]
id = \"reco\"
purposes = [\"personalization.recommendation\"]
basis = \"consent\"
level = \"implied\"
categories = [\"behavior\"]
"
    );
    let guard = guard(&text);
    for line in [
        r#"{"type":"subject","subject":"implied","age":16,"at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"implied","purposes":["personalization"],"level":"implied","by_guardian":true,"at":"2026-01-02T00:00:00Z"}"#,
        r#"{"type":"subject","subject":"express","age":16,"at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"express","purposes":["personalization"],"level":"explicit","by_guardian":true,"at":"2026-01-02T00:00:00Z"}"#,
        r#"{"type":"subject","subject":"adult","age":30,"at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"adult","purposes":["personalization"],"level":"implied","at":"2026-01-02T00:00:00Z"}"#,
    ] {
        guard.record(&event(line)).unwrap();
    }
    let reco = |who: &str| {
        format!(r#"{{"subject":"{who}","purpose":"personalization.recommendation","categories":["behavior.log"]}}"#)
    };
    assert_eq!(code(&guard, &reco("implied")), "consent_level_insufficient");
    assert_eq!(code(&guard, &reco("express")), "consent_given");
    // An adult's own implied consent is what the rule asks.
    assert_eq!(code(&guard, &reco("adult")), "consent_given");
    // Only where guardians consent at all.
    let error =
        Policy::from_toml_str(&text.replace("guardian_consent_under = 18", "not_served_under = 18"), "case.toml")
            .unwrap_err()
            .to_string();
    assert!(error.contains("guardian_level"), "{error}");
}

/// A child's data is sensitive as a whole: `sensitive_under` without the `minor`
/// trigger would let a child's data pass on explicit consent, so it is an error.
#[test]
fn sensitive_under_needs_the_minor_trigger() {
    let text = format!(
        "{HEADER}separate_consent_for = [\"sensitive\", \"third_party\", \"public\", \"cross_border\"]\n
[minors]
guardian_consent_under = 18
sensitive_under = 14

[[rule]]
id = \"reco\"
purposes = [\"personalization.recommendation\"]
basis = \"consent\"
level = \"explicit\"
categories = [\"behavior\"]
"
    );
    let error = Policy::from_toml_str(&text, "case.toml").unwrap_err().to_string();
    assert!(error.contains("sensitive_under") && error.contains("minor"), "{error}");
    assert!(error.contains("case.toml:"), "{error}");
    // With the trigger, the policy loads.
    policy(&text.replace("[\"sensitive\",", "[\"sensitive\", \"minor\","));
}

/// A rule region outside `storage_regions` would be reached with no consent, while
/// consent rules treat it as cross-border: an error, pointing at the transfer list.
#[test]
fn a_rule_region_outside_storage_is_an_error() {
    let text = format!(
        "{HEADER}storage_regions = [\"CN\"]\n
[[rule]]
id = \"login\"
purposes = [\"account.login\"]
basis = \"contract\"
categories = [\"account\"]
regions = [\"CN\", \"SG\"]
"
    );
    let error = Policy::from_toml_str(&text, "case.toml").unwrap_err().to_string();
    assert!(error.contains("SG") && error.contains("transfer_regions") && error.contains("regions"), "{error}");
    policy(&text.replace("regions = [\"CN\", \"SG\"]", "regions = [\"CN\"]\ntransfer_regions = [\"SG\"]"));
}

/// A minor's codes on a non-consent rule say what is missing from the guardian's
/// grant, as on a consent rule (docs/policy-format.md, step 10).
#[test]
fn a_minors_codes_on_a_non_consent_rule() {
    let guard = guard(&format!(
        "{HEADER}\n[minors]\nguardian_consent_under = 18\nsensitive_under = 14\n
[[rule]]
id = \"core\"
purposes = [\"service.core\"]
basis = \"contract\"
categories = [\"content\"]
"
    ));
    let lines = [
        r#"{"type":"subject","subject":"none","age":16,"at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"subject","subject":"implied","age":16,"at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"implied","purposes":["service"],"level":"implied","by_guardian":true,"at":"2026-01-02T00:00:00Z"}"#,
        r#"{"type":"subject","subject":"young","age":12,"at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"young","purposes":["service"],"level":"explicit","by_guardian":true,"at":"2026-01-02T00:00:00Z"}"#,
        r#"{"type":"subject","subject":"withdrawn","age":16,"at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"withdrawn","purposes":["service"],"level":"explicit","by_guardian":true,"at":"2026-01-02T00:00:00Z"}"#,
        r#"{"type":"withdraw","subject":"withdrawn","purposes":["service"],"at":"2026-02-01T00:00:00Z"}"#,
        r#"{"type":"subject","subject":"expired","age":16,"at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"expired","purposes":["service"],"level":"explicit","by_guardian":true,"at":"2026-01-02T00:00:00Z","expires_at":"2026-03-01T00:00:00Z"}"#,
        r#"{"type":"subject","subject":"own","age":16,"at":"2026-01-01T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"own","purposes":["service"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#,
    ];
    for line in lines {
        guard.record(&event(line)).unwrap();
    }
    let core = |who: &str| format!(r#"{{"subject":"{who}","purpose":"service.core","categories":["content.chat"]}}"#);
    for (who, expected) in [
        ("none", "guardian_consent_required"),
        ("own", "guardian_consent_required"),
        ("implied", "consent_level_insufficient"),
        ("young", "separate_consent_required"),
        ("withdrawn", "consent_withdrawn"),
        ("expired", "consent_expired"),
    ] {
        assert_eq!(code(&guard, &core(who)), expected, "{who}");
    }
}

/// "For the period necessary for the purpose": an `end` event says the purpose is over
/// for a subject; its data is `retention_expired` once the rule's grace has run, data
/// collected after the end is a new period's, and deleting is always allowed.
#[test]
fn a_purpose_that_ended_expires_its_data() {
    let guard = guard(&format!(
        "{HEADER}
[[rule]]
id = \"orders\"
purposes = [\"service.payment\"]
basis = \"contract\"
categories = [\"financial.transaction\"]
actions = [\"collect\", \"store\", \"use\", \"delete\"]
retention_after_end = \"30d\"

[[rule]]
id = \"chat\"
purposes = [\"service.core\"]
basis = \"contract\"
categories = [\"content\"]
"
    ));
    guard
        .record(&event(r#"{"type":"end","subject":"u1","purposes":["service"],"at":"2026-04-01T00:00:00Z"}"#))
        .unwrap();
    let ask = |purpose: &str, category: &str, action: &str, collected: &str, at: &str| {
        let mut r = request(&format!(
            r#"{{"subject":"u1","purpose":"{purpose}","categories":["{category}"],"action":"{action}","collected_at":"{collected}"}}"#
        ));
        r.at = None;
        guard.what_if(&r, time(at)).code().as_str()
    };
    let before = "2026-03-01T00:00:00Z";
    // Within the grace: kept.
    assert_eq!(ask("service.payment", "financial.transaction", "use", before, "2026-04-20T00:00:00Z"), "legal_basis");
    // After it: expired, but deleting is what is due.
    assert_eq!(
        ask("service.payment", "financial.transaction", "use", before, "2026-05-02T00:00:00Z"),
        "retention_expired"
    );
    // Since issue 27 the deletion is allowed as owed (`deletion_due`, reason
    // `purpose_ended`), not as the rule's own `delete`.
    assert_eq!(
        ask("service.payment", "financial.transaction", "delete", before, "2026-05-02T00:00:00Z"),
        "deletion_due"
    );
    // Data of a new period, collected after the end.
    assert_eq!(
        ask("service.payment", "financial.transaction", "use", "2026-04-10T00:00:00Z", "2026-05-02T00:00:00Z"),
        "legal_basis"
    );
    // No grace on the rule: expired at the end.
    assert_eq!(ask("service.core", "content.chat", "use", before, "2026-04-01T00:00:00Z"), "retention_expired");
    assert_eq!(ask("service.core", "content.chat", "use", before, "2026-03-31T00:00:00Z"), "legal_basis");
    // An unknown purpose is refused, as in a withdrawal.
    assert!(guard
        .record(&event(r#"{"type":"end","subject":"u1","purposes":["service.nothing"],"at":"2026-04-01T00:00:00Z"}"#))
        .is_err());
}
