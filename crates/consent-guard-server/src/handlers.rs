//! The endpoints: parsing, authorisation, and the answers' JSON.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tower_http::timeout::TimeoutLayer;

use super::auth::Refusal;
use super::{App, Role, ServerError};
use consent_guard::consent::ConsentEvent;
use consent_guard::error::EventError;
use consent_guard::interchange::{bare, event_message, explain, RecordKind};
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
    let timeout = app.options.request_timeout;
    Router::new()
        .route("/v1/check", post(check))
        .route("/v1/check/batch", post(batch))
        .route("/v1/events", post(events))
        .route("/v1/subjects/{id}/history", get(history))
        .route("/v1/policy", get(policy))
        .route("/v1/policy/reload", post(reload))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .with_state(app)
}

/// `{"error": message}` with a status.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "error": message.into() });
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

impl App {
    /// `None` when the request may go on; the refusal otherwise.
    fn refuse(&self, headers: &HeaderMap, needed: Option<Role>) -> Option<Response> {
        let header = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
        match self.tokens.authorize(header, needed) {
            Ok(()) => None,
            Err(Refusal::Unauthenticated) => {
                let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Some(response)
            }
            Err(Refusal::Forbidden) => Some(error(
                StatusCode::FORBIDDEN,
                format!("this token lacks the role `{}`", needed.map_or("any", Role::as_str)),
            )),
        }
    }
}

/// A body that could not be read: over the limit (413), or cut off.
fn rejected(rejection: &BytesRejection) -> Response {
    let status = rejection.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "the request body is larger than the server's limit".to_owned()
    } else {
        rejection.body_text()
    };
    error(status, message)
}

/// Runs `work` where it may block: on tokio's blocking threads when the audit log
/// waits for fsyncs (or `always`), inline otherwise.
async fn off_runtime(app: &Arc<App>, always: bool, work: impl FnOnce() -> Response + Send + 'static) -> Response {
    if always || app.audit_blocks {
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the handler failed"))
    } else {
        work()
    }
}

async fn check(State(app): State<Arc<App>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Some(refusal) = app.refuse(&headers, Some(Role::Check)) {
        return refusal;
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return rejected(&rejection),
    };
    let guard = app.guards.load();
    let worker = Arc::clone(&app);
    off_runtime(&app, false, move || decide_one(&worker, &guard, &body)).await
}

fn decide_one(app: &App, guard: &Guard, body: &[u8]) -> Response {
    let request: AccessRequest<'_> = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, explain(body, RecordKind::Request, &e)),
    };
    if let Err(e) = guard.policy().validate_request(&request) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let started = Instant::now();
    let decision = match request.at {
        Some(at) => guard.what_if(&request, at),
        None => guard.check(&request),
    };
    let latency = started.elapsed();
    app.observer.decision(&decision, Some(latency));
    if app.audit.is_some() {
        app.audit_handed.fetch_add(1, Ordering::Relaxed);
    }
    match serde_json::to_vec(&decision) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The records of a body: a JSON array, or JSON lines (one object is one line). Each
/// error names the item or line.
fn records<'a, T: serde::Deserialize<'a>>(body: &'a [u8], kind: RecordKind) -> Result<Vec<T>, String> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace()).and_then(|i| body.get(i));
    match first {
        None => Ok(Vec::new()),
        Some(b'[') => {
            let items: Vec<&'a RawValue> = serde_json::from_slice(body)
                .map_err(|e| format!("malformed JSON: {} (line {}, column {})", bare(&e), e.line(), e.column()))?;
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let text = item.get();
                    serde_json::from_str(text)
                        .map_err(|e| format!("item {}: {}", i + 1, explain(text.as_bytes(), kind, &e)))
                })
                .collect()
        }
        Some(_) => {
            let mut out = Vec::new();
            let mut rest = body;
            let mut line = 0u64;
            while !rest.is_empty() {
                line += 1;
                let (this, next) = match rest.iter().position(|b| *b == b'\n') {
                    Some(end) => (rest.get(..end).unwrap_or_default(), rest.get(end + 1..).unwrap_or_default()),
                    None => (rest, &[][..]),
                };
                rest = next;
                if this.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice(this) {
                    Ok(record) => out.push(record),
                    // One pretty-printed object is one record too.
                    Err(_) if line == 1 && serde_json::from_slice::<T>(body).is_ok() => {
                        return serde_json::from_slice(body).map(|r| vec![r]).map_err(|e| e.to_string());
                    }
                    Err(e) => return Err(format!("line {line}: {}", explain(this, kind, &e))),
                }
            }
            Ok(out)
        }
    }
}

async fn batch(State(app): State<Arc<App>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Some(refusal) = app.refuse(&headers, Some(Role::Check)) {
        return refusal;
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return rejected(&rejection),
    };
    let guard = app.guards.load();
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, Response>>(4);
    let worker = Arc::clone(&app);
    tokio::task::spawn_blocking(move || decide_batch(&worker, &guard, &body, &tx));
    match rx.recv().await {
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "the batch failed"),
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
fn decide_batch(app: &App, guard: &Guard, body: &[u8], tx: &mpsc::Sender<Result<Bytes, Response>>) {
    let requests: Vec<AccessRequest<'_>> = match records(body, RecordKind::Request) {
        Ok(requests) => requests,
        Err(message) => {
            let _ = tx.blocking_send(Err(error(StatusCode::BAD_REQUEST, message)));
            return;
        }
    };
    for (i, request) in requests.iter().enumerate() {
        if let Err(e) = guard.policy().validate_request(request) {
            let _ = tx.blocking_send(Err(error(StatusCode::BAD_REQUEST, format!("item {}: {e}", i + 1))));
            return;
        }
    }
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
        if let Some(at) = first.at {
            let started = Instant::now();
            let decision = guard.what_if(first, at);
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

async fn events(State(app): State<Arc<App>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Some(refusal) = app.refuse(&headers, Some(Role::Record)) {
        return refusal;
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return rejected(&rejection),
    };
    let worker = Arc::clone(&app);
    // The store's append waits for its commit (an fsync, or PostgreSQL).
    off_runtime(&app, true, move || {
        let events: Vec<ConsentEvent> = match records(&body, RecordKind::Event) {
            Ok(events) => events,
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        };
        if events.is_empty() {
            return error(StatusCode::BAD_REQUEST, "no consent event in the body");
        }
        // Through the handle: a reload publishing its guard meanwhile sees the event.
        match worker.guards.record_all(&events) {
            Ok(()) => {
                for event in &events {
                    worker.observer.consent_event(event);
                }
                json_response(StatusCode::OK, json!({ "recorded": events.len() }).to_string().into_bytes())
            }
            Err(e @ EventError::Store(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            Err(e) => error(StatusCode::BAD_REQUEST, event_message(&e)),
        }
    })
    .await
}

async fn history(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(refusal) = app.refuse(&headers, Some(Role::Read)) {
        return refusal;
    }
    let worker = Arc::clone(&app);
    off_runtime(&app, true, move || match worker.guards.history(&id) {
        Ok(history) if history.events().is_empty() => {
            error(StatusCode::NOT_FOUND, "the store holds no consent event of this subject")
        }
        Ok(history) => match serde_json::to_vec(&history) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("consent store: {e}")),
    })
    .await
}

async fn policy(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = app.refuse(&headers, None) {
        return refusal;
    }
    let guard = app.guards.load();
    let policy = guard.policy();
    let value = match &app.explain {
        Some(explain) => explain(policy),
        None => json!({ "policy": policy.name(), "version": policy.version(), "document": policy.document() }),
    };
    json_response(StatusCode::OK, value.to_string().into_bytes())
}

async fn reload(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = app.refuse(&headers, Some(Role::Admin)) {
        return refusal;
    }
    match app.reload().await {
        Ok(reloaded) => match serde_json::to_vec(&reloaded) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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
            let body =
                json!({ "error": "the policy did not load; the one loaded before goes on serving", "errors": errors });
            json_response(StatusCode::UNPROCESSABLE_ENTITY, body.to_string().into_bytes())
        }
        Err(ServerError::Reload(e @ ReloadError::Unapplicable(_))) => {
            let body = json!({ "error": "the new policy cannot apply stored events; the one loaded before goes on serving", "errors": [e.to_string()] });
            json_response(StatusCode::UNPROCESSABLE_ENTITY, body.to_string().into_bytes())
        }
        Err(e @ (ServerError::Store(_) | ServerError::Reload(ReloadError::Replay(_)))) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = app.refuse(&headers, Some(Role::Read)) {
        return refusal;
    }
    let Some(handle) = &app.metrics else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "another metrics recorder is installed in this process");
    };
    let last = app.last_sync.load(Ordering::Acquire);
    let lag = chrono::Utc::now().timestamp_millis().saturating_sub(last).max(0);
    #[allow(clippy::cast_precision_loss, reason = "a lag in milliseconds fits a float's mantissa")]
    metrics::gauge!(consent_guard::observe::STORE_LAG).set(lag as f64 / 1000.0);
    if let Some(log) = &app.audit {
        let handed = app.audit_handed.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss, reason = "a queue depth fits a float's mantissa")]
        metrics::gauge!(consent_guard::observe::AUDIT_QUEUE).set(handed.saturating_sub(log.stats().records) as f64);
    }
    let text = handle.render();
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], text)
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint (see docs/openapi.yaml)")
}
