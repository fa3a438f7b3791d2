use conv_runtime::conv_kernel;

#[conv_kernel(in = 4294967296, out = 4294967296, k = 3)]
pub struct X;

fn main() {}
