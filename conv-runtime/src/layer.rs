//! The traits every layer implements, generated or generic, so layers of different shapes can
//! sit in one list (`Vec<Box<dyn Layer>>`) and be tested or benchmarked alike.
//!
//! [`Layer`] is what any layer can do (run, report its shape); [`Conv2dLayer`] adds the
//! parameters of a single convolution, which a fused `separable` layer does not have (its
//! parameters are a [`crate::SeparableParams`]).

use crate::activation::Activation;
use crate::dispatch::Isa;
use crate::error::Result;
use crate::kernels::generic::GenericConv2d;
use crate::shape::Conv2dParams;

/// A layer with fixed weights mapping an NCHW input `(n, in, h, w)` to `(n, out, h_out, w_out)`.
pub trait Layer: Send + Sync {
    /// Input channels.
    fn in_channels(&self) -> usize;

    /// Output channels.
    fn out_channels(&self) -> usize;

    /// `(h_out, w_out)` for an `h x w` input; `Err` when it is too small for the kernel.
    fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize)>;

    /// FLOPs (2 x MACs) of one forward pass; 0 for an input the layer rejects.
    fn flops(&self, n: usize, h: usize, w: usize) -> u64;

    /// The kernel's name: for generated layers `KERNEL_INFO.name`, else `"generic"`.
    fn kernel_name(&self) -> &'static str;

    /// Runs the layer on an explicit instruction set. `Err` (output untouched) for wrong slice
    /// lengths, a too-small input, or an ISA this machine lacks.
    fn forward_on(
        &self,
        isa: Isa,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()>;

    /// [`Layer::forward_on`] with the best ISA of this machine.
    fn forward(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()> {
        self.forward_on(Isa::best(), input, n, h, w, output)
    }

    /// [`Layer::forward_on`] split over the threads of the current rayon pool: the global pool,
    /// or the one whose `install` the call runs in. Same results as on one thread (every output
    /// float is computed the same way by exactly one thread); a pass too small to repay the
    /// hand-off runs on fewer threads (see [`crate::parallel`]). Layers without a parallel
    /// kernel (the generic one) run on the calling thread.
    fn forward_par_on(
        &self,
        isa: Isa,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()> {
        self.forward_on(isa, input, n, h, w, output)
    }

    /// [`Layer::forward_on`] as `parts` parts on the current rayon pool, however small the pass
    /// (fewer only when the shape has fewer groups and rows than `parts`): for measuring scaling
    /// and for tests; [`Layer::forward_par_on`] picks the count itself. Layers without a
    /// parallel kernel run on the calling thread.
    #[allow(clippy::too_many_arguments)]
    fn forward_split_on(
        &self,
        isa: Isa,
        parts: usize,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()> {
        let _ = parts;
        self.forward_on(isa, input, n, h, w, output)
    }

    /// [`Layer::forward_par_on`] with the best ISA of this machine.
    fn forward_par(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()> {
        self.forward_par_on(Isa::best(), input, n, h, w, output)
    }

    /// Elements of the output for an `n x in x h x w` input, checked for overflow.
    fn output_len(&self, n: usize, h: usize, w: usize) -> Result<usize> {
        let (ho, wo) = self.output_hw(h, w)?;
        n.checked_mul(self.out_channels())
            .and_then(|v| v.checked_mul(ho))
            .and_then(|v| v.checked_mul(wo))
            .ok_or(crate::ConvError::Overflow)
    }
}

/// A single 2-D convolution (plus its fused activation).
pub trait Conv2dLayer: Layer {
    /// The layer's parameters.
    fn params(&self) -> Conv2dParams;

    /// The activation applied after the bias.
    fn activation(&self) -> Activation;
}

impl Layer for GenericConv2d {
    fn in_channels(&self) -> usize {
        self.params().in_channels
    }

    fn out_channels(&self) -> usize {
        self.params().out_channels
    }

    fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        self.params().output_hw(h, w)
    }

    fn flops(&self, n: usize, h: usize, w: usize) -> u64 {
        self.params().flops(n, h, w)
    }

    fn kernel_name(&self) -> &'static str {
        "generic"
    }

    fn forward_on(
        &self,
        isa: Isa,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()> {
        GenericConv2d::forward_on(self, isa, input, n, h, w, output)
    }
}

impl Conv2dLayer for GenericConv2d {
    fn params(&self) -> Conv2dParams {
        GenericConv2d::params(self)
    }

    fn activation(&self) -> Activation {
        GenericConv2d::activation(self)
    }
}
