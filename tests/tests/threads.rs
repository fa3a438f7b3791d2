//! `forward_par` called from a thread outside any rayon pool while every worker of the global
//! pool is busy: the calling thread must compute the parts no worker picked up itself, and the
//! result must equal the reference and, bit for bit, the one-thread result; and `forward_par`
//! called from every worker of a pool at once, inside a parallel loop. (Its own test binary: it
//! occupies the global pool, which the other test binaries share between their tests.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use conv_runtime::{conv_kernel, Activation, Conv2dLayer, Isa};
use conv_tests::{assert_close, assert_same_bits, random_vec, reference_activated};

// One layer split by pixels (pointwise), one by groups (depthwise), one by rows (a dense 3x3).
#[conv_kernel(in = 24, out = 20, k = 1)]
pub struct Pw24x20;
#[conv_kernel(in = 12, out = 12, k = 3, groups = 12, pad = 1)]
pub struct Dw12;
#[conv_kernel(in = 3, out = 5, k = 3, pad = 1)]
pub struct Dense3x5;

/// Runs `layer` (built from `weight` and `bias`) as 2 and 3 parts from this thread, with every
/// worker of the global pool asleep in a job of its own when `busy`, and checks the output.
fn check(layer: &dyn Conv2dLayer, weight: &[f32], bias: &[f32], busy: bool) {
    let p = layer.params();
    let (n, h, w) = (2, 19, 37);
    let input = random_vec(n * p.in_channels * h * w, 5);
    let (want, tol) =
        reference_activated(&p, Activation::None, &input, n, h, w, weight, Some(bias)).unwrap();
    let (ho, wo) = p.output_hw(h, w).unwrap();
    let dims = [n, p.out_channels, ho, wo];
    let threads = rayon::current_num_threads();
    for isa in Isa::available() {
        let mut serial = vec![f32::NAN; dims.iter().product()];
        layer.forward_on(isa, &input, n, h, w, &mut serial).unwrap();
        for parts in [2, 3] {
            let started = AtomicUsize::new(0);
            let mut out = vec![f32::NAN; serial.len()];
            rayon::in_place_scope(|s| {
                if busy {
                    // Each worker sleeps 50 ms in a job of its own, so no part handed to the
                    // pool can start before this thread is done with its own.
                    for _ in 0..threads {
                        s.spawn(|_| {
                            started.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                        });
                    }
                    while started.load(Ordering::SeqCst) < threads {
                        std::thread::yield_now();
                    }
                }
                layer
                    .forward_split_on(isa, parts, &input, n, h, w, &mut out)
                    .unwrap();
            });
            let what = format!(
                "{} on {isa} in {parts} parts from outside a {} pool",
                layer.kernel_name(),
                if busy { "busy" } else { "idle" }
            );
            assert_close(&what, &out, &want, &tol, dims);
            assert_same_bits(&what, &out, &serial, dims);
        }
    }
}

#[test]
fn outside_calls_match_one_thread_on_an_idle_and_a_busy_pool() {
    for busy in [false, true] {
        let (w, b) = (random_vec(20 * 24, 1), random_vec(20, 2));
        check(&Pw24x20::new(&w, Some(&b)).unwrap(), &w, &b, busy);
        let (w, b) = (random_vec(12 * 9, 3), random_vec(12, 4));
        check(&Dw12::new(&w, Some(&b)).unwrap(), &w, &b, busy);
        let (w, b) = (random_vec(5 * 3 * 9, 5), random_vec(5, 6));
        check(&Dense3x5::new(&w, Some(&b)).unwrap(), &w, &b, busy);
    }
}

/// Layers called with `forward_par` from inside a parallel loop on the pool they split over:
/// every worker is a caller with a relay of its own, while it may also be lingering on another
/// worker's, or running another image's part. Every output must still equal the one-thread
/// result bit for bit, and the loop must end (a worker waiting on an offer that only it could
/// run would hang it).
#[test]
fn calls_from_inside_a_parallel_loop_match_one_thread() {
    use rayon::prelude::*;
    let (w, b) = (random_vec(20 * 24, 7), random_vec(20, 8));
    let layer = Pw24x20::new(&w, Some(&b)).unwrap();
    let (n, h, w_) = (1, 9, 23);
    let images: Vec<Vec<f32>> = (0..24).map(|i| random_vec(24 * h * w_, 100 + i)).collect();
    let len = 20 * h * w_;
    let p = layer.params();
    let want: Vec<_> = images
        .iter()
        .map(|x| reference_activated(&p, Activation::None, x, n, h, w_, &w, Some(&b)).unwrap())
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for isa in Isa::available() {
        let serial: Vec<Vec<f32>> = images
            .iter()
            .map(|x| {
                let mut out = vec![f32::NAN; len];
                layer.forward_on(isa, x, n, h, w_, &mut out).unwrap();
                out
            })
            .collect();
        for parts in [2, 3] {
            let par: Vec<Vec<f32>> = pool.install(|| {
                images
                    .par_iter()
                    .map(|x| {
                        let mut out = vec![f32::NAN; len];
                        layer
                            .forward_split_on(isa, parts, x, n, h, w_, &mut out)
                            .unwrap();
                        out
                    })
                    .collect()
            });
            for (i, (got, s)) in par.iter().zip(&serial).enumerate() {
                let what = format!("image {i} on {isa} in {parts} parts inside a parallel loop");
                assert_close(&what, got, &want[i].0, &want[i].1, [n, 20, h, w_]);
                assert_same_bits(&what, got, s, [n, 20, h, w_]);
            }
        }
    }
}
