//! A complete axum service on consent-guard: record consent durably in the embedded redb
//! store, read data behind a consent check, read a subject's history, honour Global
//! Privacy Control, and swap the policy without a restart.
//!
//! ```text
//! cargo run --example axum_service --features axum -- 127.0.0.1:3000 target/axum_service.redb
//! curl localhost:3000/recommendations -H 'x-user-id: u1'                 # 403 consent_missing
//! curl -X POST localhost:3000/consent -H 'x-user-id: u1' -H 'content-type: application/json' \
//!   -d '{"type":"grant","subject":"u1","purposes":["personalization.recommendation"],"level":"explicit","at":"2026-01-02T00:00:00Z"}' # 204
//! curl localhost:3000/recommendations -H 'x-user-id: u1'                 # 200
//! curl localhost:3000/recommendations -H 'x-user-id: u1' -H 'sec-gpc: 1' # 403 opt_out_signal
//! curl localhost:3000/history -H 'x-user-id: u1'                         # 200
//! curl -X POST localhost:3000/consent -H 'x-user-id: u1' -H 'content-type: application/json' \
//!   -d '{"type":"grant","subject":"u1","purposes":["advertising"],"level":"explicit","at":"2026-01-02T00:00:00Z"}' # 200 warnings
//! ```
//!
//! Every error is an RFC 9457 problem (`application/problem+json`). A grant for a
//! purpose no rule of the policy governs (`advertising` here) is recorded, and answered
//! `200` with `{"warnings":[…]}` rather than `204`: nothing the service checks depends
//! on it. `tests/web.rs` runs the commands above as written.
//!
//! The subject comes from `x-user-id`, as an authenticating proxy in front of the service
//! would set it; never trust a header the client sets itself. `POST /admin/policy` (a
//! TOML body) belongs behind your admin authentication.
//!
//! `tests/web.rs` serves [`app`] on 127.0.0.1 and drives it over HTTP.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use consent_guard::interchange::answer;
use consent_guard::reload::GuardHandle;
use consent_guard::store::RedbConsentStore;
use consent_guard::web::{header_subject, ConsentLayer, RequireConsent, Requirement, Subject};
use consent_guard::{ConsentHistory, DataCategory, Guard, Policy, Purpose};

/// The shop's privacy policy: personalised recommendations on explicit consent, off
/// under GPC; fraud checks on the device without consent.
pub const POLICY: &str = r#"
[policy]
name = "shop"
version = "1.0"
home_region = "DE"

# "With your consent we personalise recommendations from your browsing history;
#  a Global Privacy Control signal switches this off."
[[rule]]
id = "shop.recommendations"
purposes = ["personalization.recommendation"]
basis = "consent"
level = "explicit"
categories = ["behavior"]
opt_out_signals = ["gpc"]

# "We check your device to protect your account."
[[rule]]
id = "shop.fraud"
purposes = ["security"]
basis = "service_security"
categories = ["device"]
"#;

// ---- glue: what the service writes for consent-guard: 15 lines without comments, the ----
// ---- 13 up to the end marker and the 2 marked in `app` ----

/// What `/recommendations` needs: a type, checked by the extractor.
struct Recommendations;
impl Requirement for Recommendations {
    const PURPOSE: Purpose = Purpose::PERSONALIZATION_RECOMMENDATION;
    const CATEGORIES: &'static [DataCategory] = &[DataCategory::BEHAVIOR_LOG];
}

/// The store writes synchronously (redb syncs the file): off the async threads, with
/// the library's errors answering for themselves.
async fn blocking<T: Send + 'static, E: IntoResponse + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, Response> {
    let done = tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the store task failed"))?;
    done.map_err(IntoResponse::into_response)
}

// ---- end of glue, but for the two lines marked in `app` ----

/// The router: the guard handle as state, the consent layer in front of every route.
pub fn app(handle: Arc<GuardHandle>) -> Router {
    Router::new()
        .route("/consent", post(record))
        .route("/recommendations", get(recommendations))
        .route("/history", get(history))
        .route("/admin/policy", post(swap_policy))
        .layer(ConsentLayer::new(header_subject("x-user-id"))) // glue
        .with_state(handle) // glue
}

/// An RFC 9457 problem, as the library's own errors answer.
fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:consent-guard:error:{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    (status, [(axum::http::header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

/// Records one consent event of the caller (durable before it answers): 204, or 200
/// with warnings when it names a purpose no rule governs.
async fn record(State(handle): State<Arc<GuardHandle>>, subject: Subject, body: Bytes) -> Result<Response, Response> {
    let event =
        answer::parse_event(&body).map_err(|e| problem(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()))?;
    if event.subject() != subject.as_str() {
        return Err(problem(StatusCode::FORBIDDEN, "forbidden", "an event about another subject"));
    }
    let warnings = answer::ungoverned(handle.load().policy(), &event);
    blocking(move || handle.record(&event)).await?;
    Ok(if warnings.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::OK, Json(serde_json::json!({ "recorded": 1, "warnings": warnings }))).into_response()
    })
}

/// Data behind the check: the handler runs only on an allow.
async fn recommendations(consent: RequireConsent<Recommendations>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "for": consent.subject(),
        "items": ["rust-book", "tower-mug"],
        "clause": consent.decision().clause(),
    }))
}

/// The caller's consent history, as proof of consent and for portability.
async fn history(State(handle): State<Arc<GuardHandle>>, subject: Subject) -> Result<Json<ConsentHistory>, Response> {
    Ok(Json(blocking(move || handle.history(subject.as_str())).await?))
}

/// Swaps the policy (a TOML body) under running requests; the old one serves until the
/// new one has replayed the store.
async fn swap_policy(State(handle): State<Arc<GuardHandle>>, body: Bytes) -> Result<StatusCode, Response> {
    let policy =
        Policy::from_toml_str(&String::from_utf8_lossy(&body), "policy.toml").map_err(IntoResponse::into_response)?;
    blocking(move || handle.swap_policy(policy)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The guard over the redb file at `path`.
pub fn handle(path: &std::path::Path) -> Result<Arc<GuardHandle>, Box<dyn std::error::Error>> {
    let policy = Policy::from_toml_str(POLICY, "shop.toml")?;
    let builder = Guard::builder(policy).store(RedbConsentStore::open(path)?);
    Ok(Arc::new(GuardHandle::build(builder)?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let store = args.next().unwrap_or_else(|| "target/axum_service.redb".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(handle(std::path::Path::new(&store))?)).await?;
    Ok(())
}
