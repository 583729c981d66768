//! Shared helpers for the seed-policy behaviour tests: a scenario is a seed policy,
//! a list of consent events (JSON lines, as in `interchange.md`) and requests checked
//! against them, each with the reason code it must get.
#![allow(dead_code, reason = "each test binary uses a different part of the helpers")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly with the input that broke them"
)]

use chrono::{DateTime, Utc};
use consent_guard::{AccessRequest, ConsentEvent, FixedClock, Guard, Policy};

/// "Now" for every request that names no `at` of its own.
pub const NOW: &str = "2026-06-01T00:00:00Z";

/// One seed policy loaded from `examples/policies/{name}.toml`, with a guard.
pub struct Scenario {
    guard: Guard,
}

/// What a check answered, with strings as the interchange JSON spells them.
#[derive(Debug)]
pub struct Outcome {
    pub allowed: bool,
    pub code: String,
    pub clause: Option<String>,
    pub basis: Option<String>,
    pub message: String,
}

impl Scenario {
    /// Loads `examples/policies/{name}.toml`; panics with the loader's message if invalid.
    pub fn new(name: &str) -> Self {
        let path = format!("{}/examples/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let policy = Policy::from_toml_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let now: DateTime<Utc> = NOW.parse().unwrap();
        let guard = Guard::builder(policy).clock(FixedClock::new(now)).build().unwrap();
        Scenario { guard }
    }

    /// Records consent events given as JSON lines (blank lines are skipped).
    pub fn events(self, json_lines: &str) -> Self {
        for line in json_lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let event: ConsentEvent = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad event {line}: {e}"));
            self.guard.record(&event).unwrap_or_else(|e| panic!("event refused {line}: {e}"));
        }
        self
    }

    /// Checks one request given as interchange JSON.
    pub fn check(&self, request_json: &str) -> Outcome {
        let request: AccessRequest<'_> =
            serde_json::from_str(request_json).unwrap_or_else(|e| panic!("bad request {request_json}: {e}"));
        self.guard
            .policy()
            .validate_request(&request)
            .unwrap_or_else(|e| panic!("request refused {request_json}: {e}"));
        // A request that names its own time asks what was decided then.
        let decision = match request.at {
            Some(at) => self.guard.what_if(&request, at),
            None => self.guard.check(&request),
        };
        Outcome {
            allowed: decision.allowed(),
            code: decision.code().to_string(),
            clause: decision.clause().map(str::to_owned),
            basis: decision.basis().map(|b| b.to_string()),
            message: decision.message().into_owned(),
        }
    }

    /// Asserts the reason code of a request (allow codes imply allowed).
    pub fn expect(&self, request_json: &str, code: &str) -> Outcome {
        let outcome = self.check(request_json);
        assert_eq!(outcome.code, code, "request {request_json} got {outcome:?}, expected {code}");
        let allow = matches!(code, "consent_given" | "legal_basis" | "deidentified_exempt" | "deletion_due");
        assert_eq!(outcome.allowed, allow, "allowed flag disagrees with code {code}");
        outcome
    }

    /// Asserts the reason code and the clause (rule id) that decided.
    pub fn expect_clause(&self, request_json: &str, code: &str, clause: &str) -> Outcome {
        let outcome = self.expect(request_json, code);
        assert_eq!(outcome.clause.as_deref(), Some(clause), "request {request_json}");
        outcome
    }

    /// The guard, for checks the helpers above do not cover.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
}
