//! Depthwise streams over channel pairs on narrow planes (AVX-512).
//!
//! A streaming tile (see the generated `__run_stream_*` bodies) puts one channel's output row in
//! a vector: on planes whose output rows are at most half a vector wide (7 x 7 outputs of
//! MobileNet's and EfficientNet's last stages, on 16 lanes) most of every FMA is spent on lanes
//! past the row. Here a vector holds the same row of two channels, the first in lanes `0..wo`,
//! the second in lanes `8..8 + wo`, so every FMA does the work of two. Each input row of the
//! pair is loaded once per channel (a masked load of `w <= 16` floats), and each tap column's
//! vector comes out of one two-source permute with zero masking (`vpermt2ps`): lane `j` of the
//! first half takes column `sw j + dw kx - pad_left` of the first channel's row, the second half
//! the same column of the second's, and lanes whose column lies in the padding (or past `wo`)
//! are zero. The index vectors and masks depend only on the widths and are made once per call.
//! Rows stream as in the generated tiles: one step per output row, a ring of `SLOTS`
//! accumulators per pair, each input row added into every output row that reads it; the loops
//! are written out (`unroll!`) so that the ring and the weights stay in registers.
//!
//! Against the stream (Zen 4, both builds as peers of `with_ours.py` in the same 9 rounds,
//! medians, 1 thread): 3x3 stride 2 on 576 x 14 x 14 21.3 -> 15.2 us, 5x5 stride 2 on 672 x 14 x
//! 14 54.0 -> 33.5, 5x5 on 1152 x 7 x 7 64.1 -> 60.1, 3x3 on 960 x 7 x 7 18.2 -> 18.1 (2 threads
//! 11.3 -> 10.4). The plan takes it for kernels up to 25 taps (7x7 not measured).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::__m512i;
use core::ops::Range;

use pulp::Simd;

use crate::activation::Activation;
use crate::dispatch::as_isa;
use crate::planes::PlanesMut;

/// Lanes per channel of a pair: the second channel starts at this lane.
const HALF: usize = 8;

/// Whether [`dw_pairs`] runs rows of `w` input and `wo` output columns on vectors of `lanes`:
/// on AVX-512 (16 lanes), an output row fits half a vector and an input row one.
#[inline(always)]
pub fn dw_pairs_prefer(lanes: usize, w: usize, wo: usize) -> bool {
    lanes == 2 * HALF && wo <= HALF && w <= 2 * HALF
}

/// What a pair stream computes: the layer's geometry along the rows and columns, its weights and
/// biases (one input channel per group, one output channel per unit), the activation's bounds.
#[derive(Clone, Copy)]
pub struct PairLayer<'a> {
    /// `k x k` weights per channel (`KH * KW`), channel `c` at `c * KH * KW`.
    pub weights: &'a [f32],
    /// One per channel.
    pub bias: &'a [f32],
    /// Channels per image (the groups).
    pub channels: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    /// Applied before each store.
    pub act: Activation,
}

/// `body` once for each `$i` in `0..$n` (`$n <= 8`), written out with `$i` a constant, so that
/// every array index in it is one: left to LLVM, the nested tap loops of 5x5 were not unrolled,
/// and the ring of accumulators and the weights went through the stack (a 3 KB memset per tile),
/// twice the stream's time.
#[cfg(target_arch = "x86_64")]
macro_rules! unroll {
    ($i:ident in 0..$n:expr => $body:block) => {
        unroll!(@ $i, $n, $body, [0 1 2 3 4 5 6 7])
    };
    // Over the pairs of a tile (`PAIRS`, a plain constant: its dead copies would index the
    // tile's arrays out of bounds in plain sight).
    ($i:ident in pairs => $body:block) => {
        unroll!(@ $i, PAIRS, $body, [0 1])
    };
    (@ $i:ident, $n:expr, $body:block, [$($k:literal)*]) => {
        $({
            #[allow(non_upper_case_globals)]
            const $i: usize = $k;
            if $i < $n $body
        })*
    };
}

/// Channel pairs per tile: two pairs keep `2 SLOTS` accumulator chains in flight, enough for
/// the FMA latency at stride 1 and 2 (3 and 2 slots of 3x3).
#[cfg(target_arch = "x86_64")]
const PAIRS: usize = 2;
// `unroll!(p in pairs ..)` writes out pairs 0 and 1.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(PAIRS == 2);

/// The units `units` (planes `u` of `input`: image `u / channels`, channel `u % channels`, each
/// `h x w`) over output rows `span`, into `output` (plane `u - units.start`, its row 0 the span's
/// first row, `wo` wide) on pairs of channels, with kernel `KH x KW`, stride `SH x SW`, dilation
/// `DH x DW`, `SLOTS = (KH - 1) DH / SH + 1` output rows in flight and `TAPS = KH KW`. Returns
/// `false` (having done nothing) unless `simd` is AVX-512 and [`dw_pairs_prefer`] holds.
//
// Loops written out by `unroll!` (its copies with constant indices: comparisons that always hold
// in some of them, products with 0 or 1).
#[allow(
    clippy::too_many_arguments,
    clippy::needless_range_loop,
    clippy::absurd_extreme_comparisons,
    clippy::identity_op,
    clippy::erasing_op
)]
#[inline(always)]
pub fn dw_pairs<
    S: Simd,
    const KH: usize,
    const KW: usize,
    const SH: usize,
    const SW: usize,
    const DH: usize,
    const DW: usize,
    const SLOTS: usize,
    const TAPS: usize,
>(
    simd: S,
    layer: PairLayer<'_>,
    input: &[f32],
    output: &mut PlanesMut<'_>,
    (h, w, wo): (usize, usize, usize),
    units: Range<usize>,
    span: Range<usize>,
) -> bool {
    const {
        assert!(TAPS == KH * KW && SLOTS == (KH - 1) * DH / SH + 1);
        assert!(
            KH <= 8 && KW <= 8 && SH <= 8 && SLOTS <= 8,
            "dw_pairs unrolls up to 8"
        );
    };
    if !dw_pairs_prefer(S::F32_LANES, w, wo) {
        return false;
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (simd, layer, input, output, h, units, span);
        false
    }
    #[cfg(target_arch = "x86_64")]
    {
        let Some(v4) = as_isa::<S, pulp::x86::V4>(simd) else {
            return false;
        };
        let f = v4.avx512f;
        let plane_in = h * w;
        // Per tap column: the permute index of each lane and the lanes whose column is in the row.
        let mut idx = [[0i32; 16]; KW];
        let mut live = [0u16; KW];
        for kx in 0..KW {
            for j in 0..wo {
                let col = (SW * j + DW * kx) as isize - layer.pad_left as isize;
                if col >= 0 && (col as usize) < w {
                    idx[kx][j] = col as i32;
                    idx[kx][HALF + j] = 16 + col as i32;
                    live[kx] |= (1 << j) | (1 << (HALF + j));
                }
            }
        }
        let idx: [__m512i; KW] = idx.map(bytemuck::cast);
        let in_row: u16 = ((1u32 << w) - 1) as u16;
        let (oy0, nrows) = (span.start, span.end - span.start);
        let ch = layer.channels;
        let zero = f._mm512_setzero_ps();
        let out_row: u16 = ((1u32 << wo) - 1) as u16;
        // (Written out in the loop rather than as a closure: a closure is not compiled with the
        // caller's target features, so its intrinsics become calls.)
        macro_rules! store {
            ($p:expr, $row:expr, $v:expr) => {{
                let mut v: S::f32s = bytemuck::cast($v);
                // A bound that is infinite is no clamp (the generated layer's constant: these
                // tests fold away).
                let (lo, hi) = layer.act.bounds();
                if lo != f32::NEG_INFINITY {
                    v = crate::__private::clamp_min(simd, v, lo);
                }
                if hi != f32::INFINITY {
                    v = crate::__private::clamp_max(simd, v, hi);
                }
                let dst = &mut output.plane($p)[$row * wo..][..wo];
                // SAFETY: the lanes `0..wo` that `out_row` stores are the `wo` floats of `dst`;
                // masked lanes are not written.
                unsafe { f._mm512_mask_storeu_ps(dst.as_mut_ptr(), out_row, bytemuck::cast(v)) };
            }};
        }
        let last = units.end - 1;
        let mut u = units.start;
        while u < units.end {
            // Units of this tile, the last one repeated past the span's end (computed, not stored).
            let us: [usize; 2 * PAIRS] = core::array::from_fn(|i| (u + i).min(last));
            let mut wv = [[zero; TAPS]; PAIRS];
            let mut bias = [zero; PAIRS];
            let mut rows_of: [[&[f32]; 2]; PAIRS] = [[&[]; 2]; PAIRS];
            unroll!(p in pairs => {
                let (a, b) = (us[2 * p], us[2 * p + 1]);
                let (ca, cb) = (a % ch, b % ch);
                let (wa, wb) = (
                    &layer.weights[ca * TAPS..][..TAPS],
                    &layer.weights[cb * TAPS..][..TAPS],
                );
                // (A macro, not a closure: see `store`.)
                macro_rules! half {
                    ($x:expr, $y:expr) => {
                        f._mm512_mask_blend_ps(0xFF00, f._mm512_set1_ps($x), f._mm512_set1_ps($y))
                    };
                }
                unroll!(ky in 0..KH => {
                    unroll!(kx in 0..KW => {
                        let t = ky * KW + kx;
                        wv[p][t] = half!(wa[t], wb[t]);
                    });
                });
                bias[p] = half!(layer.bias[ca], layer.bias[cb]);
                // Unit `u` is plane `u` of the input: image `u / ch`, channel `u % ch`.
                rows_of[p] = [
                    &input[a * plane_in..][..plane_in],
                    &input[b * plane_in..][..plane_in],
                ];
            });
            let mut acc = [[zero; SLOTS]; PAIRS];
            for n in 0..nrows + SLOTS - 1 {
                unroll!(p in pairs => {
                    acc[p][0] = bias[p];
                });
                // Whether slot `k` holds an output row of the span (the others are never stored).
                let in_span = |k: usize| n >= k && n - k < nrows;
                unroll!(q in 0..SH => {
                    // Input row `(oy0 + n) SH + q - pad_top`; rows in the padding add nothing.
                    let iy = ((oy0 + n) * SH + q).wrapping_sub(layer.pad_top);
                    if iy < h {
                        unroll!(p in pairs => {
                            let [ra, rb] = rows_of[p];
                            let (ra, rb) = (&ra[iy * w..][..w], &rb[iy * w..][..w]);
                            // SAFETY: the lanes `0..w` that `in_row` loads are the `w` floats of
                            // `ra` / `rb`; masked lanes are not read.
                            let (va, vb) = unsafe {
                                (
                                    f._mm512_maskz_loadu_ps(in_row, ra.as_ptr()),
                                    f._mm512_maskz_loadu_ps(in_row, rb.as_ptr()),
                                )
                            };
                            unroll!(kx in 0..KW => {
                                let t = f._mm512_maskz_permutex2var_ps(live[kx], va, idx[kx], vb);
                                unroll!(ky in 0..KH => {
                                    // Kernel row `ky` reads this row for the output row in slot
                                    // `k` when `ky DH = k SH + q`.
                                    if ky * DH >= q && (ky * DH - q) % SH == 0 {
                                        let k = (ky * DH - q) / SH;
                                        if k < SLOTS && in_span(k) {
                                            let wt = wv[p][ky * KW + kx];
                                            acc[p][k] = f._mm512_fmadd_ps(t, wt, acc[p][k]);
                                        }
                                    }
                                });
                            });
                        });
                    }
                });
                if n + 1 >= SLOTS {
                    let row = n + 1 - SLOTS;
                    unroll!(p in pairs => {
                        let v = acc[p][SLOTS - 1];
                        if u + 2 * p <= last {
                            store!(u + 2 * p - units.start, row, v);
                        }
                        if u + 2 * p < last {
                            let hi = f._mm512_shuffle_f32x4::<0b0100_1110>(v, v);
                            store!(u + 2 * p + 1 - units.start, row, hi);
                        }
                    });
                }
                // The ring moves on: slot `k` takes slot `k - 1`'s row, from the oldest down.
                unroll!(j in 0..SLOTS => {
                    if j + 1 < SLOTS {
                        let k = SLOTS - 1 - j;
                        unroll!(p in pairs => {
                            acc[p][k] = acc[p][k - 1];
                        });
                    }
                });
            }
            u += 2 * PAIRS;
        }
        true
    }
}
