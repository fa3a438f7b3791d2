//! Compile-time diagnostics of `#[conv_kernel]`: one violation per file under `ui/<category>/`,
//! each with its reviewed `.stderr`. Regenerate with `TRYBUILD=overwrite` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    // `pass/*.rs` also matches the glob above; trybuild keeps one entry per file, the later one.
    t.pass("tests/ui/pass/*.rs");
}
