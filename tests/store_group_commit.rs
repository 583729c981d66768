//! Group commit on the redb store: concurrent appends share transactions and fsyncs,
//! and each caller gets back the positions of its own events.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]
#![cfg(feature = "redb")]

use std::sync::Arc;

use consent_guard::store::{ConsentStore, RedbConsentStore};
use consent_guard::ConsentEvent;

fn grant(subject: &str) -> ConsentEvent {
    serde_json::from_str(&format!(
        r#"{{"type":"grant","subject":"{subject}","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z","policy_version":"1.0"}}"#
    ))
    .unwrap()
}

#[test]
fn concurrent_appends_coalesce_and_each_gets_its_own_positions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbConsentStore::open(dir.path().join("group.redb")).unwrap());
    let before = RedbConsentStore::commits();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..20 {
                    let subject = format!("t{t}-{i}");
                    // Batches of one and of two: each stays whole and in order.
                    let batch = if i % 2 == 0 { vec![grant(&subject)] } else { vec![grant(&subject), grant(&subject)] };
                    let last = store.append(&batch).unwrap();
                    mine.push((subject, last, batch.len() as u64));
                }
                mine
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let commits = RedbConsentStore::commits() - before;
    let appends = results.len() as u64;
    assert_eq!(appends, 320);
    // Other tests in this binary may commit too; the bound still shows coalescing.
    assert!(commits < appends, "{commits} commits for {appends} appends");
    let all = store.events_since(0, usize::MAX).unwrap();
    assert_eq!(all.len(), 480);
    for (subject, last, count) in results {
        for position in last + 1 - count..=last {
            let (at, event) = &all[(position - 1) as usize];
            assert_eq!(*at, position);
            assert_eq!(event.subject(), subject, "position {position}");
        }
    }
}
