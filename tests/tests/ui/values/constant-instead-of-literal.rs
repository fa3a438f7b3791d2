use conv_runtime::conv_kernel;

const CHANNELS: usize = 16;

#[conv_kernel(in = CHANNELS, out = 16, k = 3)]
pub struct X;

fn main() {}
