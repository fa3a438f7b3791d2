//! [`Conv2dLayer`]: what every layer can do, generated or generic, so layers of different shapes
//! can sit in one list (`Vec<Box<dyn Conv2dLayer>>`) and be tested or benchmarked alike.

use crate::dispatch::Isa;
use crate::error::Result;
use crate::kernels::generic::GenericConv2d;
use crate::shape::Conv2dParams;

/// A 2-D convolution layer with fixed weights.
pub trait Conv2dLayer: Send + Sync {
    /// The layer's parameters.
    fn params(&self) -> Conv2dParams;

    /// The kernel's name: for generated layers `KERNEL_INFO.name`, else `"generic"`.
    fn kernel_name(&self) -> &'static str;

    /// `output (n, out, h_out, w_out) = conv(input (n, in, h, w))` on an explicit instruction set.
    /// `Err` (output untouched) for wrong slice lengths, a too-small input, or an ISA this machine
    /// lacks.
    fn forward_on(
        &self,
        isa: Isa,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()>;

    /// [`Conv2dLayer::forward_on`] with the best ISA of this machine.
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

    /// `(h_out, w_out)` for an `h x w` input.
    fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        self.params().output_hw(h, w)
    }
}

impl Conv2dLayer for GenericConv2d {
    fn params(&self) -> Conv2dParams {
        GenericConv2d::params(self)
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
