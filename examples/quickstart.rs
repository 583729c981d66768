//! Loads the EXMO policy, keeps consent in an embedded store, and prints allowed and
//! denied decisions with their reasons.
//!
//! Run with `cargo run --example quickstart`. The first run records the consent events
//! in `target/quickstart.redb`; a second run replays them from there and decides the
//! same. Every decision is recorded in the durable audit log `target/quickstart-audit/`
//! (synced: a decision is returned only once its record is on disk); check it with
//! `consent-guard audit verify target/quickstart-audit`. Delete both to start over.

use consent_guard::audit::{AuditLog, Durability};
use consent_guard::store::{ConsentStore, RedbConsentStore};
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml"))?;
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target)?;
    let store = RedbConsentStore::open(target.join("quickstart.redb"))?;
    let replayed = store.events_since(0, usize::MAX)?.len();
    let audit = std::sync::Arc::new(AuditLog::open(target.join("quickstart-audit"), Durability::Synced)?);
    let before = audit.head()?.seq;
    let guard = Guard::builder(policy)
        .clock(FixedClock::new("2026-06-01T00:00:00Z".parse()?))
        .audit(audit.clone())
        .store(store)
        .build()?;
    println!("policy {} {}", guard.policy().name(), guard.policy().version());
    println!("replayed {replayed} consent events from target/quickstart.redb");
    let first_run = replayed == 0;

    // Alice gives the separate consent EXMO asks for training; Bob only an explicit one
    // for ads; a child opts in without a guardian. Each event is durable in the store
    // before the guard applies it.
    let events = [
        r#"{"type":"grant","subject":"alice","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}"#,
        r#"{"type":"grant","subject":"bob","purposes":["advertising"],"level":"explicit","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}"#,
        r#"{"type":"subject","subject":"carol","birth_date":"2016-03-01"}"#,
        r#"{"type":"grant","subject":"carol","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}"#,
    ];
    if first_run {
        for line in events {
            guard.record(&serde_json::from_str::<ConsentEvent>(line)?)?;
        }
        println!("recorded {} consent events", events.len());
    }

    // Decisions as of 1 April, before Alice withdraws.
    let april = "2026-04-01T00:00:00Z".parse()?;
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
        ("carol (10): training without a guardian", training("carol")),
        ("alice: selling data to advertisers", AccessRequest::new("alice", Purpose::MARKETING_CAMPAIGNS, behaviour)),
    ];
    for (label, request) in requests {
        print(label, guard.check(&request.at(april)));
    }

    // Alice withdraws on 1 May: checks from then on deny.
    if first_run {
        let withdraw =
            r#"{"type":"withdraw","subject":"alice","purposes":["ai_training"],"at":"2026-05-01T00:00:00Z"}"#;
        guard.record(&serde_json::from_str::<ConsentEvent>(withdraw)?)?;
        println!("recorded alice's withdrawal");
    }
    print("alice: training after withdrawal", guard.check(&training("alice")));

    let head = audit.flush()?;
    println!("{} decisions audited; audit log head {head} (keep it to verify the log later)", head.seq - before);
    println!("alice's history holds {} events (proof of consent)", guard.history("alice")?.events().len());
    if first_run {
        println!("run again: consent persists in target/quickstart.redb");
    }
    Ok(())
}

fn print(label: &str, decision: consent_guard::Decision<'_>) {
    let verdict = if decision.allowed() { "ALLOW" } else { "DENY " };
    println!("{verdict} {:<28} {label}\n       {}", decision.code().as_str(), decision.message());
}
