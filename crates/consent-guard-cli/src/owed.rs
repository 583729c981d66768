//! `owed`: what must be deleted or anonymized now, as JSON lines (issue 27,
//! `docs/erasure.md`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use consent_guard::rights::Calendar;
use consent_guard::Policy;

use crate::store::{open_store, Mode};
use crate::{display, warn_quarantined, CliError};

/// `owed --policy P --store S [--at T] [--calendar C] [--subject U] [--audit A]`.
#[derive(Debug, Args)]
pub(crate) struct OwedArgs {
    /// The policy file (TOML).
    #[arg(long, value_name = "P")]
    policy: PathBuf,
    /// The consent store: a redb file, or a `postgres://` URL (`postgres` feature).
    #[arg(long, value_name = "S")]
    store: String,
    /// The time asked about (RFC 3339); now when absent.
    #[arg(long, value_name = "T", value_parser = crate::rfc3339)]
    at: Option<DateTime<Utc>>,
    /// A holiday calendar (TOML, `docs/erasure.md`) for deadlines in working days;
    /// Monday to Friday without one.
    #[arg(long, value_name = "C")]
    calendar: Option<PathBuf>,
    /// Only this subject (without it: every subject, after the retention cut-offs).
    #[arg(long, value_name = "U")]
    subject: Option<String>,
    /// The audit log directory: entries whose deletions it shows done (`delete`
    /// requests answered `deletion_due` since the entry fell due, covering its purposes
    /// and categories) get `settled_at` and are no longer overdue. A log that does not
    /// verify is refused (exit 2): it is no evidence.
    #[arg(long, value_name = "A")]
    audit: Option<PathBuf>,
}

/// Prints one JSON line per deletion owed; exit 1 when one is past its deadline.
pub(crate) fn run(args: &OwedArgs) -> Result<ExitCode, CliError> {
    let policy = Policy::from_toml_file(&args.policy)?;
    let calendar = args.calendar.as_deref().map(calendar).transpose()?;
    let store: std::sync::Arc<dyn consent_guard::store::ConsentStore> =
        std::sync::Arc::from(open_store(&args.store, Mode::ReadOnly)?);
    let guard = consent_guard::Guard::builder(policy)
        .store(std::sync::Arc::clone(&store))
        .max_staleness(std::time::Duration::MAX)
        .build()
        .map_err(|e| CliError::Store { store: args.store.clone(), message: e.to_string() })?;
    warn_quarantined(&guard, &args.store);
    let at = args.at.unwrap_or_else(Utc::now);
    let owed = match &args.subject {
        Some(subject) => guard.owed(subject, at, calendar.as_ref()),
        None => guard.owed_all(at, calendar.as_ref()),
    }
    .map_err(|e| CliError::Store { store: args.store.clone(), message: e.to_string() })?;
    let mut owed = owed;
    if let Some(dir) = &args.audit {
        settle(&mut owed, dir, at, &store, &args.store)?;
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    for entry in &owed {
        let line = serde_json::to_string(entry).map_err(|e| CliError::Output(e.into()))?;
        writeln!(out, "{line}").map_err(CliError::Output)?;
    }
    out.flush().map_err(CliError::Output)?;
    Ok(if owed.iter().any(|e| e.overdue) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Settles `owed` with the deletions the audit log `dir` shows; a log that does not
/// verify settles nothing and is an error.
///
/// Records of format 3 name pseudonyms: a deletion counts for an owed subject when it
/// carries the subject's pseudonym under the key the store keeps for it now. One
/// written under a key since destroyed settles nothing (the entry stays owed: an
/// error on the side of caution).
fn settle(
    owed: &mut [consent_guard::rights::Owed],
    dir: &Path,
    at: DateTime<Utc>,
    store: &std::sync::Arc<dyn consent_guard::store::ConsentStore>,
    spec: &str,
) -> Result<(), CliError> {
    use consent_guard::audit::{segment, DirVerdict, Format};
    use consent_guard::keys::{Pseudonym, SubjectKeys};
    let unreadable = |source| CliError::Read { file: display(dir), source };
    if !dir.is_dir() {
        return Err(unreadable(io::Error::other("not an audit log directory")));
    }
    // The pseudonym of each owed subject that has a key, for a log of pseudonyms.
    let mut subjects_by_pseudonym = std::collections::HashMap::new();
    if segment::format_of(dir).map_err(unreadable)? == Some(Format::Pseudonyms) {
        let keys = consent_guard::store::StoreKeys(std::sync::Arc::clone(store));
        for subject in owed.iter().filter_map(|entry| entry.subject.as_deref()) {
            let key =
                keys.key_of(subject).map_err(|e| CliError::Store { store: spec.to_owned(), message: e.to_string() })?;
            if let Some(key) = key {
                subjects_by_pseudonym.insert(Pseudonym::of(&key, subject).to_string(), subject.to_owned());
            }
        }
    }
    let mut deletions = Vec::new();
    let verdict = segment::for_each_record_of(dir, &mut |format, mut record| {
        if record.decision.code() != consent_guard::ReasonCode::DeletionDue {
            return;
        }
        match format {
            Format::PlainIds => deletions.push(record),
            _ => {
                if let Some(subject) = subjects_by_pseudonym.get(record.request.subject.as_ref()) {
                    record.request.subject = std::borrow::Cow::Owned(subject.clone());
                    deletions.push(record);
                }
            }
        }
    })
    .map_err(unreadable)?;
    if let DirVerdict::Tampered { segment, line, reason } = verdict {
        return Err(CliError::Audit {
            file: display(dir),
            message: format!(
                "tampered: segment {segment} line {line}: {reason}; a damaged log is no evidence of deletion"
            ),
        });
    }
    consent_guard::rights::settle(owed, &deletions, at);
    Ok(())
}

fn calendar(path: &Path) -> Result<Calendar, CliError> {
    Ok(Calendar::from_toml_file(path)?)
}
