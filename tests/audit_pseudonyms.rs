//! The audit log that forgets (issue 27 item 3, audit side): records of format 3 hold
//! the subject's pseudonym under its key, never its id; the subject's export finds them
//! through the key; destroying the key leaves them verifiable and unlinkable; subject
//! keys that cannot be had make the guard deny; a format-2 log is read, never
//! extended, and migrates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]
#![cfg(feature = "json")]

use std::path::Path;
use std::sync::Arc;

use consent_guard::audit::{migrate, segment, AuditLog, AuditLogOptions, DirVerdict, Durability, Format, Head};
use consent_guard::error::StoreError;
use consent_guard::interchange::export::decisions_about;
use consent_guard::keys::{MasterKey, MemorySubjectKeys, Pseudonym, SubjectKey, SubjectKeys, Tombstones};
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, FixedClock, Guard, Policy, Purpose, ReasonCode};

/// An id that JSON escapes (quotes) and that is not ASCII.
const WEIRD: &str = "zoë \"quoted\" 用户";

fn policy() -> Policy {
    Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap()
}

fn training(subject: &str) -> AccessRequest<'static> {
    AccessRequest::new(subject.to_owned(), Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(consent_guard::Deidentification::Anonymized)
        .into_owned()
}

fn security(subject: &str) -> AccessRequest<'static> {
    AccessRequest::new(subject.to_owned(), Purpose::SECURITY, &[DataCategory::DEVICE_INFO][..]).into_owned()
}

fn guard(log: Arc<AuditLog>) -> Guard {
    let clock = FixedClock::new("2026-03-01T00:00:00Z".parse().unwrap());
    let guard = Guard::builder(policy()).clock(clock).audit(log).build().unwrap();
    for subject in ["alice", WEIRD] {
        let grant: ConsentEvent = serde_json::from_value(serde_json::json!({
            "type": "grant", "subject": subject, "purposes": ["ai_training"], "level": "separate",
            "at": "2026-01-02T00:00:00Z"
        }))
        .unwrap();
        guard.record(&grant).unwrap();
    }
    guard
}

/// Every kind of record for `subject`: compact plain checks, a what-if and a request
/// naming its collection time (full records), prepared checks one by one and in a
/// batch. Returns how many records name the subject.
fn decide_everything(guard: &Guard, subject: &str) -> usize {
    let mut records = 0;
    for _ in 0..3 {
        let _ = guard.check(&training(subject));
        let _ = guard.check(&security(subject));
        records += 2;
    }
    let asked = training(subject);
    let what_if = guard.what_if(&asked, "2026-01-10T00:00:00Z".parse().unwrap());
    assert!(what_if.is_what_if());
    let _ = guard.check(&training(subject).collected("2026-02-01T00:00:00Z".parse().unwrap(), None));
    records += 2;
    let template = training("");
    let prepared = guard.prepare(&template);
    let _ = prepared.check(subject);
    let _ = prepared.check_batch(&[subject, "someone-else", subject]);
    records + 3
}

/// The bytes of every file of the log directory.
fn every_byte(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    bytes
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The forms an id could take in a JSON line: raw, and escaped as a string's content.
fn forms(id: &str) -> Vec<String> {
    let escaped = serde_json::to_string(id).unwrap();
    vec![id.to_owned(), escaped.trim_matches('"').to_owned()]
}

fn open(dir: &Path, durability: Durability, keys: Arc<dyn SubjectKeys>) -> Arc<AuditLog> {
    Arc::new(AuditLog::open_with(dir, AuditLogOptions::new(durability).subject_keys(keys)).unwrap())
}

#[test]
fn a_record_never_holds_the_subject_id_yet_exports_back_by_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(MemorySubjectKeys::new());
    let log = open(dir.path(), Durability::BUFFERED, keys.clone());
    let guard = guard(log.clone());
    let expected = [("alice", decide_everything(&guard, "alice")), (WEIRD, decide_everything(&guard, WEIRD))];
    drop(guard);
    let head = log.flush().unwrap();
    assert_eq!(head.seq, 24, "12 decisions each, one of someone-else among them");
    assert_eq!(segment::format_of(dir.path()).unwrap(), Some(Format::Pseudonyms));

    let bytes = every_byte(dir.path());
    for (subject, _) in &expected {
        for form in forms(subject) {
            assert!(!holds(&bytes, &form), "the log holds {form:?}");
        }
        let pseudonym = Pseudonym::of(&keys.key_of(subject).unwrap().unwrap(), subject).to_string();
        assert!(holds(&bytes, &pseudonym), "the log does not hold {subject:?}'s pseudonym");
    }
    assert!(!holds(&bytes, "someone-else"));

    for (subject, count) in expected {
        let key = keys.key_of(subject).unwrap();
        let (found, coverage) = decisions_about(dir.path(), subject, key.as_ref()).unwrap();
        assert_eq!(found.len(), count, "{subject}");
        assert_eq!(coverage.subject_key.as_deref(), Some("found"));
        assert!(coverage.complete);
        let pseudonym = Pseudonym::of(key.as_ref().unwrap(), subject).to_string();
        for record in &found {
            // Given to the subject: the id is back wherever the log held the pseudonym.
            assert_eq!(record.request.subject, subject);
            assert_eq!(record.decision.subject(), subject);
            assert!(!record.decision.message().contains(&pseudonym), "{}", record.decision.message());
        }
        assert!(found.iter().any(|r| r.decision.is_what_if()), "the what-if is exported");
        assert!(found.iter().any(|r| r.decision.message().contains(subject)), "a message names the subject");
    }
    // Nobody else's key finds them; a subject without a key finds none, and says why.
    let (none, coverage) = decisions_about(dir.path(), "alice", None).unwrap();
    assert!(none.is_empty());
    assert_eq!(coverage.subject_key.as_deref(), Some("none"));
    let other = SubjectKey::from_bytes([9; 32]);
    assert!(decisions_about(dir.path(), "alice", Some(&other)).unwrap().0.is_empty());
}

#[test]
fn destroying_the_key_makes_the_records_unexportable_while_the_anchored_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(MemorySubjectKeys::new());
    let log = open(dir.path(), Durability::Synced, keys.clone());
    let guard = guard(log.clone());
    let before = decide_everything(&guard, "alice");
    let anchor: Head = log.flush().unwrap();
    assert_eq!(decisions_about(dir.path(), "alice", keys.key_of("alice").unwrap().as_ref()).unwrap().0.len(), before);
    let old = Pseudonym::of(&keys.key_of("alice").unwrap().unwrap(), "alice").to_string();

    // The erasure: the key is destroyed, the log is not touched.
    let segment_bytes = every_byte(dir.path());
    keys.destroy("alice").unwrap();
    assert_eq!(every_byte(dir.path()), segment_bytes);
    let (found, coverage) = decisions_about(dir.path(), "alice", keys.key_of("alice").unwrap().as_ref()).unwrap();
    assert!(found.is_empty());
    assert_eq!(coverage.subject_key.as_deref(), Some("none"));
    assert!(matches!(segment::verify_dir(dir.path()).unwrap(), DirVerdict::Intact { head, .. } if head == anchor));
    assert!(segment::commit_points(dir.path()).unwrap().contains(&anchor), "the anchor still holds");

    // Decisions after the erasure go under a new key: the old records stay unlinked.
    let _ = guard.check(&security("alice"));
    let later = log.flush().unwrap();
    assert_eq!(later.seq, anchor.seq + 1);
    let key = keys.key_of("alice").unwrap().unwrap();
    assert_ne!(Pseudonym::of(&key, "alice").to_string(), old);
    let (found, _) = decisions_about(dir.path(), "alice", Some(&key)).unwrap();
    assert_eq!(found.len(), 1);
    assert!(segment::commit_points(dir.path()).unwrap().contains(&anchor));
}

/// Subject keys that cannot be had: a test double whose every call fails.
#[derive(Debug)]
struct FailingKeys;

impl SubjectKeys for FailingKeys {
    fn keys_for(&self, _: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        Err(StoreError::new("the key table cannot be read"))
    }
    fn key_of(&self, _: &str) -> Result<Option<SubjectKey>, StoreError> {
        Err(StoreError::new("the key table cannot be read"))
    }
}

/// Keys that give fewer keys than asked for: an error, never a record without one.
#[derive(Debug)]
struct ShortKeys;

impl SubjectKeys for ShortKeys {
    fn keys_for(&self, _: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
        Ok(Vec::new())
    }
    fn key_of(&self, _: &str) -> Result<Option<SubjectKey>, StoreError> {
        Ok(None)
    }
}

#[test]
fn subject_keys_that_fail_make_record_fail_and_the_guard_deny() {
    for keys in [Arc::new(FailingKeys) as Arc<dyn SubjectKeys>, Arc::new(ShortKeys)] {
        for durability in [Durability::Synced, Durability::BUFFERED] {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), durability, keys.clone());
            let guard = guard(log.clone());
            let asked = security("alice");
            let first = guard.check(&asked);
            match durability {
                // Released before the writer asked for the keys: flush says it was
                // not kept, and every later check is denied.
                Durability::Buffered { .. } => assert!(first.allowed()),
                _ => assert_eq!(first.code(), ReasonCode::AuditUnavailable),
            }
            let error = log.flush().unwrap_err().to_string();
            assert!(error.contains("subject keys"), "{error}");
            assert_eq!(guard.check(&security("bob")).code(), ReasonCode::AuditUnavailable);
            let template = security("");
            let prepared = guard.prepare(&template);
            let batch = prepared.check_batch(&["carol", "dave"]);
            assert!(batch.iter().all(|d| d.code() == ReasonCode::AuditUnavailable));
            // Nothing of the batch was written, and no plain id anywhere.
            assert_eq!(log.head().unwrap().seq, 0);
            let bytes = every_byte(dir.path());
            assert!(!holds(&bytes, "alice") && !holds(&bytes, "bob"));
        }
    }
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/audit-v2"));
    for name in ["segment-00000001.jsonl", "head"] {
        std::fs::copy(from.join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// `tests/data/audit-v2` was written by the format-2 writer (commit adcc815): compact
/// plain and prepared checks, a what-if and a collected-at request in full, for
/// alice, bob, carol, dave and an id JSON escapes.
#[test]
fn a_format_2_log_is_read_by_plain_id_and_never_extended() {
    let old = fixture();
    assert_eq!(segment::format_of(old.path()).unwrap(), Some(Format::PlainIds));
    let DirVerdict::Intact { head, .. } = segment::verify_dir(old.path()).unwrap() else { panic!("not intact") };
    assert_eq!(head.to_string(), std::fs::read_to_string(old.path().join("head")).unwrap().trim());
    let (alice, coverage) = decisions_about(old.path(), "alice", None).unwrap();
    assert_eq!(alice.len(), 6);
    assert!(alice.iter().all(|r| r.request.subject == "alice"));
    assert_eq!(coverage.subject_key, None, "a format-2 log needs no key");
    assert_eq!(decisions_about(old.path(), WEIRD, None).unwrap().0.len(), 2);

    let error = AuditLog::open(old.path(), Durability::Synced).unwrap_err().to_string();
    assert!(error.contains("consent-guard audit migrate"), "{error}");
    assert!(matches!(segment::verify_dir(old.path()).unwrap(), DirVerdict::Intact { head: h, .. } if h == head));

    // A format-3 segment spliced after the format-2 ones is not part of the log.
    let mixed = fixture();
    let header = format!(
        "{{\"segment\":2,\"format\":\"consent-guard-audit-3\",\"seq\":{},\"prev\":\"{}\"}}\n{{\"commit\":{},\"records\":0,\"prev\":\"{}\",\"hash\":\"00\"}}\n",
        head.seq, head.hash, head.seq, head.hash
    );
    std::fs::write(mixed.path().join("segment-00000002.jsonl"), header).unwrap();
    match segment::verify_dir(mixed.path()).unwrap() {
        DirVerdict::Tampered { segment: 2, line: 1, reason } => assert!(reason.contains("one format"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_format_2_log_migrates_to_pseudonyms_and_erased_subjects_become_unlinkable() {
    let old = fixture();
    let before = every_byte(old.path());
    let (old_alice, _) = decisions_about(old.path(), "alice", None).unwrap();
    let new_dir = tempfile::tempdir().unwrap();
    let new = new_dir.path().join("audit");
    let keys = Arc::new(MemorySubjectKeys::new());
    let master = MasterKey::from_bytes([5; 32]);
    let erased = Tombstones::from_locators(master.clone(), [(master.locator("bob"), 1_767_225_600_000)]);
    let migrated = migrate::migrate(old.path(), &new, keys.clone(), erased).unwrap();

    let DirVerdict::Intact { head: old_head, .. } = segment::verify_dir(old.path()).unwrap() else { panic!() };
    assert_eq!(migrated.old_head, old_head);
    assert_eq!(migrated.records, old_head.seq);
    assert_eq!(migrated.new_head.seq, old_head.seq);
    assert_ne!(migrated.new_head.hash, old_head.hash, "a new chain");
    assert_eq!(migrated.unlinked, 5, "bob's records");
    assert_eq!(every_byte(old.path()), before, "the old log is left as it was");
    assert!(matches!(segment::verify_dir(&new).unwrap(), DirVerdict::Intact { head, .. } if head == migrated.new_head));
    assert_eq!(segment::format_of(&new).unwrap(), Some(Format::Pseudonyms));

    let bytes = every_byte(&new);
    for subject in ["alice", "bob", "carol", "dave", WEIRD] {
        for form in forms(subject) {
            assert!(!holds(&bytes, &form), "the new log holds {form:?}");
        }
    }
    // alice's decisions export back, the same as before, through her key.
    let key = keys.key_of("alice").unwrap();
    let (new_alice, coverage) = decisions_about(&new, "alice", key.as_ref()).unwrap();
    assert_eq!(coverage.subject_key.as_deref(), Some("found"));
    let summary = |records: &[consent_guard::audit::OwnedAuditRecord]| {
        records
            .iter()
            .map(|r| (r.decision.code(), r.decision.at(), r.request.purpose.clone(), r.decision.message().into_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&new_alice), summary(&old_alice));
    // bob was erased: the store was given no key for him, and nothing finds his records.
    assert_eq!(keys.key_of("bob").unwrap(), None);
    assert!(decisions_about(&new, "bob", None).unwrap().0.is_empty());
    // The new log is written to like any other.
    let log = open(&new, Durability::Synced, keys.clone());
    let guard = guard(log.clone());
    assert!(guard.check(&security("alice")).allowed());
    assert_eq!(log.head().unwrap().seq, migrated.new_head.seq + 1);

    // Not twice, not into a log, not from a log that does not verify.
    let again = migrate::migrate(old.path(), &new, keys.clone(), Tombstones::new()).unwrap_err().to_string();
    assert!(again.contains("already holds an audit log"), "{again}");
    drop(guard);
    drop(log);
    let from_new = migrate::migrate(&new, new_dir.path().join("other"), keys.clone(), Tombstones::new());
    assert!(from_new.unwrap_err().to_string().contains("nothing to migrate"));
    let segment_path = old.path().join("segment-00000001.jsonl");
    let text = std::fs::read_to_string(&segment_path).unwrap();
    std::fs::write(&segment_path, text.replacen("\"alice\"", "\"alicf\"", 1)).unwrap();
    let tampered = migrate::migrate(old.path(), new_dir.path().join("third"), keys, Tombstones::new());
    assert!(tampered.unwrap_err().to_string().contains("does not verify"));
}

/// A batch large enough that the writer spreads its HMACs over threads: every record
/// still carries its own subject's pseudonym, in order.
#[test]
fn a_large_batch_carries_each_subjects_own_pseudonym() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(MemorySubjectKeys::new());
    let log = open(dir.path(), Durability::Synced, keys.clone());
    let guard = guard(log.clone());
    let subjects: Vec<String> = (0..9000).map(|i| format!("batch-{i:05}")).collect();
    let template = security("");
    let prepared = guard.prepare(&template);
    assert!(prepared.check_batch(&subjects).iter().all(|d| d.allowed()));
    let mut read = Vec::new();
    segment::for_each_record(dir.path(), &mut |record| read.push(record.request.subject.into_owned())).unwrap();
    assert_eq!(read.len(), subjects.len());
    for (subject, pseudonym) in subjects.iter().zip(&read) {
        let key = keys.key_of(subject).unwrap().unwrap();
        assert_eq!(*pseudonym, Pseudonym::of(&key, subject).to_string(), "{subject}");
    }
}

/// The writer keeps pseudonyms from one batch to the next only while no key has been
/// destroyed: after an erasure (here `destroy`), the very next batch asks the keys
/// again and writes the new key's pseudonym. A `SubjectKeys` that cannot see every
/// destruction (`destructions` is `None`) is asked every batch.
#[test]
fn the_writer_drops_what_it_kept_when_a_key_is_destroyed() {
    /// Counts the subjects asked, and says nothing of destructions.
    #[derive(Debug, Default)]
    struct Unseen(MemorySubjectKeys, std::sync::atomic::AtomicUsize);
    impl SubjectKeys for Unseen {
        fn keys_for(&self, subjects: &[&str]) -> Result<Vec<SubjectKey>, StoreError> {
            self.1.fetch_add(subjects.len(), std::sync::atomic::Ordering::Relaxed);
            self.0.keys_for(subjects)
        }
        fn key_of(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
            self.0.key_of(subject)
        }
    }

    let pseudonyms_of = |dir: &Path| {
        let mut found = Vec::new();
        segment::for_each_record_of(dir, &mut |_, record| found.push(record.request.subject.to_string())).unwrap();
        found
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(MemorySubjectKeys::new());
    let log = open(dir.path(), Durability::Synced, keys.clone());
    let first = guard(Arc::clone(&log));
    let _ = first.check(&security("alice"));
    let _ = first.check(&security("alice"));
    keys.destroy("alice").unwrap();
    let _ = first.check(&security("alice"));
    log.flush().unwrap();
    let written = pseudonyms_of(dir.path());
    assert_eq!(written.len(), 3);
    assert_eq!(written[0], written[1], "one key, one pseudonym, batch after batch");
    assert_ne!(written[2], written[0], "after the destruction, the new key's pseudonym");
    let key = keys.key_of("alice").unwrap().unwrap();
    assert_eq!(written[2], Pseudonym::of(&key, "alice").to_string());

    let dir = tempfile::tempdir().unwrap();
    let unseen = Arc::new(Unseen::default());
    let log = open(dir.path(), Durability::Synced, unseen.clone());
    let second = guard(Arc::clone(&log));
    for _ in 0..3 {
        let _ = second.check(&security("alice"));
    }
    log.flush().unwrap();
    assert_eq!(unseen.1.load(std::sync::atomic::Ordering::Relaxed), 3, "asked again for every batch");
}

/// Prepared checks of two accesses interleaved with plain checks, the log flushed
/// between rounds: every record names the access that was checked. A prepared
/// check's record skips the search of the shard's templates when its template is the
/// batch's last, and a flush starts a new batch.
#[test]
fn interleaved_accesses_each_record_their_own_template() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Durability::BUFFERED, Arc::new(MemorySubjectKeys::new()));
    let guard = guard(log.clone());
    let (for_training, for_security) = (training(""), security(""));
    let (training_access, security_access) = (guard.prepare(&for_training), guard.prepare(&for_security));
    let mut asked = Vec::new();
    for round in 0..3 {
        for (step, subject) in ["alice", "alice", "bob", WEIRD, "alice", "bob", "alice"].into_iter().enumerate() {
            let plain = training(subject);
            let decision = match (round + step) % 4 {
                0 | 1 => training_access.check(subject),
                2 => security_access.check(subject),
                _ => guard.check(&plain),
            };
            asked.push((decision.purpose().as_str().to_owned(), decision.code()));
        }
        log.flush().unwrap();
    }
    drop((training_access, security_access));
    drop(guard);
    log.flush().unwrap();
    let mut written = Vec::new();
    segment::for_each_record(dir.path(), &mut |record| {
        written.push((record.request.purpose.as_str().to_owned(), record.decision.code()));
    })
    .unwrap();
    assert_eq!(written, asked);
    assert!(asked.iter().any(|(purpose, _)| purpose == "security"));
    assert!(asked.iter().any(|(purpose, code)| purpose != "security" && *code == ReasonCode::ConsentGiven));
}
