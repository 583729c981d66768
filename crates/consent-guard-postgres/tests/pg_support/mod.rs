//! A fresh PostgreSQL database per test, dropped afterwards, for the tests that need a
//! server (`tests/store_postgres.rs`, `tests/store_conformance.rs`,
//! `tests/store_async.rs`, and through `#[path]` the filter crate's PostgreSQL tests).
//!
//! The server comes from `CONSENT_GUARD_POSTGRES_URL` (`.ci/postgres` starts one and
//! sets it), with a role that may create databases. Without the variable a test says
//! it was skipped and returns, unless `CI` is set: then it fails, because a test that
//! passes without running proves nothing.
#![allow(dead_code, reason = "each test file uses part of it")]

use postgres::{Client, NoTls};

pub const URL_VAR: &str = "CONSENT_GUARD_POSTGRES_URL";
pub const CA_VAR: &str = "CONSENT_GUARD_POSTGRES_CA";

/// The server's URL; `None` (after saying so) when it is not set and `CI` is not.
///
/// # Panics
///
/// When `CI` is set and the URL is not.
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{URL_VAR} is not set, and CI is: the PostgreSQL tests must run (source .ci/postgres)")
        }
        Err(_) => {
            eprintln!("skipped: {URL_VAR} is not set (source .ci/postgres to start a private server)");
            None
        }
    }
}

/// A database of its own for one test.
pub struct FreshDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl FreshDatabase {
    /// `None` when there is no server and `CI` is not set (see [`server_url`]).
    pub fn create(label: &str) -> Option<FreshDatabase> {
        let admin_url = server_url()?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("cg_{label}_{}_{nanos}", std::process::id());
        let (admin, create) = (admin_url.clone(), format!("CREATE DATABASE {name}"));
        off_runtime(move || Client::connect(&admin, NoTls).unwrap().batch_execute(&create).unwrap());
        let url = with_database(&admin_url, &name);
        Some(FreshDatabase { admin_url, name, url })
    }

    /// A plain client to the test's database.
    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap()
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (admin, drop) = (self.admin_url.clone(), format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        off_runtime(move || {
            if let Ok(mut admin) = Client::connect(&admin, NoTls) {
                let _ = admin.batch_execute(&drop);
            }
        });
    }
}

/// Runs `f` on a thread of its own: the blocking `postgres` client starts a runtime,
/// which tokio refuses inside the async tests' runtime.
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

/// Splits `scheme://authority/path?query`.
fn parts(url: &str) -> (&str, &str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    (scheme, authority, path)
}

/// `postgres://user:password@host:port/db?query` with another database.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, authority, path) = parts(url);
    let query = path.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// The URL's `host:port`.
pub fn host_port(url: &str) -> String {
    let (_, authority, _) = parts(url);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// The URL with another `host:port`.
pub fn with_host_port(url: &str, host_port: &str) -> String {
    let (scheme, authority, path) = parts(url);
    let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    format!("{scheme}://{user}{host_port}/{path}")
}

/// The URL with `key=value` added to its query.
pub fn with_param(url: &str, param: &str) -> String {
    if url.contains('?') {
        format!("{url}&{param}")
    } else {
        format!("{url}?{param}")
    }
}
