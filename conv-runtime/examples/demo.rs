//! A tour of `#[conv_kernel]` on four real layers: declare each, run it on random data, time it
//! against the generic run-time-shaped kernel and check it against the naive reference.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! Timings are medians of a few short samples on one thread, and with `forward_par` on a 2-thread
//! rayon pool: indicative only (the criterion benches in `benches/` are the real measurement).

use std::time::Instant;

use conv_runtime::{conv_kernel, reference, Conv2dParams, GenericConv2d, Isa, KernelInfo, Result};

mod support;
use support::random_vec;

/// MobileNetV2 block 3 depthwise: 3x3, 144 channels, at 56x56.
#[conv_kernel(in = 144, out = 144, k = 3, groups = 144, pad = 1)]
pub struct Dw144;

/// MobileNetV2 block 3 projection: pointwise 144 -> 24, at 56x56.
#[conv_kernel(in = 144, out = 24, k = 1)]
pub struct Pw144To24;

/// ResNeXt-50 32x4d conv2 stage: 3x3, 128 channels in 32 groups of 4, at 56x56.
#[conv_kernel(in = 128, out = 128, k = 3, groups = 32, pad = "same")]
pub struct ResNeXtG32;

/// MobileNetV3 / EfficientNet 5x5 depthwise, 240 channels, at 14x14.
#[conv_kernel(in = 240, out = 240, k = 5, groups = 240, pad = 2)]
pub struct Dw240K5;

fn main() -> Result<()> {
    println!("best instruction set: {}\n", Isa::best().name());
    demo(
        Dw144::KERNEL_INFO,
        Dw144::PARAMS,
        56,
        56,
        Dw144::new,
        [Dw144::forward, Dw144::forward_par],
    )?;
    demo(
        Pw144To24::KERNEL_INFO,
        Pw144To24::PARAMS,
        56,
        56,
        Pw144To24::new,
        [Pw144To24::forward, Pw144To24::forward_par],
    )?;
    demo(
        ResNeXtG32::KERNEL_INFO,
        ResNeXtG32::PARAMS,
        56,
        56,
        ResNeXtG32::new,
        [ResNeXtG32::forward, ResNeXtG32::forward_par],
    )?;
    demo(
        Dw240K5::KERNEL_INFO,
        Dw240K5::PARAMS,
        14,
        14,
        Dw240K5::new,
        [Dw240K5::forward, Dw240K5::forward_par],
    )?;
    Ok(())
}

/// `forward(layer, input, n, h, w, output)`, the signature of every generated `forward`.
type Forward<L> = fn(&L, &[f32], usize, usize, usize, &mut [f32]) -> Result<()>;

/// Runs one layer on a random `1 x in x h x w` input and prints what it found.
fn demo<L: Sync>(
    info: KernelInfo,
    p: Conv2dParams,
    h: usize,
    w: usize,
    new: fn(&[f32], Option<&[f32]>) -> Result<L>,
    [forward, forward_par]: [Forward<L>; 2],
) -> Result<()> {
    let n = 1;
    let input = random_vec(p.input_len(n, h, w)?, 1);
    let weight = random_vec(p.weight_len(), 2);
    let bias = random_vec(p.out_channels, 3);

    // The generated layer packs PyTorch-layout weights once; forward checks every length.
    let layer = new(&weight, Some(&bias))?;
    let generic = GenericConv2d::new(p, &weight, Some(&bias))?;
    let mut out = vec![0.0; p.output_len(n, h, w)?];
    let mut out_generic = out.clone();
    let mut out_par = out.clone();
    // `forward_par` splits a pass over the pool it runs in: here one of 2 threads, each pinned
    // to its own core (see `pinned_pool` on why).
    let pool = conv_runtime::parallel::pinned_pool(2).expect("a 2-thread pool");

    // Interleaved samples of each kernel; the median per-call time of each.
    let (mut t_gen, mut t_generic) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        t_gen.push(time(|| forward(&layer, &input, n, h, w, &mut out))?);
        t_generic.push(time(|| generic.forward(&input, n, h, w, &mut out_generic))?);
    }
    // All 2-thread samples inside one `install`, the way a network's layers run (see the README
    // on threads: workers that go idle between calls are parked, and the OS may wake them on the
    // same core).
    let t_par = pool.install(|| {
        (0..15)
            .map(|_| time(|| forward_par(&layer, &input, n, h, w, &mut out_par)))
            .collect::<Result<Vec<f64>>>()
    })?;
    let (t_gen, t_par, t_generic) = (median(t_gen), median(t_par), median(t_generic));
    // Splitting a pass changes which thread computes an output, never how.
    assert!(out_par == out, "2 threads gave other results than 1");

    // Exact answer (f64) and the golden tolerance, per element.
    let exact = reference::conv2d_f64(&p, &input, n, h, w, &weight, Some(&bias))?;
    let tol = reference::tolerance(&p, &input, n, h, w, &weight, Some(&bias))?;
    let mut max_err = 0.0f64;
    let mut within = true;
    for ((&o, &e), &t) in out.iter().zip(&exact).zip(&tol) {
        let err = (f64::from(o) - e).abs();
        max_err = max_err.max(err);
        within &= err <= f64::from(t);
    }

    let (ho, wo) = p.output_hw(h, w)?;
    let gflops = p.flops(n, h, w) as f64 / t_gen / 1e3;
    println!("{}", info.name);
    println!(
        "  {} x {h}x{w} -> {} x {ho}x{wo}, isa {}",
        p.in_channels,
        p.out_channels,
        Isa::best().name()
    );
    println!(
        "  generated {:8.1} us ({gflops:.1} GFLOP/s)   generic {:8.1} us   speedup {:.2}x",
        t_gen,
        t_generic,
        t_generic / t_gen
    );
    println!(
        "  2 threads {:8.1} us ({:.2}x of one thread, same results)",
        t_par,
        t_gen / t_par
    );
    println!(
        "  max |error| vs reference {max_err:.2e}: {}\n",
        if within {
            "within the golden tolerance"
        } else {
            "OUTSIDE the golden tolerance"
        }
    );
    Ok(())
}

/// Microseconds per call of `f`, over enough calls to last about a millisecond, after 2 ms of
/// untimed calls: a pool's idle threads sleep, and waking one can take longer than a whole call
/// (see the README on threads), so the timed calls run back to back like a network's layers.
fn time(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let warm = Instant::now();
    let mut once = f64::INFINITY;
    while warm.elapsed().as_secs_f64() < 2e-3 {
        let start = Instant::now();
        f()?;
        once = once.min(start.elapsed().as_secs_f64());
    }
    let reps = (1e-3 / once.max(1e-7)).ceil().min(10_000.0) as u32;
    let start = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(reps))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
