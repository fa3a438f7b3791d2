use conv_runtime::conv_kernel;

#[conv_kernel(in = 16, out = 16, k = 3, stride = (1, -2))]
pub struct X;

fn main() {}
