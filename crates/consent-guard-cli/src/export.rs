//! `export`: one subject's own export (issue 27 item 4): the consent history from the
//! store and the decisions about the subject from the audit log, as one JSON document
//! (`consent_guard::interchange::export`, format in `docs/erasure.md`, JSON Schema
//! from `consent-guard schema export`). The audit log holds pseudonyms, not ids: the
//! subject's records are found through its key in the store (`StoreKeys`).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use clap::Args;
use consent_guard::audit::{segment, Format};
use consent_guard::interchange::export::{decisions_about, AuditCoverage, SubjectExport};
use consent_guard::keys::SubjectKeys;
use consent_guard::store::{ConsentStore, StoreKeys};

use crate::store::{open_store, Mode};
use crate::{display, CliError};

/// `export SUBJECT --store S [--audit A]`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The subject.
    #[arg(value_name = "SUBJECT")]
    subject: String,
    /// The consent store: a redb file, or a `postgres://` URL (`postgres` feature).
    #[arg(long, value_name = "S")]
    store: String,
    /// The audit log directory (as `check --audit` and `serve --audit` write it);
    /// without it the export holds no decisions and says so (`audit.verdict` `none`).
    #[arg(long, value_name = "A")]
    audit: Option<PathBuf>,
}

/// Prints the export; exit 1 when the audit log does not verify (the export then holds
/// the decisions before the first altered line, and `audit.complete` is false).
pub(crate) fn run(args: &ExportArgs) -> Result<ExitCode, CliError> {
    let store: Arc<dyn ConsentStore> = Arc::from(open_store(&args.store, Mode::ReadOnly)?);
    let failed =
        |e: consent_guard::error::StoreError| CliError::Store { store: args.store.clone(), message: e.to_string() };
    let history = store.history(&args.subject).map_err(failed)?;
    let (decisions, coverage) = match &args.audit {
        None => (Vec::new(), AuditCoverage::none()),
        Some(dir) => {
            let unreadable = |source| CliError::Read { file: display(dir), source };
            if !dir.is_dir() {
                return Err(unreadable(io::Error::other(
                    "not an audit log directory (an older one-file log: read it with `audit export`)",
                )));
            }
            // A log of pseudonyms is searched through the subject's key; a format-2 log
            // (plain ids) needs none. A key that cannot be read is an error, never "no
            // decisions".
            let key = match segment::format_of(dir).map_err(unreadable)? {
                Some(Format::Pseudonyms) => StoreKeys(Arc::clone(&store)).key_of(&args.subject).map_err(failed)?,
                _ => None,
            };
            decisions_about(dir, &args.subject, key.as_ref()).map_err(unreadable)?
        }
    };
    let tampered = coverage.verdict == "tampered";
    if let (true, Some(dir), Some(problem)) = (tampered, &args.audit, &coverage.problem) {
        eprintln!("{}: tampered: {problem}; the export holds the decisions before it", display(dir));
    }
    let export = SubjectExport::new(history, decisions, coverage, Utc::now());
    let json = serde_json::to_string_pretty(&export).map_err(|e| CliError::Output(e.into()))?;
    let mut out = io::stdout().lock();
    writeln!(out, "{json}").map_err(CliError::Output)?;
    Ok(if tampered { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
