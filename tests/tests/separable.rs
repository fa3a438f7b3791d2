//! Fused `separable` layers against the naive reference of each stage (depthwise, activation,
//! pointwise, activation, all in `f64`), on every ISA this machine has, over a named set of
//! layers and sizes that hit every tail, plus random sizes (proptest), plus the separable golden
//! cases of `shared/golden`.

use conv_runtime::{conv_kernel, Activation, Isa, Layer, SeparableParams};
use conv_tests::{
    assert_close, assert_parts_match, random_vec, separable_cases, separable_reference,
    SeparableWeights,
};
use proptest::prelude::*;

// The golden cases (depthwise with bias, pointwise with bias, no activation).
#[conv_kernel(in = 8, out = 16, k = 3, pad = 1, separable)]
pub struct Sep8x16;
#[conv_kernel(in = 12, out = 20, k = 3, stride = 2, pad = 1, separable)]
pub struct Sep12x20S2;
#[conv_kernel(in = 32, out = 64, k = 3, pad = 1, separable)]
pub struct Sep32x64;
#[conv_kernel(in = 6, out = 4, k = 5, pad = 2, separable)]
pub struct Sep6x4K5;

// MobileNetV2 (relu6 between, linear after) with odd channels and an output-channel tail;
// MobileNetV1 (relu, relu); stride 2 with clamps; no bias with a 5x5 dilated depthwise; a 1x1
// depthwise; a rectangular kernel with per-axis stride and padding; `groups` written out; more
// channels than one GEMM tile in both directions.
#[conv_kernel(in = 13, out = 5, k = 3, pad = 1, separable, dw_act = "relu6")]
pub struct SepV2Odd;
#[conv_kernel(
    in = 9,
    out = 11,
    k = 3,
    pad = 1,
    separable,
    dw_act = "relu",
    act = "relu"
)]
pub struct SepV1;
#[conv_kernel(in = 6, out = 7, k = 3, stride = 2, pad = 1, separable = true, dw_clamp = (-0.5, 0.5), clamp = (-1, 0.75))]
pub struct SepS2Clamp;
#[conv_kernel(
    in = 4,
    out = 6,
    k = 5,
    pad = 4,
    dilation = 2,
    bias = false,
    separable,
    act = "relu6"
)]
pub struct SepNoBiasD2;
#[conv_kernel(in = 5, out = 3, k = 1, separable, dw_act = "relu")]
pub struct SepK1;
#[conv_kernel(in = 3, out = 2, k = (3, 5), stride = (2, 1), pad = (1, 0, 2, 2), groups = 3, separable)]
pub struct SepRect;
#[conv_kernel(
    in = 40,
    out = 37,
    k = 3,
    pad = 1,
    separable,
    dw_act = "relu6",
    act = "relu"
)]
pub struct SepWide;
// A pointwise reduction long enough to run in cache blocks of input channels (`b..`) on both
// register classes (past L1 on 16 registers, past the L2 budget on 32), the activation applied
// after the last block only.
#[conv_kernel(
    in = 2304,
    out = 11,
    k = 3,
    pad = 1,
    separable,
    dw_act = "relu",
    act = "relu6"
)]
pub struct SepLongReduction;
// A pointwise stage that takes AMX tiles where the machine has them (`Isa::Amx`: 64 and more
// output and input channels, `tiles_where_the_machine_has_them` checks): whole pairs of 16-row
// tiles and a partial one (72 = 2 x 32 + 8), a reduction padded to whole 32-channel blocks
// (72 = 2 x 32 + 8).
#[conv_kernel(
    in = 72,
    out = 72,
    k = 3,
    pad = 1,
    separable,
    dw_act = "relu6",
    act = "relu"
)]
pub struct SepAmx;

// Enough output channels (at least 16 per depthwise tap) that a pass on small planes splits
// over threads by runs of pointwise tiles, each part repeating the depthwise stage: 150 = nine
// vectors of 16 and a tail.
#[conv_kernel(
    in = 10,
    out = 150,
    k = 3,
    pad = 1,
    separable,
    dw_act = "relu6",
    act = "relu"
)]
pub struct SepOutCut;

// A pointwise stage whose plane tails ride in the last pixel step's tiles (plan tag `q`: 32
// registers, 16-channel vectors of output channels, over 64 input channels).
#[conv_kernel(in = 80, out = 32, k = 3, pad = 1, separable, dw_act = "relu6")]
pub struct SepQ;

/// One declared separable layer with its weights.
struct Case {
    name: &'static str,
    params: SeparableParams,
    layer: Box<dyn Layer>,
    dw_weight: Vec<f32>,
    dw_bias: Option<Vec<f32>>,
    pw_weight: Vec<f32>,
    pw_bias: Option<Vec<f32>>,
}

impl Case {
    fn weights(&self) -> SeparableWeights<'_> {
        SeparableWeights {
            dw_weight: &self.dw_weight,
            dw_bias: self.dw_bias.as_deref(),
            pw_weight: &self.pw_weight,
            pw_bias: self.pw_bias.as_deref(),
        }
    }
}

macro_rules! cases {
    ($($t:ident),* $(,)?) => {
        vec![$({
            let p = $t::PARAMS;
            let (dw, pw) = (p.depthwise, p.pointwise);
            let dw_weight = random_vec(dw.weight_len(), 21);
            let dw_bias = dw.bias.then(|| random_vec(dw.out_channels, 22));
            let pw_weight = random_vec(pw.weight_len(), 23);
            let pw_bias = pw.bias.then(|| random_vec(pw.out_channels, 24));
            let layer = $t::new(&dw_weight, dw_bias.as_deref(), &pw_weight, pw_bias.as_deref())
                .expect(stringify!($t));
            Case {
                name: stringify!($t),
                params: p,
                layer: Box::new(layer),
                dw_weight,
                dw_bias,
                pw_weight,
                pw_bias,
            }
        }),*]
    };
}

fn all_cases() -> Vec<Case> {
    cases![
        Sep8x16,
        Sep12x20S2,
        Sep32x64,
        Sep6x4K5,
        SepV2Odd,
        SepV1,
        SepS2Clamp,
        SepNoBiasD2,
        SepK1,
        SepRect,
        SepWide,
        SepLongReduction,
        SepAmx,
        SepOutCut,
        SepQ,
    ]
}

/// Runs `case` on every available ISA on `input` and compares with the reference.
fn check_input(case: &Case, input: &[f32], n: usize, h: usize, w: usize) {
    let p = &case.params;
    let Ok((ho, wo)) = p.output_hw(h, w) else {
        for isa in Isa::available() {
            let mut out = vec![0.0; 1];
            let err = case.layer.forward_on(isa, input, n, h, w, &mut out);
            assert!(err.is_err(), "{}: {h}x{w} must be rejected", case.name);
        }
        return;
    };
    let (want, tol) = separable_reference(p, input, n, h, w, &case.weights()).unwrap();
    let dims = [n, p.out_channels(), ho, wo];
    for isa in Isa::available() {
        let mut out = vec![f32::NAN; dims.iter().product()];
        case.layer
            .forward_on(isa, input, n, h, w, &mut out)
            .unwrap_or_else(|e| panic!("{} on {isa}: {e}", case.name));
        let what = format!(
            "{} ({}) on {isa}, n={n} h={h} w={w}",
            case.name,
            case.layer.kernel_name()
        );
        assert_close(&what, &out, &want, &tol, dims);
        assert_parts_match(
            &what,
            &*case.layer,
            isa,
            input,
            n,
            h,
            w,
            &out,
            &want,
            &tol,
            dims,
        );
    }
}

/// Random input scaled by 8 (exact in `f32`), so that every clamp bound, 6 included, is hit.
fn check(case: &Case, n: usize, h: usize, w: usize, seed: u64) {
    let mut input = random_vec(n * case.params.in_channels() * h * w, seed);
    input.iter_mut().for_each(|v| *v *= 8.0);
    check_input(case, &input, n, h, w);
}

/// Sizes that hit every tail: planes smaller than the kernel, one under / at / over vectors of 4,
/// 8 and 16 lanes, output rows that are not a multiple of the row tile, a batch of 3.
const SIZES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 2, 3),
    (2, 5, 7),
    (1, 4, 15),
    (1, 6, 16),
    (1, 9, 17),
    (3, 9, 8),
    (1, 11, 31),
    (2, 13, 33),
    (1, 23, 5),
    (1, 37, 41),
];

/// `SepAmx`'s pointwise stage takes AMX tiles on a machine that has AMX, so the tests run the
/// tile path (a gate moved past it would silently test the AVX-512 body twice).
#[test]
fn tiles_where_the_machine_has_them() {
    if !Isa::Amx.is_available() {
        return;
    }
    let (dw, pw) = (SepAmx::PARAMS.depthwise, SepAmx::PARAMS.pointwise);
    let dw_bias = dw.bias.then(|| random_vec(dw.out_channels, 2));
    let pw_bias = pw.bias.then(|| random_vec(pw.out_channels, 4));
    let layer = SepAmx::new(
        &random_vec(dw.weight_len(), 1),
        dw_bias.as_deref(),
        &random_vec(pw.weight_len(), 3),
        pw_bias.as_deref(),
    )
    .unwrap();
    assert!(layer.pw_amx.is_some());
}

/// `SepQ` on planes whose last pixel step of 48 leaves one or two pixels (7 x 7, 5 x 10, 7 x 14
/// after two steps, a batch of 2), which its pointwise stage computes in that step's tiles.
#[test]
fn plane_tails_in_the_last_step_match_reference() {
    let case = all_cases().into_iter().find(|c| c.name == "SepQ").unwrap();
    let name = case.layer.kernel_name();
    assert!(name.contains("t8v3q"), "{name}");
    for (i, &(n, h, w)) in [(2, 7, 7), (1, 5, 10), (1, 7, 14)].iter().enumerate() {
        check(&case, n, h, w, 700 + i as u64);
    }
}

#[test]
fn every_separable_layer_matches_reference_on_every_isa_and_tail() {
    for case in all_cases() {
        for (i, &(n, h, w)) in SIZES.iter().enumerate() {
            check(&case, n, h, w, 300 + i as u64);
        }
    }
}

#[test]
fn set_has_blocked_reductions() {
    let case = &all_cases()[11];
    let name = case.layer.kernel_name();
    for class in ["/r32.", "/r16."] {
        let plan = name.split(class).nth(1).unwrap_or_default();
        let gemm = plan.split('+').nth(1).unwrap_or_default();
        assert!(gemm.contains('b'), "{name}: no blocked GEMM on {class}");
    }
}

#[test]
fn large_planes_take_several_steps_of_rows() {
    // 40 channels x 200 columns x 4 bytes = 32 KiB per output row: the fused kernel computes
    // the plane in several steps of rows, with a short last step.
    let case = &all_cases()[10];
    assert_eq!(case.name, "SepWide");
    check(case, 1, 61, 200, 7);
}

#[test]
fn nan_in_nan_out_through_both_stages() {
    // A NaN input poisons the depthwise outputs whose window holds it, then every pointwise
    // output at those pixels, whatever the activations: relu, relu6 and clamp keep NaN. The
    // reference gives NaN at exactly those elements; `assert_close` requires NaN there and a
    // number everywhere else.
    for case in all_cases() {
        let (n, h, w) = (1, 9, 19);
        let mut input = random_vec(case.params.in_channels() * h * w, 5);
        for at in [0, 7 * w + 11, input.len() - 1] {
            input[at] = f32::NAN;
        }
        input[3 * w + 2] = f32::INFINITY;
        check_input(&case, &input, n, h, w);
    }
}

#[test]
fn golden_separable_cases() {
    let golden = separable_cases();
    assert_eq!(
        golden.len(),
        4,
        "a new separable golden case needs a layer here"
    );
    let cases = all_cases();
    for g in &golden {
        let name = match g.name.as_str() {
            "sep_8_16_k3" => "Sep8x16",
            "sep_12_20_k3_s2" => "Sep12x20S2",
            "sep_32_64_k3" => "Sep32x64",
            "sep_6_4_k5" => "Sep6x4K5",
            other => panic!("no declared layer for golden case {other}"),
        };
        let case = cases.iter().find(|c| c.name == name).unwrap();
        assert_eq!(
            case.params.depthwise, g.dw_params,
            "{name}: depthwise params"
        );
        assert_eq!(
            case.params.pointwise, g.pw_params,
            "{name}: pointwise params"
        );
        assert_eq!(case.params.dw_activation, Activation::None);
        assert_eq!(case.params.activation, Activation::None);
        macro_rules! build {
            ($($t:ident),*) => {
                match name {
                    $(stringify!($t) => Box::new(
                        $t::new(&g.dw_weight, Some(&g.dw_bias), &g.pw_weight, Some(&g.pw_bias))
                            .unwrap(),
                    ) as Box<dyn Layer>,)*
                    other => panic!("{other} is not a golden layer"),
                }
            };
        }
        let layer = build!(Sep8x16, Sep12x20S2, Sep32x64, Sep6x4K5);
        let dims = g.out_dims();
        for isa in Isa::available() {
            let mut out = vec![f32::NAN; dims.iter().product()];
            layer
                .forward_on(isa, &g.input, g.n, g.h, g.w, &mut out)
                .unwrap();
            let what = format!("golden {} ({}) on {isa}", g.name, layer.kernel_name());
            assert_close(&what, &out, &g.output_f64, &g.tol, dims);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_sizes_match_reference(
        which in 0usize..13,
        n in 1usize..=3,
        h in 1usize..=24,
        w in 1usize..=40,
        seed in any::<u64>(),
    ) {
        let cases = all_cases();
        check(&cases[which % cases.len()], n, h, w, seed);
    }
}
