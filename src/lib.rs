#![doc = include_str!("../README.md")]
//!
//! # Architecture
//!
//! The workspace (see `ARCHITECTURE.md`): this library, and crates that depend on it
//! and on nothing that depends on them.
//!
//! ```text
//! consent-guard-cli ──► consent-guard-server ──► consent-guard (this crate)
//!        │                                         ▲
//!        └────────────► consent-guard-postgres ────┘
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`purpose`], [`category`] | the hierarchical vocabularies (typed constants, extensions) |
//! | [`basis`] | legal bases and consent levels |
//! | [`consent`] | consent events, per-subject history, proof of consent |
//! | [`policy`] | the policy document, its TOML form, the builder, validation and compilation; `diff` (material changes) and `explain` (a structured description) |
//! | [`request`] | access requests and their dimensions |
//! | [`guard`] | the decision: policy × consent state × request × time |
//! | [`filter`] | one access compiled into a filter over rows, with a consent snapshot the guard decides (SQL and Arrow in `consent-guard-filter`) |
//! | [`sealed`] | personal data that only a granted decision opens ([`Personal`]) |
//! | [`decision`] | decisions and reason codes |
//! | [`audit`] | audit records and sinks, the hash-chained log |
//! | [`store`] | the consent store trait, the in-memory and embedded (redb) stores |
//! | `keys` (feature `json`) | subject keys, audit pseudonyms, locators and tombstones: how an erasure is forgotten |
//! | [`clock`] | injected time |
//! | `reload` (feature `reload`) | hot policy reload: a guard handle swapped atomically |
//! | `web` (features `tower`, `axum`) | the tower layer, the axum extractor, HTTP responses |
//! | [`error`] | one error enum per boundary |
//! | `observe` (features `metrics`, `tracing`) | counters, latency histogram and tracing events of decisions |
//! | `interchange` (feature `json`) | the request-to-answer step (`answer`), the JSON-lines records reader (`records`) and `field: message` errors of the interchange JSON |
//! | `schema` (feature `schema`) | JSON Schemas of the policy, events, requests, decisions |
//! | `testing` (feature `testing`) | golden test files of a policy: request → expected decision |
//!
//! Beside it: `consent-guard-postgres` (the PostgreSQL store), `consent-guard-server`
//! (the HTTP decision service), `consent-guard-cli` (the `consent-guard` binary) and
//! `consent-guard-filter` (the compiled filter on Arrow batches and PostgreSQL tables).
//!
//! # Crate features
//!
//! - `toml` (default): load policies from TOML files with `file:line:col` diagnostics.
//! - `json` (default): the hash-chained JSON-lines audit log (`sha2`, `serde_json`).
//! - `redb` (default): [`store::RedbConsentStore`], the embedded crash-safe store (one
//!   file, pure Rust).
//! - `testing`: `consent_guard::testing`, golden tests of a policy (the engine of
//!   `consent-guard test`); needs `toml` and `json`.
//! - `schema`: `consent_guard::schema`, JSON Schemas of policies, events, requests and
//!   decisions (`schemars`).
//! - `reload`: `consent_guard::reload`, a [`Guard`] handle whose policy swaps atomically
//!   under running checks (`arc-swap`).
//! - `tower`: `consent_guard::web`, a tower layer that puts the privacy signals
//!   (`Sec-GPC`, `DNT`) and the subject into request extensions.
//! - `axum`: the `RequireConsent` extractor and `IntoResponse` for decisions and errors
//!   (`axum-core`); enables `tower`, `reload` and `json`.
//! - `metrics`: `consent_guard::observe` counters and a latency histogram through the
//!   `metrics` facade.
//! - `tracing`: `consent_guard::observe` tracing events per decision and consent event,
//!   subjects pseudonymised with HMAC-SHA256.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod name;
mod version;

pub mod audit;
pub mod basis;
pub mod category;
pub mod clock;
pub mod consent;
pub mod decision;
pub mod error;
pub mod filter;
pub mod guard;
#[cfg(feature = "json")]
pub mod interchange;
#[cfg(feature = "json")]
pub mod keys;
#[cfg(any(feature = "metrics", feature = "tracing"))]
pub mod observe;
pub mod policy;
pub mod purpose;
#[cfg(feature = "reload")]
pub mod reload;
pub mod request;
pub mod rights;
#[cfg(feature = "schema")]
pub mod schema;
pub mod sealed;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tower")]
pub mod web;

pub use audit::{AuditRecord, AuditSink, MemoryAuditSink, NoAuditSink};
pub use basis::{Bases, ConsentLevel, LegalBasis};
pub use category::DataCategory;
pub use clock::{Clock, FixedClock, SystemClock};
pub use consent::{ConsentEvent, ConsentHistory};
pub use decision::{Decision, OwnedDecision, ReasonCode};
pub use error::{EventError, PolicyError};
pub use guard::{Guard, GuardBuilder, PreparedAccess, SubjectHandle};
pub use policy::{Policy, PolicyBuilder};
pub use purpose::Purpose;
pub use request::{AccessRequest, Action, Deidentification, Recipient, RecipientKind, Region, Signals};
pub use sealed::{Access, Granted, Personal, SealedAccess, Shared, Tags, Tally};
