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

use crate::__private::{ld, ld_part, st_part, LINE};

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

/// The block of `chans * pixels` floats in `scratch` (at least [`gather_len`] floats), starting
/// on a cache line.
#[inline(always)]
pub fn gather_block(scratch: &mut [f32], chans: usize, pixels: usize) -> &mut [f32] {
    let skip = scratch.as_ptr().align_offset(LINE * 4).min(LINE);
    &mut scratch[skip..][..chans * pixels]
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

/// Copies, for output pixels `first..first + len`, the input each tap of the window reads from
/// `src` (`chans` planes of `h x w` floats, `h * w` apart) into `block`: row `(c * kh + ky) *
/// kw + kx` (from float `row * pitch`, `pitch >= len`) holds channel `c`'s input under tap
/// `(ky, kx)`, zero where the tap reads padding. Output pixel `q` (row `q / wo`, column `q %
/// wo`) reads input pixel `(oy sh + ky dh - pad_top, ox sw + kx dw - pad_left)`, as PyTorch's
/// weight `(out, in / groups, kh, kw)` flattens, so a GEMM of the weights with the block is the
/// convolution. At `sw == 2` a vector of pixels is the even lanes of two vectors of the input
/// row (`inplace::deinterleave`), masked at the row's end; at `sw == 1` a copy of the run; other
/// strides copy float by float.
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
) {
    let Taps {
        k: (kh, kw),
        stride: (sh, sw),
        dilation: (dh, dw),
        pad: (pt, pl),
    } = taps;
    let plane = h * w;
    let lanes = S::F32_LANES;
    for c in 0..chans {
        let from = &src[c * plane..][..plane];
        for ky in 0..kh {
            for kx in 0..kw {
                let to = &mut block[((c * kh + ky) * kw + kx) * pitch..][..len];
                // Output columns whose input column `ox sw + kx dw - pl` lies in `0..w`.
                let shift = kx * dw;
                let ox_lo = pl.saturating_sub(shift).div_ceil(sw);
                let ox_hi = if w + pl > shift {
                    ((w + pl - shift - 1) / sw + 1).min(wo)
                } else {
                    0
                };
                // The runs of output pixels along output rows: the first from `first`'s column.
                let (mut next_oy, mut next_ox) = (first / wo, first % wo);
                let mut at = 0;
                while at < len {
                    let (oy, ox) = (next_oy, next_ox);
                    let run = (wo - ox).min(len - at);
                    let out = &mut to[at..at + run];
                    (next_oy, next_ox, at) = (oy + 1, 0, at + run);
                    let iy = (oy * sh + ky * dh).wrapping_sub(pt);
                    let (lo, hi) = (ox_lo.clamp(ox, ox + run), ox_hi.clamp(ox, ox + run));
                    if iy >= h || lo >= hi {
                        out.fill(0.0);
                        continue;
                    }
                    out[..lo - ox].fill(0.0);
                    out[hi - ox..].fill(0.0);
                    let row = &from[iy * w..][..w];
                    // Input columns of outputs `lo..hi`.
                    let cols = &row[lo * sw + shift - pl..];
                    let inner = &mut out[lo - ox..hi - ox];
                    match sw {
                        1 => inner.copy_from_slice(&cols[..inner.len()]),
                        2 if lanes > 1 => {
                            for (j, dst) in inner.chunks_mut(lanes).enumerate() {
                                let pair = &cols[2 * lanes * j..];
                                let n = pair.len().min(2 * lanes);
                                let (a, b) = if n == 2 * lanes {
                                    (ld(simd, pair, 0), ld(simd, pair, lanes))
                                } else {
                                    let a = ld_part(simd, pair, 0, n.min(lanes));
                                    (a, ld_part(simd, pair, n.min(lanes), n - n.min(lanes)))
                                };
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
                gather(simd, src, hw, wo, taps, 2, run, self.block, pitch)
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
