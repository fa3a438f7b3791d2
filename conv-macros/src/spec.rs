//! The validated model of a layer: *what* is convolved. Codegen sees only this, never raw tokens.

/// Which kernel family computes a layer. Derived from the shape, never written by the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// One input channel per group (`groups == in`), `out = m * in` with multiplier `m >= 1`.
    Depthwise,
    /// 1x1, stride 1, no padding: a GEMM per group over the flattened `h * w` pixels.
    Pointwise,
    /// Everything else: direct convolution, `in / groups` input channels per group.
    Grouped,
    /// `separable`: a depthwise stage and a 1x1 stage fused into one kernel.
    Separable,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Depthwise => "depthwise",
            Family::Pointwise => "pointwise",
            Family::Grouped => "grouped",
            Family::Separable => "separable",
        }
    }
}

/// A validated `#[conv_kernel(...)]` layer. All invariants hold: every size is at least 1,
/// `groups` divides `in` and `out`, and `out * (in / groups) * kh * kw` fits in `usize`.
#[derive(Clone, Debug)]
pub struct Spec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_bottom: usize,
    pub pad_left: usize,
    pub pad_right: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub groups: usize,
    pub bias: bool,
    /// Applied after the bias (for `separable`, after the pointwise stage).
    pub act: Act,
    /// `separable`: this spec is the depthwise stage's geometry (`groups == in`) and
    /// `out_channels` the pointwise stage's output.
    pub separable: bool,
    /// `separable`: applied between the stages.
    pub dw_act: Act,
}

/// A fused activation: a clamp to `[lo, hi]` that keeps NaN (see `Activation` in the runtime).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    Relu6,
    Clamp(f32, f32),
}

impl Act {
    /// The clamp bounds; `None` where unbounded.
    pub fn bounds(self) -> (Option<f32>, Option<f32>) {
        match self {
            Act::None => (None, None),
            Act::Relu => (Some(0.0), None),
            Act::Relu6 => (Some(0.0), Some(6.0)),
            Act::Clamp(lo, hi) => (Some(lo), Some(hi)),
        }
    }

    /// The name used in kernel names: `none`, `relu`, `relu6`, `clamp(-1,1)`.
    pub fn name(self) -> String {
        match self {
            Act::None => "none".into(),
            Act::Relu => "relu".into(),
            Act::Relu6 => "relu6".into(),
            Act::Clamp(lo, hi) => format!("clamp({lo:?},{hi:?})"),
        }
    }
}

impl Spec {
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    pub fn taps(&self) -> usize {
        self.kernel_h * self.kernel_w
    }

    pub fn family(&self) -> Family {
        if self.separable {
            return Family::Separable;
        }
        let no_pad = self.pad_top + self.pad_bottom + self.pad_left + self.pad_right == 0;
        if self.in_per_group() == 1 && self.kernel_h * self.kernel_w > 1 {
            Family::Depthwise
        } else if self.kernel_h == 1 && self.kernel_w == 1 && no_pad {
            Family::Pointwise
        } else if self.in_per_group() == 1 {
            Family::Depthwise
        } else {
            Family::Grouped
        }
    }
}

impl Spec {
    /// `separable`: the depthwise stage as a layer of its own (`in -> in`, `groups = in`).
    pub fn depthwise_stage(&self) -> Spec {
        Spec {
            out_channels: self.in_channels,
            groups: self.in_channels,
            act: self.dw_act,
            separable: false,
            dw_act: Act::None,
            ..self.clone()
        }
    }

    /// The GEMM a layer runs as over gathered pixels (`__private::gather`): a 1x1 layer with
    /// one input row per input channel and tap, `in x kh x kw -> out` in the same groups. Its
    /// weights `(out, in / groups x kh x kw)` are the layer's, as they lie in memory.
    pub fn gathered_gemm(&self) -> Spec {
        Spec {
            in_channels: self.in_channels * self.taps(),
            ..self.one_by_one()
        }
    }

    /// `separable`: the pointwise stage as a layer of its own (`in -> out`, 1x1).
    pub fn pointwise_stage(&self) -> Spec {
        Spec {
            groups: 1,
            separable: false,
            dw_act: Act::None,
            ..self.one_by_one()
        }
    }

    /// This layer with a 1x1 kernel: stride and dilation 1, no padding.
    fn one_by_one(&self) -> Spec {
        Spec {
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            pad_top: 0,
            pad_bottom: 0,
            pad_left: 0,
            pad_right: 0,
            dilation_h: 1,
            dilation_w: 1,
            ..self.clone()
        }
    }
}
