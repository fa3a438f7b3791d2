use conv_runtime::conv_kernel;

#[conv_kernel(in = 16, out = 16, k = 1, act = "relu_6")]
pub struct X;

fn main() {}
