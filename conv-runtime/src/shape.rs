//! The run-time twin of the macro's layer spec.

use crate::activation::Activation;
use crate::error::{ConvError, Result};

/// Parameters of one 2-D convolution, with PyTorch `nn.Conv2d` semantics (NCHW, zero padding,
/// weights `(out, in / groups, kh, kw)`).
///
/// Generated layers expose theirs as a `PARAMS` constant; the generic kernel takes one at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
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
    /// Whether the layer adds a bias `(out)`.
    pub bias: bool,
}

impl Conv2dParams {
    /// A square `k x k` convolution, stride 1, no padding, no dilation, one group, with bias.
    pub const fn new(in_channels: usize, out_channels: usize, k: usize) -> Self {
        Conv2dParams {
            in_channels,
            out_channels,
            kernel_h: k,
            kernel_w: k,
            stride_h: 1,
            stride_w: 1,
            pad_top: 0,
            pad_bottom: 0,
            pad_left: 0,
            pad_right: 0,
            dilation_h: 1,
            dilation_w: 1,
            groups: 1,
            bias: true,
        }
    }

    /// Same stride on both axes.
    pub const fn stride(mut self, s: usize) -> Self {
        self.stride_h = s;
        self.stride_w = s;
        self
    }

    /// Same padding on all four sides.
    pub const fn pad(mut self, p: usize) -> Self {
        self.pad_top = p;
        self.pad_bottom = p;
        self.pad_left = p;
        self.pad_right = p;
        self
    }

    /// Same dilation on both axes.
    pub const fn dilation(mut self, d: usize) -> Self {
        self.dilation_h = d;
        self.dilation_w = d;
        self
    }

    /// Number of groups.
    pub const fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// With or without bias.
    pub const fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Checks what the macro checks at compile time: no zero sizes, `groups` divides both
    /// channel counts, and the weight size fits in `usize`.
    pub fn validate(&self) -> Result<()> {
        let nonzero = [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("kernel_h", self.kernel_h),
            ("kernel_w", self.kernel_w),
            ("stride_h", self.stride_h),
            ("stride_w", self.stride_w),
            ("dilation_h", self.dilation_h),
            ("dilation_w", self.dilation_w),
            ("groups", self.groups),
        ];
        for (name, v) in nonzero {
            if v == 0 {
                return Err(ConvError::InvalidParams(format!(
                    "`{name}` must be at least 1"
                )));
            }
        }
        if self.in_channels % self.groups != 0 {
            return Err(ConvError::InvalidParams(format!(
                "`groups` must divide `in`: {} is not a multiple of {}",
                self.in_channels, self.groups
            )));
        }
        if self.out_channels % self.groups != 0 {
            return Err(ConvError::InvalidParams(format!(
                "`groups` must divide `out`: {} is not a multiple of {}",
                self.out_channels, self.groups
            )));
        }
        self.weight_len_checked().ok_or(ConvError::Overflow)?;
        let dilated = |d: usize, k: usize| d.checked_mul(k - 1).and_then(|v| v.checked_add(1));
        if dilated(self.dilation_h, self.kernel_h).is_none()
            || dilated(self.dilation_w, self.kernel_w).is_none()
            || self.pad_top.checked_add(self.pad_bottom).is_none()
            || self.pad_left.checked_add(self.pad_right).is_none()
        {
            return Err(ConvError::Overflow);
        }
        Ok(())
    }

    /// Input channels per group.
    pub const fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    /// Output channels per group.
    pub const fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Elements of the weight tensor `(out, in / groups, kh, kw)`.
    pub const fn weight_len(&self) -> usize {
        self.out_channels * self.in_per_group() * self.kernel_h * self.kernel_w
    }

    fn weight_len_checked(&self) -> Option<usize> {
        self.out_channels
            .checked_mul(self.in_per_group())?
            .checked_mul(self.kernel_h)?
            .checked_mul(self.kernel_w)
    }

    /// Height and width of the dilated kernel, `dilation * (k - 1) + 1` (saturating; a
    /// validated layer never saturates).
    pub const fn effective_kernel(&self) -> (usize, usize) {
        (
            self.dilation_h
                .saturating_mul(self.kernel_h.saturating_sub(1))
                .saturating_add(1),
            self.dilation_w
                .saturating_mul(self.kernel_w.saturating_sub(1))
                .saturating_add(1),
        )
    }

    /// `(h_out, w_out)` for an `h x w` input, or [`ConvError::InputTooSmall`] when the padded
    /// input is smaller than the dilated kernel (PyTorch rejects that too).
    ///
    /// `out = floor((in + pad_before + pad_after - dilation * (k - 1) - 1) / stride) + 1`.
    pub fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (ekh, ekw) = self.effective_kernel();
        let ph = h
            .checked_add(self.pad_top)
            .and_then(|v| v.checked_add(self.pad_bottom))
            .ok_or(ConvError::Overflow)?;
        let pw = w
            .checked_add(self.pad_left)
            .and_then(|v| v.checked_add(self.pad_right))
            .ok_or(ConvError::Overflow)?;
        if ph < ekh || pw < ekw || h == 0 || w == 0 {
            return Err(ConvError::InputTooSmall {
                h,
                w,
                min_h: ekh.saturating_sub(ph - h).max(1),
                min_w: ekw.saturating_sub(pw - w).max(1),
            });
        }
        Ok((
            (ph - ekh) / self.stride_h + 1,
            (pw - ekw) / self.stride_w + 1,
        ))
    }

    /// Elements of the input `(n, in, h, w)`, checked for overflow.
    pub fn input_len(&self, n: usize, h: usize, w: usize) -> Result<usize> {
        n.checked_mul(self.in_channels)
            .and_then(|v| v.checked_mul(h))
            .and_then(|v| v.checked_mul(w))
            .ok_or(ConvError::Overflow)
    }

    /// Elements of the output `(n, out, h_out, w_out)` for an `h x w` input.
    pub fn output_len(&self, n: usize, h: usize, w: usize) -> Result<usize> {
        let (ho, wo) = self.output_hw(h, w)?;
        n.checked_mul(self.out_channels)
            .and_then(|v| v.checked_mul(ho))
            .and_then(|v| v.checked_mul(wo))
            .ok_or(ConvError::Overflow)
    }

    /// Floating-point operations of one forward pass: `2 * MACs` (bias adds not counted), the
    /// convention of the peer benchmarks.
    pub fn flops(&self, n: usize, h: usize, w: usize) -> u64 {
        let Ok((ho, wo)) = self.output_hw(h, w) else {
            return 0;
        };
        let factors = [n, self.out_channels, ho, wo];
        let factors =
            factors
                .into_iter()
                .chain([self.in_per_group(), self.kernel_h, self.kernel_w]);
        factors.map(|v| v as u64).fold(2, u64::saturating_mul)
    }

    /// Checks the slices of a forward call against `n x in x h x w` and returns `(h_out, w_out)`.
    pub fn check_forward(
        &self,
        input_len: usize,
        n: usize,
        h: usize,
        w: usize,
        output_len: usize,
    ) -> Result<(usize, usize)> {
        let (ho, wo) = self.output_hw(h, w)?;
        let want_in = self.input_len(n, h, w)?;
        if input_len != want_in {
            return Err(ConvError::SliceLength {
                what: "input",
                expected: want_in,
                actual: input_len,
            });
        }
        let want_out = self.output_len(n, h, w)?;
        if output_len != want_out {
            return Err(ConvError::SliceLength {
                what: "output",
                expected: want_out,
                actual: output_len,
            });
        }
        Ok((ho, wo))
    }

    /// Checks weight and bias slices against the layer.
    pub fn check_weights(&self, weight_len: usize, bias_len: Option<usize>) -> Result<()> {
        if weight_len != self.weight_len() {
            return Err(ConvError::SliceLength {
                what: "weight",
                expected: self.weight_len(),
                actual: weight_len,
            });
        }
        match (self.bias, bias_len) {
            (true, Some(len)) if len != self.out_channels => Err(ConvError::SliceLength {
                what: "bias",
                expected: self.out_channels,
                actual: len,
            }),
            (true, Some(_)) | (false, None) => Ok(()),
            (expects_bias, _) => Err(ConvError::BiasMismatch { expects_bias }),
        }
    }
}

/// A depthwise-separable layer: a depthwise `k x k` convolution (`groups = in`, one filter per
/// channel) and its activation, then a `1 x 1` convolution `in -> out` and its activation.
///
/// Generated `separable` layers expose theirs as a `PARAMS` constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeparableParams {
    /// The depthwise stage: `in -> in`, `groups = in`; stride, padding and dilation live here.
    pub depthwise: Conv2dParams,
    /// The pointwise stage: `in -> out`, `1 x 1`, stride 1, no padding, one group.
    pub pointwise: Conv2dParams,
    /// Applied after the depthwise bias, before the pointwise stage.
    pub dw_activation: Activation,
    /// Applied after the pointwise bias.
    pub activation: Activation,
}

impl SeparableParams {
    /// Input channels.
    pub const fn in_channels(&self) -> usize {
        self.depthwise.in_channels
    }

    /// Output channels.
    pub const fn out_channels(&self) -> usize {
        self.pointwise.out_channels
    }

    /// The geometry of the whole layer as one convolution: its channels are `in -> out` and its
    /// spatial arithmetic (kernel, stride, padding, dilation) is the depthwise stage's. What a
    /// forward call is checked against; not a layer of its own (its `groups` is 1).
    pub const fn geometry(&self) -> Conv2dParams {
        let mut g = self.depthwise;
        g.out_channels = self.pointwise.out_channels;
        g.groups = 1;
        g
    }

    /// `(h_out, w_out)` for an `h x w` input: the depthwise stage's.
    pub fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        self.depthwise.output_hw(h, w)
    }

    /// FLOPs of one forward pass: both stages.
    pub fn flops(&self, n: usize, h: usize, w: usize) -> u64 {
        let Ok((ho, wo)) = self.output_hw(h, w) else {
            return 0;
        };
        self.depthwise
            .flops(n, h, w)
            .saturating_add(self.pointwise.flops(n, ho, wo))
    }

    /// Checks the four weight and bias slices; errors name the slice (`dw_weight`, `pw_bias`..).
    pub fn check_weights(
        &self,
        dw_weight: usize,
        dw_bias: Option<usize>,
        pw_weight: usize,
        pw_bias: Option<usize>,
    ) -> Result<()> {
        let rename = |e: ConvError, weight: &'static str, bias: &'static str| match e {
            ConvError::SliceLength {
                what,
                expected,
                actual,
            } => ConvError::SliceLength {
                what: if what == "weight" { weight } else { bias },
                expected,
                actual,
            },
            other => other,
        };
        self.depthwise
            .check_weights(dw_weight, dw_bias)
            .map_err(|e| rename(e, "dw_weight", "dw_bias"))?;
        self.pointwise
            .check_weights(pw_weight, pw_bias)
            .map_err(|e| rename(e, "pw_weight", "pw_bias"))
    }
}
