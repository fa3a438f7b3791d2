//! [`Activation`]: the elementwise function a layer applies after its bias, fused into the kernel.

use core::fmt;

/// An activation applied to every output element after the bias.
///
/// All of them are clamps `min(max(x, lo), hi)` with PyTorch's NaN rule: **a NaN stays NaN**
/// (`torch.relu`, `F.relu6` and `torch.clamp` all propagate NaN). Infinities are clamped like
/// any other number.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Activation {
    /// The identity.
    #[default]
    None,
    /// `max(x, 0)` (`nn.ReLU`).
    Relu,
    /// `min(max(x, 0), 6)` (`nn.ReLU6`).
    Relu6,
    /// `min(max(x, min), max)` (`torch.clamp`, `nn.Hardtanh`); `min <= max`, both finite.
    Clamp { min: f32, max: f32 },
}

impl Activation {
    /// The clamp bounds `(lo, hi)`; infinite where the activation has no bound.
    pub const fn bounds(self) -> (f32, f32) {
        match self {
            Activation::None => (f32::NEG_INFINITY, f32::INFINITY),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
            Activation::Clamp { min, max } => (min, max),
        }
    }

    /// The activation of one value; NaN stays NaN.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        let (lo, hi) = self.bounds();
        // Written as comparisons that are false for NaN, so a NaN falls through unchanged.
        if x < lo {
            lo
        } else if x > hi {
            hi
        } else {
            x
        }
    }

    /// [`Activation::apply`] on every element of `data`.
    pub fn apply_slice(self, data: &mut [f32]) {
        if self != Activation::None {
            for x in data {
                *x = self.apply(*x);
            }
        }
    }

    /// Whether this is the identity.
    pub const fn is_none(self) -> bool {
        matches!(self, Activation::None)
    }
}

/// `none`, `relu`, `relu6` or `clamp(min, max)`.
impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::None => f.write_str("none"),
            Activation::Relu => f.write_str("relu"),
            Activation::Relu6 => f.write_str("relu6"),
            Activation::Clamp { min, max } => write!(f, "clamp({min:?}, {max:?})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Activation;

    #[test]
    fn clamps_and_keeps_nan() {
        let cases = [
            (Activation::None, [-7.0, -0.5, 0.5, 7.0]),
            (Activation::Relu, [0.0, 0.0, 0.5, 7.0]),
            (Activation::Relu6, [0.0, 0.0, 0.5, 6.0]),
            (
                Activation::Clamp {
                    min: -1.0,
                    max: 0.25,
                },
                [-1.0, -0.5, 0.25, 0.25],
            ),
        ];
        for (act, want) in cases {
            for (x, want) in [-7.0, -0.5, 0.5, 7.0].into_iter().zip(want) {
                assert_eq!(act.apply(x), want, "{act}({x})");
            }
            assert!(act.apply(f32::NAN).is_nan(), "{act}(NaN)");
        }
        assert_eq!(Activation::Relu.apply(f32::NEG_INFINITY), 0.0);
        assert_eq!(Activation::Relu6.apply(f32::INFINITY), 6.0);
    }
}
