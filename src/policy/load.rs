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
    MinorsSection, PolicyDocument, PolicyHeader, RecipientDeclaration, RuleDocument, VocabularySection,
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
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io { file: file.clone(), source })?;
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
        let locate = |problem: &Problem| to_diagnostic(problem, text, file, spans.as_ref());
        match compile::compile(document) {
            Ok((mut policy, warnings)) => {
                policy.warnings = warnings.iter().map(locate).collect();
                Ok(policy)
            }
            Err(problems) => Err(PolicyError::Invalid(problems.iter().map(locate).collect())),
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
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        let diagnostics = syntax_errors
            .iter()
            .map(|error| {
                let (line, column) = error.span().map_or((0, 0), |span| line_column(text, span.start));
                diagnostic(Severity::Error, file, line, column, error.message().trim().to_owned())
            })
            .collect();
        return Err(PolicyError::Invalid(diagnostics));
    }
    let table: toml::Table = toml::from_str(text).map_err(|error| {
        let (line, column) = error.span().map_or((0, 0), |span| line_column(text, span.start));
        PolicyError::Invalid(vec![diagnostic(Severity::Error, file, line, column, error.message().trim().to_owned())])
    })?;

    let mut diagnostics = Vec::new();
    let mut report = |path: &[PathSegment], message: String| {
        let field = unknown_field(&message);
        let mut full: Vec<PathSegment> = path.to_vec();
        if let Some(field) = field {
            full.push(PathSegment::Key(field));
        }
        let span = locate(&root, &full).or_else(|| locate(&root, path));
        let (line, column) = span.map_or((1, 1), |s| line_column(text, s.start));
        diagnostics.push(diagnostic(Severity::Error, file, line, column, message));
    };
    let key = |k: &str| PathSegment::Key(k.to_owned());

    for name in table.keys() {
        if !["policy", "minors", "vocabulary", "recipients", "rule"].contains(&name.as_str()) {
            report(
                &[key(name)],
                format!(
                    "unknown section `{name}`, expected one of `policy`, `minors`, `vocabulary`, `recipients`, `rule`"
                ),
            );
        }
    }
    let header = match table.get("policy") {
        None => {
            report(&[], "missing section [policy] (name, version, home_region)".to_owned());
            None
        }
        Some(value) => section::<PolicyHeader>(value, &[key("policy")], &mut report),
    };
    let minors = table.get("minors").and_then(|v| section::<MinorsSection>(v, &[key("minors")], &mut report));
    let vocabulary = match table.get("vocabulary") {
        None => Some(VocabularySection::default()),
        Some(value) => section::<VocabularySection>(value, &[key("vocabulary")], &mut report),
    };
    let mut recipients = std::collections::BTreeMap::new();
    let mut recipients_ok = true;
    match table.get("recipients") {
        None => {}
        Some(toml::Value::Table(entries)) => {
            for (name, value) in entries {
                match section::<RecipientDeclaration>(value, &[key("recipients"), key(name)], &mut report) {
                    Some(declaration) => {
                        recipients.insert(name.clone(), declaration);
                    }
                    None => recipients_ok = false,
                }
            }
        }
        Some(_) => {
            report(&[key("recipients")], "`recipients` must be a table of [recipients.NAME] tables".to_owned());
            recipients_ok = false;
        }
    }
    let mut rules = Vec::new();
    let mut rules_ok = true;
    match table.get("rule") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for (index, value) in items.iter().enumerate() {
                match section::<RuleDocument>(value, &[key("rule"), PathSegment::Index(index)], &mut report) {
                    Some(rule) => rules.push(rule),
                    None => rules_ok = false,
                }
            }
        }
        Some(_) => {
            report(&[key("rule")], "rules are written as [[rule]] tables".to_owned());
            rules_ok = false;
        }
    }
    match (header, vocabulary) {
        (Some(policy), Some(vocabulary)) if diagnostics.is_empty() && recipients_ok && rules_ok => {
            Ok(PolicyDocument { policy, minors, vocabulary, recipients, rules })
        }
        _ => Err(PolicyError::Invalid(diagnostics)),
    }
}

fn section<T: for<'de> Deserialize<'de>>(
    value: &toml::Value,
    path: &[PathSegment],
    report: &mut impl FnMut(&[PathSegment], String),
) -> Option<T> {
    match T::deserialize(value.clone()) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            report(path, error.message().trim().to_owned());
            None
        }
    }
}

/// The field an "unknown field `x`" message names, to point at it.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_owned)
}

fn diagnostic(severity: Severity, file: &str, line: usize, column: usize, message: String) -> Diagnostic {
    Diagnostic { severity, file: file.to_owned(), line, column, message }
}

fn to_diagnostic(problem: &Problem, text: &str, file: &str, root: Option<&Spanned<DeTable<'_>>>) -> Diagnostic {
    let span = root.and_then(|root| {
        // Fall back to the closest enclosing item when the exact one is absent (a
        // missing field is reported at its table).
        (0..=problem.path.len()).rev().find_map(|n| problem.path.get(..n).and_then(|p| locate(root, p)))
    });
    let (line, column) = span.map_or((1, 1), |s| line_column(text, s.start));
    Diagnostic { severity: problem.severity, file: file.to_owned(), line, column, message: problem.message.clone() }
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

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text.get(line_start..offset).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
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
    fn syntax_errors_are_located() {
        let error = Policy::from_toml_str("[policy]\nname = \n", "x.toml").unwrap_err();
        assert_eq!(error.diagnostics()[0].line(), 2, "{error}");
    }

    #[test]
    fn line_columns_count_characters() {
        assert_eq!(line_column("ab\n日本x", 9), (2, 3));
    }
}
