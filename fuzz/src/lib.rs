//! The fuzz targets of consent-guard: each target in `fuzz_targets/` is a thin call into
//! [`harness`], which `tests/fuzz_regressions.rs` compiles too, so that a saved input
//! replays through exactly the code that found it.

pub mod harness;
pub mod shared;

// The CLI's JSON-lines reader, as the CLI compiles it.
#[path = "../../crates/consent-guard-cli/src/input.rs"]
#[allow(dead_code, reason = "the CLI's module, of which the harness uses a part")]
mod input;

pub use shared::CliError;
