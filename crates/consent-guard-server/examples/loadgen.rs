//! Load generator for `consent_guard_server` (issue 18): starts a server on
//! 127.0.0.1 (a random port) with a redb store and a durable audit log in a temporary
//! directory, then drives `POST /v1/check`, `POST /v1/check/batch` and the compact
//! batch form `POST /v1/check/compact` over keep-alive
//! HTTP/1.1 connections at 1, 16 and 64 connections, and prints throughput and
//! p50/p99 latency. Loopback only, bounded in time.
//!
//! ```sh
//! cargo run --release -p consent-guard-server --example loadgen -- [--seconds 5] [--durability synced|buffered]
//!     [--batch 1000] [--connections 1,16,64] [--rate REQUESTS_PER_S] [--endpoints check,batch,compact]
//!     [--server-threads 2] [--client-threads 2]
//! ```
//!
//! The client is a minimal HTTP/1.1 writer and reader on tokio (as `wrk` is), so that
//! it costs the shared cores as little as it can; client and server each get their own
//! runtime (two worker threads each unless told).
//!
//! With `--rate` the load is an open loop, as wrk2's: a pacer thread offers the requests
//! at evenly spaced instants, to the connections in turn, and a request's latency runs
//! from the instant it was offered, so that one waiting behind a slow answer counts its
//! wait.
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "a tool")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_guard::audit::{AuditLog, AuditLogOptions, Durability};
use consent_guard::store::RedbConsentStore;
use consent_guard::{ConsentEvent, Policy};
use consent_guard_server::{Role, Server, ServerOptions, Tokens};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "loadgen-token-0123456789";
const SUBJECTS: usize = 10_000;

struct Args {
    seconds: u64,
    durability: Durability,
    batch: usize,
    connections: Vec<usize>,
    /// Requests per second offered over all connections (open loop, as wrk2); `None`:
    /// each connection sends its next request as soon as the answer is in.
    rate: Option<f64>,
    /// Which endpoints, in order.
    endpoints: Vec<Endpoint>,
    /// Worker threads of the server's runtime and of the client's.
    server_threads: usize,
    client_threads: usize,
}

/// What a run drives.
#[derive(Clone, Copy)]
enum Endpoint {
    /// `POST /v1/check`, one request each.
    Check,
    /// `POST /v1/check/batch`, this many JSON lines each.
    Batch(usize),
    /// `POST /v1/check/compact`, this many subjects each.
    Compact(usize),
}

impl Endpoint {
    fn decisions(self) -> usize {
        match self {
            Endpoint::Check => 1,
            Endpoint::Batch(n) | Endpoint::Compact(n) => n,
        }
    }
}

const USAGE: &str = "\
loadgen: drives POST /v1/check, /v1/check/batch and /v1/check/compact against a server
it starts on 127.0.0.1

usage: loadgen [--seconds N] [--durability synced|buffered] [--batch N]
               [--connections 1,16,64] [--rate REQUESTS_PER_S] [--endpoints check,batch,compact]
               [--server-threads N] [--client-threads N]

  --seconds N          length of each run, at most 60 (default 5)
  --durability D       the audit log's: synced (default) or buffered
  --batch N            subjects per batch or compact request (default 1000)
  --connections LIST   keep-alive connections of each run (default 1,16,64)
  --rate R             requests per second offered over all connections (open loop);
                       without it each connection sends its next request on an answer
  --endpoints LIST     any of check, batch, compact (default check,batch)
  --server-threads N   worker threads of the server's runtime, 1 to 64 (default 2)
  --client-threads N   worker threads of the client's runtime, 1 to 64 (default 2)
  -h, --help           this text
";

/// The arguments, or the message to print (`Ok(None)`: `--help` was asked).
fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        seconds: 5,
        durability: Durability::Synced,
        batch: 1000,
        connections: vec![1, 16, 64],
        rate: None,
        endpoints: Vec::new(),
        server_threads: 2,
        client_threads: 2,
    };
    let mut endpoints = "check,batch".to_owned();
    fn number<T: std::str::FromStr>(arg: &str, value: &str) -> Result<T, String> {
        value.parse().map_err(|_| format!("{arg}: `{value}` is not a number"))
    }
    while let Some(arg) = it.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            // At most a minute per run: the tool is bounded in time.
            "--seconds" => args.seconds = number::<u64>(&arg, &value)?.min(60),
            "--durability" => {
                args.durability = match value.as_str() {
                    "synced" => Durability::Synced,
                    "buffered" => Durability::BUFFERED,
                    other => return Err(format!("--durability synced|buffered, not {other}")),
                }
            }
            "--batch" => args.batch = number::<usize>(&arg, &value)?.max(1),
            "--endpoints" => endpoints = value,
            "--server-threads" => args.server_threads = number::<usize>(&arg, &value)?.clamp(1, 64),
            "--client-threads" => args.client_threads = number::<usize>(&arg, &value)?.clamp(1, 64),
            "--rate" => {
                let rate: f64 = number(&arg, &value)?;
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(format!("--rate: `{value}` is not a positive rate"));
                }
                args.rate = Some(rate);
            }
            "--connections" => {
                args.connections =
                    value.split(',').map(|c| number::<usize>(&arg, c).map(|n| n.max(1))).collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    args.endpoints = endpoints
        .split(',')
        .map(|e| match e.trim() {
            "check" => Ok(Endpoint::Check),
            "batch" => Ok(Endpoint::Batch(args.batch)),
            "compact" => Ok(Endpoint::Compact(args.batch)),
            other => Err(format!("--endpoints: any of check, batch, compact, not `{other}`")),
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(args))
}

fn args() -> Args {
    match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            std::process::exit(0)
        }
        Err(message) => {
            eprint!("loadgen: {message}\n\n{USAGE}");
            std::process::exit(2)
        }
    }
}

/// One request on a keep-alive connection; returns the body.
async fn exchange(stream: &mut TcpStream, request: &[u8], buffer: &mut Vec<u8>) -> Vec<u8> {
    stream.write_all(request).await.unwrap();
    buffer.clear();
    let mut chunk = [0u8; 64 * 1024];
    // Headers.
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "server closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let mut body = buffer[head_end..].to_vec();
    if let Some(length) = head.lines().find_map(|l| l.strip_prefix("content-length: ")) {
        let length: usize = length.trim().parse().unwrap();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            body.extend_from_slice(&chunk[..n]);
        }
        return body;
    }
    // Chunked: decode until the last chunk.
    let mut decoded = Vec::new();
    let mut raw = body;
    let mut at = 0;
    loop {
        let line_end = loop {
            if let Some(end) = raw[at..].windows(2).position(|w| w == b"\r\n") {
                break at + end;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            raw.extend_from_slice(&chunk[..n]);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[at..line_end]).unwrap().trim(), 16).unwrap();
        let start = line_end + 2;
        while raw.len() < start + size + 2 {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            raw.extend_from_slice(&chunk[..n]);
        }
        if size == 0 {
            return decoded;
        }
        decoded.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
    }
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn request(subject: usize) -> String {
    format!(
        r#"{{"subject":"u{subject}","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}}"#
    )
}

struct Outcome {
    requests: u64,
    decisions: u64,
    latencies_us: Vec<u32>,
    elapsed: Duration,
}

/// The decisions in a compact answer: the entries of its `allowed` column.
fn compact_decisions(body: &[u8]) -> usize {
    let text = std::str::from_utf8(body).unwrap();
    let column = text.split("\"allowed\":[").nth(1).unwrap().split(']').next().unwrap();
    if column.is_empty() {
        0
    } else {
        column.split(',').count()
    }
}

async fn drive(addr: SocketAddr, connections: usize, seconds: u64, endpoint: Endpoint, rate: Option<f64>) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Open loop: a pacer thread offers each request at its own instant, spread evenly
    // over the connections in turn, and hands the connection that instant. Tokio's timer
    // has a granularity of a millisecond: connections sleeping on it were woken together,
    // so at 20,000/s twenty requests left in one burst each millisecond, and the last
    // waited for the client to write the nineteen before it.
    let mut offers = Vec::new();
    for c in 0..connections {
        let stop = Arc::clone(&stop);
        let (offer, mut offered) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        if rate.is_some() {
            offers.push(offer);
        }
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut buffer = Vec::with_capacity(1 << 20);
            let mut latencies = Vec::new();
            let (mut requests, mut decisions) = (0u64, 0u64);
            // Bodies are built before the clock starts and reused, so that the client
            // spends the shared cores on sending, not on formatting JSON.
            let expected = endpoint.decisions();
            let bodies: Vec<Vec<u8>> = (0..16)
                .map(|k| {
                    let first = (c * 7919 + k * expected) % SUBJECTS;
                    match endpoint {
                        Endpoint::Check => post("/v1/check", &request(first)),
                        Endpoint::Batch(n) => {
                            let body: String = (0..n).map(|i| request((first + i) % SUBJECTS) + "\n").collect();
                            post("/v1/check/batch", &body)
                        }
                        Endpoint::Compact(n) => {
                            let subjects: Vec<String> = (0..n).map(|i| format!("\"u{}\"", (first + i) % SUBJECTS)).collect();
                            let body = format!(
                                r#"{{"request":{{"purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}},"subjects":[{}]}}"#,
                                subjects.join(",")
                            );
                            post("/v1/check/compact", &body)
                        }
                    }
                })
                .collect();
            let mut next = 0usize;
            loop {
                // With a rate, a request counts from the instant it was offered: one
                // that waits because the previous answer was slow counts that wait.
                let sent = if rate.is_some() {
                    match offered.recv().await {
                        Some(at) => at,
                        None => break,
                    }
                } else if stop.load(Ordering::Relaxed) {
                    break;
                } else {
                    Instant::now()
                };
                let bytes = &bodies[next % bodies.len()];
                next += 1;
                let body = exchange(&mut stream, bytes, &mut buffer).await;
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                let answered = match endpoint {
                    Endpoint::Check => 1,
                    Endpoint::Batch(_) => body.iter().filter(|b| **b == b'\n').count(),
                    Endpoint::Compact(_) => compact_decisions(&body),
                };
                assert_eq!(answered, expected);
                requests += 1;
                decisions += expected as u64;
            }
            (requests, decisions, latencies)
        }));
    }
    match rate {
        Some(rate) => {
            let pacer = std::thread::spawn(move || pace(&offers, rate, Duration::from_secs(seconds)));
            // The pacer ends by dropping the offers: each connection then ends once its
            // last offered request is answered.
            tokio::task::spawn_blocking(move || pacer.join().unwrap()).await.unwrap();
        }
        None => {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.store(true, Ordering::Relaxed);
        }
    }
    let mut outcome = Outcome { requests: 0, decisions: 0, latencies_us: Vec::new(), elapsed: Duration::ZERO };
    for task in tasks {
        let (requests, decisions, latencies) = task.await.unwrap();
        outcome.requests += requests;
        outcome.decisions += decisions;
        outcome.latencies_us.extend(latencies);
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies_us.sort_unstable();
    outcome
}

/// Offers `rate` requests a second for `length`, to the connections in turn, each at
/// its instant: the thread sleeps to it (a high-resolution timer, some tens of
/// microseconds late) and offers every request whose instant has come, stamped with
/// the instant it was offered.
fn pace(offers: &[tokio::sync::mpsc::UnboundedSender<Instant>], rate: f64, length: Duration) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut due = start;
    let mut next = 0usize;
    while due - start < length {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let offered = Instant::now();
        while due <= offered && due - start < length {
            // A connection that ended (it cannot: it waits for its offers) drops its offer.
            let _ = offers[next % offers.len()].send(offered);
            next += 1;
            due += interval;
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index.min(sorted.len() - 1)]) / 1000.0
}

fn main() {
    let args = args();
    let dir = tempfile::tempdir().unwrap();
    let policy_path = concat!(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."), "/examples/policies/exmo.toml");
    // Half the subjects gave separate consent to training: allows and denials mixed.
    {
        let store = RedbConsentStore::open(dir.path().join("store.redb")).unwrap();
        let guard =
            consent_guard::Guard::builder(Policy::from_toml_file(policy_path).unwrap()).store(store).build().unwrap();
        let events: Vec<ConsentEvent> = (0..SUBJECTS)
            .step_by(2)
            .map(|i| {
                serde_json::from_str(&format!(
                    r#"{{"type":"grant","subject":"u{i}","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}}"#
                ))
                .unwrap()
            })
            .collect();
        guard.record_all(&events).unwrap();
    }
    let server_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.server_threads).enable_all().build().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let store = RedbConsentStore::open(dir.path().join("store.redb")).unwrap();
    let audit = AuditLog::open_with(dir.path().join("audit"), AuditLogOptions::new(args.durability)).unwrap();
    let server = Server::from_policy_file(policy_path, store)
        .tokens(Tokens::new().with(Role::Check, TOKEN))
        .audit(audit)
        .options(
            ServerOptions::default()
                .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
                .body_limit(64 << 20)
                .reload_on_sighup(false),
        );
    let bound = server_runtime.block_on(server.bind()).unwrap();
    let addr = bound.local_addr().unwrap();
    let serving = server_runtime.spawn(bound.serve(async move {
        let _ = stop_rx.await;
    }));

    let client =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.client_threads).enable_all().build().unwrap();
    println!(
        "consent-guard server load: loopback {addr}, EXMO policy, {SUBJECTS} subjects, audit {:?}, {} s per row, single checks {}",
        args.durability,
        args.seconds,
        args.rate.map_or("closed loop".to_owned(), |r| format!("offered at {r} requests/s"))
    );
    println!("| endpoint | connections | requests/s | decisions/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for &endpoint in &args.endpoints {
        for &connections in &args.connections {
            // A short warm-up on the same connections count.
            let rate = if matches!(endpoint, Endpoint::Check) { args.rate } else { None };
            client.block_on(drive(addr, connections, 1, endpoint, rate));
            let outcome = client.block_on(drive(addr, connections, args.seconds, endpoint, rate));
            let secs = outcome.elapsed.as_secs_f64();
            let endpoint = match endpoint {
                Endpoint::Check => "/v1/check".to_owned(),
                Endpoint::Batch(n) => format!("/v1/check/batch ({n})"),
                Endpoint::Compact(n) => format!("/v1/check/compact ({n})"),
            };
            println!(
                "| {endpoint} | {connections} | {:.0} | {:.0} | {:.3} | {:.3} |",
                outcome.requests as f64 / secs,
                outcome.decisions as f64 / secs,
                percentile(&outcome.latencies_us, 0.5),
                percentile(&outcome.latencies_us, 0.99),
            );
        }
    }
    let _ = stop_tx.send(());
    server_runtime.block_on(serving).unwrap().unwrap();
}
