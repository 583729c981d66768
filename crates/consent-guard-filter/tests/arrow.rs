//! The Arrow side: every subject column type, the row facts, typed errors for missing
//! or mistyped columns, no allocation per row, and the snapshot as an Arrow IPC file
//! with its watermark in the schema metadata.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray,
    TimestampNanosecondArray,
};
use consent_guard::filter::{Apply, FilterSpec, RowFacts};
use consent_guard::{
    AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose, ReasonCode,
};
use consent_guard_filter::{mask, metadata, MaskError};

const NOW: &str = "2026-03-01T00:00:00Z";

fn guard() -> Guard {
    let policy =
        Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/exmo.toml")).unwrap();
    let guard = Guard::builder(policy).clock(FixedClock::new(NOW.parse().unwrap())).build().unwrap();
    for subject in ["7", "alice"] {
        let grant = format!(
            r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z"}}"#
        );
        guard.record(&serde_json::from_str::<ConsentEvent>(&grant).unwrap()).unwrap();
    }
    guard
        .record(
            &serde_json::from_str::<ConsentEvent>(r#"{"type":"erase","subject":"bob","at":"2026-02-01T00:00:00Z"}"#)
                .unwrap(),
        )
        .unwrap();
    guard
}

fn training() -> AccessRequest<'static> {
    AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized)
}

fn bits(mask: &BooleanArray) -> Vec<bool> {
    assert_eq!(mask.null_count(), 0);
    mask.values().iter().collect()
}

#[test]
fn every_subject_column_type_is_read() {
    let guard = guard();
    let filter = guard.filter(FilterSpec::new(training(), RowFacts::new("user_id"))).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    let application = filter.apply(&snapshot, NOW.parse().unwrap(), Apply::Live).unwrap();
    let names = vec![Some("alice"), Some("bob"), None, Some("carol")];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(names.clone())),
        Arc::new(LargeStringArray::from(names.clone())),
        Arc::new(StringViewArray::from(names)),
    ];
    for column in columns {
        let batch = RecordBatch::try_from_iter([("user_id", column)]).unwrap();
        let masked = mask(&application, &batch).unwrap();
        assert_eq!(bits(&masked.mask), [true, false, false, false]);
        assert_eq!(masked.counts.get(ReasonCode::SubjectErased), 1);
        assert_eq!(masked.counts.get(ReasonCode::ConsentMissing), 2, "carol unknown, and the null subject");
    }
    let numbers =
        RecordBatch::try_from_iter([("user_id", Arc::new(Int64Array::from(vec![Some(7), Some(8), None])) as ArrayRef)])
            .unwrap();
    assert_eq!(bits(&mask(&application, &numbers).unwrap().mask), [true, false, false]);
}

#[test]
fn missing_and_mistyped_columns_are_typed_errors() {
    let guard = guard();
    let filter = guard.filter(FilterSpec::new(training(), RowFacts::new("user_id"))).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    let application = filter.apply(&snapshot, NOW.parse().unwrap(), Apply::Live).unwrap();
    let other = RecordBatch::try_from_iter([("uid", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)]).unwrap();
    assert!(matches!(mask(&application, &other), Err(MaskError::MissingColumn { fact: "subject", .. })));
    let floats =
        RecordBatch::try_from_iter([("user_id", Arc::new(arrow_array::Float64Array::from(vec![1.0])) as ArrayRef)])
            .unwrap();
    let error = mask(&application, &floats).unwrap_err();
    assert!(matches!(error, MaskError::ColumnType { fact: "subject", .. }), "{error}");
}

#[test]
fn the_retention_test_reads_any_timestamp_unit() {
    let policy = Policy::from_toml_str(
        r#"
[policy]
name = "r"
version = "1"
home_region = "CN"
storage_regions = ["CN"]

[[rule]]
id = "training"
purposes = ["ai_training"]
basis = "consent"
level = "explicit"
default = "opt_in"
categories = ["behavior"]
retention = "1d"
"#,
        "r.toml",
    )
    .unwrap();
    let guard = Guard::builder(policy).clock(FixedClock::new(NOW.parse().unwrap())).build().unwrap();
    let grant = r#"{"type":"grant","subject":"alice","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#;
    guard.record(&serde_json::from_str::<ConsentEvent>(grant).unwrap()).unwrap();
    let request = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..]);
    let filter = guard.filter(FilterSpec::new(request, RowFacts::new("user_id").collected_at("ts"))).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    let now: chrono::DateTime<chrono::Utc> = NOW.parse().unwrap();
    let application = filter.apply(&snapshot, now, Apply::Live).unwrap();
    let edge = now.timestamp_nanos_opt().unwrap() - 86_400_000_000_000;
    let times = vec![
        Some(edge),
        Some(edge - 1),
        Some(edge + 999_999),
        None,
        Some(now.timestamp_nanos_opt().unwrap() + 999_999),
        Some(now.timestamp_nanos_opt().unwrap() + 1_000_000),
    ];
    let batch = RecordBatch::try_from_iter([
        ("user_id", Arc::new(StringArray::from(vec!["alice"; 6])) as ArrayRef),
        ("ts", Arc::new(TimestampNanosecondArray::from(times).with_timezone("UTC")) as ArrayRef),
    ])
    .unwrap();
    let masked = mask(&application, &batch).unwrap();
    // At the limit, a nanosecond before it (floored to the millisecond before: past
    // it), within the millisecond, no time, within T's millisecond, the next one.
    assert_eq!(bits(&masked.mask), [true, false, true, false, true, false]);
    assert_eq!(masked.counts.get(ReasonCode::RetentionExpired), 3);
}

#[test]
fn the_kernel_does_not_allocate_per_row() {
    let guard = guard();
    let filter = guard.filter(FilterSpec::new(training(), RowFacts::new("user_id"))).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    let application = filter.apply(&snapshot, NOW.parse().unwrap(), Apply::Live).unwrap();
    let batch_of = |rows: usize| {
        let ids: Vec<i64> = (0..rows as i64).collect();
        RecordBatch::try_from_iter([("user_id", Arc::new(Int64Array::from(ids)) as ArrayRef)]).unwrap()
    };
    let (small, large) = (batch_of(10), batch_of(100_000));
    let _ = mask(&application, &small).unwrap();
    let few = allocation_counter::measure(|| {
        let _ = mask(&application, &small).unwrap();
    });
    let many = allocation_counter::measure(|| {
        let _ = mask(&application, &large).unwrap();
    });
    assert_eq!(few.count_total, many.count_total, "10 rows: {few:?}; 100,000 rows: {many:?}");
}

#[test]
fn the_snapshot_exports_as_arrow_ipc_with_its_watermark() {
    let guard = guard();
    // alice's purpose ended: her entry carries a cutoff.
    let end = r#"{"type":"end","subject":"alice","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}"#;
    guard.record(&serde_json::from_str::<ConsentEvent>(end).unwrap()).unwrap();
    let filter = guard.filter(FilterSpec::new(training(), RowFacts::new("user_id").collected_at("ts"))).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    let mut file = Vec::new();
    consent_guard_filter::write_snapshot_ipc(&snapshot, &mut file).unwrap();
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(file), None).unwrap();
    let schema = reader.schema();
    let meta = schema.metadata();
    assert_eq!(meta[metadata::AT], "2026-03-01T00:00:00.000Z");
    assert_eq!(meta[metadata::POSITION], "0");
    assert_eq!(meta[metadata::POLICY_VERSION], "1.0");
    assert_eq!(meta[metadata::UNKNOWN_FRESH], "consent_missing");
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 3);
    let batch = &batches[0];
    let subjects = batch.column_by_name("subject").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    let fresh = batch.column_by_name("fresh").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    let through = batch.column_by_name("ended_through_ms").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
    let ended = batch.column_by_name("ended").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    let ended_allowed = batch.column_by_name("ended_allowed").unwrap().as_any().downcast_ref::<BooleanArray>().unwrap();
    for row in 0..batch.num_rows() {
        let entry = snapshot.entry(subjects.value(row));
        let code = consent_guard_filter::code_named(fresh.value(row)).unwrap();
        assert_eq!(code, entry.fresh());
        let read = through.is_valid(row).then(|| {
            (through.value(row), consent_guard_filter::code_named(ended.value(row)).unwrap(), ended_allowed.value(row))
        });
        assert_eq!(read, entry.ended().map(|(cutoff, code)| (cutoff, code, code.is_allow())));
        assert_eq!(ended.is_valid(row), read.is_some());
        if subjects.value(row) == "alice" {
            let cutoff: chrono::DateTime<chrono::Utc> = "2026-02-01T00:00:00Z".parse().unwrap();
            assert_eq!(read, Some((cutoff.timestamp_millis(), ReasonCode::RetentionExpired, false)));
        }
    }
}
