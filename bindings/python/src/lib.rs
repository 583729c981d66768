//! consent-guard for Python: the native module `consent_guard._native` behind the
//! `consent_guard` package (`bindings/python/python/consent_guard`).
//!
//! It uses the library's public API only, and owns the edge between Python objects and
//! the library's interchange JSON:
//! - `Policy` (load, explain), `Guard` (record, check, history, filter), `Decision`,
//!   `run_golden` (golden test files);
//! - `Filter`: the compiled consent filter (`consent_guard::filter`) over any Arrow
//!   object that speaks the Arrow PyCapsule interface (PyArrow, Polars, DuckDB), and
//!   its PostgreSQL `WHERE` fragment;
//! - the exceptions, one per boundary, with the command line's `field: message` words.
//!
//! Requests and events are read as the HTTP service reads them: a `str` or `bytes` is
//! taken as JSON text; a request given as a dict is deserialized straight from the
//! Python objects (`de`), and anything that reader does not take goes the JSON way (the
//! dict walked into JSON text in Rust), so errors keep the reader's words. An event given
//! as a dict is walked into JSON. Work that touches no Python object (a batch, a mask)
//! runs with the GIL released; a single check releases it only when it may wait on
//! I/O (a store file or an audit log).
//! - `PreparedCheck`: one kind of access prepared once (`consent_guard::PreparedAccess`)
//!   and checked per subject, one at a time or a batch with one audit commit.

mod de;

use std::sync::{Arc, Mutex, PoisonError};

use arrow_array::ffi_stream::ArrowArrayStreamReader;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_pyarrow::{FromPyArrow, ToPyArrow};
use chrono::{DateTime, Utc};
use consent_guard::audit::{AuditLog, Durability};
use consent_guard::error::Severity;
use consent_guard::filter::{Apply, Counts, FilterSpec, RowFacts, RowTest, Snapshot};
use consent_guard::interchange::answer::{self, AnswerError};
use consent_guard::store::{MemoryConsentStore, RedbConsentStore};
use consent_guard::{AccessRequest, FixedClock, PreparedAccess, ReasonCode};
use consent_guard_filter::sql::{SqlOptions, SqlParam, SubjectType};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

create_exception!(consent_guard, ConsentGuardError, PyException, "The base of every consent-guard error.");
create_exception!(
    consent_guard,
    PolicyError,
    ConsentGuardError,
    "A policy that does not load; `diagnostics` lists every problem with its file, line and column."
);
create_exception!(
    consent_guard,
    RequestError,
    ConsentGuardError,
    "A request that is malformed or names what the policy does not know (`field: message`); `field` names the field."
);
create_exception!(
    consent_guard,
    EventError,
    ConsentGuardError,
    "A consent event that is malformed or that the guard refused; nothing was recorded. `field` names the field."
);
create_exception!(consent_guard, StoreError, ConsentGuardError, "The consent store or the audit log cannot be used.");
create_exception!(
    consent_guard,
    FilterError,
    ConsentGuardError,
    "A filter that cannot be compiled or applied, or data the mask cannot read."
);
create_exception!(consent_guard, GoldenError, ConsentGuardError, "A golden test file that cannot be read or run.");

/// The deepest nesting accepted in a request or event given as a dict (the JSON
/// reader has its own bound for text).
pub(crate) const DICT_DEPTH: usize = 64;

/// JSON text from a dict, a `str` or `bytes`.
fn json_bytes(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_cow()?.as_bytes().to_vec());
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if value.cast::<PyDict>().is_ok() {
        let json = to_json(value, 0, what)?;
        return serde_json::to_vec(&json).map_err(|error| PyValueError::new_err(format!("the {what}: {error}")));
    }
    Err(PyTypeError::new_err(format!(
        "a {what} is a dict or JSON text (str or bytes), not {}",
        value.get_type().name()?
    )))
}

/// A JSON value from Python's: walked in Rust rather than through `json.dumps`, which
/// costs a check several microseconds. Nesting is bounded by [`DICT_DEPTH`], which
/// also stops a dict that contains itself.
fn to_json(value: &Bound<'_, PyAny>, depth: usize, what: &str) -> PyResult<serde_json::Value> {
    use serde_json::Value;
    if depth > DICT_DEPTH {
        return Err(PyValueError::new_err(format!("the {what} is nested deeper than {DICT_DEPTH} levels")));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Value::String(text.to_cow()?.into_owned()));
    }
    // `bool` before `int`: in Python a bool is an int.
    if let Ok(flag) = value.cast::<pyo3::types::PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if value.cast::<pyo3::types::PyInt>().is_ok() {
        if let Ok(n) = value.extract::<i64>() {
            return Ok(Value::from(n));
        }
        if let Ok(n) = value.extract::<u64>() {
            return Ok(Value::from(n));
        }
        return Err(PyValueError::new_err(format!("the {what} holds an integer out of JSON's range")));
    }
    if let Ok(number) = value.cast::<pyo3::types::PyFloat>() {
        return serde_json::Number::from_f64(number.value()).map(Value::Number).ok_or_else(|| {
            PyValueError::new_err(format!("the {what} holds a number JSON cannot carry (NaN or infinite)"))
        });
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut object = serde_json::Map::with_capacity(dict.len());
        for (key, item) in dict.iter() {
            let key = key
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err(format!("the {what} has a key that is not a str")))?
                .to_cow()?
                .into_owned();
            object.insert(key, to_json(&item, depth + 1, what)?);
        }
        return Ok(Value::Object(object));
    }
    if let Ok(list) = value.cast::<PyList>() {
        return list.iter().map(|item| to_json(&item, depth + 1, what)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    if let Ok(tuple) = value.cast::<pyo3::types::PyTuple>() {
        return tuple
            .iter()
            .map(|item| to_json(&item, depth + 1, what))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    Err(PyTypeError::new_err(format!("the {what} holds a {}, which is not JSON", value.get_type().name()?)))
}

/// A Python value (dict, list…) from JSON text.
fn from_json(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

fn with_field(error: PyErr, py: Python<'_>, field: Option<&str>) -> PyErr {
    // Setting an attribute on a fresh exception cannot fail but for memory; the
    // message already names the field.
    let _ = error.value(py).setattr("field", field);
    error
}

fn request_error(py: Python<'_>, error: &AnswerError) -> PyErr {
    with_field(RequestError::new_err(error.to_string()), py, error.field())
}

/// A request read straight from a dict (`de`), or `None` when `value` is not a dict or
/// that reader does not take it: the caller then goes the JSON way, whose reader words
/// the error. Not validated against the policy.
fn read_dict(value: &Bound<'_, PyAny>) -> Option<AccessRequest<'static>> {
    use serde::Deserialize;
    if !value.is_exact_instance_of::<PyDict>() {
        return None;
    }
    AccessRequest::deserialize(de::PyDe::new(value)).ok()
}

/// A template (a request without its subject), validated against `policy`, with an
/// empty subject. `has_subject` is the error for a template that names one.
fn template_request(
    policy: &consent_guard::Policy,
    template: &Bound<'_, PyAny>,
    has_subject: &str,
) -> PyResult<AccessRequest<'static>> {
    let mut value: serde_json::Value = serde_json::from_slice(&json_bytes(template, "template")?)
        .map_err(|error| RequestError::new_err(format!("malformed JSON: {error}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(RequestError::new_err("a template is a JSON object"));
    };
    if object.contains_key("subject") {
        return Err(Python::attach(|py| {
            with_field(RequestError::new_err(has_subject.to_owned()), py, Some("subject"))
        }));
    }
    // The request reader wants a subject; the subject is named per check.
    object.insert("subject".to_owned(), serde_json::Value::String("template".to_owned()));
    let bytes = serde_json::to_vec(&value).map_err(|error| RequestError::new_err(error.to_string()))?;
    let mut request = answer::parse_request(policy, &bytes)
        .map_err(|error| Python::attach(|py| request_error(py, &error)))?
        .into_owned();
    request.subject = "".into();
    Ok(request)
}

/// The error for an empty subject, in the request reader's words.
fn empty_subject(py: Python<'_>) -> PyErr {
    request_error(py, &AnswerError::Malformed("subject: must not be empty".to_owned()))
}

fn event_error(py: Python<'_>, error: &AnswerError) -> PyErr {
    if error.is_store() {
        return StoreError::new_err(error.to_string());
    }
    with_field(EventError::new_err(error.to_string()), py, error.field())
}

fn parse_time(text: &str, what: &str) -> PyResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|error| PyValueError::new_err(format!("{what}: not an RFC 3339 time ({error})")))
}

/// A privacy policy, compiled once and validated.
#[pyclass(frozen, module = "consent_guard")]
struct Policy {
    inner: consent_guard::Policy,
}

impl Policy {
    fn error(py: Python<'_>, error: &consent_guard::PolicyError) -> PyErr {
        let exception = PolicyError::new_err(error.to_string());
        let diagnostics = || -> PyResult<Bound<'_, PyList>> {
            let list = PyList::empty(py);
            for d in error.diagnostics() {
                let entry = PyDict::new(py);
                entry.set_item("file", d.file())?;
                entry.set_item("line", d.line())?;
                entry.set_item("column", d.column())?;
                entry.set_item("message", d.message())?;
                entry.set_item("severity", if d.severity() == Severity::Error { "error" } else { "warning" })?;
                entry.set_item("warning", d.warning_name())?;
                entry.set_item("rule", d.rule())?;
                list.append(entry)?;
            }
            Ok(list)
        };
        match diagnostics() {
            Ok(list) => match exception.value(py).setattr("diagnostics", list) {
                Ok(()) => exception,
                Err(error) => error,
            },
            Err(error) => error,
        }
    }
}

#[pymethods]
impl Policy {
    /// Loads a policy from a TOML file.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Policy> {
        consent_guard::Policy::from_toml_file(&path)
            .map(|inner| Policy { inner })
            .map_err(|error| Policy::error(py, &error))
    }

    /// Loads a policy from TOML text; `file` names it in diagnostics.
    #[staticmethod]
    #[pyo3(signature = (text, file = "<string>"))]
    fn from_toml(py: Python<'_>, text: &str, file: &str) -> PyResult<Policy> {
        consent_guard::Policy::from_toml_str(text, file)
            .map(|inner| Policy { inner })
            .map_err(|error| Policy::error(py, &error))
    }

    /// The policy's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The policy's version.
    #[getter]
    fn version(&self) -> &str {
        self.inner.version()
    }

    /// A structured description of what the policy permits (`consent_guard::policy::explain`).
    /// `format="json"` gives JSON text, `format="dict"` the same as Python values.
    #[pyo3(signature = (format = "json"))]
    fn explain(&self, py: Python<'_>, format: &str) -> PyResult<Py<PyAny>> {
        let explanation = consent_guard::policy::explain::describe(&self.inner);
        let text = serde_json::to_string(&explanation).map_err(|error| PyValueError::new_err(error.to_string()))?;
        match format {
            "json" => Ok(PyString::new(py, &text).into_any().unbind()),
            "dict" => from_json(py, &text),
            other => Err(PyValueError::new_err(format!(
                "format: `{other}` is not one of json, dict (text, markdown and HTML: `consent-guard explain`)"
            ))),
        }
    }

    fn __repr__(&self) -> String {
        format!("Policy(name='{}', version='{}')", self.inner.name(), self.inner.version())
    }
}

/// The guard every access to personal data passes through.
#[pyclass(frozen, module = "consent_guard")]
struct Guard {
    inner: Arc<consent_guard::Guard>,
    /// Whether a check may wait on I/O: on the durable audit log, or on the state while
    /// a `record` writes to the embedded store. Only then is the GIL released for one
    /// check, which otherwise costs less than releasing it.
    waits: bool,
}

#[pymethods]
impl Guard {
    /// A guard on `policy`. `store`: a path to the embedded consent store (created if
    /// missing), or an in-memory store. `audit`: a directory for the durable audit log, or no
    /// audit. `now`: a fixed clock (RFC 3339), for tests and replays.
    #[new]
    #[pyo3(signature = (policy, store = None, audit = None, now = None))]
    fn new(
        policy: &Policy,
        store: Option<std::path::PathBuf>,
        audit: Option<std::path::PathBuf>,
        now: Option<&str>,
    ) -> PyResult<Guard> {
        let waits = audit.is_some() || store.is_some();
        let mut builder = consent_guard::Guard::builder(policy.inner.clone());
        let store: Arc<dyn consent_guard::store::ConsentStore> = match store {
            Some(path) => {
                Arc::new(RedbConsentStore::open(&path).map_err(|error| StoreError::new_err(error.to_string()))?)
            }
            // Kept in memory, so that `history` answers as it does with a file.
            None => Arc::new(MemoryConsentStore::default()),
        };
        builder = builder.store(Arc::clone(&store));
        if let Some(dir) = audit {
            // Pseudonyms under the store's subject keys: an erasure in the store forgets
            // the subject's records too, and an export finds them through the key.
            let options = consent_guard::audit::AuditLogOptions::new(Durability::Synced)
                .subject_keys(Arc::new(consent_guard::store::StoreKeys(store)));
            let log = AuditLog::open_with(&dir, options).map_err(|error| StoreError::new_err(error.to_string()))?;
            builder = builder.audit(Arc::new(log));
        }
        if let Some(now) = now {
            builder = builder.clock(FixedClock::new(parse_time(now, "now")?));
        }
        let inner = builder.build().map_err(|error| StoreError::new_err(error.to_string()))?;
        Ok(Guard { inner: Arc::new(inner), waits })
    }

    /// The policy the guard enforces.
    #[getter]
    fn policy(&self) -> Policy {
        Policy { inner: self.inner.policy().clone() }
    }

    /// Records one consent event (a dict or JSON text, as `consent-guard record` reads).
    fn record(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = json_bytes(event, "event")?;
        let guard = &self.inner;
        py.detach(|| answer::record(guard, &bytes)).map_err(|error| event_error(py, &error))
    }

    /// Decides one access request (a dict or JSON text, as `consent-guard check` reads):
    /// at the guard's clock, or as a what-if at the request's own `at`.
    fn check(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Decision> {
        if let Some(parsed) = read_dict(request) {
            answer::validate(self.inner.policy(), &parsed).map_err(|error| request_error(py, &error))?;
            let guard = &self.inner;
            let decide = || answer::decide(guard, &parsed).into_owned();
            let inner = if self.waits { py.detach(decide) } else { decide() };
            return Ok(Decision { inner });
        }
        let bytes = json_bytes(request, "request")?;
        let guard = &self.inner;
        let answer = || answer::answer(guard, &bytes, |decision| decision.into_owned());
        if self.waits { py.detach(answer) } else { answer() }
            .map(|inner| Decision { inner })
            .map_err(|error| request_error(py, &error))
    }

    /// The subject's consent history: the events recorded about them, oldest first.
    fn history(&self, py: Python<'_>, subject: &str) -> PyResult<Py<PyAny>> {
        let history = self.inner.history(subject).map_err(|error| StoreError::new_err(error.to_string()))?;
        let text = serde_json::to_string(&history).map_err(|error| StoreError::new_err(error.to_string()))?;
        from_json(py, &text)
    }

    /// Compiles the access `template` (a request without its subject) and a row
    /// description into a consent filter over tables of rows.
    #[pyo3(signature = (template, subject_column, collected_at = None, collected_session = None, max_staleness_seconds = 1.0))]
    fn filter(
        &self,
        template: &Bound<'_, PyAny>,
        subject_column: &str,
        collected_at: Option<&str>,
        collected_session: Option<&str>,
        max_staleness_seconds: f64,
    ) -> PyResult<Filter> {
        let request = template_request(
            self.inner.policy(),
            template,
            "subject: a filter's template has no subject (the rows name theirs)",
        )?;
        let mut rows = RowFacts::new(subject_column);
        if let Some(column) = collected_at {
            rows = rows.collected_at(column);
        }
        if let Some(column) = collected_session {
            rows = rows.collected_session(column);
        }
        if !(max_staleness_seconds.is_finite() && (0.0..=31_536_000.0).contains(&max_staleness_seconds)) {
            return Err(PyValueError::new_err("max_staleness_seconds: between 0 and one year"));
        }
        let spec =
            FilterSpec::new(request, rows).max_staleness(std::time::Duration::from_secs_f64(max_staleness_seconds));
        let filter = self.inner.filter(spec).map_err(|error| FilterError::new_err(error.to_string()))?;
        let snapshot = self.inner.snapshot(&filter).map_err(|error| FilterError::new_err(error.to_string()))?;
        Ok(Filter { guard: Arc::clone(&self.inner), filter, snapshot: Mutex::new(snapshot) })
    }

    /// Prepares the access `template` (a request without its subject, as a dict or JSON
    /// text) for checking many subjects: what depends on the request alone is decided
    /// once, here. Each `PreparedCheck.check(subject)` answers and audits exactly what
    /// `check` answers for the template with that subject. A template with its own `at`
    /// is refused: a prepared check decides at the guard's clock (a what-if goes through
    /// `check`).
    fn prepare(&self, template: &Bound<'_, PyAny>) -> PyResult<PreparedCheck> {
        let request = template_request(
            self.inner.policy(),
            template,
            "subject: a prepared check's template has no subject (each check names one)",
        )?;
        if request.at.is_some() {
            return Err(Python::attach(|py| {
                with_field(
                    RequestError::new_err(
                        "at: a prepared check decides at the guard's clock; a what-if is a Guard.check of the full request",
                    ),
                    py,
                    Some("at"),
                )
            }));
        }
        let owner = Prepared { guard: Arc::clone(&self.inner), template: request, waits: self.waits };
        Ok(PreparedCheck { inner: PreparedCell::new(owner, |owner| owner.guard.prepare(&owner.template)) })
    }

    /// `prepare(template).check_many(subjects, codes=codes)`: the access for every
    /// subject of a list, in one call with the GIL released and one audit commit.
    #[pyo3(signature = (template, subjects, codes = false))]
    fn check_many(
        &self,
        py: Python<'_>,
        template: &Bound<'_, PyAny>,
        subjects: &Bound<'_, PyAny>,
        codes: bool,
    ) -> PyResult<Py<PyList>> {
        self.prepare(template)?.check_many(py, subjects, codes)
    }

    /// Test hook: whether a request given as a dict is read straight from the Python
    /// objects (`True`) or goes the JSON way (`False`: a malformed request, whose error
    /// the JSON reader words).
    fn _reads_directly(&self, request: &Bound<'_, PyAny>) -> bool {
        read_dict(request).is_some()
    }

    /// Benchmark hook (`bindings/python/benches/bench.py`): the Rust check of
    /// `request` run `n` times with no Python in between; seconds in all. The native
    /// baseline a Python check is measured against, in the same run.
    fn _native_check_seconds(&self, py: Python<'_>, request: &Bound<'_, PyAny>, n: u64) -> PyResult<f64> {
        let bytes = json_bytes(request, "request")?;
        let guard = &self.inner;
        let parsed = answer::parse_request(guard.policy(), &bytes).map_err(|error| request_error(py, &error))?;
        Ok(py.detach(|| {
            let started = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(answer::decide(guard, std::hint::black_box(&parsed)).code());
            }
            started.elapsed().as_secs_f64()
        }))
    }

    fn __repr__(&self) -> String {
        let policy = self.inner.policy();
        format!("Guard(policy='{}', version='{}')", policy.name(), policy.version())
    }
}

/// The guard's answer to one request.
#[pyclass(frozen, module = "consent_guard")]
struct Decision {
    inner: consent_guard::Decision<'static>,
}

#[pymethods]
impl Decision {
    /// Whether the access is allowed.
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.allowed()
    }

    /// The stable reason code (`consent_given`, `consent_missing`, …).
    #[getter]
    fn code(&self) -> &'static str {
        self.inner.code().as_str()
    }

    /// The id of the rule that decided, if one did.
    #[getter]
    fn clause(&self) -> Option<&str> {
        self.inner.clause()
    }

    /// The version of the policy that decided.
    #[getter]
    fn policy_version(&self) -> &str {
        self.inner.policy_version()
    }

    /// The legal basis of an allow.
    #[getter]
    fn basis(&self) -> Option<&'static str> {
        self.inner.basis().map(consent_guard::LegalBasis::as_str)
    }

    /// Why, in a sentence.
    fn explain(&self) -> String {
        self.inner.message().into_owned()
    }

    /// The decision as the command line and the HTTP service print it.
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let text = serde_json::to_string(&self.inner).map_err(|error| PyValueError::new_err(error.to_string()))?;
        from_json(py, &text)
    }

    fn __bool__(&self) -> bool {
        self.inner.allowed()
    }

    fn __repr__(&self) -> String {
        // The subject is personal data: never printed.
        format!(
            "Decision(allowed={}, code='{}', clause={}, subject=<redacted>)",
            if self.inner.allowed() { "True" } else { "False" },
            self.inner.code().as_str(),
            self.inner.clause().map_or_else(|| "None".to_owned(), |clause| format!("'{clause}'"))
        )
    }
}

/// What a prepared check owns: the guard and the template its `PreparedAccess` borrows.
struct Prepared {
    guard: Arc<consent_guard::Guard>,
    template: AccessRequest<'static>,
    /// As `Guard::waits`.
    waits: bool,
}

type Access<'a> = PreparedAccess<'a>;

self_cell::self_cell!(
    /// A `PreparedAccess` together with the guard and template it borrows.
    struct PreparedCell {
        owner: Prepared,
        #[covariant]
        dependent: Access,
    }
);

/// One kind of access prepared by `Guard.prepare`, checked per subject.
#[pyclass(frozen, module = "consent_guard")]
struct PreparedCheck {
    inner: PreparedCell,
}

#[pymethods]
impl PreparedCheck {
    /// Decides the access for `subject` now, at the guard's clock, and audits it: what
    /// `Guard.check` answers for the template with this subject.
    fn check(&self, py: Python<'_>, subject: &str) -> PyResult<Decision> {
        if subject.is_empty() {
            return Err(empty_subject(py));
        }
        let access = self.inner.borrow_dependent();
        let decide = || access.check(subject).into_owned();
        let inner = if self.inner.borrow_owner().waits { py.detach(decide) } else { decide() };
        Ok(Decision { inner })
    }

    /// Whether the access is allowed for `subject` now: `check(subject).allowed`,
    /// decided and audited the same way, without building a `Decision`.
    fn allows(&self, py: Python<'_>, subject: &str) -> PyResult<bool> {
        if subject.is_empty() {
            return Err(empty_subject(py));
        }
        let access = self.inner.borrow_dependent();
        let decide = || access.check(subject).allowed();
        Ok(if self.inner.borrow_owner().waits { py.detach(decide) } else { decide() })
    }

    /// Decides the access for every subject of `subjects` (a list or tuple of str) now,
    /// with the GIL released: all at one reading of the clock, all audit records kept
    /// with one commit before any answer is returned (if the commit fails, no allow is
    /// returned). A list of `allowed` (bool), or with `codes=True` of reason codes (str),
    /// in the order of `subjects`. An empty subject raises `RequestError` and nothing
    /// is decided.
    #[pyo3(signature = (subjects, codes = false))]
    fn check_many(&self, py: Python<'_>, subjects: &Bound<'_, PyAny>, codes: bool) -> PyResult<Py<PyList>> {
        let subjects = subject_list(subjects)?;
        if subjects.iter().any(String::is_empty) {
            return Err(empty_subject(py));
        }
        let access = self.inner.borrow_dependent();
        let answers: Vec<(bool, ReasonCode)> = py.detach(|| {
            access.check_batch(&subjects).into_iter().map(|decision| (decision.allowed(), decision.code())).collect()
        });
        let list = if codes {
            // One str object per code, shared by every answer that carries it.
            let mut names: Vec<(ReasonCode, Bound<'_, PyString>)> = Vec::new();
            let mut items = Vec::with_capacity(answers.len());
            for (_, code) in answers {
                let name = match names.iter().find(|(known, _)| *known == code) {
                    Some((_, name)) => name.clone(),
                    None => {
                        let name = PyString::new(py, code.as_str());
                        names.push((code, name.clone()));
                        name
                    }
                };
                items.push(name);
            }
            PyList::new(py, items)?
        } else {
            PyList::new(py, answers.into_iter().map(|(allowed, _)| allowed))?
        };
        Ok(list.unbind())
    }

    /// The purpose the access was prepared for.
    #[getter]
    fn purpose(&self) -> &str {
        self.inner.borrow_owner().template.purpose.as_str()
    }

    fn __repr__(&self) -> String {
        format!(
            "PreparedCheck(purpose='{}', policy_version='{}')",
            self.inner.borrow_owner().template.purpose.as_str(),
            self.inner.borrow_owner().guard.policy().version()
        )
    }
}

/// The subjects of a batch: a list or tuple of str (a str alone is refused, not read
/// as its characters).
fn subject_list(subjects: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if subjects.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("subjects: a list of str, not one str"));
    }
    subjects.extract::<Vec<String>>().map_err(|_| PyTypeError::new_err("subjects: a list or tuple of str"))
}

/// A compiled consent filter and its consent snapshot, decided by the guard.
#[pyclass(frozen, module = "consent_guard")]
struct Filter {
    guard: Arc<consent_guard::Guard>,
    filter: consent_guard::filter::Filter,
    snapshot: Mutex<Snapshot>,
}

/// The batches of any Arrow object: a stream (`__arrow_c_stream__`: PyArrow Table and
/// RecordBatchReader, Polars DataFrame, DuckDB relation) or one batch
/// (`__arrow_c_array__`). Read with the GIL held: a stream may be produced by Python.
fn batches(data: &Bound<'_, PyAny>) -> PyResult<Vec<RecordBatch>> {
    if data.hasattr("__arrow_c_stream__")? {
        let reader = ArrowArrayStreamReader::from_pyarrow_bound(data)?;
        return reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| FilterError::new_err(format!("reading the Arrow stream: {error}")));
    }
    if data.hasattr("__arrow_c_array__")? {
        return Ok(vec![RecordBatch::from_pyarrow_bound(data)?]);
    }
    Err(PyTypeError::new_err(format!(
        "mask takes an Arrow table or batch (an object with __arrow_c_stream__ or __arrow_c_array__), not {}",
        data.get_type().name()?
    )))
}

impl Filter {
    /// Refreshes the snapshot from the store and the clock, and applies the filter now.
    fn refreshed(&self) -> PyResult<std::sync::MutexGuard<'_, Snapshot>> {
        let mut snapshot = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        snapshot.refresh(&self.guard, &self.filter).map_err(|error| FilterError::new_err(error.to_string()))?;
        Ok(snapshot)
    }

    fn counts_dict<'py>(py: Python<'py>, counts: &Counts) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (code, n) in counts.iter() {
            dict.set_item(code.as_str(), n)?;
        }
        Ok(dict)
    }
}

#[pymethods]
impl Filter {
    /// The rows of `data` the guard allows now: a PyArrow boolean array (never null),
    /// and the rows by reason code. One audit record is written for the whole call,
    /// before the mask is returned.
    fn mask<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<(Py<PyAny>, Bound<'py, PyDict>)> {
        let batches = batches(data)?;
        let (mask, counts) = py.detach(|| -> PyResult<(BooleanArray, Counts)> {
            let snapshot = self.refreshed()?;
            // A refresh stamps the guard's clock: the rows are decided as of now.
            let now = snapshot.watermark().at;
            let application = self
                .filter
                .apply(&snapshot, now, Apply::Live)
                .map_err(|error| FilterError::new_err(error.to_string()))?;
            let mut counts = Counts::default();
            let mut masks = Vec::with_capacity(batches.len());
            for batch in &batches {
                let masked = consent_guard_filter::mask(&application, batch)
                    .map_err(|error| FilterError::new_err(error.to_string()))?;
                counts.merge(&masked.counts);
                masks.push(masked.mask);
            }
            let parts: Vec<&dyn Array> = masks.iter().map(|mask| mask as &dyn Array).collect();
            let mask = if parts.is_empty() {
                BooleanArray::from(Vec::<bool>::new())
            } else {
                let joined =
                    arrow_select::concat::concat(&parts).map_err(|error| FilterError::new_err(error.to_string()))?;
                joined
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .cloned()
                    .ok_or_else(|| FilterError::new_err("the mask is not boolean"))?
            };
            // Release no row before the record of this application is kept.
            application.finish(&self.guard, &counts, None).map_err(|error| StoreError::new_err(error.to_string()))?;
            Ok((mask, counts))
        })?;
        Ok((mask.to_data().to_pyarrow(py)?.unbind(), Filter::counts_dict(py, &counts)?))
    }

    /// Benchmark hook (`bindings/python/benches/bench.py`): the Rust mask kernel over
    /// `data`'s batches, already imported, run `n` times; seconds in all. The native
    /// baseline `mask` is measured against, in the same run.
    fn _native_mask_seconds(&self, py: Python<'_>, data: &Bound<'_, PyAny>, n: u64) -> PyResult<f64> {
        let batches = batches(data)?;
        py.detach(|| {
            let snapshot = self.refreshed()?;
            let application = self
                .filter
                .apply(&snapshot, snapshot.watermark().at, Apply::Live)
                .map_err(|error| FilterError::new_err(error.to_string()))?;
            let started = std::time::Instant::now();
            for _ in 0..n {
                for batch in &batches {
                    let masked = consent_guard_filter::mask(&application, batch)
                        .map_err(|error| FilterError::new_err(error.to_string()))?;
                    std::hint::black_box(masked);
                }
            }
            Ok(started.elapsed().as_secs_f64())
        })
    }

    /// A PostgreSQL fragment for the `WHERE` of a query over `rows` (a table or alias),
    /// with its parameters (`$first_parameter`…), against the snapshot loaded into
    /// `snapshot_table` (see `snapshot()`). `subject_type`: `text` or `bigint`.
    #[pyo3(signature = (rows, snapshot_table, subject_type = "text", first_parameter = 1))]
    fn where_sql<'py>(
        &self,
        py: Python<'py>,
        rows: &str,
        snapshot_table: &str,
        subject_type: &str,
        first_parameter: usize,
    ) -> PyResult<(String, Bound<'py, PyList>)> {
        let subject_type = match subject_type {
            "text" => SubjectType::Text,
            "bigint" => SubjectType::BigInt,
            other => return Err(PyValueError::new_err(format!("subject_type: `{other}` is not text or bigint"))),
        };
        let snapshot = self.refreshed()?;
        let application = self
            .filter
            .apply(&snapshot, snapshot.watermark().at, Apply::Live)
            .map_err(|error| FilterError::new_err(error.to_string()))?;
        let mut options = SqlOptions::new(rows, snapshot_table);
        options.subject_type = subject_type;
        options.first_parameter = first_parameter;
        let fragment = consent_guard_filter::sql::fragment(&application, &options)
            .map_err(|error| FilterError::new_err(error.to_string()))?;
        let params = PyList::empty(py);
        for param in fragment.params() {
            match param {
                SqlParam::BigInt(value) => params.append(value)?,
                SqlParam::Text(value) => params.append(value)?,
                _ => return Err(FilterError::new_err("a parameter of a kind this binding does not know")),
            }
        }
        Ok((fragment.text().to_owned(), params))
    }

    /// The consent snapshot as a PyArrow record batch (one row per subject: codes for
    /// rows that pass and fail the row test, `until_ms`, and the cutoff and code of an
    /// end of the purpose, `ended_through_ms` and `ended`; the watermark in the schema
    /// metadata), to load into a database beside the data.
    fn snapshot(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let snapshot = self.refreshed()?;
        let batch =
            consent_guard_filter::snapshot_batch(&snapshot).map_err(|error| FilterError::new_err(error.to_string()))?;
        drop(snapshot);
        Ok(batch.to_pyarrow(py)?.unbind())
    }

    /// The same decision as the terms of a join, for engines that join rather than call
    /// the guard per batch (a Spark broadcast semi-join: `examples/spark_training_set.py`),
    /// all read from one refresh of the snapshot at time T:
    /// - `snapshot`: the snapshot batch (as `snapshot()`), `at_ms`: T;
    /// - `subject_column`; `collected_column` (the collection time's column, or `None`);
    ///   `unknown_fresh_allowed`, `unknown_stale_allowed`: the answers for a subject
    ///   without an entry;
    /// - `row_test`: `none` (every row passes), `fixed` (`passes` for every row),
    ///   `collected_within` (`column`, `limit_ms`, and `low_ms` ≤ collection time ≤
    ///   `high_ms` at T, in whole milliseconds; no time fails) or `same_session`
    ///   (`column` equal to `session`; no session fails).
    ///
    /// A row of a subject with a cutoff (`ended_through_ms`) collected up to it, without
    /// a time, or after T takes `ended_allowed`. Any other row passes or fails the test;
    /// it is kept when its subject's `fresh_allowed` (passes) or `stale_allowed` (fails)
    /// is true. Every row needs T before its subject's `until_ms`. Like
    /// `where_sql`, it writes no audit record: the job that uses it keeps its own.
    fn join_spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = self.refreshed()?;
        let application = self
            .filter
            .apply(&snapshot, snapshot.watermark().at, Apply::Live)
            .map_err(|error| FilterError::new_err(error.to_string()))?;
        let spec = PyDict::new(py);
        spec.set_item("at_ms", application.at_millis())?;
        spec.set_item("subject_column", &self.filter.rows().subject)?;
        // The column the rows' collection time is in: a subject's cutoff after an end
        // of the purpose (`ended_through_ms`) is tested against it.
        spec.set_item("collected_column", self.filter.rows().collected_at.as_deref())?;
        spec.set_item("unknown_fresh_allowed", snapshot.unknown().fresh().is_allow())?;
        spec.set_item("unknown_stale_allowed", snapshot.unknown().stale().is_allow())?;
        match self.filter.row_test() {
            RowTest::None => spec.set_item("row_test", "none")?,
            RowTest::Fixed { passes } => {
                spec.set_item("row_test", "fixed")?;
                spec.set_item("passes", *passes)?;
            }
            RowTest::CollectedWithin { column, limit_ms } => {
                let (low, high) = application
                    .collected_window()
                    .ok_or_else(|| FilterError::new_err("a retention test without its window"))?;
                spec.set_item("row_test", "collected_within")?;
                spec.set_item("column", column)?;
                spec.set_item("limit_ms", *limit_ms)?;
                spec.set_item("low_ms", low)?;
                spec.set_item("high_ms", high)?;
            }
            RowTest::SameSession { column, session } => {
                spec.set_item("row_test", "same_session")?;
                spec.set_item("column", column)?;
                spec.set_item("session", session.as_deref())?;
            }
            // A test this binding does not know cannot be written as a join: refused,
            // not guessed.
            _ => return Err(FilterError::new_err("a row test this binding cannot express as a join")),
        }
        let batch =
            consent_guard_filter::snapshot_batch(&snapshot).map_err(|error| FilterError::new_err(error.to_string()))?;
        drop(snapshot);
        spec.set_item("snapshot", batch.to_pyarrow(py)?)?;
        Ok(spec)
    }

    fn __repr__(&self) -> String {
        let snapshot = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        format!(
            "Filter(purpose='{}', policy_version='{}', subjects={})",
            self.filter.template().purpose.as_str(),
            self.filter.policy_version(),
            snapshot.len()
        )
    }
}

/// The outcome of a golden test file.
#[pyclass(frozen, module = "consent_guard")]
struct GoldenReport {
    inner: consent_guard::testing::Report,
}

#[pymethods]
impl GoldenReport {
    /// Cases that passed.
    #[getter]
    fn passed(&self) -> usize {
        self.inner.passed()
    }

    /// Cases that failed.
    #[getter]
    fn failed(&self) -> usize {
        self.inner.failed()
    }

    /// Whether every case passed.
    fn is_success(&self) -> bool {
        self.inner.is_success()
    }

    /// The failed cases, expected against actual.
    fn failures(&self) -> String {
        self.inner.failures()
    }

    fn __bool__(&self) -> bool {
        self.inner.is_success()
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        format!("GoldenReport(passed={}, failed={})", self.inner.passed(), self.inner.failed())
    }
}

/// Runs a golden test file (`docs/interchange.md`, "Golden test files").
#[pyfunction]
fn run_golden(py: Python<'_>, path: std::path::PathBuf) -> PyResult<GoldenReport> {
    py.detach(|| consent_guard::testing::run_file(&path))
        .map(|inner| GoldenReport { inner })
        .map_err(|error| GoldenError::new_err(error.to_string()))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Policy>()?;
    m.add_class::<Guard>()?;
    m.add_class::<Decision>()?;
    m.add_class::<PreparedCheck>()?;
    m.add_class::<Filter>()?;
    m.add_class::<GoldenReport>()?;
    m.add_function(wrap_pyfunction!(run_golden, m)?)?;
    m.add("ConsentGuardError", py.get_type::<ConsentGuardError>())?;
    m.add("PolicyError", py.get_type::<PolicyError>())?;
    m.add("RequestError", py.get_type::<RequestError>())?;
    m.add("EventError", py.get_type::<EventError>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    m.add("FilterError", py.get_type::<FilterError>())?;
    m.add("GoldenError", py.get_type::<GoldenError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
