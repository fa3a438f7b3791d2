//! The generic run-time-shaped convolution: correct for every [`Conv2dParams`], vectorised with
//! pulp, specialised to nothing.
//!
//! It is the baseline that generated kernels are benchmarked against, so it avoids silly costs
//! (no bounds-checked scalar loop, no scalar tail in the hot loop) but deliberately has no
//! register tiling, unrolled taps or shape-specific paths.
//!
//! # Algorithm
//!
//! For each image `b`, group `g` and output row `oy`:
//!
//! 1. An accumulator block `acc[out / groups][wo_pad]` (one row per output channel of the group,
//!    `wo_pad` = `w_out` rounded up to whole vectors) is filled with the bias.
//! 2. For each input channel `ic` of the group and kernel row `ky` whose input row `iy` is inside
//!    the image, the input row is laid out as `stride_w` zero-padded *phase rows*:
//!    `phase[r][j] = padded_row[j * stride_w + r]`, where `padded_row` is the input row with
//!    `pad_left` zeros before it and zeros after it. Output column `ox` of tap `kx` reads
//!    `padded_row[ox * stride_w + kx * dilation_w]`, which is `phase[r][q + ox]` with
//!    `kx * dilation_w = q * stride_w + r`: a contiguous slice of `wo_pad` floats for every tap,
//!    whatever the stride, dilation or padding. (With stride 1 there is one phase row, the padded
//!    input row.)
//! 3. For each tap `kx` and output channel: `acc[oc] += weight * phase[r][q..q + wo_pad]`, whole
//!    vectors only (`mul_add_e_f32s`).
//! 4. The first `w_out` columns of each accumulator row are copied to the output.
//!
//! Padding, image borders and column tails all become zeros in the phase rows, so the hot loop has
//! no edge cases. The zeros never change, so only the data positions are rewritten per row.
//!
//! Pathological geometries (a stride or dilation so large that the phase rows would be far longer
//! than the data they hold) use a fallback that builds each tap's `wo_pad` source columns
//! directly: same accumulators, same vector FMA, scratch proportional to the output row.

use super::{check_call, validate_params};
use crate::dispatch::Isa;
use crate::error::{ConvError, Result};
use crate::shape::Conv2dParams;
use pulp::{Simd, WithSimd};

/// A convolution layer whose shape is known only at run time.
#[derive(Clone, Debug)]
pub struct GenericConv2d {
    params: Conv2dParams,
    /// Weights repacked as `(groups, in / groups, kh, kw, out / groups)`: the weights of one tap
    /// for all output channels of a group are contiguous.
    weight: Vec<f32>,
    /// One value per output channel; zeros for a layer without bias.
    bias: Vec<f32>,
}

impl GenericConv2d {
    /// Builds the layer from PyTorch-layout weights `(out, in / groups, kh, kw)` and bias `(out)`.
    ///
    /// Errors: [`ConvError::InvalidParams`] or [`ConvError::Overflow`] for bad `params`,
    /// [`ConvError::SliceLength`] for a weight or bias of the wrong length,
    /// [`ConvError::BiasMismatch`] when `bias.is_some() != params.bias`.
    pub fn new(params: Conv2dParams, weight: &[f32], bias: Option<&[f32]>) -> Result<Self> {
        validate_params(&params)?;
        params.check_weights(weight.len(), bias.map(<[f32]>::len))?;
        let p = &params;
        let (ipg, opg, groups) = (p.in_per_group(), p.out_per_group(), p.groups);
        let taps = p.kernel_h * p.kernel_w;
        let mut packed = vec![0.0f32; weight.len()];
        for g in 0..groups {
            for ocg in 0..opg {
                let oc = g * opg + ocg;
                for icg in 0..ipg {
                    for t in 0..taps {
                        let src = (oc * ipg + icg) * taps + t;
                        let dst = ((g * ipg + icg) * taps + t) * opg + ocg;
                        packed[dst] = weight[src];
                    }
                }
            }
        }
        let bias = match bias {
            Some(b) => b.to_vec(),
            None => vec![0.0; p.out_channels],
        };
        Ok(GenericConv2d {
            params,
            weight: packed,
            bias,
        })
    }

    /// The layer's parameters.
    pub fn params(&self) -> Conv2dParams {
        self.params
    }

    /// `(h_out, w_out)` for an `h x w` input; see [`Conv2dParams::output_hw`].
    pub fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        self.params.output_hw(h, w)
    }

    /// Elements of the output for an `n x in x h x w` input.
    pub fn output_len(&self, n: usize, h: usize, w: usize) -> Result<usize> {
        self.params.output_len(n, h, w)
    }

    /// Runs the layer on `input` `(n, in, h, w)` into `output` `(n, out, h_out, w_out)` with the
    /// best instruction set of this machine ([`Isa::best`]).
    pub fn forward(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()> {
        self.forward_on(Isa::best(), input, n, h, w, output)
    }

    /// Like [`GenericConv2d::forward`], on the instruction set `isa`.
    ///
    /// Everything is checked before `output` is written: on error it is left untouched.
    /// Errors: [`ConvError::InputTooSmall`], [`ConvError::SliceLength`] for the input or output,
    /// [`ConvError::Overflow`], [`ConvError::IsaUnavailable`].
    pub fn forward_on(
        &self,
        isa: Isa,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()> {
        let bias_len = self.params.bias.then_some(self.bias.len());
        let (ho, wo) = check_call(
            &self.params,
            input.len(),
            n,
            h,
            w,
            self.weight.len(),
            bias_len,
            output.len(),
        )?;
        if !isa.is_available() {
            return Err(ConvError::IsaUnavailable(isa.name()));
        }
        if output.is_empty() {
            return Ok(()); // n == 0: nothing to compute (and no scratch to size).
        }
        isa.run(GenericOp {
            conv: self,
            input,
            output,
            n,
            h,
            w,
            ho,
            wo,
        })
    }
}

/// One forward call, instantiated per instruction set by [`Isa::run`].
struct GenericOp<'a> {
    conv: &'a GenericConv2d,
    input: &'a [f32],
    output: &'a mut [f32],
    n: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
}

/// Where tap `kx` reads its source columns from.
#[derive(Clone, Copy)]
enum Source {
    /// Phase rows: `row_len` floats per phase, `stride_w` phases.
    Phases { row_len: usize },
    /// Per-tap gather into a `wo_pad` scratch row (pathological geometries).
    PerTap,
}

impl WithSimd for GenericOp<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Self::Output {
        let GenericOp {
            conv,
            input,
            output,
            n,
            h,
            w,
            ho,
            wo,
        } = self;
        let p = &conv.params;
        let (ci, co) = (p.in_channels, p.out_channels);
        let (ipg, opg) = (p.in_per_group(), p.out_per_group());
        let (kh, kw) = (p.kernel_h, p.kernel_w);
        let (sw, dw, pl) = (p.stride_w, p.dilation_w, p.pad_left);
        let lanes = S::F32_LANES;
        // `wo <= output.len()`, so this cannot overflow for a real output slice.
        let wo_pad = wo.div_ceil(lanes).saturating_mul(lanes);

        // Phase rows need `stride_w * (wo_pad + max_q)` floats, `max_q = (kw-1)*dw / stride_w`.
        // Use them while that stays proportional to the data actually read.
        let max_q = (kw - 1) * dw / sw;
        let phases_len = wo_pad
            .checked_add(max_q)
            .and_then(|row_len| Some((row_len, row_len.checked_mul(sw)?)));
        let budget = w
            .saturating_add(kw.saturating_mul(wo_pad))
            .saturating_mul(8)
            .saturating_add(4096);
        let (source, scratch_len) = match phases_len {
            Some((row_len, total)) if total <= budget => (Source::Phases { row_len }, total),
            _ => (Source::PerTap, wo_pad),
        };
        let mut src_buf = vec![0.0f32; scratch_len];
        let mut acc = vec![0.0f32; opg * wo_pad];

        for b in 0..n {
            for g in 0..p.groups {
                for oy in 0..ho {
                    // 1. bias
                    for (ocg, row) in acc.chunks_exact_mut(wo_pad).enumerate() {
                        row.fill(conv.bias[g * opg + ocg]);
                    }
                    for icg in 0..ipg {
                        let ic = g * ipg + icg;
                        for ky in 0..kh {
                            // Row in the padded input: below `h + pad_top + pad_bottom`.
                            let py = oy * p.stride_h + ky * p.dilation_h;
                            if py < p.pad_top || py - p.pad_top >= h {
                                continue; // the whole kernel row reads zero padding
                            }
                            let iy = py - p.pad_top;
                            let row_start = ((b * ci + ic) * h + iy) * w;
                            let in_row = &input[row_start..row_start + w];
                            // 2. phase rows for this input row
                            if let Source::Phases { row_len } = source {
                                fill_phases(&mut src_buf, row_len, in_row, sw, pl);
                            }
                            let tap_w0 = ((g * ipg + icg) * kh + ky) * kw * opg;
                            for kx in 0..kw {
                                let off = kx * dw;
                                let src: &[f32] = match source {
                                    Source::Phases { row_len } => {
                                        let start = (off % sw) * row_len + off / sw;
                                        &src_buf[start..start + wo_pad]
                                    }
                                    Source::PerTap => {
                                        gather_tap(&mut src_buf, in_row, wo, sw, off, pl);
                                        &src_buf[..wo_pad]
                                    }
                                };
                                let wts = &conv.weight[tap_w0 + kx * opg..][..opg];
                                // 3. one vector FMA row per output channel
                                for (row, &wv) in acc.chunks_exact_mut(wo_pad).zip(wts) {
                                    fma_row(simd, row, src, wv);
                                }
                            }
                        }
                    }
                    // 4. store
                    for (ocg, row) in acc.chunks_exact(wo_pad).enumerate() {
                        let start = ((b * co + g * opg + ocg) * ho + oy) * wo;
                        output[start..start + wo].copy_from_slice(&row[..wo]);
                    }
                }
            }
        }
    }
}

/// `acc += wv * src`, both of the same length, a whole number of vectors.
///
/// Register budget: one broadcast weight plus one source and one accumulator vector in flight.
#[inline(always)]
fn fma_row<S: Simd>(simd: S, acc: &mut [f32], src: &[f32], wv: f32) {
    let wvec = simd.splat_f32s(wv);
    let (acc_v, acc_tail) = S::as_mut_simd_f32s(acc);
    let (src_v, src_tail) = S::as_simd_f32s(src);
    for (a, &s) in acc_v.iter_mut().zip(src_v) {
        *a = simd.mul_add_e_f32s(wvec, s, *a);
    }
    // Empty when the rows are whole vectors, as in `with_simd`; kept for correctness.
    for (a, &s) in acc_tail.iter_mut().zip(src_tail) {
        *a += wv * s;
    }
}

/// Writes the data positions of `in_row` into the phase rows:
/// `phases[r * row_len + j] = in_row[j * sw + r - pl]` wherever that is an input column and
/// `j < row_len`. Every other position is zero (set once at allocation, never written).
#[inline(always)]
fn fill_phases(phases: &mut [f32], row_len: usize, in_row: &[f32], sw: usize, pl: usize) {
    if sw == 1 {
        // One phase row: padded[pl + ix] = in_row[ix], clipped to the row.
        if let Some(dst) = phases.get_mut(pl..row_len) {
            let len = dst.len().min(in_row.len());
            dst[..len].copy_from_slice(&in_row[..len]);
        }
        return;
    }
    for (r, phase) in phases.chunks_exact_mut(row_len).enumerate().take(sw) {
        // First input column whose padded position `pl + ix` is in phase `r`.
        let ix0 = (r + sw - pl % sw) % sw;
        if ix0 >= in_row.len() {
            continue;
        }
        let j0 = (pl + ix0) / sw;
        if let Some(dst) = phase.get_mut(j0..) {
            for (d, &s) in dst.iter_mut().zip(in_row[ix0..].iter().step_by(sw)) {
                *d = s;
            }
        }
    }
}

/// Builds the `wo_pad` source columns of one tap in `dst` directly:
/// `dst[ox] = in_row[ox * sw + off - pl]` where that is an input column, else zero.
#[inline(always)]
fn gather_tap(dst: &mut [f32], in_row: &[f32], wo: usize, sw: usize, off: usize, pl: usize) {
    dst.fill(0.0);
    let w = in_row.len();
    // Valid ox: pl <= ox*sw + off <= pl + w - 1.
    let lo = if off >= pl {
        0
    } else {
        (pl - off).div_ceil(sw)
    };
    let hi = match (w - 1 + pl).checked_sub(off) {
        Some(span) => (span / sw + 1).min(wo),
        None => 0,
    };
    if lo >= hi {
        return;
    }
    let ix0 = lo * sw + off - pl;
    for (d, &s) in dst[lo..hi].iter_mut().zip(in_row[ix0..].iter().step_by(sw)) {
        *d = s;
    }
}
