//! Splitting one forward pass over threads (`forward_par`).
//!
//! A pass is `units` independent (image, group) units times `span` output rows (pixels for
//! pointwise layers) of each of their planes. It is cut into as many parts as the rayon pool has
//! threads, along one of four axes ([`Axis`]):
//! - units, when there are enough of them to share evenly (a depthwise or grouped layer, or a
//!   batch): every part owns whole output planes and reads only its groups' input planes;
//! - otherwise the span (a dense, pointwise or separable layer on one image): every part owns the
//!   same rows of every plane. Pixel cuts fall on multiples of 16 floats, so parts share no cache
//!   line of a plane's interior and every ISA's vectors stay whole. On one image of a body with
//!   output-channel tiles a cut may also fall inside such a step, between its tiles
//!   ([`Axis::SpanTiles`]), so that the parts' work is even whatever the number of steps;
//! - or, for a pointwise layer on one image whose span cuts less evenly than its output
//!   channels (small planes, many channels), runs of whole output-channel tiles: every part
//!   owns whole planes and reads the whole input. A separable layer cut so runs its whole
//!   depthwise stage in every part, which its plan allows only where that costs at most a
//!   sixteenth of the pointwise stage.
//!
//! Each output float is computed by exactly one part with the same operations in the same order
//! as on one thread, so results do not depend on the thread count. A pass too small to repay
//! waking another thread runs as fewer parts (see [`MIN_PART_NS`]).

use core::ops::Range;

/// The least estimated time worth a part of its own. A part handed to a worker still spinning
/// from the caller's last pass (the relay, `relay.rs`) starts within a few hundred nanoseconds; a
/// part no worker claims in time the caller runs itself, so a cold pool costs little more than
/// one thread. On 2 vCPUs (Zen 4) 116 channels of a 3x3 depthwise layer at stride 2 ran 1.97 ->
/// 1.18 us in two parts on 8 x 8 (estimated 1.5 us) and 3.1 -> 2.0 on 14 x 14 (4.6); 10 us
/// per part, the bound before the relay, left a 7.5 us pass of that layer on 28 x 28 (estimated
/// 19 us) on one thread, where two parts take 5.7.
pub const MIN_PART_NS: u64 = 2_000;

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

/// Which axis a pass is cut along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Whole units (images x groups): every part owns whole output planes.
    Units,
    /// The span (output rows, or pixels of GEMM bodies): every part owns the same rows of
    /// every plane.
    Span,
    /// The output channels of the one unit (GEMM bodies on one image): every part owns whole
    /// planes of that unit, cut on its output-channel tiles, and reads all of its input.
    OutChannels,
    /// The span of the one unit of a body with output-channel tiles, where a cut may also fall
    /// inside a step: that step's first tiles go to the earlier part, the rest to the later
    /// (see [`Split::cut_steps`]). Parts then share out exactly the work, not only whole steps:
    /// an odd number of steps on two threads (784 pixels are 49 vectors) no longer leaves one
    /// part a step longer. A part is at most a step's last tiles, whole steps, a step's first
    /// tiles; no cache line of a plane's interior is written by two parts.
    SpanTiles,
}

/// The output-channel tiles of a body that can split them: `channels` per unit in tiles of
/// `tile` (the last one possibly shorter). `tile` 0: the body cannot. One image is cut by them
/// when its span gives each part fewer than `min_steps` steps ([`SPAN_MIN_STEPS`] for the
/// vector bodies; `usize::MAX`: whatever the span; 0: never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutTiles {
    pub channels: usize,
    pub tile: usize,
    pub min_steps: usize,
}

impl OutTiles {
    /// A body whose output channels are not split.
    pub const NONE: OutTiles = OutTiles {
        channels: 0,
        tile: 0,
        min_steps: 0,
    };
}

/// Span steps (16-pixel vectors, or rows) per part below which one image of a body with
/// output-channel tiles is cut by its output channels instead (see [`Split::choose`]).
pub const SPAN_MIN_STEPS: usize = 8;

/// How a pass is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Number of parts (1: run on the calling thread).
    pub parts: usize,
    pub axis: Axis,
    /// Span cuts fall on multiples of this (16 for pixels), output-channel cuts on tiles of
    /// this many channels; 1 for units.
    pub align: usize,
    /// [`Axis::SpanTiles`]: channels per output-channel tile (the last may be shorter); else 0.
    pub tile: usize,
}

impl Split {
    /// The split of a pass of `units` units and a span of `span` rows (`pixels`: pixels) into
    /// `parts` parts, or fewer when the span has fewer rows (16-pixel steps).
    ///
    /// Units when they share evenly. Otherwise the span, unless the pass is one unit of a body
    /// with output-channel tiles (`out`) whose span gives each part fewer than
    /// [`SPAN_MIN_STEPS`] steps: then runs of whole output-channel tiles.
    pub fn choose(parts: usize, units: usize, span: usize, pixels: bool, out: OutTiles) -> Split {
        let align = if pixels { 16 } else { 1 };
        let parts = parts.max(1);
        // Units share evenly when they divide, or when there are so many that one more unit on
        // some parts costs at most a quarter.
        if units >= parts && (units % parts == 0 || units >= 4 * parts) {
            return Split {
                parts,
                axis: Axis::Units,
                align: 1,
                tile: 0,
            };
        }
        let steps = span / align;
        let by_span = Split {
            parts: parts.min(steps).max(1),
            axis: Axis::Span,
            align,
            tile: 0,
        };
        // `min_steps` 0: the body's output channels are not to be cut (AMX tiles read by
        // pixels).
        if units != 1 || out.tile == 0 || out.min_steps == 0 || parts == 1 {
            return by_span;
        }
        let tiles = out.channels.div_ceil(out.tile);
        let by_out = Split {
            parts: parts.min(tiles).max(1),
            axis: Axis::OutChannels,
            align: out.tile,
            tile: 0,
        };
        // The span, its cuts free to fall inside steps on tiles. Measured on 2 threads (Zen 4,
        // pinned pool, throwaway timer, p10 of 2 s, whole steps -> steps cut on tiles):
        // 256 -> 256 on 28 x 28 (49 steps: 25 | 24) 447.4 -> 439.5 us, one thread 877;
        // 32 -> 192 on 28 x 28 47.1 -> 46.5.
        let by_span = Split {
            axis: Axis::SpanTiles,
            tile: out.tile,
            ..by_span
        };
        // Output channels while a span part would get fewer than `SPAN_MIN_STEPS` steps of
        // 16 pixels: every span part reads all the weights and runs every output-channel tile
        // over its few pixels, its partial vectors included, where an output-channel part runs
        // the whole span for its share of the channels and reads the whole input (small on
        // such planes). Measured on 2 threads (AVX-512, pinned pool, 2-thread time span ->
        // output channels): 384 -> 64 on 14 x 14 (13 steps) 49.9 -> 39.4 us, 576 -> 96 126 ->
        // 95, 960 -> 160 on 7 x 7 89.7 -> 67.7, 320 -> 1280 on 7 x 7 287 -> 201, 960 -> 1280 on
        // 1 x 1 (one step: the span cannot be cut) 178 -> 110; level from 16 x 16 (16 steps) on
        // (384 -> 64 on 16 x 16 56 against 56, 20 x 20 82 against 85), and the span ahead on 28 x
        // 28 (576 -> 96 350 against 371).
        if by_out.parts >= by_span.parts
            && span.div_ceil(align) < out.min_steps.saturating_mul(parts)
        {
            by_out
        } else {
            by_span
        }
    }

    /// [`Axis::SpanTiles`]: where the first `left` of `parts` equal shares of a part end. The
    /// part is `head` (`(len, tiles)`: the last `tiles` of a step of `len` span units), then
    /// every tile of the whole steps `body`, then `tail` (the first tiles of a step), out of
    /// `tiles` per step; work counts span units (pixels or rows) x tiles. The cut falls in
    /// `body` (a part's share is at least its whole steps): `(at, first)`, the body cut at `at`
    /// (a multiple of `align` from its start, where a step starts) and, when `first > 0`, the
    /// step from `at` cut after its first `first` tiles (`0 < first < tiles`).
    pub fn cut_steps(
        &self,
        head: (usize, usize),
        body: Range<usize>,
        tail: (usize, usize),
        tiles: usize,
        left: usize,
        parts: usize,
    ) -> (usize, usize) {
        let (align, tiles) = (self.align.max(1), tiles.max(1));
        let whole = body.len() * tiles;
        let total = head.0 * head.1 + whole + tail.0 * tail.1;
        let share = (total * left + parts / 2) / parts;
        let rel = share.saturating_sub(head.0 * head.1).min(whole);
        let at = (rel / tiles / align * align).min(body.len());
        let step = align.min(body.len() - at);
        if step == 0 {
            return (body.end, 0);
        }
        let first = ((rel - at * tiles) + step / 2) / step;
        match first {
            0 => (body.start + at, 0),
            f if f >= tiles => (body.start + at + step, 0),
            f => (body.start + at, f),
        }
    }

    /// Where to cut `range` so that the first `left` of `parts` parts get their share: the
    /// nearest multiple of `align` from the start. For output channels, a whole number of tiles
    /// from the start (the range starts on a tile and the last tile may be shorter), at least
    /// one per part when the range has a tile per part.
    pub fn cut(&self, range: Range<usize>, left: usize, parts: usize) -> usize {
        let len = range.end - range.start;
        let align = self.align.max(1);
        let at = match self.axis {
            Axis::OutChannels => {
                let tiles = len.div_ceil(align);
                (tiles * left + parts / 2) / parts * align
            }
            _ => {
                let share = len * left / parts;
                (share + align / 2) / align * align
            }
        };
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
        let none = OutTiles::NONE;
        let dw = Split::choose(2, 144, 56, false, none);
        assert_eq!((dw.parts, dw.axis), (2, Axis::Units));
        let dense = Split::choose(2, 1, 56, false, none);
        assert_eq!((dense.parts, dense.axis), (2, Axis::Span));
        // 5 units over 4 threads would leave one part with twice the work of the others.
        let odd = Split::choose(4, 5, 56, false, none);
        assert_eq!(odd.axis, Axis::Span);
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
        assert_eq!(Split::choose(8, 1, 3, false, OutTiles::NONE).parts, 3);
        assert_eq!(Split::choose(8, 1, 40, true, OutTiles::NONE).parts, 2);
    }

    /// One image of a GEMM body: output channels where the span cuts less evenly, pixels
    /// where it does not or where the channels are few.
    #[test]
    fn short_spans_of_many_channels_split_by_output_channels() {
        let tiles = |channels, tile| OutTiles {
            channels,
            tile,
            min_steps: SPAN_MIN_STEPS,
        };
        // A 4 x 4 plane (one vector: one part) against 64 channels in tiles of 16 (2 | 2).
        let s = Split::choose(2, 1, 16, true, tiles(64, 16));
        assert_eq!((s.parts, s.axis, s.align), (2, Axis::OutChannels, 16));
        // 5 x 5 (one whole 16-pixel step: one part) against 3 tiles (2 | 1).
        let s = Split::choose(2, 1, 25, true, tiles(48, 16));
        assert_eq!((s.parts, s.axis), (2, Axis::OutChannels));
        // 7 x 7 and 14 x 14: 4 and 13 steps, under 8 per part.
        assert_eq!(
            Split::choose(2, 1, 49, true, tiles(48, 16)).axis,
            Axis::OutChannels
        );
        assert_eq!(
            Split::choose(2, 1, 196, true, tiles(64, 8)).axis,
            Axis::OutChannels
        );
        // 16 x 16 (8 steps per part) and wider planes keep the span, cut on tiles inside
        // steps.
        assert_eq!(
            Split::choose(2, 1, 256, true, tiles(64, 8)).axis,
            Axis::SpanTiles
        );
        let s = Split::choose(2, 1, 784, true, tiles(256, 9));
        assert_eq!((s.axis, s.align, s.tile), (Axis::SpanTiles, 16, 9));
        let s = Split::choose(2, 1, 3136, true, tiles(24, 8));
        assert_eq!(s.axis, Axis::SpanTiles);
        // 6 x 6 on 5 threads (3 steps) against 16 tiles (4 | 3 | 3 | 3 | 3).
        let s = Split::choose(5, 1, 36, true, tiles(256, 16));
        assert_eq!((s.parts, s.axis), (5, Axis::OutChannels));
        // Fewer tiles than the span has parts: the span (one tile cannot be cut at all).
        assert_eq!(
            Split::choose(2, 1, 49, true, tiles(8, 8)).axis,
            Axis::SpanTiles
        );
        // A span of one step cannot be cut; 3 tiles can, into 3 parts.
        let s = Split::choose(4, 1, 16, true, tiles(20, 8));
        assert_eq!((s.parts, s.axis), (3, Axis::OutChannels));
        // Several units, or a body without tiles: never.
        assert_eq!(
            Split::choose(2, 3, 196, true, tiles(64, 8)).axis,
            Axis::Span
        );
        assert_eq!(
            Split::choose(2, 1, 196, true, OutTiles::NONE).axis,
            Axis::Span
        );
    }

    #[test]
    fn output_channel_cuts_fall_on_tiles_and_leave_every_part_one() {
        for (channels, tile, parts) in [(64, 8, 2), (64, 6, 3), (20, 8, 3), (100, 6, 5), (7, 8, 1)]
        {
            let s = Split {
                parts,
                axis: Axis::OutChannels,
                align: tile,
                tile: 0,
            };
            let mut at = vec![0];
            cuts(&s, 0..channels, parts, &mut at);
            at.push(channels);
            assert!(at.windows(2).all(|c| c[0] < c[1]), "{at:?}");
            assert!(at[1..parts].iter().all(|c| c % tile == 0), "{at:?}");
            // Tiles per part within one of each other.
            let t: Vec<usize> = at
                .windows(2)
                .map(|c| (c[1] - c[0]).div_ceil(tile))
                .collect();
            let (lo, hi) = (t.iter().min().unwrap(), t.iter().max().unwrap());
            assert!(hi - lo <= 1, "{at:?}");
        }
    }

    /// Parts of a span cut inside steps: every (span unit, tile) item in exactly one part, in
    /// order, the parts' work within one step's tiles of each other, and a cut inside a step
    /// only between tiles.
    #[test]
    fn step_cuts_share_the_work_evenly_on_tiles() {
        // (span units, align, tiles, parts): 28 x 28 pixels (49 steps) on 2; 14 x 14 (the last
        // step 4 pixels) on 2 and 3; rows (align 1) on 5; fewer steps than parts.
        for (len, align, tiles, parts) in [
            (784usize, 16usize, 32usize, 2usize),
            (196, 16, 8, 2),
            (196, 16, 8, 3),
            (30, 1, 7, 5),
            (1230, 16, 9, 5),
            (40, 16, 3, 5),
            (3136, 16, 3, 2),
        ] {
            let s = Split {
                parts,
                axis: Axis::SpanTiles,
                align,
                tile: 1,
            };
            // The parts as (units, tiles) items in order: step-major, tile-minor.
            let mut owner = vec![usize::MAX; len.div_ceil(align) * align * tiles];
            let mut next = 0;
            let mut part = |head: Option<(usize, Range<usize>)>,
                            body: Range<usize>,
                            tail: Option<(usize, Range<usize>)>| {
                let mut items = Vec::new();
                let step = |at: usize| at..(at + align).min(len);
                if let Some((at, t)) = head {
                    items.extend(step(at).flat_map(|u| t.clone().map(move |c| (u, c))));
                }
                items.extend(body.flat_map(|u| (0..tiles).map(move |c| (u, c))));
                if let Some((at, t)) = tail {
                    items.extend(step(at).flat_map(|u| t.clone().map(move |c| (u, c))));
                }
                for (u, c) in items.iter().copied() {
                    // Step-major, then tile, then the unit inside the step.
                    let i = ((u / align) * tiles + c) * align + u % align;
                    assert_eq!(owner[i], usize::MAX, "{len} {parts}: twice");
                    owner[i] = next;
                }
                next += 1;
                items.len()
            };
            // Halving recursively, as `Job::cut` does.
            type Part = (
                Option<(usize, Range<usize>)>,
                Range<usize>,
                Option<(usize, Range<usize>)>,
            );
            fn split(s: &Split, tiles: usize, p: Part, parts: usize, out: &mut Vec<Part>) {
                if parts <= 1 {
                    out.push(p);
                    return;
                }
                let left = parts / 2;
                let (head, body, tail) = p;
                let len = |h: &Option<(usize, Range<usize>)>, end: usize| {
                    h.as_ref()
                        .map_or((0, 0), |(at, t)| ((at + s.align).min(end) - at, t.len()))
                };
                let end = body.end.max(tail.as_ref().map_or(0, |t| t.0 + s.align));
                let (at, first) = s.cut_steps(
                    len(&head, end),
                    body.clone(),
                    len(&tail, end),
                    tiles,
                    left,
                    parts,
                );
                assert_eq!((at - body.start) % s.align, 0);
                assert!(first < tiles);
                let (a, b) = if first == 0 {
                    ((head, body.start..at, None), (None, at..body.end, tail))
                } else {
                    let next = (at + s.align).min(body.end);
                    (
                        (head, body.start..at, Some((at, 0..first))),
                        (Some((at, first..tiles)), next..body.end, tail),
                    )
                };
                split(s, tiles, a, left, out);
                split(s, tiles, b, parts - left, out);
            }
            let mut parts_out = Vec::new();
            split(&s, tiles, (None, 0..len, None), parts, &mut parts_out);
            let work: Vec<usize> = parts_out
                .into_iter()
                .map(|(h, b, t)| part(h, b, t))
                .collect();
            let owned: Vec<usize> = owner.iter().copied().filter(|&o| o != usize::MAX).collect();
            assert!(
                owned.windows(2).all(|o| o[0] <= o[1]),
                "{len} {parts}: order"
            );
            let missed = (0..len).flat_map(|u| (0..tiles).map(move |c| (u, c)));
            let missed = missed
                .filter(|&(u, c)| {
                    owner[((u / align) * tiles + c) * align + u % align] == usize::MAX
                })
                .count();
            assert_eq!(missed, 0, "{len} {parts}: missed");
            let (lo, hi) = (work.iter().min().unwrap(), work.iter().max().unwrap());
            assert!(hi - lo <= align * tiles, "{len} {parts}: {work:?}");
        }
        // 49 steps on 2: 24 steps and half the tiles of the 25th each.
        let s = Split {
            parts: 2,
            axis: Axis::SpanTiles,
            align: 16,
            tile: 8,
        };
        assert_eq!(s.cut_steps((0, 0), 0..784, (0, 0), 32, 1, 2), (384, 16));
        // 98 steps: whole steps.
        assert_eq!(s.cut_steps((0, 0), 0..3136, (0, 0), 3, 1, 2), (1568, 0));
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
            let s = Split::choose(parts, 1, len, pixels, OutTiles::NONE);
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
