//! Every accepted form of every key; `r#in` is accepted as `in`.
use conv_runtime::conv_kernel;

#[conv_kernel(in = 8, out = 16, k = 3)]
pub struct Defaults;

#[conv_kernel(in = 8, out = 16, k = (3, 5), groups = 2, stride = (2, 1), pad = (1, 2), dilation = (2, 1), bias = false)]
pub struct Pairs;

#[conv_kernel(in = 8, out = 8, k = 3, stride = 2, pad = (0, 1, 1, 0), dilation = 1, bias = true)]
pub struct FourSidedPad;

#[conv_kernel(in = 4, out = 4, k = (4, 3), dilation = (1, 2), pad = "same")]
pub struct SamePad;

#[conv_kernel(r#in = 4, out = 8, k = 1, pad = "valid")]
pub struct ValidPad;

fn main() {}
