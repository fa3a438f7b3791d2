use conv_runtime::conv_kernel;

#[conv_kernel(in = 16, out = 16, k = 1, clamp = 6)]
pub struct X;

fn main() {}
