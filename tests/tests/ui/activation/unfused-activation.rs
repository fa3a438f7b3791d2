use conv_runtime::conv_kernel;

#[conv_kernel(in = 16, out = 16, k = 3, groups = 16, act = "sigmoid")]
pub struct X;

fn main() {}
