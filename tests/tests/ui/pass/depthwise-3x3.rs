use conv_runtime::conv_kernel;

#[conv_kernel(in = 144, out = 144, k = 3, groups = 144, stride = 1, pad = 1)]
pub struct Depthwise;

fn main() {}
