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
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Depthwise => "depthwise",
            Family::Pointwise => "pointwise",
            Family::Grouped => "grouped",
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
        let no_pad = self.pad_top + self.pad_bottom + self.pad_left + self.pad_right == 0;
        if self.in_per_group() == 1 && self.kernel_h * self.kernel_w > 1 {
            Family::Depthwise
        } else if self.kernel_h == 1
            && self.kernel_w == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && no_pad
        {
            Family::Pointwise
        } else if self.in_per_group() == 1 {
            Family::Depthwise
        } else {
            Family::Grouped
        }
    }
}
