//! The golden cases of `shared/golden` (ONNX Runtime outputs cross-checked against PyTorch and a
//! float64 direct convolution) pin our semantics to the real thing: the reference and the generic
//! kernel on every instruction set of this machine must land within each element's tolerance of
//! `output_f64`.

use conv_runtime::{reference, GenericConv2d, Isa};
use conv_tests::{assert_close, golden_cases, separable_cases, GoldenCase};

/// Runs `check` on every case, collecting failures so one bad case does not hide the others.
fn for_each_case(what: &str, check: impl Fn(&GoldenCase)) {
    let cases = golden_cases();
    assert!(!cases.is_empty(), "no single-layer golden case found");
    let mut failed = Vec::new();
    for case in &cases {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(case)));
        if r.is_err() {
            failed.push(case.name.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "{what}: {} of {} golden cases failed: {failed:?} (messages above)",
        failed.len(),
        cases.len()
    );
}

#[test]
fn golden_set_is_complete() {
    let cases = golden_cases();
    let kinds = |k: &str| cases.iter().filter(|c| c.kind == k).count();
    assert!(kinds("depthwise") > 0 && kinds("grouped") > 0 && kinds("pointwise") > 0);
    // Separable cases are loaded (their files are checked) but tested in a later issue.
    assert!(!separable_cases().is_empty());
}

#[test]
fn onnxruntime_output_is_within_tolerance() {
    // Sanity check of the loader and of `assert_close`: the stored peer output passes.
    for_each_case("onnxruntime", |c| {
        assert_close(
            &format!("golden {} onnxruntime", c.name),
            &c.output,
            &c.output_f64,
            &c.tol,
            c.out_dims(),
        );
    });
}

#[test]
fn reference_matches_golden() {
    for_each_case("reference", |c| {
        let got = reference::conv2d(&c.params, &c.input, c.n, c.h, c.w, &c.weight, c.bias())
            .unwrap_or_else(|e| panic!("golden {}: reference failed: {e}", c.name));
        assert_close(
            &format!("golden {} reference", c.name),
            &got,
            &c.output_f64,
            &c.tol,
            c.out_dims(),
        );
    });
}

#[test]
fn reference_tolerance_matches_golden_tol() {
    // Our `tolerance` is the golden README's formula: it must reproduce tol.f32 (up to f32
    // rounding of the stored values).
    for_each_case("tolerance", |c| {
        let tol =
            reference::tolerance(&c.params, &c.input, c.n, c.h, c.w, &c.weight, c.bias()).unwrap();
        let slack: Vec<f32> = c.tol.iter().map(|t| t * 1e-5).collect();
        assert_close(
            &format!("golden {} tolerance", c.name),
            &tol,
            &c.tol,
            &slack,
            c.out_dims(),
        );
    });
}

#[test]
fn generic_matches_golden_on_every_isa() {
    let isas = Isa::available();
    assert!(isas.contains(&Isa::Scalar));
    for isa in isas {
        for_each_case(isa.name(), |c| {
            let conv = GenericConv2d::new(c.params, &c.weight, c.bias())
                .unwrap_or_else(|e| panic!("golden {}: GenericConv2d::new failed: {e}", c.name));
            let mut out = vec![f32::NAN; c.out_dims().iter().product()];
            conv.forward_on(isa, &c.input, c.n, c.h, c.w, &mut out)
                .unwrap_or_else(|e| panic!("golden {} generic/{isa}: forward failed: {e}", c.name));
            assert_close(
                &format!("golden {} generic/{isa}", c.name),
                &out,
                &c.output_f64,
                &c.tol,
                c.out_dims(),
            );
        });
    }
}
