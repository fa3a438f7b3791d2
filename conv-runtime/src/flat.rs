//! Flat tiles: direct convolutions over the flattened output plane.
//!
//! When the stride is 1 and the padding along W keeps rows as wide as the input's
//! (`pad_left + pad_right == dilation_w (kernel_w - 1)`), output pixel `q = y w + x` reads tap
//! `(ky, kx)` at input index `q + dy w + dx`, with `dy = ky dilation_h - pad_top` and
//! `dx = kx dilation_w - pad_left`: one offset per tap for the whole plane. A tile then covers
//! whole vectors of consecutive output pixels, across row ends, so a 14- or 56-wide plane fills
//! every lane of every vector (row tiles use 14 of 16, or 56 of 64). Each tap of each vector is
//! one unaligned masked load; its mask drops the lanes whose input pixel lies in the padding
//! (a row above or below the plane, or a column that wrapped into the neighbouring row). The
//! masks depend only on the geometry and the vector, so one call computes them once
//! ([`Flat::new`]) for every tile of every channel. On AVX-512 a tile whose loads all lie inside
//! the input ([`FlatSrc::unmasked`]: all but the first and last rows of the whole input) loads
//! plainly instead and applies the same masks to its FMAs. That took ResNeXt's grouped rows from
//! 238 to 220 us (`resnext_g32_128_56`, 4 x 5 tiles), 201 to 183 (`_256_28`) and 208 to 189
//! (`_512_14`, 8 x 3 tiles): minima of 16 alternating rounds of 0.2 s, both builds in one run, a
//! throwaway timer calling the benches' generated layer, on the 2-core AVX-512 VM (Emerald
//! Rapids). A tile of `t` output channels loads each vector once for `t` FMAs, so the masked
//! loads' uops were one in `t + 1` of those ports' work.

use core::marker::PhantomData;

use pulp::{MemMask, Simd};

use crate::dispatch::{is_isa, is_v4};
use crate::shape::Conv2dParams;

/// Kernel sizes whose per-row and per-column masks `Flat::new` keeps on the stack.
const MAX_K: usize = 16;

/// The lanes `lo..hi` (clamped to `0..=lanes`) as bits.
#[inline(always)]
fn bits_between(lo: isize, hi: isize, lanes: usize) -> u32 {
    let clamp = |v: isize| v.clamp(0, lanes as isize) as u32;
    let (lo, hi) = (clamp(lo), clamp(hi));
    if lo >= hi {
        return 0;
    }
    // lanes <= 16, so both shifts stay below 32.
    (1u32 << hi) - (1u32 << lo)
}

/// A mask of the lanes set in `bits` (bit `i`, lane `i`).
#[inline(always)]
pub(crate) fn mask_of_bits<S: Simd>(simd: S, bits: u32) -> MemMask<S::m32s> {
    #[cfg(target_arch = "x86_64")]
    if is_isa::<S, pulp::x86::V4>() {
        return MemMask::new(bytemuck::checked::cast(pulp::b16(bits as u16)));
    }
    // Elsewhere lane `i` compares its bit: splat, AND with `1 << i`, compare.
    const LANE_BITS: [u32; 16] = {
        let mut b = [0; 16];
        let mut i = 0;
        while i < 16 {
            b[i] = 1 << i;
            i += 1;
        }
        b
    };
    let lane = simd.partial_load_u32s(&LANE_BITS);
    MemMask::new(simd.equal_u32s(simd.and_u32s(simd.splat_u32s(bits), lane), lane))
}

/// The masks of one call's flat tiles: for each vector of the output pixels `q_lo..q_hi` and each
/// of the `TAPS` taps, the lanes whose input pixel lies inside the plane; and each tap's offset.
pub struct Flat<'a, const TAPS: usize> {
    /// Invariant: bit `i` of `bits[v * TAPS + tap]` is set only when output pixel
    /// `q = q_lo + v lanes + i` is below `q_hi <= ho w` and, with `y = q / w`, `x = q % w`,
    /// `0 <= y + dy < h` and `0 <= x + dx < w` for the tap's `offs[tap] = dy w + dx`.
    bits: &'a [u32],
    offs: [isize; TAPS],
    /// The least and the greatest of `offs`.
    off_lo: isize,
    off_hi: isize,
    q_lo: usize,
    h: usize,
    w: usize,
    lanes: usize,
}

impl<'a, const TAPS: usize> Flat<'a, TAPS> {
    /// Whether a layer with both row tiles and flat tiles (one without streaming tiles, whose
    /// flat tiles cost about 1.5x per FMA, see the macro's `plan_narrow`) takes the flat ones on `ho x wo` output
    /// planes with vectors of `lanes`: when they use over 1.5x the lanes row tiles use (rows fill
    /// `wo` of `ceil(wo / lanes) lanes` lanes, flat tiles `ho wo` of `ceil(ho wo / lanes) lanes`).
    /// 7 x 7 on 16 lanes: 0.77 against 0.44, flat; 14 x 14: 0.94 against 0.88, rows.
    pub fn prefer(lanes: usize, ho: usize, wo: usize) -> bool {
        let plane = ho * wo;
        // rows_used < flat_used / 1.5, cross-multiplied: wo * flat_lanes * 3 < plane * row_lanes * 2.
        let (row_lanes, flat_lanes) = (wo.div_ceil(lanes) * lanes, plane.div_ceil(lanes) * lanes);
        plane > 0 && wo * flat_lanes * 3 < plane * row_lanes * 2
    }

    /// Floats of scratch [`Flat::new`] takes for output planes of `ho x wo` pixels.
    pub fn scratch_len(lanes: usize, ho: usize, wo: usize) -> usize {
        (ho * wo).div_ceil(lanes) * TAPS
    }

    /// The masks of output pixels `q_lo..q_hi` of a layer `p` (stride 1, `wo == w`) on `h x w`
    /// planes, in `scratch`.
    ///
    /// # Panics
    /// When `p` is not such a layer, `TAPS` is not its tap count, the pixels lie outside the
    /// output plane or `scratch` is too short (a bug in the generated code).
    pub fn new(
        p: &Conv2dParams,
        lanes: usize,
        h: usize,
        w: usize,
        q_lo: usize,
        q_hi: usize,
        scratch: &'a mut [f32],
    ) -> Self {
        let (ho, wo) = p
            .output_hw(h, w)
            .expect("conv-kernel bug: flat tile geometry");
        assert!(
            p.stride_h == 1
                && p.stride_w == 1
                && wo == w
                && TAPS == p.kernel_h * p.kernel_w
                && q_lo <= q_hi
                && q_hi <= ho * wo
                && lanes <= 16,
            "conv-kernel bug: flat tile geometry"
        );
        let nvec = (q_hi - q_lo).div_ceil(lanes);
        let bits: &mut [u32] = bytemuck::cast_slice_mut(&mut scratch[..nvec * TAPS]);
        let (hi_, wi) = (h as isize, w as isize);
        let dy = |ky: usize| (ky * p.dilation_h) as isize - p.pad_top as isize;
        let dx = |kx: usize| (kx * p.dilation_w) as isize - p.pad_left as isize;
        let offs = core::array::from_fn(|t| dy(t / p.kernel_w) * wi + dx(t % p.kernel_w));
        let (kh, kw) = (p.kernel_h, p.kernel_w);
        // Per vector: the row bits of each ky and the column bits of each kx, then their ANDs.
        let mut rows = [0u32; MAX_K];
        let mut cols = [0u32; MAX_K];
        for (v, vbits) in bits.chunks_exact_mut(TAPS).enumerate() {
            let q0 = (q_lo + v * lanes) as isize;
            let end = (q_hi as isize).min(q0 + lanes as isize);
            let x0 = q0 % wi;
            // Rows: output rows y with 0 <= y + d < h, i.e. the pixels [ylo w, yhi w).
            let row_bits = |d: isize| {
                let (ylo, yhi) = ((-d).max(0), hi_ - d);
                bits_between((ylo * wi).max(q0) - q0, (yhi * wi).min(end) - q0, lanes)
            };
            // Columns: x with 0 <= x + d < w, i.e. [a, b) of every row the vector touches.
            let col_bits = |d: isize| {
                let (a, b) = ((-d).max(0), (wi - d).min(wi));
                let mut m = 0;
                let mut s = -x0;
                while s < lanes as isize {
                    m |= bits_between(s + a, s + b, lanes);
                    s += wi;
                }
                m
            };
            if kh <= MAX_K && kw <= MAX_K {
                for (ky, r) in rows[..kh].iter_mut().enumerate() {
                    *r = row_bits(dy(ky));
                }
                for (kx, c) in cols[..kw].iter_mut().enumerate() {
                    *c = col_bits(dx(kx));
                }
                for (t, b) in vbits.iter_mut().enumerate() {
                    *b = rows[t / kw] & cols[t % kw];
                }
            } else {
                for (t, b) in vbits.iter_mut().enumerate() {
                    *b = row_bits(dy(t / kw)) & col_bits(dx(t % kw));
                }
            }
        }
        Flat {
            bits,
            offs,
            off_lo: offs.iter().copied().min().unwrap_or(0),
            off_hi: offs.iter().copied().max().unwrap_or(0),
            q_lo,
            h,
            w,
            lanes,
        }
    }

    /// Tap `tap` of the `R` vectors from vector `v` of the call's pixels: the read index of the
    /// first vector's lane 0 in the unit's planes (`q + offs[tap]`, may be negative), and each
    /// vector's lanes whose input pixel lies inside the plane.
    ///
    /// # Panics
    /// When `tap >= TAPS` or the vectors lie past the call's pixels (a bug in the generated code).
    #[inline(always)]
    fn tap_at<const R: usize>(&self, v: usize, tap: usize) -> (isize, [u32; R]) {
        let bits = &self.bits[v * TAPS..][..(R - 1) * TAPS + tap + 1];
        let mut out = [0; R];
        for (r, b) in out.iter_mut().enumerate() {
            *b = bits[r * TAPS + tap];
        }
        ((self.q_lo + v * self.lanes) as isize + self.offs[tap], out)
    }

    /// The `C` input planes of one unit, `h x w` floats each from `input[start..]`. The rest of
    /// `input` (other units' planes, other images) is readable too: unmasked tiles
    /// ([`FlatSrc::unmasked`]) load whole vectors that reach into it and drop those lanes.
    ///
    /// # Panics
    /// When `input` ends before the planes do (a bug in the generated code).
    #[inline(always)]
    pub fn src<const C: usize>(&self, input: &'a [f32], start: usize) -> FlatSrc<'_, C, TAPS> {
        let plane = self.h * self.w;
        assert!(
            start <= input.len() && input.len() - start >= C * plane,
            "conv-kernel bug: flat planes too short"
        );
        FlatSrc {
            flat: self,
            // In bounds: `start <= input.len()`.
            ptr: input[start..].as_ptr(),
            before: start,
            after: input.len() - start,
            plane,
            _life: PhantomData,
        }
    }
}

/// The input planes of one unit for the flat tiles of one call.
pub struct FlatSrc<'a, const C: usize, const TAPS: usize> {
    flat: &'a Flat<'a, TAPS>,
    /// Invariant: `ptr - before .. ptr + after` is one slice valid for reads for `'a`, and
    /// `after >= C * plane`.
    ptr: *const f32,
    before: usize,
    after: usize,
    plane: usize,
    _life: PhantomData<&'a [f32]>,
}

impl<const C: usize, const TAPS: usize> FlatSrc<'_, C, TAPS> {
    /// Tap `tap` of the `R` vectors from vector `v` of the call's pixels.
    ///
    /// # Panics
    /// When `tap >= TAPS` or the vectors lie past the call's pixels (a bug in the generated code).
    #[inline(always)]
    pub fn tap<S: Simd, const R: usize>(
        &self,
        simd: S,
        v: usize,
        tap: usize,
    ) -> FlatTap<'_, S, C, R> {
        let (q, bits) = self.flat.tap_at::<R>(v, tap);
        // A loop, not `array::from_fn`: its closure is not always inlined, and outside the
        // target-feature context the intrinsics of the mask become calls.
        let mut masks = [mask_of_bits(simd, 0); R];
        for (m, b) in masks.iter_mut().zip(bits) {
            *m = mask_of_bits(simd, b);
        }
        FlatTap {
            // May point outside the planes: only lanes inside them are ever read (see `ld`).
            base: self.ptr.wrapping_offset(q),
            masks,
            plane: self.plane,
            lanes: self.flat.lanes,
            _life: PhantomData,
        }
    }

    /// The `R` vectors from vector `v` of the call's pixels as an unmasked tile, on AVX-512 when
    /// every tap of every channel loads whole vectors inside the input: the loads are plain and
    /// the FMAs drop the padding lanes instead (`vfmadd231ps` under a merge mask). A masked load
    /// costs a vector ALU uop beside the load, on the ports the FMAs use; a merge-masked FMA
    /// costs nothing more than an FMA. `None` on other ISAs and for tiles at the ends of the
    /// input, which take masked loads ([`FlatSrc::tap`]).
    #[inline(always)]
    pub fn unmasked<S: Simd, const R: usize>(
        &self,
        v: usize,
    ) -> Option<FlatUnmasked<'_, C, TAPS, R>> {
        if !is_v4::<S>() {
            return None;
        }
        let lanes = self.flat.lanes as isize;
        let q = (self.flat.q_lo as isize) + v as isize * lanes;
        // Every read index (from `ptr`) lies in `q + off_lo ..= q + off_hi + (C - 1) plane + R
        // lanes - 1`; the slice is `-before .. after`.
        let first = q + self.flat.off_lo;
        let end = q + self.flat.off_hi + ((C - 1) * self.plane) as isize + R as isize * lanes;
        (first >= -(self.before as isize) && end <= self.after as isize)
            .then_some(FlatUnmasked { src: self, v })
    }
}

/// A tile of `R` vectors whose loads all lie inside the input (see [`FlatSrc::unmasked`]).
pub struct FlatUnmasked<'a, const C: usize, const TAPS: usize, const R: usize> {
    /// Invariant: for every tap, channel `c < C`, vector `r < R` and lane `i < lanes`, index
    /// `q + offs[tap] + c plane + r lanes + i` from `src.ptr`, with `q = q_lo + v lanes`, lies in
    /// `-before .. after`.
    src: &'a FlatSrc<'a, C, TAPS>,
    v: usize,
}

impl<const C: usize, const TAPS: usize, const R: usize> FlatUnmasked<'_, C, TAPS, R> {
    /// Tap `tap` of the tile.
    ///
    /// # Panics
    /// When `tap >= TAPS` (a bug in the generated code).
    #[inline(always)]
    pub fn tap<S: Simd>(&self, _simd: S, tap: usize) -> FlatFmaTap<'_, S, C, R> {
        let (q, bits) = self.src.flat.tap_at::<R>(self.v, tap);
        let mut masks = [0u16; R];
        for (m, b) in masks.iter_mut().zip(bits) {
            // At most 16 lanes (`Flat::new`), so the bits fit.
            *m = b as u16;
        }
        FlatFmaTap {
            // In bounds by the invariant (lane 0 of channel 0, vector 0).
            base: self.src.ptr.wrapping_offset(q),
            masks,
            plane: self.src.plane,
            lanes: self.src.flat.lanes,
            _simd: PhantomData,
            _life: PhantomData,
        }
    }
}

/// One tap of an unmasked tile: plain loads, and FMAs that add only the lanes whose input pixel
/// lies inside the plane.
pub struct FlatFmaTap<'a, S: Simd, const C: usize, const R: usize> {
    /// Invariant (from `FlatUnmasked`): `base + c plane + r lanes + i` is readable for `c < C`,
    /// `r < R`, `i < lanes`.
    base: *const f32,
    /// Per vector, the lanes whose input pixel lies in the plane (bit `i`, lane `i`).
    masks: [u16; R],
    plane: usize,
    lanes: usize,
    _simd: PhantomData<S>,
    _life: PhantomData<&'a [f32]>,
}

impl<S: Simd, const C: usize, const R: usize> FlatFmaTap<'_, S, C, R> {
    /// Vector `r` of channel `c`, every lane loaded (those of padding pixels hold whatever the
    /// input holds there; [`FlatFmaTap::fma`] drops them).
    #[inline(always)]
    pub fn ld(&self, _simd: S, c: usize, r: usize) -> S::f32s {
        assert!(
            c < C && r < R,
            "conv-kernel bug: flat load outside the tile"
        );
        let p = self.base.wrapping_add(c * self.plane + r * self.lanes);
        // SAFETY: `c < C` and `r < R`, so by the invariant of `base` all `lanes` floats from `p`
        // (one `S::f32s`) are readable; the read is unaligned.
        unsafe { core::ptr::read_unaligned(p.cast::<S::f32s>()) }
    }

    /// `acc + x w` in the lanes of vector `r` whose input pixel lies in the plane, `acc` in the
    /// others.
    #[inline(always)]
    pub fn fma(&self, simd: S, r: usize, x: S::f32s, w: S::f32s, acc: S::f32s) -> S::f32s {
        let m = self.masks[r];
        #[cfg(target_arch = "x86_64")]
        if is_isa::<S, pulp::x86::V4>() {
            use core::arch::x86_64::__m512;
            let (x, w, acc): (__m512, __m512, __m512) =
                (bytemuck::cast(x), bytemuck::cast(w), bytemuck::cast(acc));
            // SAFETY: `S` is `V4`, whose token exists only where AVX-512F is available.
            return bytemuck::cast(unsafe { fma_under_mask_v4(x, w, acc, m) });
        }
        let keep = mask_of_bits(simd, m as u32).mask();
        simd.select_f32s(keep, simd.mul_add_e_f32s(x, w, acc), acc)
    }
}

/// One tap of `R` consecutive vectors of output pixels: where each reads and which lanes.
pub struct FlatTap<'a, S: Simd, const C: usize, const R: usize> {
    /// `planes + q + offs[tap]` for the tile's first pixel `q`: lane `i` of vector `r` of
    /// channel `c` reads `base + c plane + r lanes + i`.
    base: *const f32,
    /// Invariant: from the `Flat` invariant, a set lane's input pixel lies in its plane, so the
    /// read index `(y + dy) w + x + dx` is in `0..plane`.
    masks: [MemMask<S::m32s>; R],
    plane: usize,
    lanes: usize,
    _life: PhantomData<&'a [f32]>,
}

impl<S: Simd, const C: usize, const R: usize> FlatTap<'_, S, C, R> {
    /// Vector `r` of channel `c` (zero in the lanes of padding pixels).
    #[inline(always)]
    pub fn ld(&self, simd: S, c: usize, r: usize) -> S::f32s {
        assert!(
            c < C && r < R,
            "conv-kernel bug: flat load outside the tile"
        );
        let p = self.base.wrapping_add(c * self.plane + r * self.lanes);
        // SAFETY: by the invariant of `masks`, every set lane reads index `c plane + k` with
        // `k < plane` and `c < C` of the planes `FlatSrc` holds (valid for `C plane` floats).
        unsafe { simd.mask_load_ptr_f32s(self.masks[r], p) }
    }
}

/// `acc + x w` in the lanes set in `m`, `acc` in the others: one `vfmadd231ps` under a merge
/// mask. In assembly because LLVM, seeing the selects of `_mm512_mask3_fmadd_ps`, merges a run of
/// them on one accumulator into plain FMAs on a copy and a blend at the end, which doubles the
/// live registers of a tile (a 4 x 5 tile spilled and ran 2x slower).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn fma_under_mask_v4(
    x: core::arch::x86_64::__m512,
    w: core::arch::x86_64::__m512,
    mut acc: core::arch::x86_64::__m512,
    m: u16,
) -> core::arch::x86_64::__m512 {
    // SAFETY: registers only (no memory, no stack, no flags), and AVX-512F is enabled here.
    unsafe {
        core::arch::asm!(
            "vfmadd231ps {acc}{{{m}}}, {x}, {w}",
            acc = inout(zmm_reg) acc,
            x = in(zmm_reg) x,
            w = in(zmm_reg) w,
            m = in(kreg) m,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::on_every_isa;

    /// The `lanes` floats of `x`.
    fn lanes_of<S: Simd>(x: S::f32s) -> Vec<f32> {
        let mut got = vec![0.0f32; S::F32_LANES];
        // SAFETY: `got` holds a whole vector.
        unsafe { core::ptr::write_unaligned(got.as_mut_ptr().cast::<S::f32s>(), x) };
        got
    }

    /// Every tap of every vector of the pixels `lo..hi` of a `k x k` layer (`TAPS = k k`) on an
    /// `h x w` input of two channels, read as vector 0 of a 1-vector tap and as vector 1 of a
    /// 2-vector tap from the vector before, against the index arithmetic; masked loads, and where
    /// the tile is unmasked also plain loads through a masked FMA (`2 x - 1` on the input's
    /// integers, exact). The two channels lie between planes of NaN, which the unmasked loads
    /// reach and the FMAs must drop. Returns how many unmasked taps were checked.
    fn check<S: Simd, const TAPS: usize>(simd: S, p: &Conv2dParams, h: usize, w: usize) -> usize {
        let lanes = S::F32_LANES;
        let k = p.kernel_w;
        let Ok((ho, wo)) = p.output_hw(h, w) else {
            return 0;
        };
        let plane = h * w;
        let mut input = vec![f32::NAN; 4 * plane];
        for (i, x) in input[plane..3 * plane].iter_mut().enumerate() {
            *x = i as f32 + 1.0;
        }
        let mut unmasked = 0;
        for (lo, hi) in [(0, ho * wo), (wo / 2, ho * wo - 1), (0, 1)] {
            if lo >= hi {
                continue;
            }
            let mut scratch = vec![0.0; Flat::<TAPS>::scratch_len(lanes, ho, wo)];
            let flat = Flat::<TAPS>::new(p, lanes, h, w, lo, hi, &mut scratch);
            let src = flat.src::<2>(&input, plane);
            for v in 0..(hi - lo).div_ceil(lanes) {
                for tap in 0..TAPS {
                    let one = src.tap::<S, 1>(simd, v, tap);
                    let two = (v > 0).then(|| src.tap::<S, 2>(simd, v - 1, tap));
                    let one_un = src.unmasked::<S, 1>(v);
                    let two_un = (v > 0).then(|| src.unmasked::<S, 2>(v - 1)).flatten();
                    for c in 0..2 {
                        // (lanes read, whether through an unmasked tap's FMA)
                        let mut reads = vec![(lanes_of::<S>(one.ld(simd, c, 0)), false)];
                        reads.extend(
                            two.as_ref()
                                .map(|t| (lanes_of::<S>(t.ld(simd, c, 1)), false)),
                        );
                        let (two_x, m1) = (simd.splat_f32s(2.0), simd.splat_f32s(-1.0));
                        if let Some(un) = &one_un {
                            let tp = un.tap(simd, tap);
                            let y = tp.fma(simd, 0, tp.ld(simd, c, 0), two_x, m1);
                            reads.push((lanes_of::<S>(y), true));
                            unmasked += 1;
                        }
                        if let Some(un) = &two_un {
                            let tp = un.tap(simd, tap);
                            let y = tp.fma(simd, 1, tp.ld(simd, c, 1), two_x, m1);
                            reads.push((lanes_of::<S>(y), true));
                            unmasked += 1;
                        }
                        for (got, fma) in reads {
                            for (i, g) in got.iter().enumerate() {
                                let q = lo + v * lanes + i;
                                let (y, x) = ((q / wo) as isize, (q % wo) as isize);
                                let iy = y + (tap / k * p.dilation_h) as isize - p.pad_top as isize;
                                let ix =
                                    x + (tap % k * p.dilation_w) as isize - p.pad_left as isize;
                                let inside = q < hi
                                    && (0..h as isize).contains(&iy)
                                    && (0..w as isize).contains(&ix);
                                let x = if inside {
                                    input[(c + 1) * plane + (iy * w as isize + ix) as usize]
                                } else {
                                    0.0
                                };
                                let want = if fma { 2.0 * x - 1.0 } else { x };
                                assert_eq!(
                                    *g, want,
                                    "{lanes} lanes k{k} {h}x{w} {p:?} span {lo}..{hi} v{v} \
                                     tap{tap} c{c} lane{i} unmasked {fma}"
                                );
                            }
                        }
                    }
                }
            }
        }
        unmasked
    }

    /// On every ISA: planes narrower and wider than a vector, padded, dilated, spans starting
    /// and ending mid-row, and a kernel wider than the masks `Flat::new` keeps per row/column;
    /// masked and (AVX-512) unmasked tiles.
    #[test]
    fn flat_taps_read_the_input_pixel_or_zero() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let sizes = [(1, 1), (2, 3), (5, 7), (6, 14), (3, 17), (4, 33)];
                let mut unmasked = 0;
                // (pad_top, pad_bottom, pad_left, pad_right, dilation)
                for &(pt, pb, pl, pr, d) in &[
                    (1, 1, 1, 1, 1),
                    (0, 2, 2, 0, 1),
                    (2, 2, 2, 2, 2),
                    (0, 0, 1, 1, 1),
                ] {
                    let p = Conv2dParams {
                        pad_top: pt,
                        pad_bottom: pb,
                        pad_left: pl,
                        pad_right: pr,
                        dilation_h: d,
                        dilation_w: d,
                        ..Conv2dParams::new(2, 2, 3)
                    };
                    for (h, w) in sizes {
                        unmasked += check::<S, 9>(simd, &p, h, w);
                    }
                }
                let big = Conv2dParams::new(2, 2, 17).pad(8);
                for (h, w) in [(3, 5), (17, 20)] {
                    unmasked += check::<S, 289>(simd, &big, h, w);
                }
                // Unmasked tiles exist on AVX-512 only, and there the sizes reach them.
                assert_eq!(
                    unmasked > 0,
                    is_v4::<S>(),
                    "unmasked taps checked: {unmasked}"
                );
            }
        }
        on_every_isa(K);
    }
}
