//! Property tests of the guard's invariants, over the five seed policies and random
//! requests and consent histories.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests fail loudly")]

use chrono::{DateTime, Duration, TimeZone, Utc};
use consent_guard::consent::{EraseEvent, GrantEvent, SubjectEvent, WithdrawEvent};
use consent_guard::policy::PolicyDocument;
use consent_guard::{
    AccessRequest, Action, ConsentEvent, ConsentLevel, DataCategory, Deidentification, FixedClock, Guard, LegalBasis,
    MemoryAuditSink, Policy, PolicyBuilder, Purpose, ReasonCode, Recipient, RecipientKind, Region, Signals,
};
use proptest::prelude::*;

const SEEDS: [&str; 5] = ["exmo", "kmengai", "aimate", "nexacore", "aiart"];

fn seed(name: &str) -> Policy {
    Policy::from_toml_file(format!("{}/examples/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The decision for a request at the time it names: `check` decides at the guard's
/// clock, so a question about another time is a what-if.
fn at_its_time<'a>(guard: &'a Guard, request: &'a AccessRequest<'_>) -> consent_guard::Decision<'a> {
    match request.at {
        Some(at) => guard.what_if(request, at),
        None => guard.check(request),
    }
}

fn guard(policy: Policy) -> Guard {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    Guard::builder(policy).clock(FixedClock::new(now)).build().unwrap()
}

fn purposes() -> impl Strategy<Value = Purpose> {
    let all: Vec<Purpose> = Purpose::builtins().collect();
    prop::sample::select(all)
}

fn categories() -> impl Strategy<Value = Vec<DataCategory>> {
    let all: Vec<DataCategory> = DataCategory::builtins().collect();
    prop::sample::subsequence(all.clone(), 1..4)
}

fn times() -> impl Strategy<Value = DateTime<Utc>> {
    // 2025-01-01 .. 2027-01-01, whole seconds.
    (1_735_689_600i64..1_798_761_600).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

fn levels() -> impl Strategy<Value = ConsentLevel> {
    prop::sample::select(vec![ConsentLevel::Implied, ConsentLevel::Explicit, ConsentLevel::Separate])
}

fn recipient_kinds() -> impl Strategy<Value = RecipientKind> {
    prop::sample::select(RecipientKind::ALL.to_vec())
}

/// Requests over every dimension; the recipient is unnamed so that every policy knows it.
fn requests(subject: &'static str) -> impl Strategy<Value = AccessRequest<'static>> {
    (
        purposes(),
        categories(),
        prop::sample::select(Action::ALL.to_vec()),
        recipient_kinds(),
        prop::sample::select(vec![
            Deidentification::None,
            Deidentification::Pseudonymized,
            Deidentification::Anonymized,
        ]),
        prop::sample::select(vec!["CN", "US", "SG"]),
        any::<(bool, bool)>(),
        times(),
        prop::option::of(times()),
        any::<bool>(),
    )
        .prop_map(move |(purpose, cats, action, kind, deid, region, (dnt, gpc), at, collected, same_session)| {
            let mut request = AccessRequest::new(subject, purpose, cats)
                .action(action)
                .recipient(Recipient::kind(kind))
                .deidentification(deid)
                .region(Region::new(region).unwrap())
                .signals(Signals::default().with_dnt(dnt).with_gpc(gpc))
                .session("s1")
                .at(at);
            if let Some(collected) = collected {
                let session = if same_session { "s1" } else { "s0" };
                request = request.collected(collected, Some(session.into()));
            }
            request
        })
}

fn grant(
    subject: &str,
    purposes: Vec<Purpose>,
    level: ConsentLevel,
    at: DateTime<Utc>,
    by_guardian: bool,
) -> ConsentEvent {
    GrantEvent::new(subject, purposes, level, at).by_guardian(by_guardian).into()
}

/// The purposes a policy governs by a consent rule, picked by an arbitrary index (so
/// that no case is rejected).
fn consent_purpose(policy: &Policy, pick: usize) -> Purpose {
    let governed: Vec<Purpose> = Purpose::builtins()
        .filter(|p| policy.rule_for(p).is_some_and(|rule| rule.basis == LegalBasis::Consent))
        .collect();
    governed[pick % governed.len()].clone()
}

/// A request the rule governing `purpose` permits in every dimension, so that only
/// the subject's consent can deny it.
fn permitted_request(
    policy: &Policy,
    purpose: Purpose,
    subject: &'static str,
    at: DateTime<Utc>,
) -> AccessRequest<'static> {
    let rule = policy.rule_for(&purpose).unwrap();
    let action = rule.actions.as_ref().map_or(Action::Use, |a| a[0]);
    let kind = rule
        .recipients
        .as_ref()
        .and_then(|list| list.iter().find_map(|r| RecipientKind::from_name(r)))
        .unwrap_or(RecipientKind::FirstParty);
    let region = rule.regions.as_ref().map_or(policy.home_region(), |r| r[0]);
    AccessRequest::new(subject, purpose, vec![rule.categories[0].clone()])
        .action(action)
        .recipient(Recipient::kind(kind))
        .deidentification(Deidentification::Anonymized)
        .region(region)
        .session("s1")
        .collected(at, Some("s1".into()))
        .at(at)
}

/// The age under which the policy treats subjects as minors, if it has one.
fn minor_age(policy: &Policy) -> Option<u8> {
    let minors = policy.document().minors.as_ref()?;
    minors.guardian_consent_under.or(minors.not_served_under)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// A withdrawal after a grant always denies, whatever the level, the purpose or the
    /// parent withdrawn: the same request is allowed just before the withdrawal.
    #[test]
    fn withdrawal_after_a_grant_always_denies(
        seed_index in 0..SEEDS.len(),
        pick in any::<usize>(),
        granted_at in times(),
        withdraw_after in 1i64..10_000_000,
        check_after in 0i64..10_000_000,
        withdraw_parent in any::<bool>(),
    ) {
        let policy = seed(SEEDS[seed_index]);
        let purpose = consent_purpose(&policy, pick);
        let withdrawn = if withdraw_parent { purpose.parent().unwrap_or(purpose.clone()) } else { purpose.clone() };
        let guard = guard(policy);
        let withdrawn_at = granted_at + Duration::seconds(withdraw_after);
        guard.record(&grant("s", vec![purpose.clone()], ConsentLevel::Separate, granted_at, false)).unwrap();
        let before = permitted_request(guard.policy(), purpose.clone(), "s", withdrawn_at - Duration::seconds(1));
        let control = at_its_time(&guard, &before);
        prop_assert!(control.allowed(), "control request denied: {:?} {}", control, control.message());
        guard.record(&WithdrawEvent::new("s", vec![withdrawn], withdrawn_at).into()).unwrap();
        let after = permitted_request(guard.policy(), purpose, "s", withdrawn_at + Duration::seconds(check_after));
        let decision = at_its_time(&guard, &after);
        prop_assert!(!decision.allowed() || decision.code() == ReasonCode::DeidentifiedExempt, "allowed after withdrawal: {:?}", decision);
        prop_assert!(decision.code() == ReasonCode::ConsentWithdrawn || decision.code() == ReasonCode::DeidentifiedExempt, "{:?}", decision);
    }

    /// A subject under the policy's guardian age never passes a consent rule without a
    /// guardian's grant.
    #[test]
    fn a_child_never_passes_without_guardian_consent(
        seed_index in 0..SEEDS.len(),
        request in requests("child"),
        pick in any::<usize>(),
        grants in prop::collection::vec((levels(), times()), 0..4),
        age_fraction in 0.0f64..1.0,
    ) {
        let policy = seed(SEEDS[seed_index]);
        let mut request = request;
        request.purpose = consent_purpose(&policy, pick);
        let Some(age) = minor_age(&policy) else { return Ok(()) };
        let guard = guard(policy);
        let at = request.at.unwrap();
        // Strictly younger than the policy's age: at most age years less two days.
        let age_days = ((f64::from(age) * 365.0 - 2.0) * age_fraction) as i64;
        let birth = (at - Duration::days(age_days)).date_naive();
        guard.record(&SubjectEvent::new("child").birth_date(birth).into()).unwrap();
        for (level, granted_at) in grants {
            guard.record(&grant("child", vec![request.purpose.clone()], level, granted_at, false)).unwrap();
        }
        let decision = at_its_time(&guard, &request);
        prop_assert_ne!(decision.code(), ReasonCode::ConsentGiven, "{:?}", decision);
    }

    /// A policy without rules allows nothing.
    #[test]
    fn an_empty_policy_allows_nothing(request in requests("anyone"), level in levels(), at in times()) {
        let policy = PolicyBuilder::new("empty", "1.0", Region::new("CN").unwrap()).build().unwrap();
        let guard = guard(policy);
        guard.record(&grant("anyone", vec![request.purpose.clone()], level, at, true)).unwrap();
        let decision = at_its_time(&guard, &request);
        prop_assert_eq!(decision.code(), ReasonCode::NoRule);
        prop_assert!(!decision.allowed());
    }

    /// After erasure only `compliance.*` purposes on a non-consent basis pass, and a
    /// `delete`, which is owed (`deletion_due`, issue 27).
    #[test]
    fn an_erased_subject_is_denied_unless_compliance_requires(
        seed_index in 0..SEEDS.len(),
        request in requests("gone"),
        level in levels(),
        granted_at in times(),
        erased_before in 0i64..10_000_000,
    ) {
        let policy = seed(SEEDS[seed_index]);
        let exempt = Purpose::COMPLIANCE.covers(&request.purpose)
            && policy.rule_for(&request.purpose).is_some_and(|r| r.basis != LegalBasis::Consent);
        let guard = guard(policy);
        let at = request.at.unwrap();
        guard.record(&grant("gone", vec![request.purpose.clone()], level, granted_at, true)).unwrap();
        guard.record(&EraseEvent::new("gone", at - Duration::seconds(erased_before)).into()).unwrap();
        let decision = at_its_time(&guard, &request);
        if !exempt && request.action == Action::Delete {
            let owed = [ReasonCode::DeletionDue, ReasonCode::NoRule, ReasonCode::PurposeTooBroad];
            prop_assert!(owed.contains(&decision.code()), "{:?}", decision);
        } else if !exempt {
            prop_assert!(!decision.allowed(), "{:?}", decision);
            let before_erasure = [ReasonCode::SubjectErased, ReasonCode::NoRule, ReasonCode::PurposeTooBroad];
            prop_assert!(before_erasure.contains(&decision.code()), "{:?}", decision);
        }
    }

    /// Requests, events and decisions survive a JSON round trip unchanged.
    #[test]
    fn requests_events_and_decisions_round_trip(
        seed_index in 0..SEEDS.len(),
        request in requests("u1"),
        level in levels(),
        at in times(),
        by_guardian in any::<bool>(),
    ) {
        let json = serde_json::to_string(&request).unwrap();
        let back: AccessRequest<'_> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &request);

        let event = grant("u1", vec![request.purpose.clone()], level, at, by_guardian);
        let json = serde_json::to_string(&event).unwrap();
        prop_assert_eq!(serde_json::from_str::<ConsentEvent>(&json).unwrap(), event.clone());

        let guard = guard(seed(SEEDS[seed_index]));
        guard.record(&event).unwrap();
        let decision = at_its_time(&guard, &request);
        let json = serde_json::to_string(&decision).unwrap();
        let back: consent_guard::Decision<'_> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, decision);
    }

    /// A prepared access answers, for every subject, exactly what `check` answers for
    /// the same request: code, basis, clause, message, and the audit record.
    #[test]
    fn a_prepared_check_answers_what_check_answers(
        seed_index in 0..SEEDS.len(),
        request in requests("template"),
        history in prop::collection::vec(
            (0..3usize, any::<bool>(), purposes(), levels(), times(), any::<bool>(), prop::option::of(times())),
            0..8,
        ),
        birth_years in prop::option::of(1u32..30),
    ) {
        let sink = std::sync::Arc::new(MemoryAuditSink::new());
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let guard = Guard::builder(seed(SEEDS[seed_index])).clock(FixedClock::new(now)).audit(sink.clone()).build().unwrap();
        let subjects = ["s0", "s1", "s2"];
        if let Some(years) = birth_years {
            let birth = (now - Duration::days(i64::from(years) * 365)).date_naive();
            guard.record(&SubjectEvent::new("s0").birth_date(birth).into()).unwrap();
        }
        for (who, withdraw, purpose, level, at, by_guardian, expires_at) in history {
            let subject = subjects[who];
            let event = if withdraw {
                ConsentEvent::from(WithdrawEvent::new(subject, vec![purpose], at))
            } else {
                let mut grant = GrantEvent::new(subject, vec![purpose], level, at).by_guardian(by_guardian);
                grant.expires_at = expires_at.filter(|e| *e > at);
                grant.into()
            };
            // Events the policy refuses are skipped: the property is about the answers.
            let _ = guard.record(&event);
        }
        let prepared = guard.prepare(&request);
        for subject in subjects.into_iter().chain(["unknown"]) {
            let mut plain = request.clone();
            plain.subject = subject.into();
            let expected = guard.check(&plain);
            let decision = prepared.check(subject);
            prop_assert_eq!(&decision, &expected);
            prop_assert_eq!(decision.message(), expected.message());
            prop_assert_eq!(serde_json::to_string(&decision).unwrap(), serde_json::to_string(&expected).unwrap());
        }
        let records = sink.records();
        prop_assert_eq!(records.len(), 8);
        for pair in records.chunks(2) {
            prop_assert_eq!(&pair[0], &pair[1]);
        }
    }

    /// Loading arbitrary text, or TOML made of policy-like fragments, never panics.
    #[test]
    fn loading_arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = Policy::from_toml_str(&text, "fuzz.toml");
        let _ = Policy::lint_toml(&text, "fuzz.toml");
    }

    #[test]
    fn loading_policy_like_fragments_never_panics(fragments in prop::collection::vec(prop::sample::select(vec![
        "[policy]\n", "name = \"p\"\n", "version = \"1.0\"\n", "version = \"x\"\n", "home_region = \"CN\"\n",
        "home_region = \"C\"\n", "[[rule]]\n", "id = \"r\"\n", "purposes = [\"ai_training\"]\n", "purposes = [\"nope.x\"]\n",
        "basis = \"consent\"\n", "basis = \"contract\"\n", "level = \"explicit\"\n", "categories = [\"behavior\"]\n",
        "categories = []\n", "retention = \"30d\"\n", "retention = \"0d\"\n", "retention = \"d\"\n", "[minors]\n",
        "guardian_consent_under = 14\n", "not_served_under = 200\n", "[recipients.x]\n", "kind = \"processor\"\n",
        "recipients = [\"x\", \"y\"]\n", "transfer_regions = [\"*\", \"CN\"]\n", "changed_in = \"9.9\"\n",
        "[vocabulary]\n", "purposes = [\"service.core.x\", \"a.b\"]\n", "default = \"opt_out\"\n", "=\n", "\"\n", "日本\n",
    ]), 0..24)) {
        let text: String = fragments.concat();
        let _ = Policy::from_toml_str(&text, "fuzz.toml");
        let _ = Policy::lint_toml(&text, "fuzz.toml");
    }
}

/// Every seed policy's document survives TOML and JSON round trips, and compiles to a
/// policy that decides the same.
#[test]
fn seed_policies_round_trip_through_toml_and_json() {
    for name in SEEDS {
        let policy = seed(name);
        let document = policy.document().clone();
        let toml_text = toml::to_string(&document).unwrap();
        let from_toml: PolicyDocument = toml::from_str(&toml_text).unwrap();
        assert_eq!(from_toml, document, "{name} via TOML");
        let json = serde_json::to_string(&document).unwrap();
        let from_json: PolicyDocument = serde_json::from_str(&json).unwrap();
        assert_eq!(from_json, document, "{name} via JSON");
        let recompiled = Policy::compile(from_json, name).unwrap();
        assert_eq!(recompiled.rules(), policy.rules());
    }
}
