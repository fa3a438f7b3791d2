//! A quick side-by-side of every bench row, printed as a markdown table: median time of the
//! generated and generic kernels, the naive reference, speedup and FLOP rate.
//!
//! ```text
//! cargo run --release -p conv-benches --bin summary            # ~10 s
//! cargo run --release -p conv-benches --bin summary -- 51      # 51 samples per kernel
//! CONV_BENCH_ISA=avx2 cargo run --release -p conv-benches --bin summary
//! ```
//!
//! Criterion (`cargo bench -p conv-benches`) is the authoritative measurement; this is a quick
//! look with plain `Instant` timing. Per row: one untimed call of each kernel, then a number of
//! samples (21 unless given as the first argument), each timing enough back-to-back calls to
//! last at least 2 ms, generated and generic samples interleaved so that a slow phase of the
//! machine hits both; the figure is the median per-call time. The naive reference is timed over
//! 3 calls (median). Batch 1, one thread.
//!
//! The peak column uses the measured single-core f32 FMA peak of the machine the numbers were
//! taken on (`shared/PERF-NOTES.md`: 176 GFLOP/s with AVX-512, 95 with AVX2); set
//! `CONV_PEAK_GFLOPS` for another machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use conv_benches::{bench_isa, ROWS};
use conv_runtime::Isa;

/// Shortest timed sample.
const MIN_SAMPLE: Duration = Duration::from_millis(2);

/// Single-core f32 FMA peak in GFLOP/s, per instruction set, of the reference machine.
fn peak_gflops(isa: Isa) -> Option<f64> {
    if let Ok(v) = std::env::var("CONV_PEAK_GFLOPS") {
        return v.parse().ok();
    }
    match isa {
        Isa::Avx512 => Some(176.0),
        Isa::Avx2 => Some(95.0),
        _ => None,
    }
}

/// Times `reps` back-to-back calls of `f`; returns seconds per call.
fn sample(reps: u32, f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed().as_secs_f64() / f64::from(reps)
}

/// Calls per sample so that a sample lasts at least [`MIN_SAMPLE`].
fn reps_for(f: &mut dyn FnMut()) -> u32 {
    let once = sample(1, f).max(1e-9);
    (MIN_SAMPLE.as_secs_f64() / once).ceil().clamp(1.0, 1e6) as u32
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let samples: usize = match std::env::args().nth(1) {
        Some(s) => s.parse().expect("usage: summary [samples]"),
        None => 21,
    };
    let isa = bench_isa();
    let peak = peak_gflops(isa);
    let peak_head = peak.map_or("% of peak".to_string(), |p| format!("% of {p:.0} GFLOP/s"));

    println!(
        "ISA {}, batch 1, 1 thread, median of {samples} samples (generated, generic) / 3 calls (naive)\n",
        isa.name()
    );
    println!(
        "| row | generated us | generic us | naive us | speedup vs generic | GFLOP/s | {peak_head} |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");

    let mut kernels = Vec::new();
    for row in ROWS {
        let mut data = row.data();
        let mut generic_out = data.output.clone();
        let (n, h, w) = (row.n, row.h, row.w);
        let generated = row.generated(&data);
        let generic = row.generic(&data);
        let input = &data.input;

        let output = &mut data.output;
        let mut run_generated = || {
            generated
                .forward_on(isa, black_box(input), n, h, w, black_box(&mut *output))
                .unwrap()
        };
        let mut run_generic = || {
            generic
                .forward_on(isa, black_box(input), n, h, w, black_box(&mut generic_out))
                .unwrap()
        };

        let reps_generated = reps_for(&mut run_generated);
        let reps_generic = reps_for(&mut run_generic);
        let mut t_generated = Vec::with_capacity(samples);
        let mut t_generic = Vec::with_capacity(samples);
        for _ in 0..samples {
            t_generated.push(sample(reps_generated, &mut run_generated));
            t_generic.push(sample(reps_generic, &mut run_generic));
        }
        let (t_generated, t_generic) = (median(t_generated), median(t_generic));

        let mut naive = Vec::new();
        let mut t_naive = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            naive = row.naive(black_box(&data));
            t_naive.push(start.elapsed().as_secs_f64());
        }
        let t_naive = median(t_naive);

        // A sanity check, not a test (conv-tests does that): NaN counts as a mismatch.
        let close = |a: f32, b: f32| (a - b).abs() < 1e-3;
        let mismatches = data
            .output
            .iter()
            .zip(&naive)
            .filter(|(a, b)| !close(**a, **b));
        let mismatches = mismatches.count();
        if mismatches > 0 {
            eprintln!(
                "warning: {}: {mismatches} outputs of the generated kernel differ from the naive reference by 1e-3 or more",
                row.name
            );
        }

        let gflops = row.flops() as f64 / t_generated / 1e9;
        let of_peak = peak.map_or("-".to_string(), |p| format!("{:.0}%", 100.0 * gflops / p));
        println!(
            "| {} | {:.1} | {:.1} | {:.0} | {:.2}x | {:.1} | {} |",
            row.name,
            t_generated * 1e6,
            t_generic * 1e6,
            t_naive * 1e6,
            t_generic / t_generated,
            gflops,
            of_peak,
        );
        kernels.push((row.name, row.kernel));
    }

    println!("\nGenerated kernels:\n");
    for (name, kernel) in kernels {
        println!("- {name}: `{kernel}`");
    }
}
