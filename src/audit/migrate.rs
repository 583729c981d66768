//! Migration of a format-2 audit log (plain subject ids) into a new format-3 log
//! (pseudonyms): `consent-guard audit migrate --from OLD --to NEW --store S`.
//!
//! The old log is verified first; every committed record is then written, in order,
//! into a new log through [`AuditLog`], which puts each subject's pseudonym under its
//! key in the store where the id was. A subject the store has erased (it has a
//! tombstone) is not given a key in the store: its records are written under a fresh
//! key that is thrown away when the migration ends, so nobody can link them to it.
//!
//! The new log is a new chain: anchors (heads) taken of the old log do not apply to
//! it. The old directory still holds plain ids; deleting it is the operator's job
//! (the function never deletes anything).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::segment::{self, DirVerdict, Format, Head};
use super::{AuditLog, AuditLogOptions, AuditRecord, AuditSink, Durability};
use crate::error::StoreError;
use crate::keys::{MemorySubjectKeys, SubjectKey, SubjectKeys, Tombstones};

/// Why a migration did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The old log could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The old log's directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The old log is not one that can be migrated: not a format-2 log, or it does
    /// not verify.
    #[error("{path}: {reason}")]
    Old {
        /// The old log's directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The new log could not be written (including: the store's keys could not be had).
    #[error("{path}: {reason}")]
    New {
        /// The new log's directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// What a migration did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migrated {
    /// The head of the old log, as verified.
    pub old_head: Head,
    /// The head of the new log.
    pub new_head: Head,
    /// Records written (every committed record of the old log).
    pub records: u64,
    /// Records of erased subjects, written under keys thrown away.
    pub unlinked: u64,
}

/// The keys a migration writes under: the store's for subjects it has not erased, and
/// keys of the migration's own, dropped at its end, for those it has.
struct MigrationKeys {
    store: Arc<dyn SubjectKeys>,
    tombstones: Tombstones,
    thrown_away: MemorySubjectKeys,
}

impl std::fmt::Debug for MigrationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationKeys").field("tombstones", &self.tombstones).finish_non_exhaustive()
    }
}

impl SubjectKeys for MigrationKeys {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        let (erased, kept): (Vec<&str>, Vec<&str>) =
            subjects.iter().partition(|subject| self.tombstones.erased_at(subject).is_some());
        let mut from_store = self.store.keys_for(&kept)?.into_iter();
        let mut thrown_away = self.thrown_away.keys_for(&erased)?.into_iter();
        let mut keys = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let key = if self.tombstones.erased_at(subject).is_some() { thrown_away.next() } else { from_store.next() };
            keys.push(key.ok_or_else(|| StoreError::new("the subject keys gave fewer keys than asked for"))?);
        }
        Ok(keys)
    }

    fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        if self.tombstones.erased_at(subject).is_some() {
            return Ok(None);
        }
        self.store.key_of(subject)
    }
}

/// Rewrites the format-2 log in `from` as a new format-3 log in `to` (created; it must
/// not hold a log yet), with pseudonyms under `keys` (the store's, `StoreKeys`), and
/// keys thrown away for the subjects `erased` names. `from` is verified first and
/// left as it is.
///
/// # Errors
///
/// When `from` cannot be read, is not a format-2 log or does not verify; when `to`
/// already holds a log; when a record cannot be written (the keys cannot be had, the
/// disk fails). A migration that fails leaves a partial new log: delete it and start
/// again.
pub fn migrate(
    from: impl AsRef<Path>,
    to: impl AsRef<Path>,
    keys: Arc<dyn SubjectKeys>,
    erased: Tombstones,
) -> Result<Migrated, MigrateError> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let read = |source| MigrateError::Read { path: from.to_path_buf(), source };
    let old = |reason: String| MigrateError::Old { path: from.to_path_buf(), reason };
    let new = |reason: String| MigrateError::New { path: to.to_path_buf(), reason };
    match segment::format_of(from).map_err(read)? {
        Some(Format::PlainIds) => {}
        Some(format) => return Err(old(format!("a log of format {format}: nothing to migrate"))),
        None => return Err(old("holds no audit log segment".to_owned())),
    }
    let old_head = match segment::verify_dir(from).map_err(read)? {
        DirVerdict::Intact { head, .. } | DirVerdict::TornTail { head, .. } => head,
        DirVerdict::Tampered { segment, line, reason } => {
            return Err(old(format!("does not verify (segment {segment} line {line}: {reason}); not migrated")))
        }
    };
    if to.exists() && segment::segments_in(to).map_err(|e| new(e.to_string()))? > 0 {
        return Err(new("already holds an audit log: migrate into a new directory".to_owned()));
    }
    let migration_keys =
        MigrationKeys { store: keys, tombstones: erased.clone(), thrown_away: MemorySubjectKeys::new() };
    // A store's keys may be slow to make (a durable write per batch): the queue waits
    // for the writer rather than fail the migration.
    let options = AuditLogOptions::new(Durability::BUFFERED)
        .full_timeout(std::time::Duration::from_secs(300))
        .subject_keys(Arc::new(migration_keys));
    let log = AuditLog::open_with(to, options).map_err(|e| new(e.to_string()))?;
    let mut failure: Option<String> = None;
    let mut records = 0u64;
    let mut erased_records = 0u64;
    let verdict = segment::for_each_record_of(from, &mut |format, record| {
        if failure.is_some() {
            return;
        }
        if format != Format::PlainIds {
            failure = Some(format!("{}: a segment of format {format} in a format-2 log", from.display()));
            return;
        }
        if erased.erased_at(&record.request.subject).is_some() {
            erased_records += 1;
        }
        let written = log.record_deferred(&AuditRecord { request: &record.request, decision: &record.decision });
        match written {
            Ok(()) => records += 1,
            Err(e) => failure = Some(e.to_string()),
        }
    })
    .map_err(read)?;
    if let DirVerdict::Tampered { segment, line, reason } = verdict {
        return Err(old(format!("changed while it was migrated (segment {segment} line {line}: {reason})")));
    }
    if let Some(reason) = failure {
        return Err(new(reason));
    }
    let new_head = log.close().map_err(|e| new(e.to_string()))?;
    if new_head.seq != records || records != old_head.seq {
        return Err(new(format!(
            "the new log holds {} records where the old one holds {}",
            new_head.seq, old_head.seq
        )));
    }
    match segment::verify_dir(to).map_err(|e| new(e.to_string()))? {
        DirVerdict::Intact { head, .. } if head == new_head => {}
        other => return Err(new(format!("the new log does not verify: {other:?}"))),
    }
    Ok(Migrated { old_head, new_head, records, unlinked: erased_records })
}
