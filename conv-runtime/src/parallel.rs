//! Splitting one forward pass over threads (`forward_par`).
//!
//! A pass is `units` independent (image, group) units times `span` output rows (pixels for
//! pointwise layers) of each of their planes. It is cut into as many parts as the rayon pool has
//! threads, along one of the two axes:
//! - units, when there are enough of them to share evenly (a depthwise or grouped layer, or a
//!   batch): every part owns whole output planes and reads only its groups' input planes;
//! - otherwise the span (a dense, pointwise or separable layer on one image): every part owns the
//!   same rows of every plane. Pixel cuts fall on multiples of 16 floats, so parts share no cache
//!   line of a plane's interior and every ISA's vectors stay whole.
//!
//! Each output float is computed by exactly one part with the same operations in the same order
//! as on one thread, so results do not depend on the thread count. A pass too small to repay
//! waking another thread runs as fewer parts (see [`MIN_PART_NS`]).

use core::ops::Range;

/// The least estimated time worth a part of its own. Handing a part to another rayon worker and
/// joining it costs a few microseconds (more when the worker has gone to sleep), so smaller parts
/// lose more to the hand-off than they gain.
pub const MIN_PART_NS: u64 = 10_000;

/// What one pass does, for the estimate behind [`MIN_PART_NS`].
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    pub flops: u64,
    /// Floats of input and output the pass touches.
    pub floats: usize,
}

impl Cost {
    /// A rough single-core time: compute at 100 GFLOP/s plus memory at 30 GB/s (the order of an
    /// AVX-512 or AVX2 core and of its L3 bandwidth). Only its order of magnitude matters.
    pub fn nanos(&self) -> u64 {
        self.flops / 100 + (self.floats as u64).saturating_mul(4) / 30
    }

    /// Parts worth making for at most `threads` threads: at least [`MIN_PART_NS`] each.
    pub fn parts(&self, threads: usize) -> usize {
        let worth = usize::try_from(self.nanos() / MIN_PART_NS).unwrap_or(usize::MAX);
        threads.min(worth).max(1)
    }
}

/// How a pass is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Number of parts (1: run on the calling thread).
    pub parts: usize,
    /// Cut the units (else the span).
    pub by_units: bool,
    /// Span cuts fall on multiples of this.
    pub align: usize,
}

impl Split {
    /// The split of a pass of `units` units and a span of `span` rows (`pixels`: pixels) into
    /// `parts` parts, or fewer when the span has fewer rows (16-pixel steps).
    pub fn choose(parts: usize, units: usize, span: usize, pixels: bool) -> Split {
        let align = if pixels { 16 } else { 1 };
        let parts = parts.max(1);
        // Units share evenly when they divide, or when there are so many that one more unit on
        // some parts costs at most a quarter.
        if units >= parts && (units % parts == 0 || units >= 4 * parts) {
            return Split {
                parts,
                by_units: true,
                align,
            };
        }
        let steps = span / align;
        Split {
            parts: parts.min(steps).max(1),
            by_units: false,
            align,
        }
    }

    /// Where to cut `range` so that the first `left` of `parts` parts get their share: the
    /// nearest multiple of `align` from the start (units: `align` 1).
    pub fn cut(&self, range: Range<usize>, left: usize, parts: usize) -> usize {
        let align = if self.by_units { 1 } else { self.align };
        let len = range.end - range.start;
        let share = len * left / parts;
        let at = (share + align / 2) / align * align;
        range.start + at.min(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_groups_split_by_units_one_image_by_rows() {
        let dw = Split::choose(2, 144, 56, false);
        assert_eq!((dw.parts, dw.by_units), (2, true));
        let dense = Split::choose(2, 1, 56, false);
        assert_eq!((dense.parts, dense.by_units), (2, false));
        // 5 units over 4 threads would leave one part with twice the work of the others.
        let odd = Split::choose(4, 5, 56, false);
        assert!(!odd.by_units);
    }

    #[test]
    fn small_passes_use_fewer_parts() {
        let tiny = Cost {
            flops: 1000,
            floats: 100,
        };
        assert_eq!(tiny.parts(8), 1);
        let big = Cost {
            flops: 1 << 30,
            floats: 1 << 20,
        };
        assert_eq!(big.parts(8), 8);
        // A span shorter than the part count: one row (or 16 pixels) per part at most.
        assert_eq!(Split::choose(8, 1, 3, false).parts, 3);
        assert_eq!(Split::choose(8, 1, 40, true).parts, 2);
    }

    /// The cuts `Job::run` makes: halving recursively.
    fn cuts(s: &Split, range: Range<usize>, parts: usize, out: &mut Vec<usize>) {
        if parts <= 1 {
            return;
        }
        let left = parts / 2;
        let at = s.cut(range.clone(), left, parts);
        cuts(s, range.start..at, left, out);
        out.push(at);
        cuts(s, at..range.end, parts - left, out);
    }

    #[test]
    fn cuts_cover_the_range_in_order_on_the_alignment() {
        for (len, parts, pixels) in [
            (196, 2, true),
            (56, 3, false),
            (3136, 7, true),
            (5, 5, false),
        ] {
            let s = Split::choose(parts, 1, len, pixels);
            let mut at = vec![0];
            cuts(&s, 0..len, s.parts, &mut at);
            at.push(len);
            assert_eq!(at.len(), s.parts + 1);
            assert!(at.windows(2).all(|c| c[0] < c[1]), "{at:?}");
            assert!(at[1..s.parts].iter().all(|c| c % s.align == 0), "{at:?}");
            // Even shares: no part more than one alignment step off the mean.
            let mean = len / s.parts;
            assert!(
                at.windows(2)
                    .all(|c| (c[1] - c[0]).abs_diff(mean) <= s.align),
                "{at:?}"
            );
        }
    }
}
