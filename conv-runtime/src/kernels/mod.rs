//! Kernels that do not depend on the macro: the naive reference and the generic run-time-shaped
//! kernel.

pub mod generic;
pub mod reference;

use crate::error::{ConvError, Result};
use crate::shape::Conv2dParams;

/// [`Conv2dParams::validate`] plus the size sums that [`Conv2dParams::output_hw`] and
/// [`Conv2dParams::effective_kernel`] compute unchecked: `pad_top + pad_bottom`,
/// `pad_left + pad_right` and `dilation * (k - 1) + 1` must fit in `usize`. After this check no
/// method of `p` can overflow for an input whose length fits in `usize`.
pub(crate) fn validate_params(p: &Conv2dParams) -> Result<()> {
    p.validate()?;
    let fits = p.pad_top.checked_add(p.pad_bottom).is_some()
        && p.pad_left.checked_add(p.pad_right).is_some()
        && p.dilation_h
            .checked_mul(p.kernel_h - 1)
            .and_then(|v| v.checked_add(1))
            .is_some()
        && p.dilation_w
            .checked_mul(p.kernel_w - 1)
            .and_then(|v| v.checked_add(1))
            .is_some();
    if fits {
        Ok(())
    } else {
        Err(ConvError::Overflow)
    }
}

/// Checks a forward call completely before anything is written: layer parameters, weight and
/// bias lengths, input and output lengths. Returns `(h_out, w_out)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_call(
    p: &Conv2dParams,
    input_len: usize,
    n: usize,
    h: usize,
    w: usize,
    weight_len: usize,
    bias_len: Option<usize>,
    output_len: usize,
) -> Result<(usize, usize)> {
    validate_params(p)?;
    p.check_weights(weight_len, bias_len)?;
    p.check_forward(input_len, n, h, w, output_len)
}
