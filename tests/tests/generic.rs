//! The generic kernel against the naive reference over the named edge-case set, on every
//! instruction set of this machine, and its error handling: bad input gives the right error and
//! leaves the output untouched.

use conv_runtime::{reference, Conv2dParams, ConvError, GenericConv2d, Isa};
use conv_tests::{assert_close, edge_cases, random_vec};

#[test]
fn generic_matches_reference_on_edge_cases_on_every_isa() {
    let mut failed = Vec::new();
    let isas = Isa::available();
    assert!(isas.contains(&Isa::Scalar));
    for (i, case) in edge_cases().into_iter().enumerate() {
        let p = &case.params;
        let d = case.data(1000 + i as u64);
        let (n, h, w) = (case.n, case.h, case.w);
        let bias = d.bias.as_deref();
        let want = reference::conv2d_f64(p, &d.input, n, h, w, &d.weight, bias)
            .unwrap_or_else(|e| panic!("{}: reference failed: {e}", case.name));
        let tol = reference::tolerance(p, &d.input, n, h, w, &d.weight, bias).unwrap();
        let conv = GenericConv2d::new(*p, &d.weight, bias)
            .unwrap_or_else(|e| panic!("{}: GenericConv2d::new failed: {e}", case.name));
        for &isa in &isas {
            let what = format!("edge case {} generic/{isa}", case.name);
            let r = std::panic::catch_unwind(|| {
                let mut out = vec![f32::NAN; case.out_dims().iter().product()];
                conv.forward_on(isa, &d.input, n, h, w, &mut out)
                    .unwrap_or_else(|e| panic!("{what}: forward failed: {e}"));
                assert_close(&what, &out, &want, &tol, case.out_dims());
            });
            if r.is_err() {
                failed.push(format!("{}/{isa}", case.name));
            }
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?} (messages above)");
}

#[test]
fn forward_uses_a_working_isa_and_is_deterministic() {
    let p = Conv2dParams::new(4, 8, 3).groups(2).pad(1);
    let (input, weight, bias) = (
        random_vec(2 * 4 * 7 * 9, 1),
        random_vec(p.weight_len(), 2),
        random_vec(8, 3),
    );
    let conv = GenericConv2d::new(p, &weight, Some(&bias)).unwrap();
    let len = conv.output_len(2, 7, 9).unwrap();
    let (mut a, mut b) = (vec![0.0; len], vec![1.0; len]);
    conv.forward(&input, 2, 7, 9, &mut a).unwrap();
    conv.forward_on(Isa::best(), &input, 2, 7, 9, &mut b)
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(conv.params(), p);
    assert_eq!(conv.output_hw(7, 9), Ok((7, 9)));
}

#[test]
fn batch_zero_is_an_empty_call() {
    let p = Conv2dParams::new(2, 2, 3).groups(2);
    let conv = GenericConv2d::new(p, &random_vec(18, 1), Some(&[0.0, 0.0])).unwrap();
    for isa in Isa::available() {
        conv.forward_on(isa, &[], 0, 5, 5, &mut []).unwrap();
    }
    assert_eq!(
        reference::conv2d(&p, &[], 0, 5, 5, &random_vec(18, 1), Some(&[0.0, 0.0])),
        Ok(vec![])
    );
}

#[test]
fn nan_in_input_gives_nan_where_it_is_read() {
    let p = Conv2dParams::new(1, 1, 3).pad(1).with_bias(false);
    let mut input = vec![1.0f32; 25];
    input[0] = f32::NAN; // (0, 0): read by outputs (0..2, 0..2) only
    let weight = vec![1.0f32; 9];
    let want = reference::conv2d(&p, &input, 1, 5, 5, &weight, None).unwrap();
    let conv = GenericConv2d::new(p, &weight, None).unwrap();
    for isa in Isa::available() {
        let mut out = vec![0.0; 25];
        conv.forward_on(isa, &input, 1, 5, 5, &mut out).unwrap();
        for (i, (g, w)) in out.iter().zip(&want).enumerate() {
            let (y, x) = (i / 5, i % 5);
            assert_eq!(w.is_nan(), y < 2 && x < 2, "reference at ({y}, {x})");
            assert_eq!(g.is_nan(), w.is_nan(), "generic/{isa} at ({y}, {x})");
            if !w.is_nan() {
                assert_eq!(g, w, "generic/{isa} at ({y}, {x})");
            }
        }
    }
}

// --- bad input ------------------------------------------------------------------------------

const SENTINEL: f32 = -12345.5;

/// A 2-group layer with bias: in 4, out 6, 3x3, pad 1; input 1 x 4 x 5 x 7.
fn layer() -> (Conv2dParams, GenericConv2d, Vec<f32>) {
    let p = Conv2dParams::new(4, 6, 3).groups(2).pad(1);
    let conv =
        GenericConv2d::new(p, &random_vec(p.weight_len(), 5), Some(&random_vec(6, 6))).unwrap();
    (p, conv, random_vec(4 * 5 * 7, 7))
}

/// Runs `forward_on` on every ISA with a sentinel-filled output of `out_len` and checks the error
/// and that the output was not touched.
fn expect_forward_err(
    conv: &GenericConv2d,
    input: &[f32],
    (n, h, w): (usize, usize, usize),
    out_len: usize,
    want: ConvError,
) {
    for isa in Isa::available() {
        let mut out = vec![SENTINEL; out_len];
        let got = conv.forward_on(isa, input, n, h, w, &mut out);
        assert_eq!(got, Err(want.clone()), "generic/{isa}");
        assert!(
            out.iter().all(|&v| v == SENTINEL),
            "generic/{isa}: output written on error"
        );
    }
}

#[test]
fn wrong_input_length_is_rejected() {
    let (_, conv, input) = layer();
    let want = ConvError::SliceLength {
        what: "input",
        expected: 140,
        actual: 139,
    };
    expect_forward_err(&conv, &input[..139], (1, 5, 7), 6 * 35, want);
    let want = ConvError::SliceLength {
        what: "input",
        expected: 280,
        actual: 140,
    };
    expect_forward_err(&conv, &input, (2, 5, 7), 2 * 6 * 35, want);
}

#[test]
fn wrong_output_length_is_rejected() {
    let (_, conv, input) = layer();
    for len in [0, 6 * 35 - 1, 6 * 35 + 1] {
        let want = ConvError::SliceLength {
            what: "output",
            expected: 210,
            actual: len,
        };
        expect_forward_err(&conv, &input, (1, 5, 7), len, want);
    }
}

#[test]
fn input_smaller_than_kernel_is_rejected() {
    let p = Conv2dParams::new(2, 2, 5).groups(2).pad(1);
    let conv = GenericConv2d::new(p, &random_vec(50, 1), Some(&[0.0; 2])).unwrap();
    // Padded 4 x 5 < 5 x 5.
    let want = ConvError::InputTooSmall {
        h: 2,
        w: 3,
        min_h: 3,
        min_w: 3,
    };
    expect_forward_err(&conv, &random_vec(12, 2), (1, 2, 3), 4, want.clone());
    assert_eq!(
        reference::conv2d(
            &p,
            &random_vec(12, 2),
            1,
            2,
            3,
            &random_vec(50, 1),
            Some(&[0.0; 2])
        ),
        Err(want)
    );
    // Zero-sized planes.
    let want = ConvError::InputTooSmall {
        h: 0,
        w: 4,
        min_h: 3,
        min_w: 3,
    };
    expect_forward_err(&conv, &[], (1, 0, 4), 0, want);
}

#[test]
fn input_size_overflow_is_rejected() {
    let (_, conv, input) = layer();
    expect_forward_err(
        &conv,
        &input,
        (usize::MAX / 2, 5, 7),
        1,
        ConvError::Overflow,
    );
}

#[test]
fn wrong_weight_length_is_rejected() {
    let p = Conv2dParams::new(4, 6, 3).groups(2);
    let want = ConvError::SliceLength {
        what: "weight",
        expected: 108,
        actual: 107,
    };
    assert_eq!(
        GenericConv2d::new(p, &random_vec(107, 1), Some(&[0.0; 6])).unwrap_err(),
        want
    );
    let input = random_vec(4 * 25, 2);
    assert_eq!(
        reference::conv2d(&p, &input, 1, 5, 5, &random_vec(107, 1), Some(&[0.0; 6])),
        Err(want.clone())
    );
    assert_eq!(
        reference::tolerance(&p, &input, 1, 5, 5, &random_vec(107, 1), Some(&[0.0; 6])),
        Err(want)
    );
    // Ungrouped length for a grouped layer.
    let want = ConvError::SliceLength {
        what: "weight",
        expected: 108,
        actual: 216,
    };
    assert_eq!(
        GenericConv2d::new(p, &random_vec(216, 1), Some(&[0.0; 6])).unwrap_err(),
        want
    );
}

#[test]
fn wrong_bias_is_rejected() {
    let p = Conv2dParams::new(4, 6, 3).groups(2);
    let weight = random_vec(p.weight_len(), 1);
    let input = random_vec(4 * 25, 2);
    let want = ConvError::SliceLength {
        what: "bias",
        expected: 6,
        actual: 5,
    };
    assert_eq!(
        GenericConv2d::new(p, &weight, Some(&[0.0; 5])).unwrap_err(),
        want
    );
    assert_eq!(
        reference::conv2d(&p, &input, 1, 5, 5, &weight, Some(&[0.0; 5])),
        Err(want)
    );
    let want = ConvError::BiasMismatch { expects_bias: true };
    assert_eq!(GenericConv2d::new(p, &weight, None).unwrap_err(), want);
    assert_eq!(
        reference::conv2d(&p, &input, 1, 5, 5, &weight, None),
        Err(want)
    );
    let no_bias = p.with_bias(false);
    let want = ConvError::BiasMismatch {
        expects_bias: false,
    };
    assert_eq!(
        GenericConv2d::new(no_bias, &weight, Some(&[0.0; 6])).unwrap_err(),
        want
    );
    assert_eq!(
        reference::conv2d_abs(&no_bias, &input, 1, 5, 5, &weight, Some(&[0.0; 6])),
        Err(want)
    );
}

#[test]
fn invalid_params_are_rejected() {
    let bad = [
        Conv2dParams::new(0, 4, 3),
        Conv2dParams::new(4, 4, 0),
        Conv2dParams::new(4, 4, 3).stride(0),
        Conv2dParams::new(4, 4, 3).dilation(0),
        Conv2dParams::new(4, 4, 3).groups(0),
        Conv2dParams::new(4, 6, 3).groups(4), // does not divide out
        Conv2dParams::new(6, 4, 3).groups(4), // does not divide in
    ];
    for p in bad {
        let weight = random_vec(36, 1);
        let bias = [0.0; 6];
        assert!(
            matches!(
                GenericConv2d::new(p, &weight, Some(&bias[..p.out_channels.min(6)])),
                Err(ConvError::InvalidParams(_))
            ),
            "{p:?}"
        );
        assert!(
            matches!(
                reference::conv2d(&p, &random_vec(64, 2), 1, 4, 4, &weight, Some(&bias)),
                Err(ConvError::InvalidParams(_))
            ),
            "{p:?}"
        );
    }
    // Sizes whose arithmetic overflows.
    let huge = [
        Conv2dParams::new(1, 1, 3).pad(usize::MAX / 2 + 1),
        Conv2dParams::new(1, 1, 3).dilation(usize::MAX / 2 + 1),
        Conv2dParams::new(1 << 20, 1 << 20, 1 << 20),
    ];
    for p in huge {
        assert_eq!(
            GenericConv2d::new(p, &[0.0; 9], Some(&[0.0])).err(),
            Some(ConvError::Overflow),
            "{p:?}"
        );
        assert_eq!(
            reference::conv2d(&p, &[0.0], 1, 1, 1, &[0.0; 9], Some(&[0.0])).err(),
            Some(ConvError::Overflow),
            "{p:?}"
        );
    }
}
