//! A consent store file of format version 1, as consent-guard wrote it before
//! subject keys (issue 27): events as plain interchange JSON, indexed by plain
//! subject id, an erase kept as an event with the subject's attributes scrubbed from
//! its earlier events. Written with redb directly, for the migration tests.
//!
//! Include it with `#[path = "support/store_v1.rs"] mod store_v1;`.
#![allow(dead_code, reason = "each test binary uses a different part of the helpers")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers fail loudly")]

use std::path::Path;

use consent_guard::ConsentEvent;
use redb::{ReadableTable, TableDefinition};

const EVENTS: TableDefinition<'static, u64, &str> = TableDefinition::new("consent_guard.events");
const BY_SUBJECT: TableDefinition<'static, (&str, u64), ()> = TableDefinition::new("consent_guard.by_subject");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("consent_guard.meta");

/// Writes a new version 1 store at `path` holding `events`, in one transaction.
pub fn write_v1(path: &Path, events: &[ConsentEvent]) {
    // As the version 1 writer opened it: one writer, readers beside it.
    let mut builder = redb::Database::builder();
    builder.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
    let db = builder.create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("format_version", 1).unwrap();
        let mut table = txn.open_table(EVENTS).unwrap();
        let mut index = txn.open_table(BY_SUBJECT).unwrap();
        for (i, event) in events.iter().enumerate() {
            let position = i as u64 + 1;
            if let ConsentEvent::Erase(erase) = event {
                let earlier: Vec<u64> = index
                    .range((erase.subject.as_str(), 0)..(erase.subject.as_str(), position))
                    .unwrap()
                    .map(|entry| entry.unwrap().0.value().1)
                    .collect();
                for at in earlier {
                    let stored: ConsentEvent = serde_json::from_str(table.get(at).unwrap().unwrap().value()).unwrap();
                    if let ConsentEvent::Subject(mut attributes) = stored {
                        attributes.birth_date = None;
                        attributes.age = None;
                        let json = serde_json::to_string(&ConsentEvent::Subject(attributes)).unwrap();
                        table.insert(at, json.as_str()).unwrap();
                    }
                }
            }
            let json = serde_json::to_string(event).unwrap();
            table.insert(position, json.as_str()).unwrap();
            index.insert((event.subject(), position), ()).unwrap();
        }
    }
    txn.commit().unwrap();
}
