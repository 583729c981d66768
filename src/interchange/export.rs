//! A subject's own export (PIPL art. 45, GDPR art. 15 and 20; issue 27 item 4): one
//! JSON document holding the subject's consent history from the store and every
//! decision about the subject from the audit log. `consent-guard export` and
//! `GET /v1/subjects/{id}/export` answer it; `docs/erasure.md` documents the format
//! and `consent-guard schema export` prints its JSON Schema.
//!
//! The audit log holds no subject id (format 3, [`crate::audit::segment`]): the
//! subject's records are the ones carrying its pseudonym under its key, which the
//! consent store keeps ([`crate::keys::SubjectKeys::key_of`], `store::StoreKeys`). A
//! subject without a key (erased, or never audited) has no decisions in its export,
//! and the export says so (`audit.subject_key` is `none`). Records of an older
//! format-2 log still name the plain id and are matched by it. In the export, every
//! decision names the subject by its id again: the document is given to the subject.
//!
//! The audit log is read whole and verified on the way: a log that does not verify
//! gives an export whose `audit.complete` is `false` (the records before the first
//! altered line are in it), and callers say so (the command exits 1, the service
//! answers `503`) rather than hand out a partial record as the whole.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{segment, DirVerdict, Format, OwnedAuditRecord};
use crate::consent::ConsentHistory;
use crate::keys::{Pseudonym, SubjectKey};

/// The `format` of every export of this version.
pub const FORMAT: &str = "consent-guard/subject-export/1";

/// One subject's export. `Debug` leaves the subject and its data out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SubjectExport {
    /// [`FORMAT`].
    pub format: String,
    /// The subject.
    pub subject: String,
    /// When the export was made.
    pub generated_at: DateTime<Utc>,
    /// Every consent event of the subject, in recorded order (as `history` prints it).
    pub history: ConsentHistory,
    /// Every decision about the subject in the audit log, in log order: the request as
    /// asked and the decision given (as `audit export` prints each record).
    pub decisions: Vec<OwnedAuditRecord>,
    /// What of the audit log was read.
    pub audit: AuditCoverage,
}

/// How much of the audit log an export covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditCoverage {
    /// `intact`, `torn_tail` (intact; a crash left uncommitted bytes at the end),
    /// `tampered` (records after the first altered line are not read) or `none` (no
    /// audit log was given: `decisions` is empty for that reason).
    pub verdict: String,
    /// Records read from the log, of every subject.
    pub records_read: u64,
    /// The head of the log read (`N:HASH`, as `audit verify --anchor` takes it), when
    /// it verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// Every committed decision of the log was read: `verdict` is `intact` or
    /// `torn_tail`.
    pub complete: bool,
    /// Where the log does not verify, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Whether the subject's records could be looked for by its key: `found` (the
    /// store keeps a key for the subject: the records carrying its pseudonym are in
    /// `decisions`) or `none` (the store keeps no key: the subject was erased, or was
    /// never audited; no record of a format-3 log can be linked to it, and `decisions`
    /// holds only records of a format-2 log, which name the plain id). Absent when no
    /// audit log was read, or the log is of format 2 (no key is needed to search it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_key: Option<String>,
}

impl AuditCoverage {
    /// No audit log was read.
    pub fn none() -> AuditCoverage {
        AuditCoverage {
            verdict: "none".to_owned(),
            records_read: 0,
            head: None,
            complete: false,
            problem: None,
            subject_key: None,
        }
    }
}

/// The decisions about `subject` in the audit log directory `dir` (written by
/// [`crate::audit::AuditLog`]), in log order, and how much of the log was read.
///
/// `key` is the subject's key, as the keys the log was written under hold it
/// ([`crate::keys::SubjectKeys::key_of`]; for a store, `store::StoreKeys`; for a log
/// open in this process, [`crate::audit::AuditLog::subject_keys`]): records of format 3
/// carrying its pseudonym are the subject's. `None` (no key: erased, or never audited)
/// finds none of them. Records of format 2 are matched by the plain id (callers need
/// not look a key up for a log of format 2: [`crate::audit::segment::format_of`]).
/// Every record returned names `subject` again where the log held its pseudonym.
///
/// # Errors
///
/// When a file of the log cannot be read.
pub fn decisions_about(
    dir: impl AsRef<Path>,
    subject: &str,
    key: Option<&SubjectKey>,
) -> std::io::Result<(Vec<OwnedAuditRecord>, AuditCoverage)> {
    let pseudonym = key.map(|key| Pseudonym::of(key, subject).to_string());
    let mut found = Vec::new();
    let mut read = 0u64;
    let verdict = segment::for_each_record_of(dir.as_ref(), &mut |format, mut record| {
        read += 1;
        match format {
            Format::PlainIds if record.request.subject == subject => found.push(record),
            Format::Pseudonyms if pseudonym.as_deref() == Some(record.request.subject.as_ref()) => {
                record.replace_subject(subject);
                found.push(record);
            }
            _ => {}
        }
    })?;
    // Only a log of pseudonyms needs the key; a format-2 log is searched by the id.
    let subject_key = match segment::format_of(dir.as_ref())? {
        Some(Format::Pseudonyms) => Some(if key.is_some() { "found" } else { "none" }.to_owned()),
        _ => None,
    };
    let coverage = match verdict {
        DirVerdict::Intact { head, .. } => AuditCoverage {
            verdict: "intact".to_owned(),
            records_read: read,
            head: Some(head.to_string()),
            complete: true,
            problem: None,
            subject_key: subject_key.clone(),
        },
        DirVerdict::TornTail { head, .. } => AuditCoverage {
            verdict: "torn_tail".to_owned(),
            records_read: read,
            head: Some(head.to_string()),
            complete: true,
            problem: None,
            subject_key: subject_key.clone(),
        },
        DirVerdict::Tampered { segment, line, reason } => AuditCoverage {
            verdict: "tampered".to_owned(),
            records_read: read,
            head: None,
            complete: false,
            problem: Some(format!("segment {segment} line {line}: {reason}")),
            subject_key,
        },
    };
    Ok((found, coverage))
}

impl std::fmt::Debug for SubjectExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectExport")
            .field("format", &self.format)
            .field("generated_at", &self.generated_at)
            .field("events", &self.history.events().len())
            .field("decisions", &self.decisions.len())
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl SubjectExport {
    /// The export of `history`'s subject made at `at`, with `decisions` and the
    /// `audit` coverage of [`decisions_about`] (or [`AuditCoverage::none`]).
    pub fn new(
        history: ConsentHistory,
        decisions: Vec<OwnedAuditRecord>,
        audit: AuditCoverage,
        at: DateTime<Utc>,
    ) -> SubjectExport {
        SubjectExport {
            format: FORMAT.to_owned(),
            subject: history.subject().to_owned(),
            generated_at: at,
            history,
            decisions,
            audit,
        }
    }

    /// Whether the store and the log hold nothing about the subject.
    pub fn is_empty(&self) -> bool {
        self.history.events().is_empty() && self.decisions.is_empty()
    }
}
