//! The generic run-time-shaped convolution: correct for every [`Conv2dParams`], vectorised with
//! pulp, specialised to nothing.
//!
//! It is the baseline that generated kernels are benchmarked against, so it avoids silly costs
//! (no per-element bounds checks or scalar tails in the FMA loops, no division in the loops) but
//! deliberately has no register tiling over pixels or channels and no shape-specific code: kernel
//! size, stride, dilation and padding all stay run-time values. (The only concession is a
//! compile-time step for the stride-2 deinterleave of step 2.)
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
//! 3. For each output channel: `acc[oc] += sum over kx of weight * phase[r][q..q + wo_pad]`,
//!    whole vectors only (`mul_add_e_f32s`), taps in passes of up to 4 so an accumulator vector is
//!    loaded and stored once per pass, not once per tap.
//! 4. The first `w_out` columns of each accumulator row are copied to the output.
//!
//! Padding, image borders and column tails all become zeros in the phase rows, so the hot loop has
//! no edge cases. The zeros never change, so only the data positions are rewritten per row.
//!
//! Pathological geometries (a stride or dilation so large that the phase rows would be far longer
//! than the data they hold) use a fallback that builds each tap's `wo_pad` source columns
//! directly: same accumulators, same vector FMA, scratch proportional to the output row.

use super::{check_call, validate_params};
use crate::activation::Activation;
use crate::dispatch::Isa;
use crate::error::{ConvError, Result};
use crate::shape::Conv2dParams;
use pulp::{Simd, WithSimd};

/// A convolution layer whose shape is known only at run time.
#[derive(Clone, Debug)]
pub struct GenericConv2d {
    params: Conv2dParams,
    /// Weights repacked as `(groups, in / groups, kh, out / groups, kw)`: the weights one pass
    /// over an accumulator row needs (one input row, one output channel, all `kx`) are contiguous.
    weight: Vec<f32>,
    /// One value per output channel; zeros for a layer without bias.
    bias: Vec<f32>,
    /// Applied to the output after the bias (a separate pass: this kernel is the baseline).
    activation: Activation,
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
        let (kh, kw) = (p.kernel_h, p.kernel_w);
        let mut packed = vec![0.0f32; weight.len()];
        for g in 0..groups {
            for ocg in 0..opg {
                let oc = g * opg + ocg;
                for icg in 0..ipg {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let src = ((oc * ipg + icg) * kh + ky) * kw + kx;
                            let dst = (((g * ipg + icg) * kh + ky) * opg + ocg) * kw + kx;
                            packed[dst] = weight[src];
                        }
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
            activation: Activation::None,
        })
    }

    /// The same layer with `activation` applied after the bias.
    ///
    /// Errors: [`ConvError::InvalidParams`] for a `Clamp` whose bounds are NaN or `min > max`.
    pub fn with_activation(mut self, activation: Activation) -> Result<Self> {
        let (lo, hi) = activation.bounds();
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(ConvError::InvalidParams(format!(
                "activation `{activation}`: the bounds must be numbers with min <= max"
            )));
        }
        self.activation = activation;
        Ok(self)
    }

    /// The activation applied after the bias.
    pub fn activation(&self) -> Activation {
        self.activation
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
            output: &mut *output,
            n,
            h,
            w,
            ho,
            wo,
        })?;
        self.activation.apply_slice(output);
        Ok(())
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

/// Where the taps read their source columns from, with every index precomputed per call so that
/// the loops below do no division.
enum Source {
    /// Phase rows of `row_len` floats each (a multiple of the vector width).
    Phases {
        /// Per phase `r` with data: `(first input column, its index in the buffer, count)`.
        fills: Vec<(usize, usize, usize)>,
        /// Per tap `kx`: start of its `wo_pad` source columns in the buffer.
        tap_start: Vec<usize>,
    },
    /// Per-tap gather into a `wo_pad` scratch row (pathological geometries).
    PerTap {
        /// Per tap `kx`: valid output columns `lo..hi` and the input column read at `lo`.
        ranges: Vec<(usize, usize, usize)>,
    },
}

impl Source {
    /// Chooses the layout and returns it with the scratch length it needs.
    fn plan(w: usize, wo: usize, wo_pad: usize, lanes: usize, p: &Conv2dParams) -> (Self, usize) {
        let (kw, sw, dw, pl) = (p.kernel_w, p.stride_w, p.dilation_w, p.pad_left);
        // Phase rows need `stride_w * row_len` floats, `row_len >= wo_pad + (kw-1)*dw / stride_w`.
        // Use them while that stays proportional to the data actually read.
        let row_len = wo_pad
            .checked_add((kw - 1) * dw / sw)
            .and_then(|l| l.div_ceil(lanes).checked_mul(lanes));
        let total = row_len.and_then(|l| Some((l, l.checked_mul(sw)?)));
        let budget = w
            .saturating_add(kw.saturating_mul(wo_pad))
            .saturating_mul(8)
            .saturating_add(4096);
        match total {
            Some((row_len, total)) if total <= budget => {
                let mut fills = Vec::new();
                for r in 0..sw {
                    // First input column whose padded position `pl + ix` is in phase `r`, and
                    // its slot `j` in that phase row; data past the row end is never read.
                    let ix0 = (r + sw - pl % sw) % sw;
                    let j0 = (pl + ix0) / sw;
                    if ix0 >= w || j0 >= row_len {
                        continue;
                    }
                    let count = ((w - ix0).div_ceil(sw)).min(row_len - j0);
                    fills.push((ix0, r * row_len + j0, count));
                }
                let tap_start = (0..kw)
                    .map(|kx| (kx * dw % sw) * row_len + kx * dw / sw)
                    .collect();
                (Source::Phases { fills, tap_start }, total)
            }
            _ => {
                let ranges = (0..kw)
                    .map(|kx| {
                        let off = kx * dw;
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
                        if lo < hi {
                            (lo, hi, lo * sw + off - pl)
                        } else {
                            (0, 0, 0)
                        }
                    })
                    .collect();
                (Source::PerTap { ranges }, wo_pad)
            }
        }
    }
}

/// A zeroed scratch buffer of `len` floats whose first element is 64-byte aligned when the
/// allocator allows it (whole-vector rows then never straddle cache lines).
fn aligned_zeroed(storage: &mut Vec<f32>, len: usize) -> &mut [f32] {
    *storage = vec![0.0f32; len + 16];
    let skip = storage.as_ptr().align_offset(64).min(16);
    &mut storage[skip..skip + len]
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
        let lanes = S::F32_LANES;
        // `wo <= output.len()`, so this cannot overflow for a real output slice.
        let wo_pad = wo.div_ceil(lanes) * lanes;
        let (source, scratch_len) = Source::plan(w, wo, wo_pad, lanes, p);
        let (mut src_store, mut acc_store) = (Vec::new(), Vec::new());
        let src_buf = aligned_zeroed(&mut src_store, scratch_len);
        let acc = aligned_zeroed(&mut acc_store, opg * wo_pad);

        for b in 0..n {
            for g in 0..p.groups {
                let bias = &conv.bias[g * opg..][..opg];
                for oy in 0..ho {
                    // 1. bias
                    for (ocg, &bv) in bias.iter().enumerate() {
                        acc[ocg * wo_pad..][..wo_pad].fill(bv);
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
                            let in_row = &input[((b * ci + ic) * h + iy) * w..][..w];
                            let tap_w =
                                &conv.weight[((g * ipg + icg) * kh + ky) * kw * opg..][..kw * opg];
                            match &source {
                                Source::Phases { fills, tap_start } => {
                                    // 2. phase rows for this input row
                                    fill_phases(src_buf, fills, in_row, p.stride_w);
                                    // 3. one pass per output channel over its accumulator row,
                                    // all `kw` taps per vector
                                    for ocg in 0..opg {
                                        let acc_row = &mut acc[ocg * wo_pad..][..wo_pad];
                                        let wts = &tap_w[ocg * kw..][..kw];
                                        fma_taps(simd, acc_row, src_buf, tap_start, wts);
                                    }
                                }
                                Source::PerTap { ranges } => {
                                    for (kx, &range) in ranges.iter().enumerate() {
                                        gather_tap(src_buf, in_row, range, p.stride_w);
                                        let src = &src_buf[..wo_pad];
                                        for ocg in 0..opg {
                                            let acc_row = &mut acc[ocg * wo_pad..][..wo_pad];
                                            fma_row(simd, acc_row, src, tap_w[ocg * kw + kx]);
                                        }
                                    }
                                }
                            }
                        }
                    }
                    // 4. store
                    for ocg in 0..opg {
                        let start = ((b * co + g * opg + ocg) * ho + oy) * wo;
                        output[start..][..wo].copy_from_slice(&acc[ocg * wo_pad..][..wo]);
                    }
                }
            }
        }
    }
}

/// `acc[x] += sum over taps t of wts[t] * buf[starts[t] + x]` for the whole row `acc`, a whole
/// number of vectors. Taps go in passes of up to 4 ([`fma_pass`]), so each accumulator vector is
/// loaded and stored once per pass instead of once per tap, and the tap count stays a run-time
/// value.
#[inline(always)]
fn fma_taps<S: Simd>(simd: S, acc: &mut [f32], buf: &[f32], starts: &[usize], wts: &[f32]) {
    let len = acc.len();
    let (acc, acc_tail) = S::as_mut_simd_f32s(acc);
    debug_assert!(acc_tail.is_empty());
    let src = |t: usize| S::as_simd_f32s(&buf[starts[t]..][..len]).0;
    let mut t = 0;
    while t < wts.len() {
        let w = &wts[t..];
        t += match w.len() {
            1 => fma_pass(simd, acc, [src(t)], [w[0]]),
            2 => fma_pass(simd, acc, [src(t), src(t + 1)], [w[0], w[1]]),
            3 => fma_pass(
                simd,
                acc,
                [src(t), src(t + 1), src(t + 2)],
                [w[0], w[1], w[2]],
            ),
            _ => fma_pass(
                simd,
                acc,
                [src(t), src(t + 1), src(t + 2), src(t + 3)],
                [w[0], w[1], w[2], w[3]],
            ),
        };
    }
}

/// One pass of `N` taps over an accumulator row: `acc[j] += sum_t wts[t] * srcs[t][j]`; returns
/// `N`. Written as zipped slice iterators (not indexing) so the loop has no bounds checks.
/// Register budget: `N` broadcast weights, one accumulator, one source vector.
#[inline(always)]
fn fma_pass<S: Simd, const N: usize>(
    simd: S,
    acc: &mut [S::f32s],
    srcs: [&[S::f32s]; N],
    wts: [f32; N],
) -> usize {
    let w = wts.map(|w| simd.splat_f32s(w));
    let fma = |a, b, c| simd.mul_add_e_f32s(a, b, c);
    match srcs.as_slice() {
        [s0] => {
            for (a, &x0) in acc.iter_mut().zip(*s0) {
                *a = fma(w[0], x0, *a);
            }
        }
        [s0, s1] => {
            for ((a, &x0), &x1) in acc.iter_mut().zip(*s0).zip(*s1) {
                *a = fma(w[1], x1, fma(w[0], x0, *a));
            }
        }
        [s0, s1, s2] => {
            for (((a, &x0), &x1), &x2) in acc.iter_mut().zip(*s0).zip(*s1).zip(*s2) {
                *a = fma(w[2], x2, fma(w[1], x1, fma(w[0], x0, *a)));
            }
        }
        [s0, s1, s2, s3] => {
            for ((((a, &x0), &x1), &x2), &x3) in acc.iter_mut().zip(*s0).zip(*s1).zip(*s2).zip(*s3)
            {
                *a = fma(w[3], x3, fma(w[2], x2, fma(w[1], x1, fma(w[0], x0, *a))));
            }
        }
        // Not produced by `fma_taps`; correct for any `N` all the same.
        srcs => {
            for (src, &wt) in srcs.iter().zip(&w) {
                for (a, &x) in acc.iter_mut().zip(*src) {
                    *a = fma(wt, x, *a);
                }
            }
        }
    }
    N
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
/// `buf[dst + j] = in_row[ix0 + j * sw]` for each planned `(ix0, dst, count)`. Every other position
/// is zero (set once at allocation, never written).
#[inline(always)]
fn fill_phases(buf: &mut [f32], fills: &[(usize, usize, usize)], in_row: &[f32], sw: usize) {
    for &(ix0, dst, count) in fills {
        let dst = &mut buf[dst..][..count];
        if sw == 1 {
            dst.copy_from_slice(&in_row[ix0..][..count]);
        } else {
            let src = &in_row[ix0..];
            match sw {
                // Stride 2 is common enough that its deinterleave gets a compile-time step.
                2 => gather_every::<2>(dst, src),
                _ => {
                    for (d, c) in dst.iter_mut().zip(src.chunks(sw)) {
                        *d = c[0];
                    }
                }
            }
        }
    }
}

/// `dst[j] = src[j * STEP]` for every `j < dst.len()`; the planner guarantees
/// `(dst.len() - 1) * STEP < src.len()`.
#[inline(always)]
fn gather_every<const STEP: usize>(dst: &mut [f32], src: &[f32]) {
    let mut chunks = src.chunks_exact(STEP);
    for (d, c) in dst.iter_mut().zip(&mut chunks) {
        *d = c[0];
    }
    // A last element in the partial chunk past the whole ones.
    let whole = src.len() / STEP;
    if let (Some(d), Some(&v)) = (dst.get_mut(whole), chunks.remainder().first()) {
        *d = v;
    }
}

/// Builds one tap's `wo_pad` source columns in `dst`: `dst[ox] = in_row[ix0 + (ox - lo) * sw]`
/// for `ox` in `lo..hi`, zero elsewhere.
#[inline(always)]
fn gather_tap(dst: &mut [f32], in_row: &[f32], (lo, hi, ix0): (usize, usize, usize), sw: usize) {
    dst.fill(0.0);
    for (d, &s) in dst[lo..hi].iter_mut().zip(in_row[ix0..].iter().step_by(sw)) {
        *d = s;
    }
}
