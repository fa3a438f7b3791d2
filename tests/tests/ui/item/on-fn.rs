use conv_runtime::conv_kernel;

#[conv_kernel(in = 16, out = 16, k = 3)]
pub fn x() {}

fn main() {}
