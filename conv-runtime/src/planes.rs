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

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `tag` into every float of every plane.
    fn paint(p: &mut PlanesMut<'_>, tag: f32) {
        for i in 0..p.count() {
            p.plane(i).fill(tag);
        }
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
