use conv_runtime::conv_kernel;

#[conv_kernel(in = 16, out = 16, k = 5, stride = 2, pad = "same")]
pub struct X;

fn main() {}
