//! The endpoints. Each takes [`Authorized`] first (the token, from the headers) and
//! its body last ([`Payload`], [`Records`]), so that nothing of a body is read for a
//! client that may not send it; every error is an [`ApiError`], answered as
//! problem+json.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tokio::sync::mpsc;

use super::auth::{AdminRole, AnyRole, Authorized, CheckRole, ReadRole, RecordRole};
use super::body::{Payload, Records};
use super::problem::{ApiError, Position};
use super::{App, ServerError};
use consent_guard::consent::ConsentEvent;
use consent_guard::error::EventError;
use consent_guard::interchange::answer::{self, AnswerError};
use consent_guard::interchange::RecordKind;
use consent_guard::reload::ReloadError;
use consent_guard::request::AccessRequest;
use consent_guard::Guard;

/// Decisions written into one chunk of a streamed batch before it is sent.
const CHUNK_BYTES: usize = 256 * 1024;

/// The most requests of one kind checked as one prepared batch (one audit commit).
const GROUP: usize = 4096;

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn router(app: Arc<App>) -> Router {
    let limit = app.options.body_limit;
    Router::new()
        .route("/v1/check", post(check))
        .route("/v1/check/batch", post(batch))
        .route("/v1/check/compact", post(compact))
        .route("/v1/events", post(events))
        .route("/v1/subjects/{id}/history", get(history))
        .route("/v1/subjects/{id}/export", get(export))
        .route("/v1/policy", get(policy))
        .route("/v1/policy/reload", post(reload))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&app), deadline))
        .with_state(app)
}

/// The request timeout, body included: `408` as a problem.
async fn deadline(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(app.options.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn internal(error: &dyn std::fmt::Display) -> Response {
    ApiError::Internal(error.to_string()).into_response()
}

/// Runs `work` where it may block: on tokio's blocking threads when the audit log
/// waits for fsyncs (or `always`), inline otherwise.
async fn off_runtime(app: &Arc<App>, always: bool, work: impl FnOnce() -> Response + Send + 'static) -> Response {
    if always || app.audit_blocks {
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|_| ApiError::Internal("the handler failed".to_owned()).into_response())
    } else {
        work()
    }
}

async fn check(_: Authorized<CheckRole>, State(app): State<Arc<App>>, Payload(body): Payload) -> Response {
    let guard = app.guards.load();
    let worker = Arc::clone(&app);
    off_runtime(&app, false, move || decide_one(&worker, &guard, &body)).await
}

fn decide_one(app: &App, guard: &Guard, body: &[u8]) -> Response {
    let request = match answer::parse_request(guard.policy(), body) {
        Ok(request) => request,
        Err(e) => return ApiError::bad(&e, None).into_response(),
    };
    let started = Instant::now();
    let decision = answer::decide(guard, &request);
    let latency = started.elapsed();
    app.observer.decision(&decision, Some(latency));
    if app.audit.is_some() {
        app.audit_handed.fetch_add(1, Ordering::Relaxed);
    }
    match serde_json::to_vec(&decision) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => internal(&e),
    }
}

async fn batch(_: Authorized<CheckRole>, State(app): State<Arc<App>>, Records(body): Records) -> Response {
    let guard = app.guards.load();
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, Response>>(4);
    let worker = Arc::clone(&app);
    tokio::task::spawn_blocking(move || decide_batch(&worker, &guard, &Records(body), &tx));
    match rx.recv().await {
        None => ApiError::Internal("the batch failed".to_owned()).into_response(),
        Some(Err(response)) => response,
        Some(Ok(first)) => {
            let rest = futures_util::stream::unfold(rx, |mut rx| async move {
                match rx.recv().await {
                    Some(Ok(chunk)) => Some((Ok::<Bytes, std::io::Error>(chunk), rx)),
                    _ => None,
                }
            });
            let stream = futures_util::StreamExt::chain(
                futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(first) }),
                rest,
            );
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))],
                Body::from_stream(stream),
            )
                .into_response()
        }
    }
}

/// Decides a batch, sending chunks of JSON lines; the first message is an error
/// response instead when any request is bad (then nothing is decided).
fn decide_batch(app: &App, guard: &Guard, body: &Records, tx: &mpsc::Sender<Result<Bytes, Response>>) {
    let records: Vec<(AccessRequest<'_>, Position)> = match body.parse(RecordKind::Request) {
        Ok(records) => records,
        Err(e) => {
            let _ = tx.blocking_send(Err(e.into_response()));
            return;
        }
    };
    for (request, position) in &records {
        if let Err(e) = answer::validate(guard.policy(), request) {
            let _ = tx.blocking_send(Err(ApiError::bad(&e, Some(*position)).into_response()));
            return;
        }
    }
    let requests: Vec<AccessRequest<'_>> = records.into_iter().map(|(request, _)| request).collect();
    let mut out = Vec::with_capacity(CHUNK_BYTES + 4096);
    let written = |out: &mut Vec<u8>, decision: &consent_guard::Decision<'_>| -> bool {
        if serde_json::to_writer(&mut *out, decision).is_err() {
            return false;
        }
        out.push(b'\n');
        if out.len() >= CHUNK_BYTES {
            let chunk = Bytes::from(std::mem::replace(out, Vec::with_capacity(CHUNK_BYTES + 4096)));
            return tx.blocking_send(Ok(chunk)).is_ok();
        }
        true
    };
    let mut rest = requests.as_slice();
    while let Some((first, _)) = rest.split_first() {
        if first.at.is_some() {
            let started = Instant::now();
            let decision = answer::decide(guard, first);
            app.observer.decision(&decision, Some(started.elapsed()));
            if !written(&mut out, &decision) {
                return;
            }
            rest = rest.get(1..).unwrap_or_default();
            continue;
        }
        // Consecutive requests that differ only in their subject are one prepared
        // access: decided together, their records share one audit commit.
        let template = first.for_subject("");
        let same = rest
            .iter()
            .take(GROUP)
            .position(|r| r.at.is_some() || r.for_subject("") != template)
            .unwrap_or_else(|| rest.len().min(GROUP));
        let (group, next) = rest.split_at(same.max(1));
        rest = next;
        let subjects: Vec<&str> = group.iter().map(|r| r.subject.as_ref()).collect();
        let prepared = guard.prepare(&template);
        let started = Instant::now();
        let decisions = prepared.check_batch(&subjects);
        app.observer.batch(&decisions, started.elapsed());
        if app.audit.is_some() {
            app.audit_handed.fetch_add(decisions.len() as u64, Ordering::Relaxed);
        }
        for decision in &decisions {
            if !written(&mut out, decision) {
                return;
            }
        }
    }
    let _ = tx.blocking_send(Ok(Bytes::from(out)));
}

/// The compact form's body: one kind of access, many subjects.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactBody<'a> {
    request: serde_json::Map<String, serde_json::Value>,
    #[serde(borrow)]
    subjects: Vec<std::borrow::Cow<'a, str>>,
}

async fn compact(_: Authorized<CheckRole>, State(app): State<Arc<App>>, Payload(body): Payload) -> Response {
    let guard = app.guards.load();
    let worker = Arc::clone(&app);
    off_runtime(&app, true, move || decide_compact(&worker, &guard, &body)).await
}

/// Parses the template once (the subjects' own place is `subjects`), decides every
/// subject through one prepared access, and answers the columns. Nothing is decided
/// when anything in the body is wrong.
fn decide_compact(app: &App, guard: &Guard, body: &[u8]) -> Response {
    let parsed: CompactBody<'_> = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(e) => return ApiError::bad_message(&compact_body_error(&e), None).into_response(),
    };
    let CompactBody { mut request, subjects } = parsed;
    if request.contains_key("subject") {
        return ApiError::bad_message("request.subject: the compact form takes its subjects from `subjects`", None)
            .into_response();
    }
    if request.get("at").is_some_and(|at| !at.is_null()) {
        return ApiError::bad_message(
            "request.at: the compact form decides now; ask what-if questions through /v1/check/batch",
            None,
        )
        .into_response();
    }
    if subjects.is_empty() {
        return ApiError::bad_message("subjects: must not be empty", None).into_response();
    }
    if let Some(item) = subjects.iter().position(|s| s.is_empty()) {
        return ApiError::bad_message(&format!("subjects: item {} must not be empty", item + 1), None).into_response();
    }
    // The template is parsed and validated by the library's own step, with a stand-in
    // subject that no answer carries.
    request.insert("subject".to_owned(), serde_json::Value::String("-".to_owned()));
    let template_bytes = match serde_json::to_vec(&request) {
        Ok(bytes) => bytes,
        Err(e) => return internal(&e),
    };
    let parsed = match answer::parse_request(guard.policy(), &template_bytes) {
        Ok(parsed) => parsed,
        Err(e) => {
            let message = e.to_string();
            let message = if answer::field_of(&message).is_some() {
                format!("request.{message}")
            } else {
                format!("request: {message}")
            };
            return ApiError::bad_message(&message, None).into_response();
        }
    };
    let template = parsed.for_subject("");
    let prepared = guard.prepare(&template);
    let mut codes = Vec::with_capacity(subjects.len());
    let mut allowed = Vec::with_capacity(subjects.len());
    // Few rules decide a kind of access: each clause is kept once, and each answer
    // names its clause by place in that list.
    let mut clause_names: Vec<String> = Vec::new();
    let mut clause_of: Vec<Option<usize>> = Vec::with_capacity(subjects.len());
    let mut version = String::new();
    for group in subjects.chunks(GROUP) {
        let started = Instant::now();
        let decisions = prepared.check_batch(group);
        app.observer.batch(&decisions, started.elapsed());
        if app.audit.is_some() {
            app.audit_handed.fetch_add(decisions.len() as u64, Ordering::Relaxed);
        }
        for decision in &decisions {
            if version.is_empty() {
                decision.policy_version().clone_into(&mut version);
            }
            allowed.push(decision.allowed());
            codes.push(decision.code().as_str());
            clause_of.push(decision.clause().map(|clause| {
                clause_names.iter().position(|known| known == clause).unwrap_or_else(|| {
                    clause_names.push(clause.to_owned());
                    clause_names.len() - 1
                })
            }));
        }
    }
    let clauses: Vec<Option<&str>> =
        clause_of.iter().map(|i| i.and_then(|i| clause_names.get(i)).map(String::as_str)).collect();
    let answer = CompactAnswer { policy_version: &version, allowed: &allowed, codes: &codes, clauses: &clauses };
    let mut out = Vec::with_capacity(64 + subjects.len() * 40);
    if let Err(e) = serde_json::to_writer(&mut out, &answer) {
        return internal(&e);
    }
    json_response(StatusCode::OK, out)
}

/// The compact form's answer: columns in the order of the subjects.
#[derive(serde::Serialize)]
struct CompactAnswer<'a> {
    policy_version: &'a str,
    allowed: &'a [bool],
    codes: &'a [&'static str],
    clauses: &'a [Option<&'a str>],
}

/// A body that is not `{"request": {…}, "subjects": […]}`, in the words the other
/// endpoints use.
fn compact_body_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let bare = text.split(" at line ").next().unwrap_or(&text);
    if error.is_syntax() || error.is_eof() {
        format!("malformed JSON: {bare} (column {})", error.column())
    } else if bare.starts_with("unknown field") {
        format!("{bare}: the compact form takes `request` and `subjects`")
    } else if bare.contains("`request`") {
        format!("request: {bare}")
    } else if bare.contains("`subjects`") || bare.contains("sequence") || bare.contains("string") {
        format!("subjects: {bare}")
    } else {
        format!("expected {{\"request\": {{…}}, \"subjects\": [\"…\"]}}: {bare}")
    }
}

async fn events(_: Authorized<RecordRole>, State(app): State<Arc<App>>, body: Records) -> Response {
    let worker = Arc::clone(&app);
    // The store's append waits for its commit (an fsync, or PostgreSQL).
    off_runtime(&app, true, move || {
        let (events, positions): (Vec<ConsentEvent>, Vec<Position>) = match body.parse(RecordKind::Event) {
            Ok(records) => records.into_iter().unzip(),
            Err(e) => return e.into_response(),
        };
        let policy_now = worker.guards.load();
        if let Some((error, position)) = events.iter().zip(&positions).find_map(|(event, position)| {
            answer::validate_event(policy_now.policy(), event).err().map(|e| (e, *position))
        }) {
            return ApiError::bad(&error, (events.len() > 1).then_some(position)).into_response();
        }
        // Through the handle: a reload publishing its guard meanwhile sees the event.
        match worker.guards.record_all(&events) {
            Ok(()) => {
                for event in &events {
                    worker.observer.consent_event(event);
                }
                let guard = worker.guards.load();
                let warnings: Vec<String> = events
                    .iter()
                    .zip(&positions)
                    .flat_map(|(event, position)| {
                        let many = events.len() > 1;
                        answer::ungoverned(guard.policy(), event).into_iter().map(move |warning| {
                            if many {
                                format!("{position}: {warning}")
                            } else {
                                warning
                            }
                        })
                    })
                    .collect();
                let body = if warnings.is_empty() {
                    json!({ "recorded": events.len() })
                } else {
                    json!({ "recorded": events.len(), "warnings": warnings })
                };
                json_response(StatusCode::OK, body.to_string().into_bytes())
            }
            Err(e @ EventError::Store(_)) => ApiError::Unavailable(e.to_string()).into_response(),
            Err(e) => {
                // Nothing was recorded; the event at fault is found again, so that the
                // answer names its line or item as it does a malformed one.
                let guard = worker.guards.load();
                let at_fault = events
                    .iter()
                    .zip(&positions)
                    .find_map(|(event, position)| guard.validate_event(event).err().map(|error| (error, *position)));
                match at_fault {
                    Some((error, position)) => ApiError::bad(&AnswerError::from(error), Some(position)),
                    None => ApiError::bad(&AnswerError::from(e), None),
                }
                .into_response()
            }
        }
    })
    .await
}

async fn history(_: Authorized<ReadRole>, State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let worker = Arc::clone(&app);
    off_runtime(&app, true, move || match worker.guards.history(&id) {
        Ok(history) if history.events().is_empty() => {
            ApiError::NotFound("the store holds no consent event of this subject").into_response()
        }
        Ok(history) => match serde_json::to_vec(&history) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => internal(&e),
        },
        Err(e) => ApiError::Unavailable(format!("consent store: {e}")).into_response(),
    })
    .await
}

/// The subject's own export (issue 27 item 4): the consent history and every decision
/// about the subject in the audit log, committed first so that every decision answered
/// before is in it. `404` when neither holds anything of the subject; `503` when the
/// store cannot answer or the audit log does not verify (an export that would leave
/// decisions out is not given as the whole).
async fn export(_: Authorized<ReadRole>, State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    use consent_guard::interchange::export::{decisions_about, AuditCoverage, SubjectExport};
    use consent_guard::keys::SubjectKeys;
    let worker = Arc::clone(&app);
    off_runtime(&app, true, move || {
        let history = match worker.guards.history(&id) {
            Ok(history) => history,
            Err(e) => return ApiError::Unavailable(format!("consent store: {e}")).into_response(),
        };
        let (decisions, coverage) = match &worker.audit {
            None => (Vec::new(), AuditCoverage::none()),
            Some(log) => {
                if let Err(e) = log.flush() {
                    return ApiError::Unavailable(format!("audit log: {e}")).into_response();
                }
                // The records hold pseudonyms under the keys the log writes with (the
                // store's, `StoreKeys`, as `consent-guard serve` opens it): the subject's
                // are found through its key. A key that cannot be read is an error,
                // never an export without decisions.
                let key = match log.subject_keys().key_of(&id) {
                    Ok(key) => key,
                    Err(e) => return ApiError::Unavailable(format!("subject keys: {e}")).into_response(),
                };
                match decisions_about(log.dir(), &id, key.as_ref()) {
                    Ok(found) => found,
                    Err(e) => return ApiError::Unavailable(format!("audit log: {e}")).into_response(),
                }
            }
        };
        if coverage.verdict == "tampered" {
            let problem = coverage.problem.unwrap_or_default();
            return ApiError::Unavailable(format!(
                "audit log does not verify ({problem}): the export would be incomplete"
            ))
            .into_response();
        }
        let export = SubjectExport::new(history, decisions, coverage, chrono::Utc::now());
        if export.is_empty() {
            return ApiError::NotFound("the store and the audit log hold nothing of this subject").into_response();
        }
        match serde_json::to_vec(&export) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => internal(&e),
        }
    })
    .await
}

/// The policy the guard enforces now (a reload changes it), described by the library.
async fn policy(_: Authorized<AnyRole>, State(app): State<Arc<App>>) -> Response {
    let guard = app.guards.load();
    match serde_json::to_vec(&consent_guard::policy::explain::describe(guard.policy())) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => internal(&e),
    }
}

async fn reload(_: Authorized<AdminRole>, State(app): State<Arc<App>>) -> Response {
    match app.reload().await {
        Ok(reloaded) => match serde_json::to_vec(&reloaded) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => internal(&e),
        },
        Err(ServerError::Policy(e)) => {
            let errors: Vec<String> = match e.diagnostics() {
                [] => vec![e.to_string()],
                all => all
                    .iter()
                    .filter(|d| d.severity() == consent_guard::error::Severity::Error)
                    .map(ToString::to_string)
                    .collect(),
            };
            ApiError::PolicyRejected {
                detail: "the policy did not load; the one loaded before goes on serving",
                errors,
            }
            .into_response()
        }
        Err(ServerError::Reload(e @ ReloadError::Unapplicable(_))) => ApiError::PolicyRejected {
            detail: "the new policy cannot apply stored events; the one loaded before goes on serving",
            errors: vec![e.to_string()],
        }
        .into_response(),
        Err(e @ (ServerError::Store(_) | ServerError::Reload(ReloadError::Replay(_)))) => {
            ApiError::Unavailable(e.to_string()).into_response()
        }
        Err(e) => internal(&e),
    }
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let guard = app.guards.load();
    let probe = tokio::task::spawn_blocking(move || guard.sync().map(|_| ()));
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(Ok(()))) => {
            app.synced();
            json_response(StatusCode::OK, br#"{"ready":true}"#.to_vec())
        }
        Ok(Ok(Err(e))) => {
            let body = json!({ "ready": false, "error": e.to_string() });
            json_response(StatusCode::SERVICE_UNAVAILABLE, body.to_string().into_bytes())
        }
        Ok(Err(_)) | Err(_) => {
            let body = json!({ "ready": false, "error": "the consent store did not answer in time" });
            json_response(StatusCode::SERVICE_UNAVAILABLE, body.to_string().into_bytes())
        }
    }
}

async fn metrics(_: Authorized<ReadRole>, State(app): State<Arc<App>>) -> Response {
    render_metrics(&app)
}

/// `GET /metrics` without a token, for the separate metrics address
/// (`ServerOptions::metrics_listen`); anything else there is `404`.
pub(crate) fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(|State(app): State<Arc<App>>| async move { render_metrics(&app) }))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .with_state(app)
}

/// The Prometheus text of the process's metrics, the gauges the server sets updated.
fn render_metrics(app: &App) -> Response {
    let Some(handle) = &app.metrics else {
        return ApiError::Unavailable("another metrics recorder is installed in this process".to_owned())
            .into_response();
    };
    let last = app.last_sync.load(Ordering::Acquire);
    let lag = chrono::Utc::now().timestamp_millis().saturating_sub(last).max(0);
    #[expect(clippy::cast_precision_loss, reason = "a lag in milliseconds fits a float's mantissa")]
    metrics::gauge!(consent_guard::observe::STORE_LAG).set(lag as f64 / 1000.0);
    if let Some(log) = &app.audit {
        let handed = app.audit_handed.load(Ordering::Relaxed);
        #[expect(clippy::cast_precision_loss, reason = "a queue depth fits a float's mantissa")]
        metrics::gauge!(consent_guard::observe::AUDIT_QUEUE).set(handed.saturating_sub(log.stats().records) as f64);
    }
    let text = handle.render();
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], text)
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint (see docs/openapi.yaml)")
}

async fn not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
