use conv_runtime::conv_kernel;

#[conv_kernel(in = 32, out = 64, k = 3, separable = 1)]
pub struct X;

fn main() {}
