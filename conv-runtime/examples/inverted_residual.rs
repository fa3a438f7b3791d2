//! A MobileNetV2 inverted-residual block (block 3: 24 channels at 56x56, expansion 6) built from
//! two generated layers, checked against the same block built from the generic kernels.
//!
//! ```text
//! x (24 x 56 x 56)
//!   -> pointwise 24 -> 144, ReLU6            (`Expand`:  one generated 1x1 layer)
//!   -> depthwise 3x3 144, ReLU6,
//!      pointwise 144 -> 24, linear           (`Project`: one fused separable layer)
//!   + x                                      (the residual add)
//! ```
//!
//! ```text
//! cargo run --release --example inverted_residual
//! ```

use std::time::Instant;

use conv_runtime::{conv_kernel, Activation, Conv2dParams, GenericConv2d, Result};

mod support;
use support::random_vec;

/// Expansion: 1x1, 24 -> 144, ReLU6 fused after the bias.
#[conv_kernel(in = 24, out = 144, k = 1, act = "relu6")]
pub struct Expand;

/// Depthwise 3x3 + ReLU6, then the linear projection 144 -> 24: one kernel; the 144-channel
/// depthwise output never goes to memory.
#[conv_kernel(in = 144, out = 24, k = 3, pad = 1, separable, dw_act = "relu6")]
pub struct Project;

/// The block's weights in PyTorch layouts.
struct Weights {
    expand_w: Vec<f32>,
    expand_b: Vec<f32>,
    dw_w: Vec<f32>,
    dw_b: Vec<f32>,
    pw_w: Vec<f32>,
    pw_b: Vec<f32>,
}

/// The block with generated kernels. The intermediate 144-channel tensor is allocated once and
/// reused across calls.
struct Block {
    expand: Expand,
    project: Project,
    hidden: Vec<f32>,
}

impl Block {
    fn new(wt: &Weights) -> Result<Self> {
        Ok(Block {
            expand: Expand::new(&wt.expand_w, Some(&wt.expand_b))?,
            project: Project::new(&wt.dw_w, Some(&wt.dw_b), &wt.pw_w, Some(&wt.pw_b))?,
            hidden: Vec::new(),
        })
    }

    /// `out = x + project(expand(x))` for `x` of `(n, 24, h, w)`.
    fn forward(&mut self, x: &[f32], n: usize, h: usize, w: usize, out: &mut [f32]) -> Result<()> {
        self.hidden.resize(n * Expand::OUT * h * w, 0.0);
        self.expand.forward(x, n, h, w, &mut self.hidden)?;
        self.project.forward(&self.hidden, n, h, w, out)?;
        for (o, &xi) in out.iter_mut().zip(x) {
            *o += xi;
        }
        Ok(())
    }
}

/// The same block from run-time-shaped generic kernels: three layers, activations as separate
/// passes, every intermediate tensor in memory.
fn generic_block(wt: &Weights, x: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<f32>> {
    let expand = GenericConv2d::new(
        Conv2dParams::new(24, 144, 1),
        &wt.expand_w,
        Some(&wt.expand_b),
    )?
    .with_activation(Activation::Relu6)?;
    let dw = GenericConv2d::new(
        Conv2dParams::new(144, 144, 3).groups(144).pad(1),
        &wt.dw_w,
        Some(&wt.dw_b),
    )?
    .with_activation(Activation::Relu6)?;
    let pw = GenericConv2d::new(Conv2dParams::new(144, 24, 1), &wt.pw_w, Some(&wt.pw_b))?;
    let mut hidden = vec![0.0; n * 144 * h * w];
    expand.forward(x, n, h, w, &mut hidden)?;
    let mut hidden2 = vec![0.0; hidden.len()];
    dw.forward(&hidden, n, h, w, &mut hidden2)?;
    let mut out = vec![0.0; n * 24 * h * w];
    pw.forward(&hidden2, n, h, w, &mut out)?;
    for (o, &xi) in out.iter_mut().zip(x) {
        *o += xi;
    }
    Ok(out)
}

fn main() -> Result<()> {
    let (n, h, w) = (1, 56, 56);
    // Weights scaled like a trained network's (He-style), so activations stay O(1).
    let wt = Weights {
        expand_w: scaled(random_vec(144 * 24, 2), (2.0 / 24.0f32).sqrt()),
        expand_b: random_vec(144, 3),
        dw_w: scaled(random_vec(144 * 9, 4), (2.0 / 9.0f32).sqrt()),
        dw_b: random_vec(144, 5),
        pw_w: scaled(random_vec(24 * 144, 6), (1.0 / 144.0f32).sqrt()),
        pw_b: random_vec(24, 7),
    };
    let x = scaled(random_vec(n * 24 * h * w, 1), 3.0);

    let mut block = Block::new(&wt)?;
    let mut out = vec![0.0; n * 24 * h * w];
    block.forward(&x, n, h, w, &mut out)?;
    let want = generic_block(&wt, &x, n, h, w)?;

    // Both compute the same sums in different orders: compare relative to the output's scale.
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = out
        .iter()
        .zip(&want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("MobileNetV2 inverted residual, 24 -> 144 -> 24 at {h}x{w}");
    println!("  expand : {}", Expand::KERNEL_INFO.name);
    println!("  project: {}", Project::KERNEL_INFO.name);
    println!("  max |generated - generic| = {worst:.2e} (outputs up to {scale:.2})");
    assert!(
        worst <= 1e-5 * scale.max(1.0),
        "generated block differs from the generic kernels"
    );

    let reps = 200;
    let start = Instant::now();
    for _ in 0..reps {
        block.forward(&x, n, h, w, &mut out)?;
    }
    let t_gen = start.elapsed().as_secs_f64() * 1e6 / f64::from(reps);
    let start = Instant::now();
    for _ in 0..reps / 10 {
        generic_block(&wt, &x, n, h, w)?;
    }
    let t_generic = start.elapsed().as_secs_f64() * 1e6 / f64::from(reps / 10);
    println!(
        "  generated {t_gen:.0} us per block, generic {t_generic:.0} us ({:.1}x); indicative \
         only, the criterion benches are the measurement",
        t_generic / t_gen
    );
    Ok(())
}

fn scaled(mut v: Vec<f32>, s: f32) -> Vec<f32> {
    v.iter_mut().for_each(|x| *x *= s);
    v
}
