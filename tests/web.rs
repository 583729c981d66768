//! The example service (`examples/axum_service.rs`), served on 127.0.0.1 and driven by
//! a real HTTP client: the layer reads GPC and the subject, the extractor checks before
//! the handler and answers problem+json, consent is durable in redb across a restart,
//! and the policy swaps over HTTP under running requests.
#![cfg(all(feature = "axum", feature = "redb", feature = "toml"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

#[path = "../examples/axum_service.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod service;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use consent_guard::reload::GuardHandle;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running service; `stop` shuts it down and waits for its connections to close.
struct Running {
    base: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start(store: &Path) -> Running {
    let handle = open(store).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, service::app(handle))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running { base: format!("http://{address}"), stop, task }
}

/// The guard over `store`. After a stop, the last clone of the old guard may still be
/// closing the redb file on whichever thread released it (its count is already zero
/// while its drop runs), so "already open" is retried for a while; any other error, or
/// the file still held after 10 s, fails the test.
async fn open(store: &Path) -> Arc<GuardHandle> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match service::handle(store) {
            Ok(handle) => return handle,
            Err(error) if error.to_string().contains("already open") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(error) => panic!("the service cannot open {}: {error}", store.display()),
        }
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

const GRANT: &str =
    r#"{"type":"grant","subject":"u1","purposes":["personalization"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#;

async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_service_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("consent.redb");
    let client = reqwest::Client::new();
    let running = start(&store).await;
    let url = |path: &str| format!("{}{path}", running.base);
    let as_u1 = |request: reqwest::RequestBuilder| request.header("x-user-id", "u1");

    // No subject: 401 before any check.
    let body = problem(client.get(url("/recommendations")).send().await.unwrap(), StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["code"], "no_subject");

    // No consent yet: 403 with the code and the clause; the handler did not run.
    let response = as_u1(client.get(url("/recommendations"))).send().await.unwrap();
    let body = problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(body["code"], "consent_missing");
    assert_eq!(body["type"], "urn:consent-guard:reason:consent_missing");
    assert_eq!(body["clause"], "shop.recommendations");
    assert_eq!((&body["policy"], &body["policy_version"]), (&Value::from("shop"), &Value::from("1.0")));
    assert!(body["detail"].as_str().unwrap().contains("consent"), "{body}");

    // Record consent: durable before 204.
    let record = |event: &str| {
        as_u1(client.post(url("/consent"))).header("content-type", "application/json").body(event.to_owned())
    };
    assert_eq!(record(GRANT).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let response = as_u1(client.get(url("/recommendations"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!((&body["for"], &body["clause"]), (&Value::from("u1"), &Value::from("shop.recommendations")));

    // GPC through the layer switches the rule off; DNT is not one of its signals.
    let response = as_u1(client.get(url("/recommendations"))).header("sec-gpc", "1").send().await.unwrap();
    assert_eq!(problem(response, StatusCode::FORBIDDEN).await["code"], "opt_out_signal");
    let response = as_u1(client.get(url("/recommendations"))).header("dnt", "1").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Events the policy refuses: 422 with the reason; about another subject: 403.
    let unknown = GRANT.replace("personalization", "telepathy");
    let body = problem(record(&unknown).send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["code"], "event_refused");
    assert!(body["detail"].as_str().unwrap().contains("telepathy"), "{body}");
    let other = GRANT.replace("\"u1\"", "\"u2\"");
    assert_eq!(record(&other).send().await.unwrap().status(), StatusCode::FORBIDDEN);

    // The history, stamped with the policy version it was given under.
    let history: Value = as_u1(client.get(url("/history"))).send().await.unwrap().json().await.unwrap();
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{history}");
    assert_eq!(events[0]["policy_version"], "1.0");

    // A new policy version over HTTP while requests run: every one is answered by one
    // policy or the other, and the consent carries over (the rule did not change).
    let v1_1 = service::POLICY.replace("version = \"1.0\"", "version = \"1.1\"");
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (client.clone(), url("/recommendations"));
            tokio::spawn(async move {
                for _ in 0..25 {
                    let response = client.get(&url).header("x-user-id", "u1").send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                }
            })
        })
        .collect();
    let swap = client.post(url("/admin/policy")).body(v1_1.clone()).send().await.unwrap();
    assert_eq!(swap.status(), StatusCode::NO_CONTENT);
    for reader in readers {
        reader.await.unwrap();
    }
    // A rule whose terms changed in 1.2 asks for consent again.
    let v1_2 = service::POLICY
        .replace("version = \"1.0\"", "version = \"1.2\"")
        .replace("opt_out_signals = [\"gpc\"]", "opt_out_signals = [\"gpc\"]\nchanged_in = \"1.2\"");
    assert_eq!(client.post(url("/admin/policy")).body(v1_2).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let response = as_u1(client.get(url("/recommendations"))).send().await.unwrap();
    assert_eq!(problem(response, StatusCode::FORBIDDEN).await["code"], "reconsent_required");
    // A policy that does not load is refused: 422, and 1.2 still serves.
    let broken = client.post(url("/admin/policy")).body("[policy]\nname = 1").send().await.unwrap();
    assert_eq!(problem(broken, StatusCode::UNPROCESSABLE_ENTITY).await["code"], "policy_invalid");

    // A restart replays the redb file: the consent is still there.
    running.stop().await;
    let running = start(&store).await;
    let response =
        client.get(format!("{}/recommendations", running.base)).header("x-user-id", "u1").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    running.stop().await;
}

/// Serves `router` on 127.0.0.1 until the test's runtime ends; returns its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// A guard that fails closed answers 503, and a route whose `ConsentLayer` is missing
/// answers 500: neither lets the handler run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_closed_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let handle = service::handle(&dir.path().join("consent.redb")).unwrap();
    let client = reqwest::Client::new();
    let base = serve(service::app(handle.clone())).await;
    let grant = client
        .post(format!("{base}/consent"))
        .header("x-user-id", "u1")
        .header("content-type", "application/json")
        .body(GRANT)
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), StatusCode::NO_CONTENT);
    handle.load().set_state_available(false);
    let response = client.get(format!("{base}/recommendations")).header("x-user-id", "u1").send().await.unwrap();
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["code"], "consent_state_unavailable");
    handle.load().set_state_available(true);
    let response = client.get(format!("{base}/recommendations")).header("x-user-id", "u1").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    async fn unreachable(_: consent_guard::web::RequireConsent<Fraud>) -> &'static str {
        "the handler ran"
    }
    struct Fraud;
    impl consent_guard::web::Requirement for Fraud {
        const PURPOSE: consent_guard::Purpose = consent_guard::Purpose::SECURITY;
        const CATEGORIES: &'static [consent_guard::DataCategory] = &[consent_guard::DataCategory::DEVICE_INFO];
    }
    let unwired = axum::Router::new().route("/fraud", axum::routing::get(unreachable)).with_state(handle);
    let base = serve(unwired).await;
    let response = client.get(format!("{base}/fraud")).header("x-user-id", "u1").send().await.unwrap();
    assert_eq!(problem(response, StatusCode::INTERNAL_SERVER_ERROR).await["code"], "consent_layer_missing");
}

/// Splits a shell command into words: spaces separate, single quotes keep.
fn shell_words(command: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted, mut started) = (Vec::new(), String::new(), false, false);
    for c in command.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Issue 28: the commands of the example's doc, as written (the service is served
/// here rather than by its `cargo run` line): each `curl` is sent to it, and answers
/// what its comment says (`# 403 consent_missing`: the status and the problem's code;
/// `# 200 warnings`: the status and a `warnings` member).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_doc_sequence_runs_as_written() {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/axum_service.rs")).unwrap();
    let block: Vec<String> = source
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line).to_owned())
        .skip_while(|line| line != "```text")
        .skip(1)
        .take_while(|line| line != "```")
        .collect();
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block {
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(&line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(commands[0].starts_with("cargo run --example axum_service"), "{commands:?}");
    let curls: Vec<&String> = commands.iter().filter(|c| c.starts_with("curl ")).collect();
    assert_eq!(curls.len(), commands.len() - 1, "only curl after the start: {commands:?}");

    let dir = tempfile::tempdir().unwrap();
    let running = start(&dir.path().join("consent.redb")).await;
    let client = reqwest::Client::new();
    for command in curls {
        let (line, expect) = match command.split_once(" # ") {
            Some((line, expect)) => (line, Some(expect.trim())),
            None => (command.as_str(), None),
        };
        let words = shell_words(line);
        let (mut method, mut url, mut body, mut headers) = (None, None, None, Vec::new());
        let mut words = words.iter().skip(1);
        while let Some(word) = words.next() {
            match word.as_str() {
                "-X" => method = words.next().cloned(),
                "-H" => headers.push(words.next().unwrap().clone()),
                "-d" => body = words.next().cloned(),
                other if !other.starts_with('-') => url = Some(other.replacen("localhost:3000", &running.base, 1)),
                other => panic!("{command}: option {other} not understood"),
            }
        }
        let method = method.unwrap_or_else(|| if body.is_some() { "POST".to_owned() } else { "GET".to_owned() });
        let mut request = client.request(method.parse().unwrap(), url.unwrap());
        for header in &headers {
            let (name, value) = header.split_once(": ").unwrap();
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let text = response.text().await.unwrap();
        if !status.is_success() {
            assert_eq!(content_type, "application/problem+json", "{command}: {status} {text}");
        }
        match expect.map(|e| e.split_once(' ').unwrap_or((e, ""))) {
            None => assert!(status.is_success(), "{command}: {status} {text}"),
            Some((want, detail)) => {
                assert_eq!(status.as_str(), want, "{command}: {text}");
                match detail {
                    "" => {}
                    "warnings" => {
                        let body: Value = serde_json::from_str(&text).unwrap();
                        assert!(body["warnings"].as_array().is_some_and(|w| !w.is_empty()), "{command}: {text}");
                    }
                    code => {
                        let body: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(body["code"], code, "{command}: {text}");
                    }
                }
            }
        }
    }
    running.stop().await;
}
