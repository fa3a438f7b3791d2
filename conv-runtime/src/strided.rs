//! Convolutions at a stride as a GEMM over blocks of gathered pixels: 1x1 layers (ResNet's
//! downsampling shortcuts), and grouped layers with a long reduction and many output channels
//! per group (`plan::gathers` in the macro: ResNet's 3x3 stride-2 convolutions).
//!
//! A pointwise tile loads vectors of neighbouring pixels, which a stride scatters over the
//! input. The generated body therefore copies what a run of output pixels reads, every input
//! channel of the group under every tap, into a block of scratch ([`gather`]), then runs the
//! same GEMM stage as a stride-1 pointwise layer over the block (its reduction the channels x
//! taps, in the order of PyTorch's weights). A block holds at most [`GATHER_BYTES`], so it stays
//! in L2 while every output-channel tile reads it.
//!
//! Measured on `resnet_ds_256_512_56_s2` (256 -> 512, 56 x 56 -> 28 x 28; Zen 4, 1 thread,
//! throwaway per-call timer, 10th percentiles): the direct body it replaces (`t8r3c`, rows of
//! output columns, one input channel at a time) 2186-2227 us, this body with a float-by-float
//! gather 1902-1924 (`perf annotate`: the gather's scalar loop 10% of the samples), with the
//! stride-2 vector gather 1876-1882 (the gather under 1%). Beside XNNPACK in one sitting
//! (`with_ours.py`, 7 rounds, medians): 1 thread 2386 -> 2064 us (XNNPACK 1975, 10th
//! percentiles 1916 against 1930), 2 threads 1129 -> 985 (XNNPACK 995).

use pulp::Simd;

use crate::__private::{ld, ld_part, st, st_part, LINE};

/// Bytes of one block of gathered pixels: a quarter of the smallest L2 among the targets (1 MiB:
/// Zen 4, Neoverse N1), as for a GEMM's blocks of the reduction, so the block stays in L2 beside
/// the weights and output streaming through.
pub const GATHER_BYTES: usize = 256 * 1024;

/// Pixels per block for `chans` input channels and a span of `span` output pixels: as many as
/// fit [`GATHER_BYTES`] (at least one cache line of them), spread evenly over the blocks the
/// span needs, rounded up to a cache line so that every channel of the block starts on one.
#[inline(always)]
pub fn gather_pixels(chans: usize, span: usize) -> usize {
    let fit = fit(chans);
    let blocks = span.div_ceil(fit).max(1);
    span.div_ceil(blocks).next_multiple_of(LINE).min(fit)
}

/// Pixels of `chans` channels that fit [`GATHER_BYTES`], whole cache lines of them, at least one.
#[inline(always)]
fn fit(chans: usize) -> usize {
    ((GATHER_BYTES / (chans.max(1) * 4)) / LINE * LINE).max(LINE)
}

/// Floats of scratch for a plane of `plane` output pixels: the largest block a part of it needs
/// ([`gather_pixels`] of any span up to `plane`) and a cache line to align it.
pub fn gather_len(chans: usize, plane: usize) -> usize {
    chans * plane.next_multiple_of(LINE).min(fit(chans)) + LINE
}

/// The block of `chans * pixels` floats in `scratch` (at least [`gather_len`] floats, then
/// [`gather_row_len`] for [`gather`]'s rows), starting on a cache line, and the rest of
/// `scratch` after it.
#[inline(always)]
pub fn gather_block(scratch: &mut [f32], chans: usize, pixels: usize) -> (&mut [f32], &mut [f32]) {
    let skip = scratch.as_ptr().align_offset(LINE * 4).min(LINE);
    scratch[skip..].split_at_mut(chans * pixels)
}

/// The window of a convolution whose pixels [`gather`] copies.
#[derive(Clone, Copy, Debug)]
pub struct Taps {
    /// `(kh, kw)`.
    pub k: (usize, usize),
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    /// `(top, left)`.
    pub pad: (usize, usize),
}

/// How [`gather`] lays out one input row: its `sw` phases (phase `r`: columns `r, r + sw, r +
/// 2 sw, ..`), phase `r` from float `r * pitch` of the row scratch, its element `m` at `left +
/// m`, zeros around. Tap `kx` of output column `ox` reads input column `sw ox + d` (`d = kx dw -
/// pad_left`): phase `d mod sw`, element `ox + floor(d / sw)`; so every tap's run of output
/// pixels along a row is one contiguous run of a phase, padding included.
#[derive(Clone, Copy, Debug)]
struct Phases {
    sw: usize,
    /// Zeros before element 0: the most any tap reaches left of the row.
    left: usize,
    /// Elements built per phase (the rest of a phase stays zero).
    built: usize,
    pitch: usize,
}

impl Phases {
    fn new(w: usize, wo: usize, taps: Taps) -> Phases {
        let sw = taps.stride.1.max(1);
        let (kw, dw, pl) = (taps.k.1, taps.dilation.1, taps.pad.1);
        // Reach of the taps in phase elements: `floor(d / sw)` for the first and last tap.
        let (lo, hi) = (
            (-(pl as isize)).div_euclid(sw as isize),
            (((kw.max(1) - 1) * dw) as isize - pl as isize).div_euclid(sw as isize),
        );
        let left = (-lo).max(0) as usize;
        // Elements any tap reads: `ox + q < wo + hi`; those past the row's are zero.
        let reach = (wo as isize + hi).max(0) as usize;
        let built = reach.min(w.div_ceil(sw));
        // Whole vectors of built elements, and a vector of slack after the last element read
        // (runs are copied by whole vectors), for vectors up to a cache line.
        let pitch = (left + reach.max(built.next_multiple_of(LINE)) + LINE).next_multiple_of(LINE);
        Phases {
            sw,
            left,
            built,
            pitch,
        }
    }
}

/// Floats of row scratch [`gather`] needs for input rows `w` wide and output rows `wo` wide:
/// two split rows (one is split while the taps of the other are copied).
pub fn gather_row_len(w: usize, wo: usize, taps: Taps) -> usize {
    let p = Phases::new(w, wo, taps);
    2 * p.sw * p.pitch
}

/// Copies, for output pixels `first..first + len`, the input each tap of the window reads from
/// `src` (`chans` planes of `h x w` floats, `h * w` apart) into `block`: row `(c * kh + ky) *
/// kw + kx` (from float `row * pitch`, `pitch >= len`) holds channel `c`'s input under tap
/// `(ky, kx)`, zero where the tap reads padding. Output pixel `q` (row `q / wo`, column `q %
/// wo`) reads input pixel `(oy sh + ky dh - pad_top, ox sw + kx dw - pad_left)`, as PyTorch's
/// weight `(out, in / groups, kh, kw)` flattens, so a GEMM of the weights with the block is the
/// convolution.
///
/// Each input row a run of output pixels reads is split once into its phases in `rows` (at
/// least [`gather_row_len`] floats; see [`Phases`]), at `sw == 2` a vector deinterleave per
/// two vectors of the row, at `sw == 1` a copy, at other strides float by float; then every tap
/// `kx` copies its run out of one phase, its padding included. Splitting the row once for all
/// `kw` taps, instead of gathering every tap from the row with its own clamps and zero fills,
/// took the 3x3 stride-2 gather of 64 channels on 56 x 56 from 110-113 to 90-97 us a pass
/// (throwaway timer, p10, Zen 4), and the layer (`resnet_3x3_64_128_56_s2`) from 1122-1127 to
/// 1092-1095 us. Each row is split one run ahead of the copies out of it (two halves of
/// `rows`), so that the copies' loads, at any offset, read lines the split's stores have left
/// rather than wait on them (a load spanning two recent stores is not forwarded from them):
/// 94-95 -> 90-91 us in the same timer.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn gather<S: Simd>(
    simd: S,
    src: &[f32],
    (h, w): (usize, usize),
    wo: usize,
    taps: Taps,
    chans: usize,
    (first, len): (usize, usize),
    block: &mut [f32],
    pitch: usize,
    rows: &mut [f32],
) {
    let Taps {
        k: (kh, kw),
        stride: (sh, sw),
        dilation: (dh, dw),
        pad: (pt, pl),
    } = taps;
    // One tap per row (a window one column wide): each run straight from the input row into
    // the block, the output columns whose input column `ox sw - pl` lies in the row. Splitting
    // rows into phases first, for `kw` taps to share, is an extra pass for one tap:
    // `resnet_ds_256_512_56_s2` (1x1 stride 2) ran 1935-1979 us p10 split against 1852-1929
    // straight (throwaway timer, Zen 4).
    let column = kw == 1;
    let cols = (
        pl.div_ceil(sw),
        ((w + pl).saturating_sub(1) / sw + 1).min(wo),
    );
    let plane = h * w;
    let lanes = S::F32_LANES;
    let ph = Phases::new(w, wo, taps);
    let size = ph.sw * ph.pitch;
    let rows = &mut rows[..2 * size];
    // Zeros where no row is built: the padding around each phase.
    rows.fill(0.0);
    // Phase and element offset of each tap (`d mod sw`, `left + floor(d / sw)`).
    let tap = |kx: usize| {
        let d = (kx * dw) as isize - pl as isize;
        let (q, r) = (
            d.div_euclid(sw as isize),
            d.rem_euclid(sw as isize) as usize,
        );
        r * ph.pitch + (ph.left as isize + q) as usize
    };
    // The runs of output pixels along output rows, the first from `first`'s column: run `n`
    // (from 0) is on output row `first / wo + n`, from column `first % wo` for the first and
    // 0 for the others.
    let (oy0, ox0) = (first / wo, first % wo);
    let runs = if len == 0 {
        0
    } else {
        (first + len - 1) / wo - oy0 + 1
    };
    let run_of = |n: usize| {
        let ox = if n == 0 { ox0 } else { 0 };
        let at = if n == 0 { 0 } else { wo - ox0 + (n - 1) * wo };
        (oy0 + n, ox, at, (wo - ox).min(len - at))
    };
    for c in 0..chans {
        let from = &src[c * plane..][..plane];
        for ky in 0..kh {
            let input_row = |n: usize| {
                let iy = ((oy0 + n) * sh + ky * dh).wrapping_sub(pt);
                (iy < h).then(|| &from[iy * w..][..w])
            };
            // Each row is split one run ahead of the copies out of it, into the other half of
            // `rows`: the copies' loads, at any offset, then read lines the split's stores
            // have long left instead of waiting for them (a load spanning two recent stores
            // cannot be forwarded from them).
            if let Some(row) = input_row(0).filter(|_| !column) {
                split_row(simd, row, ph, &mut rows[..size]);
            }
            for n in 0..runs {
                if n + 1 < runs && !column {
                    if let Some(row) = input_row(n + 1) {
                        let half = (n + 1) % 2 * size;
                        split_row(simd, row, ph, &mut rows[half..half + size]);
                    }
                }
                let (_, ox, at, run) = run_of(n);
                let out_row = |kx: usize| ((c * kh + ky) * kw + kx) * pitch + at;
                let Some(row) = input_row(n) else {
                    for kx in 0..kw {
                        block[out_row(kx)..][..run].fill(0.0);
                    }
                    continue;
                };
                if column {
                    let out = &mut block[out_row(0)..][..run];
                    column_run(simd, row, out, (ox, run), cols, (sw, pl));
                    continue;
                }
                let split = &rows[n % 2 * size..][..size];
                for kx in 0..kw {
                    let src = &split[tap(kx) + ox..];
                    let dst = &mut block[out_row(kx)..][..run];
                    let mut j = 0;
                    while j + lanes <= run {
                        st(simd, dst, j, ld(simd, src, j));
                        j += lanes;
                    }
                    if j < run {
                        st_part(simd, dst, j, run - j, ld(simd, src, j));
                    }
                }
            }
        }
    }
}

/// One run of output pixels `ox..ox + run` of a one-column window, straight from input row
/// `row` into `out` (`run` floats): at `sw == 2` the even lanes of two vectors of the row, masked
/// at its end; at `sw == 1` a copy; other strides float by float; zero where the tap reads
/// padding (outside output columns `cols`, those whose input column `ox sw - pl` is in the row).
#[inline(always)]
fn column_run<S: Simd>(
    simd: S,
    row: &[f32],
    out: &mut [f32],
    (ox, run): (usize, usize),
    cols: (usize, usize),
    (sw, pl): (usize, usize),
) {
    let lanes = S::F32_LANES;
    let (lo, hi) = (cols.0.clamp(ox, ox + run), cols.1.clamp(ox, ox + run));
    if lo >= hi {
        out.fill(0.0);
        return;
    }
    out[..lo - ox].fill(0.0);
    out[hi - ox..].fill(0.0);
    let cols = &row[lo * sw - pl..];
    let inner = &mut out[lo - ox..hi - ox];
    match sw {
        1 => inner.copy_from_slice(&cols[..inner.len()]),
        2 if lanes > 1 => {
            for (j, dst) in inner.chunks_mut(lanes).enumerate() {
                let (a, b) = pair(simd, cols, 2 * lanes * j);
                let (even, _) = crate::inplace::deinterleave(simd, a, b);
                st_part(simd, dst, 0, dst.len(), even);
            }
        }
        _ => {
            for (j, d) in inner.iter_mut().enumerate() {
                *d = cols[j * sw];
            }
        }
    }
}

/// Two vectors of `src` from float `at` (`at` may be past the end), masked at `src`'s end:
/// lanes past it are zero.
#[inline(always)]
fn pair<S: Simd>(simd: S, src: &[f32], at: usize) -> (S::f32s, S::f32s) {
    let lanes = S::F32_LANES;
    let n = src.len().saturating_sub(at).min(2 * lanes);
    if n == 2 * lanes {
        return (ld(simd, src, at), ld(simd, src, at + lanes));
    }
    let (na, nb) = (n.min(lanes), n - n.min(lanes));
    let at = at.min(src.len());
    (ld_part(simd, src, at, na), ld_part(simd, src, at + na, nb))
}

/// Splits input row `row` into its phases in `rows` (see [`Phases`]): elements `0..built` of
/// each, zeros past the row's end.
#[inline(always)]
fn split_row<S: Simd>(simd: S, row: &[f32], ph: Phases, rows: &mut [f32]) {
    let (lanes, w, left) = (S::F32_LANES, row.len(), ph.left);
    match ph.sw {
        1 => {
            let mut m = 0;
            while m < ph.built {
                let n = (w - m).min(lanes);
                st(simd, rows, left + m, ld_part(simd, row, m, n));
                m += lanes;
            }
        }
        2 if lanes > 1 => {
            let mut m = 0;
            while m < ph.built {
                let (a, b) = pair(simd, row, 2 * m);
                let (even, odd) = crate::inplace::deinterleave(simd, a, b);
                st(simd, rows, left + m, even);
                st(simd, rows, ph.pitch + left + m, odd);
                m += lanes;
            }
        }
        sw => {
            for r in 0..sw {
                let phase = &mut rows[r * ph.pitch + left..][..ph.built];
                for (m, d) in phase.iter_mut().enumerate() {
                    *d = row.get(sw * m + r).copied().unwrap_or(0.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_fit_the_scratch_of_the_plane_and_cover_the_span() {
        for chans in [1, 3, 64, 256, 1000, 2304, 100_000] {
            for plane in [1, 15, 16, 17, 196, 784, 3136, 100_000] {
                let len = gather_len(chans, plane);
                for span in [1, plane / 2, plane.saturating_sub(1), plane] {
                    let span = span.max(1);
                    let px = gather_pixels(chans, span);
                    assert_eq!(px % LINE, 0);
                    assert!(chans * px + LINE <= len, "{chans} {plane} {span}");
                    assert!(px >= LINE);
                }
            }
        }
    }

    #[test]
    fn gathers_every_tap_of_every_pixel() {
        // 1x1 at strides 3 (float by float), 2 (deinterleaved: rows of 37 columns are a whole
        // vector and a masked one on AVX-512, the second pair cut at the row's end) and 1
        // (copies); 3x3 and 1x5 windows with padding on each side, dilation, per-axis strides.
        let cases = [
            (7, 9, (1, 1), (2, 3), (1, 1), (0, 0)),
            (5, 37, (1, 1), (1, 2), (1, 1), (0, 0)),
            (3, 66, (1, 1), (2, 2), (1, 1), (0, 0)),
            (9, 40, (3, 3), (2, 2), (1, 1), (1, 1)),
            (8, 35, (3, 3), (1, 1), (1, 1), (1, 1)),
            (7, 13, (3, 3), (2, 3), (2, 2), (2, 3)),
            (6, 50, (1, 5), (1, 2), (1, 2), (0, 4)),
            (2, 3, (3, 3), (2, 2), (1, 1), (1, 1)),
        ];
        for (h, w, k, stride, dilation, pad) in cases {
            let taps = Taps {
                k,
                stride,
                dilation,
                pad,
            };
            for isa in crate::Isa::available() {
                check_gather(isa, h, w, taps);
            }
        }
    }

    fn check_gather(isa: crate::Isa, h: usize, w: usize, taps: Taps) {
        let chans = 2;
        let ((kh, kw), (sh, sw), (dh, dw), (pt, pl)) =
            (taps.k, taps.stride, taps.dilation, taps.pad);
        // Output size with the same padding on both sides.
        let ho = (h + 2 * pt - dh * (kh - 1) - 1) / sh + 1;
        let wo = (w + 2 * pl - dw * (kw - 1) - 1) / sw + 1;
        let src: Vec<f32> = (0..chans * h * w).map(|i| i as f32 + 1.0).collect();
        let (first, len) = (1.min(ho * wo - 1), ho * wo - 1.min(ho * wo - 1));
        let pitch = len.next_multiple_of(LINE);
        let rows = chans * kh * kw;
        let mut block = vec![-1.0; rows * pitch];
        struct Gather<'a> {
            src: &'a [f32],
            hw: (usize, usize),
            wo: usize,
            taps: Taps,
            run: (usize, usize),
            block: &'a mut [f32],
            pitch: usize,
        }
        impl pulp::WithSimd for Gather<'_> {
            type Output = ();
            fn with_simd<S: Simd>(self, simd: S) {
                let (src, hw, wo, taps, run, pitch) =
                    (self.src, self.hw, self.wo, self.taps, self.run, self.pitch);
                let mut rows = vec![f32::NAN; gather_row_len(hw.1, wo, taps)];
                gather(
                    simd, src, hw, wo, taps, 2, run, self.block, pitch, &mut rows,
                )
            }
        }
        let op = Gather {
            src: &src,
            hw: (h, w),
            wo,
            taps,
            run: (first, len),
            block: &mut block,
            pitch,
        };
        isa.run(op).unwrap();
        for c in 0..chans {
            for ky in 0..kh {
                for kx in 0..kw {
                    let r = (c * kh + ky) * kw + kx;
                    for j in 0..len {
                        let q = first + j;
                        let iy = (q / wo * sh + ky * dh) as isize - pt as isize;
                        let ix = (q % wo * sw + kx * dw) as isize - pl as isize;
                        let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                        let want = if inside {
                            src[c * h * w + iy as usize * w + ix as usize]
                        } else {
                            0.0
                        };
                        assert_eq!(
                            block[r * pitch + j],
                            want,
                            "{isa}: {h}x{w} {taps:?} channel {c} tap ({ky}, {kx}) pixel {q}"
                        );
                    }
                    // Nothing past the run.
                    assert!(block[r * pitch + len..(r + 1) * pitch]
                        .iter()
                        .all(|&v| v == -1.0));
                }
            }
        }
    }
}
