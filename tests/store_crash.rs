//! The redb store under crashes and damage: `kill -9` at random moments loses no
//! acknowledged event; a damaged file is refused, never read in part; a file open
//! elsewhere is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]
#![cfg(feature = "redb")]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use consent_guard::store::{ConsentStore, RedbConsentStore};
use consent_guard::ConsentEvent;

/// Set in the child process: the file to append to.
const CHILD_ENV: &str = "CONSENT_GUARD_CRASH_CHILD";

/// The event stored at `position` by the child, so that the parent knows what every
/// acknowledged position must hold.
fn expected(position: u64) -> ConsentEvent {
    let subject = format!("crash-{}", position % 97);
    let at: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600 + position as i64, 0).unwrap();
    let json = match position % 10 {
        3 | 7 => format!(
            r#"{{"type":"withdraw","subject":"{subject}","purposes":["ai_training"],"at":"{}"}}"#,
            at.to_rfc3339()
        ),
        9 => format!(r#"{{"type":"erase","subject":"{subject}","at":"{}"}}"#, at.to_rfc3339()),
        _ => format!(
            r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"{}","policy_version":"1.0"}}"#,
            at.to_rfc3339()
        ),
    };
    serde_json::from_str(&json).unwrap()
}

/// What the store holds after the child appended positions 1 to `last`: the store
/// forgets an erased subject (issue 27), so an erase deletes the subject's earlier
/// events and takes its position as a tombstone, which `events_since` skips.
fn model(last: u64) -> Vec<(u64, ConsentEvent)> {
    let mut held: Vec<(u64, ConsentEvent)> = Vec::new();
    for position in 1..=last {
        match expected(position) {
            ConsentEvent::Erase(erase) => held.retain(|(_, event)| event.subject() != erase.subject),
            event => held.push((position, event)),
        }
    }
    held
}

/// The bytes that stand for `subject` in a store file: its locator under the store's
/// master key (in its record, its index entry and its key's entry), the id being in
/// none of them.
fn locator_in(path: &Path, subject: &str) -> Vec<u8> {
    let mut key_path = path.as_os_str().to_owned();
    key_path.push(".key");
    let master = consent_guard::keys::MasterKey::load(Path::new(&key_path)).unwrap();
    master.locator(subject).as_bytes().to_vec()
}

/// Not a test of its own: the child process of `acknowledged_events_survive_kill_9`,
/// which appends until it is killed and prints `ACK <position>` after each append
/// returned. Without the environment variable it does nothing.
#[test]
fn child_appends_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let store = RedbConsentStore::open(&path).unwrap();
    let mut last = store.append(&[]).unwrap();
    let mut out = std::io::stdout().lock();
    for round in 0u64.. {
        let size = [1, 1, 2, 10, 50][(round % 5) as usize];
        let batch: Vec<ConsentEvent> = (1..=size).map(|k| expected(last + k)).collect();
        let acknowledged = store.append(&batch).unwrap();
        assert_eq!(acknowledged, last + size);
        writeln!(out, "ACK {acknowledged}").unwrap();
        out.flush().unwrap();
        last = acknowledged;
    }
}

/// A small pseudo-random generator (no dependency needed for delays).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn acknowledged_events_survive_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let exe = std::env::current_exe().unwrap();
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("seed {seed}");
    let mut total_acknowledged = 0;
    let mut appends = 0;
    for round in 0..8 {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_appends_until_killed", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acks = Arc::new(Mutex::new(Vec::<u64>::new()));
        let reader = {
            let acks = acks.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(position) = line.strip_prefix("ACK ") {
                        acks.lock().unwrap().push(position.parse().unwrap());
                    }
                }
            })
        };
        if round == 0 {
            // While the child holds the file, another open is refused.
            let started = Instant::now();
            while acks.lock().unwrap().is_empty() {
                // A hang guard, not a bound: a loaded machine may take long to start a child.
                assert!(started.elapsed() < Duration::from_secs(300), "the child never acknowledged an append");
                std::thread::sleep(Duration::from_millis(5));
            }
            let error = RedbConsentStore::open(&path).unwrap_err();
            assert!(error.to_string().contains("already open"), "{error}");
        }
        // Any moment: from before the child opened the file to well into its appends.
        let delay = Duration::from_millis(next_random(&mut seed) % 600);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acks = acks.lock().unwrap().clone();
        // Every position acknowledged so far, in this round or an earlier one.
        let acknowledged = acks.iter().copied().max().unwrap_or(0).max(total_acknowledged);

        let store = RedbConsentStore::open(&path).unwrap();
        let stored = store.events_since(0, usize::MAX).unwrap();
        let last = store.append(&[]).unwrap();
        assert!(last >= acknowledged, "round {round}: {last} positions stored, {acknowledged} acknowledged");
        let model = model(last);
        assert_eq!(stored.len(), model.len(), "round {round}: what the store holds after {last} positions");
        for ((position, event), (expected_position, expected_event)) in stored.iter().zip(&model) {
            assert_eq!(position, expected_position, "round {round}: positions as appended");
            assert_eq!(event, expected_event, "round {round}: event {position} is intact");
        }
        println!(
            "round {round}: killed after {delay:?}, {} appends acknowledged up to {acknowledged}, {} events stored",
            acks.len(),
            stored.len()
        );
        total_acknowledged = acknowledged;
        appends += acks.len();
    }
    assert!(appends > 0 && total_acknowledged > 0, "the children acknowledged nothing: the test proved nothing");
}

/// A store of `count` events (one with a marker subject first), closed.
fn filled(path: &Path, count: u64) -> Vec<(u64, ConsentEvent)> {
    let store = RedbConsentStore::open(path).unwrap();
    let marker: ConsentEvent = serde_json::from_str(
        r#"{"type":"grant","subject":"marker-7f3a9c21e5","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    store.append(&[marker]).unwrap();
    let events: Vec<ConsentEvent> = (2..=count).map(expected).collect();
    for chunk in events.chunks(37) {
        store.append(chunk).unwrap();
    }
    store.events_since(0, usize::MAX).unwrap()
}

fn flip(bytes: &mut [u8], at: usize, len: usize) {
    for byte in bytes.iter_mut().skip(at).take(len) {
        *byte ^= 0xA5;
    }
}

/// Opens a possibly damaged file: `Err(message)` when refused; panics are failures.
fn open_damaged(path: &Path) -> Result<Vec<(u64, ConsentEvent)>, String> {
    let opened = std::panic::catch_unwind(|| {
        let store = RedbConsentStore::open(path).map_err(|e| e.to_string())?;
        store.events_since(0, usize::MAX).map_err(|e| e.to_string())
    });
    opened.unwrap_or_else(|_| panic!("opening a damaged file panicked instead of returning an error"))
}

#[test]
fn damaged_event_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.redb");
    filled(&path, 2000);
    let mut bytes = std::fs::read(&path).unwrap();
    let marker = &locator_in(&path, "marker-7f3a9c21e5")[..];
    let hits: Vec<usize> =
        bytes.windows(marker.len()).enumerate().filter(|(_, w)| **w == *marker).map(|(i, _)| i).collect();
    assert!(!hits.is_empty(), "the marker event is in the file");
    for at in hits {
        flip(&mut bytes, at, 4);
    }
    std::fs::write(&path, &bytes).unwrap();
    let error = open_damaged(&path).unwrap_err();
    println!("{error}");
    assert!(error.contains("corrupted"), "{error}");
}

/// Set in the child process of `damage_to_the_latest_commit_is_refused_not_rolled_back`.
const LATEST_ENV: &str = "CONSENT_GUARD_LATEST_CHILD";
const LATEST_MARKER: &str = "latest-4b1d0e";

/// Not a test of its own: appends 501 events, the last one with a marker subject, and
/// exits without closing the store, as a crash would. Without the environment
/// variable it does nothing.
#[test]
fn child_appends_then_exits_without_closing() {
    let Ok(path) = std::env::var(LATEST_ENV) else { return };
    let store = RedbConsentStore::open(&path).unwrap();
    let events: Vec<ConsentEvent> = (1..=500).map(expected).collect();
    for chunk in events.chunks(50) {
        store.append(chunk).unwrap();
    }
    let last: ConsentEvent = serde_json::from_str(&format!(
        r#"{{"type":"withdraw","subject":"{LATEST_MARKER}","purposes":["ai_training"],"at":"2026-05-01T00:00:00Z"}}"#
    ))
    .unwrap();
    assert_eq!(store.append(&[last]).unwrap(), 501);
    std::process::exit(0);
}

/// Damage to what only the latest commit wrote, in a file whose writer crashed, must
/// not be taken for a torn write and rolled back to the commit before: that would
/// silently drop an acknowledged event. (With redb's one-phase commit it is.)
#[test]
fn damage_to_the_latest_commit_is_refused_not_rolled_back() {
    if std::env::var(LATEST_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latest.redb");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_appends_then_exits_without_closing", "--test-threads=1"])
        .env(LATEST_ENV, &path)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut bytes = std::fs::read(&path).unwrap();
    let marker = &locator_in(&path, LATEST_MARKER)[..];
    let hits: Vec<usize> =
        bytes.windows(marker.len()).enumerate().filter(|(_, w)| **w == *marker).map(|(i, _)| i).collect();
    assert!(!hits.is_empty());
    for at in hits {
        flip(&mut bytes, at, 4);
    }
    std::fs::write(&path, &bytes).unwrap();
    match open_damaged(&path) {
        Err(error) => assert!(error.contains("corrupted"), "{error}"),
        Ok(events) => panic!("the damaged file opened with {} of 501 events", events.len()),
    }
}

#[test]
fn flipped_bytes_never_give_a_partial_history() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.redb");
    let intact = filled(&original, 3000);
    let bytes = std::fs::read(&original).unwrap();
    let mut refused = 0;
    for step in 1..32 {
        let at = bytes.len() * step / 32;
        let mut damaged = bytes.clone();
        flip(&mut damaged, at, 64);
        let path = dir.path().join(format!("flipped-{step}.redb"));
        std::fs::write(&path, &damaged).unwrap();
        match open_damaged(&path) {
            Err(error) => {
                refused += 1;
                assert!(error.contains("corrupted") || error.contains("consent store"), "{error}");
            }
            Ok(events) => assert_eq!(events, intact, "damage at byte {at} went unnoticed and changed the history"),
        }
    }
    println!("{refused} of 31 damaged copies refused; the others were damaged in unused space");
    // Which of the 31 points hold live pages depends on the file's layout (in the
    // single-writer mode that lets other processes read the file, a 3,000-event file
    // has 82 of its 233 pages unused, and 15 points land in used ones); damage to an
    // event's own page is the test above.
    assert!(refused >= 8, "only {refused} of 31 damaged copies were noticed");
}

#[test]
fn a_second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.redb");
    let store = RedbConsentStore::open(&path).unwrap();
    let error = RedbConsentStore::open(&path).unwrap_err();
    assert!(error.to_string().contains("already open"), "{error}");
    drop(store);
    RedbConsentStore::open(&path).unwrap();
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.redb");
    std::fs::write(&path, "these are not consent events\n".repeat(500)).unwrap();
    let error = open_damaged(&path).unwrap_err();
    println!("{error}");
    assert!(error.contains("notes.redb") && error.contains("not a redb file"), "{error}");
}
