//! Criterion benches: every row of [`conv_benches::ROWS`] (the depthwise, pointwise and grouped
//! rows of `shared/shapes.tsv`), batch 1, one thread unless the id says `2t`, on the best instruction set of the machine
//! (or `$CONV_BENCH_ISA`: `avx512`, `avx2`, `neon`, `scalar`).
//!
//! One group per row, named after the row, with these ids:
//! - `generated`: the `#[conv_kernel]` layer (for `separable` rows: the fused kernel),
//! - `generated_2t`: the same layer's `forward_par` on a 2-thread rayon pool,
//! - `unfused` (`separable` rows only): the two stages as separate generated layers run one
//!   after the other through an intermediate tensor,
//! - `generic`: [`conv_runtime::GenericConv2d`], the run-time-shaped baseline (two of them,
//!   chained, for `separable` rows),
//! - `rust/candle`, `rust/tract`, `rust/burn` (feature `rust-peers`): the same layer in those
//!   crates on one thread, each checked against the naive reference first (see
//!   `conv_benches::rust_peers`),
//! - `naive`: [`conv_runtime::reference::conv2d`], the f64 oracle (allocates its output). It
//!   takes up to tens of milliseconds per call on the larger rows, so it is measured with 10
//!   flat samples, 1 s warm-up and a 2 s target: enough to place it, not a precise figure.
//!
//! Throughput is `Elements(flops)`: criterion's "elements" are FLOPs (2 x MACs, bias adds not
//! counted), so its `elem/s` column reads as FLOP/s.
//!
//! ```text
//! cargo bench -p conv-benches                                  # everything (~5 min)
//! cargo bench -p conv-benches -- generated                     # one id across rows
//! cargo bench -p conv-benches -- mnv2_dw144_56 --measurement-time 2
//! CONV_BENCH_ISA=avx2 cargo bench -p conv-benches -- --save-baseline avx2
//! ```
//!
//! Forcing an ISA keeps the same ids, so save it under its own baseline name to keep criterion
//! from comparing it with runs on another ISA.

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use criterion::{measurement::WallTime, Throughput};
use std::hint::black_box;
use std::time::Duration;

use conv_benches::{bench_isa, Row, ROWS};
use conv_runtime::Isa;

fn conv(c: &mut Criterion) {
    let isa = bench_isa();
    for row in ROWS {
        eprintln!("{}: {} on {}", row.name, row.kernel, isa.name());
        let mut group = c.benchmark_group(row.name);
        // "Elements" are FLOPs: criterion's elem/s is FLOP/s.
        group.throughput(Throughput::Elements(row.flops()));
        bench_row(&mut group, row, isa);
        group.finish();
    }
}

fn bench_row(group: &mut BenchmarkGroup<'_, WallTime>, row: &Row, isa: Isa) {
    let mut data = row.data();
    let (n, h, w) = (row.n, row.h, row.w);

    let generated = row.generated(&data);
    group.bench_function("generated", |b| {
        b.iter(|| {
            generated
                .forward_on(
                    isa,
                    black_box(&data.input),
                    n,
                    h,
                    w,
                    black_box(&mut data.output),
                )
                .unwrap()
        })
    });

    // The same layer split over a 2-thread pool (workers pinned to their own cores, see
    // `pinned_pool`); the timing loop itself runs on a worker of the pool, like a network run
    // inside `ThreadPool::install`.
    let pool = conv_runtime::parallel::pinned_pool(2).expect("rayon pool");
    group.bench_function("generated_2t", |b| {
        pool.install(|| {
            b.iter(|| {
                generated
                    .forward_par_on(
                        isa,
                        black_box(&data.input),
                        n,
                        h,
                        w,
                        black_box(&mut data.output),
                    )
                    .unwrap()
            })
        })
    });

    if let Some(unfused) = row.unfused(&data) {
        group.bench_function("unfused", |b| {
            b.iter(|| {
                unfused
                    .forward_on(
                        isa,
                        black_box(&data.input),
                        n,
                        h,
                        w,
                        black_box(&mut data.output),
                    )
                    .unwrap()
            })
        });
    }

    let generic = row.generic(&data);
    group.bench_function("generic", |b| {
        b.iter(|| {
            generic
                .forward_on(
                    isa,
                    black_box(&data.input),
                    n,
                    h,
                    w,
                    black_box(&mut data.output),
                )
                .unwrap()
        })
    });

    #[cfg(feature = "rust-peers")]
    for mut peer in conv_benches::rust_peers::build_checked(row, &data) {
        group.bench_function(format!("rust/{}", peer.name()), |b| {
            b.iter(|| peer.forward())
        });
    }

    // The naive reference is slow: few flat samples (settings apply to the benches that follow
    // them in this group, and the group ends here).
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("naive", |b| b.iter(|| row.naive(black_box(&data))));
}

criterion_group!(benches, conv);
criterion_main!(benches);
