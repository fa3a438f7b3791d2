//! Pointwise GEMMs on AMX tiles ([`Isa::Amx`](crate::Isa::Amx)): f32 products as sums of bf16
//! tile products, f32-accurate.
//!
//! AMX (Intel Sapphire Rapids and later) multiplies 16 x 32 bf16 by 32 x 16 bf16 tiles into a
//! 16 x 16 f32 accumulator in one instruction (`tdpbf16ps`), 16 times the multiply-adds of one
//! AVX-512 FMA per cycle. A bf16 holds 8 significant bits, an f32 24, so each operand is split
//! into three bf16 pieces, `x = x1 + x2 + x3` (each the rounded rest of the one before: `x1` the
//! nearest bf16 to `x`, `|x2| <= 2^-9 |x|`, `|x3| <= 2^-18 |x|`; the three hold all 24 bits), and
//! `w x` is the sum of the six piece products `w1 x1 + w1 x2 + w2 x1 + w2 x2 + w1 x3 + w3 x1`.
//! Every piece product is exact in f32 and accumulated in f32; the three dropped (`w2 x3`,
//! `w3 x2`, `w3 x3`) are each below `2^-27 |w x|`. So one output's error is the f32 rounding of
//! its sum plus `2^-26` of its absolute sum, well inside the golden tolerance
//! (`2^-24 S min(K + 2, 4 sqrt K)`): 0.01-0.11 of it in the tests (the AVX-512 bodies
//! 0.02-0.14), where ONNX Runtime and PyTorch reach 0.4. The pieces sum to `x` exactly (checked
//! on 2 x 10^8 random floats of the range below; `x3` has at most 8 significant bits). Six
//! tile products take `6 x 16` cycles per 8192 multiply-adds, against 256 FMA cycles on
//! AVX-512: 2.7x on paper.
//!
//! AMX treats bf16 denormals as zero and flushes denormal sums, and a piece split of an
//! infinity or NaN is NaN. So a layer's weights are checked at `new` and each chunk of input as
//! it is split: every non-zero magnitude must lie in `[2^-40, 2^40]` (piece products then stay
//! normal and sums finite). A pixel where any input channel holds anything else is computed
//! again by plain f32 FMAs, so special values and extreme magnitudes come out as on every
//! other ISA. That is decided per pixel, so every output bit is the same however a pass is
//! split over threads (each pixel's tile sums run in the same order wherever its chunk starts).
//!
//! Layout: the weights of each group are packed at `new` into A tiles (piece, 16 rows, block
//! of 32 input channels), 16 consecutive 64-byte lines each, zero-padded to whole blocks and
//! whole pairs of 16 rows. Per chunk of 32 pixels the input is split into B tiles (pairs of
//! input channels x 16 pixels, the two bf16 of a pair interleaved per pixel as `tdpbf16ps`
//! reads them) in a per-thread double buffer; each 32 x 32 output block is four accumulator
//! tiles (2 x 16 output channels x 2 x 16 pixels), started from bias tiles, over every block
//! of 32 input channels and the six piece products, then stored straight into the output
//! planes (whole blocks of layers without activation) or through a scratch block with the
//! activation. The next chunk is split on the vector ports while the tile unit multiplies this
//! one, a share after every four products.
//!
//! Measured and kept in mind (throwaway timers, this VM): with every operand in L1 a block of
//! products runs at the tile unit's 16 cycles per `tdpbf16ps`; one accumulator store per 192
//! products (a block's end) costs about 25% (the unit drains), so blocks run over the whole
//! reduction and the gate below keeps small reductions off tiles; tile loads from L2 take 2.5x
//! as long as from L1 (6.5 against 2.6 ns per 1 KiB), which long reductions pay; software
//! prefetch of the next block's tiles or of the next chunk's input was slower or level.

use crate::activation::Activation;
use crate::planes::PlanesMut;

/// Pixels per chunk: two B tiles of 16 columns.
pub const CHUNK: usize = 32;

/// Output channels per tile pair: where a pass cut by output channels cuts.
pub const OUT_TILE: usize = 32;

/// One tile row: 32 bf16, 64 bytes, a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 32]);

const ZERO: Line = Line([0; 32]);

/// Weights and bias of a pointwise layer packed for [`run`]; made by [`AmxGemm::new`] when the
/// machine has AMX and the weights may be split.
pub struct AmxGemm {
    groups: usize,
    /// Output channels per group.
    m: usize,
    /// Input channels per group.
    k: usize,
    /// Blocks of 32 input channels per group.
    kb: usize,
    /// Rows of packed weights per group and piece: `m` rounded up to whole tile pairs (32).
    rows: usize,
    /// A tiles, `(group, piece, row tile, kb)`, each 16 consecutive lines (one per row).
    a: Vec<Line>,
    /// Per group and row, the bias repeated over 16 lanes: the accumulators' start.
    bias_rows: Vec<[f32; 16]>,
    /// The weights as given, `(out, in / groups)`, for chunks tiles cannot split.
    w: Vec<f32>,
    act: Activation,
}

/// Whether every non-zero magnitude of `x` lies in `[2^-40, 2^40]`, where its pieces and their
/// products are normal and finite.
#[inline]
fn splittable(x: f32) -> bool {
    let a = x.to_bits() & 0x7fff_ffff;
    a == 0 || (LO_BITS..=HI_BITS).contains(&a)
}

/// `2^-40` and the largest f32 below `2^41`, as bits.
const LO_BITS: u32 = (127 - 40) << 23;
const HI_BITS: u32 = ((127 + 40) << 23) | 0x007f_ffff;

/// `x` rounded to a bf16 (half away from zero in magnitude), as f32 bits.
#[inline]
fn round_bf16(bits: u32) -> u32 {
    bits.wrapping_add(0x8000) & 0xffff_0000
}

/// The three bf16 pieces of `x` (see the module doc), as f32 bits with zero low halves.
#[inline]
fn pieces(x: f32) -> [u32; 3] {
    let hi = round_bf16(x.to_bits());
    let r = x - f32::from_bits(hi);
    let mid = round_bf16(r.to_bits());
    let r2 = r - f32::from_bits(mid);
    [hi, mid, r2.to_bits()]
}

impl AmxGemm {
    /// Packs PyTorch-layout pointwise weights `(out, in / groups)` and the stored bias `(out)`;
    /// `None` when this machine has no AMX, when the layer is too small for tiles to pay
    /// ([`worth`]) or a weight cannot be split.
    pub fn new(
        weight: &[f32],
        bias: &[f32],
        groups: usize,
        out: usize,
        inp: usize,
        act: Activation,
    ) -> Option<Self> {
        if !available() || groups == 0 || out % groups != 0 || inp % groups != 0 {
            return None;
        }
        let (m, k) = (out / groups, inp / groups);
        if !worth(m, k) || weight.len() != out * k || bias.len() != out {
            return None;
        }
        if !weight.iter().all(|&w| splittable(w)) {
            return None;
        }
        let kb = k.div_ceil(32);
        let rows = m.div_ceil(32) * 32;
        let mut a = vec![ZERO; groups * 3 * rows * kb];
        let mut bias_rows = vec![[0.0; 16]; groups * rows];
        for g in 0..groups {
            for r in 0..m {
                bias_rows[g * rows + r] = [bias[g * m + r]; 16];
                for c in 0..k {
                    let p = pieces(weight[(g * m + r) * k + c]);
                    for (i, bits) in p.into_iter().enumerate() {
                        let tile = ((g * 3 + i) * (rows / 16) + r / 16) * kb + c / 32;
                        a[tile * 16 + r % 16].0[c % 32] = (bits >> 16) as u16;
                    }
                }
            }
        }
        Some(AmxGemm {
            groups,
            m,
            k,
            kb,
            rows,
            a,
            bias_rows,
            w: weight.to_vec(),
            act,
        })
    }
}

/// Whether a group of `m` output and `k` input channels runs faster on tiles than in AVX-512
/// registers. Each input float is split once (about one vector operation per float, which
/// overlaps the tile products only partly) and feeds `m` outputs, and each 32 x 32 output
/// block's store drains the tile unit, so few channels leave the split and the drains
/// dominant. Measured (1 thread, medians, AVX-512 -> AMX): 24 out of 144 on 56 x 56 148 ->
/// 226 us; 32 out (of 96, 256, 384, 512, 1024 on 56 x 56 down to 7 x 7) 1.15-1.84x slower on
/// tiles, 48 out (of 192 on 28 x 28, 384 on 14 x 14) 1.05-1.12x slower; 64 out of 64, 96, 128,
/// 384 on 56 x 56 to 14 x 14 1.12-1.28x faster (of 512 on 7 x 7, two chunks, 1.08x slower);
/// 64 out of 32 on 17 x 19 9.8 -> 10.6.
pub const fn worth(m: usize, k: usize) -> bool {
    m >= 64 && k >= 64
}

/// Output channels per group from which a pass of one image on tiles, cut in parts, is cut by
/// output channels rather than by pixels ([`cut_by_pixels`]).
pub const CUT_BY_CHANNELS_FROM: usize = 192;

/// Whether a pass of one unit (image and group) with `m` output channels and `span` pixels,
/// cut in parts on tiles, is cut by pixels; otherwise it is cut by output channels whatever
/// the span. Cut by output channels, every part splits the whole input, about 0.75 cycles per
/// input float on the vector ports against `m / 85` for the tile products, so the duplicated
/// split weighs `64 / m` of the products a part saves. Cut by pixels, every part streams all
/// the weights and its chunks round up to 16 pixels. Measured on 2 threads (medians, pinned
/// pool, pixels against channels): 384 -> 64 on 14 x 14 42 against 47 us, 576 -> 96 on 14 x 14
/// 66 against 77, 576 -> 96 on 10 x 10 39 against 50, 960 -> 160 on 7 x 7 52 against 56; 256 ->
/// 256 on 14 x 14 79 against 61, on 28 x 28 242-244 against 205-217 (one thread 399-431), 512
/// -> 512 on 7 x 7 81 against 66, 320 -> 1280 on 7 x 7 154 against 104. A span under two
/// 16-pixel steps cannot be cut by pixels.
pub const fn cut_by_pixels(m: usize, span: usize) -> bool {
    m < CUT_BY_CHANNELS_FROM && span >= 32
}

/// Whether this machine and OS let this process use AMX-BF16 tiles (asked once, on first use).
pub fn available() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(x86::request)
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    false
}

/// The part of a pointwise pass [`run`] computes: of each unit `u` in `units` (image
/// `u / groups`, group `u % groups`), output channels `oc` of the group at pixels `span`.
/// Input plane `c` of image `b` starts at float `(b in + c) plane` of `input`; output plane
/// `(u - units.start) oc.len() + o - oc.start` holds channel `o` of unit `u` from pixel
/// `span.start` on.
pub struct Pass<'a> {
    pub input: &'a [f32],
    pub plane: usize,
    pub units: core::ops::Range<usize>,
    pub span: core::ops::Range<usize>,
    pub oc: core::ops::Range<usize>,
}

/// Computes `pass` into `output` on AMX tiles; false (and nothing written) when this machine
/// has no AMX.
pub fn run(g: &AmxGemm, pass: Pass<'_>, output: &mut PlanesMut<'_>) -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if available() && !pass.span.is_empty() && !pass.units.is_empty() && !pass.oc.is_empty() {
        // SAFETY: `available` checked AMX-TILE/BF16 and the OS's permission for this process.
        return unsafe { x86::run(g, pass, output) };
    }
    let _ = (g, pass, output);
    false
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x86 {
    use super::*;
    use core::arch::asm;
    use core::arch::x86_64::{__cpuid_count, __m512, __m512i, _CMP_GT_OQ, _CMP_LT_OQ};
    use core::cell::Cell;
    use pulp::x86::V4;

    /// Checks CPUID for AMX-TILE and AMX-BF16 (and pulp's V4), then asks Linux for the tile
    /// state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), without which the first
    /// tile instruction faults.
    pub fn request() -> bool {
        if !pulp::x86::V4::is_available() {
            return false;
        }
        // Leaf 7 exists on every CPU with AVX-512 (checked above).
        let leaf = __cpuid_count(7, 0);
        let (bf16, tile) = (leaf.edx & (1 << 22) != 0, leaf.edx & (1 << 24) != 0);
        if !(bf16 && tile) {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: the `arch_prctl` system call (158) with ARCH_REQ_XCOMP_PERM only widens the
        // set of register state this process may use; it reads and writes no memory. The
        // kernel clobbers rcx and r11.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") 158i64 => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }

    /// The tile configuration: palette 1, tiles 0-7 each 16 rows of 64 bytes.
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    const CONFIG: Config = {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64;
            c[48 + t] = 16;
            t += 1;
        }
        Config(c)
    };

    thread_local! {
        /// The B tiles of one chunk, reused across calls.
        static B: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
    }

    /// Four accumulator tiles of f32.
    #[repr(C, align(64))]
    struct Acc([[f32; 256]; 4]);

    macro_rules! load {
        ($t:literal, $p:expr, $stride:expr) => {
            asm!(
                concat!("tileloadd tmm", $t, ", [{b} + {s}*1]"),
                b = in(reg) $p,
                s = in(reg) $stride,
                options(nostack, readonly, preserves_flags),
            )
        };
    }
    macro_rules! dp {
        ($c:literal, $a:literal, $b:literal) => {
            asm!(
                concat!("tdpbf16ps tmm", $c, ", tmm", $a, ", tmm", $b),
                options(nostack, nomem, preserves_flags),
            )
        };
    }
    macro_rules! store {
        ($t:literal, $p:expr) => {
            asm!(
                concat!("tilestored [{b} + {s}*1], tmm", $t),
                b = in(reg) $p,
                s = in(reg) 64usize,
                options(nostack, preserves_flags),
            )
        };
    }

    /// Splits one vector of floats into its three pieces (f32 bits, low halves zero) and
    /// returns whether any lane lies outside [`splittable`]'s range.
    #[inline(always)]
    fn split(v4: V4, x: __m512) -> ([__m512i; 3], u16) {
        let f = v4.avx512f;
        let bits = f._mm512_castps_si512(x);
        let abs = f._mm512_and_si512(bits, f._mm512_set1_epi32(0x7fff_ffff));
        let off = f._mm512_sub_epi32(abs, f._mm512_set1_epi32(LO_BITS as i32));
        let span = f._mm512_set1_epi32((HI_BITS - LO_BITS) as i32);
        let far = f._mm512_cmpgt_epu32_mask(off, span);
        let bad = f._mm512_mask_test_epi32_mask(far, abs, abs);
        let half = f._mm512_set1_epi32(0x8000);
        let top = f._mm512_set1_epi32(0xffff_0000u32 as i32);
        let hi = f._mm512_and_si512(f._mm512_add_epi32(bits, half), top);
        let r = f._mm512_sub_ps(x, f._mm512_castsi512_ps(hi));
        let mid = f._mm512_and_si512(f._mm512_add_epi32(f._mm512_castps_si512(r), half), top);
        let r2 = f._mm512_sub_ps(r, f._mm512_castsi512_ps(mid));
        // `r2` has at most 8 significant bits: a bf16 already, low half zero.
        ([hi, mid, f._mm512_castps_si512(r2)], bad)
    }

    /// One B tile row: the bf16 pieces of channel pair `(a, b)` interleaved per pixel.
    #[inline(always)]
    fn pair(v4: V4, a: __m512i, b: __m512i) -> __m512i {
        v4.avx512f
            ._mm512_or_si512(b, v4.avx512f._mm512_srli_epi32::<16>(a))
    }

    /// Where [`fill`] reads: `k` input planes from float `base` of `input`, `plane` floats
    /// apart, pixels `p..p + cols` (`cols <= CHUNK`) of each.
    #[derive(Clone, Copy)]
    struct Src {
        base: usize,
        p: usize,
        cols: usize,
    }

    /// Writes channel pairs `qs` of the B tiles of `src` into `b` (`6 kb 16` lines: piece,
    /// half, block, pair); pixels past `cols` and channels past `k` are zero, and the second
    /// half's lines are left as they are when `cols <= 16`. Returns, per half of 16 pixels, the
    /// lanes (pixels) where a value lies outside the splittable range.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn fill(
        v4: V4,
        b: &mut [Line],
        input: &[f32],
        plane: usize,
        k: usize,
        kb: usize,
        src: Src,
        qs: core::ops::Range<usize>,
    ) -> [u16; 2] {
        let pairs = kb * 16;
        let Src { base, p, cols } = src;
        assert!(cols <= CHUNK && k <= 2 * pairs && qs.end <= pairs && b.len() >= 6 * pairs);
        // Every read below is `input[base + c * plane + p + x]` with `c < k`, `x < cols`.
        assert!(k == 0 || base + (k - 1) * plane + p + cols <= input.len());
        let (n0, n1) = (cols.min(16), cols.saturating_sub(16));
        let (m0, m1) = (((1u32 << n0) - 1) as u16, ((1u32 << n1) - 1) as u16);
        let at0 = input.as_ptr().wrapping_add(base + p);
        let row = |c: usize| -> [__m512; 2] {
            if c >= k {
                return [v4.avx512f._mm512_setzero_ps(); 2];
            }
            let at = at0.wrapping_add(c * plane);
            // SAFETY: lanes `x < cols` of row `c < k` are in `input` (asserted above); the
            // others are masked off and not read.
            unsafe {
                [
                    v4.avx512f._mm512_maskz_loadu_ps(m0, at),
                    v4.avx512f._mm512_maskz_loadu_ps(m1, at.wrapping_add(16)),
                ]
            }
        };
        let mut bad = [0u16; 2];
        let dst = b.as_mut_ptr();
        // A chunk of at most 16 pixels has no second half: its products skip those tiles.
        let halves = if cols > 16 { 2 } else { 1 };
        for q in qs {
            let (x0, x1) = (row(2 * q), row(2 * q + 1));
            for h in 0..halves {
                let (p0, b0) = split(v4, x0[h]);
                let (p1, b1) = split(v4, x1[h]);
                bad[h] |= b0 | b1;
                for i in 0..3 {
                    // SAFETY: line `(i 2 + h) pairs + q < 6 pairs <= b.len()`, one whole vector.
                    unsafe {
                        let line = dst.add((i * 2 + h) * pairs + q);
                        v4.avx512f
                            ._mm512_storeu_si512(line.cast(), pair(v4, p0[i], p1[i]));
                    }
                }
            }
        }
        bad
    }

    /// `v` clamped to `lo..=hi` (the layer's activation); comparisons false for NaN keep it (see
    /// `Activation`).
    #[inline(always)]
    fn clamp(v4: V4, v: __m512, lo: __m512, hi: __m512) -> __m512 {
        let f = v4.avx512f;
        let v = f._mm512_mask_mov_ps(v, f._mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, lo), lo);
        f._mm512_mask_mov_ps(v, f._mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, hi), hi)
    }

    /// Writes the rows of accumulator block `c` (rows `r..r + 16` of the group, planes `first..`
    /// of `out`) below `end`, `n` floats from column `col`, with the layer's activation.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn partial(
        v4: V4,
        c: &[f32; 256],
        g: &AmxGemm,
        first: usize,
        r: usize,
        end: usize,
        col: usize,
        n: usize,
        out: &mut PlanesMut<'_>,
    ) {
        if n == 0 {
            return;
        }
        let (lo, hi) = g.act.bounds();
        let (lo, hi) = (v4.avx512f._mm512_set1_ps(lo), v4.avx512f._mm512_set1_ps(hi));
        let mask = ((1u32 << n) - 1) as u16;
        for row in 0..16.min(end.saturating_sub(r)) {
            // SAFETY: `c` holds 16 rows of 16 floats.
            let v = unsafe { v4.avx512f._mm512_loadu_ps(c[row * 16..].as_ptr()) };
            let v = clamp(v4, v, lo, hi);
            let d = &mut out.plane(first + row)[col..col + n];
            // SAFETY: lanes past `n` are masked off; `d` holds `n` floats.
            unsafe { v4.avx512f._mm512_mask_storeu_ps(d.as_mut_ptr(), mask, v) };
        }
    }

    /// Output channels `oc` of the pixels `lanes` (per half) of chunk `src` (group `grp`, planes
    /// from `first` of `out`, floats from `col`) by plain f32 FMAs in input-channel order, for
    /// pixels where a value tiles cannot split: infinities and NaN propagate as in the
    /// reference, tiny and huge magnitudes keep f32 accuracy. Decided per pixel, so the same
    /// whatever the chunks. A pass whose input is all such values runs about half as fast as
    /// on AVX-512 (one weight broadcast and one input load per FMA).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn fma_chunk(
        v4: V4,
        g: &AmxGemm,
        input: &[f32],
        plane: usize,
        src: Src,
        grp: usize,
        oc: &core::ops::Range<usize>,
        first: usize,
        col: usize,
        lanes: [u16; 2],
        out: &mut PlanesMut<'_>,
    ) {
        let f = v4.avx512f;
        let (lo, hi) = g.act.bounds();
        let (lo, hi) = (f._mm512_set1_ps(lo), f._mm512_set1_ps(hi));
        for (h, lanes) in lanes.into_iter().enumerate() {
            let n = src.cols.saturating_sub(16 * h).min(16);
            let mask = lanes & ((1u32 << n) - 1) as u16;
            if mask == 0 {
                continue;
            }
            let at = src.base + src.p + 16 * h;
            for r in oc.clone() {
                let w = &g.w[(grp * g.m + r) * g.k..][..g.k];
                let mut acc = f._mm512_set1_ps(g.bias_rows[grp * g.rows + r][0]);
                for (c, &wc) in w.iter().enumerate() {
                    let x = &input[at + c * plane..][..n];
                    // SAFETY: lanes past `n` are masked off; `x` holds `n` floats.
                    let x = unsafe { f._mm512_maskz_loadu_ps(mask, x.as_ptr()) };
                    acc = f._mm512_fmadd_ps(f._mm512_set1_ps(wc), x, acc);
                }
                let v = clamp(v4, acc, lo, hi);
                let d = &mut out.plane(first + r - oc.start)[col + 16 * h..][..n];
                // SAFETY: lanes past `n` are masked off; `d` holds `n` floats.
                unsafe { f._mm512_mask_storeu_ps(d.as_mut_ptr(), mask, v) };
            }
        }
    }

    /// [`super::run`] on AMX.
    ///
    /// The work is a sequence of items, (chunk of 32 pixels, unit) in that order; the B tiles of
    /// the next item are split while the tiles of this one multiply (`tdpbf16ps` runs on the
    /// tile unit, the split on the vector ports, so the two overlap), into the other half of a
    /// double buffer, a share of its channel pairs after each step of products.
    ///
    /// # Safety
    /// The CPU has AMX-TILE/BF16 and this process may use the tile state.
    pub unsafe fn run(g: &AmxGemm, pass: Pass<'_>, output: &mut PlanesMut<'_>) -> bool {
        let Some(v4) = V4::try_new() else {
            return false;
        };
        pulp::Simd::vectorize(
            v4,
            Body {
                v4,
                g,
                pass,
                output,
            },
        )
    }

    /// [`run`]'s arguments, run as a pulp body so that the AVX-512 helpers inline with their
    /// target features.
    struct Body<'a, 'p, 'o> {
        v4: V4,
        g: &'a AmxGemm,
        pass: Pass<'a>,
        output: &'p mut PlanesMut<'o>,
    }

    impl pulp::WithSimd for Body<'_, '_, '_> {
        type Output = bool;

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> bool {
            let Body {
                v4,
                g,
                pass,
                output,
            } = self;
            // SAFETY: `run`'s caller guarantees the tile state.
            unsafe { tiles(v4, g, pass, output) };
            true
        }
    }

    /// [`run`]'s body.
    ///
    /// # Safety
    /// As [`run`].
    #[inline(always)]
    unsafe fn tiles(v4: V4, g: &AmxGemm, pass: Pass<'_>, output: &mut PlanesMut<'_>) {
        let Pass {
            input,
            plane,
            units,
            span,
            oc,
        } = pass;
        let (k, kb, rows) = (g.k, g.kb, g.rows);
        let lines = 6 * kb * 16;
        let mut buf = B.with(Cell::take);
        if buf.len() < 2 * lines {
            buf.resize(2 * lines, ZERO);
        }
        let (mut cur, mut next) = buf[..2 * lines].split_at_mut(lines);
        let mut acc = Acc([[0.0; 256]; 4]);
        // Chunks start where the output's rows start on a cache line (a first, shorter chunk
        // before that): a tile store whose 64-byte rows straddle two lines is slow. A 256 ->
        // 256 separable layer on 28 x 28 split in two by rows, the second part's rows 16 bytes
        // past a line: 2 threads 363 -> 248 us. Planes that are not a whole number of lines
        // apart have no common boundary, and the extra chunk costs a pass over the weights
        // (384 -> 64 on 14 x 14: 50 -> 51 us, 2 threads 39 -> 44).
        let head = output.line_offset().map_or(0, |o| (16 - o) % 16);
        let head = if head < span.len() { head } else { 0 };
        let nu = units.len();
        let chunks = usize::from(head > 0) + (span.len() - head).div_ceil(CHUNK);
        let items = chunks * nu;
        let item = |i: usize| {
            let c = i / nu;
            let (p, cols) = match (head, c) {
                (0, _) => (span.start + c * CHUNK, CHUNK),
                (_, 0) => (span.start, head),
                _ => (span.start + head + (c - 1) * CHUNK, CHUNK),
            };
            let u = units.start + i % nu;
            let (img, grp) = (u / g.groups, u % g.groups);
            let src = Src {
                base: (img * g.groups + grp) * k * plane,
                p,
                cols: cols.min(span.end - p),
            };
            (u, grp, src)
        };
        // Output-channel cuts fall on tile pairs (`OUT_TILE`).
        assert!(
            oc.start % OUT_TILE == 0,
            "output channels cut off a tile pair"
        );
        let subs = oc.len().div_ceil(32) * kb * 6;
        let pairs = kb * 16;
        // SAFETY: `CONFIG` is a valid palette-1 configuration, 64 aligned bytes.
        unsafe { asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly)) };
        let mut bad = fill(v4, cur, input, plane, k, kb, item(0).2, 0..pairs);
        for i in 0..items {
            let (u, grp, src) = item(i);
            let ahead = (i + 1 < items).then(|| item(i + 1).2);
            let first = (u - units.start) * oc.len();
            let col = src.p - span.start;
            let mut bad_next = [0u16; 2];
            let mut sub = 0;
            let wa = &g.a[grp * 3 * rows * kb..(grp + 1) * 3 * rows * kb];
            let bias = &g.bias_rows[grp * rows..(grp + 1) * rows];
            for r0 in oc.clone().step_by(32) {
                // A tile of piece `i`, rows `r..r + 16`, block `j`; B tile of piece `i`,
                // pixels `16 h..`, block `j`; accumulator start of rows `r..r + 16`.
                let at = |i: usize, r: usize, j: usize| {
                    &wa[((i * rows + r) / 16 * kb + j) * 16] as *const Line
                };
                let bt =
                    |i: usize, h: usize, j: usize| &cur[((i * 2 + h) * kb + j) * 16] as *const Line;
                let ct = |r: usize| &bias[r] as *const [f32; 16];
                debug_assert!(r0 % 16 == 0 && r0 + 32 <= rows);
                // SAFETY: every tile load reads 16 consecutive 64-byte lines: A tiles from `wa`
                // (tile `(i, r / 16, j)` of its `3 rows / 16 x kb`, as `r + 16 <= rows`), B tiles
                // from `cur`, which holds `6 kb 16` lines, accumulator starts from `bias` rows
                // `r..r + 16`, `r + 16 <= rows`.
                unsafe {
                    load!(0, ct(r0), 64usize);
                    load!(1, ct(r0), 64usize);
                    load!(2, ct(r0 + 16), 64usize);
                    load!(3, ct(r0 + 16), 64usize);
                }
                // A chunk of at most 16 pixels (a span's last, or a head) needs only the
                // first half's products.
                let wide = src.cols > 16;
                for j in 0..kb {
                    // SAFETY: as above.
                    unsafe {
                        // Products (piece of A, piece of B) in the order that loads fewest
                        // tiles (10 A and 6 B per block; A-major took 6 and 12, 5-10% slower).
                        let mut last = (9, 9);
                        for (i, bp) in [(0, 0), (1, 0), (2, 0), (1, 1), (0, 1), (0, 2)] {
                            if i != last.0 {
                                load!(4, at(i, r0, j), 64usize);
                                load!(5, at(i, r0 + 16, j), 64usize);
                            }
                            if bp != last.1 {
                                load!(6, bt(bp, 0, j), 64usize);
                                if wide {
                                    load!(7, bt(bp, 1, j), 64usize);
                                }
                            }
                            last = (i, bp);
                            dp!(0, 4, 6);
                            dp!(2, 5, 6);
                            if wide {
                                dp!(1, 4, 7);
                                dp!(3, 5, 7);
                            }
                            // A share of the next item's split after every four products:
                            // in the reorder window beside them (a share per block of 24,
                            // or all at once, left the split after the products).
                            if let Some(src) = ahead {
                                let qs = pairs * sub / subs..pairs * (sub + 1) / subs;
                                sub += 1;
                                let b = fill(v4, next, input, plane, k, kb, src, qs);
                                bad_next = [bad_next[0] | b[0], bad_next[1] | b[1]];
                            }
                        }
                    }
                }
                // Accumulator `(t, h)`: rows `r0 + 16 t..`, pixels `p + 16 h..`. Whole blocks
                // of a layer without activation go straight to the output planes; the others
                // through `acc`, with the activation, lane by lane.
                let first = first + r0 - oc.start;
                let cols = src.cols;
                let direct = |t: usize, h: usize, out: &mut PlanesMut<'_>| {
                    let whole = g.act.is_none() && r0 + 16 * t + 16 <= oc.end;
                    whole
                        .then(|| out.block16(first + 16 * t, col + 16 * h))
                        .flatten()
                };
                macro_rules! out {
                    ($c:literal, $t:literal, $h:literal) => {
                        match direct($t, $h, output) {
                            // SAFETY: the 16 rows of 16 floats at `ptr`, `stride` floats apart,
                            // lie in 16 output planes (`block16`).
                            Some((ptr, stride)) => unsafe {
                                asm!(
                                    concat!("tilestored [{b} + {s}*1], tmm", $c),
                                    b = in(reg) ptr,
                                    s = in(reg) stride * 4,
                                    options(nostack, preserves_flags),
                                )
                            },
                            None => {
                                // SAFETY: `acc` tile `$c` is 1 KiB.
                                unsafe { store!($c, acc.0[$c].as_mut_ptr()) };
                                let n = cols.saturating_sub(16 * $h).min(16);
                                let (f, r) = (first + 16 * $t, r0 + 16 * $t);
                                partial(v4, &acc.0[$c], g, f, r, oc.end, col + 16 * $h, n, output);
                            }
                        }
                    };
                }
                out!(0, 0, 0);
                out!(2, 1, 0);
                if wide {
                    out!(1, 0, 1);
                    out!(3, 1, 1);
                }
            }
            if bad != [0, 0] {
                // Pixels where a value tiles cannot split: again by plain FMAs.
                fma_chunk(v4, g, input, plane, src, grp, &oc, first, col, bad, output);
            }
            bad = bad_next;
            core::mem::swap(&mut cur, &mut next);
        }
        // SAFETY: releases the tile state this function configured.
        unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) };
        B.with(|c| c.set(buf));
    }
}
