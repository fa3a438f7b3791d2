use conv_runtime::conv_kernel;

#[conv_kernel(in = 16, out = 16, k = 3)]
pub struct X {
    pub weight: Vec<f32>,
}

fn main() {}
