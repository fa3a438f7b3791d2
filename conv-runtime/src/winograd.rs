//! Winograd F(2x2, 3x3) tiles for grouped 3x3 stride-1 layers.
//!
//! A tile is 2 x 2 output pixels of one output channel. With `d` the 4 x 4 input patch it reads
//! (per input channel) and `g` the 3 x 3 kernel, the tile is `A^T [(G g G^T) . (B^T d B)] A`
//! (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//!
//! ```text
//! B^T = | 1  0 -1  0 |    G = | 1    0    0   |    A^T = | 1  1  1  0 |
//!       | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
//!       | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
//!       | 0  1  0 -1 |        | 0    0    1   |
//! ```
//!
//! The sum over a group's input channels happens between the transforms, as 16 small matrix
//! products (one per point `xi` of the 4 x 4 transformed tile):
//! `M[xi][co] = sum_ci U[xi][co][ci] V[xi][ci]`, 16 multiplications per tile and channel pair
//! where direct convolution takes 36. The transforms are additions only (`B` and `A` hold 0 and
//! +-1; `U = G g G^T` is computed once, at `new`, in f64).
//!
//! Vector lanes run over tiles. Per chunk of tile rows:
//! 1. the input transform reads each input row in place (the even and odd columns split as in
//!    the stride-2 direct tiles: tile `tx` reads columns `2 tx - pad_left .. 2 tx - pad_left + 4`)
//!    and writes `V[xi][ci][t]`, the chunk's tiles `t` flattened across tile rows, so the
//!    products below fill every lane however narrow the plane (a 14-wide plane has 7 tiles per
//!    row);
//! 2. the products run in register tiles of `COB` output channels x `TVB` vectors of tiles,
//!    each weight broadcast once per vector tile, writing `M[xi][co][t]`;
//! 3. the output transform adds bias, applies the activation, interleaves the even and odd
//!    output columns back and stores each tile row's two output rows.
//!
//! Tile rows start at even output rows, so a call split over threads by rows computes what one
//! call does, to the bit. A group whose input planes hold an infinity or NaN is computed
//! directly (`direct_rows`), since the transforms' differences would give NaN where a direct
//! convolution gives an infinity, and a NaN would reach every output of its 4 x 4 patch.

use pulp::Simd;

use crate::inplace::{interleave, InCols, InRows};

/// Floats of `V` and `M` one chunk of tile rows may take: 64 KiB, so a chunk stays in L2 on
/// every core of the last decade and mostly in L1 for small groups.
const CHUNK_FLOATS: usize = 16 * 1024;

/// Points of the transformed tile.
pub(crate) const XI: usize = 16;

/// Tile rows per chunk for tile rows `tx` tiles wide and groups of `ci` / `co` channels.
#[inline(always)]
fn chunk_rows(tx: usize, ci: usize, co: usize) -> usize {
    (CHUNK_FLOATS / (XI * (ci + co) * tx)).max(1)
}

/// Floats per `(xi, channel)` of a chunk's `V` and `M`: its tiles, rounded up to whole vectors,
/// and one vector of slack for the last vector's loads; an odd number of vectors, so the
/// channels of one point do not all fall in the same cache sets.
#[inline(always)]
fn chunk_stride(lanes: usize, wo: usize, ci: usize, co: usize) -> usize {
    let tx = wo.div_ceil(2);
    let vecs = (chunk_rows(tx, ci, co) * tx).div_ceil(lanes) + 1;
    (vecs | 1) * lanes
}

/// Floats per point `xi` of a chunk's `V` (`ch = ci`) or `M` (`ch = co`): `ch` channels and one
/// more vector, so the 16 points one tile's transform reads or writes spread over the cache
/// sets (at 256 floats per point, a power of two, they would share a few sets).
#[inline(always)]
fn point_stride(lanes: usize, stride: usize, ch: usize) -> usize {
    ch * stride + lanes
}

/// Floats of scratch [`run`] needs: a row of `w` zeros, then `V` and `M` of one chunk.
pub fn scratch_len(lanes: usize, w: usize, wo: usize, ci: usize, co: usize) -> usize {
    let stride = chunk_stride(lanes, wo, ci, co);
    w + XI * (point_stride(lanes, stride, ci) + point_stride(lanes, stride, co))
}

/// `U = G g G^T` of every `(out, in)` kernel of PyTorch-layout 3x3 `weight` (`groups * co` x `ci`
/// x 3 x 3), computed in f64 and rounded once, laid out `[group][xi][co][ci]`.
pub fn pack(weight: &[f32], groups: usize, ci: usize, co: usize) -> Vec<f32> {
    assert_eq!(weight.len(), groups * co * ci * 9, "weights of a 3x3 layer");
    let mut u = vec![0.0f32; groups * XI * co * ci];
    let g_rows = |a: f64, b: f64, c: f64| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    for g in 0..groups {
        for o in 0..co {
            for c in 0..ci {
                let k = &weight[((g * co + o) * ci + c) * 9..][..9];
                let k = |r: usize, s: usize| k[r * 3 + s] as f64;
                // `G g`: 4 x 3, column by column.
                let gk: [[f64; 4]; 3] = core::array::from_fn(|s| g_rows(k(0, s), k(1, s), k(2, s)));
                for i in 0..4 {
                    let row = g_rows(gk[0][i], gk[1][i], gk[2][i]);
                    for (j, &v) in row.iter().enumerate() {
                        u[((g * XI + i * 4 + j) * co + o) * ci + c] = v as f32;
                    }
                }
            }
        }
    }
    u
}

/// Where a Winograd body finds its layer: channel counts, padding and activation bounds.
#[derive(Clone, Copy, Debug)]
pub struct WinoLayer {
    pub groups: usize,
    pub in_channels: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    /// Lower and upper clamp of the fused activation (`None`: none).
    pub lo: Option<f32>,
    pub hi: Option<f32>,
}

/// Computes `args` of a grouped 3x3 stride-1 layer (dilation 1, `PL = pad_left <= 2`) whose
/// groups have `CI` input and `CO` output channels, from `u` ([`pack`]) and `bias`, in register
/// tiles of `COB` (dividing `CO`) output channels x `TVB` vectors of tiles; groups whose input
/// holds an infinity or NaN directly from `weight` (PyTorch layout).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn run<
    S: Simd,
    const CI: usize,
    const CO: usize,
    const COB: usize,
    const TVB: usize,
    const PL: usize,
>(
    simd: S,
    u: &[f32],
    weight: &[f32],
    bias: &[f32],
    layer: WinoLayer,
    args: crate::__private::Args<'_>,
) {
    const { assert!(COB >= 1 && CO % COB == 0 && TVB >= 1 && PL <= 2) };
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
    let tx = wo.div_ceil(2);
    let nvx = tx.div_ceil(lanes);
    let crows = chunk_rows(tx, CI, CO);
    let stride = chunk_stride(lanes, wo, CI, CO);
    let (zeros, rest) = scratch.split_at_mut(w);
    zeros.fill(0.0);
    let zeros: &[f32] = zeros;
    let (vxs, mxs) = (
        point_stride(lanes, stride, CI),
        point_stride(lanes, stride, CO),
    );
    let (vbuf, rest) = rest.split_at_mut(XI * vxs);
    let mbuf = &mut rest[..XI * mxs];
    let plane_in = h * w;
    // Tile rows start at even output rows whatever the span, so a split computes every output
    // as a single call does, to the bit.
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
        let mut tr0 = 0;
        while tr0 < tile_rows {
            let rows = crows.min(tile_rows - tr0);
            let tiles = rows * tx;
            // 1. Input transform.
            for r in 0..rows {
                let iy0 = (2 * (tr_first + tr0 + r)) as isize - layer.pad_top as isize;
                for c in 0..CI {
                    let rin = InRows::<1, 4>::new(&planes[c * plane_in..], zeros, h, w, iy0);
                    for k in 0..nvx {
                        let tx0 = k * lanes;
                        let cols = InCols::new(simd, 2 * tx0, w);
                        let v = input_tile::<S, PL>(simd, &rin, &cols);
                        // Whole vectors (masked stores are slow on AMD cores): the lanes past
                        // the tile row land in the next row's tiles, stored after these, or
                        // in the slack after the chunk's last.
                        let at = c * stride + r * tx + tx0;
                        for (xi, v) in v.into_iter().enumerate() {
                            st(simd, &mut vbuf[xi * vxs..], at, v);
                        }
                    }
                }
            }
            // 2. Products.
            let nv = tiles.div_ceil(lanes);
            for xi in 0..XI {
                let vx = &vbuf[xi * vxs..][..CI * stride];
                let mx = &mut mbuf[xi * mxs..][..CO * stride];
                let ux = &ug[xi * CO * CI..][..CO * CI];
                for cb in (0..CO).step_by(COB) {
                    let uc = &ux[cb * CI..][..COB * CI];
                    let mc = &mut mx[cb * stride..];
                    let mut v = 0;
                    while v + TVB <= nv {
                        product::<S, CI, COB, TVB>(simd, uc, vx, mc, stride, v * lanes);
                        v += TVB;
                    }
                    while v < nv {
                        product::<S, CI, COB, 1>(simd, uc, vx, mc, stride, v * lanes);
                        v += 1;
                    }
                }
            }
            // 3. Output transform.
            for r in 0..rows {
                let oy = 2 * (tr_first + tr0 + r);
                let ys = oy.max(span.start)..(oy + 2).min(span.end);
                for (o, &bo) in bg.iter().enumerate() {
                    let plane = out.plane(o);
                    let bo = simd.splat_f32s(bo);
                    for k in 0..nvx {
                        let tx0 = k * lanes;
                        let at = o * stride + r * tx + tx0;
                        // No closures here: they would not inherit the ISA's target
                        // features, and every vector operation in them would be a call.
                        let mut m = [bo; XI];
                        for (xi, m) in m.iter_mut().enumerate() {
                            *m = ld(simd, &mbuf[xi * mxs..], at);
                        }
                        let y = output_tile(simd, &m);
                        for (dy, [ye, yo]) in y.into_iter().enumerate() {
                            if !ys.contains(&(oy + dy)) {
                                continue;
                            }
                            let (ye, yo) = (
                                activate(simd, &layer, simd.add_f32s(ye, bo)),
                                activate(simd, &layer, simd.add_f32s(yo, bo)),
                            );
                            let (lo, hi) = interleave(simd, ye, yo);
                            let x0 = 2 * tx0;
                            let row = (oy + dy - span.start) * wo;
                            st_part(simd, plane, row + x0, lanes.min(wo - x0), lo);
                            if wo > x0 + lanes {
                                st_part(
                                    simd,
                                    plane,
                                    row + x0 + lanes,
                                    lanes.min(wo - x0 - lanes),
                                    hi,
                                );
                            }
                        }
                    }
                }
            }
            tr0 += rows;
        }
    }
}

/// One unit's operands: its group's input planes, transformed weights `u` (`XI * CO * CI`
/// floats), bias and output planes.
pub(crate) struct Unit<'a, 'o> {
    pub planes: &'a [f32],
    pub u: &'a [f32],
    pub bias: &'a [f32],
    pub out: crate::planes::PlanesMut<'o>,
}

/// The operands of `unit` (image `unit / groups`, group `unit % groups`) from the layer's
/// `(input, u, weight, bias)`, or `None` once the unit is computed: where an input is infinite
/// or NaN, Winograd's differences of inputs would turn an infinity into NaN and spread a NaN
/// over a whole 4 x 4 patch, so such a group is computed directly instead (`direct_rows`, from
/// the PyTorch-layout `weight`), with the special values of a direct convolution (PyTorch's).
#[inline(always)]
#[allow(clippy::type_complexity)]
pub(crate) fn unit_operands<'a, 'o, S: Simd, const CI: usize, const CO: usize>(
    simd: S,
    unit: usize,
    (input, u, weight, bias): (&'a [f32], &'a [f32], &'a [f32], &'a [f32]),
    layer: &WinoLayer,
    (h, w, wo): (usize, usize, usize),
    span: &core::ops::Range<usize>,
    mut out: crate::planes::PlanesMut<'o>,
) -> Option<Unit<'a, 'o>> {
    let (b, g) = (unit / layer.groups, unit % layer.groups);
    let plane_in = h * w;
    let planes = &input[(b * layer.in_channels + g * CI) * plane_in..][..CI * plane_in];
    let bias = &bias[g * CO..][..CO];
    if !all_finite(simd, planes) {
        let weight = &weight[g * CO * CI * 9..][..CO * CI * 9];
        direct_rows::<CI, CO>(
            planes,
            weight,
            bias,
            layer,
            (h, w, wo),
            span.clone(),
            &mut out,
        );
        return None;
    }
    Some(Unit {
        planes,
        u: &u[g * XI * CO * CI..][..XI * CO * CI],
        bias,
        out,
    })
}

/// `M[co][t..]` of `COB` output channels and `NB` vectors of tiles from `t`: the sum over the
/// group's input channels of `U[co][ci] V[ci][t..]` (`uc` is `[co][ci]`, `vx` `[ci][stride]`,
/// `mc` `[co][stride]`).
#[inline(always)]
fn product<S: Simd, const CI: usize, const COB: usize, const NB: usize>(
    simd: S,
    uc: &[f32],
    vx: &[f32],
    mc: &mut [f32],
    stride: usize,
    t: usize,
) {
    let lanes = S::F32_LANES;
    let uc = &uc[..COB * CI];
    let mut acc = [[simd.splat_f32s(0.0); NB]; COB];
    for c in 0..CI {
        let vc = &vx[c * stride + t..][..NB * lanes];
        let mut v = [simd.splat_f32s(0.0); NB];
        for (j, v) in v.iter_mut().enumerate() {
            *v = ld(simd, vc, j * lanes);
        }
        for (o, acc) in acc.iter_mut().enumerate() {
            let wk = simd.splat_f32s(uc[o * CI + c]);
            for (a, &v) in acc.iter_mut().zip(&v) {
                *a = simd.mul_add_e_f32s(wk, v, *a);
            }
        }
    }
    for (o, acc) in acc.iter().enumerate() {
        let mo = &mut mc[o * stride + t..][..NB * lanes];
        for (j, &a) in acc.iter().enumerate() {
            st(simd, mo, j * lanes, a);
        }
    }
}

/// The four columns `2 tx - PL + c` (`c` in 0..4) of row `J` for the vector of tiles of `cols`.
#[inline(always)]
fn row4<S: Simd, const J: usize, const PL: usize>(
    simd: S,
    rin: &InRows<'_, 1, 4>,
    cols: &InCols<S>,
) -> [S::f32s; 4] {
    let (e, o) = rin.pair::<S, 0, J>(simd, cols);
    let mut d = [e; 4];
    for (c, d) in d.iter_mut().enumerate() {
        *d = match c as isize - PL as isize {
            -2 => rin.lo::<S, 0, J, 0>(simd, cols, e),
            -1 => rin.lo::<S, 0, J, 1>(simd, cols, o),
            0 => e,
            1 => o,
            2 => rin.hi::<S, 0, J, 0>(simd, cols, e),
            _ => rin.hi::<S, 0, J, 1>(simd, cols, o),
        };
    }
    d
}

/// `B^T d B` of the 4 x 4 input patches of a vector of tiles, `xi = 4 i + j`.
#[inline(always)]
fn input_tile<S: Simd, const PL: usize>(
    simd: S,
    rin: &InRows<'_, 1, 4>,
    cols: &InCols<S>,
) -> [S::f32s; XI] {
    let d0 = row4::<S, 0, PL>(simd, rin, cols);
    let d1 = row4::<S, 1, PL>(simd, rin, cols);
    let d2 = row4::<S, 2, PL>(simd, rin, cols);
    let d3 = row4::<S, 3, PL>(simd, rin, cols);
    #[rustfmt::skip]
    let d = [
        d0[0], d0[1], d0[2], d0[3], d1[0], d1[1], d1[2], d1[3],
        d2[0], d2[1], d2[2], d2[3], d3[0], d3[1], d3[2], d3[3],
    ];
    input_patch(simd, &d)
}

/// `B^T d B` of a 4 x 4 patch `d` (`d[4 i + j]`: row `i`, column `j`), `xi = 4 i + j`.
#[inline(always)]
pub(crate) fn input_patch<S: Simd>(simd: S, d: &[S::f32s; XI]) -> [S::f32s; XI] {
    // `B^T d`, column by column, then `. B` within each row.
    let mut v = [d[0]; XI];
    for c in 0..4 {
        let t = [
            simd.sub_f32s(d[c], d[8 + c]),
            simd.add_f32s(d[4 + c], d[8 + c]),
            simd.sub_f32s(d[8 + c], d[4 + c]),
            simd.sub_f32s(d[4 + c], d[12 + c]),
        ];
        for (i, &t) in t.iter().enumerate() {
            v[4 * i + c] = t;
        }
    }
    for i in 0..4 {
        let t = [v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]];
        v[4 * i] = simd.sub_f32s(t[0], t[2]);
        v[4 * i + 1] = simd.add_f32s(t[1], t[2]);
        v[4 * i + 2] = simd.sub_f32s(t[2], t[1]);
        v[4 * i + 3] = simd.sub_f32s(t[1], t[3]);
    }
    v
}

/// `A^T m A` of a vector of tiles: `[row][even column, odd column]`.
#[inline(always)]
pub(crate) fn output_tile<S: Simd>(simd: S, m: &[S::f32s; XI]) -> [[S::f32s; 2]; 2] {
    let mut s = [[m[0]; 4]; 2];
    for j in 0..4 {
        s[0][j] = simd.add_f32s(simd.add_f32s(m[j], m[4 + j]), m[8 + j]);
        s[1][j] = simd.sub_f32s(simd.sub_f32s(m[4 + j], m[8 + j]), m[12 + j]);
    }
    let mut y = [[m[0]; 2]; 2];
    for (y, s) in y.iter_mut().zip(&s) {
        y[0] = simd.add_f32s(simd.add_f32s(s[0], s[1]), s[2]);
        y[1] = simd.sub_f32s(simd.sub_f32s(s[1], s[2]), s[3]);
    }
    y
}

/// Whether every float of `x` is finite: `x * 0` is 0 for a finite `x` and NaN for an infinity
/// or NaN, and sums of zeros never overflow.
#[inline(always)]
pub(crate) fn all_finite<S: Simd>(simd: S, x: &[f32]) -> bool {
    let (head, tail) = S::as_simd_f32s(x);
    let zero = simd.splat_f32s(0.0);
    let mut acc = [zero; 4];
    let mut quads = head.chunks_exact(4);
    for q in &mut quads {
        for (a, &v) in acc.iter_mut().zip(q) {
            *a = simd.mul_add_e_f32s(v, zero, *a);
        }
    }
    for &v in quads.remainder() {
        acc[0] = simd.mul_add_e_f32s(v, zero, acc[0]);
    }
    let acc = simd.add_f32s(simd.add_f32s(acc[0], acc[1]), simd.add_f32s(acc[2], acc[3]));
    let mut lanes = [0.0f32; 16];
    simd.partial_store_f32s(&mut lanes[..S::F32_LANES], acc);
    lanes[..S::F32_LANES]
        .iter()
        .chain(tail)
        .all(|v| v.is_finite())
}

/// Output rows `ys` (the span: row `ys.start` is float 0 of each output plane) of one group
/// computed directly, in f32, from the `CI` input planes `planes` and the group's PyTorch-layout
/// `weight`: the path for inputs with infinities or NaN, which gives the special values a direct
/// convolution gives.
pub(crate) fn direct_rows<const CI: usize, const CO: usize>(
    planes: &[f32],
    weight: &[f32],
    bias: &[f32],
    layer: &WinoLayer,
    (h, w, wo): (usize, usize, usize),
    ys: core::ops::Range<usize>,
    out: &mut crate::planes::PlanesMut<'_>,
) {
    let span_start = ys.start;
    for (o, &b) in bias.iter().enumerate().take(CO) {
        let plane = out.plane(o);
        for y in ys.clone() {
            for x in 0..wo {
                let mut acc = b;
                for c in 0..CI {
                    for ky in 0..3 {
                        let iy = (y + ky) as isize - layer.pad_top as isize;
                        if iy < 0 || iy as usize >= h {
                            continue;
                        }
                        for kx in 0..3 {
                            let ix = (x + kx) as isize - layer.pad_left as isize;
                            if ix < 0 || ix as usize >= w {
                                continue;
                            }
                            let v = planes[(c * h + iy as usize) * w + ix as usize];
                            acc += weight[((o * CI + c) * 3 + ky) * 3 + kx] * v;
                        }
                    }
                }
                if let Some(lo) = layer.lo {
                    acc = if acc < lo { lo } else { acc };
                }
                if let Some(hi) = layer.hi {
                    acc = if acc > hi { hi } else { acc };
                }
                plane[(y - span_start) * wo + x] = acc;
            }
        }
    }
}

/// The fused activation of `layer` (NaN stays NaN).
#[inline(always)]
pub(crate) fn activate<S: Simd>(simd: S, layer: &WinoLayer, mut v: S::f32s) -> S::f32s {
    if let Some(lo) = layer.lo {
        v = crate::__private::clamp_min(simd, v, lo);
    }
    if let Some(hi) = layer.hi {
        v = crate::__private::clamp_max(simd, v, hi);
    }
    v
}

/// Loads a full vector from `src[at..]`.
#[inline(always)]
fn ld<S: Simd>(simd: S, src: &[f32], at: usize) -> S::f32s {
    crate::__private::ld(simd, src, at)
}

/// Stores a full vector to `dst[at..]`.
#[inline(always)]
fn st<S: Simd>(simd: S, dst: &mut [f32], at: usize, v: S::f32s) {
    crate::__private::st(simd, dst, at, v)
}

/// Stores lanes `..len` of `v` to `dst[at..]`.
#[inline(always)]
fn st_part<S: Simd>(simd: S, dst: &mut [f32], at: usize, len: usize, v: S::f32s) {
    crate::__private::st_part(simd, dst, at, len, v)
}
