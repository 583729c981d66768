//! Loads the EXMO policy, records consent, and prints allowed and denied decisions with
//! their reasons.
//!
//! Run with `cargo run --example quickstart`.

use consent_guard::{
    AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, MemoryAuditSink, Policy, Purpose,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml"))?;
    let audit = std::sync::Arc::new(MemoryAuditSink::new());
    let guard =
        Guard::builder(policy).clock(FixedClock::new("2026-06-01T00:00:00Z".parse()?)).audit(audit.clone()).build()?;
    println!("policy {} {}", guard.policy().name(), guard.policy().version());

    // Alice gives the separate consent EXMO asks for training; Bob only an explicit one
    // for ads; a child opts in without a guardian.
    let events = [
        r#"{"type":"grant","subject":"alice","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
        r#"{"type":"grant","subject":"bob","purposes":["advertising"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#,
        r#"{"type":"subject","subject":"carol","birth_date":"2016-03-01"}"#,
        r#"{"type":"grant","subject":"carol","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
    ];
    for line in events {
        guard.record(&serde_json::from_str::<ConsentEvent>(line)?)?;
    }

    let behaviour = &[DataCategory::BEHAVIOR_LOG][..];
    let training = |subject| {
        AccessRequest::new(subject, Purpose::AI_TRAINING_MODEL_TRAINING, behaviour)
            .deidentification(Deidentification::Anonymized)
    };
    let requests = [
        ("alice: training on anonymised logs", training("alice")),
        ("alice: training on identifiable logs", training("alice").deidentification(Deidentification::None)),
        ("bob: training without opting in", training("bob")),
        (
            "bob: personalised ads on explicit consent",
            AccessRequest::new("bob", Purpose::ADVERTISING_PERSONALIZED, behaviour),
        ),
        ("carol (9): training without a guardian", training("carol")),
        ("alice: selling data to advertisers", AccessRequest::new("alice", Purpose::MARKETING_CAMPAIGNS, behaviour)),
    ];
    for (label, request) in &requests {
        print(label, guard.check(request));
    }

    // Alice withdraws: the very next check denies.
    let withdraw = r#"{"type":"withdraw","subject":"alice","purposes":["ai_training"],"at":"2026-05-01T00:00:00Z"}"#;
    guard.record(&serde_json::from_str::<ConsentEvent>(withdraw)?)?;
    print("alice: training after withdrawal", guard.check(&training("alice")));

    println!("{} decisions audited", audit.len());
    Ok(())
}

fn print(label: &str, decision: consent_guard::Decision<'_>) {
    let verdict = if decision.allowed() { "ALLOW" } else { "DENY " };
    println!("{verdict} {:<28} {label}\n       {}", decision.code().as_str(), decision.message());
}
