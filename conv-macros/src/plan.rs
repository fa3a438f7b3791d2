//! Spec -> plan: *how* a layer is computed. Pure data, no tokens.
//!
//! Every choice derives from the shape and the register budget of a register class; nothing is
//! matched against known layers. A plan is made per register class (32 vector registers:
//! AVX-512 and NEON; 16: AVX2 and scalar), and codegen emits one body per distinct plan.

use crate::spec::{Family, Spec};

/// A register class: how many vector registers a tile may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegClass {
    pub regs: usize,
}

/// The register classes bodies are generated for, largest first.
pub const REG_CLASSES: [RegClass; 2] = [RegClass { regs: 32 }, RegClass { regs: 16 }];

/// Straight-line FMAs one tile body may hold before the plan turns a level into a loop. Keeps
/// expansion and compile time bounded for large kernels and wide groups.
const MAX_UNROLLED_FMAS: usize = 768;

/// Largest output-row tile of the direct kernels. Beyond it the load savings are a few percent
/// while the remainder rows of small planes grow.
const MAX_ROW_TILE: usize = 8;

/// Largest output-channel tile.
const MAX_OC_TILE: usize = 8;

/// Independent accumulator chains a streaming tile keeps in flight at most: FMA latency (4
/// cycles on Zen 4 and Intel cores since Skylake) x FMAs issued per cycle (2 on the widest:
/// Intel's two 512-bit pipes, any x86 core's 256-bit ones).
const FMA_CHAINS: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    Direct(DirectPlan),
    Gemm(GemmPlan),
    /// `separable`: the depthwise stage's direct plan, then the pointwise stage's GEMM plan.
    Fused(DirectPlan, GemmPlan),
    Winograd(WinoPlan),
}

/// Winograd F(2x2, 3x3) for grouped 3x3 stride-1 layers (see [`plan_wino`] and the runtime's
/// `winograd` and `winograd_channels` modules): input transform, then per point of the
/// transformed tile a product over the group's input channels, then output transform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WinoPlan {
    pub regs: usize,
    pub layout: WinoLayout,
}

/// What a Winograd plan's vector lanes run over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WinoLayout {
    /// Tiles: product tiles of `cob` (divides `out / groups`) output channels x `tvb` vectors
    /// of tiles.
    Tiles { cob: usize, tvb: usize },
    /// Channels (whole vectors of them in and out of each group): product tiles of up to `nt`
    /// tiles x one vector of output channels, or up to 12 x two while two are left.
    Channels { nt: usize },
}

/// How the body of a direct tile is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unroll {
    /// Input channels, `ky` and `kx` all unrolled; each input row of the tile is loaded once
    /// per `(ic, kx)` and used by every `(row, ky)` pair that reads it.
    Full,
    /// A loop over the group's input channels; taps unrolled with row sharing inside.
    TapsOnly,
    /// Loops over input channels and taps; only the register tile is unrolled (large kernels).
    TileOnly,
}

/// Direct convolution (depthwise and grouped): a tile is `oc_tile` output channels x `rows`
/// output rows x one vector of output columns, read from the padded input band.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectPlan {
    pub regs: usize,
    /// Output channels per tile; divides `out / groups`.
    pub oc_tile: usize,
    /// Output rows per tile.
    pub rows: usize,
    /// Smaller row tiles for the bottom remainder, largest first (each below `rows`).
    pub rem_rows: Vec<usize>,
    /// The tile's weights stay splatted in registers across the whole plane.
    pub hoist_weights: bool,
    pub unroll: Unroll,
    /// Tiles read the input planes in place (see [`in_place_taps`]) instead of a band copy: at
    /// stride 2 each row pair split into even and odd columns in registers, at stride 1 each row
    /// vector shifted against its neighbours.
    pub in_place: bool,
    /// Tiles run over the flattened output plane (see [`plan_flat`]): `rows` counts vectors of
    /// consecutive output pixels, every tap is a masked load at one offset, no band.
    pub flat: bool,
    /// A flat plan the layer switches to at run time on planes whose rows fill few lanes (see
    /// [`plan_narrow`]); `None` when `flat` or when flat tiles cannot compute the layer.
    pub narrow: Option<Box<DirectPlan>>,
    /// Streaming tiles the layer switches to at run time on narrow planes (see
    /// [`plan_stream`]).
    pub stream: Option<StreamPlan>,
    /// Winograd with lanes over channels, which the layer switches to at run time on planes
    /// narrow enough for its chunks to stay in L1 (see [`plan_wino_narrow`]).
    pub wino: Option<WinoPlan>,
}

/// Streaming depthwise tiles: a tile is `units` units of work (groups, one input plane each) x
/// their output channels x one vector of output columns, run down the whole span of output
/// rows. Each step (one output row) loads the `stride` input rows it brings per unit and adds
/// each into every output row that reads it, `slots` accumulators per output channel in a ring;
/// the oldest is then complete and stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamPlan {
    pub units: usize,
    /// Output rows in flight per output channel, `(kh - 1) dilation / stride + 1`.
    pub slots: usize,
    /// Weights of each unit, `out_per_group x taps`.
    pub weights: usize,
    /// Weights of each unit splatted into registers for the whole tile; the FMAs of the
    /// others broadcast theirs from memory.
    pub hoist: usize,
    /// The layer streams on every plane, and has no row tiles.
    pub always: bool,
    /// The span's first and last `slots - 1` steps unrolled, or `None`: all of them guarded.
    pub ends: Option<StreamEnds>,
    /// Rows at most half a vector wide run two channels per vector (`conv_runtime`'s
    /// `dw_pairs`, AVX-512): one output channel per unit, on 32 registers, in a depthwise
    /// layer's own body (not a separable layer's depthwise stage).
    pub pairs: bool,
}

/// The unrolled first and last steps of a streaming plan (see `codegen::direct::run_stream`),
/// for spans that start at the plane's top and end at its bottom: one copy for the number of
/// input rows above the first step's rows (`above`: the top padding) and one per number of
/// input rows from the first row the last step would load to the plane's end, counted up to
/// the `(slots - 1) stride` rows those steps load (`belows`: one value per `h mod stride`). A
/// span with other counts (one a thread split starts or ends inside the plane) runs those
/// steps guarded: copies for those too, and the steady loop written twice, took the test
/// suite's build from about 13 to 21 minutes on the 2-core machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEnds {
    pub above: usize,
    pub belows: Vec<usize>,
}

/// One unrolled end of a stream span: its first `slots - 1` steps with `Top(above)` input rows
/// above the first step's, or its last `slots - 1` steps with `Bottom(below)` input rows from
/// the first of them to the plane's end.
#[derive(Clone, Copy, Debug)]
pub enum End {
    Top(usize),
    Bottom(usize),
}

impl End {
    /// Whether end step `i` loads its input row `r` (`i stride + q`, counted from the end's
    /// first step's first row): it lies in the plane.
    pub fn loads(self, r: usize) -> bool {
        match self {
            End::Top(above) => r >= above,
            End::Bottom(below) => r < below,
        }
    }

    /// Whether end step `i` adds into slot `k`: at the top the slots up to `i` hold rows of the
    /// span, at the bottom those past `i`.
    pub fn live(self, i: usize, k: usize) -> bool {
        match self {
            End::Top(_) => k <= i,
            End::Bottom(_) => k > i,
        }
    }
}

/// The kernel rows `ky` that read input row `q` of a stream step, each with the slot `k` it
/// adds into (the output row `k` steps back): `ky dilation - q = k stride`.
pub fn stream_reads(spec: &Spec, q: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let (sh, dh) = (spec.stride_h, spec.dilation_h);
    (0..spec.kernel_h)
        .filter(move |ky| ky * dh >= q && (ky * dh - q) % sh == 0)
        .map(move |ky| (ky, (ky * dh - q) / sh))
}

/// The ends a streaming plan of `units` units unrolls, or `None` when their copies would hold
/// more than [`MAX_UNROLLED_FMAS`] FMAs (large kernels, whose ends are long: 11x11 has 10
/// steps each side).
fn stream_ends(spec: &Spec, slots: usize, units: usize) -> Option<StreamEnds> {
    let (sh, dh, kh) = (spec.stride_h, spec.dilation_h, spec.kernel_h);
    let last = (slots - 1) * sh;
    let above = spec.pad_top;
    // A span ending at the last output row `ho - 1`: its last step would load from row `ho sh -
    // pad_top`, and `h - (ho sh - pad_top) = dh (kh - 1) + 1 - pad_bottom - sh + (h + pad_top +
    // pad_bottom - dh (kh - 1) - 1) mod sh`.
    let mut belows: Vec<usize> = (0..sh)
        .filter_map(|r| (dh * (kh - 1) + 1 + r).checked_sub(spec.pad_bottom + sh))
        .map(|b| b.min(last))
        .collect();
    belows.sort_unstable();
    belows.dedup();
    if above > last || belows.is_empty() {
        return None;
    }
    // FMAs of one copy: per step, per input row it loads and per slot reading that row that is
    // live, a row of taps for each unit's output channels.
    let per_read = spec.kernel_w * units * spec.out_per_group();
    let copy = |end: End| -> usize {
        (0..slots - 1)
            .map(|i| {
                (0..sh)
                    .filter(|&q| end.loads(i * sh + q))
                    .flat_map(|q| stream_reads(spec, q))
                    .filter(|&(_, k)| end.live(i, k))
                    .count()
            })
            .sum()
    };
    let reads = copy(End::Top(above)) + belows.iter().map(|&b| copy(End::Bottom(b))).sum::<usize>();
    (reads * per_read <= MAX_UNROLLED_FMAS).then_some(StreamEnds { above, belows })
}

/// Pointwise (1x1, stride 1, no padding): per group a GEMM `out[oc][p] += w[oc][ic] * in[ic][p]`
/// over flattened pixels. A tile is `oc_tile` output channels x `vecs` vectors of pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GemmPlan {
    pub regs: usize,
    pub oc_tile: usize,
    /// Output channels of the last, smaller tile of a group (0 when `oc_tile` divides).
    pub oc_tail: usize,
    pub vecs: usize,
    /// Input channels per iteration of the reduction loop; divides `in / groups`.
    pub ic_unroll: usize,
    /// Input channels per cache block of the reduction (see [`gemm_block`]); divides `in /
    /// groups` and is a multiple of `ic_unroll`. Below `in / groups`, a pixel step runs every
    /// output-channel tile over one block of input channels before the next, keeping the
    /// block's panel of input vectors in L1; tiles after the first reload their partial sums.
    pub kc: usize,
    /// `(in / groups) / kc`.
    pub blocks: usize,
    /// The channel-vector tail (a plane's last pixels, fewer than a vector, when computing them
    /// along output channels needs fewer FMAs than one masked pixel vector per output channel):
    /// a tile is `col_pixels` pixels x `col_vecs` vectors of output channels.
    pub col_pixels: usize,
    pub col_vecs: usize,
    /// Whether a plane's last one or two pixels after its last whole step (7 x 7: one) are
    /// computed inside that step's tiles instead, along output channels (see
    /// [`FUSED_TAIL_OC`]): tag `q`.
    pub fused_tail: bool,
}

/// Output channels of a fused tail's vector: a pair of 8-channel tiles on 16 lanes (AVX-512).
///
/// A plane's tail of one pixel, computed along output channels after the pixel steps (the
/// channel-vector tail), does one FMA per weight vector it loads, and reads the whole weights
/// again for it: from L2 at about 11 cycles per input channel and 4 vectors (AVX-512, Zen 4,
/// 384 -> 64 and 960 -> 320 on 7 x 7 against 6 x 8: 21.4 against 20.2 us and 266.9 against
/// 251.2, where one pixel's FMAs take 0.4 and 5.2). Inside the tiles of the last step, the
/// second tile of each pair of 8-channel tiles loads the pair's 16 weights of every input
/// channel as one vector (from the columns, `pack_columns`) and multiplies it by the tail
/// pixel: one FMA and one load beside the tile's 24 FMAs, the weights' reads among the
/// FMA-bound step's. With two pixels, the first tile of the pair takes the second. Taken where
/// the panel is read from L2 ([`GEMM_L2_LOAD`]): there `t8v3` and `t9v3` measured level on
/// whole steps (960 -> 320 and 320 -> 1280 on 6 x 8, 251.6 against 251.4 us and 337.1 against
/// 337.1), and layers with such panels have the weights (over 96 KiB) that make the
/// channel-vector tail costly.
pub const FUSED_TAIL_OC: usize = 16;

impl Plan {
    pub fn regs(&self) -> usize {
        match self {
            Plan::Direct(p) => p.regs,
            Plan::Gemm(p) => p.regs,
            Plan::Fused(d, _) => d.regs,
            Plan::Winograd(p) => p.regs,
        }
    }

    /// Short plan tag for kernel names, e.g. `t4r5` or `t6v4`.
    pub fn tag(&self) -> String {
        match self {
            // h: weights hoisted into registers; c: loop over input channels; k: loops over
            // input channels and taps (large kernels).
            // i: the input is read in place (no band); f: flat tiles, `r` vectors of pixels.
            Plan::Direct(DirectPlan {
                stream: Some(st), ..
            }) if st.always => st.tag(),
            Plan::Direct(p) => format!(
                "t{}r{}{}{}{}{}{}{}{}",
                p.oc_tile,
                p.rows,
                if p.hoist_weights { "h" } else { "" },
                if p.in_place { "i" } else { "" },
                if p.flat { "f" } else { "" },
                match p.unroll {
                    Unroll::Full => "",
                    Unroll::TapsOnly => "c",
                    Unroll::TileOnly => "k",
                },
                // -: the flat plan taken on narrow planes; ~: the streaming plan, `s` units.
                match &p.narrow {
                    Some(n) => format!("-{}", Plan::Direct((**n).clone()).tag()),
                    None => String::new(),
                },
                match &p.stream {
                    Some(s) => format!("~{}", s.tag()),
                    None => String::new(),
                },
                // ^: the Winograd plan taken on narrow planes.
                match &p.wino {
                    Some(w) => format!("^{}", Plan::Winograd(w.clone()).tag()),
                    None => String::new(),
                }
            ),
            // bN: the reduction in cache blocks of N input channels.
            // q: plane tails fused into the last step's tiles.
            Plan::Gemm(p) => format!(
                "t{}v{}{}{}",
                p.oc_tile,
                p.vecs,
                if p.blocks > 1 {
                    format!("b{}", p.kc)
                } else {
                    String::new()
                },
                if p.fused_tail { "q" } else { "" }
            ),
            // w: Winograd F(2x2, 3x3), product tiles of `cob` channels x `tvb` vectors.
            Plan::Winograd(p) => match p.layout {
                WinoLayout::Tiles { cob, tvb } => format!("w{cob}v{tvb}"),
                // wc: lanes over channels.
                WinoLayout::Channels { nt } => format!("wc{nt}"),
            },
            Plan::Fused(d, g) => format!(
                "{}+{}",
                Plan::Direct(d.clone()).tag(),
                Plan::Gemm(g.clone()).tag()
            ),
        }
    }
}

impl StreamPlan {
    /// `s` and the units per tile, then `h` when every weight is hoisted, `hN` when N of each
    /// unit's are, then `e` when the span's ends are unrolled, `p` when half-vector rows run
    /// channel pairs.
    pub fn tag(&self) -> String {
        let hoist = match self.hoist {
            0 => String::new(),
            h if h == self.weights => "h".to_string(),
            h => format!("h{h}"),
        };
        let ends = if self.ends.is_some() { "e" } else { "" };
        let pairs = if self.pairs { "p" } else { "" };
        format!("s{}{}{}{}", self.units, hoist, ends, pairs)
    }
}

/// Whether a grouped layer runs as a GEMM over gathered pixels (`Spec::gathered_gemm`): at a
/// stride (no Winograd or flat tiles there), with a reduction of at least 64 (input channels x
/// taps per group), where a GEMM tile runs near the FMA peak, and at least 128 output channels
/// per group. The gather copies each of the reduction's inputs once per output pixel, measured
/// at about 8 cycles per vector of pixels (AVX-512, Zen 4: loads, permute, masked ends, loop),
/// which the GEMM's `out / groups` FMAs per vector must outweigh 16 to 1. Measured (1 thread,
/// throwaway per-call timer, 10th percentiles, direct body -> gathered GEMM): ResNet-18's 3x3
/// stride 2, 64 -> 128 on 56 x 56, 1200 -> 1122 us (ORT about 1030); the ResNet stem, 7x7
/// stride 2, 3 -> 64 on 224 x 224, 2090-2200 -> 2300-2470: there the gather (147 inputs per
/// pixel against 64 outputs) costs more than the direct body loses.
pub fn gathers(spec: &Spec) -> bool {
    spec.family() == Family::Grouped
        && (spec.stride_h > 1 || spec.stride_w > 1)
        && spec.in_per_group() * spec.taps() >= 64
        && spec.out_per_group() >= 128
}

/// The plan of `spec` for one register class.
pub fn plan(spec: &Spec, class: RegClass) -> Plan {
    match spec.family() {
        Family::Pointwise => Plan::Gemm(plan_gemm(spec, class)),
        Family::Depthwise | Family::Grouped => {
            if let Some(w) = plan_wino(spec, class) {
                return Plan::Winograd(w);
            }
            if gathers(spec) {
                return Plan::Gemm(plan_gemm(&spec.gathered_gemm(), class));
            }
            let mut p = plan_direct(spec, class);
            p.wino = plan_wino_narrow(spec, class);
            if !p.flat {
                // Streaming tiles beat flat ones on the narrow planes of the layers both
                // compute (960 x 7 x 7 depthwise: 32.8 against 36.7 us on AVX-512).
                p.stream = plan_stream(spec, class).map(|mut st| {
                    // On 32 registers, a row plan whose FMAs broadcast every weight from memory
                    // loses to streams holding some in registers at every width measured (5x5
                    // on 240 channels, AVX-512, rows -> stream: 14x14 34.7 -> 28.2 us, 28x28
                    // 121 -> 103, 56x56 480 -> 402, 112x112 2136 -> 1696), so the layer
                    // streams on every plane. On 16 registers the same comparison is mixed
                    // (AVX2, stream against rows: 3x3 56x56 +5%, 112x112 -8%; 5x5 28x28 -4%,
                    // 56x56 +4%), and streams keep to narrow planes; so do stride-2 layers
                    // (measured on narrow planes only).
                    st.always =
                        class.regs >= 32 && spec.stride_h == 1 && !p.hoist_weights && st.hoist > 0;
                    st
                });
                if p.stream.is_none() {
                    p.narrow = plan_narrow(spec, class).map(Box::new);
                }
            }
            Plan::Direct(p)
        }
        Family::Separable => {
            let dw = spec.depthwise_stage();
            let mut d = plan_direct(&dw, class);
            if !d.flat {
                // Narrow planes stream, as the depthwise layer alone does (see
                // `StreamRows::prefer`): `sep_mnv1_256_256_28` on AVX-512 ran its depthwise
                // stage's row tiles slower than the layer's two stages run apart.
                // (The fused sweep has no channel-pair form.)
                d.stream = plan_stream(&dw, class).map(|st| StreamPlan { pairs: false, ..st });
            }
            Plan::Fused(d, plan_gemm(&spec.pointwise_stage(), class))
        }
    }
}

/// Largest vector tile of Winograd products: bounds the code of the remainder tiles.
const MAX_WINO_TVB: usize = 4;

/// Winograd F(2x2, 3x3) where it needs clearly fewer vector operations than direct tiles: 3x3
/// kernel, stride and dilation 1, `pad_left <= 2` (a tile's columns lie within one lane of its
/// even / odd pair).
///
/// Vector operations per 2 x 2 output tile (per lane) and group: direct tiles take `36 ci co`
/// FMAs and Winograd `16 ci co` for its products. Beside each FMA, a register tile loads its
/// input vectors and broadcasts its weights: on 16 registers (AVX2: a broadcast is its own
/// instruction) about 3/4 of an operation per FMA for both (a direct 2 x 4 tile loads 4 rows
/// and broadcasts 2 weights per 8 FMAs, a Winograd 4 x 2 tile 2 and 4); on 32 registers
/// (AVX-512 FMAs take a broadcast memory operand, NEON a lane of a register) only the loads,
/// about 1/8 (direct flat tiles of 8 channels, Winograd tiles of 8 channels). Winograd adds
/// about `136 ci` for the input transform (per input channel 4 rows of two loads, the even /
/// odd split and the two shifted columns, 32 additions, 16 stores) and `70 co` for the output
/// transform (per output channel 16 loads, 24 additions, bias, activation, interleave,
/// stores). Taken when direct needs at least 1.4 times as many: the model's estimate overshot
/// the measured gain by that much (AVX2, 32 groups, direct -> Winograd: 16 channels per group
/// on 14 x 14, model 1.54x, measured 469 -> 398 us, 1.18x; 8 on 28 x 28, model 1.17x, measured
/// 437 -> 682 us, 0.64x). On 16 registers, 16 channels per group and more take it.
///
/// On 32 registers the model would take it from 20 channels per group, but measured on AVX-512
/// this layout lost to direct tiles wherever planes are narrow, its lanes running over tiles
/// (minimum of interleaved runs, 1 thread, direct against Winograd): 17 groups of 24 channels
/// on 14 x 14 379 against 771 us, 38 of 24 on 7 x 7 261 against 679, 32 of 32 on 7 x 7 284
/// against 592, and only matched it on 28 x 28 (7 of 24: 514 against 520). There, groups of
/// whole 16-lane vectors of channels with `ci co >= 12 (ci + co)` (32 in and out and more) take
/// the layout with lanes over channels (the runtime's `winograd_channels`; `wc`), which fills
/// every lane however narrow the plane, at the price of transposing the input and output rows
/// (like the transforms, in proportion to `ci + co`, the products to `ci co`); all others take
/// direct tiles. Against direct tiles it gains on dense layers (64 channels on 56 x 56 1566 ->
/// 1178 us, 128 on 28 x 28 1786 -> 1273, 256 on 14 x 14 2106 -> 1591) and matches them on
/// narrow grouped ones (32 groups of 32 on 7 x 7 284 against 295, on 14 x 14 1046 against
/// 1220 at the minimum but 1439 against 1285 at the first quartile; 16 of 32 on 14 x 14 546
/// against 553; 512 dense on 7 x 7, where the weights come from DRAM, 4100 against 3918).
/// Groups of 16 (`ci co / (ci + co) = 8`) keep direct tiles, which the channel layout only
/// matched on 14 x 14 with `V` and `M` streaming through L2 (32 groups, 215 against 218 to
/// 286), and get the channel layout beside them for narrow planes ([`plan_wino_narrow`]), where
/// its chunks stay in L1 and it wins.
///
/// The product tile: `cob` (dividing the group's outputs) x `tvb` accumulators plus the `tvb`
/// loaded vectors, one broadcast weight and one spare within the register file (without the
/// spare, LLVM spilled an accumulator of a 4 x 3 tile on AVX2 and the tile ran at half speed),
/// the pair with the most FMAs per loaded or broadcast value, then the larger.
fn plan_wino(spec: &Spec, class: RegClass) -> Option<WinoPlan> {
    let geometry = wino_geometry(spec);
    let (ci, co) = (spec.in_per_group(), spec.out_per_group());
    if class.regs >= 32 {
        let channels = ci % 16 == 0 && co % 16 == 0 && 12 * (ci + co) <= ci * co;
        return (geometry && channels).then_some(WinoPlan {
            regs: class.regs,
            layout: WinoLayout::Channels { nt: 2 * FMA_CHAINS },
        });
    }
    // Operations per FMA on 16 registers, in eighths.
    let per_fma = 14;
    let direct = per_fma * 36 * ci * co;
    let wino = per_fma * 16 * ci * co + 8 * (136 * ci + 70 * co);
    if !geometry || 10 * direct < 14 * wino {
        return None;
    }
    let mut best: Option<(usize, usize)> = None;
    let score = |(c, t): (usize, usize)| (c * t * 1000 / (c + t), c * t);
    for cob in divisors_desc(co, co) {
        for tvb in 1..=MAX_WINO_TVB {
            if cob * tvb + tvb + 2 <= class.regs
                && best.is_none_or(|b| score((cob, tvb)) > score(b))
            {
                best = Some((cob, tvb));
            }
        }
    }
    let (cob, tvb) = best?;
    Some(WinoPlan {
        regs: class.regs,
        layout: WinoLayout::Tiles { cob, tvb },
    })
}

/// What both Winograd layouts compute: 3x3, stride and dilation 1, `pad_left <= 2` (a tile's
/// columns lie within one lane of its even / odd pair).
fn wino_geometry(spec: &Spec) -> bool {
    spec.kernel_h == 3
        && spec.kernel_w == 3
        && spec.stride_h == 1
        && spec.stride_w == 1
        && spec.dilation_h == 1
        && spec.dilation_w == 1
        && spec.pad_left <= 2
}

/// Winograd with lanes over channels beside the direct tiles of a layer [`plan_wino`] leaves to
/// them, for the run time to take on narrow planes (the runtime's `winograd_channels::prefer`:
/// where a chunk of whole tile rows stays in L1 with the group's transformed weights): on 32
/// registers, groups of whole 16-lane vectors of channels with `16 ci co` floats of weights in
/// at most 32 KiB (16 x 16 and 16 x 32). Figures in `prefer`.
fn plan_wino_narrow(spec: &Spec, class: RegClass) -> Option<WinoPlan> {
    let (ci, co) = (spec.in_per_group(), spec.out_per_group());
    let channels = ci % 16 == 0 && co % 16 == 0 && ci * co <= 512;
    (class.regs >= 32 && wino_geometry(spec) && channels).then_some(WinoPlan {
        regs: class.regs,
        layout: WinoLayout::Channels { nt: 2 * FMA_CHAINS },
    })
}

fn divisors_desc(n: usize, max: usize) -> Vec<usize> {
    (1..=n.min(max)).rev().filter(|d| n % d == 0).collect()
}

/// Input rows one `(ic, kx)` step of a tile of `rows` output rows reads.
pub fn rows_in(spec: &Spec, rows: usize) -> usize {
    (rows - 1) * spec.stride_h + (spec.kernel_h - 1) * spec.dilation_h + 1
}

/// Whether a layer with row tiles and streaming tiles also streams rows wider than
/// `StreamRows::prefer` takes them (see `StreamRows::prefer_wide`): a dilated kernel at stride
/// 1 whose row tiles read more than twice as many input rows as they compute output rows (3x3
/// at dilation 2, `t1r2`: 6 input rows per 2), while a stream reads each input row once per
/// vector of columns. Not for large kernels without dilation: 11x11 on 32 x 56 x 56, AVX2
/// (`t1r2`, a stream of one channel that hoists none of its 121 weights), 655 us on rows
/// against 756-840 streaming.
pub fn stream_wide(spec: &Spec, plan: &DirectPlan) -> bool {
    plan.stream.is_some()
        && spec.stride_h == 1
        && spec.dilation_h > 1
        && rows_in(spec, plan.rows) > 2 * plan.rows
}

/// Where each tap `kx` of a row read in place finds its columns, `(parity, shift)`.
///
/// Stride 2: the even (0) or odd (1) vector of the pair at `c0 = 2 ox0`, shifted by -1, 0 or 1
/// lanes (tap `kx` reads column `2 (ox0 + i) + kx - pad_left`); `None` when a tap lies further
/// than one lane from the pair. Stride 1: parity 0 and the column offset `kx dilation - pad_left`
/// from `c0 = ox0`, any size. `None` for other strides, and at stride 2 with dilation along W.
pub fn in_place_taps(spec: &Spec) -> Option<Vec<(usize, isize)>> {
    let d = |kx: usize| (kx * spec.dilation_w) as isize - spec.pad_left as isize;
    match (spec.stride_w, spec.dilation_w) {
        (1, _) => Some((0..spec.kernel_w).map(|kx| (0, d(kx))).collect()),
        (2, 1) => (0..spec.kernel_w)
            .map(|kx| {
                let shift = d(kx).div_euclid(2);
                (-1..=1)
                    .contains(&shift)
                    .then_some((d(kx).rem_euclid(2) as usize, shift))
            })
            .collect(),
        _ => None,
    }
}

/// Vectors one input row of an in-place tile loads (per input channel): at stride 2 the pair; at
/// stride 1 the row's vector and its left and right neighbours when a tap reaches into them.
fn in_place_loads(spec: &Spec, taps_at: &[(usize, isize)]) -> usize {
    if spec.stride_w == 2 {
        return 2;
    }
    1 + usize::from(taps_at.iter().any(|t| t.1 < 0)) + usize::from(taps_at.iter().any(|t| t.1 > 0))
}

/// Vector registers an in-place tile holds besides accumulators and weights: the loaded vectors
/// of every input row (LLVM issues all of a tile's loads and permutes before its FMAs; with more
/// than the register file holds, it spills them) and one shifted vector.
///
/// Counting only the `kh` rows a rolling window needs instead lets 3x3 depthwise tiles on 32
/// registers grow from 4 to 8 rows (fewer loads and permutes per output); measured slower
/// (AVX-512, 10th percentile of 15 interleaved rounds, r4 -> r8: 144 x 56 x 56 168 -> 199 us,
/// `sep_mnv2_144_24_56` 397 -> 432, `sep_mnv1_256_256_28` 916 -> 957, 32 x 112 x 112 level).
fn in_place_live(spec: &Spec, loads: usize, rows: usize) -> usize {
    loads * rows_in(spec, rows) * spec.in_per_group() + 1
}

/// Whether an in-place plan must hold the weights in registers beside its tiles: everywhere
/// but at stride 2 on 16 registers, where AVX2's FMAs read a splatted weight from memory as an
/// operand and the tiles take inner forms of plain loads (see the generated `s2_inner` tiles).
/// There no tile could hold 9 weights beside one input row's pair and splits: 3x3 stride 2
/// went through a band copy, `mnv2_dw96_112_s2` 336 us (`t1r2h`) against 205-214 in place
/// (throwaway timer, AVX2, Zen 3; 2, 3 and 4 rows per tile within that noise, 1 row 240), 167
/// with the inner tiles in carry mode.
/// Such plans need two output rows per tile, so that each input row's loads and splits serve
/// more than one output row: 5x5 stride 2 fits one, and in place ran slower than its band
/// (`t1r1hi` against `t1r4`, 144 x 56 x 56: 397 against 285 us).
fn in_place_weights(spec: &Spec, class: RegClass) -> bool {
    !(class.regs == 16 && spec.stride_w == 2)
}

/// The in-place plan (see [`in_place_taps`]) when one fits the register file with the weights
/// held in registers: per input row of a tile, the loads of [`in_place_loads`], the stride-2
/// pair's two permutes and one permute per shifted tap replace the band's copy (a load and a
/// store of every input float) and its loads. Rows and channels per tile minimise the loads and
/// permutes per output vector.
///
/// One vector of columns per tile. Two adjacent vectors per tile at stride 1 (per input row the
/// vector before, the two and the one after: 4 loads for 2 outputs where two tiles make 6, and
/// the bounds checks and column masks shared; 3x3, 4 rows, AVX-512, no spills) measured mixed
/// in three sittings of 20-30 interleaved rounds, medians: 32 x 112 x 112 2-8% faster, 144 x 56
/// x 56 2-11% slower, `sep_mnv2_144_24_56` level to 5% slower (10th percentiles within 6% either
/// way).
///
/// Where a 56-wide tile's time goes (throwaway kernel of the interior tiles alone, 3x3 on 16
/// channels of 56 x 56, AVX-512, ns per output vector): 3.2 with the planes in L2, 2.4 in L1,
/// 1.65 in L1 when each input row is one load instead of three (the FMA bound is 1.3). Tiles of
/// 8 rows or of two vectors ran within 10% of 4-row tiles in both, tiles with two or three
/// accumulators per output row (shorter FMA chains) within 7% in L2, so the loads and the L2
/// set the pace, not the chains. Prefetching the rows the next row tile adds (every line, one
/// or two tiles ahead) made the stride-1 rows slower (32 x 112 x 112 +5%, 144 x 56 x 56
/// +4-10%, `sep_mnv2_144_24_56` mixed) and the stride-2 row `mnv2_dw96_112_s2` 2-7% faster in
/// a throwaway timer but level beside XNNPACK in one sitting (`with_ours.py`, 25 rounds, 10th
/// percentile: 205.4 -> 208.1 us on 1 thread, 97.0 -> 98.6 on 2); not taken.
fn plan_in_place(spec: &Spec, class: RegClass) -> Option<DirectPlan> {
    let taps_at = in_place_taps(spec)?;
    let (cin, taps) = (spec.in_per_group(), spec.taps());
    let loads = in_place_loads(spec, &taps_at);
    let mut shifted: Vec<_> = taps_at.iter().filter(|(_, s)| *s != 0).collect();
    shifted.sort();
    shifted.dedup();
    // Loads, the stride-2 pair's two permutes, one permute per shifted vector.
    let permutes = if spec.stride_w == 2 { 2 } else { 0 };
    let per_row = (loads + permutes + shifted.len()) * cin;
    let mut best: Option<(f64, DirectPlan)> = None;
    for t in divisors_desc(spec.out_per_group(), MAX_OC_TILE) {
        for rows in 1..=MAX_ROW_TILE {
            let accs = t * rows;
            // Stride 2 on 16 registers (AVX2): the weights stay splatted in memory, each FMA
            // reading its weight as an operand (a load beside the FMA; see `in_place_weights`).
            let wregs = match in_place_weights(spec, class) {
                true => t * cin * taps,
                false => 0,
            };
            if t * rows * cin * taps > MAX_UNROLLED_FMAS
                || accs + in_place_live(spec, loads, rows) + wregs > class.regs
                || (wregs == 0 && rows < 2)
            {
                continue;
            }
            let cost = (rows_in(spec, rows) * per_row) as f64 / accs as f64 + 2.0 / accs as f64;
            if best.as_ref().is_none_or(|(c, _)| cost < *c - 1e-9) {
                best = Some((
                    cost,
                    DirectPlan {
                        regs: class.regs,
                        oc_tile: t,
                        rows,
                        rem_rows: Vec::new(),
                        hoist_weights: true,
                        unroll: Unroll::Full,
                        in_place: true,
                        flat: false,
                        narrow: None,
                        stream: None,
                        wino: None,
                    },
                ));
            }
        }
    }
    best.map(|(_, p)| p)
}

/// Whether flat tiles compute `spec`: stride 1 and output rows as wide as input rows, so every
/// tap reads the flattened input plane at one offset (see `conv_runtime::__private::Flat`).
fn flat_geometry(spec: &Spec) -> bool {
    spec.stride_h == 1
        && spec.stride_w == 1
        && spec.pad_left + spec.pad_right == spec.dilation_w * (spec.kernel_w - 1)
}

/// Whether a flat tile of `t` output channels x `rows` vectors fits the registers: its
/// accumulators, its input vectors, a mask per vector (vector registers on NEON) and one
/// broadcast.
///
/// On AVX-512 the masks live in `k` registers, which would admit `t4r6` beside `t4r5` for 4
/// channels per group; `t4r6` ran level (`resnext_g32_128_56` 220-234 against 219-225 us,
/// throwaway timer, same sitting), so the count stays common to both 32-register ISAs.
#[allow(clippy::int_plus_one)]
fn flat_fits(t: usize, rows: usize, class: RegClass) -> bool {
    t * rows + 2 * rows + 1 <= class.regs
}

/// Input channels per step of a flat tile's unmasked body (AVX-512 only, masks in `k`
/// registers; see `FlatSrc::unmasked`), the step's channels unrolled: the largest divisor of
/// the group's input channels up to 4, when the group has at most 8 input channels and the
/// registers beside the tile's `t x rows` accumulators hold one input channel's `rows` loads
/// and `t` broadcasts; else 1 (a loop over the channels).
///
/// Unrolled, LLVM keeps the next channel's loads and broadcasts in flight beside the current
/// one's; where they do not fit it spills accumulators. Measured on AVX-512 (throwaway timer,
/// interleaved runs, us, rolled -> unrolled): `t4r5` tiles, 4 channels per group, 32 groups of
/// 4 on 56 x 56 242-247 -> 219-226 and 28 x 28 56-58 -> 52, 64 groups of 4 on 56 x 56 500-517 ->
/// 456-468; `t3r6` (3 channels, 4 groups on 56 x 56) 22.7 -> 20.6-21.2; 2 channels (32 groups
/// of 2 on 56 x 56, `t2r8`) 84-90 -> 80-83. `t8r3` tiles (8 free registers, 11 values per
/// channel) spilled and lost: 3 -> 16 channels on 56 x 56 22.5-23.0 -> 24.8-27.1, 32 groups of 8
/// in steps of 4 737-781 -> 721-791 (two channels a step: level). With 8 channels per group
/// `t4r5` gained (32 groups of 8 -> 4 on 56 x 56 427-445 -> 399-422, 28 x 28 101-106 -> 90-97),
/// with 16 it lost (32 groups of 16 -> 4 on 56 x 56 832-882 -> 962-1018, 28 x 28 mixed), the
/// same step body in four passes instead of two; not understood, so groups of more than 8
/// input channels keep the loop.
pub fn flat_ic_step(spec: &Spec, regs: usize, t: usize, rows: usize) -> usize {
    let ci = spec.in_per_group();
    if ci > 8 || regs < t * rows + rows + t {
        return 1;
    }
    (1..=ci.min(4)).rev().find(|d| ci % d == 0).unwrap_or(1)
}

/// The flat plan, when one keeps the FMAs fed. A tile is `oc_tile` output channels x `rows`
/// vectors of consecutive output pixels; per tap and input channel it makes `rows` unaligned
/// masked loads (each straddles two cache lines: two L1 accesses) and `oc_tile` weight
/// broadcasts for `oc_tile * rows` FMAs. Taken when that is at most one L1 access per FMA (two
/// load ports against at most two FMAs a cycle), which needs several output channels per
/// group: never for depthwise layers of multiplier 1. Registers: see [`flat_fits`].
///
/// Taps and input channels are loops (`Unroll::TileOnly`): unrolled, LLVM issued the loads of
/// later taps early and spilled accumulators (~20% of the 4-channel grouped row's samples on
/// stack moves; 312 -> 275 us with the loops, the 8- and 16-channel rows unchanged). Within a
/// tap, the AVX-512 body steps over a few input channels unrolled ([`flat_ic_step`]).
/// Flat tiles fill every lane of a plane however wide its rows and need no band, where row
/// tiles waste the lanes past a row's end (2 of 16 on a 14-wide plane).
///
/// Only for the 32-register class: on 16 registers (AVX2) each mask is a vector register built
/// by three instructions per tap and vector. Measured there against the band tiles (t4r2,
/// throwaway loop, min of 5): 362 vs 330 us on the 4-channel grouped row, 373 vs 378 on the
/// 8-channel one, 344 vs 413 on the 16-channel one; mixed, so that class keeps row tiles.
fn plan_flat(spec: &Spec, class: RegClass) -> Option<DirectPlan> {
    if !flat_geometry(spec) || class.regs < 32 {
        return None;
    }
    let mut best: Option<(f64, DirectPlan)> = None;
    for t in divisors_desc(spec.out_per_group(), MAX_OC_TILE) {
        for rows in 1..=MAX_ROW_TILE {
            if !flat_fits(t, rows, class) {
                continue;
            }
            let accesses = (2 * rows + t) as f64 / (t * rows) as f64;
            if accesses > 1.0 {
                continue;
            }
            let cost = accesses + 2.0 / (t * rows) as f64;
            if best.as_ref().is_none_or(|(c, _)| cost < *c - 1e-9) {
                best = Some((
                    cost,
                    DirectPlan {
                        regs: class.regs,
                        oc_tile: t,
                        rows,
                        rem_rows: (1..rows).rev().collect(),
                        hoist_weights: false,
                        unroll: Unroll::TileOnly,
                        in_place: false,
                        flat: true,
                        narrow: None,
                        stream: None,
                        wino: None,
                    },
                ));
            }
        }
    }
    best.map(|(_, p)| p)
}

/// The flat plan for narrow planes, when `plan_flat` declined the layer (a depthwise layer: one
/// output channel per input channel, so each unaligned tap load feeds one FMA). Row tiles fill
/// `wo` of every `ceil(wo / lanes) lanes` lanes: 7 of 16 on a 7-wide plane. Flat tiles fill all
/// but the plane's last vector, at about 1.5x the cost per FMA (a load straddling two lines and
/// a mask per FMA against the row tiles' shared, shifted loads: 38 against 25 us on 384 x 14 x 14
/// in a throwaway kernel, where the lanes used are nearly equal), so the layer takes them when
/// they use over 1.5x the row tiles' lanes (`Flat::prefer`; 30.2 against 40.1 us on 960 x 7 x 7).
/// `oc_tile` output channels x as many vectors as fit beside them, their loads and one broadcast.
/// Same register class restriction as [`plan_flat`].
fn plan_narrow(spec: &Spec, class: RegClass) -> Option<DirectPlan> {
    if !flat_geometry(spec) || class.regs < 32 {
        return None;
    }
    let t = divisors_desc(spec.out_per_group(), MAX_OC_TILE)[0];
    let rows = (1..=MAX_ROW_TILE).rev().find(|&r| flat_fits(t, r, class))?;
    // Taps unrolled while the body stays within the budget: each tap feeds few FMAs here.
    let unroll = if t * rows * spec.taps() <= MAX_UNROLLED_FMAS {
        Unroll::TapsOnly
    } else {
        Unroll::TileOnly
    };
    // Remainder tiles in powers of two: with the taps unrolled, every size below `rows` would
    // be eight tile bodies of up to 8 x 25 FMAs each (compile time, and CI's test build).
    let rem_rows = pow2_below(rows);
    Some(DirectPlan {
        regs: class.regs,
        oc_tile: t,
        rows,
        rem_rows,
        hoist_weights: false,
        unroll,
        in_place: false,
        flat: true,
        narrow: None,
        stream: None,
        wino: None,
    })
}

/// The streaming plan of a depthwise-family layer (one input channel per group) at the same
/// stride along H and W, its rows read in place (see [`in_place_taps`]: stride 1 or 2). A tile
/// loads each input row once per vector of columns, as an infinitely tall row tile would, and
/// sets up once per column vector of a plane; it keeps `units x out_per_group x slots`
/// accumulators (`slots`: the output rows one input row feeds, `(kh - 1) dilation / stride + 1`)
/// and the row's vectors, and as many of each unit's weights as fit beside them.
///
/// `units` ranges up to the count whose accumulators reach [`FMA_CHAINS`] (`kh` per output
/// channel); which one depends on what a weight left in memory costs. On AVX2 (16 registers)
/// it is a broadcast instruction of its own per FMA, and the count that hoists the largest share
/// of the weights wins, the most such units after it (3x3 on 384 x 14 x 14, 1 / 2 / 3 units
/// hoisting 8 / 2 / 0 of 9 weights: 25.9 / 30.7 / 28.9 us; 47.4 against 53.7 for 3 units in an
/// earlier session). With 32 registers the FMA takes it as a broadcast memory operand
/// (AVX-512's embedded broadcast), and at stride 1 more units win unless fewer hoist all the
/// weights: an output row's accumulator takes `kh x kw` dependent FMAs, and one unit's rows
/// alone leave the FMA pipes idle while the out-of-order window waits on them.
///
/// AVX-512, quiet minutes of the host, minimum of 6 alternating 0.1 s rounds, 1 / 2 units: 5x5
/// on 240 x 14 x 14 20.8 / 18.1 us, 672 x 7 x 7 34.1 / 29.1, 120 x 28 x 28 38.6 / 33.7; 7x7 on
/// 384 x 14 x 14 58.2 / 54.5, 768 x 7 x 7 67.2 / 57.2; where the layer streams on wide planes
/// too (see `plan`), 7x7 on 384 x 28 x 28 215 / 201, 5x5 on 240 x 56 x 56 386 / 375, but 120 x
/// 112 x 112 747 / 781 (two planes' column passes outgrow L1; left). 3x3 on 384 x 14 x 14,
/// where 1 and 2 units hoist all 9 weights: 15.2 / 12.9, and 3 units hoisting 6: 13.9. In the
/// host's slow phases (another tenant on the core, presumably) the gap shrinks: 5x5 on 240 x 14
/// x 14 21.3-21.8 / 20.2-21.6. At stride 2 the hoisting rule stays (5x5 on 672 x 28 x 28, 1 / 2
/// units over 3 runs: 89-94 / 95-101 us; 672 x 14 x 14 44-51 / 45-49). NEON, in the
/// 32-register class, loads such a weight with a replicating load of its own, as AVX2 does; not
/// measured.
///
/// More chains per weight register by splitting a unit's span into parts streamed side by side
/// (sharing the unit's weights) loses: every part fills and drains its own ring, and on short
/// spans most steps are then guarded ones (14 rows in 3 parts: 4 of 7). Measured on AVX-512,
/// 10th percentile of 20 interleaved rounds, 1 / 2 / 3 parts: 3x3 on 384 x 14 x 14 19.5 / 24.3
/// / 34.2 us, 5x5 on 240 x 14 x 14 40.6 / 48.6 / 51.3.
fn plan_stream(spec: &Spec, class: RegClass) -> Option<StreamPlan> {
    let taps_at = in_place_taps(spec)?;
    if spec.in_per_group() != 1 || spec.stride_h != spec.stride_w {
        return None;
    }
    let (m, kh) = (spec.out_per_group(), spec.kernel_h);
    let slots = (kh - 1) * spec.dilation_h / spec.stride_h + 1;
    let weights = m * spec.taps();
    // The row's loaded vectors, a shifted vector (at stride 2 the pair's two halves and two
    // shifted vectors) and a broadcast weight.
    let temps = in_place_loads(spec, &taps_at) + 2 + 2 * usize::from(spec.stride_w == 2);
    // Weights of each unit that fit in registers beside `units` units' accumulators.
    let hoist = |units: usize| {
        Some((class.regs.checked_sub(units * m * slots + temps)? / units).min(weights))
    };
    // Two step bodies (all slots, and slots guarded at the span's ends) within the budget.
    let body_ok = |units: usize| 2 * units * weights <= MAX_UNROLLED_FMAS;
    let (units, hoist) = (1..=FMA_CHAINS.div_ceil(m * kh))
        .filter(|&u| body_ok(u))
        .filter_map(|u| Some((u, hoist(u)?)))
        // The largest share hoisted (`h / weights`, all units alike), then the most units; on
        // 32 registers at stride 1 all weights hoisted or not, then the most units.
        .max_by_key(|&(u, h)| {
            if class.regs >= 32 && spec.stride_h == 1 {
                (usize::from(h == weights), u)
            } else {
                (h, u)
            }
        })?;
    Some(StreamPlan {
        units,
        slots,
        weights,
        hoist,
        always: false,
        ends: stream_ends(spec, slots, units),
        // Measured up to 5x5 (see `conv_runtime`'s `pairs.rs`); `dw_pairs` writes out its
        // loops up to 8 slots, 8 kernel rows and columns and stride 8.
        pairs: class.regs >= 32
            && m == 1
            && spec.taps() <= 25
            && spec.kernel_h.max(spec.kernel_w) <= 8
            && slots <= 8
            && spec.stride_h <= 8,
    })
}

fn plan_direct(spec: &Spec, class: RegClass) -> DirectPlan {
    if let Some(plan) = plan_flat(spec, class) {
        return plan;
    }
    let mut plan = plan_in_place(spec, class).unwrap_or_else(|| plan_band(spec, class));
    // Remainder tiles: every size below the main tile, so the rows of a band are whole tiles
    // and at most one smaller tile (14 rows: 8 + 6, not 8 + 4 + 2), when their bodies together
    // stay within twice the unrolling budget; else powers of two, any remainder a short sum.
    let fmas_per_row = plan.oc_tile * spec.in_per_group() * spec.taps();
    let all_sizes = match plan.unroll {
        Unroll::Full => plan.rows * (plan.rows - 1) / 2 * fmas_per_row <= 2 * MAX_UNROLLED_FMAS,
        _ => false,
    };
    plan.rem_rows = if all_sizes {
        (1..plan.rows).rev().collect()
    } else {
        pow2_below(plan.rows)
    };
    plan
}

/// The powers of two below `rows`, largest first: remainder tiles any smaller count is a short
/// sum of.
fn pow2_below(rows: usize) -> Vec<usize> {
    let mut pow2: Vec<usize> = (0..).map(|e| 1 << e).take_while(|&r| r < rows).collect();
    pow2.reverse();
    pow2
}

fn plan_band(spec: &Spec, class: RegClass) -> DirectPlan {
    let (cin, taps, kw) = (spec.in_per_group(), spec.taps(), spec.kernel_w);
    let mut best: Option<(f64, DirectPlan)> = None;
    for t in divisors_desc(spec.out_per_group(), MAX_OC_TILE) {
        for rows in 1..=MAX_ROW_TILE {
            let body = t * rows * cin * taps;
            let unroll = if body <= MAX_UNROLLED_FMAS {
                Unroll::Full
            } else if t * rows * taps <= MAX_UNROLLED_FMAS {
                Unroll::TapsOnly
            } else {
                Unroll::TileOnly
            };
            let accs = t * rows;
            // Live input vectors: with row sharing every input row of one (ic, kx) step;
            // otherwise one at a time.
            let live_in = match unroll {
                Unroll::TileOnly => 1,
                _ => rows_in(spec, rows),
            };
            let hoist_regs = t * cin * taps;
            for hoist in [true, false] {
                if hoist && (unroll != Unroll::Full || accs + live_in + hoist_regs > class.regs) {
                    continue;
                }
                if !hoist && accs + live_in + 1 > class.regs {
                    continue;
                }
                // Memory operations per output vector (the FMAs per output are fixed).
                let loads = match unroll {
                    Unroll::TileOnly => (cin * taps * rows) as f64 / accs as f64,
                    _ => (cin * kw * rows_in(spec, rows)) as f64 / accs as f64,
                };
                let splats = if hoist {
                    0.0
                } else {
                    (cin * taps) as f64 / rows as f64
                };
                // Per-tile overhead (stores, index math, loop) amortised over the tile.
                let cost = loads + splats + 2.0 / accs as f64;
                if best.as_ref().is_none_or(|(c, _)| cost < *c - 1e-9) {
                    best = Some((
                        cost,
                        DirectPlan {
                            regs: class.regs,
                            oc_tile: t,
                            rows,
                            rem_rows: Vec::new(),
                            hoist_weights: hoist,
                            unroll,
                            in_place: false,
                            flat: false,
                            narrow: None,
                            stream: None,
                            wino: None,
                        },
                    ));
                }
            }
        }
    }
    best.map(|(_, p)| p).unwrap_or(DirectPlan {
        regs: class.regs,
        oc_tile: 1,
        rows: 1,
        rem_rows: Vec::new(),
        hoist_weights: false,
        unroll: Unroll::TileOnly,
        in_place: false,
        flat: false,
        narrow: None,
        stream: None,
        wino: None,
    })
}

// The register budgets read as `accumulators + inputs + splats <= registers`, with two splat
// registers: LLVM loads the next weight while the FMAs of the last one still read theirs. With
// one (a 4 x 3 tile on 16 registers) it spilled an accumulator to the stack on every step of the
// reduction (read in the AVX2 assembly of mnv1_pw256_256_28: a store, a reload and 4 register
// moves per 12 FMAs).
#[allow(clippy::int_plus_one)]
fn plan_gemm(spec: &Spec, class: RegClass) -> GemmPlan {
    let (cin, cout) = (spec.in_per_group(), spec.out_per_group());
    let mut best: Option<(f64, GemmPlan)> = None;
    // Whether L1 holds the panel of the widest tile's pixels: the same for every candidate, so
    // that narrow tiles do not look cheaper for panels that only they keep in L1 (two-vector
    // tiles on 128 -> 128, 56 x 56, whole reductions: `t10v2` 528-533 us, `t12v2` 499, `t8v2`
    // 542-546, against `t8v3`'s 463-465).
    let panel = (cin * MAX_GEMM_VECS * vector_bytes(class)).min(block_bytes(class));
    let panel_load = if panel <= GEMM_PANEL_BYTES {
        1.0
    } else {
        GEMM_L2_LOAD
    };
    // Tiles of half a fused tail's vector where the plane's tail pixels can ride in them (see
    // `FUSED_TAIL_OC`): 32 registers, whole vectors of output channels, the panel from L2, and
    // a reduction the widest such tile runs whole (partial sums of blocks would need the
    // tail's too).
    let fuse_vecs = class.regs.saturating_sub(4) / (FUSED_TAIL_OC / 2 + 1);
    let fuse = class.regs >= 32
        && cout % FUSED_TAIL_OC == 0
        && panel_load > 1.0
        && cin * fuse_vecs * vector_bytes(class) <= block_bytes(class);
    for vecs in 1..=MAX_GEMM_VECS {
        for t in 1..=cout.min(MAX_OC_TILE * 2) {
            // Accumulators, the tile's input vectors, two splatted weights (fused tails: their
            // accumulator and pixel too).
            if t * vecs + vecs + 2 + if fuse { 2 } else { 0 } > class.regs
                || (fuse && t * 2 != FUSED_TAIL_OC)
            {
                continue;
            }
            let tail = cout % t;
            // Loads + splats per FMA over the whole group, the tail tile included: per input
            // channel each tile loads `vecs` panel vectors and splats `t` weights for `t x
            // vecs` FMAs. A panel that outgrows L1 is read from L2 by every tile, and its loads
            // count `GEMM_L2_LOAD` each (see there).
            let tiles = cout.div_ceil(t) as f64;
            let cost = (tiles * panel_load * vecs as f64 + cout as f64) / (cout * vecs) as f64;
            if best.as_ref().is_none_or(|(c, _)| cost < *c - 1e-9) {
                // Unrolling the reduction only pays while the extra input vectors it keeps
                // live still fit beside the accumulators; otherwise LLVM hoists the loads of
                // the unrolled steps and spills accumulators.
                let ic_unroll = divisors_desc(cin, 8)
                    .into_iter()
                    .find(|u| t * vecs + u * vecs + 2 <= class.regs)
                    .unwrap_or(1);
                let (col_pixels, col_vecs) = col_tile(class);
                let kc = gemm_block(cin, vecs, ic_unroll, class);
                best = Some((
                    cost,
                    GemmPlan {
                        regs: class.regs,
                        oc_tile: t,
                        oc_tail: tail,
                        vecs,
                        ic_unroll,
                        kc,
                        blocks: cin / kc,
                        col_pixels,
                        col_vecs,
                        fused_tail: fuse && kc == cin,
                    },
                ));
            }
        }
    }
    let (col_pixels, col_vecs) = col_tile(class);
    best.map(|(_, p)| p).unwrap_or(GemmPlan {
        regs: class.regs,
        oc_tile: 1,
        oc_tail: 0,
        vecs: 1,
        ic_unroll: 1,
        kc: cin,
        blocks: 1,
        col_pixels,
        col_vecs,
        fused_tail: false,
    })
}

/// Pixel vectors per GEMM tile, at most.
const MAX_GEMM_VECS: usize = 4;

/// Bytes of input vectors (`cin x vecs` vectors) that stay in L1 while every output-channel
/// tile of a pixel step reads them: half of the smallest L1 data cache among the targets (32
/// KiB: Zen 3 and 4, Apple and Neoverse cores have 64 or more, Intel since Ice Lake 48),
/// leaving the rest for the tile's weights and output rows and for the next step's panel.
const GEMM_PANEL_BYTES: usize = 16 * 1024;

/// What a panel vector read from L2 costs in [`plan_gemm`]'s count, in L1 loads: a larger
/// panel is read again by every output-channel tile, so wider tiles (fewer tiles, fewer panel
/// reads) pay there even at more splats per FMA. Measured on AVX-512 (throwaway loop, p10 of
/// 21, whole reductions): `t8v3` against `t6v4` 384 -> 64 on 14 x 14 41.5 against 44.0 us, 512
/// -> 512 on 14 x 14 474-478 against 500-506, 1024 -> 1024 on 7 x 7 611-615 against 666-675,
/// 960 -> 160 on 7 x 7 69-70 against 77-79; with panels in L1 (32 -> 192, 64 -> 384) `t6v4`
/// held level or ahead. At 3, `t8v3` (or `t9v3`, measured level with it) wins where the panel
/// outgrows L1; at 2 the two tie. `t14v2` (28 accumulators, which this count ranks below
/// `t9v3` for its splats) measured mixed in the layer (prof timer, 3 alternating runs, minimum
/// us): 256 -> 256 on 28 x 28 606-610 against 623-646, 384 -> 64 on 14 x 14 61-63 against
/// 60-61, 144 -> 24 on 56 x 56 level; not taken. What bounds these tiles is the core: a
/// throwaway of the bare `t8v3` loop with panel and weights in L1 (128 -> 168 on 192 pixels)
/// ran at 83-85% of the register-only FMA loop measured beside it (`t14v2` 80-89%, every other
/// shape 75-84%), and the layers run at 80-88% of it (mnv1_pw256_256_28 and mnv2_pw384_64_14,
/// the FMA loop timed between rounds).
const GEMM_L2_LOAD: f64 = 3.0;

/// Bytes of input vectors one block of the reduction may span on 32 registers: a quarter of
/// the smallest L2 among the targets (1 MiB: Zen 4, Neoverse N1; Intel since Ice Lake 1.25-2
/// MiB), so that the block's panel stays in L2 while every output-channel tile reads it.
const GEMM_BLOCK_BYTES: usize = 256 * 1024;

/// The block budget of `class`: [`GEMM_BLOCK_BYTES`] on 32 registers, L1's
/// [`GEMM_PANEL_BYTES`] on 16, where whole reductions read from L2 measured slower (AVX2, the
/// timer of [`GEMM_L2_LOAD`], `t6v2`: 320 -> 1280 on 7 x 7 460 us blocked against 491-502
/// whole; 384 -> 64 on 14 x 14 level).
fn block_bytes(class: RegClass) -> usize {
    if class.regs >= 32 {
        GEMM_BLOCK_BYTES
    } else {
        GEMM_PANEL_BYTES
    }
}

/// Bytes of a vector of the class's widest ISA: 64 on 32 registers, 32 on 16.
fn vector_bytes(class: RegClass) -> usize {
    if class.regs >= 32 {
        64
    } else {
        32
    }
}

/// Input channels per cache block of a GEMM of `cin` input channels and tiles of `vecs`
/// vectors: all of them when their panel fits [`block_bytes`], else the largest divisor
/// of `cin` that is a multiple of `unroll` and fits. Blocks under 16 channels would cost more
/// in reloaded partial sums than they save; then the reduction stays whole.
///
/// On 32 registers, blocking to L1 ([`GEMM_PANEL_BYTES`]: 64 channels of 4 zmm vectors), where every
/// tile after a block's first reloads and stores its partial sums, lost to the whole reduction
/// read from L2 (AVX-512, the same timer, before -> after: `t6v4` 384 -> 64 on 14 x 14 44.4 ->
/// 44.0 us, 256 -> 256 on 28 x 28 447 -> 438, 1024 -> 1024 on 7 x 7 852 -> 670; `t8v3`
/// 384 -> 64 42.6 -> 41.5 at 128-channel blocks, 256 -> 256 438 -> 434).
fn gemm_block(cin: usize, vecs: usize, unroll: usize, class: RegClass) -> usize {
    let vbytes = vector_bytes(class);
    let fits = |kc: usize| kc * vecs * vbytes <= block_bytes(class);
    if fits(cin) {
        return cin;
    }
    (16..cin)
        .rev()
        .find(|&kc| cin % kc == 0 && kc % unroll == 0 && fits(kc))
        .unwrap_or(cin)
}

/// The channel-vector tail tile: 4 pixels (a plane's tail is under a vector, mostly a few
/// pixels) x as many output-channel vectors as keep `accumulators + weight vectors + splat`
/// within a quarter of the registers over the accumulators (4 on 32 registers, 2 on 16): enough
/// independent FMA chains to cover the FMA latency, and a count that divides the channel vectors
/// of every ISA of the class (channels are padded to 16).
#[allow(clippy::int_plus_one)]
fn col_tile(class: RegClass) -> (usize, usize) {
    let pixels = 4;
    let vecs = class.regs / 8;
    debug_assert!(pixels * vecs + vecs + 1 <= class.regs);
    (pixels, vecs)
}
