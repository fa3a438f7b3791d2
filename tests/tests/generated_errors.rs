//! Bad input on generated layers: every check returns the right `ConvError` variant with the right
//! numbers, never panics, and leaves the output untouched. Also the public helpers of a generated
//! layer (`output_hw`, `forward_vec`, `KERNEL_INFO`) against values worked out by hand.

use std::panic::{catch_unwind, AssertUnwindSafe};

use conv_runtime::{
    conv_kernel, reference, Conv2dLayer, ConvError, Isa, Layer, Result, TensorMut, TensorRef,
};
use conv_tests::{assert_close, random_vec};

// Depthwise 3x3 "same" (the MobileNet case), with bias.
#[conv_kernel(in = 4, out = 4, k = 3, groups = 4, pad = 1)]
pub struct Dw3;
// Grouped, stride 2, no padding, no bias.
#[conv_kernel(in = 4, out = 6, k = 3, groups = 2, stride = 2, bias = false)]
pub struct GNoBias;
// Pointwise GEMM.
#[conv_kernel(in = 8, out = 5, k = 1)]
pub struct Pw;
// Depthwise dilated: effective kernel 5, padding 2 + 2.
#[conv_kernel(in = 3, out = 3, k = 3, groups = 3, dilation = 2, pad = 2)]
pub struct DwDil;
// Rectangular, per-axis stride / padding / dilation.
#[conv_kernel(in = 2, out = 4, k = (3, 5), stride = (2, 3), pad = (1, 2), dilation = (1, 2))]
pub struct Rect;

/// What the output is filled with before a call that must fail; compared bit for bit after.
const SENTINEL: f32 = -1234.5;

fn dw3() -> Dw3 {
    Dw3::new(&random_vec(36, 1), Some(&random_vec(4, 2))).unwrap()
}

fn gnobias() -> GNoBias {
    GNoBias::new(&random_vec(GNoBias::PARAMS.weight_len(), 3), None).unwrap()
}

/// Runs `f`, failing the test with `what` if it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("{what}: panicked instead of returning an error: {msg}")
    })
}

/// Calls `layer.forward_on` on every available ISA, then the inherent `forward` (best ISA), with an
/// output of `out_len` sentinels; each call must return `want` and leave the output untouched.
fn expect_forward_err(
    what: &str,
    layer: &dyn Conv2dLayer,
    input: &[f32],
    (n, h, w): (usize, usize, usize),
    out_len: usize,
    want: &ConvError,
) {
    let mut calls: Vec<(String, Option<Isa>)> = Isa::available()
        .into_iter()
        .map(|isa| (format!("{what} on {isa}"), Some(isa)))
        .collect();
    calls.push((format!("{what} via forward"), None));
    for (label, isa) in calls {
        let mut out = vec![SENTINEL; out_len];
        let got = no_panic(&label, || match isa {
            Some(isa) => layer.forward_on(isa, input, n, h, w, &mut out),
            None => layer.forward(input, n, h, w, &mut out),
        });
        assert_eq!(got.as_ref(), Err(want), "{label}");
        assert!(
            out.iter().all(|v| v.to_bits() == SENTINEL.to_bits()),
            "{label}: output was written although the call failed"
        );
    }
}

#[test]
fn wrong_input_length() {
    // Dw3 on 1 x 4 x 5 x 6: input 4 * 5 * 6 = 120, output 4 * 5 * 6 = 120.
    let l = dw3();
    for len in [0, 119, 121] {
        let want = ConvError::SliceLength {
            what: "input",
            expected: 120,
            actual: len,
        };
        expect_forward_err("input", &l, &vec![0.5; len], (1, 5, 6), 120, &want);
    }
    // The inherent methods check the same way.
    let mut out = vec![SENTINEL; 120];
    let got = no_panic("inherent forward", || {
        l.forward(&[0.5; 119], 1, 5, 6, &mut out)
    });
    let want = ConvError::SliceLength {
        what: "input",
        expected: 120,
        actual: 119,
    };
    assert_eq!(got.as_ref(), Err(&want));
    for isa in Isa::available() {
        let got = no_panic("inherent forward_on", || {
            l.forward_on(isa, &[0.5; 119], 1, 5, 6, &mut out)
        });
        assert_eq!(got.as_ref(), Err(&want), "{isa}");
    }
    assert_eq!(l.forward_vec(&[0.5; 119], 1, 5, 6), Err(want));
    assert!(out.iter().all(|v| v.to_bits() == SENTINEL.to_bits()));
    // GNoBias on 2 x 4 x 9 x 10: input 2 * 4 * 9 * 10 = 720; output 2 x 6 x 4 x 4 = 192.
    let want = ConvError::SliceLength {
        what: "input",
        expected: 720,
        actual: 360,
    };
    expect_forward_err(
        "grouped input",
        &gnobias(),
        &[0.5; 360],
        (2, 9, 10),
        192,
        &want,
    );
}

#[test]
fn wrong_output_length() {
    let l = dw3();
    let input = random_vec(120, 5);
    for len in [0, 119, 121] {
        let want = ConvError::SliceLength {
            what: "output",
            expected: 120,
            actual: len,
        };
        expect_forward_err("output", &l, &input, (1, 5, 6), len, &want);
    }
    // Pw on 3 x 8 x 2 x 7: output 3 * 5 * 2 * 7 = 210.
    let pw = Pw::new(&random_vec(40, 6), Some(&random_vec(5, 7))).unwrap();
    let want = ConvError::SliceLength {
        what: "output",
        expected: 210,
        actual: 209,
    };
    expect_forward_err(
        "pointwise output",
        &pw,
        &random_vec(3 * 8 * 14, 8),
        (3, 2, 7),
        209,
        &want,
    );
}

#[test]
fn new_checks_weight_and_bias() {
    let bias4 = [0.25f32; 4];
    // Weight (4, 1, 3, 3) = 36 values.
    for len in [0, 35, 37, 72] {
        let got = no_panic("Dw3::new", || Dw3::new(&vec![0.5; len], Some(&bias4)));
        assert_eq!(
            got.err(),
            Some(ConvError::SliceLength {
                what: "weight",
                expected: 36,
                actual: len,
            }),
            "weight of {len}"
        );
    }
    let w36 = [0.5f32; 36];
    assert_eq!(
        no_panic("Dw3 without bias", || Dw3::new(&w36, None)).err(),
        Some(ConvError::BiasMismatch { expects_bias: true })
    );
    for len in [0, 3, 5] {
        let got = no_panic("Dw3 bias length", || Dw3::new(&w36, Some(&vec![0.0; len])));
        assert_eq!(
            got.err(),
            Some(ConvError::SliceLength {
                what: "bias",
                expected: 4,
                actual: len,
            }),
            "bias of {len}"
        );
    }
    // GNoBias: weight (6, 2, 3, 3) = 108 values, declared `bias = false`.
    let w108 = [0.5f32; 108];
    assert!(GNoBias::new(&w108, None).is_ok());
    assert_eq!(
        no_panic("GNoBias with bias", || GNoBias::new(&w108, Some(&[0.0; 6]))).err(),
        Some(ConvError::BiasMismatch {
            expects_bias: false
        })
    );
    assert_eq!(
        GNoBias::new(&w108[..107], None).err(),
        Some(ConvError::SliceLength {
            what: "weight",
            expected: 108,
            actual: 107,
        })
    );
}

#[test]
fn input_too_small() {
    // Dw3: kernel 3, padding 1 + 1, so any h, w >= 1 is enough; h = 0 or w = 0 is not.
    let l = dw3();
    let too_small = |h, w, min_h, min_w| ConvError::InputTooSmall { h, w, min_h, min_w };
    expect_forward_err("Dw3 h=0", &l, &[], (1, 0, 6), 0, &too_small(0, 6, 1, 1));
    expect_forward_err("Dw3 w=0", &l, &[], (1, 5, 0), 0, &too_small(5, 0, 1, 1));
    expect_forward_err("Dw3 0x0", &l, &[], (1, 0, 0), 0, &too_small(0, 0, 1, 1));
    assert_eq!(Dw3::output_hw(0, 6), Err(too_small(0, 6, 1, 1)));

    // GNoBias: kernel 3, no padding: h or w below 3 is rejected, 3 is fine.
    let g = gnobias();
    expect_forward_err(
        "GNoBias 2x9",
        &g,
        &[0.5; 4 * 2 * 9],
        (1, 2, 9),
        6,
        &too_small(2, 9, 3, 3),
    );
    expect_forward_err(
        "GNoBias 9x1",
        &g,
        &[0.5; 4 * 9],
        (1, 9, 1),
        6,
        &too_small(9, 1, 3, 3),
    );
    assert_eq!(GNoBias::output_hw(3, 3), Ok((1, 1)));

    // DwDil: dilated kernel 2 * (3 - 1) + 1 = 5 with padding 2 + 2: h = 1 is enough (one output
    // row, all from padding around one input row), h = 0 is not (PyTorch rejects empty planes).
    let d = DwDil::new(&random_vec(27, 9), Some(&[0.0; 3])).unwrap();
    assert_eq!(DwDil::output_hw(1, 1), Ok((1, 1)));
    expect_forward_err("DwDil 0x4", &d, &[], (1, 0, 4), 0, &too_small(0, 4, 1, 1));

    // Rect: width kernel 2 * (5 - 1) + 1 = 9 with padding 2 + 2 needs w >= 5.
    let r = Rect::new(&random_vec(Rect::PARAMS.weight_len(), 10), Some(&[0.0; 4])).unwrap();
    expect_forward_err(
        "Rect 1x4",
        &r,
        &[0.5; 2 * 4],
        (1, 1, 4),
        4,
        &too_small(1, 4, 1, 5),
    );
    assert_eq!(Rect::output_hw(1, 5), Ok((1, 1)));
}

#[test]
fn sizes_that_overflow() {
    let l = dw3();
    // n * 4 * 5 * 6 overflows usize.
    expect_forward_err(
        "huge n",
        &l,
        &[0.5; 120],
        (usize::MAX / 2, 5, 6),
        120,
        &ConvError::Overflow,
    );
    // h + 2 * pad overflows before any product.
    expect_forward_err(
        "huge h",
        &l,
        &[0.5; 120],
        (1, usize::MAX, 6),
        120,
        &ConvError::Overflow,
    );
    assert_eq!(Dw3::output_hw(usize::MAX, 6), Err(ConvError::Overflow));
    assert_eq!(
        no_panic("forward_vec huge n", || l.forward_vec(
            &[0.5; 120],
            usize::MAX / 2,
            5,
            6
        )),
        Err(ConvError::Overflow)
    );
    // FLOPs saturate instead of overflowing.
    assert_eq!(Dw3::flops(usize::MAX, 5, 6), u64::MAX);
}

#[test]
fn forward_vec_with_wrong_input_does_not_allocate_the_output_first() {
    // n * 120 fits in usize, but an output of that many floats cannot be allocated. The input is
    // wrong, so the call must return the input error (as `forward` does), not try to allocate.
    let l = dw3();
    let n = usize::MAX / 120;
    let got = no_panic("forward_vec huge n, short input", || {
        l.forward_vec(&[0.5; 120], n, 5, 6)
    });
    assert_eq!(
        got,
        Err(ConvError::SliceLength {
            what: "input",
            expected: n * 120,
            actual: 120,
        })
    );
}

#[test]
fn forward_tensor_checks_dims() {
    let l = dw3();
    let input = random_vec(2 * 4 * 5 * 6, 11);
    let run = |in_dims: [usize; 4], out_dims: [usize; 4], input: &[f32]| -> (Result<()>, bool) {
        let inp = TensorRef::new(input, in_dims).unwrap();
        let mut data = vec![SENTINEL; out_dims.iter().product()];
        let mut out = TensorMut::new(&mut data, out_dims).unwrap();
        let r = no_panic("forward_tensor", || l.forward_tensor(&inp, &mut out));
        let untouched = data.iter().all(|v| v.to_bits() == SENTINEL.to_bits());
        (r, untouched)
    };
    let mismatch = |what, expected, actual| ConvError::ShapeMismatch {
        what,
        expected,
        actual,
    };
    // Input with 3 channels (2 x 3 x 5 x 8 = 240 values) into a 4-channel layer.
    let cases = [
        ([2, 3, 5, 8], [2, 4, 5, 8], mismatch("input channels", 4, 3)),
        ([2, 4, 5, 6], [1, 4, 5, 6], mismatch("output batch", 2, 1)),
        (
            [2, 4, 5, 6],
            [2, 5, 5, 6],
            mismatch("output channels", 4, 5),
        ),
        ([2, 4, 5, 6], [2, 4, 4, 6], mismatch("output height", 5, 4)),
        ([2, 4, 5, 6], [2, 4, 5, 7], mismatch("output width", 6, 7)),
    ];
    for (in_dims, out_dims, want) in cases {
        let (r, untouched) = run(in_dims, out_dims, &input);
        assert_eq!(r, Err(want.clone()), "{in_dims:?} -> {out_dims:?}");
        assert!(untouched, "{in_dims:?} -> {out_dims:?}: output written");
    }
    // A correct call writes the same as `forward`.
    let (r, untouched) = run([2, 4, 5, 6], [2, 4, 5, 6], &input);
    assert_eq!(r, Ok(()));
    assert!(!untouched);
    let mut data = vec![0.0; 240];
    let mut out = TensorMut::new(&mut data, [2, 4, 5, 6]).unwrap();
    l.forward_tensor(&TensorRef::new(&input, [2, 4, 5, 6]).unwrap(), &mut out)
        .unwrap();
    let mut want = vec![0.0; 240];
    l.forward(&input, 2, 5, 6, &mut want).unwrap();
    assert_eq!(data, want);
}

#[test]
fn forward_on_an_isa_this_machine_lacks() {
    let missing: Vec<Isa> = Isa::ALL.into_iter().filter(|i| !i.is_available()).collect();
    if cfg!(any(target_arch = "x86", target_arch = "x86_64")) {
        assert!(missing.contains(&Isa::Neon), "NEON reported on x86");
    }
    let l = dw3();
    let input = random_vec(120, 12);
    for isa in missing {
        let mut out = vec![SENTINEL; 120];
        let got = no_panic("forward_on", || {
            l.forward_on(isa, &input, 1, 5, 6, &mut out)
        });
        assert_eq!(got, Err(ConvError::IsaUnavailable(isa.name())), "{isa}");
        assert!(out.iter().all(|v| v.to_bits() == SENTINEL.to_bits()));
        // The trait method goes the same way.
        let got = Layer::forward_on(&l, isa, &input, 1, 5, 6, &mut out);
        assert_eq!(got, Err(ConvError::IsaUnavailable(isa.name())), "{isa}");
        assert!(out.iter().all(|v| v.to_bits() == SENTINEL.to_bits()));
    }
}

#[test]
fn empty_batch_is_ok_and_writes_nothing() {
    let l = dw3();
    for isa in Isa::available() {
        let mut out: Vec<f32> = Vec::new();
        assert_eq!(l.forward_on(isa, &[], 0, 5, 6, &mut out), Ok(()), "{isa}");
        assert!(out.is_empty());
    }
    assert_eq!(l.forward_vec(&[], 0, 5, 6), Ok(Vec::new()));
    // The expected output length of an empty batch is 0, not the length of one image.
    expect_forward_err(
        "n=0 with a non-empty output",
        &l,
        &[],
        (0, 5, 6),
        3,
        &ConvError::SliceLength {
            what: "output",
            expected: 0,
            actual: 3,
        },
    );
    // Checks still apply to an empty batch.
    expect_forward_err(
        "n=0 with a non-empty input",
        &l,
        &[0.5; 4],
        (0, 5, 6),
        0,
        &ConvError::SliceLength {
            what: "input",
            expected: 0,
            actual: 4,
        },
    );
    let pw = Pw::new(&random_vec(40, 13), Some(&[0.0; 5])).unwrap();
    let mut out: Vec<f32> = Vec::new();
    assert_eq!(pw.forward(&[], 0, 3, 3, &mut out), Ok(()));
}

#[test]
fn output_hw_follows_pytorch() {
    // PyTorch: out = floor((in + pad_before + pad_after - dilation * (k - 1) - 1) / stride) + 1.
    // Dw3 (k 3, s 1, p 1): 7x9 -> ((7 + 2 - 2 - 1) / 1 + 1, (9 + 2 - 2 - 1) / 1 + 1) = (7, 9);
    // 1x1 -> (1, 1).
    assert_eq!(Dw3::output_hw(7, 9), Ok((7, 9)));
    assert_eq!(Dw3::output_hw(1, 1), Ok((1, 1)));
    // GNoBias (k 3, s 2, p 0): 9x10 -> ((9 - 2 - 1) / 2 + 1, (10 - 2 - 1) / 2 + 1)
    // = (6 / 2 + 1, 7 / 2 + 1) = (4, 4); 4x3 -> (1 / 2 + 1, 0 / 2 + 1) = (1, 1).
    assert_eq!(GNoBias::output_hw(9, 10), Ok((4, 4)));
    assert_eq!(GNoBias::output_hw(4, 3), Ok((1, 1)));
    // DwDil (k 3, d 2, p 2): 6x7 -> (6 + 4 - 4 - 1 + 1, 7 + 4 - 4 - 1 + 1) = (6, 7).
    assert_eq!(DwDil::output_hw(6, 7), Ok((6, 7)));
    // Rect (k 3x5, s 2x3, p 1x2, d 1x2): 10x20 -> ((10 + 2 - 2 - 1) / 2 + 1,
    // (20 + 4 - 8 - 1) / 3 + 1) = (9 / 2 + 1, 15 / 3 + 1) = (5, 6);
    // 3x9 -> ((3 + 2 - 2 - 1) / 2 + 1, (9 + 4 - 8 - 1) / 3 + 1) = (2 / 2 + 1, 4 / 3 + 1) = (2, 2).
    assert_eq!(Rect::output_hw(10, 20), Ok((5, 6)));
    assert_eq!(Rect::output_hw(3, 9), Ok((2, 2)));
    // The trait method agrees with the inherent one.
    let r = Rect::new(&random_vec(Rect::PARAMS.weight_len(), 14), Some(&[0.0; 4])).unwrap();
    assert_eq!(Layer::output_hw(&r, 10, 20), Ok((5, 6)));
}

/// `forward_vec`, the inherent `forward` and the trait's `forward` give the same bits, and that
/// output is right (within the golden tolerance of the f64 reference).
macro_rules! check_forward_vec {
    ($t:ident, $seed:expr) => {{
        let p = $t::PARAMS;
        let weight = random_vec(p.weight_len(), $seed);
        let bias = p.bias.then(|| random_vec(p.out_channels, $seed + 1));
        let layer = $t::new(&weight, bias.as_deref()).unwrap();
        let (n, h, w) = (2, 11, 19);
        let input = random_vec(p.input_len(n, h, w).unwrap(), $seed + 2);
        let got = layer.forward_vec(&input, n, h, w).unwrap();
        let mut out = vec![SENTINEL; got.len()];
        layer.forward(&input, n, h, w, &mut out).unwrap();
        assert_eq!(
            got,
            out,
            "{}: forward_vec differs from forward",
            stringify!($t)
        );
        out.fill(SENTINEL);
        Layer::forward(&layer, &input, n, h, w, &mut out).unwrap();
        assert_eq!(
            got,
            out,
            "{}: forward_vec differs from Conv2dLayer::forward",
            stringify!($t)
        );
        let b = bias.as_deref();
        let want = reference::conv2d_f64(&p, &input, n, h, w, &weight, b).unwrap();
        let tol = reference::tolerance(&p, &input, n, h, w, &weight, b).unwrap();
        let (ho, wo) = $t::output_hw(h, w).unwrap();
        let what = format!("{} ({}) forward_vec", stringify!($t), $t::KERNEL_INFO.name);
        assert_close(&what, &got, &want, &tol, [n, p.out_channels, ho, wo]);
    }};
}

#[test]
fn forward_vec_equals_forward_and_reference() {
    check_forward_vec!(Dw3, 20);
    check_forward_vec!(GNoBias, 30);
    check_forward_vec!(Pw, 40);
    check_forward_vec!(DwDil, 50);
    check_forward_vec!(Rect, 60);
}

#[test]
fn kernel_info_names_family_kernel_and_stride() {
    let infos = [
        (
            Dw3::KERNEL_INFO,
            "depthwise",
            "depthwise/f32/3x3/s1/p1/c4-4/g4/",
        ),
        (
            GNoBias::KERNEL_INFO,
            "grouped",
            "grouped/f32/3x3/s2/p0/c4-6/g2/",
        ),
        (
            Pw::KERNEL_INFO,
            "pointwise",
            "pointwise/f32/1x1/s1/p0/c8-5/g1/",
        ),
        (
            DwDil::KERNEL_INFO,
            "depthwise",
            "depthwise/f32/3x3/s1/p2/d2/c3-3/g3/",
        ),
        (
            Rect::KERNEL_INFO,
            "grouped",
            "grouped/f32/3x5/s2x3/p1-1-2-2/d1x2/c2-4/g1/",
        ),
    ];
    for (info, family, prefix) in infos {
        assert!(
            info.name.starts_with(prefix),
            "kernel name {:?} does not start with {prefix:?}",
            info.name
        );
        // After the shape: one `/rNN.<plan>` per register class.
        let plans = &info.name[prefix.len()..];
        assert!(
            !plans.is_empty()
                && plans
                    .split('/')
                    .all(|p| p.starts_with('r') && p.contains('.')),
            "kernel name {:?}: plan part {plans:?}",
            info.name
        );
        assert_eq!(info.family, family, "{}", info.name);
    }
    assert_eq!(dw3().kernel_name(), Dw3::KERNEL_INFO.name);
    assert_eq!(gnobias().kernel_name(), GNoBias::KERNEL_INFO.name);
}
