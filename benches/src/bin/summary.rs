//! A quick side-by-side of every bench row, printed as a markdown table: median time of the
//! generated kernel, of the unfused pair (the two generated stages of a `separable` row run one
//! after the other), of the generic kernels and the naive reference, speedups and FLOP rate.
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
//! 3 calls (median). Batch 1, one thread; the 2-thread column is `forward_par` on a 2-thread
//! rayon pool, its samples timed on a worker of the pool and interleaved with the others.
//!
//! With the feature `rust-peers`, two more columns: the fastest of the Rust peers (candle, tract,
//! burn-ndarray; see `conv_benches::rust_peers`), each checked against the reference and then
//! timed the same way after the row's other kernels (not interleaved with them), and the
//! generated kernel's speedup over it; a second table lists every peer's median.
//!
//! The peak column divides by this machine's f32 FMA peak, measured at start-up with a
//! register-only FMA loop on the same instruction set (24 independent accumulators, ~0.2 s), or
//! `CONV_PEAK_GFLOPS` when set.

use std::hint::black_box;
use std::time::{Duration, Instant};

use conv_benches::{bench_isa, peak::peak_gflops, Data, Row, ROWS};

/// Shortest timed sample.
const MIN_SAMPLE: Duration = Duration::from_millis(2);

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

    println!(
        "ISA {}, batch 1, 1 thread (2 threads: `forward_par` on a 2-thread rayon pool), median of \
         {samples} samples (generated, unfused, generic) / 3 calls (naive); one-core FMA peak \
         {peak:.0} GFLOP/s (measured)\n",
        isa.name()
    );
    println!(
        "| row | generated us | 2 threads us | 1 -> 2 | unfused us | generic us | naive us | vs unfused | vs generic | GFLOP/s | % of peak |{}",
        PEER_COLUMNS.0
    );
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        PEER_COLUMNS.1
    );
    let pool = conv_runtime::parallel::pinned_pool(2).expect("rayon pool");

    let mut kernels = Vec::new();
    let mut peer_rows = Vec::new();
    for row in ROWS {
        let mut data = row.data();
        let mut generic_out = data.output.clone();
        let mut unfused_out = data.output.clone();
        let mut par_out = data.output.clone();
        let (n, h, w) = (row.n, row.h, row.w);
        let generated = row.generated(&data);
        let generic = row.generic(&data);
        let unfused = row.unfused(&data);
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

        let mut run_unfused = || {
            if let Some(u) = &unfused {
                u.forward_on(isa, black_box(input), n, h, w, black_box(&mut unfused_out))
                    .unwrap()
            }
        };

        // `forward_par` on the 2-thread pool, each sample timed on one of its workers.
        let mut run_par = || {
            generated
                .forward_par_on(isa, black_box(input), n, h, w, black_box(&mut par_out))
                .unwrap()
        };
        let reps_par = pool.install(|| reps_for(&mut run_par));

        let reps_generated = reps_for(&mut run_generated);
        let reps_unfused = reps_for(&mut run_unfused);
        let reps_generic = reps_for(&mut run_generic);
        let mut t_generated = Vec::with_capacity(samples);
        let mut t_unfused = Vec::with_capacity(samples);
        let mut t_generic = Vec::with_capacity(samples);
        let mut t_par = Vec::with_capacity(samples);
        for _ in 0..samples {
            t_generated.push(sample(reps_generated, &mut run_generated));
            t_par.push(pool.install(|| sample(reps_par, &mut run_par)));
            t_unfused.push(sample(reps_unfused, &mut run_unfused));
            t_generic.push(sample(reps_generic, &mut run_generic));
        }
        let (t_generated, t_generic) = (median(t_generated), median(t_generic));
        let t_par = median(t_par);
        let t_unfused = row.unfused.map(|_| median(t_unfused));

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

        if *par_out != *data.output {
            eprintln!(
                "warning: {}: the 2-thread output differs from the 1-thread one",
                row.name
            );
        }

        let gflops = row.flops() as f64 / t_generated / 1e9;
        let (unfused_us, vs_unfused) = match t_unfused {
            Some(t) => (
                format!("{:.1}", t * 1e6),
                format!("{:.2}x", t / t_generated),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        let peer = rust_peer_cells(row, &data, samples, t_generated, &mut peer_rows);
        println!(
            "| {} | {:.1} | {:.1} | {:.2}x | {unfused_us} | {:.1} | {:.0} | {vs_unfused} | {:.2}x | {:.1} | {:.0}% |{peer}",
            row.name,
            t_generated * 1e6,
            t_par * 1e6,
            t_generated / t_par,
            t_generic * 1e6,
            t_naive * 1e6,
            t_generic / t_generated,
            gflops,
            100.0 * gflops / peak,
        );
        kernels.push((row.name, row.kernel));
    }

    println!("\nGenerated kernels:\n");
    for (name, kernel) in kernels {
        println!("- {name}: `{kernel}`");
    }
    print_rust_peers(&peer_rows);
}

/// Header and separator cells of the Rust peer columns (none without `rust-peers`).
#[cfg(feature = "rust-peers")]
const PEER_COLUMNS: (&str, &str) = (" Rust peer us | vs Rust peer |", "---|---:|");
#[cfg(not(feature = "rust-peers"))]
const PEER_COLUMNS: (&str, &str) = ("", "");

/// Feature `rust-peers`: times every Rust peer of `row` (built and checked against the naive
/// reference by `build_checked`), pushes a markdown row of all their medians to `peer_rows` and
/// returns the cells of the fastest: `" 812.3 tract | 2.31x |"`.
#[cfg(feature = "rust-peers")]
fn rust_peer_cells(
    row: &Row,
    data: &Data,
    samples: usize,
    t_generated: f64,
    peer_rows: &mut Vec<String>,
) -> String {
    let mut best: Option<(f64, &str)> = None;
    let mut cells = String::new();
    for mut peer in conv_benches::rust_peers::build_checked(row, data) {
        let name = peer.name();
        let mut run = || peer.forward();
        let reps = reps_for(&mut run);
        let t = median((0..samples).map(|_| sample(reps, &mut run)).collect());
        cells.push_str(&format!(" {:.1} |", t * 1e6));
        if best.is_none_or(|(b, _)| t < b) {
            best = Some((t, name));
        }
    }
    peer_rows.push(format!(
        "| {} | {:.1} |{cells}",
        row.name,
        t_generated * 1e6
    ));
    let (t, name) = best.expect("at least one Rust peer");
    format!(" {:.1} {name} | {:.2}x |", t * 1e6, t / t_generated)
}

#[cfg(not(feature = "rust-peers"))]
fn rust_peer_cells(_: &Row, _: &Data, _: usize, _: f64, _: &mut Vec<String>) -> String {
    String::new()
}

/// Feature `rust-peers`: the median of every Rust peer per row, in microseconds.
fn print_rust_peers(peer_rows: &[String]) {
    #[cfg(feature = "rust-peers")]
    {
        let peers = conv_benches::rust_peers::PEERS;
        println!("\nRust peers, one thread, median us:\n");
        println!("| row | generated | {} |", peers.join(" | "));
        println!("|---|---:|{}", "---:|".repeat(peers.len()));
    }
    for line in peer_rows {
        println!("{line}");
    }
}
