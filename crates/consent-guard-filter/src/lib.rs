//! consent-guard where the data lives: the compiled filter of
//! [`consent_guard::filter`] applied to Arrow record batches and PostgreSQL tables.
//!
//! - [`mask`]: a mask kernel over a [`RecordBatch`] (subject column Utf8, LargeUtf8,
//!   Utf8View or Int64; collection time any Timestamp unit; session any string type)
//!   that answers every row from the guard's [`Snapshot`] and counts rows by reason
//!   code, allocating nothing per row.
//! - [`snapshot_batch`] / [`write_snapshot_ipc`]: the snapshot as an Arrow batch or IPC
//!   file, its watermark in the schema metadata.
//! - `sql` (feature `postgres`): the WHERE fragment and its parameters, the snapshot
//!   table loaded by COPY, and a row-level security policy.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{RecordBatch, StringArray, TimestampMillisecondArray};
//! use consent_guard::filter::{Apply, FilterSpec, RowFacts};
//! use consent_guard::{AccessRequest, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose, ReasonCode};
//!
//! let now: chrono::DateTime<chrono::Utc> = "2026-03-01T00:00:00Z".parse()?;
//! let policy = Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/exmo.toml"))?;
//! let guard = Guard::builder(policy).clock(FixedClock::new(now)).build()?;
//! let grant = r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;
//! guard.record(&serde_json::from_str(grant)?)?;
//! let training = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
//!     .deidentification(Deidentification::Anonymized);
//! let filter = guard.filter(FilterSpec::new(training, RowFacts::new("user_id").collected_at("ts")))?;
//! let snapshot = guard.snapshot(&filter)?;
//! let application = filter.apply(&snapshot, now, Apply::Live)?;
//!
//! let ts = now.timestamp_millis() - 86_400_000;
//! let batch = RecordBatch::try_from_iter([
//!     ("user_id", Arc::new(StringArray::from(vec!["u1", "u2"])) as _),
//!     ("ts", Arc::new(TimestampMillisecondArray::from(vec![ts, ts])) as _),
//! ])?;
//! let masked = consent_guard_filter::mask(&application, &batch)?;
//! assert_eq!(masked.mask.values().iter().collect::<Vec<_>>(), [true, false]);
//! assert_eq!(masked.counts.get(ReasonCode::ConsentMissing), 1);
//! application.finish(&guard, &masked.counts, None)?; // one audit record
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use consent_guard::filter::{Application, Counts, ExcludedSubjects, Snapshot};
use consent_guard::ReasonCode;

#[cfg(feature = "postgres")]
pub mod sql;

/// Why a batch cannot be masked: nothing is released.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaskError {
    /// The batch has no column of that name.
    #[error("the batch has no `{column}` column (the {fact} of the filter's row description)")]
    MissingColumn {
        /// The fact.
        fact: &'static str,
        /// The column named by the row description.
        column: String,
    },
    /// The column's type is not one the kernel reads for that fact.
    #[error("the `{column}` column is {found}; the {fact} must be {expected}")]
    ColumnType {
        /// The fact.
        fact: &'static str,
        /// The column.
        column: String,
        /// Its type.
        found: DataType,
        /// What the kernel reads.
        expected: &'static str,
    },
}

/// Rows looked up in the snapshot together.
const LANES: usize = 16;

/// A batch's mask and its counts by reason code.
#[derive(Debug)]
#[non_exhaustive]
pub struct Masked {
    /// `true` for each row the guard allows (never null).
    pub mask: BooleanArray,
    /// The rows by reason code.
    pub counts: Counts,
}

enum Subjects<'a> {
    Utf8(&'a StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
    Int64(&'a Int64Array),
}

/// A decimal `i64` in a stack buffer: an Int64 subject column holds ids whose text
/// form is the guard's subject id.
#[inline]
fn decimal(value: i64, buffer: &mut [u8; 20]) -> &str {
    let mut position = buffer.len();
    let mut rest = value.unsigned_abs();
    loop {
        position -= 1;
        if let Some(slot) = buffer.get_mut(position) {
            *slot = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 || position == 0 {
            break;
        }
    }
    if value < 0 && position > 0 {
        position -= 1;
        if let Some(slot) = buffer.get_mut(position) {
            *slot = b'-';
        }
    }
    buffer.get(position..).and_then(|digits| std::str::from_utf8(digits).ok()).unwrap_or_default()
}

impl Subjects<'_> {
    #[inline]
    fn get<'b>(&'b self, row: usize, buffer: &'b mut [u8; 20]) -> Option<&'b str> {
        match self {
            Subjects::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Subjects::Large(a) => a.is_valid(row).then(|| a.value(row)),
            Subjects::View(a) => a.is_valid(row).then(|| a.value(row)),
            Subjects::Int64(a) => a.is_valid(row).then(|| decimal(a.value(row), buffer)),
        }
    }
}

/// A Timestamp column read as whole milliseconds (floored, as the guard reads a
/// collection time).
struct Collected<'a> {
    values: &'a [i64],
    nulls: Option<&'a NullBuffer>,
    unit: TimeUnit,
}

impl Collected<'_> {
    #[inline]
    fn millis(&self, row: usize) -> Option<i64> {
        if self.nulls.is_some_and(|n| n.is_null(row)) {
            return None;
        }
        let value = *self.values.get(row)?;
        Some(match self.unit {
            TimeUnit::Second => value.saturating_mul(1000),
            TimeUnit::Millisecond => value,
            TimeUnit::Microsecond => value.div_euclid(1000),
            TimeUnit::Nanosecond => value.div_euclid(1_000_000),
        })
    }
}

enum Sessions<'a> {
    Utf8(&'a StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
}

impl Sessions<'_> {
    #[inline]
    fn get(&self, row: usize) -> Option<&str> {
        match self {
            Sessions::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Sessions::Large(a) => a.is_valid(row).then(|| a.value(row)),
            Sessions::View(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

fn column<'b>(batch: &'b RecordBatch, fact: &'static str, name: &str) -> Result<&'b ArrayRef, MaskError> {
    batch.column_by_name(name).ok_or_else(|| MaskError::MissingColumn { fact, column: name.to_owned() })
}

fn wrong(fact: &'static str, name: &str, array: &ArrayRef, expected: &'static str) -> MaskError {
    MaskError::ColumnType { fact, column: name.to_owned(), found: array.data_type().clone(), expected }
}

/// Masks a batch: for each row, whether the guard allows it, answered from the
/// application's snapshot at its time T; and the rows by reason code. See
/// [`consent_guard::filter`] for how a row is answered.
///
/// # Errors
///
/// When a column of the row description is missing or of a type it cannot read.
pub fn mask(application: &Application<'_>, batch: &RecordBatch) -> Result<Masked, MaskError> {
    run(application, batch, None)
}

/// As [`mask`], and notes each excluded row's subject with its code, to keep beside
/// the application's audit record.
///
/// # Errors
///
/// As [`mask`].
pub fn mask_noting(
    application: &Application<'_>,
    batch: &RecordBatch,
    excluded: &mut ExcludedSubjects,
) -> Result<Masked, MaskError> {
    run(application, batch, Some(excluded))
}

fn run(
    application: &Application<'_>,
    batch: &RecordBatch,
    mut excluded: Option<&mut ExcludedSubjects>,
) -> Result<Masked, MaskError> {
    let rows = application.filter().rows();
    let subject_array = column(batch, "subject", &rows.subject)?;
    let subjects = match subject_array.data_type() {
        DataType::Utf8 => Subjects::Utf8(subject_array.as_string::<i32>()),
        DataType::LargeUtf8 => Subjects::Large(subject_array.as_string::<i64>()),
        DataType::Utf8View => Subjects::View(subject_array.as_string_view()),
        DataType::Int64 => Subjects::Int64(subject_array.as_primitive::<Int64Type>()),
        _ => return Err(wrong("subject", &rows.subject, subject_array, "Utf8, LargeUtf8, Utf8View or Int64")),
    };
    // The collection time is read wherever the rows carry it: the row test may read it,
    // and an end of the purpose always does (a row collected after the subject's
    // cutoff is answered as if no end had been). The session only for its test.
    let needs = application.filter().row_test();
    let collected = match &rows.collected_at {
        Some(name) => {
            let array = column(batch, "collected_at", name)?;
            let (values, unit): (&[i64], TimeUnit) = match array.data_type() {
                DataType::Timestamp(TimeUnit::Second, _) => {
                    (array.as_primitive::<TimestampSecondType>().values(), TimeUnit::Second)
                }
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    (array.as_primitive::<TimestampMillisecondType>().values(), TimeUnit::Millisecond)
                }
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    (array.as_primitive::<TimestampMicrosecondType>().values(), TimeUnit::Microsecond)
                }
                DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                    (array.as_primitive::<TimestampNanosecondType>().values(), TimeUnit::Nanosecond)
                }
                _ => return Err(wrong("collected_at", name, array, "a Timestamp")),
            };
            Some(Collected { values, nulls: array.nulls(), unit })
        }
        None => None,
    };
    let sessions = match (&rows.collected_session, needs) {
        (Some(name), consent_guard::filter::RowTest::SameSession { .. }) => {
            let array = column(batch, "collected_session", name)?;
            Some(match array.data_type() {
                DataType::Utf8 => Sessions::Utf8(array.as_string::<i32>()),
                DataType::LargeUtf8 => Sessions::Large(array.as_string::<i64>()),
                DataType::Utf8View => Sessions::View(array.as_string_view()),
                _ => return Err(wrong("collected_session", name, array, "Utf8, LargeUtf8 or Utf8View")),
            })
        }
        _ => None,
    };
    let length = batch.num_rows();
    let mut bits = BooleanBufferBuilder::new(length);
    let mut counts = Counts::default();
    let snapshot = application.snapshot();
    // Rows go through the snapshot's index `LANES` at a time (`Snapshot::entries_of`):
    // with millions of subjects every lookup misses the cache, and the misses of
    // independent lookups overlap.
    let mut buffers = [[0u8; 20]; LANES];
    let mut first = 0;
    while first < length {
        let lanes = (length - first).min(LANES);
        let mut names: [Option<&str>; LANES] = [None; LANES];
        for (lane, (name, buffer)) in names.iter_mut().zip(buffers.iter_mut()).enumerate().take(lanes) {
            *name = subjects.get(first + lane, buffer);
        }
        let entries = snapshot.entries_of(&names);
        for (lane, (entry, subject)) in entries.iter().zip(&names).enumerate().take(lanes) {
            let row = first + lane;
            let at = collected.as_ref().and_then(|c| c.millis(row));
            let session = sessions.as_ref().and_then(|s| s.get(row));
            let code = application.code_of(*entry, at, session);
            let allowed = code.is_allow();
            bits.append(allowed);
            counts.add(code);
            if !allowed {
                if let (Some(excluded), Some(subject)) = (excluded.as_deref_mut(), subject) {
                    excluded.note(subject, code);
                }
            }
        }
        first += lanes;
    }
    Ok(Masked { mask: BooleanArray::new(bits.finish(), None), counts })
}

/// The metadata keys of [`snapshot_batch`]'s schema.
pub mod metadata {
    /// The store position reflected.
    pub const POSITION: &str = "consent_guard.watermark.position";
    /// The time answered for (RFC 3339).
    pub const AT: &str = "consent_guard.watermark.at";
    /// The policy version decided under.
    pub const POLICY_VERSION: &str = "consent_guard.policy_version";
    /// The unknown subject's code for a row that passes the row test.
    pub const UNKNOWN_FRESH: &str = "consent_guard.unknown.fresh";
    /// The unknown subject's code for a row that fails it.
    pub const UNKNOWN_STALE: &str = "consent_guard.unknown.stale";
}

/// The text of `code`, or null.
fn code_text(code: Option<ReasonCode>) -> Option<&'static str> {
    code.map(ReasonCode::as_str)
}

/// The snapshot as one batch: `subject`, `fresh` (code), `fresh_allowed`, `stale`,
/// `stale_allowed`, `until_ms` (null: never), and for a subject an end bears on
/// ([`SnapshotEntry::ended`](consent_guard::filter::SnapshotEntry::ended)) `ended_through_ms`
/// (the cutoff; `i64::MAX`: every row), `ended` and `ended_allowed` (all three null
/// otherwise); the watermark and the unknown subject's answers in the schema metadata
/// ([`metadata`]).
///
/// A row of a subject at T is answered `consent_state_unavailable` when `until_ms <=
/// T`, else `ended` when `ended_through_ms` is set and the row's collection time is
/// missing, at or before it, or after T; else `fresh` or `stale` by the row test.
///
/// # Errors
///
/// When Arrow refuses the batch (more than `i32::MAX` bytes of ids).
pub fn snapshot_batch(snapshot: &Snapshot) -> Result<RecordBatch, ArrowError> {
    let mut subjects = Vec::with_capacity(snapshot.len());
    let (mut fresh, mut fresh_allowed, mut stale, mut stale_allowed, mut until) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut through, mut ended, mut ended_allowed) = (Vec::new(), Vec::new(), Vec::new());
    for (subject, entry) in snapshot.iter() {
        subjects.push(subject);
        fresh.push(entry.fresh().as_str());
        fresh_allowed.push(entry.fresh().is_allow());
        stale.push(entry.stale().as_str());
        stale_allowed.push(entry.stale().is_allow());
        until.push((entry.until_millis() != i64::MAX).then_some(entry.until_millis()));
        let end = entry.ended();
        through.push(end.map(|(cutoff, _)| cutoff));
        ended.push(code_text(end.map(|(_, code)| code)));
        ended_allowed.push(end.map(|(_, code)| code.is_allow()));
    }
    let watermark = snapshot.watermark();
    let metadata: HashMap<String, String> = [
        (metadata::POSITION, watermark.position.to_string()),
        (metadata::AT, watermark.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        (metadata::POLICY_VERSION, snapshot.policy_version().to_owned()),
        (metadata::UNKNOWN_FRESH, snapshot.unknown().fresh().as_str().to_owned()),
        (metadata::UNKNOWN_STALE, snapshot.unknown().stale().as_str().to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let schema = Schema::new(vec![
        Field::new("subject", DataType::Utf8, false),
        Field::new("fresh", DataType::Utf8, false),
        Field::new("fresh_allowed", DataType::Boolean, false),
        Field::new("stale", DataType::Utf8, false),
        Field::new("stale_allowed", DataType::Boolean, false),
        Field::new("until_ms", DataType::Int64, true),
        Field::new("ended_through_ms", DataType::Int64, true),
        Field::new("ended", DataType::Utf8, true),
        Field::new("ended_allowed", DataType::Boolean, true),
    ])
    .with_metadata(metadata);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(subjects)),
            Arc::new(StringArray::from(fresh)),
            Arc::new(BooleanArray::from(fresh_allowed)),
            Arc::new(StringArray::from(stale)),
            Arc::new(BooleanArray::from(stale_allowed)),
            Arc::new(Int64Array::from(until)),
            Arc::new(Int64Array::from(through)),
            Arc::new(StringArray::from(ended)),
            Arc::new(BooleanArray::from(ended_allowed)),
        ],
    )
}

/// Writes the snapshot as an Arrow IPC file ([`snapshot_batch`]).
///
/// # Errors
///
/// When the batch cannot be built or the writer fails.
pub fn write_snapshot_ipc(snapshot: &Snapshot, out: impl std::io::Write) -> Result<(), ArrowError> {
    let batch = snapshot_batch(snapshot)?;
    let mut writer = arrow_ipc::writer::FileWriter::try_new(out, &batch.schema())?;
    writer.write(&batch)?;
    writer.finish()
}

/// The reason code of a name written by [`snapshot_batch`].
pub fn code_named(name: &str) -> Option<ReasonCode> {
    ReasonCode::ALL.iter().copied().find(|code| code.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimals_are_the_text_of_the_id() {
        let mut buffer = [0u8; 20];
        for value in [0, 7, -7, 1234567890, i64::MAX, i64::MIN] {
            assert_eq!(decimal(value, &mut buffer), value.to_string());
        }
    }
}
