use conv_runtime::conv_kernel;

#[conv_kernel(in = 16, out = 16, k = 3, dilation = 18446744073709551615)]
pub struct X;

fn main() {}
