//! Loading policies from TOML, with every problem located at `file:line:col`.
//!
//! Syntax errors come from the TOML parser (all of them); each section is then
//! deserialized on its own, so one misspelt field does not hide the problems of the
//! other rules; finally compilation problems, found by path, are located through the
//! spans of the parsed document.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::document::{
    MinorsSection, PolicyDocument, PolicyHeader, RecipientDeclaration, RightsSection, RuleDocument, VocabularySection,
};
use super::{compile, PathSegment, Policy, Problem};
use crate::error::{Diagnostic, PolicyError, Severity};

impl Policy {
    /// Loads, validates and compiles a policy file.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Io`] when the file cannot be read, [`PolicyError::Invalid`] with
    /// every problem found, each at `file:line:col`.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| PolicyError::Io { file: file.clone(), source })?;
        let text = String::from_utf8(bytes).map_err(|error| invalid_utf8(&error, &file))?;
        Policy::from_toml_str(&text, &file)
    }

    /// Loads, validates and compiles a policy from TOML text; `file` names it in
    /// diagnostics.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] with every problem found, each at `file:line:col`.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let document = parse(text, file)?;
        let spans = DeTable::parse(text).ok();
        let lines = LineIndex::new(text);
        let ids = super::rule_ids(&document);
        let located = |problem: &Problem| {
            let mut diagnostic = to_diagnostic(problem, text, file, &lines, spans.as_ref());
            diagnostic.rule = problem.rule(&ids);
            diagnostic
        };
        // Where each rule's `id` is, so that a finding about a rule made later (by
        // `policy::diff`, say) points where the loader's own diagnostics would.
        let rules = (0..ids.len())
            .map(|index| {
                let rule = [PathSegment::Key("rule".to_owned()), PathSegment::Index(index)];
                let id =
                    [PathSegment::Key("rule".to_owned()), PathSegment::Index(index), PathSegment::Key("id".to_owned())];
                spans
                    .as_ref()
                    .and_then(|root| locate(root, &id).or_else(|| locate(root, &rule)))
                    .map_or((1, 1), |span| lines.locate(text, span.start))
            })
            .collect();
        match compile::compile(document) {
            Ok((mut policy, warnings)) => {
                policy.warnings = warnings.iter().map(located).collect();
                policy.origin = super::Origin { file: file.to_owned(), rules };
                Ok(policy)
            }
            Err(problems) => Err(PolicyError::Invalid(problems.iter().map(located).collect())),
        }
    }

    /// Every problem of a policy file, as [`Policy::lint_toml`]; a file that is not
    /// UTF-8 is one problem, located at its first bad byte.
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub fn lint_file(path: impl AsRef<Path>) -> Result<Vec<Diagnostic>, std::io::Error> {
        let path = path.as_ref();
        let file = path.display().to_string();
        match String::from_utf8(std::fs::read(path)?) {
            Ok(text) => Ok(Policy::lint_toml(&text, &file)),
            Err(error) => Ok(invalid_utf8(&error, &file).diagnostics().to_vec()),
        }
    }

    /// Every problem of a policy text, errors and warnings, each at `file:line:col`,
    /// in the order of the file. An empty list means a clean policy.
    pub fn lint_toml(text: &str, file: &str) -> Vec<Diagnostic> {
        let mut diagnostics = match Policy::from_toml_str(text, file) {
            Ok(policy) => policy.warnings,
            Err(error) => error.diagnostics().to_vec(),
        };
        diagnostics.sort_by_key(|d| (d.line, d.column));
        diagnostics
    }
}

/// Parses the text into a document, reporting all syntax errors, or every section's
/// deserialization error.
fn parse(text: &str, file: &str) -> Result<PolicyDocument, PolicyError> {
    let lines = LineIndex::new(text);
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        let diagnostics = syntax_errors
            .iter()
            .map(|error| {
                // toml reports a key nested past its limit without a span.
                let start = error
                    .span()
                    .map(|span| span.start)
                    .or_else(|| error.message().contains("recursion limit").then(|| deepest_key(text)).flatten());
                let (line, column) = start.map_or((1, 1), |start| lines.locate(text, start));
                diagnostic(Severity::Error, file, line, column, error.message().trim().to_owned())
            })
            .collect();
        return Err(PolicyError::Invalid(diagnostics));
    }

    let mut diagnostics = Vec::new();
    // Each section is deserialized from its own spanned table, so an error points at
    // the value at fault; one without a span points at the item its path names.
    let mut report = |path: &[PathSegment], span: Option<Range<usize>>, message: String| {
        let field = unknown_field(&message);
        let mut full: Vec<PathSegment> = path.to_vec();
        if let Some(field) = field {
            full.push(PathSegment::Key(field));
        }
        let span = span.or_else(|| locate(&root, &full)).or_else(|| locate(&root, path));
        let (line, column) = span.map_or((1, 1), |s| lines.locate(text, s.start));
        diagnostics.push(diagnostic(Severity::Error, file, line, column, message));
    };
    let key = |k: &str| PathSegment::Key(k.to_owned());
    let table = root.get_ref();
    let get = |name: &str| table.iter().find(|(k, _)| k.get_ref().as_ref() == name).map(|(_, v)| v);

    for (name, _) in table.iter() {
        let name = name.get_ref().as_ref();
        if !["policy", "minors", "rights", "vocabulary", "recipients", "rule"].contains(&name) {
            report(
                &[key(name)],
                None,
                format!(
                    "unknown section `{name}`, expected one of `policy`, `minors`, `rights`, `vocabulary`, `recipients`, `rule`"
                ),
            );
        }
    }
    let header = match get("policy") {
        None => {
            report(&[], None, "missing section [policy] (name, version, home_region)".to_owned());
            None
        }
        Some(value) => section::<PolicyHeader>(value, &[key("policy")], &mut report),
    };
    let minors = get("minors").and_then(|v| section::<MinorsSection>(v, &[key("minors")], &mut report));
    let rights_ok = match get("rights") {
        None => Ok(None),
        Some(v) => section::<RightsSection>(v, &[key("rights")], &mut report).map(Some).ok_or(()),
    };
    let vocabulary = match get("vocabulary") {
        None => Some(VocabularySection::default()),
        Some(value) => section::<VocabularySection>(value, &[key("vocabulary")], &mut report),
    };
    let mut recipients = std::collections::BTreeMap::new();
    let mut recipients_ok = true;
    match get("recipients").map(Spanned::get_ref) {
        None => {}
        Some(DeValue::Table(entries)) => {
            for (name, value) in entries.iter() {
                let name = name.get_ref().as_ref();
                match section::<RecipientDeclaration>(value, &[key("recipients"), key(name)], &mut report) {
                    Some(declaration) => {
                        recipients.insert(name.to_owned(), declaration);
                    }
                    None => recipients_ok = false,
                }
            }
        }
        Some(_) => {
            report(&[key("recipients")], None, "`recipients` must be a table of [recipients.NAME] tables".to_owned());
            recipients_ok = false;
        }
    }
    let mut rules = Vec::new();
    let mut rules_ok = true;
    match get("rule").map(Spanned::get_ref) {
        None => {}
        Some(DeValue::Array(items)) => {
            for (index, value) in items.iter().enumerate() {
                match section::<RuleDocument>(value, &[key("rule"), PathSegment::Index(index)], &mut report) {
                    Some(rule) => rules.push(rule),
                    None => rules_ok = false,
                }
            }
        }
        Some(_) => {
            report(&[key("rule")], None, "rules are written as [[rule]] tables".to_owned());
            rules_ok = false;
        }
    }
    match (header, vocabulary) {
        (Some(policy), Some(vocabulary)) if diagnostics.is_empty() && recipients_ok && rules_ok => {
            let rights = rights_ok.unwrap_or_default();
            Ok(PolicyDocument { policy, minors, rights, vocabulary, recipients, rules })
        }
        _ => Err(PolicyError::Invalid(diagnostics)),
    }
}

fn section<T: for<'de> Deserialize<'de>>(
    value: &Spanned<DeValue<'_>>,
    path: &[PathSegment],
    report: &mut impl FnMut(&[PathSegment], Option<Range<usize>>, String),
) -> Option<T> {
    let DeValue::Table(table) = value.get_ref() else {
        report(path, Some(value.span()), "expected a table".to_owned());
        return None;
    };
    let deserializer = toml::de::Deserializer::from(Spanned::new(value.span(), table.clone()));
    match T::deserialize(deserializer) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            report(path, error.span(), error.message().trim().to_owned());
            None
        }
    }
}

/// The field an "unknown field `x`" message names, to point at it.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_owned)
}

/// A policy that is not UTF-8 text, located at its first bad byte.
fn invalid_utf8(error: &std::string::FromUtf8Error, file: &str) -> PolicyError {
    let bytes = error.as_bytes();
    let valid = bytes.get(..error.utf8_error().valid_up_to()).unwrap_or_default();
    // The valid prefix is text; locate the offset within it.
    let text = std::str::from_utf8(valid).unwrap_or_default();
    let (line, column) = LineIndex::new(text).locate(text, text.len());
    PolicyError::Invalid(vec![diagnostic(
        Severity::Error,
        file,
        line,
        column,
        format!("invalid UTF-8 (byte 0x{:02x}): a policy is UTF-8 text", bytes.get(valid.len()).copied().unwrap_or(0)),
    )])
}

fn diagnostic(severity: Severity, file: &str, line: usize, column: usize, message: String) -> Diagnostic {
    Diagnostic { severity, file: file.to_owned(), line, column, message, warning: None, allowed: None, rule: None }
}

fn to_diagnostic(
    problem: &Problem,
    text: &str,
    file: &str,
    lines: &LineIndex,
    root: Option<&Spanned<DeTable<'_>>>,
) -> Diagnostic {
    let span = root.and_then(|root| {
        // Fall back to the closest enclosing item when the exact one is absent (a
        // missing field is reported at its table).
        (0..=problem.path.len()).rev().find_map(|n| problem.path.get(..n).and_then(|p| locate(root, p)))
    });
    let (line, column) = span.map_or((1, 1), |s| lines.locate(text, s.start));
    Diagnostic {
        severity: problem.severity,
        file: file.to_owned(),
        line,
        column,
        message: problem.message.clone(),
        warning: problem.warning,
        allowed: problem.allowed.clone(),
        rule: None,
    }
}

/// The byte range of the item at `path`: a key's span for tables (so a reviewer sees
/// the name), an element's span for arrays.
fn locate(root: &Spanned<DeTable<'_>>, path: &[PathSegment]) -> Option<Range<usize>> {
    let mut table: &DeTable<'_> = root.get_ref();
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    let mut span = Some(root.span());
    for segment in path {
        match segment {
            PathSegment::Key(name) => {
                let current = match value.map(Spanned::get_ref) {
                    None => table,
                    Some(DeValue::Table(t)) => t,
                    Some(_) => return None,
                };
                let (k, v) = current.iter().find(|(k, _)| k.get_ref().as_ref() == name.as_str())?;
                span = Some(k.span());
                value = Some(v);
                if let DeValue::Table(t) = v.get_ref() {
                    table = t;
                }
            }
            PathSegment::Index(index) => {
                let DeValue::Array(items) = value?.get_ref() else { return None };
                let item = items.get(*index)?;
                span = Some(item.span());
                value = Some(item);
            }
        }
    }
    span
}

/// Where each line of a text starts, so that locating a diagnostic costs a binary
/// search rather than a scan of the text: lint stays linear in the number of problems.
struct LineIndex {
    starts: Vec<usize>,
}

/// toml's limit on the segments of a dotted key (`a.b.c…`), past which it reports a
/// "recursion limit" error without a span.
const KEY_DEPTH_LIMIT: usize = 80;

/// The byte offset of the first key (of a `key = value` line or a `[table]` header)
/// with more segments than toml allows: where its span-less "recursion limit" error
/// belongs (it pointed at 1:1).
fn deepest_key(text: &str) -> Option<usize> {
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let key = line.get(indent..).unwrap_or_default();
        let key_start = offset + indent + key.len() - key.trim_start_matches('[').len();
        let mut segments = 1usize;
        let mut quote: Option<char> = None;
        for c in key.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '.') => segments += 1,
                (None, '=' | ']' | '#') => break,
                (None, _) => {}
            }
        }
        if segments >= KEY_DEPTH_LIMIT {
            return Some(key_start);
        }
        offset += line.len();
    }
    None
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn locate(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|start| *start <= offset).max(1);
        let line_start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = text.get(line_start..offset).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }
}

/// 1-based line and column (in characters) of a byte offset.
#[cfg(test)]
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).locate(text, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[policy]
name = "t"
version = "1.0"
home_region = "CN"
"#;

    #[test]
    fn every_rule_error_is_reported_with_its_location() {
        let text = format!(
            "{MINIMAL}
[[rule]]
id = \"a\"
purposes = [\"ai_training\"]
basis = \"consent\"
levle = \"explicit\"
categories = [\"behavior\"]

[[rule]]
id = \"b\"
purposes = [\"advertising\"]
basis = \"consent\"
level = \"separate\"
categories = [\"behaviour.log\"]
"
        );
        let error = Policy::from_toml_str(&text, "p.toml").unwrap_err();
        let diagnostics = error.diagnostics();
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        let first = &diagnostics[0];
        assert_eq!((first.line(), first.column()), (11, 1), "{first}");
        assert!(first.message().contains("levle"));
        // Once the first rule is fixed, the second rule's unknown category shows.
        let fixed = text.replace("levle", "level");
        let error = Policy::from_toml_str(&fixed, "p.toml").unwrap_err();
        let d = &error.diagnostics()[0];
        assert_eq!((d.line(), d.column()), (19, 15), "{d}");
        assert!(d.to_string().starts_with("p.toml:19:15: unknown data category `behaviour.log`"), "{d}");
    }

    #[test]
    fn several_bases_are_checked_where_written() {
        let rule = |basis: &str| {
            format!("{MINIMAL}\n[[rule]]\nid = \"a\"\npurposes = [\"compliance\"]\nbasis = {basis}\ncategories = [\"behavior\"]\n")
        };
        let policy = Policy::from_toml_str(&rule(r#"["legal_obligation", "criminal_justice"]"#), "p.toml").unwrap();
        assert_eq!(policy.document().rules[0].basis.len(), 2);
        for (basis, says) in [
            (r#"["legal_obligation", "consent"]"#, "cannot be one of several bases"),
            (r#"["legal_obligation", "legal_obligation"]"#, "listed twice"),
            ("[]", "at least one basis"),
            (r#"["contractt"]"#, "contractt"),
        ] {
            let error = Policy::from_toml_str(&rule(basis), "p.toml").unwrap_err();
            let d = &error.diagnostics()[0];
            assert_eq!(d.line(), 10, "{basis}: {d}");
            assert!(d.message().contains(says), "{basis}: {d}");
        }
    }

    #[test]
    fn syntax_errors_are_located() {
        let error = Policy::from_toml_str("[policy]\nname = \n", "x.toml").unwrap_err();
        assert_eq!(error.diagnostics()[0].line(), 2, "{error}");
    }

    #[test]
    fn a_bad_value_is_located_at_the_value_not_its_table() {
        let text = format!("{MINIMAL}\n[[rule]]\nid = \"a\"\npurposes = [\"ai_training\"]\nbasis = \"consent\"\nlevel = \"explicitt\"\ncategories = [\"behavior\"]\n");
        let error = Policy::from_toml_str(&text, "p.toml").unwrap_err();
        let d = &error.diagnostics()[0];
        assert_eq!((d.line(), d.column()), (11, 9), "{d}");
        assert!(d.message().contains("explicitt"), "{d}");
    }

    #[test]
    fn invalid_utf8_is_located() {
        let dir = std::env::temp_dir().join(format!("cg-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, [MINIMAL.as_bytes(), b"[[rule]]\nid = \"a\xff\"\n"].concat()).unwrap();
        let diagnostics = Policy::lint_file(&path).unwrap();
        assert_eq!((diagnostics[0].line(), diagnostics[0].column()), (7, 8), "{}", diagnostics[0]);
        assert!(diagnostics[0].message().contains("UTF-8"));
        let error = Policy::from_toml_file(&path).unwrap_err();
        assert!(error.to_string().contains(":7:8: invalid UTF-8"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A key nested past toml's limit was reported at 1:1 (issue 30).
    #[test]
    fn a_key_nested_too_deep_is_located_at_the_key() {
        let nested = format!("{MINIMAL}\n  x{} = 1\n", ".x".repeat(5000));
        let diagnostics = Policy::lint_toml(&nested, "n.toml");
        let line = MINIMAL.lines().count() + 2;
        assert_eq!((diagnostics[0].line(), diagnostics[0].column()), (line, 3), "{}", diagnostics[0]);
        assert!(diagnostics[0].message().contains("recursion limit"), "{}", diagnostics[0]);
        let header = format!("{MINIMAL}[[a{}]]\n", ".\"q.q\"".repeat(100));
        let diagnostics = Policy::lint_toml(&header, "n.toml");
        assert_eq!(
            (diagnostics[0].line(), diagnostics[0].column()),
            (MINIMAL.lines().count() + 1, 3),
            "{}",
            diagnostics[0]
        );
    }

    #[test]
    fn no_diagnostic_is_located_at_line_zero() {
        let nested = format!("{MINIMAL}x{} = 1\n", ".x".repeat(5000));
        for diagnostic in Policy::lint_toml(&nested, "n.toml") {
            assert!(diagnostic.line() >= 1 && diagnostic.column() >= 1, "{diagnostic}");
        }
    }

    /// Locating each problem scanned the text from its start, so lint was quadratic in
    /// the number of problems (70,000 rules took 108 s). Asserted as a property rather
    /// than a time a loaded machine can break: ten times the problems cost about ten
    /// times as much (the best of three runs of each, side by side), where the
    /// quadratic scan cost a hundred times as much. The release timing (10,000 in
    /// under a second) is `lint_limits::ten_thousand_diagnostics_in_under_a_second`, --ignored.
    #[test]
    fn lint_is_linear_in_the_number_of_problems() {
        let policy = |n: usize| -> String {
            let rules: String = (0..n)
                .map(|i| format!("[[rule]]\nid = \"r{i}\"\npurposes = [\"nope.x{i}\"]\nbasis = \"contract\"\ncategories = [\"behavior\"]\n"))
                .collect();
            format!("{MINIMAL}{rules}")
        };
        let (small, large) = (policy(2_000), policy(20_000));
        let mut best = [std::time::Duration::MAX; 2];
        for _ in 0..3 {
            for (slot, text) in best.iter_mut().zip([&small, &large]) {
                let started = std::time::Instant::now();
                let diagnostics = Policy::lint_toml(text, "big.toml");
                *slot = (*slot).min(started.elapsed());
                assert!(diagnostics.len() == 2_000 || diagnostics.len() == 20_000);
            }
        }
        let ratio = best[1].as_secs_f64() / best[0].as_secs_f64().max(1e-6);
        assert!(ratio < 40.0, "10x the problems cost {ratio:.1}x the time ({:?} / {:?})", best[1], best[0]);
    }

    #[test]
    fn line_columns_count_characters() {
        assert_eq!(line_column("ab\n日本x", 9), (2, 3));
    }
}
