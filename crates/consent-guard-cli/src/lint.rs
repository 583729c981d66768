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
            Ok(bytes) => Source::new(String::from_utf8_lossy(&bytes).into_owned()),
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
            if let Ok(new) = Policy::from_toml_str(&text.text, &file) {
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

/// A file's text and where each of its lines starts, computed once: a report then
/// costs the lines it shows, not the file before them (with 10,000 diagnostics the
/// per-report copy and scan of the whole file made `lint` quadratic, issue 30).
struct Source {
    text: String,
    /// Byte offset of each line's first character; line 1 starts at 0.
    line_starts: Vec<usize>,
}

impl Source {
    fn new(text: String) -> Source {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        Source { text, line_starts }
    }

    /// The byte range of 1-based `line`, without its newline.
    fn line(&self, line: usize) -> Option<std::ops::Range<usize>> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let end = self.line_starts.get(line).map_or(self.text.len(), |next| next.saturating_sub(1));
        Some(start..end.max(start))
    }

    /// The byte offset of a 1-based line and column (in characters).
    fn offset(&self, line: usize, column: usize) -> Option<usize> {
        let range = self.line(line)?;
        let content = self.text.get(range.start..)?;
        let within = content.char_indices().nth(column.checked_sub(1)?).map_or(content.len(), |(i, _)| i);
        range.start.checked_add(within)
    }
}

/// The longest line the graphical report shows. miette pads to the column of a label
/// with a formatting width, and a width over 65,535 panics ("Formatting argument out
/// of range"); a line far shorter is already unreadable on a terminal.
const LONGEST_SHOWN: usize = 4096;

/// The graphical report: message, `file:line:col`, the source line underlined, and
/// for a warning how to allow it. A diagnostic on a line too long to show gets the
/// short form, saying so.
fn full(diagnostic: &Diagnostic, source: &Source) -> String {
    let shown = diagnostic.line().saturating_sub(1).max(1)..=diagnostic.line().saturating_add(1);
    let too_long = shown.clone().filter_map(|line| source.line(line)).any(|range| range.len() > LONGEST_SHOWN);
    if too_long {
        return format!("{} (the line is too long to show)", short(diagnostic));
    }
    let Some(rendered) = Rendered::new(diagnostic, source) else { return short(diagnostic) };
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(120)
        .with_context_lines(1);
    let mut out = String::new();
    // miette is the last code between a file and this output: a panic in it must not
    // cost the other diagnostics, so it falls back to the short form as an error does.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.render_report(&mut out, &rendered)));
    match outcome {
        Ok(Ok(())) => out.trim_end().to_owned(),
        // A report that cannot render still says what is wrong, in the short form.
        _ => short(diagnostic),
    }
}

/// A diagnostic with the lines around it, as miette wants it.
#[derive(Debug)]
struct Rendered {
    message: String,
    severity: Severity,
    code: Option<&'static str>,
    source: Window,
    span: Option<(usize, usize)>,
    help: Option<String>,
}

/// The lines a report shows (the diagnostic's and one either side), with where they
/// are in the file, so that miette reads them and not the file before them, and still
/// numbers lines and columns as the file does.
#[derive(Debug)]
struct Window {
    name: String,
    text: String,
    /// The byte offset of `text` in the file.
    start: usize,
    /// The 0-based line of `text`'s first line.
    first_line: usize,
}

impl Rendered {
    fn new(diagnostic: &Diagnostic, source: &Source) -> Option<Rendered> {
        let first_line = diagnostic.line().saturating_sub(1).max(1);
        let last_line = diagnostic.line().saturating_add(1).min(source.line_starts.len());
        let start = source.line(first_line)?.start;
        let end = source.line(last_line).map_or(source.text.len(), |range| range.end);
        let window = Window {
            name: diagnostic.file().to_owned(),
            text: source.text.get(start..end.max(start))?.to_owned(),
            start,
            first_line: first_line.saturating_sub(1),
        };
        let span = source.offset(diagnostic.line(), diagnostic.column()).map(|at| {
            // Underline to the end of the line (at least one character).
            let rest = source.text.get(at..end.max(at)).unwrap_or("");
            let len = rest.find('\n').unwrap_or(rest.len()).clamp(1, 120);
            (at, len.min(rest.len()))
        });
        let help = diagnostic
            .warning_name()
            .map(|name| format!("right as written? allow = [{{ warning = \"{name}\", reason = \"...\" }}]"));
        Some(Rendered {
            message: diagnostic.message().to_owned(),
            severity: diagnostic.severity(),
            code: diagnostic.warning_name(),
            source: window,
            span,
            help,
        })
    }
}

impl miette::SourceCode for Window {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let local = miette::SourceSpan::new(span.offset().saturating_sub(self.start).into(), span.len());
        let contents = self.text.read_span(&local, before, after)?;
        let data: &'a [u8] = contents.data();
        let shifted = miette::SourceSpan::new((contents.span().offset() + self.start).into(), contents.span().len());
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            data,
            shifted,
            contents.line() + self.first_line,
            contents.column(),
            contents.line_count(),
        )))
    }
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

#[cfg(test)]
mod tests {

    use super::*;

    fn big_file(lines: usize) -> Source {
        Source::new((1..=lines).map(|n| format!("key{n} = \"value {n}\"\n")).collect())
    }

    /// Each report reads the three lines it shows, wherever it is in the file: the
    /// work of `lint` grows with its diagnostics, not with diagnostics × file size.
    #[test]
    fn a_report_holds_only_the_lines_it_shows() {
        let source = big_file(20_000);
        let diagnostic = Diagnostic::warning("big.toml", 15_000, 3, "unused_allow", "look here");
        let rendered = Rendered::new(&diagnostic, &source).unwrap();
        assert_eq!(
            rendered.source.text,
            "key14999 = \"value 14999\"\nkey15000 = \"value 15000\"\nkey15001 = \"value 15001\""
        );
        let out = full(&diagnostic, &source);
        assert!(out.contains("[big.toml:15000:3]"), "{out}");
        assert!(out.contains("15000 │ key15000"), "{out}");
        assert!(out.contains("14999 │ key14999"), "{out}");
    }

    #[test]
    fn first_and_last_lines_render_with_their_numbers() {
        let source = big_file(3);
        for (line, shown) in [(1, "1 │ key1"), (3, "3 │ key3")] {
            let out = full(&Diagnostic::warning("f.toml", line, 1, "unused_allow", "here"), &source);
            assert!(out.contains(shown), "{out}");
            assert!(out.contains(&format!("[f.toml:{line}:1]")), "{out}");
        }
    }

    /// miette panicked ("Formatting argument out of range") on a label past column
    /// 65,535; such a line gets the short form.
    #[test]
    fn a_line_too_long_to_show_gets_the_short_form() {
        let source = Source::new(format!("a = 1\nb = \"{}\" x\nc = 2\n", "y".repeat(70_000)));
        let out = full(&Diagnostic::warning("long.toml", 2, 70_008, "unused_allow", "here"), &source);
        assert_eq!(out, "long.toml:2:70008: warning: here [unused_allow] (the line is too long to show)");
        // Its neighbour is too long to show as context, so it is short as well.
        let out = full(&Diagnostic::warning("long.toml", 3, 1, "unused_allow", "here"), &source);
        assert!(out.ends_with("(the line is too long to show)"), "{out}");
    }
}
