//! Generated kernels against the naive reference, on every ISA this machine has, over a named
//! set of layers and input sizes that hit every tail, plus random sizes (proptest).
//!
//! The answer is always the f64 reference (`reference::conv2d_f64`, then the declared activation
//! in f64), and the tolerance is the
//! golden one (`reference::tolerance`): a rigorous f32 rounding bound, far below one wrong tap.

use conv_runtime::{conv_kernel, Activation, Conv2dLayer, Isa};
use conv_tests::{assert_close, assert_parts_match, random_vec, reference_activated};
use proptest::prelude::*;

// Depthwise: odd channels, 3x3 s1 p1 (the MobileNet case), one channel (every index a
// multiple of one: CI's clippy sees the generated code for it), stride 2, dilation, 5x5,
// multiplier, asymmetric "same" padding of an even kernel, 1x1 depthwise, a large kernel, no
// bias.
#[conv_kernel(in = 7, out = 7, k = 3, groups = 7, pad = 1)]
pub struct Dw7;
#[conv_kernel(in = 1, out = 1, k = 3, groups = 1, pad = 1)]
pub struct Dw1;
#[conv_kernel(in = 5, out = 5, k = 3, groups = 5, stride = 2, pad = 1)]
pub struct Dw5S2;
// Channel pairs (`dw_pairs`) on narrow planes with a clamp, the last tile of 4 channels short.
#[conv_kernel(in = 9, out = 9, k = 3, groups = 9, stride = 2, pad = 1, clamp = (-0.5, 0.75))]
pub struct Dw9S2Clamp;
// Channel pairs with 5x5 taps at stride 2 and an odd channel count.
#[conv_kernel(in = 7, out = 7, k = 5, groups = 7, stride = 2, pad = 2, act = "relu6")]
pub struct Dw7K5S2Relu6;
#[conv_kernel(in = 3, out = 3, k = 3, groups = 3, stride = 3, pad = (0, 2))]
pub struct Dw3S3;
#[conv_kernel(in = 4, out = 4, k = 3, groups = 4, pad = 2, dilation = 2)]
pub struct Dw4D2;
#[conv_kernel(in = 6, out = 6, k = 5, groups = 6, pad = 2)]
pub struct Dw6K5;
#[conv_kernel(in = 3, out = 6, k = 3, groups = 3, pad = 1)]
pub struct DwMult2;
#[conv_kernel(in = 2, out = 6, k = 3, groups = 2, stride = 2, pad = (1, 0, 2, 1))]
pub struct DwMult3S2Asym;
#[conv_kernel(in = 3, out = 3, k = 4, groups = 3, pad = "same")]
pub struct DwK4Same;
#[conv_kernel(in = 5, out = 5, k = 1, groups = 5, stride = 2)]
pub struct DwK1S2;
#[conv_kernel(in = 2, out = 2, k = 11, groups = 2, pad = 5)]
pub struct DwK11;
#[conv_kernel(in = 3, out = 3, k = (3, 5), groups = 3, pad = (1, 2), bias = false)]
pub struct DwRectNoBias;
// Stride 2 read in place with taps beyond the row pair on each side: 2 and 3 columns right of
// it (the even and odd `hi` shifts), 2 and 1 columns left of it (the `lo` shifts).
#[conv_kernel(in = 5, out = 5, k = 4, groups = 5, stride = 2, pad = (1, 2, 0, 3))]
pub struct DwK4S2Right;
#[conv_kernel(in = 3, out = 3, k = 4, groups = 3, stride = 2, pad = (2, 1, 2, 1))]
pub struct DwK4S2Left;
// Small enough to read in place on 16 registers too (AVX2, scalar: the lane shift in of one
// neighbour column).
#[conv_kernel(in = 5, out = 5, k = 2, groups = 5, stride = 2, pad = 1)]
pub struct DwK2S2;
// More taps than the plan unrolls (29 x 29 = 841): runtime loops over taps, stride 2.
#[conv_kernel(in = 2, out = 2, k = 29, groups = 2, stride = 2, pad = 14)]
pub struct DwK29S2;

// Grouped and dense direct: ResNeXt-like 4 channels per group, groups 2 with stride 2, dense
// with odd channels, rectangular with stride/dilation per axis, a large kernel (tile-only loops),
// 1x1 with stride or padding (direct, not GEMM).
#[conv_kernel(in = 16, out = 16, k = 3, groups = 4, pad = 1)]
pub struct G4;
#[conv_kernel(in = 6, out = 10, k = 3, groups = 2, stride = 2, pad = 1)]
pub struct G2S2;
#[conv_kernel(in = 5, out = 7, k = 3, pad = 1)]
pub struct Dense5x7;
// Winograd F(2x2, 3x3) with lanes over tiles (3x3, stride 1; from 16 channels per group on 16
// registers; direct tiles on 32, with lanes over channels on narrow planes): 16 per group, odd counts (17) with no padding on the left and
// uneven padding, dense (24 in, 28 out) with 2 on the left and an activation.
#[conv_kernel(in = 32, out = 32, k = 3, groups = 2, pad = 1)]
pub struct G2W16;
#[conv_kernel(in = 34, out = 34, k = 3, groups = 2, pad = (0, 1, 0, 2))]
pub struct G2W17Pad;
#[conv_kernel(in = 24, out = 28, k = 3, pad = (2, 0, 2, 1), act = "relu6")]
pub struct DenseW24x28Relu6;
// Winograd with lanes over channels (32 registers, whole vectors of channels with
// `ci co >= 12 (ci + co)`): 32 per group, and 32 in x 48 out (a product tile of two output
// vectors and one) with no padding on the left, uneven padding and a clamp; dense with 2 on the
// left.
#[conv_kernel(in = 64, out = 64, k = 3, groups = 2, pad = 1)]
pub struct G2Wc32;
#[conv_kernel(in = 64, out = 96, k = 3, groups = 2, pad = (0, 2, 0, 1), clamp = (-0.5, 0.75))]
pub struct G2Wc32x48Clamp;
#[conv_kernel(in = 32, out = 32, k = 3, pad = (1, 2, 2, 0), act = "relu")]
pub struct DenseWc32Relu;
#[conv_kernel(in = 4, out = 6, k = (3, 5), groups = 2, stride = (1, 2), pad = (1, 3, 0, 2), dilation = (2, 1))]
pub struct GRect;
#[conv_kernel(in = 4, out = 4, k = 9, groups = 2, pad = 4, bias = false)]
pub struct G2K9;
#[conv_kernel(in = 48, out = 8, k = 5, pad = 2)]
pub struct Dense48K5;
#[conv_kernel(in = 6, out = 9, k = 1, stride = 2)]
pub struct Pw1x1S2;
// Strided 1x1 layers gather their pixels into blocks for the GEMM: per-axis strides, groups,
// and enough input channels that a plane takes several blocks (`__private::gather_pixels`).
#[conv_kernel(in = 10, out = 22, k = 1, groups = 2, stride = (3, 2), act = "relu")]
pub struct Pw1x1G2S3x2;
#[conv_kernel(in = 2304, out = 20, k = 1, stride = 2)]
pub struct Pw1x1S2Long;
// Grouped layers at a stride run as a GEMM over gathered pixels (`plan::gathers`, plan tag
// `g`): 3x3 stride 2 with padding; per-axis strides with dilation and two groups (stride 1
// along W copies runs); stride 3 (float by float).
#[conv_kernel(in = 8, out = 130, k = 3, stride = 2, pad = 1, act = "relu")]
pub struct DenseS2Gathered;
#[conv_kernel(in = 16, out = 256, k = (3, 5), groups = 2, stride = (2, 1), pad = (1, 2), dilation = (1, 2))]
pub struct G2S2x1D2Gathered;
#[conv_kernel(in = 12, out = 129, k = 3, stride = 3, pad = (2, 1, 0, 1))]
pub struct DenseS3Gathered;
// Rows read in place at stride 2 (no padding).
#[conv_kernel(in = 4, out = 4, k = 3, groups = 2, stride = 2, pad = 1)]
pub struct G2K3S2InPlace;
// Flat tiles (stride 1, rows as wide as the input's): a large kernel, and padding that makes the
// output taller than the input (rows of pixels whose taps read only padding above, dilated).
#[conv_kernel(in = 4, out = 16, k = 9, groups = 2, pad = 4)]
pub struct G2K9Flat;
#[conv_kernel(in = 6, out = 12, k = 3, groups = 2, pad = (4, 1, 2, 2), dilation = 2)]
pub struct G2FlatTall;
#[conv_kernel(in = 3, out = 4, k = 1, pad = 1)]
pub struct Pw1x1Pad;

// Pointwise GEMM: output channels with a tail tile, grouped (ShuffleNet), long reduction.
#[conv_kernel(in = 8, out = 13, k = 1)]
pub struct Pw8x13;
#[conv_kernel(in = 12, out = 6, k = 1, groups = 3)]
pub struct PwG3;
#[conv_kernel(in = 67, out = 9, k = 1, bias = false)]
pub struct Pw67;
// Groups of 68 output channels: the channel-vector tail's weight columns in two blocks of
// `COL_BLOCK`, the second one partial (16 of 64 channels after the padding to 80).
#[conv_kernel(in = 20, out = 136, k = 1, groups = 2)]
pub struct PwG2x68;
// A reduction long enough to run in cache blocks of input channels on both register classes
// (`b..`: past L1 on 16 registers, past the L2 budget on 32), with an output-channel tail tile
// and an activation applied after the last block only.
#[conv_kernel(in = 2304, out = 11, k = 1, act = "relu6")]
pub struct Pw2304x11Relu6;
// Enough output channels that parts of one image may take runs of them (`Axis::OutChannels`:
// on small planes), with a tail tile on every register class, with and without blocks of input
// channels.
#[conv_kernel(in = 24, out = 70, k = 1, act = "relu")]
pub struct Pw24x70Relu;
#[conv_kernel(in = 2304, out = 40, k = 1)]
pub struct Pw2304x40;
// Layers that take AMX tiles where the machine has them (`Isa::Amx`: 64 and more channels in
// and out per group, `tiles_where_the_machine_has_them` checks): whole pairs of 16-row tiles and
// a partial one (80 = 2 x 32 + 16); a reduction padded to whole 32-channel blocks (70 per
// group), two groups and an activation applied lane by lane; a pair with one row (65 = 2 x 32
// + 1) and no bias; enough output channels that 2-thread passes of one image are cut by them
// on tiles whatever the plane (200 = 6 x 32 + 8, `amx::cut_by_pixels`).
#[conv_kernel(in = 64, out = 80, k = 1)]
pub struct PwAmx64x80;
#[conv_kernel(in = 96, out = 200, k = 1)]
pub struct PwAmx96x200;
#[conv_kernel(in = 140, out = 144, k = 1, groups = 2, act = "relu6")]
pub struct PwAmxG2Relu6;
#[conv_kernel(in = 66, out = 65, k = 1, bias = false)]
pub struct PwAmx66x65;
// Plane tails computed inside the last pixel step's tiles (plan tag `q`: 32 registers, whole
// 16-channel vectors of output channels per group, panels read from L2): one group with an
// activation, two groups without bias (see `plane_tails_in_the_last_step_match_reference`).
#[conv_kernel(in = 80, out = 48, k = 1, act = "relu6")]
pub struct PwQ80x48Relu6;
#[conv_kernel(in = 144, out = 64, k = 1, groups = 2, bias = false)]
pub struct PwQG2;

// Fused activations on every family and body layout: depthwise relu6 (hoisted weights),
// grouped clamp, dense strided relu6, pointwise relu (GEMM), a large kernel with relu (loops).
#[conv_kernel(in = 7, out = 7, k = 3, groups = 7, pad = 1, act = "relu6")]
pub struct Dw7Relu6;
#[conv_kernel(in = 16, out = 16, k = 3, groups = 4, pad = 1, clamp = (-0.25, 0.5))]
pub struct G4Clamp;
#[conv_kernel(in = 5, out = 7, k = 3, stride = 2, act = "ReLU6")]
pub struct Dense5x7S2Relu6;
#[conv_kernel(in = 8, out = 13, k = 1, act = "relu")]
pub struct Pw8x13Relu;
#[conv_kernel(in = 67, out = 9, k = 1, bias = false, clamp = (-3, 2.5))]
pub struct Pw67Clamp;
#[conv_kernel(
    in = 2,
    out = 2,
    k = 29,
    groups = 2,
    stride = 2,
    pad = 14,
    act = "relu"
)]
pub struct DwK29S2Relu;

/// One declared layer with its weights and the activation it was declared with, ready to run.
struct Case {
    name: &'static str,
    layer: Box<dyn Conv2dLayer>,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    act: Activation,
}

macro_rules! cases {
    ($($t:ident $(=> $act:expr)?),* $(,)?) => {
        vec![$({
            let p = $t::PARAMS;
            let weight = random_vec(p.weight_len(), 11);
            let bias = p.bias.then(|| random_vec(p.out_channels, 12));
            let layer = $t::new(&weight, bias.as_deref()).expect(stringify!($t));
            #[allow(unused_mut, unused_assignments)]
            let mut act = Activation::None;
            $(act = $act;)?
            Case { name: stringify!($t), layer: Box::new(layer), weight, bias, act }
        }),*]
    };
}

fn all_cases() -> Vec<Case> {
    cases![
        Dw7,
        Dw1,
        Dw5S2,
        DwK4S2Right,
        DwK4S2Left,
        DwK2S2,
        Dw3S3,
        Dw4D2,
        Dw6K5,
        DwMult2,
        DwMult3S2Asym,
        DwK4Same,
        DwK1S2,
        DwK11,
        DwRectNoBias,
        DwK29S2,
        G4,
        G2S2,
        Dense5x7,
        G2W16,
        G2W17Pad,
        DenseW24x28Relu6 => Activation::Relu6,
        G2Wc32,
        G2Wc32x48Clamp => Activation::Clamp { min: -0.5, max: 0.75 },
        DenseWc32Relu => Activation::Relu,
        GRect,
        G2K9,
        G2K9Flat,
        G2FlatTall,
        Dense48K5,
        Pw1x1S2,
        Pw1x1G2S3x2 => Activation::Relu,
        Pw1x1S2Long,
        G2K3S2InPlace,
        DenseS2Gathered => Activation::Relu,
        G2S2x1D2Gathered,
        DenseS3Gathered,
        Pw1x1Pad,
        Pw8x13,
        PwG3,
        Pw67,
        PwG2x68,
        Dw7Relu6 => Activation::Relu6,
        G4Clamp => Activation::Clamp { min: -0.25, max: 0.5 },
        Dense5x7S2Relu6 => Activation::Relu6,
        Pw8x13Relu => Activation::Relu,
        Pw67Clamp => Activation::Clamp { min: -3.0, max: 2.5 },
        Pw2304x11Relu6 => Activation::Relu6,
        Pw24x70Relu => Activation::Relu,
        Pw2304x40,
        PwAmx64x80,
        PwAmx96x200,
        PwAmxG2Relu6 => Activation::Relu6,
        PwAmx66x65,
        PwQ80x48Relu6 => Activation::Relu6,
        PwQG2,
        DwK29S2Relu => Activation::Relu,
        Dw9S2Clamp => Activation::Clamp { min: -0.5, max: 0.75 },
        Dw7K5S2Relu6 => Activation::Relu6,
    ]
}

/// Runs `case` on every available ISA for one input size and compares with the reference.
/// Sizes the layer rejects must be rejected by the reference too, with the same error.
/// Activated layers get inputs scaled by 8 (exact in `f32`), so every clamp bound is hit.
fn check(case: &Case, n: usize, h: usize, w: usize, seed: u64) {
    let p = case.layer.params();
    assert_eq!(
        case.layer.activation(),
        case.act,
        "{}: declared activation",
        case.name
    );
    let mut input = random_vec(n * p.in_channels * h * w, seed);
    if case.act != Activation::None {
        input.iter_mut().for_each(|v| *v *= 8.0);
    }
    let bias = case.bias.as_deref();
    let want = reference_activated(&p, case.act, &input, n, h, w, &case.weight, bias);
    let Ok((ho, wo)) = p.output_hw(h, w) else {
        for isa in Isa::available() {
            let mut out = vec![0.0; 1];
            let err = case.layer.forward_on(isa, &input, n, h, w, &mut out);
            assert!(
                err.is_err() && want.is_err(),
                "{}: {h}x{w} must be rejected",
                case.name
            );
        }
        return;
    };
    let (want, tol) = want.unwrap();
    let dims = [n, p.out_channels, ho, wo];
    for isa in Isa::available() {
        let mut out = vec![f32::NAN; dims.iter().product()];
        case.layer
            .forward_on(isa, &input, n, h, w, &mut out)
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
            &input,
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

/// Sizes that hit every tail: 1x1, one column (strided phases with no data), smaller than
/// the kernel, one under / at / over a vector of
/// 4, 8 and 16 lanes, a batch of 3, tall and wide (77: stride-2 rows read in place have a
/// column vector with input on both sides at 16 lanes; 33 and above: stride-1 rows read in place
/// have one).
const SIZES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 5, 1),
    (2, 3, 2),
    (1, 2, 3),
    (1, 3, 2),
    (2, 5, 7),
    (1, 4, 15),
    (1, 6, 16),
    (1, 7, 17),
    (3, 9, 8),
    (1, 11, 31),
    (2, 13, 33),
    (1, 23, 5),
    (1, 30, 41),
    (2, 7, 77),
];

#[test]
fn every_layer_matches_reference_on_every_isa_and_tail() {
    for case in all_cases() {
        for (i, &(n, h, w)) in SIZES.iter().enumerate() {
            check(&case, n, h, w, 100 + i as u64);
        }
    }
}

/// Planes whose last pixel step of 48 leaves one or two pixels (7 x 7 and 5 x 10 in one step,
/// 7 x 14 after two, 1 x 49 in a batch of 3; the gathered layer's 13 x 11 is a 7 x 7 output):
/// the `q` plans compute them inside that step's tiles on 16 lanes, and in 2, 3 and 5 parts
/// (`assert_parts_match`) both there and, for parts whose output channels are not whole
/// 16-channel vectors, as the channel-vector tail.
#[test]
fn plane_tails_in_the_last_step_match_reference() {
    let fused = ["PwQ80x48Relu6", "PwQG2", "G2S2x1D2Gathered"];
    let cases: Vec<Case> = all_cases()
        .into_iter()
        .filter(|c| fused.contains(&c.name))
        .collect();
    assert_eq!(cases.len(), fused.len());
    for case in &cases {
        // A plan change must not silently drop the path this test is for.
        let name = case.layer.kernel_name();
        assert!(name.contains("t8v3q/"), "{}: {name}", case.name);
        for (i, &(n, h, w)) in [(2, 7, 7), (1, 5, 10), (1, 7, 14), (3, 1, 49), (1, 13, 11)]
            .iter()
            .enumerate()
        {
            check(case, n, h, w, 500 + i as u64);
        }
    }
}

/// A dilated depthwise layer streams rows of any width while a pass's input and output fit in
/// `STREAM_WIDE_BYTES` (every size of `SIZES` does) and takes its row tiles past it: a 900 x 900
/// pass of `Dw4D2` (4 channels in and out, 25.9 MB) runs the row tiles.
#[test]
fn dilated_layer_past_the_stream_budget_matches_reference() {
    let case = all_cases()
        .into_iter()
        .find(|c| c.name == "Dw4D2")
        .expect("Dw4D2 is a case");
    let p = case.layer.params();
    let (ho, wo) = p.output_hw(900, 900).unwrap();
    let bytes = 4 * (p.in_channels * 900 * 900 + p.out_channels * ho * wo);
    assert!(bytes > conv_runtime::__private::STREAM_WIDE_BYTES);
    check(&case, 1, 900, 900, 7);
}

/// Inputs and outputs at every float offset from a 64-byte line, with plane sizes that are a
/// whole number of vectors (so that GEMM bodies first compute the pixels before the planes'
/// first vector boundary, `align_head`) and ones that are not: results must not depend on where
/// the caller's buffers start.
#[test]
fn every_buffer_alignment_matches_reference() {
    for case in all_cases() {
        let p = case.layer.params();
        // 16 x 16 and 4 x 32: whole vectors on every ISA; 5 x 13: never; 1 x 3: under a vector.
        for (i, &(n, h, w)) in [(1, 16, 16), (2, 4, 32), (1, 5, 13), (1, 1, 3)]
            .iter()
            .enumerate()
        {
            let Ok((ho, wo)) = p.output_hw(h, w) else {
                continue;
            };
            let input = random_vec(n * p.in_channels * h * w, 300 + i as u64);
            let bias = case.bias.as_deref();
            let (want, tol) =
                reference_activated(&p, case.act, &input, n, h, w, &case.weight, bias).unwrap();
            let dims = [n, p.out_channels, ho, wo];
            let out_len: usize = dims.iter().product();
            for isa in Isa::available() {
                for off in 0..16 {
                    // A line-aligned copy of the input shifted by `off` floats; the output
                    // shifted the other way.
                    let mut in_buf = vec![0.0f32; input.len() + 32];
                    let at = in_buf.as_ptr().align_offset(64) + off;
                    in_buf[at..at + input.len()].copy_from_slice(&input);
                    let mut out_buf = vec![f32::NAN; out_len + 32];
                    let ot = out_buf.as_ptr().align_offset(64) + (16 - off) % 16;
                    let out = &mut out_buf[ot..ot + out_len];
                    case.layer
                        .forward_on(isa, &in_buf[at..at + input.len()], n, h, w, out)
                        .unwrap();
                    let what = format!(
                        "{} on {isa}, n={n} h={h} w={w}, input {off} floats past a line",
                        case.name
                    );
                    assert_close(&what, out, &want, &tol, dims);
                }
            }
        }
    }
}

#[test]
fn set_covers_every_body_layout() {
    // Kernel names end with the plan of each register class; `c` marks a loop over input
    // channels, `k` loops over channels and taps, `i` rows read in place (at stride 1 and at
    // stride 2, different bodies), `fk` flat tiles (which loop over taps and channels). The set
    // must run all of them, not only unrolled tiles of a band.
    let names: Vec<&str> = all_cases().iter().map(|c| c.layer.kernel_name()).collect();
    for (mode, stride) in [
        ("c", ""),
        ("k", ""),
        ("i", "/s1/"),
        ("i", "/s2/"),
        ("fk", ""),
    ] {
        let plans = names
            .iter()
            .filter(|n| n.contains(stride))
            .flat_map(|n| n.split('/').filter(|p| p.starts_with('r')));
        let hit = plans.filter(|p| p.ends_with(mode)).count();
        assert!(
            hit > 0,
            "no layer with body layout `{mode}` {stride} in {names:#?}"
        );
    }
    // A layer with flat tiles for narrow planes beside its row tiles (`-t..`, where streaming
    // tiles cannot compute it), which the small sizes below take on AVX-512.
    assert!(
        names.iter().any(|n| n.contains("-t")),
        "no layer with a flat narrow-plane plan in {names:#?}"
    );
    // Grouped layers run as a GEMM over gathered pixels (`g..`) on both register classes.
    for class in ["/r32.", "/r16."] {
        assert!(
            names.iter().any(|n| n.starts_with("grouped")
                && n.split(class).nth(1).is_some_and(|p| p.starts_with('g'))),
            "no gathered grouped layer on {class} in {names:#?}"
        );
    }
    // Depthwise layers with streaming tiles for narrow planes beside their row tiles (`~s..`)
    // on both register classes, which the sizes up to two vectors wide take.
    for class in ["/r32.", "/r16."] {
        assert!(
            names.iter().any(|n| n.starts_with("depthwise")
                && n.split(class).nth(1).is_some_and(|p| p.contains("~s"))),
            "no depthwise layer streaming on {class} in {names:#?}"
        );
    }
    // Streaming plans with their first and last steps unrolled (`e`), at stride 1 and 2.
    for stride in ["/s1/", "/s2/"] {
        assert!(
            names.iter().any(|n| n.contains(stride)
                && n.split("~s").skip(1).any(|p| {
                    p.split(['/', '+', '-'])
                        .next()
                        .is_some_and(|p| p.ends_with('e'))
                })),
            "no streaming plan with unrolled ends {stride} in {names:#?}"
        );
    }
    // A stride-2 depthwise layer with streaming tiles.
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("depthwise") && n.contains("/s2/") && n.contains("~s")),
        "no stride-2 depthwise layer streaming in {names:#?}"
    );
    // A layer streaming on every plane (32 registers, row tiles that would broadcast every
    // weight from memory): its plan is the stream alone.
    assert!(
        names.iter().any(|n| n.contains("/r32.s")),
        "no layer streaming on every plane in {names:#?}"
    );
    // Winograd layers with lanes over tiles (`w..`, 16 registers) and over channels (`wc..`, 32).
    for class in ["/r16.w", "/r32.wc"] {
        assert!(
            names.iter().any(|n| n.contains(class)),
            "no Winograd layer on {class} in {names:#?}"
        );
    }
    // Direct tiles with Winograd over channels for narrow planes (`^wc..`, 32 registers; 16
    // channels per group, taken on planes up to about 18 wide on AVX-512: SIZES has both).
    assert!(
        names
            .iter()
            .any(|n| n.contains("/r32.") && n.contains("^wc")),
        "no direct layer with a Winograd plan for narrow planes in {names:#?}"
    );
    // GEMMs reducing in cache blocks of input channels (`b..`) on both register classes.
    for class in ["/r32.", "/r16."] {
        assert!(
            names.iter().any(|n| n.starts_with("pointwise")
                && n.split(class)
                    .nth(1)
                    .is_some_and(|p| p.split('/').next().is_some_and(|p| p.contains('b')))),
            "no blocked GEMM on {class} in {names:#?}"
        );
    }
    // Streams hoisting all of their weights (`h`) and some (`hN`).
    let streams = names.iter().flat_map(|n| n.split('~').skip(1));
    let partial = |p: &str| {
        p.split('h')
            .nth(1)
            .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
    };
    assert!(
        streams.clone().any(|p| p.contains('h') && !partial(p)),
        "no stream hoisting all weights"
    );
    assert!(
        streams.clone().any(partial),
        "no stream hoisting some weights"
    );
}

#[test]
fn machine_has_the_isas_we_test() {
    // Every ISA the CPU supports must be available, so the loops above ran its bodies: the
    // detection is checked against the standard library's. (The guide's machine has AVX-512;
    // some CI machines have AVX2 only, where the AVX-512 bodies cannot run.)
    let isas = Isa::available();
    assert!(isas.contains(&Isa::Scalar));
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let v3 = has!("avx2") && has!("fma") && has!("bmi1") && has!("bmi2") && has!("f16c");
        let v4 = v3
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl");
        assert_eq!(isas.contains(&Isa::Avx2), v3, "AVX2 detection: {isas:?}");
        assert_eq!(
            isas.contains(&Isa::Avx512),
            v4,
            "AVX-512 detection: {isas:?}"
        );
        if !v4 {
            eprintln!("note: this CPU has no AVX-512; the AVX-512 bodies were not run");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_sizes_match_reference(
        which in 0usize..64,
        n in 1usize..=3,
        h in 1usize..=20,
        w in 1usize..=40,
        seed in any::<u64>(),
    ) {
        let cases = all_cases();
        check(&cases[which % cases.len()], n, h, w, seed);
    }
}

/// The layers above meant for AMX tiles take them on a machine that has AMX, so the tests run
/// the tile path (a gate moved past a test layer would silently test the AVX-512 body twice),
/// and one under the gate (40 output channels) does not.
#[test]
fn tiles_where_the_machine_has_them() {
    if !Isa::Amx.is_available() {
        return;
    }
    let (w, b) = (
        |o: usize, i: usize| random_vec(o * i, 1),
        |o| random_vec(o, 2),
    );
    assert!(PwAmx64x80::new(&w(80, 64), Some(&b(80)))
        .unwrap()
        .amx
        .is_some());
    assert!(PwAmx96x200::new(&w(200, 96), Some(&b(200)))
        .unwrap()
        .amx
        .is_some());
    assert!(PwAmxG2Relu6::new(&w(144, 70), Some(&b(144)))
        .unwrap()
        .amx
        .is_some());
    assert!(PwAmx66x65::new(&w(65, 66), None).unwrap().amx.is_some());
    assert!(Pw2304x40::new(&w(40, 2304), Some(&b(40)))
        .unwrap()
        .amx
        .is_none());
}

/// Values a bf16 piece split cannot carry exactly (AMX tiles, `Isa::Amx`): infinities and NaN
/// (whose pieces are NaN) and magnitudes far below or above 1 (whose pieces and products would
/// be flushed as denormals or overflow), each only in a later 32-pixel chunk of one image of a
/// batch, so the first chunks run on tiles and the rest on the fallback. Every ISA must match
/// the reference, which also fixes where the output is NaN.
#[test]
fn values_tiles_cannot_split_match_reference() {
    let cases = all_cases();
    let (n, h, w) = (2, 9, 13);
    for case in cases
        .iter()
        .filter(|c| c.name.starts_with("PwAmx") || c.name == "Pw2304x40")
    {
        let p = case.layer.params();
        let plane = h * w;
        for (i, special) in [f32::NAN, f32::INFINITY, 2.0e-34, -2.0e-39, 7.0e25]
            .into_iter()
            .enumerate()
        {
            let mut input = random_vec(n * p.in_channels * plane, 40 + i as u64);
            // Image 1, channel 1, pixel 70 (chunk 2 of 4).
            input[(p.in_channels + 1) * plane + 70] = special;
            if special.is_finite() && special.abs() < 1.0 {
                // Tiny values in every channel of image 0 from pixel 100 (chunk 3): without
                // a bias, those outputs and their tolerance are tiny too.
                for c in 0..p.in_channels {
                    for v in &mut input[c * plane + 100..(c + 1) * plane] {
                        *v *= special;
                    }
                }
            }
            every_isa_matches_reference(case, &input, n, h, w, &format!("with {special:e}"));
        }
    }
}

/// Runs `case` on `input` on every available ISA, compares with the reference and returns the
/// reference.
fn every_isa_matches_reference(
    case: &Case,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    what: &str,
) -> Vec<f64> {
    let p = case.layer.params();
    let bias = case.bias.as_deref();
    let (want, tol) =
        reference_activated(&p, case.act, input, n, h, w, &case.weight, bias).unwrap();
    let (ho, wo) = p.output_hw(h, w).unwrap();
    let dims = [n, p.out_channels, ho, wo];
    for isa in Isa::available() {
        let mut out = vec![0.0; dims.iter().product()];
        case.layer
            .forward_on(isa, input, n, h, w, &mut out)
            .unwrap();
        let what = format!("{} {what} on {isa}", case.name);
        assert_close(&what, &out, &want, &tol, dims);
    }
    want
}

#[test]
fn nan_in_nan_out_with_every_activation() {
    // PyTorch's relu, relu6 and clamp return NaN for NaN; the fused epilogue must too. Inputs
    // with NaN and infinities: the reference (NaN wherever a window holds one, and inf * 0 = NaN
    // where an infinity meets a zero weight) fixes where the output must be NaN.
    for case in all_cases() {
        let p = case.layer.params();
        let (n, h, w) = (1, 9, 19);
        let mut input = random_vec(p.in_channels * h * w, 9);
        for at in [0, 4 * w + 9, input.len() - 1] {
            input[at] = f32::NAN;
        }
        input[2 * w + 3] = f32::INFINITY;
        input[6 * w + 15] = f32::NEG_INFINITY;
        let want = every_isa_matches_reference(&case, &input, n, h, w, "NaN");
        assert!(
            want.iter().any(|v| v.is_nan()),
            "{}: no NaN reached",
            case.name
        );
    }
}
