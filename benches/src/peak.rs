//! The machine's single-core f32 FMA peak, the denominator of every "% of peak" figure.

use std::hint::black_box;
use std::time::Instant;

use conv_runtime::Isa;
use pulp::{Simd, WithSimd};

/// Environment variable that replaces the measured peak (GFLOP/s).
pub const PEAK_ENV: &str = "CONV_PEAK_GFLOPS";

/// Single-core f32 FMA peak in GFLOP/s of `isa`: `CONV_PEAK_GFLOPS`, or measured.
pub fn peak_gflops(isa: Isa) -> f64 {
    if let Some(v) = std::env::var(PEAK_ENV).ok().and_then(|v| v.parse().ok()) {
        return v;
    }
    let start = Instant::now();
    let iters = 4_000_000u64;
    let checksum = isa.run(FmaLoop { iters }).expect("instruction set");
    let secs = start.elapsed().as_secs_f64();
    black_box(checksum);
    (iters * ACCS as u64 * isa.lanes() as u64 * 2) as f64 / secs / 1e9
}

/// Independent FMA chains of the peak loop: enough to cover the FMA latency on every ISA (4
/// cycles x 2 FMAs per cycle needs 8), and few enough to stay in 16 registers with the two
/// operands (24 chains spilled on AVX2 and measured 59 GFLOP/s on a Zen 3 that runs 1x1 layers
/// at 87).
const ACCS: usize = 12;

/// `acc[k] = x * y + acc[k]` for every `k`, `iters` times, all in registers.
struct FmaLoop {
    iters: u64,
}

impl WithSimd for FmaLoop {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        let mut acc = [simd.splat_f32s(0.0); ACCS];
        let (x, y) = (simd.splat_f32s(1.000_1), simd.splat_f32s(0.999_9));
        for _ in 0..self.iters {
            for a in &mut acc {
                *a = simd.mul_add_e_f32s(x, y, *a);
            }
        }
        let mut sum = simd.splat_f32s(0.0);
        for a in acc {
            sum = simd.add_f32s(sum, a);
        }
        simd.reduce_sum_f32s(sum)
    }
}
