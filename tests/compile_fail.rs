//! Bypassing the guard does not compile: each file of `tests/compile_fail/` tries one
//! way around it, and must fail with the error recorded next to it (`*.stderr`).
//! Regenerate those with `TRYBUILD=overwrite cargo test --test compile_fail` and review
//! the diff: each must show the intended error, not an unrelated one.

#[test]
fn bypassing_the_guard_does_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/compile_fail/*.rs");
}
