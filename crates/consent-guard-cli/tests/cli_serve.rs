//! The co-process modes of the command line, run as real processes: `check --follow`
//! answers each line at once (before standard input closes), and `consent-guard serve`
//! serves, reloads on SIGHUP and drains on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn binary() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("consent-guard")
}

const TRAINING: &str = r#"{"subject":"alice","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#;

/// Kills the child when the test fails midway.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn check_follow_answers_each_line_at_once() {
    let mut child = Child(
        Command::new(binary())
            .current_dir(root())
            .args(["check", "--follow", "--policy", "examples/policies/exmo.toml"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    // Standard input stays open: each answer must come back before the next line.
    let mut ask = |line: &str| -> Value {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        let mut answer = String::new();
        stdout.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer:?}: {e}"))
    };
    assert_eq!(ask(TRAINING)["code"], "consent_missing");
    let grant = r#"{"type":"grant","subject":"alice","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;
    assert_eq!(ask(grant), serde_json::json!({"recorded": 1}));
    assert_eq!(ask(TRAINING)["code"], "consent_given");
    let past = TRAINING.replace('}', r#","at":"2026-01-01T00:00:00Z"}"#);
    let what_if = ask(&past);
    assert_eq!((what_if["code"].as_str(), what_if["what_if"].as_bool()), (Some("consent_missing"), Some(true)));
    // A bad line is answered with its error, and the stream goes on.
    let bad = ask(r#"{"subject":"alice","purpose":"ai_training.model_training","categories":["behaviour.log"]}"#);
    assert!(bad["error"].as_str().unwrap().starts_with("line 5: categories: "), "{bad}");
    let bad = ask(r#"{"type":"grant","subject":"bob","purposes":["ai_training"],"at":"2026-01-02T00:00:00Z"}"#);
    assert!(bad["error"].as_str().unwrap().contains("missing field `level`"), "{bad}");
    assert_eq!(ask("{")["error"].as_str().map(|e| e.starts_with("line 7: malformed JSON")), Some(true));
    let withdraw = r#"{"type":"withdraw","subject":"alice","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}"#;
    assert_eq!(ask(withdraw), serde_json::json!({"recorded": 1}));
    assert_eq!(ask(TRAINING)["code"], "consent_withdrawn");
    // A purpose no rule governs: recorded, with a warning (issue 28).
    let marketing =
        r#"{"type":"grant","subject":"alice","purposes":["marketing"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#;
    let answer = ask(marketing);
    assert_eq!(answer["recorded"], 1, "{answer}");
    assert!(answer["warnings"][0].as_str().unwrap().contains("`marketing`"), "{answer}");
    drop(stdin);
    assert!(child.0.wait().unwrap().success());
}

/// `serve` as a process: listens, answers curl-like requests, reloads on SIGHUP,
/// stops on SIGTERM with status 0 after flushing the audit log.
#[cfg(unix)]
#[test]
fn serve_reloads_on_sighup_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // No threads is a usage error, named before anything is opened.
    let refused = Command::new(binary()).args(["serve", "--worker-threads", "0"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--worker-threads"), "{refused:?}");
    let policy = dir.path().join("policy.toml");
    std::fs::copy(root().join("examples/policies/exmo.toml"), &policy).unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "check check-token-0123456789\n").unwrap();
    let mut child = Child(
        Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--worker-threads", "1", "--policy"])
            .arg(&policy)
            .arg("--store")
            .arg(dir.path().join("store.redb"))
            .arg("--audit")
            .arg(dir.path().join("audit"))
            .arg("--tokens")
            .arg(&tokens)
            .env("CONSENT_GUARD_TOKENS", "admin:admin-token-0123456789")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr =
        line.trim().strip_prefix("consent-guard: listening on http://").unwrap_or_else(|| panic!("{line}")).to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reqwest::Client::new();
    let version = |token: &'static str| {
        let (client, addr) = (client.clone(), addr.clone());
        runtime.block_on(async move {
            let response = client.get(format!("http://{addr}/v1/policy")).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let value: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
            value["version"].as_str().unwrap().to_owned()
        })
    };
    assert_eq!(version("check-token-0123456789"), "1.0");
    // The environment's token works too.
    assert_eq!(version("admin-token-0123456789"), "1.0");

    // Errors are problem+json, naming the field.
    let (status, kind, problem) = {
        let (client, addr) = (client.clone(), addr.clone());
        runtime.block_on(async move {
            let body = r#"{"subject":"u1","purpose":"account.registration","categories":["contact.email"],"at":"now"}"#;
            let response = client
                .post(format!("http://{addr}/v1/check"))
                .bearer_auth("check-token-0123456789")
                .body(body)
                .send()
                .await
                .unwrap();
            let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
            (response.status(), kind, serde_json::from_str::<Value>(&response.text().await.unwrap()).unwrap())
        })
    };
    assert_eq!((status.as_u16(), kind.as_str()), (400, "application/problem+json"), "{problem}");
    assert_eq!(problem["field"], "at", "{problem}");
    assert!(problem["detail"].as_str().unwrap().starts_with("at: "), "{problem}");

    let text = std::fs::read_to_string(&policy).unwrap().replacen("version = \"1.0\"", "version = \"1.1\"", 1);
    std::fs::write(&policy, text).unwrap();
    // Until it is reloaded, the service describes the policy it enforces, not the file.
    assert_eq!(version("check-token-0123456789"), "1.0");
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    line.clear();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("reload: policy exmo 1.1 (was 1.0)"), "{line}");
    assert_eq!(version("check-token-0123456789"), "1.1");

    // A broken file: reported, and the old policy goes on.
    std::fs::write(&policy, "[policy\n").unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    line.clear();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("reload failed"), "{line}");
    assert_eq!(version("check-token-0123456789"), "1.1");

    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "serve did not stop");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("stopped; requests drained, audit flushed"), "{rest}");
}

/// `serve --trace`: a JSON tracing event per decision and per consent event on standard
/// error, the subject as a keyed pseudonym, never the raw id.
#[cfg(unix)]
#[test]
fn serve_traces_decisions_with_pseudonyms() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(binary())
            .current_dir(root())
            .args(["serve", "--trace", "--listen", "127.0.0.1:0", "--policy", "examples/policies/exmo.toml", "--store"])
            .arg(dir.path().join("store.redb"))
            .env("CONSENT_GUARD_TOKENS", "admin:admin-token-0123456789")
            .env("CONSENT_GUARD_TRACE_KEY", "a-trace-key-0123456789")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr =
        line.trim().strip_prefix("consent-guard: listening on http://").unwrap_or_else(|| panic!("{line}")).to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let grant = r#"{"type":"grant","subject":"alice","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;
        for (path, body) in [("/v1/events", grant), ("/v1/check", TRAINING)] {
            let response = client
                .post(format!("http://{addr}{path}"))
                .bearer_auth("admin-token-0123456789")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    });
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let events: Vec<Value> =
        rest.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    let target =
        |name: &str| events.iter().find(|e| e["target"] == name).unwrap_or_else(|| panic!("no {name} in {rest}"));
    let decision = &target("consent_guard::decision")["fields"];
    assert_eq!(
        (decision["code"].as_str(), decision["clause"].as_str(), decision["purpose"].as_str()),
        (Some("consent_given"), Some("exmo.training"), Some("ai_training.model_training"))
    );
    assert!(decision["latency_us"].is_u64(), "{decision}");
    let pseudonym = decision["subject"].as_str().unwrap();
    assert_eq!(pseudonym.len(), 64);
    assert_eq!(target("consent_guard::consent")["fields"]["subject"], pseudonym);
    assert!(!rest.contains("alice"), "{rest}");
}

/// Issue 28: a busy port names its address, and the message is printed once.
#[test]
fn a_busy_port_names_its_address_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(binary())
        .current_dir(root())
        .args(["serve", "--listen", &address, "--policy", "examples/policies/exmo.toml", "--store"])
        .arg(dir.path().join("store.redb"))
        .env("CONSENT_GUARD_TOKENS", "admin:admin-token-0123456789")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen on {address}")), "{stderr}");
    let reason = std::io::Error::from(std::io::ErrorKind::AddrInUse).to_string();
    let os = stderr.split(&format!("cannot listen on {address}: ")).nth(1).unwrap_or_default().trim().to_owned();
    assert!(!os.is_empty(), "{stderr}");
    assert_eq!(stderr.matches(os.as_str()).count(), 1, "printed more than once: {stderr} ({reason})");
    drop(taken);
}
