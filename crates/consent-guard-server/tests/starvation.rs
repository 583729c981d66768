//! Strangers cannot starve the server (issue 30): idle connections, connections that
//! send one byte or half a request, and HTTP/2 prefaces are closed by the server after
//! the header timeout (or at once), tokenless bodies that stall are answered 401 from
//! their headers and closed, while a normal client goes on being served; and
//! connections over the cap are closed as soon as they are accepted.
//!
//! Bounded and on 127.0.0.1: a fixed number of connections, deadlines on every wait.
//! What is asserted is the designed property (the server closes them; the client gets
//! every answer), not how fast an idle machine is; the latencies and the memory are
//! printed for the record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use consent_guard::store::MemoryConsentStore;
use consent_guard_server::{Role, Server, ServerOptions, Tokens};

const CHECK: &str = "check-token-0123456789";
const REGISTRATION: &str = r#"{"subject":"u1","purpose":"account.registration","categories":["contact.email"]}"#;

/// How many idle connections and tokenless stalled bodies the load test opens: 1,000
/// and 300, or what the file-descriptor limit leaves room for (each connection costs
/// two descriptors in this process, the client's and the server's).
fn stranger_counts() -> (usize, usize) {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3).and_then(|soft| soft.parse::<usize>().ok()))
        })
        .unwrap_or(1024);
    let room = limit.saturating_sub(200) / 2;
    let idle = 1000.min(room);
    (idle, 300.min(room - idle))
}

fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A server on its own runtime thread, stopped when dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start(options: ServerOptions) -> Running {
    let policy = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/exmo.toml")).to_owned();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let bound = Server::from_policy_file(policy, MemoryConsentStore::new())
                .tokens(Tokens::new().with(Role::Check, CHECK))
                .options(options.shutdown_timeout(Duration::from_secs(1)))
                .bind()
                .await
                .unwrap();
            addr_tx.send(bound.local_addr().unwrap()).unwrap();
            bound
                .serve(async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    Running { addr, stop: Some(stop_tx), thread: Some(thread) }
}

fn options() -> ServerOptions {
    ServerOptions::default().listen(SocketAddr::from(([127, 0, 0, 1], 0))).reload_on_sighup(false)
}

/// `count` checks on one keep-alive connection; the latency of each. Every answer
/// must be 200.
async fn checks(client: &reqwest::Client, addr: SocketAddr, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let response = client
            .post(format!("http://{addr}/v1/check"))
            .bearer_auth(CHECK)
            .header("content-type", "application/json")
            .body(REGISTRATION)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// Whether the server closed `stream`: a read returns end of file or an error other
/// than a timeout (a reset).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or 400 may come first; the close follows.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Waits until every stream is closed by the server or `deadline` passes; how many
/// were closed.
fn wait_closed(streams: &mut [TcpStream], deadline: Instant) -> usize {
    let mut open: Vec<usize> = (0..streams.len()).collect();
    while !open.is_empty() && Instant::now() < deadline {
        open.retain(|&i| {
            streams[i].set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            !closed_by_server(&mut streams[i])
        });
        if !open.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    streams.len() - open.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_do_not_starve_a_client() {
    let header_timeout = Duration::from_secs(1);
    let (count, stalled_count) = stranger_counts();
    let server = start(
        options()
            .header_timeout(header_timeout)
            .idle_timeout(Duration::from_secs(2))
            .max_connections(count + stalled_count + 64),
    );
    let addr = server.addr;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let quiet = checks(&client, addr, 200).await;
    let rss_before = resident_kib();

    // Strangers: most send nothing, some one byte, some half a request's headers, some
    // the HTTP/2 preface.
    let opened = Instant::now();
    let mut strangers = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = TcpStream::connect(addr).unwrap();
        match i % 10 {
            0 => stream.write_all(b"P").unwrap(),
            1 => stream.write_all(b"POST /v1/check HTTP/1.1\r\nHost: x\r\n").unwrap(),
            2 => stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap(),
            _ => {}
        }
        strangers.push(stream);
    }
    // And bodies without a token that stall after their first bytes: the token is
    // checked on the headers, so each is answered 401 without the server waiting for
    // the body.
    let mut stalled = Vec::with_capacity(stalled_count);
    for _ in 0..stalled_count {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(
                b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"subject\":",
            )
            .unwrap();
        stalled.push(stream);
    }
    let loaded = checks(&client, addr, 200).await;
    let rss_loaded = resident_kib();
    println!(
        "{count} idle connections and {stalled_count} tokenless stalled bodies opened in {:?}; normal client p99 {:?} before, {:?} while they were open \
         (max {:?}); resident memory {rss_before:?} KiB before, {rss_loaded:?} KiB with them open (client \
         and server in this process)",
        opened.elapsed(),
        p99(&quiet),
        p99(&loaded),
        loaded.last().unwrap(),
    );
    // Generous: the request timeout. An idle machine answers in well under a
    // millisecond; what is asserted is that the client is served, not starved.
    assert!(p99(&loaded) < Duration::from_secs(10), "p99 {:?}", p99(&loaded));

    // Every stranger is closed by the server: the deadline is far above the header
    // timeout so that a loaded machine does not fail the test, and far below "never".
    let closed = wait_closed(&mut strangers, opened + Duration::from_secs(60));
    println!("{closed} of {count} closed by the server after {:?}", opened.elapsed());
    assert_eq!(closed, count, "idle connections left open past the header timeout");
    // Every stalled body was answered 401 from its headers alone, and closed.
    for stream in &mut stalled {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut status = [0u8; 12];
        stream.read_exact(&mut status).unwrap();
        assert_eq!(&status, b"HTTP/1.1 401", "a tokenless body was not refused on its headers");
    }
    let closed = wait_closed(&mut stalled, opened + Duration::from_secs(60));
    println!("{closed} of {stalled_count} stalled bodies answered 401 and closed after {:?}", opened.elapsed());
    assert_eq!(closed, stalled_count, "tokenless stalled bodies left open");
    // And the client is still served afterwards.
    checks(&client, addr, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_once() {
    // Timeouts far longer than the test: only the cap can close the connections.
    let server = start(
        options().header_timeout(Duration::from_secs(300)).idle_timeout(Duration::from_secs(300)).max_connections(8),
    );
    let addr = server.addr;
    let mut held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Give the server time to accept them (and take their permits).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut over = TcpStream::connect(addr).unwrap();
    let mut over = [over.try_clone().unwrap(), {
        over.write_all(b"G").unwrap();
        over
    }];
    assert_eq!(wait_closed(&mut over[1..], Instant::now() + Duration::from_secs(60)), 1, "the ninth stayed open");
    // None of the eight was closed meanwhile.
    assert_eq!(wait_closed(&mut held, Instant::now()), 0);
    // Closing them frees their places: a client is served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    checks(&client, addr, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_refused_unless_asked_for() {
    let server = start(options().header_timeout(Duration::from_secs(300)).idle_timeout(Duration::from_secs(300)));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let mut streams = [stream];
    assert_eq!(wait_closed(&mut streams, Instant::now() + Duration::from_secs(60)), 1);
}

/// An HTTP/1.1 connection idle between requests is closed after the header timeout,
/// well before the idle timeout: hyper's header timer runs while it waits for the
/// next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_idle_between_requests_is_closed() {
    let server = start(options().header_timeout(Duration::from_secs(1)).idle_timeout(Duration::from_secs(300)));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let mut streams = [stream];
    assert_eq!(wait_closed(&mut streams, Instant::now() + Duration::from_secs(60)), 1);
}
