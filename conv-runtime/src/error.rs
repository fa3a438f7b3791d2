//! The error type of every fallible call.

use core::fmt;

/// What went wrong when building or running a convolution.
///
/// Every variant carries the numbers involved, so the message alone says what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConvError {
    /// A slice has the wrong number of elements.
    SliceLength {
        /// Which argument: `"input"`, `"output"`, `"weight"`, `"bias"`.
        what: &'static str,
        /// The length the layer needs.
        expected: usize,
        /// The length that was passed.
        actual: usize,
    },
    /// The input plane is smaller than the (dilated) kernel after padding.
    InputTooSmall {
        /// Input height and width as passed.
        h: usize,
        w: usize,
        /// The smallest height and width this layer accepts.
        min_h: usize,
        min_w: usize,
    },
    /// A tensor's dimension does not match what the layer was built for.
    ShapeMismatch {
        /// Which dimension, e.g. `"input channels"`.
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// Run-time layer parameters that describe no valid convolution.
    InvalidParams(String),
    /// A size computation (n * c * h * w and the like) overflows `usize`.
    Overflow,
    /// A bias was passed to a bias-free layer, or none to a layer with bias.
    BiasMismatch {
        /// Whether the layer was declared with a bias.
        expects_bias: bool,
    },
    /// The requested instruction set is not available on this machine.
    IsaUnavailable(&'static str),
}

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvError::SliceLength {
                what,
                expected,
                actual,
            } => write!(
                f,
                "`{what}` has {actual} elements, the layer needs exactly {expected}"
            ),
            ConvError::InputTooSmall { h, w, min_h, min_w } => write!(
                f,
                "input of {h}x{w} is too small for this kernel: it needs at least {min_h}x{min_w} (h x w, after padding)"
            ),
            ConvError::ShapeMismatch {
                what,
                expected,
                actual,
            } => write!(f, "{what}: expected {expected}, got {actual}"),
            ConvError::InvalidParams(why) => write!(f, "invalid convolution parameters: {why}"),
            ConvError::Overflow => write!(f, "tensor size overflows usize"),
            ConvError::BiasMismatch { expects_bias: true } => {
                write!(f, "this layer has a bias: pass `Some(&bias)`")
            }
            ConvError::BiasMismatch {
                expects_bias: false,
            } => write!(
                f,
                "this layer was declared with `bias = false`: pass `None`"
            ),
            ConvError::IsaUnavailable(name) => {
                write!(f, "instruction set {name} is not available on this machine")
            }
        }
    }
}

impl std::error::Error for ConvError {}

/// `Result` with [`ConvError`].
pub type Result<T, E = ConvError> = core::result::Result<T, E>;
