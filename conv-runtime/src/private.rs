//! The only path generated code calls. Not public API: no stability promise.
//!
//! Generated layers implement [`Generated`]; everything that does not depend on the shape (slice
//! checks, scratch management, ISA dispatch, the padded input band) lives here, so the emitted
//! code is only the specialised part: packing order and the unrolled register tiles.

use core::cell::Cell;
use core::ops::Range;

use crate::dispatch::is_isa;
pub use crate::flat::{Flat, FlatFmaTap, FlatSrc, FlatTap, FlatUnmasked};
pub use crate::inplace::{
    inner_order, shift_prev, InCols, InRows, InnerCols, StepRows, StreamRows, StreamSteps,
    STREAM_WIDE_BYTES,
};
pub use crate::pairs::{dw_pairs, PairLayer};
use crate::parallel;
pub use crate::planes::{ColStores, PlanesMut, TileStores};
pub use crate::winograd::{
    pack as wino_pack, run as wino_run, scratch_len as wino_scratch_len, WinoLayer,
};
pub use crate::winograd_channels::{
    pack as wino_ch_pack, prefer as wino_ch_prefer, run as wino_ch_run,
    scratch_len as wino_ch_scratch_len,
};

pub use crate::activation::Activation;
pub use crate::amx::{run as amx_run, AmxGemm, Pass as AmxPass, OUT_TILE as AMX_OUT_TILE};
use crate::dispatch::ClassOp;
pub use crate::dispatch::Isa;
pub use crate::error::{ConvError, Result};
pub use crate::layer::{Conv2dLayer, Layer};
pub use crate::shape::{Conv2dParams, SeparableParams};
pub use crate::strided::{gather, gather_block, gather_len, gather_pixels, gather_row_len, Taps};
pub use crate::tensor::{TensorMut, TensorRef};
pub use crate::KernelInfo;
pub use pulp::{Simd, WithSimd};

/// The part of one forward call a body computes, checked against the layer before the body sees
/// it. A body computes the (image, unit) pairs `units` (unit `u` is image `u / UNITS`, unit
/// `u % UNITS` of [`Generated::UNITS`]) and, of each of their output planes, the rows (pixels for
/// [`Generated::SPAN_PIXELS`] bodies) `span`. `output` holds exactly that: plane
/// `(u - units.start) * planes_per_unit + j` is output channel `j` of unit `u`, float 0 of each
/// plane is the first float of row (pixel) `span.start`. Single-threaded calls get everything.
pub struct Args<'a> {
    /// The whole input, `n x in x h x w`.
    pub input: &'a [f32],
    pub output: PlanesMut<'a>,
    pub scratch: &'a mut [f32],
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    pub units: Range<usize>,
    pub span: Range<usize>,
    /// The output channels of each unit this part computes: all of them, or (a pass cut by
    /// output channels, see [`Generated::OUT_TILES`]) a run of whole tiles of the one unit.
    /// `output` holds `units.len() * oc.len()` planes.
    pub oc: Range<usize>,
    /// Whether the call runs on [`Isa::Amx`]: a body with a pointwise stage of its own (a
    /// separable layer) runs it on tiles ([`amx_run`]).
    pub amx: bool,
}

/// Implemented by every `#[conv_kernel]` layer.
pub trait Generated: Sized + Sync {
    /// What a forward call is checked against: channels in and out and the spatial arithmetic.
    /// A convolution's `PARAMS`; for a separable layer [`SeparableParams::geometry`].
    const GEOMETRY: Conv2dParams;
    /// Independent units of work per image, each writing `out / UNITS` whole output planes: the
    /// groups of a direct or GEMM body, 1 for a fused separable body.
    const UNITS: usize;
    /// Whether [`Args::span`] counts output pixels (GEMM bodies, whose tiles run over the
    /// flattened plane) rather than output rows.
    const SPAN_PIXELS: bool;
    /// Output channels per tile of the 16- and 32-register bodies when a part may compute a
    /// run of a unit's output channels ([`Args::oc`]; pointwise bodies, and separable ones
    /// whose depthwise stage is cheap enough to repeat in every part), 0 when it may not.
    const OUT_TILES: [usize; 2];
    /// The weights packed for AMX tiles: pointwise layers on machines with AMX
    /// ([`Isa::Amx`]); the other layers run their AVX-512 body there.
    fn amx(&self) -> Option<&AmxGemm> {
        None
    }
    /// FLOPs of one forward pass (for deciding whether splitting over threads pays).
    fn flops(n: usize, h: usize, w: usize) -> u64;
    /// Floats of scratch `run` needs for an `h x w` input with vectors of `lanes` floats.
    fn scratch_len(lanes: usize, h: usize, w: usize, ho: usize, wo: usize) -> usize;
    /// The specialised body for ISAs with 32 vector registers (AVX-512, NEON). Slices have
    /// exactly the lengths `PARAMS` implies.
    fn run_r32<S: Simd>(&self, simd: S, args: Args<'_>);
    /// The specialised body for ISAs with 16 vector registers (AVX2) and scalar code.
    fn run_r16<S: Simd>(&self, simd: S, args: Args<'_>);
}

/// A body bound to its arguments; [`Isa::run_by_class`] instantiates only the body planned for
/// the register file of each ISA.
struct Op<'a, K> {
    layer: &'a K,
    args: Args<'a>,
}

impl<K: Generated> ClassOp for Op<'_, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd, const WIDE: bool>(self, simd: S) {
        if WIDE {
            self.layer.run_r32(simd, self.args)
        } else {
            self.layer.run_r16(simd, self.args)
        }
    }
}

thread_local! {
    /// Per-thread scratch reused across calls: no allocation once it has grown to the largest
    /// layer this thread runs.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Checks every slice and size, then runs `layer` on `isa` on the calling thread. On `Err` the
/// output is untouched.
pub fn forward<K: Generated>(
    layer: &K,
    isa: Isa,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    output: &mut [f32],
) -> Result<()> {
    forward_parts(layer, isa, input, n, h, w, output, Parts::Exactly(1))
}

/// [`forward`] split over the threads of the current rayon pool (the global pool unless called
/// inside `ThreadPool::install`); see [`crate::parallel`]. Results equal `forward`'s.
pub fn forward_par<K: Generated>(
    layer: &K,
    isa: Isa,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    output: &mut [f32],
) -> Result<()> {
    let threads = rayon::current_num_threads();
    forward_parts(layer, isa, input, n, h, w, output, Parts::UpTo(threads))
}

/// [`forward`] as `parts` parts on the current rayon pool, however small the pass (fewer only
/// when the shape has fewer units and rows).
#[allow(clippy::too_many_arguments)]
pub fn forward_split<K: Generated>(
    layer: &K,
    isa: Isa,
    parts: usize,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    output: &mut [f32],
) -> Result<()> {
    forward_parts(layer, isa, input, n, h, w, output, Parts::Exactly(parts))
}

/// How many parts a pass is asked to run as.
#[derive(Clone, Copy)]
enum Parts {
    /// At most this many, fewer when the pass is too small to repay more.
    UpTo(usize),
    /// This many (if the shape has them).
    Exactly(usize),
}

#[allow(clippy::too_many_arguments)]
fn forward_parts<K: Generated>(
    layer: &K,
    isa: Isa,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    output: &mut [f32],
    parts: Parts,
) -> Result<()> {
    let (ho, wo) = K::GEOMETRY.check_forward(input.len(), n, h, w, output.len())?;
    if !isa.is_available() {
        return Err(ConvError::IsaUnavailable(isa.name()));
    }
    if n == 0 {
        return Ok(());
    }
    let plane = ho * wo;
    let (span_len, width) = if K::SPAN_PIXELS { (plane, 1) } else { (ho, wo) };
    let job = Job {
        layer,
        isa,
        input,
        n,
        h,
        w,
        ho,
        wo,
        planes_per_unit: K::GEOMETRY.out_channels / K::UNITS,
        width,
    };
    let units = n * K::UNITS;
    let parts = match parts {
        Parts::Exactly(p) => p,
        Parts::UpTo(p) => parallel::Cost {
            flops: K::flops(n, h, w),
            floats: input.len() + output.len(),
        }
        .parts(p),
    };
    // Output-channel cuts on whole tiles of the body's plan; on AMX tiles either never or
    // whatever the span (`amx::cut_by_pixels`).
    let (tile, min_steps) = match layer.amx() {
        Some(_) if isa == Isa::Amx => {
            let never = crate::amx::cut_by_pixels(job.planes_per_unit, span_len);
            (crate::amx::OUT_TILE, if never { 0 } else { usize::MAX })
        }
        // Steps of 16 pixels, or (bodies over rows) the rows that hold as many pixels.
        _ => (
            K::OUT_TILES[usize::from(isa.wide())],
            if K::SPAN_PIXELS {
                parallel::SPAN_MIN_STEPS
            } else {
                (parallel::SPAN_MIN_STEPS * 16).div_ceil(wo.max(1))
            },
        ),
    };
    let out_tiles = parallel::OutTiles {
        channels: job.planes_per_unit,
        tile,
        min_steps,
    };
    let split = parallel::Split::choose(parts, units, span_len, K::SPAN_PIXELS, out_tiles);
    let output = PlanesMut::new(output, n * K::GEOMETRY.out_channels, plane, plane);
    let whole = Work::from((0..units, 0..span_len, 0..job.planes_per_unit, output));
    if split.parts > 1 {
        job.run_spinning(split, whole);
    } else {
        job.run_work(whole);
    }
    Ok(())
}

/// A piece of a pass: its units, its span, its output channels of each unit and its output.
type Piece<'o> = (Range<usize>, Range<usize>, Range<usize>, PlanesMut<'o>);

/// A part of a pass: one piece, or under [`parallel::Axis::SpanTiles`] up to three, the last
/// output-channel tiles of a step (`head`), whole steps of every channel (`body`) and the first
/// tiles of a step (`tail`).
struct Work<'o> {
    head: Option<Piece<'o>>,
    body: Piece<'o>,
    tail: Option<Piece<'o>>,
}

impl<'o> From<Piece<'o>> for Work<'o> {
    fn from(body: Piece<'o>) -> Self {
        Work {
            head: None,
            body,
            tail: None,
        }
    }
}

/// One forward call's checked arguments, shared by all its parts.
struct Job<'a, K> {
    layer: &'a K,
    isa: Isa,
    input: &'a [f32],
    n: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    planes_per_unit: usize,
    /// Output floats per span step (`wo` for rows, 1 for pixels).
    width: usize,
}

impl<K: Generated> Job<'_, K> {
    /// Runs `piece` as `parts` parts, halving recursively with `rayon::join` so the parts
    /// spread over the pool without any allocation; more parts than the pool has threads are
    /// handed out in turn ([`Job::run_shared`]).
    fn run(&self, split: parallel::Split, parts: usize, piece: Work<'_>) {
        if parts <= 1 {
            return self.run_work(piece);
        }
        if parts > rayon::current_num_threads() {
            return self.run_shared(split, parts, piece);
        }
        let left = parts / 2;
        let (a, b) = self.cut(split, left, parts, piece);
        rayon::join(
            || self.run(split, left, a),
            || self.run(split, parts - left, b),
        );
    }

    /// [`Job::run`] for more parts than the pool has threads: one task per thread (this one
    /// included), each taking the next part, cut off the front of what is left, until none is
    /// left. Halving recursively instead, with uneven halves (`1 | 2`, `2 | 3`), left workers
    /// waiting on each other's joins and parking: on the 2-thread pool 3 and 5 parts ran at one
    /// thread's speed or worse (`mnv2_dw96_112_s2` 199-216 and 166-187 us, one thread ~210;
    /// `resnext_g32_256_28` 194-203 and 172-190, one thread ~180), 19% of a worker's samples in
    /// the kernel's wake-up path. Taken in turn: 154-165 and 127-153, 142-146 and 116-126; 4
    /// parts level either way (throwaway timer, interleaved runs).
    fn run_shared(&self, split: parallel::Split, parts: usize, piece: Work<'_>) {
        use std::sync::Mutex;
        let threads = rayon::current_num_threads().min(parts);
        let rest = Mutex::new(Some((parts, piece)));
        let take = || {
            let mut g = rest.lock().unwrap_or_else(|e| e.into_inner());
            let (left, piece) = g.take()?;
            if left == 1 {
                return Some(piece);
            }
            let (a, b) = self.cut(split, 1, left, piece);
            *g = Some((left - 1, b));
            Some(a)
        };
        let work = || {
            while let Some(piece) = take() {
                self.run_work(piece);
            }
        };
        rayon::in_place_scope(|s| {
            for _ in 1..threads {
                s.spawn(|_| work());
            }
            work();
        });
    }

    /// `work` cut along the split's axis where the first `left` of `parts` equal parts end:
    /// the two parts. Only [`parallel::Axis::SpanTiles`] makes parts of more than one piece.
    fn cut<'o>(
        &self,
        split: parallel::Split,
        left: usize,
        parts: usize,
        work: Work<'o>,
    ) -> (Work<'o>, Work<'o>) {
        let Work { head, body, tail } = work;
        let (units, span, oc, output) = body;
        match split.axis {
            parallel::Axis::Units => {
                debug_assert!(head.is_none() && tail.is_none());
                let at = split.cut(units.clone(), left, parts);
                let (a, b) = output.split_planes((at - units.start) * oc.len());
                (
                    (units.start..at, span.clone(), oc.clone(), a).into(),
                    (at..units.end, span, oc, b).into(),
                )
            }
            parallel::Axis::Span => {
                debug_assert!(head.is_none() && tail.is_none());
                let at = split.cut(span.clone(), left, parts);
                let (a, b) = output.split_cols((at - span.start) * self.width);
                (
                    (units.clone(), span.start..at, oc.clone(), a).into(),
                    (units, at..span.end, oc, b).into(),
                )
            }
            // One unit (`Split::choose`): its output planes are the channels'.
            parallel::Axis::OutChannels => {
                debug_assert!(head.is_none() && tail.is_none());
                debug_assert_eq!(units.len(), 1);
                let at = split.cut(oc.clone(), left, parts);
                let (a, b) = output.split_planes(at - oc.start);
                (
                    (units.clone(), span.clone(), oc.start..at, a).into(),
                    (units, span, at..oc.end, b).into(),
                )
            }
            // One unit, `body` of every output channel (`oc` starts on a tile).
            parallel::Axis::SpanTiles => {
                debug_assert_eq!(units.len(), 1);
                let tile = split.tile.max(1);
                let count = |p: &Option<Piece<'_>>| {
                    p.as_ref()
                        .map_or((0, 0), |(_, s, c, _)| (s.len(), c.len().div_ceil(tile)))
                };
                let tiles = oc.len().div_ceil(tile);
                let (at, first) =
                    split.cut_steps(count(&head), span.clone(), count(&tail), tiles, left, parts);
                let (a, rest) = output.split_cols((at - span.start) * self.width);
                let before = (units.clone(), span.start..at, oc.clone(), a);
                if first == 0 {
                    return (
                        Work {
                            head,
                            body: before,
                            tail: None,
                        },
                        Work {
                            head: None,
                            body: (units, at..span.end, oc, rest),
                            tail,
                        },
                    );
                }
                // The step from `at`: its first `first` tiles end the earlier part, the rest
                // begin the later.
                let step = at..(at + split.align).min(span.end);
                let (mid, b) = rest.split_cols(step.len() * self.width);
                let c = (oc.start + first * tile).min(oc.end);
                let (mid_a, mid_b) = mid.split_planes(c - oc.start);
                (
                    Work {
                        head,
                        body: before,
                        tail: Some((units.clone(), step.clone(), oc.start..c, mid_a)),
                    },
                    Work {
                        head: Some((units.clone(), step.clone(), c..oc.end, mid_b)),
                        body: (units, step.end..span.end, oc, b),
                        tail,
                    },
                )
            }
        }
    }

    /// Runs `piece` as the split's parts: this thread computes the first part itself while the
    /// other parts go to the pool through this thread's relay ([`crate::relay::join`]), then
    /// spins (rather than sleeps) until they are done. A worker that has not picked its parts up
    /// by the time this thread is done with its own (a busy or deeply asleep pool) loses them to
    /// this thread, so a call is never much slower than on one thread.
    ///
    /// Why not `rayon::join`: from a thread outside the pool (the global pool, for
    /// `forward_par` called outside any `install`) it hands the whole pass to a worker and puts
    /// this thread to sleep until it is done: two wake-ups per call, each costing several
    /// microseconds (about 8 per call on the 2-core VMs measured, as much as a 20 us pass gains
    /// from a second thread). Inside the pool, a caller done with its part first sleeps in the
    /// join until the other part ends, and its wake-up then outlasts the other worker's spin
    /// before it sleeps too, so the next call's second part waits for a wake-up as well: on 2
    /// threads, 384 -> 64 on 14 x 14 cut by pixels on AMX, the second part started a median 22
    /// us after the join and ran on the calling thread, after its own part, in 25-50% of calls
    /// (62 us a call against 25 and 30 for the parts). Spinning: 42 us; 576 -> 96 on 14 x 14 on
    /// AMX 125 -> 66; 256 -> 256 separable on 28 x 28 270-277 -> 254-256 (throwaway timer,
    /// medians of 7 runs of 0.1 s, pinned pool). Why not a spawn into `rayon::in_place_scope`
    /// (until the relay): the spawned part started about 1 us after the spawn, a worker in
    /// rayon's idle loop finding it between `sched_yield` calls (see [`crate::relay`]).
    fn run_spinning(&self, split: parallel::Split, piece: Work<'_>) {
        let parts = split.parts;
        let (mine, rest) = self.cut(split, 1, parts, piece);
        crate::relay::join(|| self.run_work(mine), || self.run(split, parts - 1, rest));
    }

    /// Runs the pieces of one part on this thread.
    fn run_work(&self, work: Work<'_>) {
        for piece in work.head.into_iter().chain([work.body]).chain(work.tail) {
            self.run_one(piece);
        }
    }

    /// Runs one piece on this thread with this thread's scratch.
    fn run_one(&self, (units, span, oc, mut output): Piece<'_>) {
        if units.is_empty() || span.is_empty() || oc.is_empty() {
            return;
        }
        if self.isa == Isa::Amx {
            if let Some(g) = self.layer.amx() {
                let pass = crate::amx::Pass {
                    input: self.input,
                    plane: self.h * self.w,
                    units: units.clone(),
                    span: span.clone(),
                    oc: oc.clone(),
                };
                if crate::amx::run(g, pass, &mut output) {
                    return;
                }
            }
        }
        let (h, w, ho, wo) = (self.h, self.w, self.ho, self.wo);
        let need = K::scratch_len(self.isa.lanes(), h, w, ho, wo);
        let mut scratch = SCRATCH.with(Cell::take);
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let args = Args {
            input: self.input,
            output,
            scratch: &mut scratch[..need],
            n: self.n,
            h,
            w,
            ho,
            wo,
            units,
            span,
            oc,
            amx: self.isa == Isa::Amx,
        };
        // The ISA was checked to be available before the job was made.
        let _ = self.isa.run_by_class(Op {
            layer: self.layer,
            args,
        });
        SCRATCH.with(|s| s.set(scratch));
    }
}

/// `forward` over checked tensor views; the dims must match the layer.
pub fn forward_tensor<K: Generated>(
    layer: &K,
    isa: Isa,
    input: &TensorRef<'_>,
    output: &mut TensorMut<'_>,
) -> Result<()> {
    let p = K::GEOMETRY;
    let [n, c, h, w] = input.dims();
    if c != p.in_channels {
        return Err(ConvError::ShapeMismatch {
            what: "input channels",
            expected: p.in_channels,
            actual: c,
        });
    }
    let (ho, wo) = p.output_hw(h, w)?;
    let want = [n, p.out_channels, ho, wo];
    let got = output.dims();
    for (i, what) in [
        "output batch",
        "output channels",
        "output height",
        "output width",
    ]
    .into_iter()
    .enumerate()
    {
        if got[i] != want[i] {
            return Err(ConvError::ShapeMismatch {
                what,
                expected: want[i],
                actual: got[i],
            });
        }
    }
    forward(layer, isa, input.data(), n, h, w, output.data_mut())
}

/// `forward` into a new `Vec`.
pub fn forward_vec<K: Generated>(
    layer: &K,
    isa: Isa,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
) -> Result<Vec<f32>> {
    // Check the input before allocating: a wrong `n` must be an `Err`, not a huge allocation.
    let out_len = K::GEOMETRY.output_len(n, h, w)?;
    K::GEOMETRY.check_forward(input.len(), n, h, w, out_len)?;
    let mut out = vec![0.0; out_len];
    forward(layer, isa, input, n, h, w, &mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Vector access for generated tiles. All checked: an out-of-range index is a bug in the
// generator, caught by the tests, never UB.
// ---------------------------------------------------------------------------------------------

/// Loads `S::F32_LANES` floats from `src[at..]`.
#[inline(always)]
pub fn ld<S: Simd>(_simd: S, src: &[f32], at: usize) -> S::f32s {
    bytemuck::pod_read_unaligned(bytemuck::cast_slice(&src[at..at + S::F32_LANES]))
}

/// Stores a full vector to `dst[at..]`.
#[inline(always)]
pub fn st<S: Simd>(_simd: S, dst: &mut [f32], at: usize, v: S::f32s) {
    dst[at..at + S::F32_LANES].copy_from_slice(bytemuck::cast_slice(core::slice::from_ref(&v)));
}

/// Loads the first `len < lanes` floats of `src[at..]`; the other lanes are zero.
#[inline(always)]
pub fn ld_part<S: Simd>(simd: S, src: &[f32], at: usize, len: usize) -> S::f32s {
    let src = &src[at..at + len];
    if len >= S::F32_LANES {
        return ld(simd, src, 0);
    }
    let mask = crate::dispatch::lanes_between(simd, 0, len as u32);
    // SAFETY: `src` has `len` elements (the slice above is checked) and the mask enables exactly
    // lanes `0..len`, so only in-bounds elements are read.
    unsafe { simd.mask_load_ptr_f32s(mask, src.as_ptr()) }
}

/// Stores the first `len < lanes` lanes of `v` to `dst[at..at + len]`.
#[inline(always)]
pub fn st_part<S: Simd>(simd: S, dst: &mut [f32], at: usize, len: usize, v: S::f32s) {
    let dst = &mut dst[at..at + len];
    if len >= S::F32_LANES {
        return st(simd, dst, 0, v);
    }
    let mask = crate::dispatch::lanes_between(simd, 0, len as u32);
    // SAFETY: `dst` has `len` elements (the slice above is checked) and the mask enables exactly
    // lanes `0..len`, so only in-bounds elements are written.
    unsafe { simd.mask_store_ptr_f32s(mask, dst.as_mut_ptr(), v) }
}

/// Stores a full vector to float `at` of plane `i` of `out`.
#[inline(always)]
pub fn st_plane<S: Simd>(simd: S, out: &mut PlanesMut<'_>, i: usize, at: usize, v: S::f32s) {
    st(simd, out.plane(i), at, v)
}

/// Asks the cache hierarchy to bring the line holding `src[at]` into L2 ahead of its use; no-op
/// when `at` is past `src` (a tile's look-ahead at the end of a plane) and off x86-64.
#[inline(always)]
pub fn prefetch(src: &[f32], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < src.len() {
        // SAFETY: a prefetch reads nothing architecturally and never faults; the address is
        // inside `src` anyway (`at < src.len()` above).
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T1 }>(
                src.as_ptr().add(at).cast::<i8>(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (src, at);
}

/// Pixels a GEMM over `planes` (channel planes `stride` floats apart) computes before its first
/// whole step, so that the steps' vector loads start on vector boundaries: a `Vec<f32>` from the
/// system allocator starts 16 bytes past a 64-byte line, and then every vector a tile loads
/// spans two lines (`mnv2_pw144_24_56` on such an input ran 1.20x its time on an aligned one,
/// 1.01-1.05x with this head).
/// 0 when the planes are aligned already, when they are not all misaligned alike (a stride
/// that is not a whole number of vectors, as 14 x 14 = 196 floats) or not even float-aligned,
/// and for scalar code. For such strides, copying each whole step's panel into an aligned
/// scratch block (read by every output-channel tile after) measured slower, not faster: 384 ->
/// 64 on 14 x 14, AVX-512, 60.4-62.5 us as is, 64.3-66.7 packed (minimum of 300 x 10 calls,
/// alternating runs); there the split loads cost less than the copy's stores.
///
/// Also 0 for a span of fewer than [`ALIGN_MIN_VECS`] vectors (`npix` pixels): the head and the
/// shorter last vector it leaves are each a pass of the channel-vector tail (or a masked
/// vector) over all the weights, which on a few vectors costs more than the split loads save.
/// Unaligned input, AVX-512, throwaway timer, minimum us, head -> none: 960 -> 160 on 4 x 4
/// 59-60 -> 38-41 (2 threads 69-72 -> 23), on 8 x 8 143-147 -> 130-131 (150 -> 70-73), 576 ->
/// 96 on 4 x 4 23-24 -> 14-15, on 8 x 8 52-55 -> 48-49, 1024 -> 1024 on 8 x 8 1284-1507 ->
/// 992-1062; 384 -> 64 on 16 x 16 (16 vectors) 81 with the head, 82-89 without.
#[inline(always)]
pub fn align_head<S: Simd>(planes: &[f32], stride: usize, npix: usize) -> usize {
    let lanes = S::F32_LANES;
    let addr = planes.as_ptr() as usize;
    if lanes <= 1 || stride % lanes != 0 || addr % 4 != 0 || npix < ALIGN_MIN_VECS * lanes {
        return 0;
    }
    (lanes - (addr / 4) % lanes) % lanes
}

/// Vectors of pixels a GEMM span needs before [`align_head`] aligns its steps.
pub const ALIGN_MIN_VECS: usize = 16;

/// A GEMM accumulator at the start of a block of the reduction: `bias` splatted for the first
/// block, else the partial sum stored by the previous block at float `at` of plane `i` of `out`.
#[inline(always)]
pub fn acc_init<S: Simd>(
    simd: S,
    first: bool,
    bias: f32,
    out: &mut PlanesMut<'_>,
    i: usize,
    at: usize,
) -> S::f32s {
    acc_init_part(simd, first, bias, out, i, at, S::F32_LANES)
}

/// [`acc_init`] for `len <= lanes` pixels; past the first block the other lanes are zero.
#[inline(always)]
pub fn acc_init_part<S: Simd>(
    simd: S,
    first: bool,
    bias: f32,
    out: &mut PlanesMut<'_>,
    i: usize,
    at: usize,
    len: usize,
) -> S::f32s {
    if first {
        simd.splat_f32s(bias)
    } else {
        ld_part(simd, out.plane(i), at, len)
    }
}

/// Stores the first `len <= lanes` lanes of `v` to float `at` of plane `i` of `out`.
#[inline(always)]
pub fn st_part_plane<S: Simd>(
    simd: S,
    out: &mut PlanesMut<'_>,
    i: usize,
    at: usize,
    len: usize,
    v: S::f32s,
) {
    st_part(simd, out.plane(i), at, len, v)
}

/// `max(x, lo)` per lane, written as `x < lo ? lo : x` so that a NaN lane stays NaN (the
/// comparison is false for it), as in PyTorch. The lower half of a fused activation.
#[inline(always)]
pub fn clamp_min<S: Simd>(simd: S, x: S::f32s, lo: f32) -> S::f32s {
    let lo = simd.splat_f32s(lo);
    simd.select_f32s(simd.less_than_f32s(x, lo), lo, x)
}

/// `min(x, hi)` per lane, NaN kept (see [`clamp_min`]). The upper half of a fused activation.
#[inline(always)]
pub fn clamp_max<S: Simd>(simd: S, x: S::f32s, hi: f32) -> S::f32s {
    let hi = simd.splat_f32s(hi);
    simd.select_f32s(simd.greater_than_f32s(x, hi), hi, x)
}

// ---------------------------------------------------------------------------------------------
// The fused depthwise-separable kernel's intermediate rows.
// ---------------------------------------------------------------------------------------------

/// Bytes of depthwise output rows (all channels) a fused separable kernel keeps between its two
/// stages: half of the 2 MiB L2, so the rows stay in L2 beside the input rows streaming in and
/// the output rows going out. Smaller steps re-read more halo rows and repeat the per-channel
/// setup more often: with a quarter of this (an eighth of L2) the separable rows of
/// `shapes.tsv` ran 4% (sep_mnv2_144_24_56) and 1% slower, and nothing was gained back, because
/// both stages are compute-bound on the machine measured (see the README).
///
/// Keeping the intermediate in L1 instead (a throwaway AVX-512 kernel for
/// `sep_mnv2_144_24_56`: per 4 output rows x one 16-column vector, every channel's depthwise
/// outputs into a 36 KiB block, then the pointwise tiles, 6 output channels x those 4 vectors,
/// over it) ran 296-312 us against this kernel's 256-271 in the same sitting: its pointwise
/// part took about as long as the pointwise stage here (and computes 64 columns per 56-wide
/// row), its depthwise part longer (each channel's 9 weights broadcast again per block).
pub const FUSED_BYTES: usize = 1024 * 1024;

/// The scratch of a fused separable kernel: the depthwise band of one channel for a step of
/// output rows (read by band tiles), a row of zeros (read by in-place tiles for padding rows),
/// then the block of depthwise rows the pointwise stage reads. `scratch_len` and the kernel both
/// derive it here, so they cannot disagree.
#[derive(Clone, Copy, Debug)]
pub struct FusedScratch {
    /// The band of one input channel for `step_rows` output rows.
    pub band: Band,
    /// Output rows per step ([`fused_rows`]).
    pub step_rows: usize,
    /// Floats between the block's channel planes: `step_rows * w_out` rounded up to a cache
    /// line, so every plane starts on one (the pointwise tiles load whole lines).
    pub mid_plane: usize,
    /// Channels of the block.
    pub chans: usize,
    /// Floats of the row of zeros: the input width.
    pub zero_row: usize,
}

/// The parts of a fused separable kernel's scratch ([`FusedScratch::split`]).
pub struct FusedParts<'a> {
    /// The band, starting on a cache line.
    pub band: &'a mut [f32],
    /// `w` zeros.
    pub zeros: &'a [f32],
    /// The block, starting on a cache line.
    pub mid: &'a mut [f32],
}

impl FusedScratch {
    /// The layout for `chans` channels, an input `w` wide, an output of `ho x wo`, vectors of
    /// `lanes` and a depthwise row tile of `row_tile` rows.
    #[inline(always)]
    pub fn new(
        p: &Conv2dParams,
        chans: usize,
        lanes: usize,
        w: usize,
        ho: usize,
        wo: usize,
        row_tile: usize,
    ) -> Self {
        let step_rows = fused_rows(chans, ho, wo, row_tile);
        FusedScratch {
            band: Band::with_out_rows(p, 1, lanes, wo, step_rows),
            step_rows,
            mid_plane: (step_rows * wo).next_multiple_of(16),
            chans,
            zero_row: w,
        }
    }

    /// Floats of scratch: the band and its alignment, the row of zeros, up to a line to align
    /// the block, the block.
    pub fn len(&self) -> usize {
        self.band.scratch_len() + self.zero_row + LINE + self.chans * self.mid_plane
    }

    /// Whether the layout needs no scratch (never: a band has at least one row).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Splits `scratch` (at least [`FusedScratch::len`] floats) into the band, the row of
    /// zeros (written here) and the block, band and block each starting on a cache line.
    #[inline(always)]
    pub fn split<'a>(&self, scratch: &'a mut [f32]) -> FusedParts<'a> {
        let (band, rest) = scratch.split_at_mut(self.band.scratch_len());
        let (zeros, rest) = rest.split_at_mut(self.zero_row);
        zeros.fill(0.0);
        let skip = rest.as_ptr().align_offset(LINE * 4).min(LINE);
        FusedParts {
            band: self.band.buf(band),
            zeros,
            mid: &mut rest[skip..][..self.chans * self.mid_plane],
        }
    }
}

/// Output rows per step of a fused separable kernel with `chans` intermediate channels, for an
/// output of `ho x wo`: as many as fit [`FUSED_BYTES`], a multiple of the depthwise row tile
/// `row_tile` when at least one tile fits, then spread evenly over the steps the plane needs.
/// At least 1, at most `ho` rounded up to the row tile.
#[inline(always)]
pub fn fused_rows(chans: usize, ho: usize, wo: usize, row_tile: usize) -> usize {
    let row_bytes = chans.saturating_mul(wo).saturating_mul(4).max(1);
    let fit = (FUSED_BYTES / row_bytes).max(1);
    let fit = if fit >= row_tile {
        fit / row_tile * row_tile
    } else {
        fit
    };
    let steps = ho.div_ceil(fit).max(1);
    let even = ho.div_ceil(steps);
    // Rounding the even share up to whole tiles never needs more steps than `fit` did.
    if fit >= row_tile {
        even.div_ceil(row_tile) * row_tile
    } else {
        even
    }
}

// ---------------------------------------------------------------------------------------------
// The padded, phase-split input band of the direct (depthwise / grouped) kernels.
// ---------------------------------------------------------------------------------------------

/// Geometry of a zero-padded input band: `chans` channels x `rows` rows x `stride_w` phases x
/// `phase_len` columns. Column `q` of phase `p` of a row holds padded column `q * stride_w + p`,
/// i.e. input column `q * stride_w + p - pad_left` (zero outside the input). A tap at padded
/// column `ox * stride_w + kx * dilation_w` then reads phase `(kx * dw) % sw` at
/// `ox + (kx * dw) / sw`: contiguous for every stride, with no bounds logic in the tile.
#[derive(Clone, Copy, Debug)]
pub struct Band {
    pub chans: usize,
    /// Output rows one band covers (a multiple of the plan's row tile, except at the bottom).
    pub out_rows: usize,
    pub rows: usize,
    pub phase_len: usize,
    pub row_stride: usize,
    pub chan_stride: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

/// Bytes of input band the direct kernels aim to keep in L1 (of 48 KiB) while they sweep it.
pub const BAND_BYTES: usize = 24 * 1024;

/// Floats of a cache line.
pub(crate) const LINE: usize = 16;

impl Band {
    /// The band for a layer with the given kernel extent, for output width `wo`, vectors of
    /// `lanes`, and a row tile of `row_tile` output rows. `out_rows` is the largest multiple of
    /// `row_tile` whose band fits [`BAND_BYTES`] (at least one row tile, at most `ho` rounded up).
    #[inline(always)]
    pub fn new(
        p: &Conv2dParams,
        chans: usize,
        lanes: usize,
        ho: usize,
        wo: usize,
        row_tile: usize,
    ) -> Band {
        let row_stride = Self::row_stride(p, lanes, wo);
        let per_tile_bytes =
            Self::rows_for(p, row_tile).max(row_tile * p.stride_h) * row_stride * chans * 4;
        let tiles = (BAND_BYTES / per_tile_bytes.max(1)).max(1);
        let out_rows = (tiles * row_tile).min(ho.div_ceil(row_tile) * row_tile);
        Self::with_out_rows(p, chans, lanes, wo, out_rows)
    }

    /// The band of exactly `out_rows` output rows (the caller chose how many).
    #[inline(always)]
    pub fn with_out_rows(
        p: &Conv2dParams,
        chans: usize,
        lanes: usize,
        wo: usize,
        out_rows: usize,
    ) -> Band {
        let sw = p.stride_w;
        let phase_len = Self::phase_len(p, lanes, wo);
        let row_stride = phase_len * sw;
        let rows = Self::rows_for(p, out_rows);
        Band {
            chans,
            out_rows,
            rows,
            phase_len,
            row_stride,
            chan_stride: rows * row_stride,
            stride_h: p.stride_h,
            stride_w: sw,
            pad_top: p.pad_top,
            pad_left: p.pad_left,
        }
    }

    /// Floats of one phase of a band row: the vectors of the output columns and the reach of
    /// the kernel. Rounded up to a cache line (16 floats) when that aligns the loads of at least
    /// half of the kernel's columns: with the band starting on a line (see [`Band::buf`]) every
    /// row and phase then does, and the taps that read a phase at offset 0 (`kx * dilation_w <
    /// stride_w`: two of three at 3x3 stride 2, one at stride 1) load whole lines instead of
    /// crossing one. At stride 1 the larger band is not worth one aligned column in three.
    fn phase_len(p: &Conv2dParams, lanes: usize, wo: usize) -> usize {
        let (kw, dw, sw) = (p.kernel_w, p.dilation_w, p.stride_w);
        let len = wo.div_ceil(lanes) * lanes + (kw - 1) * dw / sw;
        let aligned_cols = (0..kw).filter(|kx| kx * dw < sw).count();
        if 2 * aligned_cols >= kw {
            len.next_multiple_of(LINE)
        } else {
            len
        }
    }

    /// Floats of one band row (all phases).
    fn row_stride(p: &Conv2dParams, lanes: usize, wo: usize) -> usize {
        Self::phase_len(p, lanes, wo) * p.stride_w
    }

    /// Input rows that `out_rows >= 1` output rows read.
    fn rows_for(p: &Conv2dParams, out_rows: usize) -> usize {
        (out_rows - 1) * p.stride_h + (p.kernel_h - 1) * p.dilation_h + 1
    }

    /// Floats of one band.
    pub fn len(&self) -> usize {
        self.chans * self.chan_stride
    }

    /// Floats of scratch a band needs: [`Band::len`] and up to a cache line to align its start.
    pub fn scratch_len(&self) -> usize {
        self.len() + LINE
    }

    /// The band within `scratch` (at least [`Band::scratch_len`] floats), starting on a cache
    /// line.
    #[inline(always)]
    pub fn buf<'a>(&self, scratch: &'a mut [f32]) -> &'a mut [f32] {
        let skip = scratch.as_ptr().align_offset(LINE * 4).min(LINE);
        &mut scratch[skip..][..self.len()]
    }

    /// Whether the band holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Zeroes the whole band. Call it once after creating the band and before the first
    /// [`Band::fill`]: at strides 1 and 2 `fill` writes only the data columns, and the padding
    /// columns must hold the zeros from here.
    pub fn clear(&self, band: &mut [f32]) {
        band[..self.len()].fill(0.0);
    }

    /// The stride-1 rows of one channel of the band (`chan`) for output rows from `oy0`, from
    /// its `plane`: band rows above or below the plane get zeros, the others the plane's rows,
    /// in one pass over both without per-row index checks. Only the data columns `pl..pl + w`
    /// are ever written at stride 1; the padding columns keep the zeros of [`Band::clear`].
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn fill_rows_s1<S: Simd>(
        &self,
        simd: S,
        row_copy: &RowCopy<S>,
        plane: &[f32],
        h: usize,
        w: usize,
        oy0: usize,
        chan: &mut [f32],
    ) {
        let pl = self.pad_left;
        let rs = self.row_stride;
        // Band row `j` holds input row `oy0 * stride_h + j - pad_top`: rows `j0..j1` are inside.
        let first = oy0 * self.stride_h;
        let j0 = self.pad_top.saturating_sub(first).min(self.rows);
        let j1 = (h + self.pad_top)
            .saturating_sub(first)
            .clamp(j0, self.rows);
        let end = (pl + w).min(rs);
        let data = pl.min(end)..end;
        for row in chan[..j0 * rs].chunks_exact_mut(rs) {
            zero_vectors(simd, &mut row[data.clone()]);
        }
        for row in chan[j1 * rs..self.rows * rs].chunks_exact_mut(rs) {
            zero_vectors(simd, &mut row[data.clone()]);
        }
        let iy0 = first + j0 - self.pad_top;
        let src = &plane[iy0 * w..(iy0 + j1 - j0) * w];
        for (row, src) in chan[j0 * rs..j1 * rs]
            .chunks_exact_mut(rs)
            .zip(src.chunks_exact(w))
        {
            row_copy.copy_padded(simd, &mut row[data.start..], src);
        }
    }

    /// Fills the band for output rows starting at `oy0` from `planes` (`chans` planes of `h x w`).
    /// Rows and columns outside the input are zero, given [`Band::clear`] ran on this buffer
    /// since the band was created.
    #[inline(always)]
    pub fn fill<S: Simd>(
        &self,
        simd: S,
        planes: &[f32],
        h: usize,
        w: usize,
        oy0: usize,
        band: &mut [f32],
    ) {
        let band = &mut band[..self.len()];
        let (sw, pl) = (self.stride_w, self.pad_left);
        let row_copy = RowCopy::new(simd, w);
        let split2 = (sw == 2).then(|| Split2::new(simd, w, pl, self.phase_len));
        for (c, chan) in band.chunks_exact_mut(self.chan_stride).enumerate() {
            let plane = &planes[c * h * w..(c + 1) * h * w];
            if sw == 1 {
                self.fill_rows_s1(simd, &row_copy, plane, h, w, oy0, chan);
                continue;
            }
            for (j, row) in chan.chunks_exact_mut(self.row_stride).enumerate() {
                let iy = (oy0 * self.stride_h + j).checked_sub(self.pad_top);
                let src = match iy {
                    Some(iy) if iy < h => Some(&plane[iy * w..(iy + 1) * w]),
                    _ => None,
                };
                let Some(src) = src else {
                    zero_vectors(simd, row);
                    continue;
                };
                if let Some(split2) = &split2 {
                    split2.split(src, row);
                } else {
                    for (p, phase) in row.chunks_exact_mut(self.phase_len).enumerate() {
                        // Phase column q holds input column q * sw + p - pl: the valid q are
                        // q0..q1, the rest is padding.
                        let q0 = pl.saturating_sub(p).div_ceil(sw).min(phase.len());
                        let q1 = (w + pl)
                            .saturating_sub(p)
                            .div_ceil(sw)
                            .clamp(q0, phase.len());
                        let (head, rest) = phase.split_at_mut(q0);
                        let (data, tail) = rest.split_at_mut(q1 - q0);
                        head.fill(0.0);
                        tail.fill(0.0);
                        if data.is_empty() {
                            continue;
                        }
                        // q0 < q1 <= phase.len(), so q0 was not clamped: q0 * sw + p >= pl, and
                        // x0 < w.
                        let x0 = q0 * sw + p - pl;
                        let src = &src[x0..];
                        // Whole stride groups first (a loop LLVM vectorises as interleaved
                        // loads), then at most one last element.
                        let full = (src.len() / sw).min(data.len());
                        match sw {
                            3 => gather_every::<3>(&mut data[..full], src),
                            4 => gather_every::<4>(&mut data[..full], src),
                            _ => {
                                for (d, s) in data[..full].iter_mut().zip(src.chunks_exact(sw)) {
                                    *d = s[0];
                                }
                            }
                        }
                        if let Some(d) = data.get_mut(full) {
                            *d = src[full * sw];
                        }
                    }
                }
            }
        }
    }
}

/// A register tile's window into a filled band: `CHANS` channels x `ROWS` rows from `row0`,
/// phases `0..PHASES`, columns `ox..ox + REACH + lanes`. Created once per tile with one bounds
/// check, so the tile's loads, whose indices are constants checked at compile time, need none.
pub struct BandTile<
    'a,
    const CHANS: usize,
    const ROWS: usize,
    const PHASES: usize,
    const REACH: usize,
> {
    buf: &'a [f32],
    base: usize,
    chan_stride: usize,
    row_stride: usize,
    phase_len: usize,
}

impl Band {
    /// The window of a tile whose first band row is `row0` and first column `ox`, for vectors of
    /// `S::F32_LANES`.
    ///
    /// # Panics
    /// When the window does not lie inside `buf`: a bug in the generated tile sweep (the band is
    /// sized for every tile the sweep makes), never a consequence of user input.
    #[inline(always)]
    pub fn tile<
        'a,
        S: Simd,
        const CHANS: usize,
        const ROWS: usize,
        const PHASES: usize,
        const REACH: usize,
    >(
        &self,
        buf: &'a [f32],
        row0: usize,
        ox: usize,
    ) -> BandTile<'a, CHANS, ROWS, PHASES, REACH> {
        const { assert!(CHANS > 0 && ROWS > 0 && PHASES > 0) };
        let base = row0 * self.row_stride + ox;
        let last = (CHANS - 1) * self.chan_stride
            + (ROWS - 1) * self.row_stride
            + (PHASES - 1) * self.phase_len
            + REACH
            + S::F32_LANES;
        let fits = CHANS <= self.chans
            && PHASES <= self.stride_w
            && ox + REACH + S::F32_LANES <= self.phase_len
            && row0 + ROWS <= self.rows
            && base + last <= buf.len();
        assert!(fits, "conv-kernel bug: register tile outside its band");
        BandTile {
            buf,
            base,
            chan_stride: self.chan_stride,
            row_stride: self.row_stride,
            phase_len: self.phase_len,
        }
    }
}

impl<const CHANS: usize, const ROWS: usize, const PHASES: usize, const REACH: usize>
    BandTile<'_, CHANS, ROWS, PHASES, REACH>
{
    /// The vector at channel `C`, tile row `J`, phase `P`, column offset `OFF`.
    #[inline(always)]
    pub fn ld<S: Simd, const C: usize, const J: usize, const P: usize, const OFF: usize>(
        &self,
        _simd: S,
    ) -> S::f32s {
        const { assert!(C < CHANS && J < ROWS && P < PHASES && OFF <= REACH) };
        let at = self.base + C * self.chan_stride + J * self.row_stride + P * self.phase_len + OFF;
        // SAFETY: with C < CHANS, J < ROWS, P < PHASES and OFF <= REACH (checked at compile time
        // above), `at + lanes <= base + (CHANS-1)*chan_stride + (ROWS-1)*row_stride +
        // (PHASES-1)*phase_len + REACH + lanes <= buf.len()`, checked in `Band::tile`. The read is
        // unaligned and `S::f32s` is plain old data.
        unsafe { core::ptr::read_unaligned(self.buf.as_ptr().add(at).cast::<S::f32s>()) }
    }

    /// [`BandTile::ld`] with every index chosen at run time (the large-kernel loops); each index
    /// is checked against the window, so a wrong one panics instead of reading elsewhere.
    #[inline(always)]
    pub fn ld_dyn<S: Simd>(&self, _simd: S, c: usize, j: usize, p: usize, off: usize) -> S::f32s {
        let inside = c < CHANS && j < ROWS && p < PHASES && off <= REACH;
        assert!(inside, "conv-kernel bug: load outside the tile window");
        let at = self.base + c * self.chan_stride + j * self.row_stride + p * self.phase_len + off;
        // SAFETY: as in `ld`, with the four index bounds checked just above.
        unsafe { core::ptr::read_unaligned(self.buf.as_ptr().add(at).cast::<S::f32s>()) }
    }

    /// [`BandTile::ld`] with the channel chosen at run time (`c < CHANS`, else panics; in a
    /// `for c in 0..CHANS` loop the check folds away).
    #[inline(always)]
    pub fn ld_chan<S: Simd, const J: usize, const P: usize, const OFF: usize>(
        &self,
        _simd: S,
        c: usize,
    ) -> S::f32s {
        const { assert!(J < ROWS && P < PHASES && OFF <= REACH) };
        assert!(c < CHANS, "conv-kernel bug: channel outside the tile");
        let at = self.base + c * self.chan_stride + J * self.row_stride + P * self.phase_len + OFF;
        // SAFETY: as in `ld`, with `c < CHANS` checked just above.
        unsafe { core::ptr::read_unaligned(self.buf.as_ptr().add(at).cast::<S::f32s>()) }
    }
}

/// A GEMM tile's window into the input of a group: `CHANS` channel planes of `stride` floats,
/// `VECS` vectors from pixel `p` of each. Checked once, so the reduction loop loads unchecked.
pub struct Panel<'a, const CHANS: usize, const VECS: usize> {
    buf: &'a [f32],
    base: usize,
    stride: usize,
}

impl<'a, const CHANS: usize, const VECS: usize> Panel<'a, CHANS, VECS> {
    /// The window at pixel `p` for vectors of `S::F32_LANES`.
    ///
    /// # Panics
    /// When the window does not lie inside `buf` or crosses a plane: a bug in the generated sweep,
    /// never a consequence of user input.
    #[inline(always)]
    pub fn new<S: Simd>(buf: &'a [f32], stride: usize, p: usize) -> Self {
        const { assert!(CHANS > 0 && VECS > 0) };
        let end = p + VECS * S::F32_LANES;
        let fits = end <= stride && (CHANS - 1) * stride + end <= buf.len();
        assert!(fits, "conv-kernel bug: GEMM tile outside its panel");
        Panel {
            buf,
            base: p,
            stride,
        }
    }

    /// Vector `J` of channel `c` (`c < CHANS`, else panics; in a `for` loop over `0..CHANS` the
    /// check folds away).
    #[inline(always)]
    pub fn ld<S: Simd, const J: usize>(&self, _simd: S, c: usize) -> S::f32s {
        const { assert!(J < VECS) };
        assert!(c < CHANS, "conv-kernel bug: channel outside the panel");
        let at = self.base + c * self.stride + J * S::F32_LANES;
        // SAFETY: c < CHANS (checked above) and J < VECS (checked at compile time), so
        // `at + lanes <= (CHANS-1)*stride + p + VECS*lanes <= buf.len()`, checked in `new`. The
        // read is unaligned and `S::f32s` is plain old data.
        unsafe { core::ptr::read_unaligned(self.buf.as_ptr().add(at).cast::<S::f32s>()) }
    }
}

/// `dst[i] = src[i * N]`: with `N` a constant LLVM vectorises this as interleaved loads.
#[inline(always)]
fn gather_every<const N: usize>(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(N)) {
        *d = s[0];
    }
}

/// Lanes `0..len` of a vector (`len <= lanes`) as a load and store mask, built once and used for
/// many rows.
#[derive(Clone, Copy)]
struct LenMask<S: Simd> {
    len: usize,
    mask: pulp::MemMask<S::m32s>,
}

impl<S: Simd> LenMask<S> {
    #[inline(always)]
    fn new(simd: S, len: usize) -> Self {
        assert!(
            len <= S::F32_LANES,
            "conv-kernel bug: mask longer than a vector"
        );
        LenMask {
            len,
            mask: crate::dispatch::lanes_between(simd, 0, len as u32),
        }
    }

    /// `src[..len]` in the first lanes, zeros in the others.
    #[inline(always)]
    fn load(&self, simd: S, src: &[f32]) -> S::f32s {
        let src = &src[..self.len];
        // SAFETY: `src` has `len` elements (the slice above is checked) and the mask enables
        // exactly lanes `0..len` (built from the same `len` in `new`), so only in-bounds elements
        // are read.
        unsafe { simd.mask_load_ptr_f32s(self.mask, src.as_ptr()) }
    }

    /// The first `len` lanes of `v` to `dst[..len]`.
    #[inline(always)]
    fn store(&self, simd: S, dst: &mut [f32], v: S::f32s) {
        let dst = &mut dst[..self.len];
        // SAFETY: as in `load`: `dst` has `len` elements and the mask enables lanes `0..len`.
        unsafe { simd.mask_store_ptr_f32s(self.mask, dst.as_mut_ptr(), v) }
    }
}

/// The split of every stride-2 row of one band fill, planned once per fill. Padded column
/// `c = x + pl` of input column `x` goes to phase `c % 2` at `c / 2`: the even input columns to
/// phase `pl % 2` from `pl / 2`, the odd ones to the other phase from `(pl + 1) / 2`. Only these
/// data columns are written; the padding columns keep the zeros of [`Band::clear`], as at
/// stride 1 (a top or bottom padding row is zeroed whole by the caller).
struct Split2 {
    phase_len: usize,
    pl: usize,
    /// Phase of the even input columns (the odd ones go to the other).
    even_phase: usize,
    even_at: usize,
    odd_at: usize,
    /// Even and odd columns written per row: those that fit their phase.
    evens: usize,
    odds: usize,
    /// Whole chunks of `lanes` pairs; the rest of the row goes through the tail masks.
    chunks: usize,
    /// The in-register deinterleave for this ISA, with its tail masks; `None`: scalar loops.
    #[cfg(target_arch = "x86_64")]
    v4: Option<(pulp::x86::V4, Split2Tail<pulp::x86::V4>)>,
    #[cfg(target_arch = "x86_64")]
    v3: Option<(pulp::x86::V3, Split2Tail<pulp::x86::V3>)>,
}

/// The masks of the last partial chunk of a stride-2 row: its source floats in two vectors
/// (`lo`, then `hi`), and its even and odd columns.
#[derive(Clone, Copy)]
#[cfg(target_arch = "x86_64")]
struct Split2Tail<S: Simd> {
    lo: LenMask<S>,
    hi: LenMask<S>,
    even: LenMask<S>,
    odd: LenMask<S>,
}

#[cfg(target_arch = "x86_64")]
impl<S: Simd> Split2Tail<S> {
    /// The tail of `src_len` source floats, `evens` even and `odds` odd columns (all at most
    /// two vectors of source, one of each output).
    #[inline(always)]
    fn new(simd: S, src_len: usize, evens: usize, odds: usize) -> Self {
        let lanes = S::F32_LANES;
        Split2Tail {
            lo: LenMask::new(simd, src_len.min(lanes)),
            hi: LenMask::new(simd, src_len.saturating_sub(lanes)),
            even: LenMask::new(simd, evens),
            odd: LenMask::new(simd, odds),
        }
    }
}

impl Split2 {
    #[inline(always)]
    fn new<S: Simd>(_simd: S, w: usize, pl: usize, phase_len: usize) -> Self {
        let (even_phase, even_at, odd_at) = if pl % 2 == 0 {
            (0, pl / 2, pl / 2)
        } else {
            (1, pl / 2, pl / 2 + 1)
        };
        let even_at = even_at.min(phase_len);
        let odd_at = odd_at.min(phase_len);
        let evens = w.div_ceil(2).min(phase_len - even_at);
        let odds = (w / 2).min(phase_len - odd_at);
        let lanes = S::F32_LANES;
        let chunks = evens.min(odds) / lanes;
        let (te, to) = (evens - chunks * lanes, odds - chunks * lanes);
        // Source floats of the tail: up to the last even (`2 te - 1`) or odd (`2 to`) column.
        let src_len = (2 * te).saturating_sub(1).max(2 * to);
        let tail_fits = te <= lanes && to <= lanes && chunks * 2 * lanes + src_len <= w;
        Split2 {
            phase_len,
            pl,
            even_phase,
            even_at,
            odd_at,
            evens,
            odds,
            chunks,
            #[cfg(target_arch = "x86_64")]
            v4: (tail_fits && is_isa::<S, pulp::x86::V4>())
                .then(pulp::x86::V4::try_new)
                .flatten()
                .map(|v4| (v4, Split2Tail::new(v4, src_len, te, to))),
            #[cfg(target_arch = "x86_64")]
            v3: (tail_fits && is_isa::<S, pulp::x86::V3>())
                .then(pulp::x86::V3::try_new)
                .flatten()
                .map(|v3| (v3, Split2Tail::new(v3, src_len, te, to))),
        }
    }

    /// Splits `src` (one input row) into `row` (one band row, both phases).
    #[inline(always)]
    fn split(&self, src: &[f32], row: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.v4.is_some() || self.v3.is_some() {
            let (phase0, phase1) = row.split_at_mut(self.phase_len);
            let (even, odd) = if self.even_phase == 0 {
                (phase0, phase1)
            } else {
                (phase1, phase0)
            };
            let even = &mut even[self.even_at..][..self.evens];
            let odd = &mut odd[self.odd_at..][..self.odds];
            if let Some((v4, tail)) = &self.v4 {
                return split_v4(*v4, self.chunks, tail, src, even, odd);
            }
            if let Some((v3, tail)) = &self.v3 {
                return split_v3(*v3, self.chunks, tail, src, even, odd);
            }
        }
        let (phase0, phase1) = row.split_at_mut(self.phase_len);
        split_even_odd(src, self.pl, phase0, phase1);
    }
}

/// `even[m] = src[2m]`, `odd[m] = src[2m + 1]` on AVX-512: `chunks` whole vectors of each through
/// two-source permutes, then the rest through the tail masks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn split_v4(
    v4: pulp::x86::V4,
    chunks: usize,
    tail: &Split2Tail<pulp::x86::V4>,
    src: &[f32],
    even: &mut [f32],
    odd: &mut [f32],
) {
    let deint = |a, b| crate::inplace::deinterleave_v4(v4, a, b);
    split_with(v4, chunks, tail, src, even, odd, deint);
}

/// [`split_v4`] on AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn split_v3(
    v3: pulp::x86::V3,
    chunks: usize,
    tail: &Split2Tail<pulp::x86::V3>,
    src: &[f32],
    even: &mut [f32],
    odd: &mut [f32],
) {
    let deint = |a, b| crate::inplace::deinterleave_v3(v3, a, b);
    split_with(v3, chunks, tail, src, even, odd, deint);
}

/// The body [`split_v4`] and [`split_v3`] share: `chunks` whole vectors of even and odd columns
/// from pairs of source vectors through `deint`, then the tail through its masks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn split_with<S: Simd>(
    simd: S,
    chunks: usize,
    tail: &Split2Tail<S>,
    src: &[f32],
    even: &mut [f32],
    odd: &mut [f32],
    deint: impl Fn(S::f32s, S::f32s) -> (S::f32s, S::f32s),
) {
    let lanes = S::F32_LANES;
    let n = chunks * lanes;
    let dsts = even[..n]
        .chunks_exact_mut(lanes)
        .zip(odd[..n].chunks_exact_mut(lanes));
    for (s, (e, o)) in src[..2 * n].chunks_exact(2 * lanes).zip(dsts) {
        let (ev, od) = deint(ld(simd, s, 0), ld(simd, s, lanes));
        st(simd, e, 0, ev);
        st(simd, o, 0, od);
    }
    let s = &src[2 * n..];
    let b = if tail.hi.len > 0 {
        tail.hi.load(simd, &s[lanes..])
    } else {
        simd.splat_f32s(0.0)
    };
    let (ev, od) = deint(tail.lo.load(simd, s), b);
    tail.even.store(simd, &mut even[n..], ev);
    tail.odd.store(simd, &mut odd[n..], od);
}

/// The stride-2 row of a band: padded column `c = x + pl` of input column `x` goes to phase
/// `c % 2` at `c / 2`, so the even input columns land in phase `pl % 2` from `pl / 2` and the odd
/// ones in the other phase from `(pl + 1) / 2`; every other column of both phases is zero.
/// The scalar path of [`Split2`] (ISAs without an in-register deinterleave here).
#[inline(always)]
fn split_even_odd(src: &[f32], pl: usize, phase0: &mut [f32], phase1: &mut [f32]) {
    // Start of the data in each phase: `pl / 2` for the phase of the even columns, one more for
    // the odd columns when `pl` is odd.
    let (even_phase, odd_phase, even_at, odd_at) = if pl % 2 == 0 {
        (phase0, phase1, pl / 2, pl / 2)
    } else {
        (phase1, phase0, pl / 2, pl / 2 + 1)
    };
    let even_at = even_at.min(even_phase.len());
    let odd_at = odd_at.min(odd_phase.len());
    let (even_head, even_dst) = even_phase.split_at_mut(even_at);
    let (odd_head, odd_dst) = odd_phase.split_at_mut(odd_at);
    even_head.fill(0.0);
    odd_head.fill(0.0);
    let evens = src.len().div_ceil(2).min(even_dst.len());
    for (m, d) in even_dst[..evens].iter_mut().enumerate() {
        *d = src[2 * m];
    }
    even_dst[evens..].fill(0.0);
    let odds = (src.len() / 2).min(odd_dst.len());
    for (m, d) in odd_dst[..odds].iter_mut().enumerate() {
        *d = src[2 * m + 1];
    }
    odd_dst[odds..].fill(0.0);
}

/// `dst = 0` in whole vectors and one masked tail (a `fill` would become a `memset` call).
#[inline(always)]
fn zero_vectors<S: Simd>(simd: S, dst: &mut [f32]) {
    let (n, lanes) = (dst.len(), S::F32_LANES);
    let zero = simd.splat_f32s(0.0);
    let mut i = 0;
    while i + lanes <= n {
        st(simd, dst, i, zero);
        i += lanes;
    }
    if i < n {
        st_part(simd, dst, i, n - i, zero);
    }
}

/// Copies rows of one length: whole vectors, then one masked tail whose mask is built once for all
/// the rows of a band (small planes copy thousands of short rows per call).
struct RowCopy<S: Simd> {
    len: usize,
    tail: Option<pulp::MemMask<S::m32s>>,
}

impl<S: Simd> RowCopy<S> {
    #[inline(always)]
    fn new(simd: S, len: usize) -> Self {
        let rest = len % S::F32_LANES;
        RowCopy {
            len,
            tail: (rest > 0).then(|| crate::dispatch::lanes_between(simd, 0, rest as u32)),
        }
    }

    /// `dst[..len] = src` where `dst` runs on to the end of the band row, whose columns past
    /// `len` are padding (zeros). When the row has room for a whole last vector, the tail is
    /// loaded through its mask (zeros in the other lanes) and stored whole, rewriting padding
    /// with zeros: a plain store instead of a masked one.
    #[inline(always)]
    fn copy_padded(&self, simd: S, dst: &mut [f32], src: &[f32]) {
        let lanes = S::F32_LANES;
        let full = self.len - self.len % lanes;
        match self.tail {
            Some(mask) if src.len() == self.len && dst.len() >= full + lanes => {
                let mut i = 0;
                while i < full {
                    st(simd, dst, i, ld(simd, src, i));
                    i += lanes;
                }
                let src = &src[full..];
                // SAFETY: `src` holds exactly `len % lanes` elements (its length is checked
                // above) and the mask enables exactly lanes `0..len % lanes`.
                let v = unsafe { simd.mask_load_ptr_f32s(mask, src.as_ptr()) };
                st(simd, dst, full, v);
            }
            _ => {
                let end = self.len.min(dst.len());
                self.copy(simd, &mut dst[..end], src)
            }
        }
    }

    /// `dst = src` when both have the row length, else the general [`copy_vectors`].
    #[inline(always)]
    fn copy(&self, simd: S, dst: &mut [f32], src: &[f32]) {
        if dst.len() != self.len || src.len() != self.len {
            return copy_vectors(simd, dst, src);
        }
        let lanes = S::F32_LANES;
        let full = self.len - self.len % lanes;
        let mut i = 0;
        while i < full {
            st(simd, dst, i, ld(simd, src, i));
            i += lanes;
        }
        if let Some(mask) = self.tail {
            let (src, dst) = (&src[full..], &mut dst[full..]);
            // SAFETY: `src` and `dst` hold exactly `len % lanes` elements (both slices have the
            // row length, checked above) and the mask enables exactly lanes `0..len % lanes`, so
            // only in-bounds elements are read and written.
            unsafe {
                let v = simd.mask_load_ptr_f32s(mask, src.as_ptr());
                simd.mask_store_ptr_f32s(mask, dst.as_mut_ptr(), v);
            }
        }
    }
}

/// `dst = src` in whole vectors and one masked tail: rows of small planes are a few dozen floats,
/// where a `memcpy` call costs more than the copy.
#[inline(always)]
fn copy_vectors<S: Simd>(simd: S, dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len());
    let lanes = S::F32_LANES;
    let mut i = 0;
    while i + lanes <= n {
        st(simd, dst, i, ld(simd, src, i));
        i += lanes;
    }
    if i < n {
        st_part(simd, dst, i, n - i, ld_part(simd, src, i, n - i));
    }
}

/// The bias of a layer as stored: the given one, or `out` zeros for a bias-free layer.
pub fn bias_or_zeros(bias: Option<&[f32]>, out: usize) -> Vec<f32> {
    match bias {
        Some(b) => b.to_vec(),
        None => vec![0.0; out],
    }
}

// ---------------------------------------------------------------------------------------------
// The pointwise kernel's channel-vector tail.
// ---------------------------------------------------------------------------------------------

/// Output channels of a group are padded to a multiple of this in the channel-vector operands,
/// so every ISA's vectors (16, 8, 4 or 1 floats) tile them exactly.
pub const OC_PAD: usize = 16;

/// Floats per input channel of a group's weight columns and of its padded bias: `cpg_out`
/// rounded up to [`OC_PAD`]. The generated tail indexes the operands with it as a constant.
pub const fn padded_channels(cpg_out: usize) -> usize {
    cpg_out.next_multiple_of(OC_PAD)
}

/// Output channels per block of [`pack_columns`]: 256 bytes, whole vectors of every ISA and a
/// multiple of every channel-vector tile's width (`4 x 16` on AVX-512, `2 x 8` on AVX2, `4 x 4`
/// on NEON).
pub const COL_BLOCK: usize = 64;

/// Per group, the `(cpg_out, cpg_in)` block of a pointwise `weight (out, in / groups)` as its
/// columns, zero-padded to `pad = padded_channels(cpg_out)` output channels, in blocks of
/// [`COL_BLOCK`] output channels: block `k` (channels `64 k..` up to 64 of them, `cw`) holds
/// `(cpg_in, cw)`, one input channel's weights for those output channels after the other. The
/// channel-vector tail loads one input channel's weights for a few vectors of output channels
/// at a time, over every input channel: within a block those loads run through memory in order.
/// With the columns `(cpg_in, pad)` instead, each input channel's vectors lay `4 pad` bytes
/// after the last one's, a page apart at 1024 channels, where the L2's prefetcher does not
/// follow: the one-pixel tail of 1024 -> 1024 on 7 x 7 (AVX-512) took about 300 us of the
/// layer's 1000, at 14 GB/s.
pub fn pack_columns(weight: &[f32], groups: usize, cpg_out: usize, cpg_in: usize) -> Vec<f32> {
    let pad = padded_channels(cpg_out);
    let mut cols = vec![0.0; groups * cpg_in * pad];
    for g in 0..groups {
        for oc in 0..cpg_out {
            let (base, cw, off) = col_block(oc, pad, cpg_in);
            for ic in 0..cpg_in {
                cols[g * cpg_in * pad + base + ic * cw + off] =
                    weight[(g * cpg_out + oc) * cpg_in + ic];
            }
        }
    }
    cols
}

/// Where output channel `oc` of a group's columns ([`pack_columns`], `pad` channels of `cpg_in`
/// input channels) lies: its block's first float, the block's width and `oc`'s place in it. Input
/// channel `ic` of `oc` is then at `base + ic * width + off`.
#[inline(always)]
pub const fn col_block(oc: usize, pad: usize, cpg_in: usize) -> (usize, usize, usize) {
    let first = oc / COL_BLOCK * COL_BLOCK;
    let width = if pad - first < COL_BLOCK {
        pad - first
    } else {
        COL_BLOCK
    };
    (first * cpg_in, width, oc - first)
}

/// `bias (groups * cpg_out)` with each group's channels padded with zeros to a multiple of
/// [`OC_PAD`].
pub fn pad_groups(bias: &[f32], groups: usize, cpg_out: usize) -> Vec<f32> {
    let pad = padded_channels(cpg_out);
    let mut out = vec![0.0; groups * pad];
    for g in 0..groups {
        out[g * pad..][..cpg_out].copy_from_slice(&bias[g * cpg_out..][..cpg_out]);
    }
    out
}

/// Stores lane `l` of `v` (output channel `ch0 + l` of one pixel) to float `at` of plane
/// `ch0 + l - chans.start` of `out` (whose planes are the channels `chans`), for the lanes whose
/// channel lies in `chans`: a vector of output channels may start before a part's channels
/// and end past them (or in the padding).
#[inline(always)]
pub fn st_column<S: Simd>(
    _simd: S,
    out: &mut PlanesMut<'_>,
    ch0: usize,
    chans: (usize, usize),
    at: usize,
    v: S::f32s,
) {
    let lanes: &[f32] = bytemuck::cast_slice(core::slice::from_ref(&v));
    for (l, &x) in lanes.iter().enumerate() {
        let c = ch0 + l;
        if c >= chans.0 && c < chans.1 {
            out.plane(c - chans.0)[at] = x;
        }
    }
}
