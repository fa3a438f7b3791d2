use conv_runtime::conv_kernel;

#[conv_kernel(stride = 2)]
pub struct X;

fn main() {}
