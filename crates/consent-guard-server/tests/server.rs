//! The HTTP decision service against a real server on 127.0.0.1 (a random port) and a
//! real HTTP client (reqwest, rustls): every endpoint, every role, every error status,
//! TLS, reload, a store that goes down, slow clients and a graceful shutdown. Every
//! error is RFC 9457 problem+json, with the field at fault and the line or item of a
//! batch.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consent_guard::audit::{AuditLog, Durability};
use consent_guard::consent::{ConsentEvent, ConsentHistory};
use consent_guard::error::StoreError;
use consent_guard::store::{ConsentStore, MemoryConsentStore, RedbConsentStore};
use consent_guard::Policy;
use consent_guard_server::{Role, Server, ServerOptions, Tokens};
use reqwest::StatusCode;
use serde_json::{json, Value};

const CHECK: &str = "check-token-0123456789";
const RECORD: &str = "record-token-0123456789";
const READ: &str = "read-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

/// A contract purpose: allowed without consent.
const REGISTRATION: &str = r#"{"subject":"u1","purpose":"account.registration","categories":["contact.email"]}"#;
/// A consent purpose: denied until a grant.
const TRAINING: &str = r#"{"subject":"alice","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#;
const GRANT: &str =
    r#"{"type":"grant","subject":"alice","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn exmo() -> PathBuf {
    root().join("examples/policies/exmo.toml")
}

fn tokens() -> Tokens {
    Tokens::new().with(Role::Check, CHECK).with(Role::Record, RECORD).with(Role::Read, READ).with(Role::Admin, ADMIN)
}

/// A store that can be made to fail, shared with other processes (so the guard over it
/// goes stale when it cannot sync).
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryConsentStore,
    down: Arc<AtomicBool>,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Acquire) {
            Err(StoreError::new("connection refused"))
        } else {
            Ok(())
        }
    }
}

impl ConsentStore for FlakyStore {
    fn append(&self, events: &[ConsentEvent]) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.append(events)
    }
    fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        self.check()?;
        self.inner.history(subject)
    }
    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>, StoreError> {
        self.check()?;
        self.inner.events_since(after, limit)
    }
    fn shared(&self) -> bool {
        true
    }
}

/// A server running on its own runtime thread, stopped when dropped.
struct Running {
    addr: SocketAddr,
    /// The tokenless metrics address, when configured.
    metrics: Option<SocketAddr>,
    scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<std::sync::mpsc::Receiver<Result<(), String>>>,
    _dir: tempfile::TempDir,
    audit_dir: PathBuf,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Stops the server gracefully and waits for it.
    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.done.take() {
            Some(done) => done.recv_timeout(Duration::from_secs(30)).unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Starts `server` (given the temporary directory) with an audit log in that directory.
fn start(configure: impl FnOnce(&Path) -> Server + Send + 'static) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let audit_dir = path.join("audit");
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let audit = audit_dir.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let server = configure(&path).audit(AuditLog::open(&audit, Durability::Synced).unwrap());
            let bound = match server.bind().await {
                Ok(bound) => bound,
                Err(e) => {
                    addr_tx.send(Err(e.to_string())).unwrap();
                    return;
                }
            };
            addr_tx.send(Ok((bound.local_addr().unwrap(), bound.metrics_addr().unwrap()))).unwrap();
            let served = bound
                .serve(async move {
                    let _ = stop_rx.await;
                })
                .await;
            let _ = done_tx.send(served.map_err(|e| e.to_string()));
        });
    });
    let (addr, metrics) = addr_rx.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
    Running { addr, metrics, scheme: "http", stop: Some(stop_tx), done: Some(done_rx), _dir: dir, audit_dir }
}

fn options() -> ServerOptions {
    ServerOptions::default().listen(SocketAddr::from(([127, 0, 0, 1], 0))).reload_on_sighup(false)
}

/// A server on the EXMO policy over a redb store.
fn exmo_server() -> Running {
    start(|dir| {
        Server::from_policy_file(exmo(), RedbConsentStore::open(dir.join("store.redb")).unwrap())
            .tokens(tokens())
            .options(options().body_limit(64 * 1024))
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn send(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let mut request = client().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, response.text().await.unwrap(), headers)
}

async fn post(server: &Running, path: &str, token: Option<&str>, body: &str) -> (StatusCode, String) {
    let (status, text, _) = send(reqwest::Method::POST, server.url(path), token, Some(body.to_owned())).await;
    (status, text)
}

async fn get(server: &Running, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let (status, text, _) = send(reqwest::Method::GET, server.url(path), token, None).await;
    (status, text)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {text}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers() {
    let server = exmo_server();

    let (status, text) = get(&server, "/healthz", None).await;
    assert_eq!((status, parse(&text)), (StatusCode::OK, json!({"status": "ok"})));
    let (status, text) = get(&server, "/readyz", None).await;
    assert_eq!((status, parse(&text)), (StatusCode::OK, json!({"ready": true})));

    // One check, decided now.
    let (status, text) = post(&server, "/v1/check", Some(CHECK), REGISTRATION).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let decision = parse(&text);
    assert_eq!((decision["allowed"].clone(), decision["code"].clone()), (json!(true), json!("legal_basis")));
    assert!(decision.get("what_if").is_none(), "{decision}");
    let (_, text) = post(&server, "/v1/check", Some(CHECK), TRAINING).await;
    assert_eq!(parse(&text)["code"], "consent_missing");

    // A request about another time gets a what-if, marked as such.
    let past = TRAINING.replace('}', r#","at":"2026-01-10T00:00:00Z"}"#);
    let (status, text) = post(&server, "/v1/check", Some(CHECK), &past).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(parse(&text)["what_if"], true);

    // Events: durable before 200; the next check sees them.
    let (status, text) = post(&server, "/v1/events", Some(RECORD), GRANT).await;
    assert_eq!((status, parse(&text)), (StatusCode::OK, json!({"recorded": 1})), "{text}");
    let (_, text) = post(&server, "/v1/check", Some(CHECK), TRAINING).await;
    assert_eq!(parse(&text)["code"], "consent_given", "{text}");
    let withdraw = r#"[{"type":"withdraw","subject":"alice","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"},
                      {"type":"grant","subject":"bob","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}]"#;
    let (status, text) = post(&server, "/v1/events", Some(RECORD), withdraw).await;
    assert_eq!((status, parse(&text)), (StatusCode::OK, json!({"recorded": 2})), "{text}");

    // History: proof of consent, with the policy version stamped.
    let (status, text) = get(&server, "/v1/subjects/alice/history", Some(READ)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let history = parse(&text);
    assert_eq!(history["subject"], "alice");
    assert_eq!(history["events"].as_array().unwrap().len(), 2);
    assert_eq!(history["events"][0]["policy_version"], "1.0");

    // Export: the history and every decision about the subject in the audit log
    // (issue 27 item 4), fitting the `export` schema; nobody's is 404.
    let (status, text) = get(&server, "/v1/subjects/alice/export", Some(READ)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let export = parse(&text);
    let validator = jsonschema::validator_for(&consent_guard::schema::schema("export").unwrap()).unwrap();
    assert!(validator.is_valid(&export), "{export:#}");
    assert_eq!(export["history"]["events"].as_array().unwrap().len(), 2);
    let decisions = export["decisions"].as_array().unwrap();
    // Three checks of alice above: training, its what-if, training after the grant.
    assert_eq!(decisions.len(), 3, "{export:#}");
    assert!(decisions.iter().all(|d| d["request"]["subject"] == "alice" && d["decision"]["subject"] == "alice"));
    assert_eq!(export["audit"]["complete"], true);
    // Found through alice's key: the log itself names her by a pseudonym only.
    assert_eq!(export["audit"]["subject_key"], "found");
    let logged: Vec<u8> =
        std::fs::read_dir(&server.audit_dir).unwrap().flat_map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    assert!(!logged.windows(5).any(|w| w == b"alice"), "the audit log holds the id");
    let (status, _) = get(&server, "/v1/subjects/nobody/export", Some(READ)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&server, "/v1/subjects/alice/export", Some(CHECK)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Batches: a JSON array and JSON lines in, JSON lines out, in order.
    let lines: String = (0..300)
        .map(|i| {
            let subject = if i % 3 == 0 { "bob".to_owned() } else { format!("user{i}") };
            TRAINING.replace("alice", &subject) + "\n"
        })
        .collect();
    let (status, text, headers) =
        send(reqwest::Method::POST, server.url("/v1/check/batch"), Some(CHECK), Some(lines)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/x-ndjson");
    let decisions: Vec<Value> = text.lines().map(parse).collect();
    assert_eq!(decisions.len(), 300);
    for (i, decision) in decisions.iter().enumerate() {
        let expected = if i % 3 == 0 { "consent_given" } else { "consent_missing" };
        assert_eq!(decision["code"], expected, "{i}: {decision}");
    }
    let array = format!("[{REGISTRATION}, {TRAINING}, {past}]");
    let (status, text) = post(&server, "/v1/check/batch", Some(CHECK), &array).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let codes: Vec<Value> = text.lines().map(|l| parse(l)["code"].clone()).collect();
    assert_eq!(codes, vec![json!("legal_basis"), json!("consent_withdrawn"), json!("consent_given")]);
    assert_eq!(parse(text.lines().nth(2).unwrap())["what_if"], true);
    // A batch of nothing is a mistake, not an empty success.
    let (status, text) = post(&server, "/v1/check/batch", Some(CHECK), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(parse(&text)["detail"], "no access request in the body");

    // The policy, as `explain` says.
    let (status, text) = get(&server, "/v1/policy", Some(CHECK)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(parse(&text)["policy"], "exmo");

    // Reload: same file, same version.
    let (status, text) = post(&server, "/v1/policy/reload", Some(ADMIN), "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(parse(&text)["version"], "1.0");
    // The state survives the reload (replayed from the store).
    let (_, text) = post(&server, "/v1/check", Some(CHECK), &TRAINING.replace("alice", "bob")).await;
    assert_eq!(parse(&text)["code"], "consent_given", "{text}");

    // Metrics in Prometheus text.
    let (status, text) = get(&server, "/metrics", Some(READ)).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "consent_guard_decisions_total{code=\"consent_given\",clause=\"exmo.training\"}",
        "consent_guard_check_duration_seconds_bucket",
        "consent_guard_events_recorded_total{type=\"grant\"}",
        "consent_guard_store_lag_seconds",
        "consent_guard_audit_queue_depth",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

/// The compact batch form (issue 31 item 5) answers, subject by subject, what the
/// JSON-lines batch answers for the same requests, and refuses a body it cannot take
/// without deciding anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compact_form_answers_what_the_batch_answers() {
    let server = exmo_server();
    let (status, text) = post(&server, "/v1/events", Some(RECORD), GRANT).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // Some known, some not; as many as the test server's 64 KiB body limit takes in
    // JSON lines.
    let subjects: Vec<String> =
        (0..400).map(|i| if i % 7 == 0 { "alice".to_owned() } else { format!("user{i}") }).collect();
    let lines: String = subjects.iter().map(|s| TRAINING.replace("alice", s) + "\n").collect();
    let (status, text, _) = send(reqwest::Method::POST, server.url("/v1/check/batch"), Some(CHECK), Some(lines)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let expected: Vec<Value> = text.lines().map(parse).collect();
    let batch_bytes = text.len();
    let template: Value = {
        let mut request = parse(TRAINING);
        request.as_object_mut().unwrap().remove("subject");
        request
    };
    let body = json!({ "request": template, "subjects": subjects }).to_string();
    let (status, text, headers) =
        send(reqwest::Method::POST, server.url("/v1/check/compact"), Some(CHECK), Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/json");
    let answer = parse(&text);
    let document = json!({
        "$ref": "#/components/schemas/CompactAnswer",
        "components": { "schemas": consent_guard::schema::openapi_components() },
    });
    let validator = jsonschema::validator_for(&document).unwrap();
    assert!(validator.is_valid(&answer), "{text}");
    assert_eq!(answer["policy_version"], expected[0]["policy_version"]);
    for (i, decision) in expected.iter().enumerate() {
        assert_eq!(answer["allowed"][i], decision["allowed"], "{i}");
        assert_eq!(answer["codes"][i], decision["code"], "{i}");
        assert_eq!(answer["clauses"][i], decision.get("clause").cloned().unwrap_or(Value::Null), "{i}");
    }
    assert_eq!(answer["codes"].as_array().unwrap().len(), subjects.len());
    assert_eq!(answer["codes"][0], "consent_given");
    assert_eq!(answer["codes"][1], "consent_missing");
    assert!(text.len() * 4 < batch_bytes, "compact: {} bytes against the batch's {batch_bytes}", text.len());

    let cases = [
        ("{", "malformed JSON"),
        (r#"{"request":{"purpose":"account.registration","categories":["contact.email"]}}"#, "subjects"),
        (
            r#"{"request":{"purpose":"account.registration","categories":["contact.email"]},"subjects":[]}"#,
            "subjects: must not be empty",
        ),
        (
            r#"{"request":{"purpose":"account.registration","categories":["contact.email"]},"subjects":["a",""]}"#,
            "subjects: item 2 must not be empty",
        ),
        (
            r#"{"request":{"subject":"u1","purpose":"account.registration","categories":["contact.email"]},"subjects":["a"]}"#,
            "request.subject: ",
        ),
        (
            r#"{"request":{"purpose":"account.registration","categories":["contact.email"],"at":"2026-01-01T00:00:00Z"},"subjects":["a"]}"#,
            "request.at: ",
        ),
        (
            r#"{"request":{"purpose":"account.registration","categories":["contact.mail"]},"subjects":["a"]}"#,
            "request.categories: unknown data category",
        ),
        (
            r#"{"request":{"purpose":"account.registration","categories":["contact.email"],"colour":1},"subjects":["a"]}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"request":{"purpose":"account.registration","categories":["contact.email"]},"subjects":["a"],"more":1}"#,
            "unknown field `more`",
        ),
        (r#"{"request":7,"subjects":["a"]}"#, "request"),
        (r#"{"request":{"purpose":"account.registration","categories":["contact.email"]},"subjects":[7]}"#, "subjects"),
        ("[]", "expected"),
    ];
    for (body, expected) in cases {
        let (status, text) = post(&server, "/v1/check/compact", Some(CHECK), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        let detail = parse(&text)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    let (_, text) = post(
        &server,
        "/v1/check/compact",
        Some(CHECK),
        r#"{"request":{"purpose":"account.registration","categories":["contact.mail"]},"subjects":["a"]}"#,
    )
    .await;
    assert_eq!(parse(&text)["field"], "request.categories", "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_and_every_refusal() {
    let server = exmo_server();
    // (method, path, body, the role it needs; None: any token)
    let compact = r#"{"request":{"purpose":"account.registration","categories":["contact.email"]},"subjects":["u1"]}"#;
    let endpoints: [(&str, &str, &str, Option<&str>); 8] = [
        ("POST", "/v1/check", REGISTRATION, Some(CHECK)),
        ("POST", "/v1/check/batch", REGISTRATION, Some(CHECK)),
        ("POST", "/v1/check/compact", compact, Some(CHECK)),
        ("POST", "/v1/events", GRANT, Some(RECORD)),
        ("GET", "/v1/subjects/alice/history", "", Some(READ)),
        ("GET", "/metrics", "", Some(READ)),
        ("POST", "/v1/policy/reload", "", Some(ADMIN)),
        ("GET", "/v1/policy", "", None),
    ];
    for (method, path, body, needed) in endpoints {
        let method: reqwest::Method = method.parse().unwrap();
        let body = (!body.is_empty()).then(|| body.to_owned());
        // No token, an unknown token, a malformed header: 401 with a challenge.
        for token in [None, Some("not-a-configured-token-at-all")] {
            let (status, text, headers) = send(method.clone(), server.url(path), token, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {token:?}: {text}");
            assert_eq!(headers[reqwest::header::WWW_AUTHENTICATE], "Bearer");
        }
        let basic = client().request(method.clone(), server.url(path)).header("authorization", "Basic YWRtaW4=");
        assert_eq!(basic.send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{path}");
        for token in [CHECK, RECORD, READ, ADMIN] {
            let (status, text, _) = send(method.clone(), server.url(path), Some(token), body.clone()).await;
            let allowed = token == ADMIN || needed.is_none_or(|needed| needed == token);
            if allowed {
                assert!(status.is_success(), "{path} with {token}: {status} {text}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{path} with {token}: {text}");
                assert!(parse(&text)["detail"].as_str().unwrap().contains("lacks the role"), "{text}");
            }
        }
    }
    // The probes need no token.
    assert_eq!(get(&server, "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(get(&server, "/readyz", None).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_400_with_the_field() {
    let server = exmo_server();
    let cases = [
        ("/v1/check", "{", "malformed JSON"),
        (
            "/v1/check",
            r#"{"subject":"u1","purpose":"account.registration","categories":["contact.email"],"colour":1}"#,
            "unknown field `colour`",
        ),
        (
            "/v1/check",
            r#"{"subject":"u1","purpose":"account.registration","categories":["contact.mail"]}"#,
            "categories: unknown data category `contact.mail`",
        ),
        (
            "/v1/check",
            r#"{"subject":"u1","purpose":"account.registration","categories":["contact.email"],"at":"yesterday"}"#,
            "at: ",
        ),
        ("/v1/check", "[1]", "expected a JSON object"),
        ("/v1/check/batch", &format!("{REGISTRATION}\n{{\"subject\":\"\"}}\n"), "line 2: subject: must not be empty"),
        ("/v1/check/batch", &format!("[{REGISTRATION}, 7]"), "item 2: expected a JSON object"),
        ("/v1/check/batch", "[", "malformed JSON"),
        (
            "/v1/events",
            r#"{"type":"grant","subject":"u","purposes":["ai_training"],"at":"2026-01-01T00:00:00Z"}"#,
            "missing field `level`",
        ),
        (
            "/v1/events",
            r#"{"type":"grant","subject":"u","purposes":["no_such"],"level":"separate","at":"2026-01-01T00:00:00Z"}"#,
            "purposes: unknown purpose",
        ),
        ("/v1/events", "", "no consent event"),
        ("/v1/check/batch", "", "no access request in the body"),
        ("/v1/check/batch", "[]", "no access request in the body"),
        // A policy error in line 2 of a batch names its line, as a malformed line does.
        (
            "/v1/events",
            &format!("{GRANT}\n{}\n", GRANT.replace("\"ai_training\"", "\"no_such\"")),
            "line 2: purposes: unknown purpose `no_such`",
        ),
        (
            "/v1/events",
            &format!("[{GRANT}, {}]", GRANT.replace("\"ai_training\"", "\"no_such\"")),
            "item 2: purposes: unknown purpose `no_such`",
        ),
    ];
    for (path, body, expected) in cases {
        let token = if path == "/v1/events" { RECORD } else { CHECK };
        let (status, text, headers) =
            send(reqwest::Method::POST, server.url(path), Some(token), Some(body.to_owned())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {text}");
        assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/problem+json", "{path} {body}");
        let problem = parse(&text);
        assert_eq!(problem["status"], 400, "{text}");
        assert_eq!(problem["code"], "bad_request", "{text}");
        let message = problem["detail"].as_str().unwrap().to_owned();
        assert!(message.contains(expected), "{path} {body}: {message}");
    }
    // The problem names the field, and the line of a batch, as members of their own.
    let body = format!("{GRANT}\n{}\n", GRANT.replace("\"ai_training\"", "\"no_such\""));
    let problem = parse(&post(&server, "/v1/events", Some(RECORD), &body).await.1);
    assert_eq!((problem["field"].clone(), problem["line"].clone()), (json!("purposes"), json!(2)), "{problem}");
    let (_, text) =
        post(&server, "/v1/check", Some(CHECK), &REGISTRATION.replace("contact.email", "contact.mail")).await;
    assert_eq!(parse(&text)["field"], "categories", "{text}");
    // Nothing of a refused batch was recorded.
    let (status, _) = get(&server, "/v1/subjects/alice/history", Some(READ)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_too_large_and_not_allowed() {
    let server = exmo_server();
    /// Each error is a problem with its status.
    fn problem(status: StatusCode, text: &str, headers: &reqwest::header::HeaderMap) -> Value {
        assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/problem+json", "{status}: {text}");
        let problem = parse(text);
        assert_eq!(problem["status"], status.as_u16(), "{text}");
        assert!(problem["type"].as_str().unwrap().starts_with("urn:consent-guard:error:"), "{text}");
        problem
    }
    let (status, text, headers) = send(reqwest::Method::GET, server.url("/v2/nothing"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    problem(status, &text, &headers);
    let (status, text, headers) =
        send(reqwest::Method::GET, server.url("/v1/subjects/nobody/history"), Some(READ), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    problem(status, &text, &headers);
    // Over the body limit (64 KiB here): 413, on every endpoint with a body, naming the
    // limit and the flag that raises it.
    let huge = format!("[{}]", vec![REGISTRATION; 2000].join(","));
    assert!(huge.len() > 64 * 1024);
    for (path, token) in [("/v1/check", CHECK), ("/v1/check/batch", CHECK), ("/v1/events", RECORD)] {
        let (status, text, headers) =
            send(reqwest::Method::POST, server.url(path), Some(token), Some(huge.clone())).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {text}");
        let problem = problem(status, &text, &headers);
        assert_eq!(problem["limit"], 64 * 1024, "{text}");
        assert!(problem["detail"].as_str().unwrap().contains("--body-limit"), "{text}");
    }
    let (status, text, headers) = send(reqwest::Method::POST, server.url("/healthz"), None, Some(String::new())).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    problem(status, &text, &headers);
    let (status, text, headers) = send(reqwest::Method::GET, server.url("/v1/check"), None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    problem(status, &text, &headers);
    let (status, text, headers) = send(reqwest::Method::GET, server.url("/v1/policy"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    problem(status, &text, &headers);
    let (status, text, headers) = send(reqwest::Method::GET, server.url("/metrics"), Some(CHECK), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    problem(status, &text, &headers);
}

/// Sends `head` on a raw connection and reads the answer's head and body (by its
/// `Content-Length`), giving up after `within`; also how long the answer took.
fn raw_answer(addr: SocketAddr, head: &str, within: Duration) -> (String, Duration) {
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < within {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|length| body.len() >= length) {
                break;
            }
        }
    }
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

/// Issue 30: the token is checked on the headers, before the body is read. A client
/// with no token and a body that never comes is answered 401 at once (not 408 after
/// the request timeout), and many such clients hold no body in the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokenless_stalled_body_gets_401_at_once() {
    let server = exmo_server();
    let addr = server.addr;
    let answers = tokio::task::spawn_blocking(move || {
        // Several at once, within the limit and far over it: the refusal comes first.
        let heads = [
            "POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n{\"subject\"".to_owned(),
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n".to_owned(),
            "POST /v1/check/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-0123456789\r\nContent-Length: 60000\r\n\r\n".to_owned(),
            format!("POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CHECK}\r\nContent-Length: 60000\r\n\r\n"),
        ];
        // 40 clients at once, each announcing a body it never sends.
        let threads: Vec<_> = (0..10)
            .flat_map(|_| heads.clone())
            .map(|head| std::thread::spawn(move || raw_answer(addr, &head, Duration::from_secs(5))))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (i, (answer, took)) in answers.iter().enumerate() {
        let expected = if i % 4 == 3 { "HTTP/1.1 403" } else { "HTTP/1.1 401" };
        assert!(answer.starts_with(expected), "{i}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("content-type: application/problem+json"), "{answer}");
        // The request timeout is 10 s: an answer within 2 s was not waiting for the body.
        assert!(*took < Duration::from_secs(2), "{i}: took {took:?}");
    }
    assert_eq!(answers.len(), 40);
}

/// Issue 30: a body announced larger than the limit is refused at once with 413 (not
/// 408 after the request timeout), and the problem names the limit and the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_oversized_body_gets_413_at_once() {
    let server = exmo_server();
    let addr = server.addr;
    let head = format!(
        "POST /v1/check/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CHECK}\r\nContent-Length: 10000000000\r\n\r\n"
    );
    let (answer, took) =
        tokio::task::spawn_blocking(move || raw_answer(addr, &head, Duration::from_secs(5))).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let problem = parse(body);
    assert_eq!(problem["limit"], 64 * 1024, "{body}");
    assert!(problem["detail"].as_str().unwrap().contains("65536 bytes (raise it with --body-limit)"), "{body}");
}

/// RFC 9110: the authentication scheme is case-insensitive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = exmo_server();
    for scheme in ["BEARER", "bearer", "Bearer", "bEaReR"] {
        let response = client()
            .post(server.url("/v1/check"))
            .header("authorization", format!("{scheme} {CHECK}"))
            .body(REGISTRATION)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    let response =
        client().get(server.url("/v1/policy")).header("authorization", format!("BEARER {READ}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_gets_503_and_checks_fail_closed() {
    let down = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&down);
    let server = start(move |_| {
        let store = FlakyStore { inner: MemoryConsentStore::new(), down: flag };
        Server::from_policy_file(exmo(), store)
            .tokens(tokens())
            .options(options().max_staleness(Duration::from_millis(200)).sync_interval(Duration::from_millis(20)))
    });
    assert_eq!(post(&server, "/v1/events", Some(RECORD), GRANT).await.0, StatusCode::OK);
    assert_eq!(parse(&post(&server, "/v1/check", Some(CHECK), TRAINING).await.1)["code"], "consent_given");

    down.store(true, Ordering::Release);
    let (status, text) = get(&server, "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(parse(&text)["ready"], false);
    let (status, text) = post(&server, "/v1/events", Some(RECORD), GRANT).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    let (status, text) = get(&server, "/v1/subjects/alice/history", Some(READ)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    // A decision is still an answer: the denial that says why.
    let (status, text) = post(&server, "/v1/check", Some(CHECK), TRAINING).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(parse(&text)["code"], "consent_state_unavailable", "{text}");
    // A reload cannot replay the store: 503, and the old guard goes on.
    assert_eq!(post(&server, "/v1/policy/reload", Some(ADMIN), "").await.0, StatusCode::SERVICE_UNAVAILABLE);

    down.store(false, Ordering::Release);
    let mut ready = false;
    for _ in 0..100 {
        if get(&server, "/readyz", None).await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready);
    assert_eq!(parse(&post(&server, "/v1/check", Some(CHECK), TRAINING).await.1)["code"], "consent_given");
}

/// Sends `head` and part of a body on a raw connection, then waits for the answer.
fn slow_request(addr: SocketAddr, head: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_time_out() {
    let server = start(|dir| {
        Server::from_policy_file(exmo(), RedbConsentStore::open(dir.join("store.redb")).unwrap())
            .tokens(tokens())
            .options(options().request_timeout(Duration::from_millis(300)).header_timeout(Duration::from_millis(300)))
    });
    let addr = server.addr;
    // A body that never comes: 408.
    let head = format!(
        "POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CHECK}\r\nContent-Length: 100\r\n\r\n{{\"subject\""
    );
    let answer = tokio::task::spawn_blocking(move || slow_request(addr, &head)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    // Headers that never end: the connection is closed.
    let started = std::time::Instant::now();
    let answer =
        tokio::task::spawn_blocking(move || slow_request(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n")).await.unwrap();
    assert!(!answer.contains("200 OK"), "{answer}");
    // Closed by the server (header timeout 300 ms), not by the client's read timeout.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::copy(exmo(), &policy).unwrap();
    let file = policy.clone();
    let server = start(move |dir| {
        Server::from_policy_file(file, RedbConsentStore::open(dir.join("store.redb")).unwrap())
            .tokens(tokens())
            .options(options())
    });
    assert_eq!(post(&server, "/v1/events", Some(RECORD), GRANT).await.0, StatusCode::OK);
    std::fs::write(&policy, "[policy]\nname = \"broken\"\n[[rule]]\nid = 3\n").unwrap();
    let (status, text, headers) =
        send(reqwest::Method::POST, server.url("/v1/policy/reload"), Some(ADMIN), Some(String::new())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/problem+json");
    let body = parse(&text);
    assert!(!body["errors"].as_array().unwrap().is_empty(), "{text}");
    assert!(body["errors"][0].as_str().unwrap().contains("policy.toml"), "{text}");
    let (_, text) = get(&server, "/v1/policy", Some(READ)).await;
    assert_eq!(parse(&text)["version"], "1.0");
    assert_eq!(parse(&post(&server, "/v1/check", Some(CHECK), TRAINING).await.1)["code"], "consent_given");

    // A good new version takes over, with the consent state replayed.
    let text = std::fs::read_to_string(exmo()).unwrap().replacen("version = \"1.0\"", "version = \"1.1\"", 1);
    std::fs::write(&policy, text).unwrap();
    // `GET /v1/policy` describes the policy enforced, not the file on disk.
    let (_, text) = get(&server, "/v1/policy", Some(READ)).await;
    assert_eq!(parse(&text)["version"], "1.0");
    let (status, text) = post(&server, "/v1/policy/reload", Some(ADMIN), "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, described) = get(&server, "/v1/policy", Some(READ)).await;
    let described = parse(&described);
    assert_eq!(described["version"], "1.1");
    assert!(described["rules"].as_array().unwrap().iter().any(|r| r["clause"] == "exmo.training"), "{described}");
    assert_eq!(parse(&text), json!({"policy": "exmo", "version": "1.1", "previous_version": "1.0"}));
    let (_, text) = post(&server, "/v1/check", Some(CHECK), TRAINING).await;
    assert_eq!(parse(&text)["policy_version"], "1.1", "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_rustls() {
    let data = root().join("tests/data/server");
    let mut server = start(move |dir| {
        Server::from_policy_file(exmo(), RedbConsentStore::open(dir.join("store.redb")).unwrap())
            .tokens(tokens())
            .options(options().tls(data.join("server.pem"), data.join("server.key")))
    });
    server.scheme = "https";
    let ca = std::fs::read(root().join("tests/data/server/ca.pem")).unwrap();
    let client =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap()).build().unwrap();
    let response = client.post(server.url("/v1/check")).bearer_auth(CHECK).body(REGISTRATION).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(parse(&response.text().await.unwrap())["allowed"], true);
    // Plain HTTP to the TLS port gets no answer.
    let plain = client.get(format!("http://{}/healthz", server.addr)).send().await;
    assert!(plain.map(|r| r.status() != StatusCode::OK).unwrap_or(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_and_flushes_the_audit() {
    let mut server = exmo_server();
    for _ in 0..5 {
        assert_eq!(post(&server, "/v1/check", Some(CHECK), REGISTRATION).await.0, StatusCode::OK);
    }
    // A request in flight when the shutdown starts: its body arrives after.
    let addr = server.addr;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CHECK}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        REGISTRATION.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(stop) = server.stop.take() {
        stop.send(()).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(REGISTRATION.as_bytes()).unwrap();
    let answer = tokio::task::spawn_blocking(move || {
        let mut answer = String::new();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.shutdown().unwrap();
    // Every decision answered is in the audit log.
    let head = std::fs::read_to_string(server.audit_dir.join("head")).unwrap();
    assert!(head.starts_with("6:"), "{head}");
    // New connections are refused.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_no_server() {
    let server = Server::new(|| Policy::from_toml_file(exmo()), MemoryConsentStore::new()).options(options());
    let error = server.bind().await.unwrap_err().to_string();
    assert!(error.contains("no bearer token"), "{error}");
}

/// `docs/openapi.yaml` lists exactly the server's routes, and each one is routed (it
/// answers something other than 404 or 405 without a token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route() {
    let text = std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            path = format!("/{p}");
        } else if let Some(method) = line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')) {
            if ["get", "post", "put", "delete", "patch"].contains(&method) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routes: std::collections::BTreeSet<(String, String)> =
        consent_guard_server::ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(documented, routes);
    let server = exmo_server();
    for (method, path) in &routes {
        let (status, text, _) =
            send(method.parse().unwrap(), server.url(&path.replace("{id}", "alice")), None, None).await;
        assert!(
            ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&status),
            "{method} {path}: {status} {text}"
        );
    }
}

/// Issue 28: an empty subject is a 400 for one check and in a batch (as it is for an
/// event), and `basis` is a known field: the error beside it is the one answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_subjects_and_basis_are_answered_as_errors_of_their_own() {
    let server = exmo_server();
    let empty = r#"{"subject":"","purpose":"account.registration","categories":["contact.email"]}"#;
    let (status, text) = post(&server, "/v1/check", Some(CHECK), empty).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(parse(&text)["field"], "subject", "{text}");
    let (status, text) = post(&server, "/v1/check/batch", Some(CHECK), &format!("[{REGISTRATION},{empty}]")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(parse(&text)["field"], "subject", "{text}");
    assert_eq!(parse(&text)["item"], 2, "{text}");
    let (status, text) = post(&server, "/v1/check/batch", Some(CHECK), &format!("{REGISTRATION}\n{empty}\n")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(parse(&text)["line"], 2, "{text}");
    let with_basis = r#"{"subject":"u1","purpose":"account.registration","categories":["contact.email"],"basis":"contract","at":"yesterday"}"#;
    let (status, text) = post(&server, "/v1/check", Some(CHECK), with_basis).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(parse(&text)["field"], "at", "{text}");
    let unknown = r#"{"subject":"u1","purpose":"account.registration","categories":["contact.email"],"purpse":1}"#;
    let (_, text) = post(&server, "/v1/check", Some(CHECK), unknown).await;
    assert!(parse(&text)["detail"].as_str().unwrap().contains("basis"), "{text}");
    // Nothing was decided: the audit log holds no record of the empty subject.
    let valid =
        r#"{"subject":"u1","purpose":"account.registration","categories":["contact.email"],"basis":"contract"}"#;
    let (status, text) = post(&server, "/v1/check", Some(CHECK), valid).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

const GENERATED_BEGIN: &str = "    # generated from consent_guard::schema::openapi_components: begin";
const GENERATED_END: &str = "    # generated: end";

/// Issue 28: the body schemas of `docs/openapi.yaml` are the library's
/// (`consent_guard::schema::openapi_components`, the types `consent-guard schema`
/// prints): one line of JSON per schema between two markers, compared as JSON. With
/// `CONSENT_GUARD_BLESS=1` the test writes them instead.
#[test]
fn the_openapi_body_schemas_are_the_library_schemas() {
    let path = root().join("docs/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let begin = text.find(GENERATED_BEGIN).expect("docs/openapi.yaml has the generated block");
    let end = text.find(GENERATED_END).expect("docs/openapi.yaml ends the generated block");
    let block = &text[begin + GENERATED_BEGIN.len()..end];
    let components = consent_guard::schema::openapi_components();
    if std::env::var_os("CONSENT_GUARD_BLESS").is_some() {
        let mut lines = String::from("\n");
        for (name, schema) in &components {
            lines.push_str(&format!("    {name}: {}\n", serde_json::to_string(schema).unwrap()));
        }
        std::fs::write(&path, format!("{}{lines}{}", &text[..begin + GENERATED_BEGIN.len()], &text[end..])).unwrap();
        return;
    }
    let mut documented = serde_json::Map::new();
    for line in block.lines().filter(|line| !line.trim().is_empty()) {
        let (name, json) = line.trim_start().split_once(": ").unwrap_or_else(|| panic!("not `name: json`: {line}"));
        documented.insert(name.to_owned(), parse(json));
    }
    assert_eq!(
        Value::Object(documented),
        Value::Object(components),
        "docs/openapi.yaml: run CONSENT_GUARD_BLESS=1 cargo test -p consent-guard-server --test server openapi_body"
    );
}

/// Issue 28: the JSON Schemas (`consent-guard schema request|event`) say what the
/// server does. Each example is valid under the schema exactly when the server
/// accepts it: nulls, required fields, empty subjects and lists, objects written as
/// arrays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schemas_accept_what_the_server_accepts() {
    let request = |extra: &str| {
        format!(r#"{{"subject":"s1","purpose":"ai_training.model_training","categories":["behavior.log"]{extra}}}"#)
    };
    let requests: Vec<(String, bool)> = vec![
        (request(""), true),
        (request(r#","at":null,"collected_at":null,"basis":null,"region":null,"session":null"#), true),
        (
            request(
                r#","action":"use","recipient":{"kind":"processor"},"deidentification":"anonymized","signals":{"dnt":true}"#,
            ),
            true,
        ),
        (request(r#","basis":"contract","at":"2026-01-02T00:00:00Z""#), true),
        (request(r#","action":null"#), false),
        (request(r#","deidentification":null"#), false),
        (request(r#","recipient":null"#), false),
        (request(r#","signals":null"#), false),
        (request(r#","recipient":["processor",null]"#), false),
        (request(r#","signals":[true,false]"#), false),
        (request(r#","at":"yesterday""#), false),
        (request(r#","purpse":"x""#), false),
        // Enums: a value outside each is refused by both.
        (request(r#","action":"sell""#), false),
        (request(r#","deidentification":"hashed""#), false),
        (request(r#","basis":"whim""#), false),
        (request(r#","recipient":{"kind":"everyone"}"#), false),
        (r#"{"subject":"","purpose":"ai_training","categories":["behavior.log"]}"#.to_owned(), false),
        (r#"{"subject":"s1","purpose":"ai_training","categories":[]}"#.to_owned(), false),
        (r#"{"subject":"s1","categories":["behavior.log"]}"#.to_owned(), false),
    ];
    let events: Vec<(&str, bool)> = vec![
        (r#"{"type":"subject","subject":"e1","birth_date":null,"at":null}"#, true),
        (r#"{"type":"subject","subject":"e1","birth_date":"2013-05-01","at":"2026-01-01T00:00:00Z"}"#, true),
        (
            r#"{"type":"grant","subject":"e1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","expires_at":null,"scope":{"categories":["behavior"]}}"#,
            true,
        ),
        (r#"{"type":"withdraw","subject":"e1","purposes":["ai_training"],"at":"2026-01-03T00:00:00Z"}"#, true),
        (r#"{"type":"end","subject":"e1","purposes":["ai_training"],"at":"2026-01-04T00:00:00Z"}"#, true),
        (r#"{"type":"erase","subject":"e2","at":"2026-01-05T00:00:00Z"}"#, true),
        (r#"{"type":"withdraw","subject":"e1","purposes":[],"at":"2026-01-03T00:00:00Z"}"#, false),
        (
            r#"{"type":"grant","subject":"e1","purposes":["ai_training"],"level":"strong","at":"2026-01-02T00:00:00Z"}"#,
            false,
        ),
        (r#"{"type":"revoke","subject":"e1","purposes":["ai_training"],"at":"2026-01-02T00:00:00Z"}"#, false),
        (
            r#"{"type":"grant","subject":"","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
            false,
        ),
        (
            r#"{"type":"grant","subject":"e1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":[null,null]}"#,
            false,
        ),
        (r#"{"type":"grant","subject":"e1","purposes":["ai_training"],"level":"separate","at":null}"#, false),
        (r#"{"type":"withdraw","subject":"e1","purposes":["ai_training"]}"#, false),
        (r#"{"type":"end","subject":"e1","purposes":[],"at":"2026-01-04T00:00:00Z"}"#, false),
        (r#"{"type":"subject","subject":"e3","age":14.0}"#, true),
        (
            r#"{"type":"grant","subject":"e1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"1.0","scope":{"recipients":["processor"]}}"#,
            true,
        ),
        (
            r#"{"type":"grant","subject":"e1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"one"}"#,
            false,
        ),
        (
            r#"{"type":"grant","subject":"e1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"recipients":["AAA"]}}"#,
            false,
        ),
        (r#"{"type":"subject","subject":"e3","age":14.5}"#, false),
        (
            r#"{"type":"grant","subject":"e1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"regions":null}}"#,
            false,
        ),
    ];
    let server = exmo_server();
    // The schemas as the policy served narrows them (its names), and as
    // `consent-guard schema` prints them (any policy's: they take every accepted one).
    let components = consent_guard::schema::openapi_components_for(&Policy::from_toml_file(exmo()).unwrap());
    let narrowed = |name: &str| {
        let root = json!({ "$ref": format!("#/components/schemas/{name}"), "components": { "schemas": components } });
        jsonschema::options().should_validate_formats(true).build(&root).unwrap()
    };
    let generic = |name: &str| {
        let schema = consent_guard::schema::schema(name).unwrap();
        jsonschema::options().should_validate_formats(true).build(&schema).unwrap()
    };
    let (request_schema, event_schema) = (narrowed("AccessRequest"), narrowed("ConsentEvent"));
    let (any_request, any_event) = (generic("request"), generic("event"));
    let mut disagreements = Vec::new();
    for (body, accepted) in &requests {
        let valid = request_schema.is_valid(&parse(body));
        if *accepted && !any_request.is_valid(&parse(body)) {
            disagreements.push(format!("request {body}: refused by `consent-guard schema request`"));
        }
        let (status, text) = post(&server, "/v1/check", Some(CHECK), body).await;
        if valid != *accepted || (status == StatusCode::OK) != *accepted {
            disagreements
                .push(format!("request {body}: schema valid {valid}, server {status} {text}, want {accepted}"));
        }
    }
    for (body, accepted) in &events {
        let valid = event_schema.is_valid(&parse(body));
        if *accepted && !any_event.is_valid(&parse(body)) {
            disagreements.push(format!("event {body}: refused by `consent-guard schema event`"));
        }
        let (status, text) = post(&server, "/v1/events", Some(RECORD), body).await;
        if valid != *accepted || (status == StatusCode::OK) != *accepted {
            disagreements.push(format!("event {body}: schema valid {valid}, server {status} {text}, want {accepted}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Issue 28: a grant for a purpose no rule governs is recorded (it may matter to a
/// later policy), and the answer warns that nothing checks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_for_an_ungoverned_purpose_is_answered_with_a_warning() {
    let server = exmo_server();
    let grant =
        r#"{"type":"grant","subject":"w1","purposes":["marketing"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#;
    let (status, text) = post(&server, "/v1/events", Some(RECORD), grant).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer = parse(&text);
    assert_eq!(answer["recorded"], 1, "{text}");
    let warnings = answer["warnings"].as_array().unwrap_or_else(|| panic!("no warnings: {text}"));
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].as_str().unwrap().contains("`marketing`"), "{text}");
    // Stored: the history holds it.
    let (status, text) = get(&server, "/v1/subjects/w1/history", Some(READ)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // A governed purpose gets no warning.
    let (_, text) = post(&server, "/v1/events", Some(RECORD), GRANT).await;
    assert!(parse(&text).get("warnings").is_none(), "{text}");
}

/// Issue 28: a batch of 10,000 checks fits the default body limit (it did not at 1 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_checks_fit_the_default_body_limit() {
    let server = start(|dir| {
        Server::from_policy_file(exmo(), RedbConsentStore::open(dir.join("store.redb")).unwrap())
            .tokens(tokens())
            .options(options())
    });
    // A realistic request, every field written out.
    let request = r#"{"subject":"subject-000000000000","purpose":"service.task_management","categories":["contact.email","account.username"],"action":"use","recipient":{"kind":"first_party"},"deidentification":"none","region":"CN","signals":{"dnt":false,"gpc":false},"collected_at":"2026-01-02T00:00:00Z"}"#;
    let body = vec![request; 10_000].join("\n");
    assert!(body.len() > 1 << 20, "{} bytes", body.len());
    let (status, text) = post(&server, "/v1/check/batch", Some(CHECK), &body).await;
    assert_eq!(status, StatusCode::OK, "{}", text.get(..300).unwrap_or(&text));
    assert_eq!(text.lines().count(), 10_000);
}

/// Issue 28: every metric has a `# HELP` line (with its unit), and `metrics_listen`
/// serves `/metrics` without a token on its own address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_help_and_a_tokenless_address() {
    let server = start(|dir| {
        Server::from_policy_file(exmo(), RedbConsentStore::open(dir.join("store.redb")).unwrap())
            .tokens(tokens())
            .options(options().metrics_listen(SocketAddr::from(([127, 0, 0, 1], 0))))
    });
    let (status, text) = post(&server, "/v1/check", Some(CHECK), REGISTRATION).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, text) = post(&server, "/v1/events", Some(RECORD), GRANT).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let metrics = server.metrics.expect("a metrics address");
    let url = format!("http://{metrics}/metrics");
    let (status, text, _) = send(reqwest::Method::GET, url.clone(), None, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let types: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    assert!(types.iter().any(|t| t.starts_with("consent_guard_decisions_total ")), "{text}");
    assert!(types.iter().any(|t| t.starts_with("consent_guard_events_recorded_total ")), "{text}");
    for metric in types.iter().filter_map(|t| t.split(' ').next()) {
        let help = text.lines().find_map(|l| l.strip_prefix(&format!("# HELP {metric} ")));
        assert!(help.is_some_and(|h| !h.is_empty()), "no # HELP for {metric}:\n{text}");
    }
    let help = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(&format!("# HELP {name} "))).unwrap_or_default().to_owned()
    };
    assert!(help("consent_guard_check_duration_seconds").contains("seconds"), "{text}");
    assert!(help("consent_guard_store_lag_seconds").contains("seconds"), "{text}");
    // Only /metrics there; the main address still wants a token.
    let (status, _, _) = send(reqwest::Method::GET, format!("http://{metrics}/v1/policy"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(reqwest::Method::POST, url, None, Some(String::new())).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = get(&server, "/metrics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Issue 28: a well-formed event whose fields contradict each other (no schema can say
/// so) is 422 `inconsistent_record`, not 400: schema-valid data is never a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_contradicting_event_is_422() {
    let server = exmo_server();
    let grant = r#"{"type":"grant","subject":"c1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","expires_at":"2026-01-02T00:00:00Z"}"#;
    let (status, text) = post(&server, "/v1/events", Some(RECORD), grant).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert_eq!(parse(&text)["code"], "inconsistent_record", "{text}");
    assert!(parse(&text)["detail"].as_str().unwrap().contains("expires_at"), "{text}");
    // A malformed one stays 400.
    let (status, text) = post(&server, "/v1/events", Some(RECORD), r#"{"type":"grant"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
}

/// Issue 28: docs/openapi.yaml is YAML (a plain scalar with `: ` in it is not), read by
/// PyYAML as the validator and schemathesis read it; the route test above reads lines
/// and would not notice. Needs python3 with PyYAML: under CI (`CI` set) their absence
/// fails the test; elsewhere it is skipped with a message.
#[test]
fn the_openapi_document_is_yaml() {
    let path = root().join("docs/openapi.yaml");
    let script =
        "import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); assert d['openapi'].startswith('3.1'), d['openapi']";
    let output = std::process::Command::new("python3").args(["-c", script]).arg(&path).output();
    let missing = match &output {
        Err(_) => true,
        Ok(output) => String::from_utf8_lossy(&output.stderr).contains("ModuleNotFoundError"),
    };
    if missing {
        assert!(std::env::var_os("CI").is_none(), "CI is set but python3 with PyYAML is missing");
        eprintln!("skipped: no python3 with PyYAML");
        return;
    }
    let output = output.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// An export is never given as the whole when the audit log does not verify: a record
/// altered in a segment gets `503` naming the problem (issue 27 item 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_over_an_altered_log_is_refused() {
    let server = exmo_server();
    for _ in 0..3 {
        assert_eq!(post(&server, "/v1/check", Some(CHECK), TRAINING).await.0, StatusCode::OK);
    }
    let (status, text) = get(&server, "/v1/subjects/alice/export", Some(READ)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(parse(&text)["decisions"].as_array().unwrap().len(), 3);
    let segment = std::fs::read_dir(&server.audit_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("segment-"))
        .unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    // The log names alice by a pseudonym: alter the code of one of her records.
    let altered = text.replacen("\"consent_missing\"", "\"consent_missinh\"", 1);
    assert_ne!(text, altered);
    std::fs::write(&segment, altered).unwrap();
    let (status, text) = get(&server, "/v1/subjects/alice/export", Some(READ)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("does not verify"), "{text}");
}
