//! Direct tiles that read the input planes in place, without a band copy.
//!
//! A band copy writes every input float once more before a tile reads it, and the tiles' loads
//! then wait for those stores. These tiles instead load each input row straight from its plane.
//! Padding rows read a row of zeros, padding columns come from masked loads, so a tile has no
//! border branches.
//!
//! Stride 2: each row is loaded two vectors at a time and split into even and odd columns in
//! registers. Column `c0 + 2 i (+ 1)` of an input row is lane `i` of the even (odd) vector of the
//! pair at `c0`. With `c0 = 2 ox0` for the output columns `ox0..ox0 + lanes`, tap `kx` (dilation 1)
//! reads column `2 (ox0 + i) + kx - pad_left`: even at shift `s` when `kx - pad_left = 2 s`, odd
//! when `kx - pad_left = 2 s + 1`, for shifts `s` of -1, 0 or 1; a shifted tap (`lo` / `hi`) shifts
//! one lane in from the neighbouring column. Plain loads for the pairs that lie inside the row
//! (as the stride-1 inner form below) gained nothing: 3x3 on 8 x 112 x 112 (in L2) 10.9-11.3 ->
//! 11.2-11.3 us.
//!
//! Stride 1: tap `kx` reads columns `ox0 + i + d` with `d = kx dilation - pad_left`: the row's
//! vector at `c0 = ox0` shifted by `d` lanes against its left or right neighbour vector (one
//! `valignd` on AVX-512), so a row costs at most three loads however many taps read it. A vector
//! whose every tap reads inside the row ([`InnerCols`]) instead loads each tap's vector plainly
//! at its offset: no masks and no shifts, only loads; the row's first and last whole vectors
//! do the same for taps inside the row and shift against zeros for those past its end.

use core::marker::PhantomData;
use core::ops::Range;

use pulp::Simd;

use crate::dispatch::{as_isa, lanes_between};

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
        if iy0 >= 0 && iy0 as usize + ROWS <= h {
            // Every row inside the plane (all but the first and last tiles): one slice per
            // channel, then row `j` starts `j w` floats into it.
            for (c, chan) in rows.iter_mut().enumerate() {
                let rows_c = &planes[(c * h + iy0 as usize) * w..][..ROWS * w];
                for (j, row) in chan.iter_mut().enumerate() {
                    *row = rows_c[j * w..].as_ptr();
                }
            }
        } else {
            for (c, chan) in rows.iter_mut().enumerate() {
                for (j, row) in chan.iter_mut().enumerate() {
                    let iy = iy0 + j as isize;
                    if iy >= 0 && (iy as usize) < h {
                        *row = planes[(c * h + iy as usize) * w..][..w].as_ptr();
                    }
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
        debug_assert!(cols.w == self.w);
        let (a, b) = (
            self.vec::<S, C, J, 0>(simd, cols),
            self.vec::<S, C, J, 1>(simd, cols),
        );
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
        #[cfg(target_arch = "x86_64")]
        if let Some(v4) = as_isa::<S, pulp::x86::V4>(simd) {
            // Column `c0 - 2 + P` is lane `14 + P` of the vector before `c0`.
            let nb = self.vec::<S, C, J, -1>(simd, cols);
            let r = shift_in_v4::<true>(v4, bytemuck::cast(v), bytemuck::cast(nb), 14 + P);
            return bytemuck::cast(r);
        }
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
        #[cfg(target_arch = "x86_64")]
        if let Some(v4) = as_isa::<S, pulp::x86::V4>(simd) {
            // Column `c0 + 32 + P` is lane `P` of the vector after the pair.
            let nb = self.vec::<S, C, J, 2>(simd, cols);
            let r = shift_in_v4::<false>(v4, bytemuck::cast(v), bytemuck::cast(nb), P);
            return bytemuck::cast(r);
        }
        let x = self.at(C, J, cols.c0 + 2 * S::F32_LANES + P);
        shift_in::<S, false>(simd, v, x)
    }

    /// The vector of row `J` of channel `C` at columns `c0 + K lanes..c0 + (K + 1) lanes`, zero
    /// outside the row, for `K` in -1..=2: at stride 1 the row's vector (0) and its left (-1)
    /// and right (1) neighbours, at stride 2 the pair (0, 1) and the vectors either side of it.
    #[inline(always)]
    pub fn vec<S: Simd, const C: usize, const J: usize, const K: isize>(
        &self,
        simd: S,
        cols: &InCols<S>,
    ) -> S::f32s {
        const { assert!(C < CHANS && J < ROWS && -1 <= K && K <= 2) };
        let col = cols.c0.wrapping_add_signed(K * S::F32_LANES as isize);
        self.load(simd, C, J, col, cols.masks[(K + 1) as usize])
    }

    /// Stride 1: columns `c0 + D + i` of row `J` of channel `C` (zero outside the row), from
    /// `v` (its [`vec`](Self::vec) 0) and `nb` (its vector -1 when `D < 0`, 1 when `D > 0`) by a
    /// lane shift on AVX-512 and AVX2 when `|D|` is below the lane count; otherwise a masked load
    /// at the shifted columns.
    #[inline(always)]
    pub fn shifted<S: Simd, const C: usize, const J: usize, const D: isize>(
        &self,
        simd: S,
        cols: &InCols<S>,
        v: S::f32s,
        nb: S::f32s,
    ) -> S::f32s {
        const { assert!(C < CHANS && J < ROWS) };
        if D == 0 {
            return v;
        }
        if let Some(r) = shift_lanes::<S, D>(simd, v, nb) {
            return r;
        }
        self.cols_at(simd, C, J, cols.c0 as isize + D)
    }

    /// Stride 1, columns `c0 + D + i` of row `J` of channel `C` for a vector of columns that
    /// lies inside the row for every tap (see [`InnerCols`]): one plain unaligned load, no mask
    /// and no shift.
    #[inline(always)]
    pub fn inner<S: Simd, const C: usize, const J: usize, const D: isize>(
        &self,
        simd: S,
        cols: &InnerCols,
    ) -> S::f32s {
        const { assert!(C < CHANS && J < ROWS) };
        let _ = simd;
        // Folds away: the generated tile passes the offsets it was made for (see `InnerCols`).
        assert!(
            cols.lo <= D && D <= cols.hi && cols.w == self.w && cols.lanes == S::F32_LANES,
            "conv-kernel bug: tap outside the inner columns' offsets"
        );
        // SAFETY: `rows[C][J]` is valid for `w` floats (the invariant of `rows`), and
        // `InnerCols::new` checked `c0 + lo >= 0` and `c0 + hi + lanes <= w` for this row width
        // and `S`'s lanes (asserted above), so the `lanes` floats from column `c0 + D` (`lo <= D
        // <= hi`, asserted above) lie inside the row; `S::f32s` is plain old data, read
        // unaligned.
        unsafe {
            let at = (cols.c0 as isize + D) as usize;
            core::ptr::read_unaligned(self.rows[C][J].add(at).cast::<S::f32s>())
        }
    }

    /// Stride 2, a vector of columns whose every pair lies inside the row ([`InnerCols`] with
    /// `c0 = 2 ox0`): the even and odd columns of row `J` of channel `C` from column `c0 + OFF`
    /// (`OFF` 0 for the pair, 2 for the vectors one lane right), two plain
    /// loads split in the lane order of [`deinterleave_inner`]; [`inner_order`] puts a sum of
    /// such vectors back in column order.
    #[inline(always)]
    pub fn pair_inner<S: Simd, const C: usize, const J: usize, const OFF: isize>(
        &self,
        simd: S,
        cols: &InnerCols,
    ) -> (S::f32s, S::f32s) {
        const { assert!(C < CHANS && J < ROWS) };
        let lanes = S::F32_LANES as isize;
        // Folds away: the generated tile passes the offsets it was made for.
        assert!(
            cols.lo <= OFF
                && OFF + lanes <= cols.hi
                && cols.w == self.w
                && cols.lanes == S::F32_LANES,
            "conv-kernel bug: pair outside the inner columns' offsets"
        );
        // SAFETY: `rows[C][J]` is valid for `w` floats (the invariant of `rows`), and
        // `InnerCols::new` checked `c0 + lo >= 0` and `c0 + hi + lanes <= w` for this row width
        // and `S`'s lanes (asserted above); the two loads read columns `c0 + OFF..c0 + OFF + 2
        // lanes`, inside that span since `lo <= OFF` and `OFF + lanes <= hi` (asserted above);
        // `S::f32s` is plain old data, read unaligned.
        let (a, b) = unsafe {
            let p = self.rows[C][J].add((cols.c0 as isize + OFF) as usize);
            (
                core::ptr::read_unaligned(p.cast::<S::f32s>()),
                core::ptr::read_unaligned(p.add(S::F32_LANES).cast::<S::f32s>()),
            )
        };
        deinterleave_inner(simd, a, b)
    }

    /// Stride 1, columns `c0 + D + i` of row `J` of channel `C` for an edge form of
    /// [`InnerCols`] and an offset `D` past the row's end there (negative at the left edge,
    /// positive at the right): `x` (the vector at offset 0) shifted by `D` lanes against zeros;
    /// a masked load at the shifted columns where the ISA has no such shift (`x` itself for
    /// `D == 0`).
    #[inline(always)]
    pub fn edge<S: Simd, const C: usize, const J: usize, const D: isize>(
        &self,
        simd: S,
        cols: &InnerCols,
        x: S::f32s,
    ) -> S::f32s {
        const { assert!(C < CHANS && J < ROWS) };
        if D == 0 {
            return x;
        }
        // Folds away: the generated tile passes the form it was made for.
        assert!(
            (if D < 0 {
                cols.zero_left
            } else {
                cols.zero_right
            }) && cols.w == self.w
                && cols.lanes == S::F32_LANES,
            "conv-kernel bug: edge tap on the wrong side of the row"
        );
        if let Some(r) = shift_lanes::<S, D>(simd, x, simd.splat_f32s(0.0)) {
            return r;
        }
        self.cols_at(simd, C, J, cols.c0 as isize + D)
    }

    /// Columns `start + i` of row `j` of channel `c`, zero outside the row: a masked load of the
    /// lanes whose columns lie in `0..w`.
    #[inline(always)]
    fn cols_at<S: Simd>(&self, simd: S, c: usize, j: usize, start: isize) -> S::f32s {
        self.load(simd, c, j, start as usize, span(simd, start, self.w))
    }

    /// Lanes of `mask` of row `j` of channel `c` from column `col` (a wrapped offset: `col`
    /// may lie before the row; only enabled lanes are read). Every mask passed here enables
    /// only lanes whose column lies in `0..w` (see [`InCols::new`] and [`span`]).
    #[inline(always)]
    fn load<S: Simd>(
        &self,
        simd: S,
        c: usize,
        j: usize,
        col: usize,
        mask: pulp::MemMask<S::m32s>,
    ) -> S::f32s {
        // SAFETY: `rows[c][j]` is valid for `w` floats (the invariant of `rows`) and the enabled
        // lanes of `mask` read columns inside `0..w` (the masks' contract above); the pointer
        // arithmetic wraps and is only dereferenced for enabled lanes.
        unsafe { simd.mask_load_ptr_f32s(mask, self.rows[c][j].wrapping_add(col)) }
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

/// Bytes of a pass's input and output within which [`StreamRows::prefer_wide`] streams wide
/// rows: three quarters of a 32 MiB L3 (Zen 4's, per CCD), the cache its planes come from.
pub const STREAM_WIDE_BYTES: usize = 24 * 1024 * 1024;

/// The input planes of a streaming tile (one plane per unit of work it computes), read one
/// row at a time: row `iy` of each plane as a one-row [`InRows`], a row of zeros outside it.
pub struct StreamRows<'a, const CHANS: usize> {
    /// Invariant: every pointer is valid for reads of `h * w` floats for `'a`.
    planes: [*const f32; CHANS],
    /// Valid for reads of `w` floats for `'a`.
    zeros: *const f32,
    h: usize,
    w: usize,
    _life: PhantomData<&'a [f32]>,
}

impl<'a, const CHANS: usize> StreamRows<'a, CHANS> {
    /// The `h x w` planes `planes`; `zeros` holds at least `w >= 1` zeros.
    ///
    /// # Panics
    /// When a plane holds fewer than `h * w` floats or `zeros` fewer than `w` (a bug in the
    /// generated sweep, never a consequence of user input).
    #[inline(always)]
    pub fn new(planes: [&'a [f32]; CHANS], zeros: &'a [f32], h: usize, w: usize) -> Self {
        assert!(
            w >= 1 && zeros.len() >= w && planes.iter().all(|p| p.len() >= h * w),
            "conv-kernel bug: streamed planes too short"
        );
        StreamRows {
            planes: planes.map(<[f32]>::as_ptr),
            zeros: zeros.as_ptr(),
            h,
            w,
            _life: PhantomData,
        }
    }

    /// Whether a layer with streaming tiles takes them (rather than its row tiles) on output
    /// rows `wo` wide with vectors of `lanes`: when a row is at most two vectors, where every
    /// case measured gains (3x3 depthwise, AVX-512: 384 x 14 x 14 24.3 -> 17.9 us, 960 x 7 x 7
    /// 39.1 -> 26.4, 960 x 28 x 28 293 -> 243; AVX2: 384 x 14 x 14 64.5 -> 48.0). Wider rows are
    /// mixed: 144 x 56 x 56 gains 4-11%, 960 x 56 x 56 (24 MB through memory) loses 5-20%, 32 x
    /// 112 x 112 loses 4% on AVX-512 and gains 10% on AVX2. Stride 2, AVX-512, by output width:
    /// 192 x 28 x 28 -> 14 19.7 -> 13.8 us, 576 x 14 x 14 -> 7 33.5 -> 23.3, 144 x 56 x 56 -> 28
    /// 53.2 / 52.1; 96 x 112 x 112 -> 56 134 against 165. Streams on every width, rows against
    /// streams (10th percentile of 30 interleaved rounds): 32 x 112 x 112 127 -> 153 us, 144 x
    /// 56 x 56 150 -> 216, stride 2 96 x 112 x 112 -> 56 260 -> 289.
    pub fn prefer(lanes: usize, wo: usize) -> bool {
        wo.div_ceil(lanes) <= 2
    }

    /// [`StreamRows::prefer`] for a layer whose row tiles read more than two input rows per
    /// output row (the macro's `plan::stream_wide`: dilated kernels): it also streams wider rows
    /// while the pass's input and output (`floats`) fit in [`STREAM_WIDE_BYTES`]. 3x3 at
    /// dilation 2 on 960 channels, AVX-512, rows (`t1r2`) -> streams, throwaway timer, p10 us:
    /// 33 x 33 538 -> 255 (2 threads 265 -> 129), 49 x 49 1028 -> 637; past the budget the
    /// streams' column passes lose to the rows' sequential order: 65 x 65 (32 MB) 1865 against
    /// 1961, 129 x 129 10150 against 13030. On AVX2 the same layer's row tiles (`t1r5`, 9 input
    /// rows per 5) stay under the macro's bar, though streams forced there ran 572 -> 455 us.
    pub fn prefer_wide(lanes: usize, wo: usize, floats: usize) -> bool {
        Self::prefer(lanes, wo) || floats.saturating_mul(4) <= STREAM_WIDE_BYTES
    }

    /// Steps `n` of a stream over output rows `oy0..` at stride `sh` and top padding `pt` whose
    /// `sh` input rows, `(oy0 + n) sh - pt ..`, all lie in the plane: `n` in the returned range
    /// (empty when none do).
    #[inline(always)]
    pub fn inside_steps(&self, oy0: usize, sh: usize, pt: usize) -> Range<usize> {
        // (oy0 + n) sh >= pt and (oy0 + n + 1) sh <= h + pt.
        let lo = pt.div_ceil(sh).saturating_sub(oy0);
        let hi = ((self.h + pt) / sh).saturating_sub(oy0);
        lo..hi.max(lo)
    }

    /// Row `iy` of every plane, which the caller knows lies in the plane (see
    /// [`StreamRows::inside_steps`]): [`StreamRows::row`] without the choice of the zero row.
    ///
    /// # Panics
    /// When `iy >= h` (a bug in the generated sweep, never a consequence of user input).
    #[inline(always)]
    pub fn row_in(&self, iy: usize) -> InRows<'a, CHANS, 1> {
        assert!(
            iy < self.h,
            "conv-kernel bug: streamed row outside the plane"
        );
        let off = iy * self.w;
        InRows {
            // (InRows' invariant) row `iy < h` starts `iy w` floats into a plane of `h w >= (iy +
            // 1) w` floats: `w` floats from there are in it.
            rows: self.planes.map(|p| [p.wrapping_add(off)]),
            w: self.w,
            _life: PhantomData,
        }
    }

    /// The `count` steady steps of a stream at stride `SH` whose first loads rows `iy0..iy0 +
    /// SH`: step `i` yields rows `iy0 + i SH..iy0 + (i + 1) SH` of every plane, one pointer bump
    /// apart, the range checked once here rather than per row as [`StreamRows::row_in`] does.
    ///
    /// # Panics
    /// When row `iy0 + count SH - 1` lies outside the plane (a bug in the generated sweep, never
    /// a consequence of user input).
    #[inline(always)]
    pub fn steps<const SH: usize>(&self, iy0: usize, count: usize) -> StreamSteps<'a, CHANS, SH> {
        const { assert!(SH >= 1) };
        assert!(
            count == 0
                || count
                    .checked_mul(SH)
                    .and_then(|n| n.checked_add(iy0))
                    .is_some_and(|end| end <= self.h),
            "conv-kernel bug: streamed steps outside the plane"
        );
        StreamSteps {
            // (StreamSteps' invariant) while steps are left, the next one's `SH` rows from row
            // `iy0 + i SH` lie in the plane (checked above), `SH w` floats from its start.
            planes: self.planes.map(|p| p.wrapping_add(iy0 * self.w)),
            w: self.w,
            left: count,
            _life: PhantomData,
        }
    }

    /// Row `iy` (signed: rows above the plane are negative) of every plane, zeros outside it.
    #[inline(always)]
    pub fn row(&self, iy: isize) -> InRows<'a, CHANS, 1> {
        let inside = iy >= 0 && (iy as usize) < self.h;
        let off = if inside { iy as usize * self.w } else { 0 };
        InRows {
            // (InRows' invariant) inside the plane, row `iy` starts `iy w` floats into a plane
            // of `h w >= (iy + 1) w` floats: `w` floats from there are in it; else the row of
            // `w` zeros.
            rows: self.planes.map(|p| {
                [if inside {
                    p.wrapping_add(off)
                } else {
                    self.zeros
                }]
            }),
            w: self.w,
            _life: PhantomData,
        }
    }
}

/// The steady steps of a stream (see [`StreamRows::steps`]), an iterator of [`StepRows`].
pub struct StreamSteps<'a, const CHANS: usize, const SH: usize> {
    /// Invariant: while `left > 0`, every pointer is valid for reads of `SH * w` floats for
    /// `'a` (the next step's rows).
    planes: [*const f32; CHANS],
    w: usize,
    left: usize,
    _life: PhantomData<&'a [f32]>,
}

impl<'a, const CHANS: usize, const SH: usize> Iterator for StreamSteps<'a, CHANS, SH> {
    type Item = StepRows<'a, CHANS, SH>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let step = StepRows {
            // (StepRows' invariant) `left` was above 0: by ours, `SH w` floats.
            planes: self.planes,
            w: self.w,
            _life: PhantomData,
        };
        // The next step's rows start `SH` rows on; only dereferenced while `left > 0`.
        self.planes = self.planes.map(|p| p.wrapping_add(SH * self.w));
        Some(step)
    }
}

/// The `SH` input rows of every plane one steady step of a stream loads.
pub struct StepRows<'a, const CHANS: usize, const SH: usize> {
    /// Invariant: every pointer is valid for reads of `SH * w` floats for `'a`.
    planes: [*const f32; CHANS],
    w: usize,
    _life: PhantomData<&'a [f32]>,
}

impl<'a, const CHANS: usize, const SH: usize> StepRows<'a, CHANS, SH> {
    /// The step's row `Q` of every plane.
    #[inline(always)]
    pub fn row<const Q: usize>(&self) -> InRows<'a, CHANS, 1> {
        const { assert!(Q < SH) };
        InRows {
            // (InRows' invariant) row `Q < SH` spans floats `Q w..(Q + 1) w` of the `SH w`
            // floats each pointer is valid for.
            rows: self.planes.map(|p| [p.wrapping_add(Q * self.w)]),
            w: self.w,
            _life: PhantomData,
        }
    }
}

/// The columns one vector of output columns reads: the input vector at column `c0` (`2 ox0` at
/// stride 2, `ox0` at stride 1), with the masks of the columns inside the row for it and its
/// neighbours.
pub struct InCols<S: Simd> {
    c0: usize,
    w: usize,
    /// For `k` in 0..4, the lanes of the vector at `c0 + (k - 1) lanes` whose columns lie in the
    /// row ([`span`]).
    masks: [pulp::MemMask<S::m32s>; 4],
}

/// The lanes `i` of a vector from column `start` whose columns `start + i` lie in `0..w`.
#[inline(always)]
fn span<S: Simd>(simd: S, start: isize, w: usize) -> pulp::MemMask<S::m32s> {
    let lanes = S::F32_LANES as isize;
    let lo = (-start).clamp(0, lanes);
    let hi = (w as isize - start).clamp(lo, lanes);
    lanes_between(simd, lo as u32, hi as u32)
}

impl<S: Simd> InCols<S> {
    /// The vectors from column `c0` of rows `w` floats wide.
    #[inline(always)]
    pub fn new(simd: S, c0: usize, w: usize) -> Self {
        let lanes = S::F32_LANES as isize;
        let c = c0 as isize;
        InCols {
            c0,
            w,
            masks: core::array::from_fn(|k| span(simd, c + (k as isize - 1) * lanes, w)),
        }
    }
}

/// Stride 1: a vector of columns from `c0` whose taps, at column offsets `lo..=hi`, all read
/// inside the row: every tap's vector is then one plain load at its offset ([`InRows::inner`]),
/// where [`InCols`] loads the vector and its neighbours under masks and shifts them. A masked
/// load costs a vector ALU uop beside the load on AVX-512, and a shift one more, both on the
/// ports the FMAs need; plain unaligned loads take the load ports alone.
///
/// At the ends of the row a whole vector takes an edge form: from `c0 = 0` (the columns before
/// it are padding, [`InnerCols::left`]) the taps left of the vector shift it against zeros, and
/// from `c0 = w - lanes` ([`InnerCols::right`]) so do the taps right of it; every other tap is a
/// plain load ([`InRows::edge`]). The right form recomputes a last vector of fewer than `lanes`
/// columns as the row's last whole vector, storing some columns a second time with the same
/// value (each column's taps in the same order). On 56-wide rows (AVX-512, 3x3) two of the four
/// vectors are edges: under masks and shifts they took 65% of the samples (`perf annotate`, 16
/// x 56 x 56 in L2) against 29% for the two inner ones; in edge forms the layer ran 13.4-13.9 ->
/// 11.4-11.5 us (throwaway timer, alternating runs), 144 x 56 x 56 144 -> 132 us, 16 x 112 x 112
/// 43-47 -> 40-42 us; on AVX2 (8 lanes, two of seven vectors edges) level within noise.
pub struct InnerCols {
    c0: usize,
    w: usize,
    lanes: usize,
    /// The offsets whose plain loads lie in the row: `c0 + lo >= 0`, `c0 + hi + lanes <= w`.
    lo: isize,
    hi: isize,
    /// Columns before `c0` lie outside the row (`c0 == 0`): taps at negative offsets shift
    /// the vector against zeros.
    zero_left: bool,
    /// Columns from `c0 + lanes` lie outside the row (`c0 + lanes == w`): taps at positive
    /// offsets shift the vector against zeros.
    zero_right: bool,
}

impl InnerCols {
    /// The columns from `c0` of rows `w` wide for taps at offsets `lo..=hi` (`lo <= 0 <= hi`)
    /// and vectors of `S`, when `c0 + lo >= 0` and `c0 + hi + lanes <= w`; `None` otherwise.
    #[inline(always)]
    pub fn new<S: Simd>(c0: usize, w: usize, lo: isize, hi: isize) -> Option<Self> {
        let (c, lanes) = (c0 as isize, S::F32_LANES);
        (lo <= 0 && hi >= 0 && c + lo >= 0 && c + hi + lanes as isize <= w as isize).then_some(
            InnerCols {
                c0,
                w,
                lanes,
                lo,
                hi,
                zero_left: false,
                zero_right: false,
            },
        )
    }

    /// The left edge form for output columns from `ox` of a `wo`-wide output row (stride 1) whose
    /// taps read columns `ox + lo..=ox + hi`: when `ox = 0`, a whole vector of output columns
    /// fits (`lanes <= wo`) and the taps at offsets `0..=hi` read inside the row. The taps at
    /// negative offsets are then the vector at column 0 shifted against zeros.
    #[inline(always)]
    pub fn left<S: Simd>(ox: usize, w: usize, wo: usize, lo: isize, hi: isize) -> Option<Self> {
        let lanes = S::F32_LANES;
        (ox == 0 && lo <= 0 && hi >= 0 && lanes <= wo && hi + lanes as isize <= w as isize)
            .then_some(InnerCols {
                c0: 0,
                w,
                lanes,
                lo: 0,
                hi,
                zero_left: true,
                zero_right: false,
            })
    }

    /// The right edge form for output columns from `ox` (stride 1, `wo == w`: as many output
    /// columns as input ones), when `ox` starts the row's last vector (`ox + lanes >= w`): the
    /// row's last whole vector, from `c0 = w - lanes`, when it fits and the taps at offsets
    /// `lo..=0` read inside the row. The taps at positive offsets are then that vector shifted
    /// against zeros. Its output columns start at [`InnerCols::c0`], before `ox` unless the
    /// vector ends the row exactly.
    #[inline(always)]
    pub fn right<S: Simd>(ox: usize, w: usize, wo: usize, lo: isize, hi: isize) -> Option<Self> {
        let lanes = S::F32_LANES;
        let fits = w == wo && ox + lanes >= w && w >= lanes;
        (fits && lo <= 0 && hi >= 0 && (w - lanes) as isize + lo >= 0).then(|| InnerCols {
            c0: w - lanes,
            w,
            lanes,
            lo,
            hi: 0,
            zero_left: false,
            zero_right: true,
        })
    }

    /// The first column of the vector (the output column of its first lane, at stride 1).
    #[inline(always)]
    pub fn c0(&self) -> usize {
        self.c0
    }

    /// Whether inner columns pay on the planes from `planes` with rows `w` wide: unless every
    /// row starts on a whole vector (`w` a multiple of the lanes, the planes aligned to a
    /// vector), where [`InCols`]' loads are aligned and each reads one cache line, while the
    /// shifted plain loads each straddle two. Throwaway timer, AVX-512, 3x3 on 32 x 112 x 112,
    /// buffers at page boundaries, masked and shifted against inner: input aligned 97 against
    /// 103-105 us, input 16 bytes off 106-112 against 101-108. On rows not a whole number of
    /// vectors wide both straddle lines and inner columns gain (144 x 56 x 56 123 -> 114 us).
    #[inline(always)]
    pub fn pay<S: Simd>(planes: &[f32], w: usize) -> bool {
        let lanes = S::F32_LANES;
        w % lanes != 0 || planes.as_ptr() as usize % (lanes * 4) != 0
    }
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

/// [`deinterleave`] up to a fixed order of the lanes, the same for every call on one ISA: on
/// AVX2 the in-lane shuffles alone ([`split_v3`]: lanes `0 1 4 5 2 3 6 7`), their
/// cross-lane fix deferred to one [`inner_order`] per output vector instead of two per input
/// row; elsewhere [`deinterleave`] itself. Lane-wise arithmetic on such vectors (FMAs with
/// splatted weights) commutes with the order.
#[inline(always)]
pub(crate) fn deinterleave_inner<S: Simd>(simd: S, a: S::f32s, b: S::f32s) -> (S::f32s, S::f32s) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = as_isa::<S, pulp::x86::V3>(simd) {
        let (e, o) = split_v3(v3, bytemuck::cast(a), bytemuck::cast(b));
        return (bytemuck::cast(e), bytemuck::cast(o));
    }
    deinterleave(simd, a, b)
}

/// A vector in the lane order of [`deinterleave_inner`] put in column order: on AVX2 64-bit
/// lanes `0 2 1 3` ([`order_v3`]), elsewhere `v` itself.
#[inline(always)]
pub fn inner_order<S: Simd>(simd: S, v: S::f32s) -> S::f32s {
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = as_isa::<S, pulp::x86::V3>(simd) {
        return bytemuck::cast(order_v3(v3, bytemuck::cast(v)));
    }
    let _ = simd;
    v
}

/// `(lo, hi)`: the lanes of `e` and `o` interleaved, `e0 o0 e1 o1 ..`, the inverse of
/// [`deinterleave`].
#[inline(always)]
pub(crate) fn interleave<S: Simd>(simd: S, e: S::f32s, o: S::f32s) -> (S::f32s, S::f32s) {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(v4) = as_isa::<S, pulp::x86::V4>(simd) {
            use core::arch::x86_64::{__m512, __m512i};
            let lo_idx: __m512i = bytemuck::cast(core::array::from_fn::<i32, 16, _>(|i| {
                (i / 2 + 16 * (i % 2)) as i32
            }));
            let hi_idx: __m512i = bytemuck::cast(core::array::from_fn::<i32, 16, _>(|i| {
                (8 + i / 2 + 16 * (i % 2)) as i32
            }));
            let (e, o): (__m512, __m512) = (bytemuck::cast(e), bytemuck::cast(o));
            return (
                bytemuck::cast(v4.avx512f._mm512_permutex2var_ps(e, lo_idx, o)),
                bytemuck::cast(v4.avx512f._mm512_permutex2var_ps(e, hi_idx, o)),
            );
        }
        if let Some(v3) = as_isa::<S, pulp::x86::V3>(simd) {
            use core::arch::x86_64::__m256;
            let (e, o): (__m256, __m256) = (bytemuck::cast(e), bytemuck::cast(o));
            // Within 128-bit lanes: `e0 o0 e1 o1 | e4 o4 e5 o5` and `e2 o2 e3 o3 | e6 o6 e7 o7`.
            let (a, b) = (
                v3.avx._mm256_unpacklo_ps(e, o),
                v3.avx._mm256_unpackhi_ps(e, o),
            );
            return (
                bytemuck::cast(v3.avx._mm256_permute2f128_ps::<0x20>(a, b)),
                bytemuck::cast(v3.avx._mm256_permute2f128_ps::<0x31>(a, b)),
            );
        }
    }
    let lanes = S::F32_LANES;
    let mut src = [0.0f32; 64];
    let mut dst = [0.0f32; 64];
    simd.partial_store_f32s(&mut src[..lanes], e);
    simd.partial_store_f32s(&mut src[lanes..2 * lanes], o);
    for i in 0..lanes {
        dst[2 * i] = src[i];
        dst[2 * i + 1] = src[lanes + i];
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
/// the odds, [`split_v3`]), then 64-bit lanes `0 2 1 3` ([`order_v3`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn deinterleave_v3(
    v3: pulp::x86::V3,
    a: pulp::f32x8,
    b: pulp::f32x8,
) -> (pulp::f32x8, pulp::f32x8) {
    let (e, o) = split_v3(v3, a, b);
    (order_v3(v3, e), order_v3(v3, o))
}

/// The even and odd lanes of `a ++ b` in the lane order `0 1 4 5 2 3 6 7`: two in-lane shuffles.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn split_v3(v3: pulp::x86::V3, a: pulp::f32x8, b: pulp::f32x8) -> (pulp::f32x8, pulp::f32x8) {
    use core::arch::x86_64::__m256;
    let (a, b): (__m256, __m256) = (bytemuck::cast(a), bytemuck::cast(b));
    (
        bytemuck::cast(v3.avx._mm256_shuffle_ps::<0x88>(a, b)),
        bytemuck::cast(v3.avx._mm256_shuffle_ps::<0xDD>(a, b)),
    )
}

/// A vector in the lane order of [`split_v3`] put in column order: 64-bit lanes `0 2 1 3`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn order_v3(v3: pulp::x86::V3, v: pulp::f32x8) -> pulp::f32x8 {
    let r = v3
        .avx2
        ._mm256_permute4x64_pd::<0xD8>(v3.avx._mm256_castps_pd(bytemuck::cast(v)));
    bytemuck::cast(v3.avx._mm256_castpd_ps(r))
}

/// Stride-1 lane shift: lanes `i + D` of `v` with `nb` after it (`D > 0`) or before it
/// (`D < 0`), on the ISAs with a two-source lane shift and `|D|` below the lane count.
#[inline(always)]
fn shift_lanes<S: Simd, const D: isize>(simd: S, v: S::f32s, nb: S::f32s) -> Option<S::f32s> {
    let lanes = S::F32_LANES as isize;
    if D == 0 || D.abs() >= lanes {
        return None;
    }
    // `(lo ++ hi)[i + e]`.
    let (lo, hi, e) = if D > 0 {
        (v, nb, D)
    } else {
        (nb, v, lanes + D)
    };
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(v4) = as_isa::<S, pulp::x86::V4>(simd) {
            let r = concat_shift_v4(v4, bytemuck::cast(lo), bytemuck::cast(hi), e as u32);
            return Some(bytemuck::cast(r));
        }
        if let Some(v3) = as_isa::<S, pulp::x86::V3>(simd) {
            let r = concat_shift_v3(v3, bytemuck::cast(lo), bytemuck::cast(hi), e as u32);
            return Some(bytemuck::cast(r));
        }
    }
    let _ = (simd, lo, hi, e);
    None
}

/// Calls `$f::<IMM>()` for the run-time `$e` (a constant after inlining) among `$imm`.
#[cfg(target_arch = "x86_64")]
macro_rules! with_imm {
    ($e:expr, |$c:ident| $body:expr, [$($imm:literal),*]) => {
        match $e {
            $( $imm => { const $c: i32 = $imm; $body } )*
            _ => unreachable!("lane shift out of range"),
        }
    };
}

/// `(lo ++ hi)[i + e]` for `0 < e < 16`: one `valignd`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn concat_shift_v4(v4: pulp::x86::V4, lo: pulp::f32x16, hi: pulp::f32x16, e: u32) -> pulp::f32x16 {
    use core::arch::x86_64::__m512i;
    let (lo, hi): (__m512i, __m512i) = (bytemuck::cast(lo), bytemuck::cast(hi));
    let r = with_imm!(
        e,
        |E| v4.avx512f._mm512_alignr_epi32::<E>(hi, lo),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    );
    bytemuck::cast(r)
}

/// `(lo ++ hi)[i + e]` for `0 < e < 8`: the middle 128-bit halves (`lo.hi, hi.lo`), then a byte
/// shift within 128-bit lanes against `lo` (`e < 4`) or `hi` (`e > 4`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn concat_shift_v3(v3: pulp::x86::V3, lo: pulp::f32x8, hi: pulp::f32x8, e: u32) -> pulp::f32x8 {
    use core::arch::x86_64::__m256i;
    let (lo, hi): (__m256i, __m256i) = (bytemuck::cast(lo), bytemuck::cast(hi));
    let mid = v3.avx2._mm256_permute2x128_si256::<0x21>(lo, hi);
    let r = match e {
        1..=3 => with_imm!(
            e,
            |E| v3.avx2._mm256_alignr_epi8::<{ 4 * E }>(mid, lo),
            [1, 2, 3]
        ),
        4 => mid,
        _ => with_imm!(
            e - 4,
            |E| v3.avx2._mm256_alignr_epi8::<{ 4 * E }>(hi, mid),
            [1, 2, 3]
        ),
    };
    bytemuck::cast(r)
}

/// [`shift_in`] on AVX-512 with lane `at` of `nb` shifted in: one two-source permute, where
/// loading the neighbour column as a scalar and broadcasting it took a load, a select, a
/// broadcast and a lane shift.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn shift_in_v4<const LO: bool>(
    v4: pulp::x86::V4,
    v: pulp::f32x16,
    nb: pulp::f32x16,
    at: usize,
) -> pulp::f32x16 {
    use core::arch::x86_64::{__m512, __m512i};
    let (v, nb): (__m512, __m512) = (bytemuck::cast(v), bytemuck::cast(nb));
    // Indices 0..16 pick from the first operand, 16..32 from the second.
    let r = if LO {
        let idx: __m512i = bytemuck::cast(core::array::from_fn::<i32, 16, _>(|i| {
            if i == 0 {
                at as i32
            } else {
                15 + i as i32
            }
        }));
        v4.avx512f._mm512_permutex2var_ps(nb, idx, v)
    } else {
        let idx: __m512i = bytemuck::cast(core::array::from_fn::<i32, 16, _>(|i| {
            if i == 15 {
                16 + at as i32
            } else {
                1 + i as i32
            }
        }));
        v4.avx512f._mm512_permutex2var_ps(v, idx, nb)
    };
    bytemuck::cast(r)
}

/// `[prev(lanes-1), v0, .., v(lanes-2)]`: `v` shifted up one lane, the last lane of `prev` (the
/// same value one vector to the left) shifted in. Stride-2 in-place tiles in carry mode add
/// this to each output row's sum (see the generated tiles): one lane shift per output row where
/// shifting every input row's vector took a load and a permute per input row.
#[inline(always)]
pub fn shift_prev<S: Simd>(simd: S, v: S::f32s, prev: S::f32s) -> S::f32s {
    if let Some(r) = shift_lanes::<S, -1>(simd, v, prev) {
        return r;
    }
    let lanes = S::F32_LANES;
    let mut buf = [0.0f32; 64];
    simd.partial_store_f32s(&mut buf[..lanes], prev);
    simd.partial_store_f32s(&mut buf[lanes..2 * lanes], v);
    simd.partial_load_f32s(&buf[lanes - 1..2 * lanes - 1])
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

    /// Lane `i` of the stride-1 vector at offset `d` from `c0`: `row[c0 + d + i]`, zero outside.
    fn want(row: &[f32], c0: usize, d: isize, lanes: usize) -> Vec<f32> {
        (0..lanes as isize)
            .map(|i| {
                let c = c0 as isize + d + i;
                if (0..row.len() as isize).contains(&c) {
                    row[c as usize]
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn stride_one_vectors_and_shifts_match_scalar_definitions() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let lanes = S::F32_LANES;
                let mut out = vec![0.0f32; lanes];
                for w in [1, 5, lanes.max(2) - 1, lanes, lanes + 3, 2 * lanes + 1, 40] {
                    let row: Vec<f32> = (0..w).map(|i| i as f32 + 1.5).collect();
                    let zeros = vec![0.0f32; w];
                    let rows = InRows::<1, 1>::new(&row, &zeros, 1, w, 0);
                    for c0 in (0..w + 2 * lanes).step_by(lanes) {
                        let cols = InCols::new(simd, c0, w);
                        let v = rows.vec::<S, 0, 0, 0>(simd, &cols);
                        let l = rows.vec::<S, 0, 0, -1>(simd, &cols);
                        let r = rows.vec::<S, 0, 0, 1>(simd, &cols);
                        let r2 = rows.vec::<S, 0, 0, 2>(simd, &cols);
                        let lanes_i = lanes as isize;
                        for (got, d) in [(v, 0), (l, -lanes_i), (r, lanes_i), (r2, 2 * lanes_i)] {
                            simd.partial_store_f32s(&mut out, got);
                            assert_eq!(
                                out,
                                want(&row, c0, d, lanes),
                                "w {w}, c0 {c0}, vector at {d}"
                            );
                        }
                        macro_rules! check {
                            ($($d:literal),*) => {$(
                                let nb = if $d < 0 { l } else { r };
                                let got = rows.shifted::<S, 0, 0, $d>(simd, &cols, v, nb);
                                simd.partial_store_f32s(&mut out, got);
                                assert_eq!(out, want(&row, c0, $d, lanes), "w {w}, c0 {c0}, shift {}", $d);
                            )*};
                        }
                        check!(
                            -17, -16, -15, -9, -8, -7, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 8,
                            9, 15, 16, 17
                        );
                    }
                }
            }
        }
        crate::dispatch::on_every_isa(K);
    }

    /// Row widths around the lane count for the column tests: narrower than a vector, one,
    /// a few columns over, two and more.
    fn column_test_widths(lanes: usize) -> [usize; 9] {
        [
            1,
            2,
            lanes,
            lanes + 1,
            lanes + 2,
            lanes + 3,
            lanes + 4,
            2 * lanes + 3,
            40,
        ]
    }

    /// A 3-row plane of width `w` whose middle row holds `i + 1.5` at column `i` between rows of
    /// NaN (a read outside the row shows), and `w` zeros.
    fn framed_row(w: usize) -> (Vec<f32>, Vec<f32>) {
        let mut plane = vec![f32::NAN; 3 * w];
        for (i, x) in plane[w..2 * w].iter_mut().enumerate() {
            *x = i as f32 + 1.5;
        }
        (plane, vec![0.0f32; w])
    }

    #[test]
    fn inner_columns_exist_exactly_inside_the_row_and_read_it() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let lanes = S::F32_LANES;
                let mut out = vec![0.0f32; lanes];
                let mut inner_seen = 0;
                for w in column_test_widths(lanes) {
                    let (plane, zeros) = framed_row(w);
                    let rows = InRows::<1, 3>::new(&plane, &zeros, 3, w, 0);
                    let row = &plane[w..2 * w];
                    for c0 in 0..w + lanes {
                        for (lo, hi) in [(-1isize, 1isize), (-2, 2), (0, 1), (-1, 0), (-2, 0)] {
                            let fits = c0 as isize + lo >= 0
                                && c0 as isize + hi + lanes as isize <= w as isize;
                            let cols = InnerCols::new::<S>(c0, w, lo, hi);
                            assert_eq!(cols.is_some(), fits, "w {w}, c0 {c0}, offsets {lo}..={hi}");
                            let Some(cols) = cols else { continue };
                            inner_seen += 1;
                            macro_rules! check {
                                ($($d:literal),*) => {$(
                                    if lo <= $d && $d <= hi {
                                        let got = rows.inner::<S, 0, 1, $d>(simd, &cols);
                                        simd.partial_store_f32s(&mut out, got);
                                        assert_eq!(out, want(row, c0, $d, lanes), "w {w}, c0 {c0}, offset {}", $d);
                                    }
                                )*};
                            }
                            check!(-2, -1, 0, 1, 2);
                        }
                    }
                }
                assert!(inner_seen > 0, "{lanes} lanes: no inner columns tried");
            }
        }
        crate::dispatch::on_every_isa(K);
    }

    #[test]
    fn edge_columns_exist_exactly_at_the_row_ends_and_read_zeros_past_them() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let lanes = S::F32_LANES;
                let mut out = vec![0.0f32; lanes];
                let (mut left_seen, mut right_seen) = (0, 0);
                for w in column_test_widths(lanes) {
                    let (plane, zeros) = framed_row(w);
                    let rows = InRows::<1, 3>::new(&plane, &zeros, 3, w, 0);
                    let row = &plane[w..2 * w];
                    for wo in [w.saturating_sub(2), w, w + 2] {
                        for ox in 0..wo + lanes {
                            for (lo, hi) in [(-1isize, 1isize), (-2, 2), (0, 1), (-1, 0), (-3, 0)] {
                                let (w_, lanes_) = (w as isize, lanes as isize);
                                let left_fits = ox == 0 && lanes <= wo && hi + lanes_ <= w_;
                                let right_fits = wo == w
                                    && ox + lanes >= w
                                    && w >= lanes
                                    && w_ - lanes_ + lo >= 0;
                                let forms = [
                                    (InnerCols::left::<S>(ox, w, wo, lo, hi), left_fits),
                                    (InnerCols::right::<S>(ox, w, wo, lo, hi), right_fits),
                                ];
                                for (side, (cols, fits)) in forms.into_iter().enumerate() {
                                    assert_eq!(
                                        cols.is_some(),
                                        fits,
                                        "side {side}, w {w}, wo {wo}, ox {ox}, offsets {lo}..={hi}"
                                    );
                                    let Some(cols) = cols else { continue };
                                    let c0 = cols.c0();
                                    assert_eq!(c0, if side == 0 { 0 } else { w - lanes });
                                    *[&mut left_seen, &mut right_seen][side] += 1;
                                    let x = rows.inner::<S, 0, 1, 0>(simd, &cols);
                                    macro_rules! check {
                                        ($($d:literal),*) => {$(
                                            if lo <= $d && $d <= hi {
                                                // Past the row's end on this side: the shift;
                                                // otherwise a plain load.
                                                let got = match (side, $d) {
                                                    (0, d) if d < 0 => rows.edge::<S, 0, 1, $d>(simd, &cols, x),
                                                    (1, d) if d > 0 => rows.edge::<S, 0, 1, $d>(simd, &cols, x),
                                                    _ => rows.inner::<S, 0, 1, $d>(simd, &cols),
                                                };
                                                simd.partial_store_f32s(&mut out, got);
                                                assert_eq!(out, want(row, c0, $d, lanes), "side {side}, w {w}, offset {}", $d);
                                            }
                                        )*};
                                    }
                                    check!(-3, -2, -1, 0, 1, 2);
                                }
                            }
                        }
                    }
                }
                assert!(
                    left_seen > 0 && right_seen > 0,
                    "{lanes} lanes: no edge columns tried"
                );
            }
        }
        crate::dispatch::on_every_isa(K);
    }

    #[test]
    fn inner_columns_pay_unless_every_row_starts_on_a_vector() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, _simd: S) {
                let lanes = S::F32_LANES;
                let buf = vec![0.0f32; 8 * lanes + 64];
                let skip =
                    (buf.as_ptr() as usize / 4).next_multiple_of(lanes) - buf.as_ptr() as usize / 4;
                let aligned = &buf[skip..];
                assert!(!InnerCols::pay::<S>(aligned, 2 * lanes));
                // One lane: every row starts on a vector.
                assert_eq!(InnerCols::pay::<S>(aligned, 2 * lanes + 1), lanes > 1);
                if lanes > 1 {
                    assert!(InnerCols::pay::<S>(&aligned[1..], 2 * lanes));
                }
            }
        }
        crate::dispatch::on_every_isa(K);
    }

    /// `StreamRows::row`: every row of two planes, and the rows above and below them, read as
    /// a one-row `InRows`, against the planes' floats (zeros outside), on every ISA.
    #[test]
    fn streamed_rows_are_the_planes_rows_or_zeros() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let lanes = S::F32_LANES;
                let mut out = vec![0.0f32; lanes];
                for (h, w) in [(1, 1), (3, 5), (4, lanes + 3)] {
                    let a: Vec<f32> = (0..h * w).map(|i| i as f32 + 1.0).collect();
                    let b: Vec<f32> = (0..h * w).map(|i| -(i as f32) - 0.5).collect();
                    let zeros = vec![0.0f32; w];
                    let src = StreamRows::<2>::new([&a, &b], &zeros, h, w);
                    for iy in -2..h as isize + 2 {
                        let rows = src.row(iy);
                        let cols = InCols::new(simd, 0, w);
                        for (c, plane) in [(0, &a), (1, &b)] {
                            let got = match c {
                                0 => rows.vec::<S, 0, 0, 0>(simd, &cols),
                                _ => rows.vec::<S, 1, 0, 0>(simd, &cols),
                            };
                            simd.partial_store_f32s(&mut out, got);
                            let want: Vec<f32> = (0..lanes)
                                .map(|i| match (usize::try_from(iy), i < w) {
                                    (Ok(y), true) if y < h => plane[y * w + i],
                                    _ => 0.0,
                                })
                                .collect();
                            assert_eq!(out, want, "{h}x{w}, plane {c}, row {iy}");
                        }
                    }
                }
            }
        }
        crate::dispatch::on_every_isa(K);
    }

    /// `StreamRows::steps`: each step's rows, at strides 1 to 3 and every start and count that
    /// fits, against the planes' floats, on every ISA.
    #[test]
    fn stream_steps_are_consecutive_rows_of_the_planes() {
        // Row `q` of a step: `row::<Q>` exists only for `Q < SH`, hence one helper per stride.
        type Row<const SH: usize> = for<'b> fn(&StepRows<'b, 2, SH>, usize) -> InRows<'b, 2, 1>;
        let row1: Row<1> = |s, _| s.row::<0>();
        let row2: Row<2> = |s, q| if q == 0 { s.row::<0>() } else { s.row::<1>() };
        let row3: Row<3> = |s, q| match q {
            0 => s.row::<0>(),
            1 => s.row::<1>(),
            _ => s.row::<2>(),
        };
        fn check<S: Simd, const SH: usize>(simd: S, row: Row<SH>, h: usize, w: usize) {
            let a: Vec<f32> = (0..h * w).map(|i| i as f32 + 1.0).collect();
            let b: Vec<f32> = (0..h * w).map(|i| -(i as f32) - 0.5).collect();
            let zeros = vec![0.0f32; w];
            let src = StreamRows::<2>::new([&a, &b], &zeros, h, w);
            let cols = InCols::new(simd, 1, w);
            let mut out = vec![0.0f32; S::F32_LANES];
            for iy0 in 0..h {
                for count in 0..=(h - iy0) / SH {
                    let mut seen = 0;
                    for (i, step) in src.steps::<SH>(iy0, count).enumerate() {
                        for q in 0..SH {
                            let (rows, y) = (row(&step, q), iy0 + i * SH + q);
                            for (c, plane) in [&a, &b].into_iter().enumerate() {
                                let got = match c {
                                    0 => rows.vec::<S, 0, 0, 0>(simd, &cols),
                                    _ => rows.vec::<S, 1, 0, 0>(simd, &cols),
                                };
                                simd.partial_store_f32s(&mut out, got);
                                let want: Vec<f32> = (0..out.len())
                                    .map(|l| if 1 + l < w { plane[y * w + 1 + l] } else { 0.0 })
                                    .collect();
                                assert_eq!(out, want, "stride {SH}, from {iy0}, row {y}");
                            }
                        }
                        seen += 1;
                    }
                    assert_eq!(seen, count, "stride {SH}, from {iy0}");
                }
            }
        }
        #[derive(Clone, Copy)]
        struct K(Row<1>, Row<2>, Row<3>);
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let w = S::F32_LANES + 2;
                check::<S, 1>(simd, self.0, 7, w);
                check::<S, 2>(simd, self.1, 7, w);
                check::<S, 3>(simd, self.2, 8, w);
            }
        }
        crate::dispatch::on_every_isa(K(row1, row2, row3));
    }

    /// `StreamRows::steps` checks its range once: a count one step past the plane panics.
    #[test]
    #[should_panic(expected = "streamed steps outside the plane")]
    fn stream_steps_past_the_plane_panic() {
        let (plane, zeros) = ([0.0f32; 12], [0.0f32; 4]);
        let src = StreamRows::<1>::new([&plane], &zeros, 3, 4);
        let _ = src.steps::<2>(0, 2);
    }

    /// `StreamRows::inside_steps` against the rows each step loads, checked one by one, for
    /// strides 1 to 3, paddings 0 to 3 and streams starting at any output row.
    #[test]
    fn inside_steps_are_the_steps_whose_rows_all_lie_in_the_plane() {
        let zeros = [0.0f32; 4];
        for h in 1..9 {
            let plane = vec![0.0f32; h * 4];
            let src = StreamRows::<1>::new([&plane], &zeros, h, 4);
            for (sh, pt, oy0) in
                (1..4).flat_map(|s| (0..4).flat_map(move |p| (0..6).map(move |o| (s, p, o))))
            {
                let got = src.inside_steps(oy0, sh, pt);
                for n in 0..h + 8 {
                    let inside = (0..sh).all(|q| {
                        let iy = ((oy0 + n) * sh + q) as isize - pt as isize;
                        iy >= 0 && iy < h as isize
                    });
                    assert_eq!(
                        got.contains(&n),
                        inside,
                        "h {h}, stride {sh}, pad {pt}, oy0 {oy0}, step {n}"
                    );
                }
            }
        }
    }
}
