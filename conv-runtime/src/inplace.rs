//! Stride-2 direct tiles that read the input planes in place.
//!
//! A band copy writes every input float once more before a tile reads it; at stride 2 that copy
//! (an even/odd split per row) cost as much as the tiles themselves. These tiles instead load
//! each input row straight from its plane, two vectors at a time, and split them into even and
//! odd columns in registers. A tap whose columns start one vector lane before or after the pair
//! (`lo` / `hi`) shifts one lane in from the neighbouring column. Padding rows read a row of
//! zeros, padding columns come from masked loads, so a tile has no border branches.
//!
//! Column `c0 + 2 i (+ 1)` of an input row is lane `i` of the even (odd) vector of the pair at
//! `c0`. With `c0 = 2 ox0` for the output columns `ox0..ox0 + lanes`, tap `kx` (dilation 1) reads
//! column `2 (ox0 + i) + kx - pad_left`: even at shift `s` when `kx - pad_left = 2 s`, odd when
//! `kx - pad_left = 2 s + 1`, for shifts `s` of -1, 0 or 1.

use core::marker::PhantomData;

use pulp::Simd;

/// The input rows of one row tile: for each of `CHANS` channels, `ROWS` consecutive input rows
/// from `iy0`, each the row of its plane or, outside the plane, a row of zeros.
pub struct InRows<'a, const CHANS: usize, const ROWS: usize> {
    /// Invariant: every pointer is valid for reads of `w` floats for `'a`.
    rows: [[*const f32; ROWS]; CHANS],
    w: usize,
    _life: PhantomData<&'a [f32]>,
}

impl<'a, const CHANS: usize, const ROWS: usize> InRows<'a, CHANS, ROWS> {
    /// Rows `iy0..iy0 + ROWS` (may start above the plane: `iy0` is signed) of the `CHANS`
    /// planes of `h x w` floats in `planes`; `zeros` holds at least `w >= 1` zeros.
    ///
    /// # Panics
    /// When `planes` holds fewer than `CHANS` planes or `zeros` fewer than `w` floats (a bug in
    /// the generated sweep, never a consequence of user input).
    #[inline(always)]
    pub fn new(planes: &'a [f32], zeros: &'a [f32], h: usize, w: usize, iy0: isize) -> Self {
        assert!(
            w >= 1 && planes.len() >= CHANS * h * w && zeros.len() >= w,
            "conv-kernel bug: input rows outside their planes"
        );
        let zero = zeros.as_ptr();
        let mut rows = [[zero; ROWS]; CHANS];
        for (c, chan) in rows.iter_mut().enumerate() {
            for (j, row) in chan.iter_mut().enumerate() {
                let iy = iy0 + j as isize;
                if iy >= 0 && (iy as usize) < h {
                    *row = planes[(c * h + iy as usize) * w..][..w].as_ptr();
                }
            }
        }
        InRows {
            rows,
            w,
            _life: PhantomData,
        }
    }

    /// The even and odd vectors of row `J` of channel `C` at the columns of `cols`.
    #[inline(always)]
    pub fn pair<S: Simd, const C: usize, const J: usize>(
        &self,
        simd: S,
        cols: &InCols<S>,
    ) -> (S::f32s, S::f32s) {
        const { assert!(C < CHANS && J < ROWS) };
        self.pair_at(simd, cols, C, J)
    }

    #[inline(always)]
    fn pair_at<S: Simd>(
        &self,
        simd: S,
        cols: &InCols<S>,
        c: usize,
        j: usize,
    ) -> (S::f32s, S::f32s) {
        debug_assert!(cols.w == self.w);
        let row = self.rows[c][j];
        let lanes = S::F32_LANES;
        // SAFETY: `row` is valid for `w` floats (the invariant of `rows`). The masks enable lanes
        // `0..a_len` and `0..b_len` with `c0 + a_len <= w` and `c0 + lanes + b_len <= w` when
        // `b_len > 0` (see `InCols::new`), so only floats of the row are read; the pointer
        // arithmetic wraps and is only dereferenced for enabled lanes.
        let (a, b) = unsafe {
            (
                simd.mask_load_ptr_f32s(cols.a, row.wrapping_add(cols.c0)),
                simd.mask_load_ptr_f32s(cols.b, row.wrapping_add(cols.c0 + lanes)),
            )
        };
        deinterleave(simd, a, b)
    }

    /// `v` (lanes at columns `c0 + 2 i + P`) shifted up one lane, column `c0 - 2 + P` of row `J`
    /// of channel `C` (zero outside the row) shifted into lane 0: the vector of shift -1.
    #[inline(always)]
    pub fn lo<S: Simd, const C: usize, const J: usize, const P: usize>(
        &self,
        simd: S,
        cols: &InCols<S>,
        v: S::f32s,
    ) -> S::f32s {
        const { assert!(C < CHANS && J < ROWS && P < 2) };
        let x = self.at(C, J, (cols.c0 + P).wrapping_sub(2));
        shift_in::<S, true>(simd, v, x)
    }

    /// `v` shifted down one lane, column `c0 + 2 lanes + P` of row `J` of channel `C` (zero
    /// outside the row) shifted into the last lane: the vector of shift +1.
    #[inline(always)]
    pub fn hi<S: Simd, const C: usize, const J: usize, const P: usize>(
        &self,
        simd: S,
        cols: &InCols<S>,
        v: S::f32s,
    ) -> S::f32s {
        const { assert!(C < CHANS && J < ROWS && P < 2) };
        let x = self.at(C, J, cols.c0 + 2 * S::F32_LANES + P);
        shift_in::<S, false>(simd, v, x)
    }

    /// Column `col` of row `j` of channel `c`; zero when `col >= w` (a wrapped negative column
    /// is also `>= w`).
    #[inline(always)]
    fn at(&self, c: usize, j: usize, col: usize) -> f32 {
        // The load always reads a float of the row (`col` clamped into it), then the value is
        // selected.
        let inside = col < self.w;
        let at = col.min(self.w - 1);
        // SAFETY: `row` is valid for `w` floats (the invariant of `rows`) and `at < w` (`w >=
        // 1`, see `new`).
        let x = unsafe { *self.rows[c][j].add(at) };
        if inside {
            x
        } else {
            0.0
        }
    }
}

/// The columns of one vector of output columns: the pair of input vectors at `c0 = 2 ox0`, with
/// the masks of the columns inside the row.
pub struct InCols<S: Simd> {
    c0: usize,
    w: usize,
    /// Lanes `0..a_len` of the first vector, `a_len = min(w - c0, lanes)` (0 past the row).
    a: pulp::MemMask<S::m32s>,
    /// Lanes `0..b_len` of the second, `b_len = min(w - c0 - lanes, lanes)` (0 past the row).
    b: pulp::MemMask<S::m32s>,
}

impl<S: Simd> InCols<S> {
    /// The pair for output columns from `ox0` of rows `w` floats wide.
    #[inline(always)]
    pub fn new(simd: S, ox0: usize, w: usize) -> Self {
        let lanes = S::F32_LANES;
        let c0 = 2 * ox0;
        let a_len = w.saturating_sub(c0).min(lanes);
        let b_len = w.saturating_sub(c0 + lanes).min(lanes);
        InCols {
            c0,
            w,
            a: pulp::MemMask::new(simd.mask_between_m32s(0, a_len as u32).mask()),
            b: pulp::MemMask::new(simd.mask_between_m32s(0, b_len as u32).mask()),
        }
    }
}

/// Whether `S` is the ISA `T`.
#[inline(always)]
pub(crate) fn is_isa<S: 'static, T: 'static>() -> bool {
    core::any::TypeId::of::<S>() == core::any::TypeId::of::<T>()
}

/// `simd` as the ISA token `T` when `S` is `T` (no feature detection: the token exists).
#[inline(always)]
fn as_isa<S: Copy + 'static, T: Copy + 'static>(simd: S) -> Option<T> {
    // SAFETY: `S` and `T` are the same type (same `TypeId`), so this copies a `T`.
    is_isa::<S, T>().then(|| unsafe { core::mem::transmute_copy::<S, T>(&simd) })
}

/// `(even, odd)`: lanes `0, 2, 4, ..` and `1, 3, 5, ..` of the concatenation of `a` and `b`.
#[inline(always)]
pub(crate) fn deinterleave<S: Simd>(simd: S, a: S::f32s, b: S::f32s) -> (S::f32s, S::f32s) {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(v4) = as_isa::<S, pulp::x86::V4>(simd) {
            let (e, o) = deinterleave_v4(v4, bytemuck::cast(a), bytemuck::cast(b));
            return (bytemuck::cast(e), bytemuck::cast(o));
        }
        if let Some(v3) = as_isa::<S, pulp::x86::V3>(simd) {
            let (e, o) = deinterleave_v3(v3, bytemuck::cast(a), bytemuck::cast(b));
            return (bytemuck::cast(e), bytemuck::cast(o));
        }
    }
    let lanes = S::F32_LANES;
    let mut src = [0.0f32; 64];
    let mut dst = [0.0f32; 64];
    simd.partial_store_f32s(&mut src[..lanes], a);
    simd.partial_store_f32s(&mut src[lanes..2 * lanes], b);
    for i in 0..lanes {
        dst[i] = src[2 * i];
        dst[lanes + i] = src[2 * i + 1];
    }
    (
        simd.partial_load_f32s(&dst[..lanes]),
        simd.partial_load_f32s(&dst[lanes..2 * lanes]),
    )
}

/// [`deinterleave`] on AVX-512: two two-source permutes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn deinterleave_v4(
    v4: pulp::x86::V4,
    a: pulp::f32x16,
    b: pulp::f32x16,
) -> (pulp::f32x16, pulp::f32x16) {
    use core::arch::x86_64::{__m512, __m512i};
    let even_idx: __m512i = bytemuck::cast(core::array::from_fn::<i32, 16, _>(|i| 2 * i as i32));
    let odd_idx: __m512i = bytemuck::cast(core::array::from_fn::<i32, 16, _>(|i| 2 * i as i32 + 1));
    let (a, b): (__m512, __m512) = (bytemuck::cast(a), bytemuck::cast(b));
    (
        bytemuck::cast(v4.avx512f._mm512_permutex2var_ps(a, even_idx, b)),
        bytemuck::cast(v4.avx512f._mm512_permutex2var_ps(a, odd_idx, b)),
    )
}

/// [`deinterleave`] on AVX2: shuffles within 128-bit lanes (`a0 a2 b0 b2 | a4 a6 b4 b6`, likewise
/// the odds), then 64-bit lanes `0 2 1 3`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn deinterleave_v3(
    v3: pulp::x86::V3,
    a: pulp::f32x8,
    b: pulp::f32x8,
) -> (pulp::f32x8, pulp::f32x8) {
    use core::arch::x86_64::__m256;
    let fix = |r: __m256| {
        let r = v3
            .avx2
            ._mm256_permute4x64_pd::<0xD8>(v3.avx._mm256_castps_pd(r));
        bytemuck::cast::<__m256, pulp::f32x8>(v3.avx._mm256_castpd_ps(r))
    };
    let (a, b): (__m256, __m256) = (bytemuck::cast(a), bytemuck::cast(b));
    (
        fix(v3.avx._mm256_shuffle_ps::<0x88>(a, b)),
        fix(v3.avx._mm256_shuffle_ps::<0xDD>(a, b)),
    )
}

/// `v` shifted one lane with `x` shifted in: `[x, v0, .., v(lanes-2)]` when `LO` (towards higher
/// lanes), else `[v1, .., v(lanes-1), x]`.
#[inline(always)]
pub fn shift_in<S: Simd, const LO: bool>(simd: S, v: S::f32s, x: f32) -> S::f32s {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{__m256, __m256i, __m512i};
        if let Some(v4) = as_isa::<S, pulp::x86::V4>(simd) {
            let (v, x): (__m512i, __m512i) =
                (bytemuck::cast(v), bytemuck::cast(simd.splat_f32s(x)));
            let r = if LO {
                v4.avx512f._mm512_alignr_epi32::<15>(v, x)
            } else {
                v4.avx512f._mm512_alignr_epi32::<1>(x, v)
            };
            return bytemuck::cast(r);
        }
        if let Some(v3) = as_isa::<S, pulp::x86::V3>(simd) {
            // Rotate by one lane, then blend `x` into the lane the rotation wrapped.
            let idx: [i32; 8] = if LO {
                [7, 0, 1, 2, 3, 4, 5, 6]
            } else {
                [1, 2, 3, 4, 5, 6, 7, 0]
            };
            let r = v3
                .avx2
                ._mm256_permutevar8x32_ps(bytemuck::cast(v), bytemuck::cast::<_, __m256i>(idx));
            let x: __m256 = bytemuck::cast(simd.splat_f32s(x));
            let r = if LO {
                v3.avx._mm256_blend_ps::<0x01>(r, x)
            } else {
                v3.avx._mm256_blend_ps::<0x80>(r, x)
            };
            return bytemuck::cast(r);
        }
    }
    let lanes = S::F32_LANES;
    let mut buf = [0.0f32; 33];
    if LO {
        buf[0] = x;
        simd.partial_store_f32s(&mut buf[1..1 + lanes], v);
        simd.partial_load_f32s(&buf[..lanes])
    } else {
        simd.partial_store_f32s(&mut buf[..lanes], v);
        buf[lanes] = x;
        simd.partial_load_f32s(&buf[1..1 + lanes])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_and_deinterleave_match_scalar_definitions() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let lanes = S::F32_LANES;
                let src: Vec<f32> = (0..2 * lanes).map(|i| i as f32 + 0.5).collect();
                let a = simd.partial_load_f32s(&src[..lanes]);
                let b = simd.partial_load_f32s(&src[lanes..]);
                let (e, o) = deinterleave(simd, a, b);
                let mut out = vec![0.0f32; lanes];
                simd.partial_store_f32s(&mut out, e);
                let want: Vec<f32> = (0..lanes).map(|i| src[2 * i]).collect();
                assert_eq!(out, want, "even, {lanes} lanes");
                simd.partial_store_f32s(&mut out, o);
                let want: Vec<f32> = (0..lanes).map(|i| src[2 * i + 1]).collect();
                assert_eq!(out, want, "odd, {lanes} lanes");
                simd.partial_store_f32s(&mut out, shift_in::<S, true>(simd, a, -1.0));
                let want: Vec<f32> = core::iter::once(-1.0)
                    .chain(src[..lanes - 1].iter().copied())
                    .collect();
                assert_eq!(out, want, "lo, {lanes} lanes");
                simd.partial_store_f32s(&mut out, shift_in::<S, false>(simd, a, -1.0));
                let want: Vec<f32> = src[1..lanes]
                    .iter()
                    .copied()
                    .chain(core::iter::once(-1.0))
                    .collect();
                assert_eq!(out, want, "hi, {lanes} lanes");
            }
        }
        crate::dispatch::on_every_isa(K);
    }
}
