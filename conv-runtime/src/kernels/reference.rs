//! The naive oracle: a direct convolution with plain loops, accumulated in `f64`.
//!
//! Every kernel of the crate is tested against these functions. They favour obviousness over
//! speed: one output element at a time, every tap visited, bounds decided per tap. All functions
//! validate the whole call first and return an error, never panic, on bad input.
//!
//! Layouts follow PyTorch `nn.Conv2d`: input `(n, in, h, w)`, weight `(out, in / groups, kh, kw)`,
//! bias `(out)`, output `(n, out, h_out, w_out)`, all NCHW and contiguous.

use super::validate_params;
use crate::error::Result;
use crate::shape::Conv2dParams;

/// The unit roundoff of `f32`, `2^-24`.
pub const F32_UNIT_ROUNDOFF: f64 = 1.0 / 16_777_216.0;

/// The convolution `p` of an `n x in x h x w` input, accumulated in `f64` and rounded once to
/// `f32` per output element. A NaN anywhere in an element's taps makes that element NaN.
///
/// Errors: [`crate::ConvError::InvalidParams`] / [`crate::ConvError::Overflow`] for bad `p`,
/// [`crate::ConvError::SliceLength`] / [`crate::ConvError::BiasMismatch`] for weight and bias,
/// [`crate::ConvError::InputTooSmall`] / [`crate::ConvError::SliceLength`] for the input.
pub fn conv2d(
    p: &Conv2dParams,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let out = direct(p, input, n, h, w, weight, bias, |v| v as f64)?;
    Ok(out.into_iter().map(|v| v as f32).collect())
}

/// The same convolution in `f64`, not rounded to `f32` (for comparing against `output_f64`
/// style answers).
pub fn conv2d_f64(
    p: &Conv2dParams,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f64>> {
    direct(p, input, n, h, w, weight, bias, |v| v as f64)
}

/// The same convolution on `|input|`, `|weight|` and `|bias|`, in `f64`: the `S` of the golden
/// tolerance, the magnitude that rounding errors scale with.
pub fn conv2d_abs(
    p: &Conv2dParams,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f64>> {
    direct(p, input, n, h, w, weight, bias, |v| (v as f64).abs())
}

/// The per-layer factor `2^-24 * min(K + 2, 4 * sqrt(K))`, where `K = (in / groups) * kh * kw` is
/// the dot-product length of one output element.
pub fn tolerance_factor(p: &Conv2dParams) -> f64 {
    let k = (p.in_per_group().max(1) * p.kernel_h * p.kernel_w) as f64;
    F32_UNIT_ROUNDOFF * (k + 2.0).min(4.0 * k.sqrt())
}

/// The per-element absolute tolerance of the golden cases (see `shared/golden/README.md`):
/// `2^-24 * S * min(K + 2, 4 * sqrt(K))`, with `S` from [`conv2d_abs`] and
/// `K = (in / groups) * kh * kw`.
///
/// A candidate output `o` passes when `|o - exact| <= tol` element-wise. This is a rigorous
/// bound on f32 rounding for any summation order while `K` is small, and far below the error of
/// a single wrong or missing tap. It is used exactly, without a safety factor: the golden files
/// show ONNX Runtime, PyTorch, OpenVINO and XNNPACK all stay below 0.4 of it.
pub fn tolerance(
    p: &Conv2dParams,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let factor = tolerance_factor(p);
    let s = conv2d_abs(p, input, n, h, w, weight, bias)?;
    Ok(s.into_iter().map(|s| (s * factor) as f32).collect())
}

/// The direct convolution with every operand passed through `map` (identity or `abs`).
#[allow(clippy::too_many_arguments)]
fn direct(
    p: &Conv2dParams,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    map: impl Fn(f32) -> f64,
) -> Result<Vec<f64>> {
    validate_params(p)?;
    p.check_weights(weight.len(), bias.map(<[f32]>::len))?;
    let (ho, wo) = p.output_hw(h, w)?;
    let in_len = p.input_len(n, h, w)?;
    if input.len() != in_len {
        return Err(crate::ConvError::SliceLength {
            what: "input",
            expected: in_len,
            actual: input.len(),
        });
    }
    let out_len = p.output_len(n, h, w)?;

    let (ci, co) = (p.in_channels, p.out_channels);
    let (ipg, opg) = (p.in_per_group(), p.out_per_group());
    let (kh, kw) = (p.kernel_h, p.kernel_w);
    let mut out = Vec::with_capacity(out_len);
    for b in 0..n {
        for oc in 0..co {
            let g = oc / opg;
            let bias_v = bias.map_or(0.0, |bias| map(bias[oc]));
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = bias_v;
                    for icg in 0..ipg {
                        let ic = g * ipg + icg;
                        for ky in 0..kh {
                            // Row in the padded input; `output_hw` guarantees it is below
                            // `h + pad_top + pad_bottom`, so no overflow.
                            let py = oy * p.stride_h + ky * p.dilation_h;
                            if py < p.pad_top || py - p.pad_top >= h {
                                continue; // zero padding
                            }
                            let iy = py - p.pad_top;
                            for kx in 0..kw {
                                let px = ox * p.stride_w + kx * p.dilation_w;
                                if px < p.pad_left || px - p.pad_left >= w {
                                    continue;
                                }
                                let ix = px - p.pad_left;
                                let x = input[((b * ci + ic) * h + iy) * w + ix];
                                let wt = weight[((oc * ipg + icg) * kh + ky) * kw + kx];
                                acc += map(x) * map(wt);
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    debug_assert_eq!(out.len(), out_len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConvError;

    #[test]
    fn hand_computed_3x3_pad1() {
        // 1 channel 2x2 input, 3x3 all-ones kernel, pad 1: every output is the sum of all inputs
        // in its window, plus the bias.
        let p = Conv2dParams::new(1, 1, 3).pad(1);
        let out = conv2d(&p, &[1.0, 2.0, 3.0, 4.0], 1, 2, 2, &[1.0; 9], Some(&[0.5])).unwrap();
        assert_eq!(out, vec![10.5; 4]);
        let tol = tolerance(&p, &[1.0, -2.0, 3.0, 4.0], 1, 2, 2, &[1.0; 9], Some(&[0.5])).unwrap();
        let want = (10.5 * F32_UNIT_ROUNDOFF * 11.0) as f32; // K = 9: min(11, 12)
        assert_eq!(tol, vec![want; 4]);
    }

    #[test]
    fn nan_propagates_and_bad_input_errs() {
        let p = Conv2dParams::new(1, 1, 1).with_bias(false);
        let out = conv2d(&p, &[f32::NAN, 1.0], 1, 1, 2, &[2.0], None).unwrap();
        assert!(out[0].is_nan());
        assert_eq!(out[1], 2.0);
        assert!(matches!(
            conv2d(&p, &[1.0], 1, 1, 2, &[2.0], None),
            Err(ConvError::SliceLength { what: "input", .. })
        ));
        let huge = Conv2dParams::new(1, 1, 3).dilation(usize::MAX / 2 + 1);
        assert_eq!(
            conv2d(&huge, &[1.0], 1, 1, 1, &[0.0; 9], Some(&[0.0])),
            Err(ConvError::Overflow)
        );
        let pads = Conv2dParams::new(1, 1, 1).pad(usize::MAX);
        assert_eq!(
            conv2d(&pads, &[1.0], 1, 1, 1, &[0.0], Some(&[0.0])),
            Err(ConvError::Overflow)
        );
    }
}
