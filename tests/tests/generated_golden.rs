//! Generated layers against the golden cases of `shared/golden` (ONNX Runtime outputs,
//! cross-checked against PyTorch and a float64 direct convolution): one `#[conv_kernel]` layer per
//! single-layer case, run on every ISA this machine has, must land within each element's
//! tolerance of `output_f64`.
//!
//! The declarations are written by hand from each case's `meta.json`; a test checks that every
//! declared `PARAMS` equals the parameters the loader read (so a typo in an attribute fails) and
//! that every single-layer golden folder has a declared layer (so a new case cannot be skipped).

use std::collections::BTreeSet;

use conv_runtime::{conv_kernel, Conv2dLayer, Conv2dParams, Isa, Result};
use conv_tests::{assert_close, golden_cases, GoldenCase};

// Dense and strided dense.
#[conv_kernel(in = 3, out = 8, k = 3, pad = 1)]
pub struct DenseK3;
#[conv_kernel(in = 5, out = 7, k = 3, stride = 2, pad = 1)]
pub struct DenseK3S2;

// Depthwise: 1x1, 3x3 with every stride/pad combination, dilation, 5x5, 7x7, tiny and wide
// planes, channel multipliers 2 and 3.
#[conv_kernel(in = 9, out = 9, k = 1, groups = 9)]
pub struct DwK1;
#[conv_kernel(in = 4, out = 4, k = 3, groups = 4, pad = 2, dilation = 2)]
pub struct DwK3D2P2;
#[conv_kernel(in = 5, out = 5, k = 3, groups = 5)]
pub struct DwK3S1P0;
#[conv_kernel(in = 8, out = 8, k = 3, groups = 8, pad = 1)]
pub struct DwK3S1P1;
#[conv_kernel(in = 16, out = 16, k = 3, groups = 16, stride = 2)]
pub struct DwK3S2P0;
#[conv_kernel(in = 6, out = 6, k = 3, groups = 6, stride = 2, pad = 1)]
pub struct DwK3S2P1;
#[conv_kernel(in = 7, out = 7, k = 5, groups = 7, pad = 2)]
pub struct DwK5S1P2;
#[conv_kernel(in = 4, out = 4, k = 5, groups = 4, stride = 2, pad = 2)]
pub struct DwK5S2P2;
#[conv_kernel(in = 3, out = 3, k = 7, groups = 3, pad = 3)]
pub struct DwK7S1P3;
#[conv_kernel(in = 4, out = 8, k = 3, groups = 4, pad = 1)]
pub struct DwMult2;
#[conv_kernel(in = 3, out = 9, k = 3, groups = 3, stride = 2, pad = 1)]
pub struct DwMult3S2;
#[conv_kernel(in = 4, out = 4, k = 3, groups = 4, pad = 1)]
pub struct DwTinyH2;
#[conv_kernel(in = 2, out = 2, k = 3, groups = 2, pad = 1)]
pub struct DwWideW37;

// Grouped.
#[conv_kernel(in = 8, out = 12, k = 3, groups = 2, pad = 1)]
pub struct G2K3;
#[conv_kernel(in = 6, out = 4, k = 3, groups = 2, dilation = 2)]
pub struct G2K3P0D2;
#[conv_kernel(in = 128, out = 128, k = 3, groups = 32, pad = 1)]
pub struct G32K3Resnext;
#[conv_kernel(in = 9, out = 6, k = 5, groups = 3, pad = 2)]
pub struct G3K5;
#[conv_kernel(in = 16, out = 16, k = 3, groups = 4, stride = 2, pad = 1)]
pub struct G4K3S2;
#[conv_kernel(in = 8, out = 8, k = 7, groups = 4, stride = 2, pad = 3)]
pub struct G4K7S2P3;
#[conv_kernel(in = 32, out = 16, k = 1, groups = 8)]
pub struct G8K1;

// Pointwise (the strided one is computed by the direct family).
#[conv_kernel(in = 16, out = 24, k = 1)]
pub struct Pw16x24;
#[conv_kernel(in = 3, out = 5, k = 1)]
pub struct Pw3x5;
#[conv_kernel(in = 64, out = 17, k = 1)]
pub struct Pw64x17;
#[conv_kernel(in = 8, out = 16, k = 1, stride = 2)]
pub struct PwS2;

/// Builds a declared layer from PyTorch-layout weight and bias.
type Build = fn(&[f32], Option<&[f32]>) -> Result<Box<dyn Conv2dLayer>>;

/// A declared layer: the golden folder it stands for, its compile-time parameters, and how to
/// build it from the case's weights.
struct Declared {
    case: &'static str,
    layer: &'static str,
    params: Conv2dParams,
    kernel: &'static str,
    build: Build,
}

macro_rules! declared {
    ($($case:literal => $t:ident),* $(,)?) => {
        vec![$(Declared {
            case: $case,
            layer: stringify!($t),
            params: $t::PARAMS,
            kernel: $t::KERNEL_INFO.name,
            build: |w, b| Ok(Box::new($t::new(w, b)?)),
        }),*]
    };
}

fn declared() -> Vec<Declared> {
    declared![
        "dense_k3" => DenseK3,
        "dense_k3_s2" => DenseK3S2,
        "dw_k1" => DwK1,
        "dw_k3_d2_p2" => DwK3D2P2,
        "dw_k3_s1_p0" => DwK3S1P0,
        "dw_k3_s1_p1" => DwK3S1P1,
        "dw_k3_s2_p0" => DwK3S2P0,
        "dw_k3_s2_p1" => DwK3S2P1,
        "dw_k5_s1_p2" => DwK5S1P2,
        "dw_k5_s2_p2" => DwK5S2P2,
        "dw_k7_s1_p3" => DwK7S1P3,
        "dw_mult2" => DwMult2,
        "dw_mult3_s2" => DwMult3S2,
        "dw_tiny_h2" => DwTinyH2,
        "dw_wide_w37" => DwWideW37,
        "g2_k3" => G2K3,
        "g2_k3_p0_d2" => G2K3P0D2,
        "g32_k3_resnext" => G32K3Resnext,
        "g3_k5" => G3K5,
        "g4_k3_s2" => G4K3S2,
        "g4_k7_s2_p3" => G4K7S2P3,
        "g8_k1" => G8K1,
        "pw_16_24" => Pw16x24,
        "pw_3_5" => Pw3x5,
        "pw_64_17" => Pw64x17,
        "pw_s2" => PwS2,
    ]
}

/// The golden case a declared layer stands for (panics when the folder is gone).
fn case_of<'a>(cases: &'a [GoldenCase], d: &Declared) -> &'a GoldenCase {
    cases.iter().find(|c| c.name == d.case).unwrap_or_else(|| {
        panic!(
            "{} is declared for golden case {}, which does not exist",
            d.layer, d.case
        )
    })
}

#[test]
fn every_single_layer_golden_case_has_a_declared_layer() {
    let cases = golden_cases();
    let golden: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    let decl = declared();
    let names: BTreeSet<&str> = decl.iter().map(|d| d.case).collect();
    assert_eq!(names.len(), decl.len(), "a golden case is declared twice");
    let missing: Vec<_> = golden.difference(&names).collect();
    let stale: Vec<_> = names.difference(&golden).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "golden cases without a declared layer: {missing:?}; declared layers without a golden \
         case: {stale:?} (add or remove a `#[conv_kernel]` declaration in this file)"
    );
}

#[test]
fn declared_params_equal_golden_params() {
    let cases = golden_cases();
    let mut wrong = Vec::new();
    for d in declared() {
        let c = case_of(&cases, &d);
        if d.params != c.params {
            wrong.push(format!(
                "{} ({}):\n  declared {:?}\n  golden   {:?}",
                d.layer, d.case, d.params, c.params
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "declared params differ:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_declared_layer_matches_golden_on_every_isa() {
    let cases = golden_cases();
    let isas = Isa::available();
    let mut failed = Vec::new();
    let mut runs = 0;
    for d in declared() {
        let c = case_of(&cases, &d);
        let layer = (d.build)(&c.weight, c.bias())
            .unwrap_or_else(|e| panic!("{} ({}): new failed: {e}", d.layer, d.case));
        assert_eq!(layer.kernel_name(), d.kernel);
        let dims = c.out_dims();
        for &isa in &isas {
            let what = format!(
                "golden {} on {isa}, layer {} ({})",
                c.name, d.layer, d.kernel
            );
            // NaN sentinel: an element the kernel never writes fails the comparison.
            let mut out = vec![f32::NAN; dims.iter().product()];
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                layer
                    .forward_on(isa, &c.input, c.n, c.h, c.w, &mut out)
                    .unwrap_or_else(|e| panic!("{what}: forward failed: {e}"));
                assert_close(&what, &out, &c.output_f64, &c.tol, dims);
            }));
            runs += 1;
            if r.is_err() {
                failed.push(format!("{} on {isa}", c.name));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {runs} (case, isa) runs failed: {failed:?} (messages above)",
        failed.len()
    );
    assert_eq!(runs, declared().len() * isas.len());
}
