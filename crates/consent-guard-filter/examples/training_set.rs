//! Builds a training set the EXMO policy allows: a 1,000,000-row Arrow IPC file of
//! behaviour logs in, the rows the guard allows out, counts by reason printed, and one
//! audit record for the whole build (the excluded subjects kept beside it).
//!
//! ```text
//! cargo run --release -p consent-guard-filter --example training_set [-- logs.arrow [out.arrow]]
//! ```
//!
//! Without an input file it writes one first (100,000 users: a third consented to
//! training, some of them withdrew since, some were erased, some are children whose
//! guardian did or did not consent).
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "an example")]

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use consent_guard::filter::{Apply, Counts, ExcludedSubjects, FilterSpec, RowFacts};
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose};

const USERS: u64 = 100_000;
const ROWS: usize = 1_000_000;
const NOW: &str = "2026-03-01T00:00:00Z";

fn event(json: String) -> ConsentEvent {
    serde_json::from_str(&json).unwrap()
}

/// The consent history of the users.
fn history() -> Vec<ConsentEvent> {
    let mut events = Vec::new();
    for n in 0..USERS {
        let user = format!("user-{n}");
        match n % 12 {
            0..=3 => events.push(event(format!(
                r#"{{"type":"grant","subject":"{user}","purposes":["ai_training"],"level":"explicit","at":"2026-01-05T00:00:00Z"}}"#
            ))),
            4 => {
                events.push(event(format!(
                    r#"{{"type":"grant","subject":"{user}","purposes":["ai_training"],"level":"explicit","at":"2026-01-05T00:00:00Z"}}"#
                )));
                events.push(event(format!(
                    r#"{{"type":"withdraw","subject":"{user}","purposes":["ai_training"],"at":"2026-02-10T00:00:00Z"}}"#
                )));
            }
            5 => events.push(event(format!(r#"{{"type":"erase","subject":"{user}","at":"2026-02-01T00:00:00Z"}}"#))),
            6 => {
                events.push(event(format!(r#"{{"type":"subject","subject":"{user}","age":12,"at":"2026-01-01T00:00:00Z"}}"#)));
                let by_guardian = n % 24 == 6;
                events.push(event(format!(
                    r#"{{"type":"grant","subject":"{user}","purposes":["ai_training"],"level":"separate","by_guardian":{by_guardian},"at":"2026-01-05T00:00:00Z"}}"#
                )));
            }
            _ => {} // never asked: training is off by default
        }
    }
    events
}

fn write_logs(path: &str) {
    let start = chrono::DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z").unwrap().timestamp_millis();
    let actions = ["task_created", "preference_set", "task_completed", "template_used"];
    let schema_batch = |offset: usize, len: usize| {
        let users: Vec<String> =
            (offset..offset + len).map(|i| format!("user-{}", (i as u64 * 7919) % USERS)).collect();
        let events: Vec<&str> = (offset..offset + len).map(|i| actions[i % actions.len()]).collect();
        let ts: Vec<i64> = (offset..offset + len).map(|i| start + (i as i64 % 2_000_000) * 1000).collect();
        RecordBatch::try_from_iter([
            ("user_id", Arc::new(StringArray::from(users)) as ArrayRef),
            ("event", Arc::new(StringArray::from(events)) as ArrayRef),
            ("ts", Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")) as ArrayRef),
        ])
        .unwrap()
    };
    let first = schema_batch(0, 1);
    let mut writer = FileWriter::try_new(File::create(path).unwrap(), &first.schema()).unwrap();
    for offset in (0..ROWS).step_by(250_000) {
        writer.write(&schema_batch(offset, 250_000.min(ROWS - offset))).unwrap();
    }
    writer.finish().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::env::temp_dir();
    let input = args.first().cloned().unwrap_or_else(|| dir.join("exmo-behaviour-logs.arrow").display().to_string());
    let output = args.get(1).cloned().unwrap_or_else(|| dir.join("exmo-training-set.arrow").display().to_string());
    if !std::path::Path::new(&input).exists() {
        write_logs(&input);
        println!("wrote {ROWS} rows of behaviour logs to {input}");
    }

    let policy =
        Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/exmo.toml")).unwrap();
    let now = NOW.parse().unwrap();
    let guard = Guard::builder(policy).clock(FixedClock::new(now)).build().unwrap();
    guard.record_all(&history()).unwrap();

    // Training on anonymized behaviour logs, as the seed words it.
    let training = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized);
    let filter = guard.filter(FilterSpec::new(training, RowFacts::new("user_id").collected_at("ts"))).unwrap();
    let started = Instant::now();
    let snapshot = guard.snapshot(&filter).unwrap();
    println!("snapshot: {} subjects in {:?}, watermark {:?}", snapshot.len(), started.elapsed(), snapshot.watermark());
    let application = filter.apply(&snapshot, now, Apply::Live).unwrap();

    let reader = FileReader::try_new(File::open(&input).unwrap(), None).unwrap();
    let mut writer: Option<FileWriter<File>> = None;
    let (mut counts, mut excluded) = (Counts::default(), ExcludedSubjects::default());
    let started = Instant::now();
    for batch in reader {
        let batch = batch.unwrap();
        let masked = consent_guard_filter::mask_noting(&application, &batch, &mut excluded).unwrap();
        counts.merge(&masked.counts);
        let kept = arrow_select::filter::filter_record_batch(&batch, &masked.mask).unwrap();
        let writer =
            writer.get_or_insert_with(|| FileWriter::try_new(File::create(&output).unwrap(), &kept.schema()).unwrap());
        writer.write(&kept).unwrap();
    }
    if let Some(mut writer) = writer {
        writer.finish().unwrap();
    }
    let elapsed = started.elapsed();
    // One record for the build; release nothing unless it is kept.
    let record = application.finish(&guard, &counts, Some(&excluded)).unwrap();
    let proof = format!("{output}.excluded.tsv");
    excluded.write_tsv(&record, &mut File::create(&proof).unwrap()).unwrap();

    println!("{} rows in, {} allowed, written to {output} ({elapsed:?})", counts.total(), counts.allowed());
    for (code, n) in counts.iter() {
        println!("  {:<28} {n:>9}", code.as_str());
    }
    println!("{} excluded subjects with their codes in {proof}", excluded.len());
    println!("audit record: {}", serde_json::to_string(&record).unwrap());
}
