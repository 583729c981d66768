//! The durable audit log and the redb store under `kill -9` at random moments, while
//! threads check (synced, one at a time and in batches) and record consent
//! concurrently. After each kill:
//! - every decision the child released has its record in the log, under the subject's
//!   pseudonym (the child's subject keys are derived from the id, so that the parent
//!   can recompute them after the kill), and no record holds a subject id;
//! - every consent event it acknowledged is in the store;
//! - the log verifies: a torn tail (a batch never committed) is reported as such, never
//!   as tampering, and is cut off by the next open.
//!
//! `cargo test --test audit_crash` runs 20 rounds; the long run is
//! `cargo test --release --all-features --test audit_crash -- --ignored --nocapture`
//! (200 rounds).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]
#![cfg(all(feature = "redb", feature = "json"))]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consent_guard::audit::{segment, AuditLog, AuditLogOptions, DirVerdict, Durability};
use consent_guard::error::StoreError;
use consent_guard::keys::{Pseudonym, SubjectKey, SubjectKeys};
use consent_guard::store::{ConsentStore, RedbConsentStore};
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Guard, Policy, Purpose};

/// Set in the child: the directory to work in.
const CHILD_ENV: &str = "CONSENT_GUARD_AUDIT_CRASH_CHILD";
/// Set in the child: the round, to name subjects uniquely.
const ROUND_ENV: &str = "CONSENT_GUARD_AUDIT_CRASH_ROUND";

fn policy() -> Policy {
    Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap()
}

fn grant(subject: &str) -> ConsentEvent {
    serde_json::from_str(&format!(
        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z","policy_version":"1.0"}}"#
    ))
    .unwrap()
}

/// Keys derived from the id (SHA-256 of a label and the id): a test double that the
/// parent can recompute once the child, and any key it held in memory, is gone.
#[derive(Debug)]
struct DerivedKeys;

fn derived_key(subject: &str) -> SubjectKey {
    use sha2::{Digest, Sha256};
    SubjectKey::from_bytes(Sha256::digest(format!("audit_crash key\0{subject}")).into())
}

impl SubjectKeys for DerivedKeys {
    fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        Ok(subjects.iter().map(|s| derived_key(s)).collect())
    }
    fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        Ok(Some(derived_key(subject)))
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Not a test of its own: the child of `released_decisions_and_acknowledged_events_survive_kill_9`.
/// Prints `REL subject` after each released allow, `ACK subject` after each recorded
/// event. Without the environment variable it does nothing.
#[test]
fn child_checks_and_records_until_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let dir = Path::new(&dir);
    let store = RedbConsentStore::open(dir.join("store.redb")).unwrap();
    let options = AuditLogOptions::new(Durability::Synced).subject_keys(Arc::new(DerivedKeys));
    let log = Arc::new(AuditLog::open_with(dir.join("audit"), options).unwrap());
    let guard = Arc::new(Guard::builder(policy()).audit(log).store(store).build().unwrap());
    let mut threads = Vec::new();
    // Single synced checks, from three threads.
    for t in 0..3 {
        let guard = Arc::clone(&guard);
        threads.push(std::thread::spawn(move || {
            for i in 0u64.. {
                let subject = format!("r{round}-c{t}-{i}");
                let request = AccessRequest::new(&subject, Purpose::SECURITY, &[DataCategory::DEVICE_INFO][..]);
                assert!(guard.check(&request).allowed());
                say(&format!("REL {subject}"));
            }
        }));
    }
    // Batches of prepared checks sharing one commit.
    {
        let guard = Arc::clone(&guard);
        threads.push(std::thread::spawn(move || {
            let template = AccessRequest::new("", Purpose::SECURITY, &[DataCategory::DEVICE_INFO][..]);
            let prepared = guard.prepare(&template);
            for b in 0u64.. {
                let subjects: Vec<String> = (0..50).map(|k| format!("r{round}-b{b}-{k}")).collect();
                let decisions = prepared.check_batch(&subjects);
                for (subject, decision) in subjects.iter().zip(&decisions) {
                    assert!(decision.allowed());
                    say(&format!("REL {subject}"));
                }
            }
        }));
    }
    // Consent recorded concurrently, from two threads.
    for t in 0..2 {
        let guard = Arc::clone(&guard);
        threads.push(std::thread::spawn(move || {
            for i in 0u64.. {
                let subject = format!("r{round}-e{t}-{i}");
                guard.record(&grant(&subject)).unwrap();
                say(&format!("ACK {subject}"));
            }
        }));
    }
    for thread in threads {
        thread.join().unwrap();
    }
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("segment-"))
        .collect();
    files.sort();
    files
}

fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `count` rounds, `per_directory` of them on one log and store before starting afresh:
/// each round re-reads both whole (the parent exports every record), so a long run on
/// one pair would slow down.
fn rounds(count: u64, per_directory: u64) {
    let mut dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("seed {seed}");
    let mut released_total = 0usize;
    let mut acknowledged_total = 0usize;
    let mut torn = 0;
    let started = Instant::now();
    for round in 0..count {
        if round > 0 && round % per_directory == 0 {
            dir = tempfile::tempdir().unwrap();
        }
        let mut child = Command::new(&exe)
            .args(["--exact", "child_checks_and_records_until_killed", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new((Vec::<String>::new(), Vec::<String>::new())));
        let reader = {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut seen = seen.lock().unwrap();
                    if let Some(subject) = line.strip_prefix("REL ") {
                        seen.0.push(subject.to_owned());
                    } else if let Some(subject) = line.strip_prefix("ACK ") {
                        seen.1.push(subject.to_owned());
                    }
                }
            })
        };
        // Any moment: while the child opens the files (one round in four), or well
        // into its work (it is slow to start in a debug build: wait for its first line).
        let early = next_random(&mut seed).is_multiple_of(4);
        if !early {
            let waiting = Instant::now();
            while seen.lock().unwrap().0.is_empty() && waiting.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let delay = Duration::from_millis(next_random(&mut seed) % if early { 150 } else { 250 });
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let (released, acknowledged) = seen.lock().unwrap().clone();

        // The log as the crash left it: intact, or torn after its last commit. A kill
        // leaves whole writes (the page cache keeps them); a power failure may keep part
        // of the last batch: every other round adds such a tail to the last segment.
        let audit = dir.path().join("audit");
        if round % 2 == 1 {
            if let Some(last) = segment_files(&audit).last() {
                let tail = format!(
                    "[1,\"r{round}-torn\",\"legal_basis\",1767225600000,\"legitimate_interests\"]\n{{\"commit\":1"
                );
                let cut = (next_random(&mut seed) as usize) % tail.len() + 1;
                let mut file = std::fs::OpenOptions::new().append(true).open(last).unwrap();
                file.write_all(&tail.as_bytes()[..cut]).unwrap();
            }
        }
        let mut exported = Vec::new();
        let verdict = if audit.exists() {
            segment::export(&audit, &mut exported).unwrap()
        } else {
            DirVerdict::Intact { head: segment::Head::genesis(), segments: 0 }
        };
        if let DirVerdict::Tampered { segment, line, reason } = &verdict {
            panic!("round {round}: a crash was taken for tampering: segment {segment} line {line}: {reason}");
        }
        if matches!(verdict, DirVerdict::TornTail { .. }) {
            torn += 1;
        }
        let logged: HashSet<String> = exported
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice::<serde_json::Value>(l).unwrap()["decision"]["subject"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        for subject in &released {
            let pseudonym = Pseudonym::of(&derived_key(subject), subject).to_string();
            assert!(logged.contains(&pseudonym), "round {round}: released decision for {subject} has no record");
            assert!(!logged.contains(subject), "round {round}: a record holds the id {subject}");
        }
        // The next open cuts the torn tail off; the log is intact then.
        if audit.exists() {
            drop(AuditLog::open(&audit, Durability::Synced).unwrap());
            assert!(matches!(segment::verify_dir(&audit).unwrap(), DirVerdict::Intact { .. }), "round {round}");
        }

        let store_path = dir.path().join("store.redb");
        if store_path.exists() {
            let store = RedbConsentStore::open(&store_path).unwrap();
            let stored: HashSet<String> =
                store.events_since(0, usize::MAX).unwrap().into_iter().map(|(_, e)| e.subject().to_owned()).collect();
            for subject in &acknowledged {
                assert!(stored.contains(subject), "round {round}: acknowledged event for {subject} is missing");
            }
        } else {
            assert!(acknowledged.is_empty());
        }
        println!(
            "round {round}: killed after {delay:?}; {} released, {} acknowledged, verdict {}",
            released.len(),
            acknowledged.len(),
            if matches!(verdict, DirVerdict::TornTail { .. }) { "torn tail" } else { "intact" }
        );
        released_total += released.len();
        acknowledged_total += acknowledged.len();
    }
    println!(
        "{count} rounds in {:?}: {released_total} released decisions and {acknowledged_total} acknowledged events checked; {torn} torn tails",
        started.elapsed()
    );
    assert!(released_total > 0 && acknowledged_total > 0, "the children did nothing: the test proved nothing");
}

#[test]
fn released_decisions_and_acknowledged_events_survive_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    rounds(20, 5);
}

#[test]
#[ignore = "long run: 200 rounds"]
fn released_decisions_and_acknowledged_events_survive_kill_9_long() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    rounds(200, 25);
}
