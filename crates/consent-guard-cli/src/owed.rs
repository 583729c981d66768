//! `owed`: what must be deleted or anonymized now, as JSON lines (issue 27,
//! `docs/erasure.md`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use consent_guard::rights::Calendar;
use consent_guard::Policy;

use crate::{snapshot_builder, warn_quarantined, CliError};

/// `owed --policy P --store S [--at T] [--calendar C] [--subject U]`.
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
}

/// Prints one JSON line per deletion owed; exit 1 when one is past its deadline.
pub(crate) fn run(args: &OwedArgs) -> Result<ExitCode, CliError> {
    let policy = Policy::from_toml_file(&args.policy)?;
    let calendar = args.calendar.as_deref().map(calendar).transpose()?;
    let guard = snapshot_builder(policy, &args.store)?
        .build()
        .map_err(|e| CliError::Store { store: args.store.clone(), message: e.to_string() })?;
    warn_quarantined(&guard, &args.store);
    let at = args.at.unwrap_or_else(Utc::now);
    let owed = match &args.subject {
        Some(subject) => guard.owed(subject, at, calendar.as_ref()),
        None => guard.owed_all(at, calendar.as_ref()),
    }
    .map_err(|e| CliError::Store { store: args.store.clone(), message: e.to_string() })?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    for entry in &owed {
        let line = serde_json::to_string(entry).map_err(|e| CliError::Output(e.into()))?;
        writeln!(out, "{line}").map_err(CliError::Output)?;
    }
    out.flush().map_err(CliError::Output)?;
    Ok(if owed.iter().any(|e| e.overdue) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn calendar(path: &Path) -> Result<Calendar, CliError> {
    Ok(Calendar::from_toml_file(path)?)
}
