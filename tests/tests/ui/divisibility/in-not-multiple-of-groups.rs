use conv_runtime::conv_kernel;

#[conv_kernel(in = 32, out = 12, k = 3, groups = 3)]
pub struct X;

fn main() {}
