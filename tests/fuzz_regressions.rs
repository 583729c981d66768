//! The fuzz targets of `fuzz/`, replayed as plain tests: the committed seeds of
//! `fuzz/seeds/<target>/` must pass, and each input a target found
//! (`fuzz/regressions/<target>/`) has a test of its own that feeds it through the same
//! harness (`fuzz/src/harness.rs`, compiled in here with `#[path]`). A finding not yet
//! fixed is `#[ignore]`d with the reason, so that CI stays green and
//! `cargo test --test fuzz_regressions -- --ignored` shows what is left; see
//! `/work/notes/fuzz.md` and `fuzz/README.md`.
#![cfg(all(feature = "toml", feature = "json"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly; the harness panics on a finding by design"
)]

#[path = "../fuzz/src/harness.rs"]
#[allow(dead_code, reason = "the tests give each audit log a path of their own (audit_verify_at)")]
mod harness;
#[path = "../fuzz/src/shared.rs"]
#[allow(dead_code, reason = "shared with the structured target, which needs more of it")]
mod shared;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// A saved input of `fuzz/regressions/<target>/`.
fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = fuzz_dir().join("regressions").join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file of `fuzz/seeds/<target>/`, sorted.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("seeds").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|path| (path.display().to_string(), std::fs::read(&path).unwrap())).collect()
}

#[test]
fn the_seed_corpora_pass_their_targets() {
    for (_, data) in seeds("policy_toml") {
        harness::policy_toml(&data);
    }
    for (_, data) in seeds("events_json") {
        harness::events_json(&data);
    }
    for (_, data) in seeds("request_json") {
        harness::request_json(&data);
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, (_, data)) in seeds("audit_verify").into_iter().enumerate() {
        harness::audit_verify_at(&data, &dir.path().join(format!("{i}.jsonl")));
    }
}

/// F1 (fixed): a retention the policy format accepted but milliseconds cannot hold.
/// `Retention::millis` multiplied without a check, so a debug build panicked inside
/// `Guard::check` and a release build wrapped (issue 13, class 7). Such a retention is
/// now a policy error, and the arithmetic saturates.
#[test]
fn f1_policy_toml_retention_300000000y() {
    harness::policy_toml(&regression("policy_toml", "retention_overflow.toml"));
}

/// F2 (the targets' invariant, not the guard): `guard_structured` found a `delete` of
/// an erased subject's data, naming a declared processor as an affiliate, allowed. The
/// policy format owes that deletion before the request-only checks ("Deletion is
/// always possible", issue 27), so `deletion_due` is right; the targets held every
/// request the policy does not know to a denial, and now except a deletion owed.
#[test]
fn f2_request_json_delete_owed_to_a_misnamed_recipient() {
    let line = regression("request_json", "delete_owed_to_a_misnamed_recipient.jsonl");
    harness::request_json(&line);
    // Not vacuous: on AIArt the request is unknown to the policy and allowed as owed.
    let request: consent_guard::AccessRequest<'_> = serde_json::from_slice(line.trim_ascii()).unwrap();
    let policy = shared::policies().iter().find(|p| p.name() == "aiart").unwrap();
    assert!(policy.validate_request(&request).is_err());
    let guard = shared::guard(policy);
    for event in shared::fixed_events(policy) {
        guard.record(&event).unwrap();
    }
    let decision = guard.check(&request);
    assert_eq!(decision.code(), consent_guard::ReasonCode::DeletionDue, "{}", decision.message());
    assert!(harness::deletion_owed(&request, &decision));
}
