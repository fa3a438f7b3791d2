//! Compile-time specialised grouped, depthwise and pointwise 2-D convolutions for CPUs.
//!
//! Annotate a unit struct with [`conv_kernel`] and get a kernel specialised to exactly that layer;
//! see the README for the attribute reference.

// The x86-64 fast paths (AVX-512 masks and shifts, AVX2 lane moves) use helpers that other
// targets never reach; `cargo check --target aarch64-unknown-linux-gnu` is otherwise clean.
#![cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, unused_imports, unused_variables)
)]

pub mod activation;
mod amx;
pub mod dispatch;
pub mod error;
mod flat;
mod inplace;
pub mod kernels;
pub mod layer;
mod pairs;
pub mod parallel;
mod planes;
mod relay;
pub mod shape;
mod strided;
pub mod tensor;
mod winograd;
mod winograd_channels;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use activation::Activation;
pub use conv_macros::conv_kernel;
pub use dispatch::Isa;
pub use error::{ConvError, Result};
pub use kernels::generic::GenericConv2d;
pub use kernels::reference;
pub use layer::{Conv2dLayer, Layer};
/// The rayon `forward_par` runs on, re-exported so a pool of the same version can be built
/// (`conv_runtime::rayon::ThreadPoolBuilder`) without another dependency.
pub use rayon;
pub use shape::{Conv2dParams, SeparableParams};
pub use tensor::{TensorMut, TensorRef};

/// Static description of a generated kernel: its name encodes its parameters and plan, e.g.
/// `depthwise/f32/3x3/s1/p1/c144-144/g144/r32.t1r8h/r16.t1r6` (family, type, kernel, stride,
/// padding, channels, groups, then the plan of each register class: `t` output channels x `r`
/// rows per tile, `h` hoisted weights, `i` input rows read in place, `f` flat tiles whose `r`
/// counts vectors of consecutive output pixels, `c`/`k` loops over channels/taps, after `~s` the
/// streaming plan a depthwise layer takes on narrow planes (a plan of `s..` alone streams on
/// every plane), after `-` a flat plan for narrow planes); the same string names its benches and
/// dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    /// Stable kernel name.
    pub name: &'static str,
    /// `depthwise`, `grouped`, `pointwise` or `separable`.
    pub family: &'static str,
}
