//! The bodies of the byte-level fuzz targets, one function per target. Each takes the
//! raw input and panics exactly when the target reports a finding: a panic inside the
//! crate, or an assertion below that does not hold.
//!
//! Compiled into the fuzz crate and, with `#[path]`, into `tests/fuzz_regressions.rs`,
//! which replays every saved input of `fuzz/regressions/<target>/` through these
//! functions. Records are read by the library's JSON-lines reader
//! (`consent_guard::interchange::records`), the one the command line and the server use.
#![allow(
    deprecated,
    reason = "the one-file audit format is deprecated for writing but still read; the audit target fuzzes both"
)]

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration, Utc};
use consent_guard::audit::{verify_log, JsonLinesAuditSink, LogVerdict, OwnedAuditRecord};
use consent_guard::request::{Recipient, RecipientKind};
use consent_guard::{AccessRequest, AuditRecord, ConsentEvent, ConsentHistory, FixedClock, Guard, Policy};

use consent_guard::interchange::records::{for_each_record, RecordsError};
use consent_guard::interchange::{explain, RecordKind as Kind};

use crate::shared::{fixed_events, guard, now, policies, FIXED_SUBJECTS};

/// `policy_toml`: arbitrary bytes as a policy TOML. Lint it, compile it, read
/// everything `explain` reads, serialise its document back to TOML and load that, and
/// decide a request per rule (a rule's retention, regions and levels only matter once
/// a check reads them). Check and prepared check agree.
pub fn policy_toml(data: &[u8]) {
    // `Policy::from_toml_file` reads the file to a string first: invalid UTF-8 is an
    // I/O error there, never parsed.
    let Ok(text) = std::str::from_utf8(data) else { return };
    for diagnostic in Policy::lint_toml(text, "fuzz.toml") {
        let _ = diagnostic.to_string();
    }
    let Ok(policy) = Policy::from_toml_str(text, "fuzz.toml") else { return };
    let _ = format!("{policy:?}");
    let _ = (policy.name(), policy.version(), policy.home_region(), policy.storage_regions(), policy.extensions());
    for rule in policy.rules() {
        let _ = (rule.effective_actions(), rule.effective_deidentification(), rule.effective_level());
        let _ = rule.effective_recipients().count();
        let _ = rule.effective_regions(policy.storage_regions());
        if let Some(retention) = rule.retention {
            let _ = (retention.to_string(), retention.millis());
        }
        for purpose in &rule.purposes {
            let _ = policy.rule_for(purpose);
        }
        for category in &rule.categories {
            let _ = policy.is_sensitive(category);
        }
    }
    if let Ok(again) = toml::to_string(policy.document()) {
        let _ = Policy::from_toml_str(&again, "again.toml");
    }

    let guard = guard(&policy);
    let collected = [Some(now() - Duration::days(1)), Some(DateTime::<Utc>::MIN_UTC), None];
    for rule in policy.rules().iter().take(16) {
        let (Some(purpose), false) = (rule.purposes.first(), rule.categories.is_empty()) else { continue };
        let recipient = rule
            .effective_recipients()
            .next()
            .and_then(RecipientKind::from_name)
            .map_or(Recipient::FIRST_PARTY, Recipient::kind);
        for collected_at in collected {
            let mut request = AccessRequest::new("u1", purpose.clone(), rule.categories.as_slice())
                .recipient(recipient.clone())
                .deidentification(rule.effective_deidentification());
            if let Some(action) = rule.effective_actions().first() {
                request = request.action(*action);
            }
            if let Some(at) = collected_at {
                request = request.collected(at, Some("s".into())).session("s");
            }
            let checked = guard.check(&request);
            let prepared = guard.prepare(&request);
            assert_eq!(checked.code(), prepared.check("u1").code(), "check and prepared check disagree");
            let _ = serde_json::to_string(&checked);
        }
    }
}

/// `events_json`: JSON lines of consent events, read as the CLI reads them, recorded
/// into a fresh guard on each seed policy; then each subject seen is checked for every
/// rule. An event survives its JSON round trip.
pub fn events_json(data: &[u8]) {
    let guards: Vec<Guard> = policies().iter().map(guard).collect();
    let mut events: Vec<ConsentEvent> = Vec::new();
    let _ = for_each_record(data, "fuzz.jsonl", |bytes, line| {
        let event: ConsentEvent = match serde_json::from_slice(bytes) {
            Ok(event) => event,
            Err(e) => {
                let message = explain(bytes, Kind::Event, &e);
                return Err(RecordsError::record("fuzz.jsonl", line, message));
            }
        };
        let json = serde_json::to_string(&event).unwrap_or_default();
        let again: Result<ConsentEvent, _> = serde_json::from_str(&json);
        assert_eq!(again.as_ref().ok(), Some(&event), "event does not survive its JSON round trip: {json}");
        for guard in &guards {
            // A rejected event is bad input for that policy; the guard goes on.
            let _ = guard.record(&event);
        }
        if events.len() < 64 {
            events.push(event);
        }
        Ok(())
    });

    let subjects: BTreeSet<&str> = events.iter().map(ConsentEvent::subject).take(4).collect();
    let times = [now(), events.iter().filter_map(ConsentEvent::at).max().unwrap_or_else(now)];
    for subject in &subjects {
        let history = ConsentHistory::new(*subject, events.iter().filter(|e| e.subject() == *subject).cloned());
        for guard in &guards {
            for rule in guard.policy().rules() {
                let (Some(purpose), false) = (rule.purposes.first(), rule.categories.is_empty()) else { continue };
                for at in times {
                    let _ = history.consent_for(purpose, at);
                    let request = AccessRequest::new(*subject, purpose.clone(), rule.categories.as_slice()).at(at);
                    let checked = guard.check(&request);
                    let prepared = guard.prepare(&request);
                    assert_eq!(checked.code(), prepared.check(subject).code(), "check and prepared check disagree");
                }
            }
        }
    }
}

/// The seed policies' guards holding [`fixed_events`], built once per process (checks
/// do not change them: no audit sink).
fn fixed_guards() -> &'static [Guard] {
    static GUARDS: OnceLock<Vec<Guard>> = OnceLock::new();
    GUARDS.get_or_init(|| {
        policies()
            .iter()
            .map(|policy| {
                let guard = guard(policy);
                for event in fixed_events(policy) {
                    if let Err(e) = guard.record(&event) {
                        panic!("{}: a fixed event is rejected: {e}", policy.name());
                    }
                }
                guard
            })
            .collect()
    })
}

/// `request_json`: JSON access requests, read as the CLI reads them, validated and
/// decided on each seed policy holding [`fixed_events`]. `check`, `decide` (on the
/// request without its own `at`) and the prepared check agree on the code, for the
/// request's subject and each fixed one; a
/// request the policy does not know is denied unless it is a deletion the policy owes
/// ([`deletion_owed`]); the decision and its audit record serialise.
pub fn request_json(data: &[u8]) {
    let _ = for_each_record(data, "fuzz.jsonl", |bytes, line| {
        let request: AccessRequest<'_> = match serde_json::from_slice(bytes) {
            Ok(request) => request,
            Err(e) => {
                let message = explain(bytes, Kind::Request, &e);
                return Err(RecordsError::record("fuzz.jsonl", line, message));
            }
        };
        for guard in fixed_guards() {
            let valid = guard.policy().validate_request(&request);
            // `decide` answers a what-if at the request's own `at` while `check` decides
            // at the guard's clock (issue 13, class 4): they are compared where both
            // decide at the clock.
            let mut at_clock = request.clone();
            at_clock.at = None;
            let decided = guard.decide(&at_clock);
            let checked = guard.check(&request);
            let prepared = guard.prepare(&request);
            let from_prepared = prepared.check(&request.subject);
            assert_eq!(decided.code(), guard.check(&at_clock).code(), "decide and check disagree");
            assert_eq!(checked.code(), from_prepared.code(), "check and prepared check disagree");
            assert_eq!(checked.allowed(), checked.code().is_allow(), "allowed and code disagree");
            if let Err(e) = &valid {
                let name = guard.policy().name();
                assert!(
                    !checked.allowed() || deletion_owed(&request, &checked),
                    "{name}: a request the policy does not know is allowed ({e})"
                );
            }
            let _ = checked.message();
            let json = serde_json::to_string(&checked);
            assert!(json.is_ok(), "a decision does not serialise: {json:?}");
            let record = serde_json::to_string(&AuditRecord::new(&request, &checked));
            assert!(record.is_ok(), "an audit record does not serialise: {record:?}");
            if let Ok(record) = record {
                let _ = serde_json::from_str::<OwnedAuditRecord>(&record);
            }
            for subject in FIXED_SUBJECTS {
                let mut other = request.clone();
                other.subject = subject.into();
                assert_eq!(guard.check(&other).code(), prepared.check(subject).code(), "prepared check for {subject}");
            }
        }
        Ok(())
    });
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One scratch file per process (a fuzzer runs one input at a time in a process; tests
/// name theirs).
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("consent-guard-fuzz-{name}-{}.jsonl", std::process::id()))
}

/// The hash line `seq` states (the 64 characters before its closing `"}`), `GENESIS`
/// for 0.
fn stated_hash(data: &[u8], seq: u64) -> Option<String> {
    if seq == 0 {
        return Some(GENESIS.to_owned());
    }
    let line = data.split_inclusive(|b| *b == b'\n').nth(usize::try_from(seq - 1).ok()?)?;
    let body = line.strip_suffix(b"\"}\n")?;
    let hash = body.get(body.len().checked_sub(64)?..)?;
    String::from_utf8(hash.to_vec()).ok()
}

/// `audit_verify`: arbitrary bytes written to a file and verified as an audit log, as
/// `audit verify` does; then what an anchor relies on, and the sink appending.
///
/// - The verdict from the file is the verdict from the bytes.
/// - The head of an intact (or torn) log is the hash its last complete line states, and
///   every complete prefix is intact with the hash its last line states: an anchor
///   `k:HASH` taken earlier (`0:` and 64 zeros for the empty log) holds later.
/// - `JsonLinesAuditSink::open` refuses a tampered log; it continues an intact or torn
///   one from the verified head, and after one more record the log is intact with one
///   record more.
pub fn audit_verify(data: &[u8]) {
    audit_verify_at(data, &scratch("audit"));
}

/// [`audit_verify`] with the log at `path`.
pub fn audit_verify_at(data: &[u8], path: &std::path::Path) {
    let written = std::fs::File::create(path).and_then(|mut file| file.write_all(data));
    assert!(written.is_ok(), "cannot write the scratch file {}", path.display());
    let from_file = std::fs::File::open(path).map(BufReader::new).and_then(verify_log);
    let from_bytes = verify_log(data);
    let (Ok(verdict), Ok(again)) = (from_file, from_bytes) else { panic!("reading a log failed") };
    assert_eq!(verdict, again, "the file and its bytes give different verdicts");

    let (records, last_hash) = match &verdict {
        LogVerdict::Intact { records, last_hash } | LogVerdict::TornTail { records, last_hash, .. } => {
            (*records, last_hash.clone())
        }
        LogVerdict::Tampered { line, .. } => {
            assert!(*line >= 1, "tampered at line 0");
            assert!(JsonLinesAuditSink::open(path).is_err(), "the sink opened a tampered log");
            let _ = std::fs::remove_file(path);
            return;
        }
    };
    assert_eq!(stated_hash(data, records).as_deref(), Some(last_hash.as_str()), "head is not the last line's hash");

    let complete = usize::try_from(records).unwrap_or(usize::MAX);
    let mut end = 0usize;
    for (k, line) in data.split_inclusive(|b| *b == b'\n').take(complete).enumerate() {
        end += line.len();
        // Every eighth prefix and the whole: enough for a chain, linear in time.
        if k % 8 != 0 && k + 1 != complete {
            continue;
        }
        let k = k as u64 + 1;
        match verify_log(data.get(..end).unwrap_or_default()) {
            Ok(LogVerdict::Intact { records, last_hash }) => {
                assert_eq!(records, k, "a prefix of {k} lines");
                assert_eq!(Some(last_hash), stated_hash(data, k), "the head of a prefix of {k} lines");
            }
            other => panic!("a prefix of {k} lines of a log verified {verdict:?} is {other:?}"),
        }
    }

    let sink = match JsonLinesAuditSink::open(path) {
        Ok(sink) => Arc::new(sink),
        Err(e) => panic!("the sink refuses a log verified {verdict:?}: {e}"),
    };
    assert_eq!(sink.head().ok(), Some((records, last_hash)), "the sink's head is not the verified one");
    if let Some(policy) = policies().first() {
        let built = Guard::builder(policy.clone()).clock(FixedClock::new(now())).audit(Arc::clone(&sink)).build();
        let rule = policy.rules().iter().find(|rule| !rule.purposes.is_empty() && !rule.categories.is_empty());
        if let (Ok(guard), Some(purpose), Some(rule)) = (built, rule.and_then(|r| r.purposes.first()), rule) {
            let _ = guard.check(&AccessRequest::new("u1", purpose.clone(), rule.categories.as_slice()));
        }
    }
    drop(sink);
    match std::fs::File::open(path).map(BufReader::new).and_then(verify_log) {
        Ok(LogVerdict::Intact { records: after, .. }) => assert_eq!(after, records + 1, "one record appended"),
        other => panic!("after one append to a log verified {verdict:?}: {other:?}"),
    }
    let _ = std::fs::remove_file(path);
}

/// A `delete` the policy owes is allowed before the request-only checks (action,
/// categories, recipient, region, de-identification: docs/policy-format.md, "Deletion
/// is always possible"), so a request the policy does not know may be allowed as
/// that, and as nothing else.
pub fn deletion_owed(request: &AccessRequest<'_>, decision: &consent_guard::Decision<'_>) -> bool {
    request.action == consent_guard::request::Action::Delete
        && decision.code() == consent_guard::ReasonCode::DeletionDue
}
