//! Golden tests of a policy: a TOML file names a policy, the consent events recorded
//! before the cases, and cases of request → expected decision (`allowed`, `code`, and
//! optionally `clause`). The `consent-guard test` command runs these files; a service
//! runs the same files in its own `cargo test` through [`run_file`].
//!
//! The format is described in `docs/interchange.md` ("Golden test files"):
//!
//! ```toml
//! policy = "../../examples/policies/exmo.toml"   # relative to this file
//! at = "2026-06-01T00:00:00Z"                    # the guard's clock
//! events = '''
//! {"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
//! '''
//!
//! [[case]]
//! name = "training with separate consent"
//! request = { subject = "u1", purpose = "ai_training.model_training", categories = ["behavior.log"], deidentification = "anonymized" }
//! allowed = true
//! code = "consent_given"
//! clause = "exmo.training"
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let report = consent_guard::testing::run_file("tests/golden/exmo.toml")?;
//! assert!(report.is_success(), "{report}");
//! # Ok(())
//! # }
//! ```
//!
//! Each case is decided by a fresh guard that has recorded the file's events and then
//! the case's own `events`, at the case's `at`, else the file's `at`, else the present
//! time. A request that names its own `at` is a what-if (as in `consent-guard check`).

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{AccessRequest, ConsentEvent, FixedClock, Guard, Policy, PolicyError};

/// Why a golden file could not be run (as opposed to a case that failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestingError {
    /// The golden file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The path.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The golden file is not valid: not TOML, an unknown field, a bad event or
    /// request; `file:line:col` when known.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        /// The path.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The policy the file names could not be loaded.
    #[error("{file}: policy: {source}")]
    Policy {
        /// The golden file.
        file: String,
        /// Why the policy did not load.
        #[source]
        source: PolicyError,
    },
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDocument {
    policy: String,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    events: Option<toml::Spanned<toml::Value>>,
    #[serde(default, rename = "case")]
    cases: Vec<toml::Spanned<CaseDocument>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseDocument {
    #[serde(default)]
    name: Option<String>,
    request: toml::Value,
    allowed: bool,
    code: String,
    #[serde(default)]
    clause: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    events: Option<toml::Value>,
}

/// A loaded golden file, ready to run.
#[derive(Debug)]
pub struct GoldenFile {
    file: String,
    policy_path: PathBuf,
    policy: Policy,
    at: Option<DateTime<Utc>>,
    events: Vec<ConsentEvent>,
    cases: Vec<Case>,
}

/// One case of a golden file.
#[derive(Debug)]
struct Case {
    name: String,
    line: usize,
    request_json: String,
    expected: Expected,
    at: Option<DateTime<Utc>>,
    events: Vec<ConsentEvent>,
}

/// What a case expects, or what the guard answered, as the interchange JSON spells it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expected {
    /// Allowed or denied.
    pub allowed: bool,
    /// The reason code.
    pub code: String,
    /// The clause (rule id) that decided; not checked when the case names none.
    pub clause: Option<String>,
}

/// The result of one case.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CaseResult {
    /// The case's name, or `case N` when it has none.
    pub name: String,
    /// The 1-based line of the case in the golden file.
    pub line: usize,
    /// The request, as JSON.
    pub request: String,
    /// What the case expects.
    pub expected: Expected,
    /// What the guard answered (clause always filled in when the decision has one).
    pub actual: Expected,
    /// The decision's message, for people.
    pub message: String,
}

impl CaseResult {
    /// Whether the answer matches the expectation (the clause only when expected).
    pub fn passed(&self) -> bool {
        self.expected.allowed == self.actual.allowed
            && self.expected.code == self.actual.code
            && (self.expected.clause.is_none() || self.expected.clause == self.actual.clause)
    }
}

/// The results of one golden file. `Display` prints every failure with a diff of
/// expected (`-`) and actual (`+`), then `N passed, M failed`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// The golden file.
    pub file: String,
    /// The policy it tested (name and version as the policy says).
    pub policy: String,
    /// One result per case, in file order.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed()).count()
    }
    /// How many cases failed.
    pub fn failed(&self) -> usize {
        self.results.len().saturating_sub(self.passed())
    }
    /// Whether every case passed.
    pub fn is_success(&self) -> bool {
        self.results.iter().all(CaseResult::passed)
    }
    /// The failures, each with its diff, as printed by `Display` (empty when all passed).
    pub fn failures(&self) -> String {
        let mut text = String::new();
        for result in self.results.iter().filter(|r| !r.passed()) {
            text.push_str(&diff(&self.file, result));
        }
        text
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.failures())?;
        write!(f, "{}: {} passed, {} failed", self.file, self.passed(), self.failed())
    }
}

/// One failing case: where, the request, and expected against actual field by field.
fn diff(file: &str, result: &CaseResult) -> String {
    let mut text = format!(
        "FAIL {file}:{}: {}\n  request: {}\n  --- expected\n  +++ actual\n",
        result.line, result.name, result.request
    );
    let mut field = |name: &str, expected: String, actual: String, checked: bool| {
        if !checked || expected == actual {
            text.push_str(&format!("   {name} = {actual}\n"));
        } else {
            text.push_str(&format!("  -{name} = {expected}\n  +{name} = {actual}\n"));
        }
    };
    let (e, a) = (&result.expected, &result.actual);
    field("allowed", e.allowed.to_string(), a.allowed.to_string(), true);
    field("code", quoted(Some(&e.code)), quoted(Some(&a.code)), true);
    field("clause", quoted(e.clause.as_deref()), quoted(a.clause.as_deref()), e.clause.is_some());
    text.push_str(&format!("  message: {}\n", result.message));
    text
}

fn quoted(value: Option<&str>) -> String {
    value.map_or_else(|| "(none)".to_owned(), |v| format!("\"{v}\""))
}

/// Loads and runs a golden file.
///
/// # Errors
///
/// When the file cannot be read or is invalid, or its policy does not load: see
/// [`TestingError`]. A case that fails is not an error: it is in the [`Report`].
pub fn run_file(path: impl AsRef<Path>) -> Result<Report, TestingError> {
    GoldenFile::from_file(path)?.run()
}

impl GoldenFile {
    /// Loads a golden file and the policy it names (relative to the file).
    ///
    /// # Errors
    ///
    /// See [`TestingError`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<GoldenFile, TestingError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TestingError::Io { file: file.clone(), source })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        GoldenFile::from_toml_str(&text, &file, base)
    }

    /// Loads a golden file from TOML text; `file` names it in messages, and the policy
    /// path is relative to `base`.
    ///
    /// # Errors
    ///
    /// See [`TestingError`].
    pub fn from_toml_str(text: &str, file: &str, base: &Path) -> Result<GoldenFile, TestingError> {
        let invalid = |offset: Option<usize>, message: String| {
            let (line, column) = offset.map_or((1, 1), |o| locate(text, o));
            TestingError::Invalid { file: file.to_owned(), line, column, message }
        };
        let document: FileDocument =
            toml::from_str(text).map_err(|e| invalid(e.span().map(|s| s.start), e.message().to_owned()))?;
        let policy_path = base.join(&document.policy);
        let policy = Policy::from_toml_file(&policy_path)
            .map_err(|source| TestingError::Policy { file: file.to_owned(), source })?;
        let at = document.at.as_deref().map(|t| time(t).map_err(|m| invalid(None, format!("at: {m}")))).transpose()?;
        let events = match &document.events {
            None => Vec::new(),
            Some(spanned) => parse_events(spanned.get_ref())
                .map_err(|m| invalid(Some(spanned.span().start), format!("events: {m}")))?,
        };
        let mut cases = Vec::with_capacity(document.cases.len());
        for (index, spanned) in document.cases.iter().enumerate() {
            let start = spanned.span().start;
            let case = spanned.get_ref();
            let bad = |m: String| invalid(Some(start), m);
            let request_json = match &case.request {
                toml::Value::String(json) => json.clone(),
                other => json(other).to_string(),
            };
            // Checked now, so that a malformed request is reported at its case.
            let request: AccessRequest<'_> =
                serde_json::from_str(&request_json).map_err(|e| bad(format!("request: {e}")))?;
            policy.validate_request(&request).map_err(|e| bad(format!("request: {e}")))?;
            let case_at = case.at.as_deref().map(|t| time(t).map_err(|m| bad(format!("at: {m}")))).transpose()?;
            let case_events = match &case.events {
                None => Vec::new(),
                Some(value) => parse_events(value).map_err(|m| bad(format!("events: {m}")))?,
            };
            let number = index.saturating_add(1);
            cases.push(Case {
                name: case.name.clone().unwrap_or_else(|| format!("case {number}")),
                line: locate(text, start).0,
                request_json,
                expected: Expected { allowed: case.allowed, code: case.code.clone(), clause: case.clause.clone() },
                at: case_at,
                events: case_events,
            });
        }
        Ok(GoldenFile { file: file.to_owned(), policy_path, policy, at, events, cases })
    }

    /// The policy file the golden file names, resolved against the golden file.
    pub fn policy_path(&self) -> &Path {
        &self.policy_path
    }

    /// Runs every case.
    ///
    /// # Errors
    ///
    /// [`TestingError::Invalid`] when the guard refuses one of the events (an unknown
    /// name, a grant under a later policy version…).
    pub fn run(&self) -> Result<Report, TestingError> {
        let mut results = Vec::with_capacity(self.cases.len());
        for case in &self.cases {
            let now = case.at.or(self.at).unwrap_or_else(Utc::now);
            let events: Vec<&ConsentEvent> = self.events.iter().chain(&case.events).collect();
            let (actual, message) = decide(&self.policy, now, &events, &case.request_json).map_err(|message| {
                TestingError::Invalid { file: self.file.clone(), line: case.line, column: 1, message }
            })?;
            results.push(CaseResult {
                name: case.name.clone(),
                line: case.line,
                request: case.request_json.clone(),
                expected: case.expected.clone(),
                actual,
                message,
            });
        }
        let header = &self.policy.document().policy;
        Ok(Report { file: self.file.clone(), policy: format!("{} {}", header.name, header.version), results })
    }
}

/// One decision by a fresh guard at `now` that has recorded `events`; a request with
/// its own `at` is a what-if. The answer, and the decision's message.
fn decide(
    policy: &Policy,
    now: DateTime<Utc>,
    events: &[&ConsentEvent],
    request_json: &str,
) -> Result<(Expected, String), String> {
    let guard = Guard::builder(policy.clone()).clock(FixedClock::new(now)).build().map_err(|e| e.to_string())?;
    for event in events {
        guard.record(event).map_err(|e| format!("event refused ({}): {e}", event.subject()))?;
    }
    crate::interchange::answer::answer(&guard, request_json.as_bytes(), |decision| {
        let actual = Expected {
            allowed: decision.allowed(),
            code: decision.code().to_string(),
            clause: decision.clause().map(str::to_owned),
        };
        (actual, decision.message().into_owned())
    })
    .map_err(|e| format!("request: {e}"))
}

/// The same engine from Rust, without a file: a policy, consent events as JSON lines,
/// and requests as interchange JSON, for a service's own `cargo test`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use consent_guard::testing::Scenario;
/// let policy = consent_guard::Policy::from_toml_file("examples/policies/exmo.toml")?;
/// let scenario = Scenario::new(policy)
///     .at("2026-06-01T00:00:00Z")?
///     .events(r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#)?;
/// let training = r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#;
/// let result = scenario.expect(training, true, "consent_given", Some("exmo.training"))?;
/// assert!(result.passed(), "{}", result.diff());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Scenario {
    policy: Policy,
    at: Option<DateTime<Utc>>,
    events: Vec<ConsentEvent>,
}

impl Scenario {
    /// A scenario on `policy`, with no events, deciding at the present time.
    pub fn new(policy: Policy) -> Scenario {
        Scenario { policy, at: None, events: Vec::new() }
    }

    /// The guard's clock (RFC 3339) for every check.
    ///
    /// # Errors
    ///
    /// When `at` is not an RFC 3339 time.
    pub fn at(mut self, at: &str) -> Result<Scenario, TestingError> {
        self.at = Some(time(at).map_err(|message| TestingError::Invalid {
            file: "<scenario>".to_owned(),
            line: 1,
            column: 1,
            message,
        })?);
        Ok(self)
    }

    /// Adds consent events given as JSON lines (blank lines skipped).
    ///
    /// # Errors
    ///
    /// When a line is not a consent event; its line number is given.
    pub fn events(mut self, json_lines: &str) -> Result<Scenario, TestingError> {
        for (index, line) in json_lines.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(line).map_err(|e| TestingError::Invalid {
                file: "<scenario>".to_owned(),
                line: index.saturating_add(1),
                column: 1,
                message: format!("events: {e}"),
            })?;
            self.events.push(event);
        }
        Ok(self)
    }

    /// Decides one request (interchange JSON) and compares it with the expectation
    /// (`clause` checked when given).
    ///
    /// # Errors
    ///
    /// When the request is not valid, or the guard refuses an event.
    pub fn expect(
        &self,
        request_json: &str,
        allowed: bool,
        code: &str,
        clause: Option<&str>,
    ) -> Result<CaseResult, TestingError> {
        let now = self.at.unwrap_or_else(Utc::now);
        let events: Vec<&ConsentEvent> = self.events.iter().collect();
        let (actual, message) = decide(&self.policy, now, &events, request_json)
            .map_err(|message| TestingError::Invalid { file: "<scenario>".to_owned(), line: 1, column: 1, message })?;
        Ok(CaseResult {
            name: request_json.to_owned(),
            line: 0,
            request: request_json.to_owned(),
            expected: Expected { allowed, code: code.to_owned(), clause: clause.map(str::to_owned) },
            actual,
            message,
        })
    }
}

impl CaseResult {
    /// Expected (`-`) against actual (`+`), field by field, as `consent-guard test`
    /// prints a failure.
    pub fn diff(&self) -> String {
        diff("<scenario>", self)
    }
}

/// Events as JSON lines in a string, or as a list of tables.
fn parse_events(value: &toml::Value) -> Result<Vec<ConsentEvent>, String> {
    let parse = |json: serde_json::Value| serde_json::from_value::<ConsentEvent>(json).map_err(|e| e.to_string());
    match value {
        toml::Value::String(lines) => lines
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_str::<ConsentEvent>(line).map_err(|e| format!("{e}: {line}")))
            .collect(),
        toml::Value::Array(list) => list.iter().map(|v| parse(json(v))).collect(),
        _ => Err("expected JSON lines in a string, or a list of tables".to_owned()),
    }
}

/// A TOML value as JSON; TOML date-times become RFC 3339 strings.
fn json(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(list) => J::Array(list.iter().map(json).collect()),
        toml::Value::Table(table) => J::Object(table.iter().map(|(k, v)| (k.clone(), json(v))).collect()),
    }
}

fn time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{text}` is not an RFC 3339 time like 2026-06-01T00:00:00Z ({e})"))
}

/// The 1-based line and column (in characters) of a byte offset.
fn locate(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count().saturating_add(1);
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()).saturating_add(1);
    (line, column)
}
