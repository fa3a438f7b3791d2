//! 1x1 convolutions with a stride (ResNet's downsampling shortcuts): the pointwise GEMM over a
//! block of gathered pixels.
//!
//! A pointwise tile loads vectors of neighbouring pixels, which a stride scatters over the
//! input. The generated body therefore copies the input pixels of a run of output pixels, every
//! input channel of the group, into a block of scratch ([`gather`]), then runs the same GEMM
//! stage as a stride-1 pointwise layer over the block. A block holds at most
//! [`GATHER_BYTES`], so it stays in L2 while every output-channel tile reads it.
//!
//! Measured on `resnet_ds_256_512_56_s2` (256 -> 512, 56 x 56 -> 28 x 28; Zen 4, 1 thread,
//! throwaway per-call timer, 10th percentiles): the direct body it replaces (`t8r3c`, rows of
//! output columns, one input channel at a time) 2186-2227 us, this body with a float-by-float
//! gather 1902-1924 (`perf annotate`: the gather's scalar loop 10% of the samples), with the
//! stride-2 vector gather 1876-1882 (the gather under 1%). Beside XNNPACK in one sitting
//! (`with_ours.py`, 7 rounds, medians): 1 thread 2386 -> 2064 us (XNNPACK 1975, 10th
//! percentiles 1916 against 1930), 2 threads 1129 -> 985 (XNNPACK 995).

use pulp::Simd;

use crate::__private::LINE;

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

/// Copies output pixels `first..first + len` of a 1x1 convolution with strides `(sh, sw)` from
/// `src` (`chans` planes of `h x w` floats, `h * w` apart) into `block`: channel `c`'s pixels
/// from float `c * pitch`. Output pixel `q` (row `q / wo`, column `q % wo`) reads input pixel
/// `(q / wo * sh, q % wo * sw)`. At `sw == 2` a vector of pixels is the even lanes of two
/// vectors of the row (`inplace::deinterleave`), masked at the row's end; other strides copy
/// float by float.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn gather<S: Simd>(
    simd: S,
    src: &[f32],
    (h, w): (usize, usize),
    wo: usize,
    (sh, sw): (usize, usize),
    chans: usize,
    (first, len): (usize, usize),
    block: &mut [f32],
    pitch: usize,
) {
    let plane = h * w;
    let lanes = S::F32_LANES;
    for c in 0..chans {
        let from = &src[c * plane..][..plane];
        let to = &mut block[c * pitch..][..len];
        let mut q = first;
        let mut at = 0;
        while at < len {
            let (oy, ox) = (q / wo, q % wo);
            let run = (wo - ox).min(len - at);
            let row = &from[oy * sh * w..][..w];
            let out = &mut to[at..at + run];
            if sw == 2 && lanes > 1 {
                // Columns `2 ox ..` of the row: per vector of outputs the two vectors of the
                // row that hold their columns, the last ones cut at the row's end.
                let cols = &row[2 * ox..];
                for (j, dst) in out.chunks_mut(lanes).enumerate() {
                    let pair = &cols[2 * lanes * j..];
                    let pair = &pair[..pair.len().min(2 * lanes)];
                    let (lo, hi) = pair.split_at(pair.len().min(lanes));
                    let a = simd.partial_load_f32s(lo);
                    let b = simd.partial_load_f32s(hi);
                    let (even, _) = crate::inplace::deinterleave(simd, a, b);
                    simd.partial_store_f32s(dst, even);
                }
            } else {
                for (j, d) in out.iter_mut().enumerate() {
                    *d = row[(ox + j) * sw];
                }
            }
            q += run;
            at += run;
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
    fn gathers_every_strided_pixel() {
        // Stride 3 copies float by float; stride 2 deinterleaves vectors, rows of 37 columns
        // (19 outputs: a whole vector and a masked one on AVX-512, the second pair cut at the
        // row's end) and of 9.
        for (h, w, sh, sw) in [(7, 9, 2, 3), (5, 37, 1, 2), (6, 9, 3, 2), (3, 66, 2, 2)] {
            for isa in crate::Isa::available() {
                check_gather(isa, h, w, sh, sw);
            }
        }
    }

    fn check_gather(isa: crate::Isa, h: usize, w: usize, sh: usize, sw: usize) {
        let chans = 2;
        let (ho, wo) = ((h - 1) / sh + 1, (w - 1) / sw + 1);
        let src: Vec<f32> = (0..chans * h * w).map(|i| i as f32).collect();
        let pitch = (ho * wo).next_multiple_of(LINE);
        let mut block = vec![-1.0; chans * pitch];
        let (first, len) = (2, ho * wo - 3);
        struct Gather<'a> {
            src: &'a [f32],
            hw: (usize, usize),
            wo: usize,
            s: (usize, usize),
            run: (usize, usize),
            block: &'a mut [f32],
            pitch: usize,
        }
        impl pulp::WithSimd for Gather<'_> {
            type Output = ();
            fn with_simd<S: Simd>(self, simd: S) {
                gather(
                    simd, self.src, self.hw, self.wo, self.s, 2, self.run, self.block, self.pitch,
                )
            }
        }
        let op = Gather {
            src: &src,
            hw: (h, w),
            wo,
            s: (sh, sw),
            run: (first, len),
            block: &mut block,
            pitch,
        };
        isa.run(op).unwrap();
        for c in 0..chans {
            for k in 0..len {
                let q = first + k;
                let want = src[c * h * w + q / wo * sh * w + q % wo * sw];
                assert_eq!(
                    block[c * pitch + k],
                    want,
                    "{isa}: {h}x{w} channel {c} pixel {q}"
                );
            }
            assert!(block[c * pitch + len..(c + 1) * pitch]
                .iter()
                .all(|&v| v == -1.0));
        }
    }
}
