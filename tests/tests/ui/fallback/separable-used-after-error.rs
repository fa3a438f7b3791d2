//! A separable layer with one mistake: the user's code that builds and runs it must not add
//! errors of its own (the stub has the separable API: four slices in `new`).
use conv_runtime::conv_kernel;

#[conv_kernel(in = 8, out = 16, k = 3, pad = 1, separable, dw_act = "relu7")]
pub struct Block;

fn main() {
    let (dw_w, dw_b, pw_w, pw_b) = (vec![0.0; 72], vec![0.0; 8], vec![0.0; 128], vec![0.0; 16]);
    let layer = Block::new(&dw_w, Some(&dw_b), &pw_w, Some(&pw_b)).unwrap();
    let mut out = vec![0.0; 16 * 25];
    layer.forward(&vec![0.0; 8 * 25], 1, 5, 5, &mut out).unwrap();
    let _ = Block::PARAMS.depthwise;
}
