use conv_runtime::conv_kernel;

#[conv_kernel(in = 32, out = 12, k = 3.5, groups = 3, strides = 2)]
pub struct X;

fn main() {}
