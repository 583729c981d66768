//! Selects training data under the EXMO policy (`examples/policies/exmo.toml`).
//!
//! Its `exmo.training` rule lets `ai_training` use `behavior` data only when it is
//! anonymised, kept first party, and only for subjects who gave *separate* consent
//! (off by default, revocable at any time). The app seals every behaviour log at
//! collection; the training job anonymises them and asks the guard, record by record,
//! which it may use. A subject who withdraws mid-run is dropped from the next batch.
//!
//! Run with `cargo run --example training_pipeline`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use consent_guard::sealed::{self, Access, Personal, SealedAccess, Tags, Tally};
use consent_guard::{
    ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, MemoryAuditSink, Policy, Purpose,
};

/// A behaviour log as the app collects it: identifiable.
struct Interaction {
    #[expect(dead_code, reason = "collected by the app, dropped by anonymisation")]
    user: Arc<str>,
    action: &'static str,
    task: u32,
    at: DateTime<Utc>,
}

/// What the model trains on: no user id, no task id, the hour only.
struct Features {
    action: &'static str,
    hour: u32,
}

/// Anonymisation: drops everything that points back to the user or the task.
fn anonymise(event: Interaction) -> Features {
    use chrono::Timelike;
    Features { action: event.action, hour: event.at.hour() }
}

/// A shortcut some job might take: keeps the task id, which can be joined back to the
/// user, so it is only pseudonymised.
fn pseudonymise(event: Interaction) -> (u32, Features) {
    (event.task, anonymise(event))
}

const EVENTS: &str = r#"
{"type":"grant","subject":"alice","purposes":["ai_training"],"level":"separate","at":"2026-03-01T00:00:00Z"}
{"type":"grant","subject":"bob","purposes":["personalization","ai_training"],"level":"explicit","at":"2026-03-01T00:00:00Z"}
{"type":"grant","subject":"dave","purposes":["ai_training"],"level":"separate","at":"2026-03-01T00:00:00Z"}
{"type":"subject","subject":"erin","birth_date":"2014-02-01"}
{"type":"grant","subject":"erin","purposes":["ai_training"],"level":"separate","at":"2026-03-01T00:00:00Z"}
{"type":"grant","subject":"frank","purposes":["ai_training"],"level":"separate","at":"2025-03-01T00:00:00Z","expires_at":"2026-03-01T00:00:00Z"}
"#;

/// Who is in the data set and what they agreed to.
const SUBJECTS: [(&str, &str); 6] = [
    ("alice", "separate consent to training"),
    ("bob", "explicit consent only (training needs separate)"),
    ("carol", "never asked"),
    ("dave", "separate consent; withdraws during the run"),
    ("erin", "12 years old, consented without a guardian"),
    ("frank", "separate consent that expired in March"),
];

const ACTIONS: [&str; 3] = ["create_task", "edit_preferences", "generate_content"];

/// One batch as the app collected it: each subject's interactions, sealed at
/// collection, plus one chat message that slipped into the behaviour stream.
fn collect(subjects: &[Arc<str>], start: DateTime<Utc>, first_task: u32) -> Vec<Personal<Interaction>> {
    let mut records = Vec::new();
    let mut task = first_task;
    for (i, user) in subjects.iter().enumerate() {
        for (j, action) in ACTIONS.iter().enumerate() {
            let at = start + Duration::minutes((i * 7 + j * 20) as i64);
            task += 1;
            let event = Interaction { user: user.clone(), action, task, at };
            records.push(Tags::new(user.clone(), DataCategory::BEHAVIOR_LOG, at).seal(event));
        }
    }
    if let Some(alice) = subjects.first() {
        let chat = Interaction { user: alice.clone(), action: "chat_message", task, at: start };
        records.push(Tags::new(alice.clone(), DataCategory::CONTENT_CHAT, start).seal(chat));
    }
    records
}

/// The job's preprocessing: anonymises every record (tags follow), except the second
/// of each batch, which takes the pseudonymising shortcut.
fn preprocess(records: Vec<Personal<Interaction>>) -> Vec<Personal<Features>> {
    records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            if i == 1 {
                record.deidentify(Deidentification::Pseudonymized, pseudonymise).map(|(_, features)| features)
            } else {
                record.deidentify(Deidentification::Anonymized, anonymise)
            }
        })
        .collect()
}

fn run_batch(guard: &Guard, label: &str, records: &[Personal<Features>], access: &Access<'_>) -> Tally {
    println!("\n{label}: {} records", records.len());
    let mut selection = sealed::select(guard, records, access);
    for features in selection.by_ref() {
        println!("  kept      {:<17} at {:02}h", features.action, features.hour);
    }
    let tally = selection.into_tally();
    println!("  {tally}");
    for (code, count) in tally.reasons() {
        println!("  withheld  {count:>2} × {code}");
    }
    tally
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml"))?;
    if let Some(rule) = policy.rule_for(&Purpose::AI_TRAINING_MODEL_TRAINING) {
        println!("policy {} {}: rule {} governs {}", policy.name(), policy.version(), rule.id, Purpose::AI_TRAINING);
    }
    let day: DateTime<Utc> = "2026-06-01T09:00:00Z".parse()?;
    let clock = Arc::new(FixedClock::new(day));
    let audit = Arc::new(MemoryAuditSink::new());
    let guard = Guard::builder(policy).clock(clock.clone()).audit(audit.clone()).build()?;
    for line in EVENTS.lines().filter(|l| !l.trim().is_empty()) {
        guard.record(&serde_json::from_str::<ConsentEvent>(line)?)?;
    }
    for (subject, consent) in SUBJECTS {
        println!("  {subject:<6} {consent}");
    }
    // One shared id per subject: sealing a record allocates nothing more.
    let subjects: Vec<Arc<str>> = SUBJECTS.iter().map(|(s, _)| Arc::from(*s)).collect();

    let training = Access::new(Purpose::AI_TRAINING_MODEL_TRAINING);

    clock.set(day + Duration::hours(1));
    let batch1 = preprocess(collect(&subjects, day - Duration::hours(1), 0));
    let mut total = run_batch(&guard, "batch 1 (10:00)", &batch1, &training);

    // Dave turns training off in the app at 11:30; the guard knows at once.
    let withdrawal = r#"{"type":"withdraw","subject":"dave","purposes":["ai_training"],"at":"2026-06-01T11:30:00Z"}"#;
    guard.record(&serde_json::from_str::<ConsentEvent>(withdrawal)?)?;
    println!("\n11:30 dave withdraws consent to ai_training");

    clock.set(day + Duration::hours(3));
    let batch2 = preprocess(collect(&subjects, day + Duration::hours(1), 100));
    total += run_batch(&guard, "batch 2 (12:00)", &batch2, &training);

    // Batch 1's records of dave, asked again now, are refused too: the grant is gone.
    if let Some(dave) = batch1.iter().find(|r| r.subject() == "dave") {
        if let Err(denied) = guard.open(dave, &training) {
            println!("\nre-reading batch 1 for dave: {} ({})", denied.code(), denied.message());
        }
    }

    println!("\ntotal: {total}");
    println!("{} decisions audited", audit.len());
    Ok(())
}
