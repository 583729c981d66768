//! A complete axum service on consent-guard: record consent durably in the embedded redb
//! store, read data behind a consent check, read a subject's history, honour Global
//! Privacy Control, and swap the policy without a restart.
//!
//! ```text
//! cargo run --example axum_service --features axum -- 127.0.0.1:3000 target/axum_service.redb
//! curl -X POST localhost:3000/consent -H 'x-user-id: u1' -H 'content-type: application/json' \
//!   -d '{"type":"grant","subject":"u1","purposes":["advertising"],"level":"explicit","at":"2026-01-02T00:00:00Z"}'
//! curl localhost:3000/recommendations -H 'x-user-id: u1'                 # 200
//! curl localhost:3000/recommendations -H 'x-user-id: u1' -H 'sec-gpc: 1' # 403 opt_out_signal
//! curl localhost:3000/history -H 'x-user-id: u1'
//! ```
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
use consent_guard::reload::GuardHandle;
use consent_guard::store::RedbConsentStore;
use consent_guard::web::{header_subject, ConsentLayer, RequireConsent, Requirement, Subject};
use consent_guard::{ConsentEvent, DataCategory, Guard, Policy, Purpose};

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

// ---- glue: what a service writes to put consent-guard in front of its handlers ----

/// What `/recommendations` needs: a type, checked by the extractor.
struct Recommendations;
impl Requirement for Recommendations {
    const PURPOSE: Purpose = Purpose::PERSONALIZATION_RECOMMENDATION;
    const CATEGORIES: &'static [DataCategory] = &[DataCategory::BEHAVIOR_LOG];
}

/// The router: the guard handle as state, the consent layer in front of every route.
pub fn app(handle: Arc<GuardHandle>) -> Router {
    Router::new()
        .route("/consent", post(record))
        .route("/recommendations", get(recommendations))
        .route("/history", get(history))
        .route("/admin/policy", post(swap_policy))
        .layer(ConsentLayer::new(header_subject("x-user-id")))
        .with_state(handle)
}

/// The store writes synchronously (redb syncs the file): off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(work).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

// ---- end of glue; the handlers below are the service's own ----

/// Records one consent event of the caller (durable before it answers 204).
async fn record(State(handle): State<Arc<GuardHandle>>, subject: Subject, Json(event): Json<ConsentEvent>) -> Response {
    if event.subject() != subject.as_str() {
        return (StatusCode::FORBIDDEN, "an event about another subject").into_response();
    }
    match blocking(move || handle.record(&event)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(error)) => error.into_response(),
        Err(response) => response,
    }
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
async fn history(State(handle): State<Arc<GuardHandle>>, subject: Subject) -> Response {
    match blocking(move || handle.history(subject.as_str())).await {
        Ok(Ok(history)) => Json(history).into_response(),
        Ok(Err(error)) => error.into_response(),
        Err(response) => response,
    }
}

/// Swaps the policy (a TOML body) under running requests; the old one serves until the
/// new one has replayed the store.
async fn swap_policy(State(handle): State<Arc<GuardHandle>>, body: Bytes) -> Response {
    let policy = match Policy::from_toml_str(&String::from_utf8_lossy(&body), "policy.toml") {
        Ok(policy) => policy,
        Err(error) => return error.into_response(),
    };
    match blocking(move || handle.swap_policy(policy)).await {
        Ok(Ok(_retired)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(error)) => error.into_response(),
        Err(response) => response,
    }
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
