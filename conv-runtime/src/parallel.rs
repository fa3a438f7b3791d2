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

/// A rayon pool of `threads` workers, worker `i` pinned to the `i`-th core this process may run
/// on (round robin when there are more workers than cores; on systems other than Linux the
/// workers are not pinned).
///
/// Why: [`forward_par`](crate::Layer::forward_par) hands half a pass to a second worker, and a
/// worker that has gone idle is parked. Linux wakes a parked thread on the waking thread's core
/// when that core looks about to go idle, and then both halves can run one after the other on
/// one core, call after call, while the other core idles (seen here: 2-thread calls at the
/// 1-thread time for seconds). Workers on distinct cores cannot share one. A pinned pool is best
/// for a process that owns the machine's cores; beside other busy processes an unpinned pool
/// lets the OS move workers away from them.
///
/// ```
/// let pool = conv_runtime::parallel::pinned_pool(2).unwrap();
/// pool.install(|| { /* layer.forward_par(..) */ });
/// ```
pub fn pinned_pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let cpus = affinity::allowed();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("conv-worker-{i}"))
        .start_handler(move |i| {
            if !cpus.is_empty() {
                affinity::pin(cpus[i % cpus.len()]);
            }
        })
        .build()
}

#[cfg(target_os = "linux")]
mod affinity {
    /// The cores the calling thread may run on, in increasing order (empty if unknown).
    pub fn allowed() -> Vec<usize> {
        // SAFETY: `cpu_set_t` is a plain bit array, for which all zeros is the empty set.
        let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
        let size = core::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `set` is a live `cpu_set_t` of `size` bytes for the kernel to write.
        if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c < CPU_SETSIZE`, the number of bits of `set`.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    }

    /// Restricts the calling thread to core `cpu` (`< CPU_SETSIZE`); false if the OS refused.
    pub fn pin(cpu: usize) -> bool {
        if cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        // SAFETY: as in `allowed`.
        let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
        // SAFETY: `cpu < CPU_SETSIZE` (checked above), the number of bits of `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        let size = core::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `set` is a live, initialised `cpu_set_t` of `size` bytes.
        unsafe { libc::sched_setaffinity(0, size, &set) == 0 }
    }
}

#[cfg(not(target_os = "linux"))]
mod affinity {
    pub fn allowed() -> Vec<usize> {
        Vec::new()
    }

    pub fn pin(_cpu: usize) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn pinned_workers_each_run_on_their_own_core() {
        let cpus = affinity::allowed();
        if cpus.len() < 2 {
            return;
        }
        let pool = pinned_pool(2).unwrap();
        // What the kernel reports for each worker, not what we asked for.
        let seen = pool.broadcast(|_| affinity::allowed());
        assert_eq!(seen, vec![vec![cpus[0]], vec![cpus[1]]]);
        // The caller's own affinity is untouched.
        assert_eq!(affinity::allowed(), cpus);
    }

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
