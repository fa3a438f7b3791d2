//! Winograd F(2x2, 3x3) with vector lanes over channels, for grouped 3x3 stride-1 layers whose
//! groups have a whole number of vectors of input and output channels.
//!
//! The arithmetic is the one of the [`winograd`](crate::winograd) module (`B`, `G`, `A` and the
//! 16 products per point `xi` of the transformed tile); what differs is the layout. There, lanes
//! run over tiles, and on 16 lanes a 14-wide plane's tile row (7 tiles) fills 7 of them in both
//! transforms. Here they run over channels, which fill every lane whatever the plane:
//! 1. the rows a chunk of tile rows reads are transposed into `T[row][column][ci]` (zero
//!    columns and rows for the padding), 16 x 16 blocks in registers on AVX-512;
//! 2. the input transform loads each tile's 4 x 4 patch as 16 vectors of channels from `T` and
//!    writes `V[tile][xi][ci]`;
//! 3. per point `xi`, `M[tile][xi][co] = sum_ci V[tile][xi][ci] U[xi][ci][co]`: register tiles
//!    of up to `NT` tiles x one or two vectors of output channels, each FMA taking its `V` from
//!    memory as a broadcast;
//! 4. the output transform adds the bias, applies the activation and writes
//!    `O[row][column][co]`, which is transposed back into the output planes.
//!
//! `T`, `V`, `M` and `O` start on cache lines (all their rows are whole vectors of channels),
//! and each tile's 16 points of `V` and `M` are one contiguous run: the transforms store and
//! load a tile's points at constant offsets of one address. With the points `[xi][tile]` apart
//! and the scratch as the allocator left it (16 bytes past a line, so every vector straddled
//! two), the transforms took half the time of a 16-channel group's layer; both changes together
//! (AVX-512, throwaway timer, minimum of 3 alternating runs, us): 64 channels on 56 x 56 807 ->
//! 687, 128 on 28 x 28 757 -> 701, 256 on 14 x 14 984 -> 959, 32 groups of 32 on 14 x 14 587 ->
//! 495 and on 7 x 7 195 -> 162, 16 groups of 32 on 14 x 14 270 -> 222.
//!
//! Tile rows start at even output rows, so a call split over threads by rows computes what one
//! call does, to the bit; a group whose input holds an infinity or NaN is computed directly, as
//! in the other layout.

use pulp::Simd;

use crate::__private::{ld, st, LINE};
use crate::winograd::{activate, input_patch, output_tile, unit_operands, Unit, WinoLayer, XI};

/// Floats of `T` a chunk of tile rows may take (16 KiB: it stays in L1 while the input
/// transform reads each float four times).
const CHUNK_T_FLOATS: usize = 4 * 1024;

/// Floats of `V` and `M` a chunk may take (128 KiB: in L2 on every core of the last decade).
/// The products run point by point over the whole chunk, so each point's `U` (4 KiB for 32
/// channels in and out) is read once per chunk and stays in L1, while `V` and `M` stream
/// through L2. With pieces of 16 tiles run through all four steps in turn instead (all
/// of `V` and `M` in L1, `U` read once per piece), 32 x 32-channel groups ran 2.1 times
/// slower: their `U` (64 KiB per group) came from L2 at every piece.
const CHUNK_VM_FLOATS: usize = 32 * 1024;

/// Floats a chunk and the group's whole `U` may take to stay in L1 together (40 of 48 KiB).
/// Where they fit, a chunk is as many tile rows as do (see [`l1_rows`]): 32 groups of 16
/// channels on 14 x 14 ran 124-125 us in chunks of one tile row (36 KiB with `U`), 143-153 in
/// two (54 KiB) and 138-144 in one chunk of all seven (throwaway timer, two runs each).
const CHUNK_L1_FLOATS: usize = 10 * 1024;

/// Largest product tiles: `NT` (at most `MAX_NT`) tiles x one vector of output channels, or
/// `NT.min(MAX_NT2)` x two (24 accumulators, two weight vectors, room for the broadcast).
const MAX_NT: usize = 16;
const MAX_NT2: usize = 12;

/// Geometry of one chunk: tile rows, tiles per row, `T`'s columns, `O`'s columns.
#[derive(Clone, Copy)]
struct Chunk {
    rows: usize,
    tx: usize,
    /// Columns of `T`: the `2 tx + 2` a tile row reads, from column `-pad_left`.
    tw: usize,
    /// Columns of `O`: `2 tx` rounded up to a whole vector, so the transposes read whole blocks.
    ow: usize,
}

impl Chunk {
    fn new(lanes: usize, wo: usize, ci: usize, co: usize) -> Self {
        let rows = l1_rows(lanes, wo, ci, co).unwrap_or_else(|| {
            let Chunk { tx, tw, .. } = Chunk::of_rows(lanes, wo, 0);
            let by_t = (CHUNK_T_FLOATS / (2 * tw * ci)).saturating_sub(1);
            let by_vm = CHUNK_VM_FLOATS / (XI * (ci + co) * tx);
            // At least `MAX_NT` tiles, whatever the budgets: each chunk reads every point's `U`
            // (`16 ci co` floats), which fewer tiles would not repay (512 channels in and out on
            // 7 x 7: one tile row per chunk, 4 tiles, read its 16 MiB four times per call).
            let min_rows = MAX_NT.div_ceil(tx);
            by_t.min(by_vm).max(min_rows)
        });
        Chunk::of_rows(lanes, wo, rows)
    }

    /// Chunks of `rows` tile rows of `wo`-wide output planes.
    fn of_rows(lanes: usize, wo: usize, rows: usize) -> Self {
        let tx = wo.div_ceil(2);
        Chunk {
            rows,
            tx,
            tw: 2 * tx + 2,
            ow: (2 * tx).next_multiple_of(lanes),
        }
    }

    /// Floats of `T`, `V`, `M` and `O`.
    fn lens(&self, ci: usize, co: usize) -> [usize; 4] {
        let tiles = self.rows * self.tx;
        [
            (2 * self.rows + 2) * self.tw * ci,
            tiles * XI * ci,
            tiles * XI * co,
            2 * self.rows * self.ow * co,
        ]
    }
}

/// The most tile rows per chunk whose `T`, `V`, `M` and `O` fit within [`CHUNK_L1_FLOATS`]
/// beside the group's whole `U` (`16 ci co` floats), if one does.
fn l1_rows(lanes: usize, wo: usize, ci: usize, co: usize) -> Option<usize> {
    let floats = |r: usize| {
        let chunk = Chunk::of_rows(lanes, wo, r);
        XI * ci * co + chunk.lens(ci, co).iter().sum::<usize>()
    };
    (1..).take_while(|&r| floats(r) <= CHUNK_L1_FLOATS).last()
}

/// Whether a layer that also has direct tiles takes this layout on `wo`-wide output planes: on
/// AVX-512 (16 lanes) when a chunk of whole tile rows fits in L1 with the group's `U`
/// ([`l1_rows`]). Then nothing of the four steps leaves L1 and the transforms cost a fraction of
/// what they cost streaming `V` and `M` through L2; otherwise groups too small for the products
/// to repay that (16 channels in and out) keep direct tiles. 32 groups of 16 channels, against
/// direct flat tiles (`t8r3fk`; throwaway timer, 3 alternating runs, us): 7 x 7 49-51 -> 44-46,
/// 14 x 14 147-155 -> 134-135, where no chunk fits: 20 x 20 (16 groups) 142-144 -> 157-166,
/// 28 x 28 595-604 -> 730-747, 56 x 56 2283-2314 -> 2872-3014. NEON keeps direct tiles (its
/// transposes are scalar code; not measured).
pub fn prefer(lanes: usize, wo: usize, ci: usize, co: usize) -> bool {
    lanes == 16 && ci % lanes == 0 && co % lanes == 0 && l1_rows(lanes, wo, ci, co).is_some()
}

/// Floats of scratch [`run`] needs: the four buffers and up to a line to align them.
pub fn scratch_len(lanes: usize, wo: usize, ci: usize, co: usize) -> usize {
    Chunk::new(lanes, wo, ci, co)
        .lens(ci, co)
        .iter()
        .sum::<usize>()
        + LINE
}

/// `U = G g G^T` of PyTorch-layout 3x3 `weight` (`groups * co` x `ci` x 3 x 3) laid out
/// `[group][xi][ci][co]`: a vector of output channels per input channel and point.
pub fn pack(weight: &[f32], groups: usize, ci: usize, co: usize) -> Vec<f32> {
    let u = crate::winograd::pack(weight, groups, ci, co);
    let mut t = vec![0.0f32; u.len()];
    for g in 0..groups {
        for xi in 0..XI {
            let base = (g * XI + xi) * co * ci;
            for o in 0..co {
                for c in 0..ci {
                    t[base + c * co + o] = u[base + o * ci + c];
                }
            }
        }
    }
    t
}

/// Computes `args` of a grouped 3x3 stride-1 layer (dilation 1, `PL = pad_left <= 2`) whose
/// groups have `CI` input and `CO` output channels, both multiples of the vector's lanes (the
/// caller checks), from `u` ([`pack`]) and `bias`, in product tiles of `NT` tiles; groups whose
/// input holds an infinity or NaN directly from `weight` (PyTorch layout).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn run<S: Simd, const CI: usize, const CO: usize, const NT: usize, const PL: usize>(
    simd: S,
    u: &[f32],
    weight: &[f32],
    bias: &[f32],
    layer: WinoLayer,
    args: crate::__private::Args<'_>,
) {
    const { assert!(NT >= 1 && NT <= MAX_NT && PL <= 2) };
    let crate::__private::Args {
        input,
        mut output,
        scratch,
        h,
        w,
        wo,
        units,
        span,
        ..
    } = args;
    let lanes = S::F32_LANES;
    assert!(
        CI % lanes == 0 && CO % lanes == 0,
        "whole vectors of channels"
    );
    let ch = Chunk::new(lanes, wo, CI, CO);
    let [tl, vl, ml, ol] = ch.lens(CI, CO);
    // Every buffer's length is a whole number of lines (whole vectors of `CI` or `CO`
    // channels), so aligning the first aligns all.
    let skip = scratch.as_ptr().align_offset(LINE * 4).min(LINE);
    let (tbuf, rest) = scratch[skip..].split_at_mut(tl);
    let (vbuf, rest) = rest.split_at_mut(vl);
    let (mbuf, rest) = rest.split_at_mut(ml);
    let obuf = &mut rest[..ol];
    let plane_in = h * w;
    let tr_first = span.start / 2;
    let tile_rows = span.end.div_ceil(2) - tr_first;
    for unit in units.clone() {
        let Some(Unit {
            planes,
            u: ug,
            bias: bg,
            mut out,
        }) = unit_operands::<S, CI, CO>(
            simd,
            unit,
            (input, u, weight, bias),
            &layer,
            (h, w, wo),
            &span,
            output.planes((unit - units.start) * CO, CO),
        )
        else {
            continue;
        };
        let trow_len = ch.tw * CI;
        let mut tr0 = 0;
        // Rows of `T` the previous chunk left that this one reads first (its last two).
        let mut kept = 0;
        while tr0 < tile_rows {
            let rows = ch.rows.min(tile_rows - tr0);
            // 1. The input rows, channel-minor.
            let iy0 = (2 * (tr_first + tr0)) as isize - layer.pad_top as isize;
            for j in kept..2 * rows + 2 {
                let trow = &mut tbuf[j * trow_len..][..trow_len];
                let iy = iy0 + j as isize;
                if iy < 0 || iy as usize >= h {
                    trow.fill(0.0);
                    continue;
                }
                trow[..PL * CI].fill(0.0);
                trow[(w + PL).min(ch.tw) * CI..].fill(0.0);
                let row = &planes[iy as usize * w..];
                transpose_in::<S, CI>(simd, row, plane_in, w.min(ch.tw - PL), &mut trow[PL * CI..]);
            }
            let tiles = rows * ch.tx;
            // 2. Input transform.
            let (mut r, mut t) = (0, 0);
            for i in 0..tiles {
                for c in (0..CI).step_by(lanes) {
                    let mut d = [simd.splat_f32s(0.0); XI];
                    for (y, d) in d.chunks_exact_mut(4).enumerate() {
                        let at = ((2 * r + y) * ch.tw + 2 * t) * CI + c;
                        let trow = &tbuf[at..][..3 * CI + lanes];
                        for (x, d) in d.iter_mut().enumerate() {
                            *d = ld(simd, trow, x * CI);
                        }
                    }
                    let v = input_patch(simd, &d);
                    let vt = &mut vbuf[i * XI * CI..][..XI * CI];
                    for (xi, v) in v.into_iter().enumerate() {
                        st(simd, vt, xi * CI + c, v);
                    }
                }
                // The next tile, without a division per tile.
                t += 1;
                if t == ch.tx {
                    (r, t) = (r + 1, 0);
                }
            }
            // 3. Products, point by point, in pieces of equal size, as few as hold at most
            // `nt` tiles each (no piece of a few tiles whose FMA chains wait on each other).
            let cov = if CO >= 2 * lanes { 2 } else { 1 };
            let nt = if cov == 2 { NT.min(MAX_NT2) } else { NT };
            // One vector of output channels and at most 8 tiles (a short tile row): two points
            // per pass, for as many FMA chains as a piece of 16 tiles has (32 groups of 16 on
            // 14 x 14, chunks of 7 tiles: 133-138 -> 125-134 us, minimum to median of 8
            // alternating runs).
            let np = if CO == lanes && 2 * tiles <= NT { 2 } else { 1 };
            for xi in (0..XI).step_by(np) {
                let vx = &vbuf[xi * CI..][..(tiles - 1) * XI * CI + np * CI];
                let mx = &mut mbuf[xi * CO..][..(tiles - 1) * XI * CO + np * CO];
                let ux = &ug[xi * CI * CO..][..np * CI * CO];
                let mut cb = 0;
                while cb < CO {
                    // Two vectors of output channels while two are left.
                    let cov = if cb + 2 * lanes <= CO { cov } else { 1 };
                    let pieces = tiles.div_ceil(if cov == 2 { nt } else { NT });
                    let mut t0 = 0;
                    for p in 0..pieces {
                        let nb = (tiles - t0) / (pieces - p);
                        let (v, m) = (&vx[t0 * XI * CI..], &mut mx[t0 * XI * CO..]);
                        product_n::<S, CI, CO>(simd, nb, cov, np, ux, v, m, cb);
                        t0 += nb;
                    }
                    cb += cov * lanes;
                }
            }
            // 4. Output transform.
            let (mut r, mut t) = (0, 0);
            for i in 0..tiles {
                for c in (0..CO).step_by(lanes) {
                    let bo = ld(simd, bg, c);
                    let mut m = [bo; XI];
                    let mt = &mbuf[i * XI * CO..][..XI * CO];
                    for (xi, m) in m.iter_mut().enumerate() {
                        *m = ld(simd, mt, xi * CO + c);
                    }
                    let y = output_tile(simd, &m);
                    for (dy, y) in y.into_iter().enumerate() {
                        for (dx, y) in y.into_iter().enumerate() {
                            let y = activate(simd, &layer, simd.add_f32s(y, bo));
                            let at = ((2 * r + dy) * ch.ow + 2 * t + dx) * CO + c;
                            st(simd, obuf, at, y);
                        }
                    }
                }
                t += 1;
                if t == ch.tx {
                    (r, t) = (r + 1, 0);
                }
            }
            // The next chunk starts two input rows before this one's end.
            tbuf.copy_within(2 * rows * trow_len..(2 * rows + 2) * trow_len, 0);
            kept = 2;
            // The rows of the span back into the planes.
            let oy0 = 2 * (tr_first + tr0);
            for j in 0..2 * rows {
                let oy = oy0 + j;
                if oy < span.start || oy >= span.end {
                    continue;
                }
                let orow = &obuf[j * ch.ow * CO..][..ch.ow * CO];
                transpose_out::<S, CO>(simd, orow, wo, (oy - span.start) * wo, &mut out);
            }
            tr0 += rows;
        }
    }
}

/// [`product`] of `nb` tiles (1 to 16; 1 to 12 with two vectors; 1 to 8 with two points) and
/// `cov` (1 or 2) vectors of output channels, for `np` (1 or 2, with `cov` 1) points.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn product_n<S: Simd, const CI: usize, const CO: usize>(
    simd: S,
    nb: usize,
    cov: usize,
    np: usize,
    ux: &[f32],
    vx: &[f32],
    mx: &mut [f32],
    cb: usize,
) {
    macro_rules! arms {
        ($($n:literal)*; $($m:literal)*; $($p:literal)*) => {
            match (cov, np, nb) {
                $((1, 1, $n) => product::<S, CI, CO, $n, 1, 1>(simd, ux, vx, mx, cb),)*
                $((2, 1, $m) => product::<S, CI, CO, $m, 2, 1>(simd, ux, vx, mx, cb),)*
                $((1, 2, $p) => product::<S, CI, CO, $p, 1, 2>(simd, ux, vx, mx, cb),)*
                _ => unreachable!("pieces of 1 to 16 tiles x 1 vector, 1 to 12 x 2, 1 to 8 x 2 points"),
            }
        };
    }
    arms!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; 1 2 3 4 5 6 7 8 9 10 11 12; 1 2 3 4 5 6 7 8)
}

/// `M[..NB][cb..cb + COV lanes]` of `NP` consecutive points: the sum over the group's input
/// channels of `V[t][ci] U[ci][cb..]` (`ux` holds the points' `[ci][co]`, one after the other;
/// `vx` and `mx` hold the first point's `[ci]` and `[co]` of tile `t` at `t XI CI` and `t XI
/// CO`, the next points' after them).
#[inline(always)]
fn product<
    S: Simd,
    const CI: usize,
    const CO: usize,
    const NB: usize,
    const COV: usize,
    const NP: usize,
>(
    simd: S,
    ux: &[f32],
    vx: &[f32],
    mx: &mut [f32],
    cb: usize,
) {
    let lanes = S::F32_LANES;
    let vt = &vx[..(NB - 1) * XI * CI + NP * CI];
    let mt = &mut mx[..(NB - 1) * XI * CO + NP * CO];
    let mut acc = [[[simd.splat_f32s(0.0); COV]; NP]; NB];
    for c in 0..CI {
        let mut uc = [[simd.splat_f32s(0.0); COV]; NP];
        for (p, uc) in uc.iter_mut().enumerate() {
            for (j, u) in uc.iter_mut().enumerate() {
                *u = ld(simd, ux, (p * CI + c) * CO + cb + j * lanes);
            }
        }
        for (i, a) in acc.iter_mut().enumerate() {
            for (p, (a, uc)) in a.iter_mut().zip(&uc).enumerate() {
                let x = simd.splat_f32s(vt[i * XI * CI + p * CI + c]);
                for (a, &u) in a.iter_mut().zip(uc) {
                    *a = simd.mul_add_e_f32s(u, x, *a);
                }
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        for (p, a) in a.iter().enumerate() {
            for (j, &a) in a.iter().enumerate() {
                st(simd, mt, i * XI * CO + p * CO + cb + j * lanes, a);
            }
        }
    }
}

/// Columns `0..cols` of one input row of `CI` planes (`row` from the first plane's row, planes
/// `plane` floats apart) into `dst[x * CI + c]`.
#[inline(always)]
fn transpose_in<S: Simd, const CI: usize>(
    simd: S,
    row: &[f32],
    plane: usize,
    cols: usize,
    dst: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v4) = crate::dispatch::as_isa::<S, pulp::x86::V4>(simd) {
        let zero = v4.splat_f32s(0.0);
        for c0 in (0..CI).step_by(16) {
            for x0 in (0..cols).step_by(16) {
                let len = (cols - x0).min(16);
                let mut r = [zero; 16];
                if len == 16 {
                    for (k, r) in r.iter_mut().enumerate() {
                        *r = crate::__private::ld(v4, row, (c0 + k) * plane + x0);
                    }
                } else {
                    let mask = crate::dispatch::lanes_between(v4, 0, len as u32);
                    for (k, r) in r.iter_mut().enumerate() {
                        let src = &row[(c0 + k) * plane + x0..][..len];
                        // SAFETY: `src` holds `len` floats (the slice is checked) and the mask
                        // enables lanes `0..len` only.
                        *r = unsafe { v4.mask_load_ptr_f32s(mask, src.as_ptr()) };
                    }
                }
                let r = transpose16(v4, r);
                for (i, r) in r.iter().enumerate().take(len) {
                    crate::__private::st(v4, dst, (x0 + i) * CI + c0, *r);
                }
            }
        }
        return;
    }
    let _ = simd;
    for c in 0..CI {
        let src = &row[c * plane..][..cols];
        for (x, &v) in src.iter().enumerate() {
            dst[x * CI + c] = v;
        }
    }
}

/// One output row of `O` (`[column][co]`, `ow >= wo` columns) into float `at` of each of the
/// `CO` planes of `out`.
#[inline(always)]
fn transpose_out<S: Simd, const CO: usize>(
    simd: S,
    orow: &[f32],
    wo: usize,
    at: usize,
    out: &mut crate::planes::PlanesMut<'_>,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v4) = crate::dispatch::as_isa::<S, pulp::x86::V4>(simd) {
        let zero = v4.splat_f32s(0.0);
        for c0 in (0..CO).step_by(16) {
            for x0 in (0..wo).step_by(16) {
                let len = (wo - x0).min(16);
                let mut r = [zero; 16];
                for (i, r) in r.iter_mut().enumerate() {
                    *r = crate::__private::ld(v4, orow, (x0 + i) * CO + c0);
                }
                let r = transpose16(v4, r);
                for (k, r) in r.into_iter().enumerate() {
                    crate::__private::st_part(v4, out.plane(c0 + k), at + x0, len, r);
                }
            }
        }
        return;
    }
    let _ = simd;
    for o in 0..CO {
        let plane = &mut out.plane(o)[at..][..wo];
        for (x, y) in plane.iter_mut().enumerate() {
            *y = orow[x * CO + o];
        }
    }
}

/// The 16 x 16 transpose of `r` (`out[i][k] = r[k][i]`): four rounds of two-source permutes,
/// round `s` (8, 4, 2, 1) swapping bit `s` of the row index with bit `s` of the lane index.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn transpose16(v4: pulp::x86::V4, r: [pulp::f32x16; 16]) -> [pulp::f32x16; 16] {
    let r = swap_bit::<8>(v4, bytemuck::cast(r));
    let r = swap_bit::<4>(v4, r);
    let r = swap_bit::<2>(v4, r);
    bytemuck::cast(swap_bit::<1>(v4, r))
}

/// Permute indices of round `S` of [`transpose16`]: `(lo, hi)`, the new rows `i` and `i + S`
/// of a pair (`i & S == 0`) from the old ones (indices 16 and up select the second source).
#[cfg(target_arch = "x86_64")]
const fn swap_idx<const S: usize>() -> ([i32; 16], [i32; 16]) {
    let (mut lo, mut hi) = ([0i32; 16], [0i32; 16]);
    let mut l = 0;
    while l < 16 {
        if l & S == 0 {
            lo[l] = l as i32;
            hi[l] = (l + S) as i32;
        } else {
            lo[l] = (16 + l - S) as i32;
            hi[l] = (16 + l) as i32;
        }
        l += 1;
    }
    (lo, hi)
}

/// One round of [`transpose16`], unrolled over the 8 pairs of rows.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn swap_bit<const S: usize>(
    v4: pulp::x86::V4,
    r: [core::arch::x86_64::__m512; 16],
) -> [core::arch::x86_64::__m512; 16] {
    use core::arch::x86_64::__m512i;
    let (lo, hi) = const { swap_idx::<S>() };
    let (lo, hi): (__m512i, __m512i) = (bytemuck::cast(lo), bytemuck::cast(hi));
    let mut o = r;
    // Pair `k` (0..8): rows `i` (bit `S` clear) and `i + S`.
    macro_rules! pair {
        ($($k:literal)*) => {$(
            let i = ($k / S) * 2 * S + $k % S;
            o[i] = v4.avx512f._mm512_permutex2var_ps(r[i], lo, r[i + S]);
            o[i + S] = v4.avx512f._mm512_permutex2var_ps(r[i], hi, r[i + S]);
        )*};
    }
    pair!(0 1 2 3 4 5 6 7);
    o
}

#[cfg(test)]
mod tests {
    use super::WinoLayer;
    use crate::dispatch::on_every_isa;
    use crate::planes::PlanesMut;

    /// `transpose_in` and `transpose_out` on every ISA (AVX-512 in registers, the others by
    /// the scalar loop, which NEON also takes): 32 planes of rows whose lengths leave a
    /// partial block of 16 columns, against the index arithmetic.
    #[test]
    fn row_transposes_move_every_float() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) {
                const C: usize = 32;
                for cols in [1, 7, 16, 21, 40] {
                    let plane = cols + 3;
                    let src: Vec<f32> = (0..C * plane).map(|i| i as f32).collect();
                    let mut dst = vec![-1.0f32; cols * C + 16];
                    super::transpose_in::<S, C>(simd, &src, plane, cols, &mut dst);
                    for x in 0..cols {
                        for c in 0..C {
                            assert_eq!(dst[x * C + c], src[c * plane + x], "in: x {x}, c {c}");
                        }
                    }
                    assert!(
                        dst[cols * C..].iter().all(|&v| v == -1.0),
                        "in: past the row"
                    );
                    // Back: a row of `O` (`ow` columns, a whole number of blocks) into float
                    // `at` of each of `C` planes.
                    let ow = cols.next_multiple_of(16);
                    let orow: Vec<f32> = (0..ow * C).map(|i| i as f32).collect();
                    let (at, stride) = (2, cols + 5);
                    let mut buf = vec![-1.0f32; C * stride];
                    let mut out = PlanesMut::new(&mut buf, C, stride, stride);
                    super::transpose_out::<S, C>(simd, &orow, cols, at, &mut out);
                    for o in 0..C {
                        for x in 0..stride {
                            let want = if (at..at + cols).contains(&x) {
                                orow[(x - at) * C + o]
                            } else {
                                -1.0
                            };
                            assert_eq!(buf[o * stride + x], want, "out: plane {o}, x {x}");
                        }
                    }
                }
            }
        }
        on_every_isa(K);
    }

    /// The whole body on every ISA (with 16, 8 and 1 lanes, standing in for NEON's 4), for
    /// whole planes and a span of rows, against `direct_rows` (a direct convolution in f32).
    #[test]
    fn run_matches_direct_rows_on_every_isa() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) {
                check::<S, 1>(simd, (1, 1), 2, (5, 7), 0..5);
                check::<S, 0>(simd, (0, 2), 1, (9, 4), 3..6);
                check::<S, 2>(simd, (2, 1), 2, (3, 18), 0..5);
            }
        }
        /// Groups of 32 -> 48 channels, `n` images of `h x w`, padding `(top, bottom)` and `PL`
        /// (left) / 1 (right), output rows `span`.
        fn check<S: pulp::Simd, const PL: usize>(
            simd: S,
            (top, bottom): (usize, usize),
            n: usize,
            (h, w): (usize, usize),
            span: core::ops::Range<usize>,
        ) {
            const CI: usize = 32;
            const CO: usize = 48;
            const G: usize = 2;
            let (ho, wo) = (h + top + bottom - 2, w + PL + 1 - 2);
            let span = span.start.min(ho)..span.end.min(ho);
            let val = |i: usize, m: usize| ((i * 7919 + 13) % m) as f32 / m as f32 - 0.5;
            let input: Vec<f32> = (0..n * G * CI * h * w).map(|i| val(i, 1000)).collect();
            let weight: Vec<f32> = (0..G * CO * CI * 9).map(|i| 0.2 * val(i, 997)).collect();
            let bias: Vec<f32> = (0..G * CO).map(|i| val(i, 991)).collect();
            let layer = WinoLayer {
                groups: G,
                in_channels: G * CI,
                pad_top: top,
                pad_left: PL,
                lo: Some(-0.75),
                hi: None,
            };
            let u = super::pack(&weight, G, CI, CO);
            let rows = span.len();
            let units = n * G;
            let mut got = vec![0.0f32; units * CO * rows * wo];
            let mut scratch = vec![0.0f32; super::scratch_len(S::F32_LANES, wo, CI, CO)];
            let args = crate::__private::Args {
                input: &input,
                output: PlanesMut::new(&mut got, units * CO, rows * wo, rows * wo),
                scratch: &mut scratch,
                n,
                h,
                w,
                ho,
                wo,
                units: 0..units,
                span: span.clone(),
                oc: 0..CO,
                amx: false,
            };
            super::run::<S, CI, CO, 16, PL>(simd, &u, &weight, &bias, layer, args);
            let mut want = vec![0.0f32; got.len()];
            for unit in 0..units {
                let (b, g) = (unit / G, unit % G);
                let planes = &input[(b * G + g) * CI * h * w..][..CI * h * w];
                let mut out = PlanesMut::new(
                    &mut want[unit * CO * rows * wo..][..CO * rows * wo],
                    CO,
                    rows * wo,
                    rows * wo,
                );
                crate::winograd::direct_rows::<CI, CO>(
                    planes,
                    &weight[g * CO * CI * 9..][..CO * CI * 9],
                    &bias[g * CO..][..CO],
                    &layer,
                    (h, w, wo),
                    span.clone(),
                    &mut out,
                );
            }
            for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{} lanes, pad ({top}, {bottom}, {PL}), {h}x{w}, rows {span:?}: float {i}: {a} against {b}",
                    S::F32_LANES
                );
            }
        }
        on_every_isa(K);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn transpose16_transposes() {
        let Some(v4) = pulp::x86::V4::try_new() else {
            return;
        };
        let r: [pulp::f32x16; 16] = core::array::from_fn(|k| {
            bytemuck::cast(core::array::from_fn::<f32, 16, _>(|i| (k * 16 + i) as f32))
        });
        let t: [[f32; 16]; 16] = bytemuck::cast(super::transpose16(v4, r));
        for (i, row) in t.iter().enumerate() {
            for (k, &v) in row.iter().enumerate() {
                assert_eq!(v, (k * 16 + i) as f32, "out[{i}][{k}]");
            }
        }
    }
}
