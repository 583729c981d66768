//! `test`: golden test files of a policy, run through `consent_guard::testing`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use consent_guard::testing;

use crate::CliError;

/// Runs every file; prints each failure with its diff, one summary line per file and
/// `N passed, M failed` over all. Exit 1 on a failed case, 2 when a file cannot run
/// (the other files still run).
pub(crate) fn run(files: &[PathBuf]) -> Result<ExitCode, CliError> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let (mut passed, mut failed, mut broken) = (0usize, 0usize, false);
    for path in files {
        match testing::run_file(path) {
            Ok(report) => {
                out.write_all(report.failures().as_bytes()).map_err(CliError::Output)?;
                let status = if report.is_success() { "ok" } else { "FAILED" };
                writeln!(
                    out,
                    "{status} {} ({}): {} passed, {} failed",
                    report.file,
                    report.policy,
                    report.passed(),
                    report.failed()
                )
                .map_err(CliError::Output)?;
                passed = passed.saturating_add(report.passed());
                failed = failed.saturating_add(report.failed());
            }
            Err(error) => {
                out.flush().map_err(CliError::Output)?;
                eprintln!("error: {}", crate::with_sources(&error));
                broken = true;
            }
        }
    }
    writeln!(out, "{passed} passed, {failed} failed").map_err(CliError::Output)?;
    out.flush().map_err(CliError::Output)?;
    Ok(if broken {
        ExitCode::from(2)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
