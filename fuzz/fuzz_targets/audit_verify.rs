//! See [`consent_guard_fuzz::harness::audit_verify`] for what this target asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| consent_guard_fuzz::harness::audit_verify(data));
