use conv_runtime::conv_kernel;

#[conv_kernel(in = 32, out = 64, k = 3, pad = 1, separable, groups = 2)]
pub struct X;

fn main() {}
