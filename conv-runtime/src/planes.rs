//! [`PlanesMut`]: the part of an output tensor one thread writes.
//!
//! A forward pass split over threads hands each part either whole channel planes (a range of
//! groups) or the same range of rows / pixels of every plane. The second is not one contiguous
//! slice: it is `count` runs of `len` floats, `stride` floats apart. `PlanesMut` is that set of
//! runs borrowed mutably, split into disjoint sets the way `split_at_mut` splits a slice, so the
//! generated code writes through plain checked `&mut [f32]` plane slices and never needs
//! `unsafe`.

use core::marker::PhantomData;

/// `count` disjoint runs ("planes") of `len` floats, `stride` floats apart, mutably borrowed
/// from one buffer for `'a`.
///
/// Invariant (I): for every `i < count`, the floats `ptr + i * stride .. ptr + i * stride + len`
/// lie inside the buffer borrowed for `'a`; the runs of different `i` are disjoint (`len <=
/// stride`, or `count <= 1`); and no other live reference reaches them (they were split off a
/// unique borrow, and every split hands out disjoint runs).
pub struct PlanesMut<'a> {
    ptr: *mut f32,
    count: usize,
    stride: usize,
    len: usize,
    _buf: PhantomData<&'a mut [f32]>,
}

// SAFETY: a `PlanesMut` is equivalent to `count` disjoint `&'a mut [f32]` (invariant I), and
// `&mut [f32]` is `Send`.
unsafe impl Send for PlanesMut<'_> {}

impl<'a> PlanesMut<'a> {
    /// The runs `buf[i * stride..][..len]` for `i < count`. Panics unless they are disjoint and
    /// inside `buf` (callers derive the arguments from checked shapes).
    pub fn new(buf: &'a mut [f32], count: usize, stride: usize, len: usize) -> Self {
        assert!(count <= 1 || len <= stride, "overlapping planes");
        if count > 0 {
            let end = (count - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(len));
            assert!(
                end.is_some_and(|e| e <= buf.len()),
                "planes outside the buffer"
            );
        }
        // (I) holds: runs inside `buf` (checked), disjoint (checked), `buf` uniquely borrowed.
        PlanesMut {
            ptr: buf.as_mut_ptr(),
            count,
            stride,
            len,
            _buf: PhantomData,
        }
    }

    /// Number of planes.
    #[inline(always)]
    pub fn count(&self) -> usize {
        self.count
    }

    /// Floats per plane.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the planes hold no float.
    pub fn is_empty(&self) -> bool {
        self.count == 0 || self.len == 0
    }

    /// Plane `i`.
    #[inline(always)]
    pub fn plane(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.count, "plane index out of range");
        // SAFETY: `i < count`, so by (I) the run at `ptr + i * stride` of `len` floats is inside
        // the buffer and reached by no other live reference; `&mut self` keeps it unique for the
        // returned lifetime.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.wrapping_add(i * self.stride), self.len) }
    }

    /// Planes `first..first + count`, floats `start..start + len` of each, borrowed from `self`.
    #[inline(always)]
    pub fn sub(&mut self, first: usize, count: usize, start: usize, len: usize) -> PlanesMut<'_> {
        assert!(
            first <= self.count && count <= self.count - first,
            "planes out of range"
        );
        assert!(
            start <= self.len && len <= self.len - start,
            "columns out of range"
        );
        // (I) for the result: each of its runs is a sub-run of one of `self`'s runs (plane
        // `first + i`, columns `start..start + len`), so inside the buffer and disjoint from each
        // other; `&mut self` keeps them unique while the result lives.
        PlanesMut {
            ptr: self
                .ptr
                .wrapping_add(first * self.stride)
                .wrapping_add(start),
            count,
            stride: self.stride,
            len,
            _buf: PhantomData,
        }
    }

    /// The first float of planes `first..first + 16` at column `start` and the plane stride in
    /// floats, for a store of 16 floats into each of those 16 planes (an AMX tile); `None`
    /// unless all of them lie in the planes. Each of those floats lies in the run of its plane
    /// (invariant I), reached through `&mut self` only while the pointer is used.
    #[inline(always)]
    pub(crate) fn block16(&mut self, first: usize, start: usize) -> Option<(*mut f32, usize)> {
        (first + 16 <= self.count && start + 16 <= self.len).then(|| {
            (
                self.ptr
                    .wrapping_add(first * self.stride)
                    .wrapping_add(start),
                self.stride,
            )
        })
    }

    /// Floats from the last 64-byte line boundary to the first float of every plane, when
    /// that is the same for all of them (planes a whole number of lines apart).
    #[inline(always)]
    pub(crate) fn line_offset(&self) -> Option<usize> {
        (self.count <= 1 || self.stride % 16 == 0).then_some((self.ptr as usize % 64) / 4)
    }

    /// Planes `first..first + count`, whole.
    #[inline(always)]
    pub fn planes(&mut self, first: usize, count: usize) -> PlanesMut<'_> {
        let len = self.len;
        self.sub(first, count, 0, len)
    }

    /// Floats `start..start + len` of every plane.
    #[inline(always)]
    pub fn cols(&mut self, start: usize, len: usize) -> PlanesMut<'_> {
        let count = self.count;
        self.sub(0, count, start, len)
    }

    /// Splits into planes `..at` and `at..`.
    pub fn split_planes(self, at: usize) -> (PlanesMut<'a>, PlanesMut<'a>) {
        assert!(at <= self.count, "split past the last plane");
        let PlanesMut {
            ptr,
            count,
            stride,
            len,
            ..
        } = self;
        // (I) for both: their runs are `self`'s runs `..at` and `at..`, disjoint sets.
        (
            PlanesMut {
                ptr,
                count: at,
                stride,
                len,
                _buf: PhantomData,
            },
            PlanesMut {
                ptr: ptr.wrapping_add(at * stride),
                count: count - at,
                stride,
                len,
                _buf: PhantomData,
            },
        )
    }

    /// Splits every plane into floats `..at` and `at..`.
    pub fn split_cols(self, at: usize) -> (PlanesMut<'a>, PlanesMut<'a>) {
        assert!(at <= self.len, "split past the end of a plane");
        let PlanesMut {
            ptr,
            count,
            stride,
            len,
            ..
        } = self;
        // (I) for both: run `i` of each is the first `at` / last `len - at` floats of `self`'s
        // run `i`, so inside the buffer and disjoint from every other run of either.
        (
            PlanesMut {
                ptr,
                count,
                stride,
                len: at,
                _buf: PhantomData,
            },
            PlanesMut {
                ptr: ptr.wrapping_add(at),
                count,
                stride,
                len: len - at,
                _buf: PhantomData,
            },
        )
    }
}

/// The stores of one register tile: `T` planes from the first of a [`PlanesMut`], `R` rows of
/// `len <= lanes` floats at `at`, `at + stride`, .. (rows before `masked_from` whole vectors),
/// checked once when made so that its stores need no check.
pub struct TileStores<'p, S: pulp::Simd, const T: usize, const R: usize> {
    /// Invariant (J): for `t < T` and `r < R`, `ptrs[t] + r * stride ..` plus `lanes` floats
    /// when `r < masked_from`, else `len`, lies inside run `t` of the `PlanesMut` borrowed
    /// mutably for `'p`.
    ptrs: [*mut f32; T],
    stride: usize,
    /// `Some` when `len < lanes`: the mask of lanes `0..len`.
    mask: Option<pulp::MemMask<S::m32s>>,
    /// The first row stored through `mask`.
    masked_from: usize,
    _planes: PhantomData<&'p mut [f32]>,
}

impl PlanesMut<'_> {
    /// The stores of a tile: rows `at + r * stride` (`r < R`) of planes `0..T`, `len` floats
    /// each (at most a vector of `S`). Panics unless they lie inside the planes (a bug in the
    /// generated sweep, never a consequence of user input).
    #[inline(always)]
    pub fn tile_stores<S: pulp::Simd, const T: usize, const R: usize>(
        &mut self,
        simd: S,
        at: usize,
        stride: usize,
        len: usize,
    ) -> TileStores<'_, S, T, R> {
        self.stores_masked_from(simd, at, stride, len, 0)
    }

    /// As [`PlanesMut::tile_stores`], but rows before the last store whole vectors and only the
    /// last row `len` floats (a flat tile whose last vector ends the plane).
    #[inline(always)]
    pub fn tile_stores_last<S: pulp::Simd, const T: usize, const R: usize>(
        &mut self,
        simd: S,
        at: usize,
        stride: usize,
        len: usize,
    ) -> TileStores<'_, S, T, R> {
        self.stores_masked_from(simd, at, stride, len, R - 1)
    }

    #[inline(always)]
    fn stores_masked_from<S: pulp::Simd, const T: usize, const R: usize>(
        &mut self,
        simd: S,
        at: usize,
        stride: usize,
        len: usize,
        masked_from: usize,
    ) -> TileStores<'_, S, T, R> {
        const { assert!(T > 0 && R > 0) };
        let lanes = S::F32_LANES;
        // The last row's end bounds every row's: rows before `masked_from` store `lanes`
        // floats, which `stride >= lanes` keeps below the next row's start when they are
        // followed by another row (`masked_from < R` always, so the last row takes `len`).
        let last = row_end(R - 1, stride, at, len);
        assert!(
            T <= self.count
                && len <= lanes
                && (masked_from == 0 || stride >= lanes)
                && last.is_some_and(|e| e <= self.len),
            "conv-kernel bug: tile stores outside the planes"
        );
        // (J): `at + (R-1) * stride + len <= len of a run` (checked), runs `t < T <= count`;
        // a whole row `r < masked_from <= R - 1` ends at `at + r stride + lanes <=
        // at + (r + 1) stride <= at + (R-1) stride`.
        TileStores {
            ptrs: core::array::from_fn(|t| self.ptr.wrapping_add(t * self.stride + at)),
            stride,
            mask: (len < lanes).then(|| crate::dispatch::lanes_between(simd, 0, len as u32)),
            masked_from,
            _planes: PhantomData,
        }
    }
}

/// Where `len` floats stored at row `r` of a tile from `at`, rows `stride` apart, end; `None` on
/// overflow.
fn row_end(r: usize, stride: usize, at: usize, len: usize) -> Option<usize> {
    r.checked_mul(stride)?.checked_add(at)?.checked_add(len)
}

/// Stores of a streaming tile: one vector of `len` columns from `at` in each of `T` planes,
/// in any of `rows` rows `stride` floats apart. Planes from `count` on are not stored (a tile
/// whose last units repeat earlier ones to fill its `T` planes).
pub struct ColStores<'p, S: pulp::Simd, const T: usize> {
    /// Invariant (K): for `t < count <= T` and `r < rows`, `ptrs[t] + r * stride ..` plus `len`
    /// floats lies inside run `t` of the `PlanesMut` borrowed mutably for `'p`.
    ptrs: [*mut f32; T],
    count: usize,
    rows: usize,
    stride: usize,
    /// `Some` when `len < lanes`: the mask of lanes `0..len`.
    mask: Option<pulp::MemMask<S::m32s>>,
    _planes: PhantomData<&'p mut [f32]>,
}

impl PlanesMut<'_> {
    /// Stores into the first `min(T, count)` planes at `at + r * stride`, `len <= lanes`
    /// floats each, for rows `r < rows`.
    ///
    /// # Panics
    /// When the last row's floats would end past a plane, or `len` exceeds the lanes (a bug in
    /// the generated sweep).
    #[inline(always)]
    pub fn col_stores<S: pulp::Simd, const T: usize>(
        &mut self,
        simd: S,
        at: usize,
        stride: usize,
        len: usize,
        rows: usize,
    ) -> ColStores<'_, S, T> {
        let lanes = S::F32_LANES;
        let end = match rows {
            0 => Some(0),
            _ => row_end(rows - 1, stride, at, len),
        };
        assert!(
            len <= lanes && end.is_some_and(|e| e <= self.len),
            "conv-kernel bug: column stores outside the planes"
        );
        // (K): row `r < rows` ends at `at + r stride + len <= end <= len of a run` (checked),
        // planes `t < count <= self.count`.
        ColStores {
            ptrs: core::array::from_fn(|t| self.ptr.wrapping_add(t * self.stride + at)),
            count: self.count.min(T),
            rows,
            stride,
            mask: (len < lanes).then(|| crate::dispatch::lanes_between(simd, 0, len as u32)),
            _planes: PhantomData,
        }
    }
}

impl<S: pulp::Simd, const T: usize> ColStores<'_, S, T> {
    /// Stores the first `len` lanes of `v` to row `r` of plane `TT`; nothing when `TT` is not
    /// below `count`.
    ///
    /// # Panics
    /// When `r >= rows` (a bug in the generated sweep).
    #[inline(always)]
    pub fn st<const TT: usize>(&mut self, simd: S, r: usize, v: S::f32s) {
        const { assert!(TT < T) };
        assert!(
            r < self.rows,
            "conv-kernel bug: column store below the tile"
        );
        if TT >= self.count {
            return;
        }
        let p = self.ptrs[TT].wrapping_add(r * self.stride);
        match self.mask {
            // SAFETY: by (K) the `len` floats at `p` lie in run `TT` of the planes, borrowed
            // uniquely through `&mut self`; the mask enables lanes `0..len`.
            Some(mask) => unsafe { simd.mask_store_ptr_f32s(mask, p, v) },
            // SAFETY: as above with `len == lanes`: a whole vector at `p` (unaligned write of
            // plain old data).
            None => unsafe { core::ptr::write_unaligned(p.cast::<S::f32s>(), v) },
        }
    }
}

impl<S: pulp::Simd, const T: usize, const R: usize> TileStores<'_, S, T, R> {
    /// Stores the first `len` lanes of `v` to row `RR` of plane `TT`.
    ///
    /// Plain stores: non-temporal ones for 64-byte aligned whole vectors (AVX-512) measured
    /// mixed to worse on the depthwise rows (10th percentile / median, 20 interleaved rounds:
    /// 32 x 112 x 112 156 -> 103 / 194 -> 203 us, 144 x 56 x 56 153 -> 198 / 180 -> 233,
    /// stride 2 on 96 x 112 x 112 244 -> 258 / 292 -> 313).
    #[inline(always)]
    pub fn st<const TT: usize, const RR: usize>(&mut self, simd: S, v: S::f32s) {
        const { assert!(TT < T && RR < R) };
        let p = self.ptrs[TT].wrapping_add(RR * self.stride);
        let mask = if RR < self.masked_from {
            None
        } else {
            self.mask
        };
        match mask {
            // SAFETY: by (J) the `len` floats at `p` lie in a run of the planes, borrowed
            // uniquely through `&mut self`; the mask enables lanes `0..len`.
            Some(mask) => unsafe { simd.mask_store_ptr_f32s(mask, p, v) },
            // SAFETY: as above with `len == lanes`, or a row before `masked_from`, which (J)
            // bounds by `lanes` floats: a whole vector at `p` (unaligned write of plain old data).
            None => unsafe { core::ptr::write_unaligned(p.cast::<S::f32s>(), v) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `tag` into every float of every plane.
    fn paint(p: &mut PlanesMut<'_>, tag: f32) {
        for i in 0..p.count() {
            p.plane(i).fill(tag);
        }
    }

    /// `col_stores` on every ISA: a tile of 3 planes over a view of 2 (the third is not
    /// stored), 1..=lanes floats at `at`, rows `stride` apart, float by float.
    #[test]
    fn col_stores_write_their_rows_and_skip_planes_past_the_view() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) {
                let lanes = S::F32_LANES;
                let (count, stride, len) = (3, 4 * lanes + 3, 4 * lanes + 3);
                for n in 1..=lanes {
                    let mut buf = vec![0.0f32; count * stride];
                    let mut view = PlanesMut::new(&mut buf, count, stride, len);
                    let mut two = view.planes(0, 2);
                    let (at, row) = (2, lanes + 1);
                    let src: Vec<f32> = (0..lanes).map(|i| i as f32 + 1.0).collect();
                    let v = simd.partial_load_f32s(&src);
                    let mut st = two.col_stores::<S, 3>(simd, at, row, n, 3);
                    st.st::<0>(simd, 0, v);
                    st.st::<0>(simd, 2, v);
                    st.st::<1>(simd, 1, v);
                    st.st::<2>(simd, 1, v);
                    let mut want = vec![0.0f32; count * stride];
                    for (t, r) in [(0, 0), (0, 2), (1, 1)] {
                        let start = t * stride + at + r * row;
                        want[start..start + n].copy_from_slice(&src[..n]);
                    }
                    assert_eq!(buf, want, "{lanes} lanes, {n} floats");
                }
            }
        }
        crate::dispatch::on_every_isa(K);
    }

    /// `tile_stores` on every ISA of this machine: tile (T = 2 planes, R = 3 rows) of 1..lanes
    /// floats at `at`, rows `stride` apart, checked float by float against the index arithmetic.
    #[test]
    fn tile_stores_write_their_rows_and_nothing_else() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) {
                let lanes = S::F32_LANES;
                let (count, stride, len) = (3, 4 * lanes + 3, 3 * lanes + 3);
                // `last`: `tile_stores_last`, whose rows before the last are whole vectors.
                for (n, last) in (1..=lanes).flat_map(|n| [(n, false), (n, true)]) {
                    let mut buf = vec![0.0f32; count * stride];
                    let mut view = PlanesMut::new(&mut buf, count, stride, len);
                    let (at, row) = (1, lanes + 1);
                    let src: Vec<f32> = (0..lanes).map(|i| i as f32 + 1.0).collect();
                    let v = simd.partial_load_f32s(&src);
                    let mut st = if last {
                        view.tile_stores_last::<S, 2, 3>(simd, at, row, n)
                    } else {
                        view.tile_stores::<S, 2, 3>(simd, at, row, n)
                    };
                    st.st::<0, 0>(simd, v);
                    st.st::<0, 2>(simd, v);
                    st.st::<1, 1>(simd, v);
                    let mut want = vec![0.0f32; count * stride];
                    for (t, r) in [(0, 0), (0, 2), (1, 1)] {
                        let start = t * stride + at + r * row;
                        let m = if last && r < 2 { lanes } else { n };
                        want[start..start + m].copy_from_slice(&src[..m]);
                    }
                    assert_eq!(buf, want, "{lanes} lanes, {n} floats, last only {last}");
                }
            }
        }
        crate::dispatch::on_every_isa(K);
    }

    #[test]
    #[should_panic(expected = "tile stores outside the planes")]
    fn tile_stores_past_a_plane_panic() {
        let mut buf = vec![0.0f32; 40];
        let mut view = PlanesMut::new(&mut buf, 2, 20, 20);
        // Rows at 1, 11, 21: the last one ends past the 20 floats of a plane.
        let _ = view.tile_stores::<pulp::Scalar, 2, 3>(pulp::Scalar, 1, 10, 1);
    }

    #[test]
    fn splits_cover_each_float_of_the_view_exactly_once() {
        // 3 planes of 5 floats, 7 apart, from offset 2 of a 22-float buffer.
        let mut buf = vec![0.0f32; 22];
        let view = PlanesMut::new(&mut buf[2..], 3, 7, 5);
        let (mut left, right) = view.split_cols(2);
        let (mut top, mut bottom) = right.split_planes(1);
        paint(&mut left, 1.0);
        paint(&mut top, 2.0);
        paint(&mut bottom, 3.0);
        let mut want = vec![0.0f32; 22];
        for i in 0..3 {
            for j in 0..5 {
                want[2 + i * 7 + j] = if j < 2 {
                    1.0
                } else if i < 1 {
                    2.0
                } else {
                    3.0
                };
            }
        }
        assert_eq!(buf, want);
    }

    #[test]
    fn sub_views_address_the_right_floats() {
        let mut buf: Vec<f32> = vec![0.0; 12];
        let mut view = PlanesMut::new(&mut buf, 3, 4, 4);
        view.sub(1, 2, 1, 2).plane(1)[1] = 9.0;
        view.cols(3, 1).plane(0)[0] = 8.0;
        assert_eq!(buf[2 * 4 + 1 + 1], 9.0);
        assert_eq!(buf[3], 8.0);
        assert_eq!(buf.iter().filter(|&&v| v != 0.0).count(), 2);
    }

    #[test]
    #[should_panic(expected = "planes outside the buffer")]
    fn rejects_planes_past_the_buffer() {
        let mut buf = vec![0.0f32; 10];
        let _ = PlanesMut::new(&mut buf, 3, 4, 3);
    }

    #[test]
    #[should_panic(expected = "overlapping planes")]
    fn rejects_overlapping_planes() {
        let mut buf = vec![0.0f32; 10];
        let _ = PlanesMut::new(&mut buf, 2, 2, 3);
    }

    #[test]
    #[should_panic(expected = "plane index out of range")]
    fn rejects_a_plane_past_the_count() {
        let mut buf = vec![0.0f32; 10];
        let mut view = PlanesMut::new(&mut buf, 2, 5, 5);
        let (mut a, _) = view.planes(0, 2).split_planes(1);
        let _ = a.plane(1);
    }
}
