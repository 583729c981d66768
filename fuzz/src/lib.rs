//! The fuzz targets of consent-guard: each target in `fuzz_targets/` is a thin call into
//! [`harness`], which `tests/fuzz_regressions.rs` compiles too, so that a saved input
//! replays through exactly the code that found it.

pub mod harness;
pub mod shared;
