//! What the fuzz targets and their regression tests share: the seed policies (compiled
//! once), a fixed clock, the vocabulary a structured input indexes into, the fixed
//! consent events the request target checks against.
//!
//! The seed policies are embedded at compile time so that a target runs from any
//! directory (cargo fuzz, a regression replay, a CI box). This file is also compiled
//! into `tests/fuzz_regressions.rs` (with `#[path]`): it uses only what the root crate's
//! tests can use.

use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use consent_guard::basis::ConsentLevel;
use consent_guard::{ConsentEvent, DataCategory, FixedClock, Guard, Policy, Purpose};

/// The seed policies of `examples/policies/`, by file name and text.
pub const SEED_POLICIES: &[(&str, &str)] = &[
    ("aiart.toml", include_str!("../../examples/policies/aiart.toml")),
    ("aimate.toml", include_str!("../../examples/policies/aimate.toml")),
    ("exmo.toml", include_str!("../../examples/policies/exmo.toml")),
    ("kmengai.toml", include_str!("../../examples/policies/kmengai.toml")),
    ("nexacore.toml", include_str!("../../examples/policies/nexacore.toml")),
];

/// The seed policies, compiled once per process. A seed that does not compile is a
/// broken build of the fuzz crate, not a finding: the target aborts at start.
pub fn policies() -> &'static [Policy] {
    static POLICIES: OnceLock<Vec<Policy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        SEED_POLICIES
            .iter()
            .map(|(file, text)| match Policy::from_toml_str(text, file) {
                Ok(policy) => policy,
                Err(e) => panic!("seed policy {file} does not compile: {e}"),
            })
            .collect()
    })
}

/// "Now" for every guard of the targets: requests without `at` are decided here, so a
/// run is reproducible.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A guard on `policy` with the fixed clock and no audit sink.
pub fn guard(policy: &Policy) -> Guard {
    match Guard::builder(policy.clone()).clock(FixedClock::new(now())).build() {
        Ok(guard) => guard,
        Err(e) => panic!("a guard without a store cannot fail to build: {e}"),
    }
}

/// The purposes a policy knows: the built-in ones and its own.
pub fn purposes(policy: &Policy) -> Vec<Purpose> {
    let (extensions, _) = policy.extensions();
    Purpose::builtins().chain(extensions.into_iter().filter_map(|name| Purpose::new(name).ok())).collect()
}

/// The data categories a policy knows: the built-in ones and its own.
pub fn categories(policy: &Policy) -> Vec<DataCategory> {
    let (_, extensions) = policy.extensions();
    DataCategory::builtins().chain(extensions.into_iter().filter_map(|name| DataCategory::new(name).ok())).collect()
}

/// The recipient names a policy declares.
pub fn recipient_names(policy: &Policy) -> Vec<String> {
    policy.document().recipients.keys().cloned().collect()
}

/// Every consent level, weakest first.
pub const LEVELS: [ConsentLevel; 3] = [ConsentLevel::Implied, ConsentLevel::Explicit, ConsentLevel::Separate];

/// A few consent events that every seed policy accepts, so that requests reach the
/// consent part of a decision: `adult` granted every rule's purposes at the strongest
/// level, `child` is 10 with a guardian's grant, `gone` granted then withdrew and was
/// erased; `nobody` has no events. Built from their JSON so that fields the events gain
/// later (with serde defaults) do not break the fuzz crate.
pub fn fixed_events(policy: &Policy) -> Vec<ConsentEvent> {
    let purposes: Vec<&str> =
        policy.rules().iter().flat_map(|rule| rule.purposes.iter().map(Purpose::as_str)).collect();
    let grant = |subject: &str, by_guardian: bool| {
        serde_json::json!({"type": "grant", "subject": subject, "purposes": purposes, "level": "separate",
            "at": "2026-01-01T00:00:00Z", "by_guardian": by_guardian})
    };
    [
        grant("adult", false),
        serde_json::json!({"type": "subject", "subject": "child", "age": 10, "at": "2026-01-01T00:00:00Z"}),
        grant("child", true),
        grant("gone", false),
        serde_json::json!({"type": "withdraw", "subject": "gone", "purposes": purposes, "at": "2026-02-01T00:00:00Z"}),
        serde_json::json!({"type": "erase", "subject": "gone", "at": "2026-03-01T00:00:00Z"}),
    ]
    .into_iter()
    .map(|value| match serde_json::from_value(value) {
        Ok(event) => event,
        Err(e) => panic!("a fixed event does not parse: {e}"),
    })
    .collect()
}

/// The subjects of [`fixed_events`], and one without events.
pub const FIXED_SUBJECTS: [&str; 4] = ["adult", "child", "gone", "nobody"];
