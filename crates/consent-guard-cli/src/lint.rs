//! `lint`: every problem of every policy file, rendered with its source line (miette's
//! graphical report) or as one `file:line:col: message` line (`--format short`, for
//! editors and scripts). Warnings a rule allows (with a reason) are not shown.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use consent_guard::error::{Diagnostic, Severity};
use consent_guard::Policy;

use crate::{display, report, CliError};

/// How `lint` prints a problem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum LintFormat {
    /// The message with the source line it is about, underlined.
    #[default]
    Full,
    /// One line: `file:line:col: [warning: ]message [name]`.
    Short,
}

/// What `lint` was asked.
#[derive(Debug)]
pub(crate) struct LintOptions<'a> {
    pub(crate) paths: &'a [PathBuf],
    pub(crate) format: LintFormat,
    pub(crate) deny_warnings: bool,
    /// `--since OLD`: also warn about material changes from OLD that are not declared.
    pub(crate) since: Option<&'a std::path::Path>,
}

/// 2 if a file is unreadable; else 1 on an error, or on a warning with
/// `--deny-warnings`; else 0.
pub(crate) fn run(options: &LintOptions<'_>) -> Result<ExitCode, CliError> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut errors, mut warnings, mut unreadable) = (0usize, 0usize, false);
    let old = match options.since {
        None => None,
        Some(path) => Some(Policy::from_toml_file(path)?),
    };
    for path in options.paths {
        let file = display(path);
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(source) => {
                // The other files are still linted.
                out.flush().map_err(CliError::Output)?;
                report(&CliError::Read { file, source });
                unreadable = true;
                continue;
            }
        };
        let mut diagnostics = match Policy::lint_file(path) {
            Ok(diagnostics) => diagnostics,
            Err(source) => {
                out.flush().map_err(CliError::Output)?;
                report(&CliError::Read { file, source });
                unreadable = true;
                continue;
            }
        };
        if let Some(old) = &old {
            if let Ok(new) = Policy::from_toml_str(&text, &file) {
                diagnostics.extend(consent_guard::policy::diff::undeclared(old, &new));
                diagnostics.sort_by_key(|d| (d.line(), d.column()));
            }
        }
        for diagnostic in diagnostics.iter().filter(|d| d.allowed().is_none()) {
            match diagnostic.severity() {
                Severity::Error => errors = errors.saturating_add(1),
                _ => warnings = warnings.saturating_add(1),
            }
            let line = match options.format {
                LintFormat::Short => short(diagnostic),
                LintFormat::Full => format!("{}\n", full(diagnostic, &text)),
            };
            writeln!(out, "{line}").map_err(CliError::Output)?;
        }
    }
    out.flush().map_err(CliError::Output)?;
    Ok(if unreadable {
        ExitCode::from(2)
    } else if errors > 0 || (options.deny_warnings && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `file:line:col: [warning: ]message`, and a warning's name to allow it by.
pub(crate) fn short(diagnostic: &Diagnostic) -> String {
    match diagnostic.warning_name() {
        Some(name) => format!("{diagnostic} [{name}]"),
        None => diagnostic.to_string(),
    }
}

/// The graphical report: message, `file:line:col`, the source line underlined, and
/// for a warning how to allow it.
fn full(diagnostic: &Diagnostic, text: &str) -> String {
    let rendered = Rendered::new(diagnostic, text);
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(120)
        .with_context_lines(1);
    let mut out = String::new();
    match handler.render_report(&mut out, &rendered) {
        Ok(()) => out.trim_end().to_owned(),
        // A report that cannot render still says what is wrong, in the short form.
        Err(_) => short(diagnostic),
    }
}

/// A diagnostic with its source, as miette wants it.
#[derive(Debug)]
struct Rendered {
    message: String,
    severity: Severity,
    code: Option<&'static str>,
    source: miette::NamedSource<String>,
    span: Option<(usize, usize)>,
    help: Option<String>,
}

impl Rendered {
    fn new(diagnostic: &Diagnostic, text: &str) -> Rendered {
        let span = offset(text, diagnostic.line(), diagnostic.column()).map(|start| {
            // Underline to the end of the line (at least one character).
            let rest = text.get(start..).unwrap_or("");
            let len = rest.find('\n').unwrap_or(rest.len()).clamp(1, 120);
            (start, len.min(rest.len()))
        });
        let help = diagnostic
            .warning_name()
            .map(|name| format!("right as written? allow = [{{ warning = \"{name}\", reason = \"...\" }}]"));
        Rendered {
            message: diagnostic.message().to_owned(),
            severity: diagnostic.severity(),
            code: diagnostic.warning_name(),
            source: miette::NamedSource::new(diagnostic.file(), text.to_owned()),
            span,
            help,
        }
    }
}

/// The byte offset of a 1-based line and column (in characters).
fn offset(text: &str, line: usize, column: usize) -> Option<usize> {
    let start: usize = text.split_inclusive('\n').take(line.checked_sub(1)?).map(str::len).sum();
    let content = text.get(start..)?;
    let within = content.char_indices().nth(column.checked_sub(1)?).map_or(content.len(), |(i, _)| i);
    start.checked_add(within)
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.code.map(|c| Box::new(c) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            _ => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let (start, len) = self.span?;
        Some(Box::new(std::iter::once(miette::LabeledSpan::new_primary_with_span(None, (start, len)))))
    }
}
