//! `separable` (bare and `= true`), `dw_act` / `act` / `clamp` / `dw_clamp`, `groups` written
//! out equal to `in`, and the four-slice constructor of the example.
use conv_runtime::{conv_kernel, Activation, Layer};

/// MobileNetV2 block: depthwise 3x3 + ReLU6, then pointwise 144 -> 24, linear.
#[conv_kernel(in = 144, out = 24, k = 3, pad = 1, separable, dw_act = "relu6")]
pub struct Block3;

#[conv_kernel(in = 32, out = 64, k = 3, stride = 2, pad = 1, groups = 32, separable = true, dw_act = "relu", act = "relu", bias = false)]
pub struct V1Block;

#[conv_kernel(in = 8, out = 8, k = 3, pad = 1, separable, dw_clamp = (-1, 1.5), clamp = (0.0, 6))]
pub struct Clamped;

#[conv_kernel(in = 8, out = 8, k = 3, groups = 8, pad = 1, act = "none")]
pub struct Linear;

#[conv_kernel(in = 8, out = 8, k = 1, clamp = (-0.5, 0.5))]
pub struct PwClamp;

fn main() {
    let (dw_w, dw_b) = (vec![0.0; 144 * 9], vec![0.0; 144]);
    let (pw_w, pw_b) = (vec![0.0; 24 * 144], vec![0.0; 24]);
    let layer = Block3::new(&dw_w, Some(&dw_b), &pw_w, Some(&pw_b)).unwrap();
    let (h, w) = (7, 9);
    let input = vec![1.0; 144 * h * w];
    let mut out = vec![0.0; 24 * h * w];
    layer.forward(&input, 1, h, w, &mut out).unwrap();
    assert_eq!(Block3::output_hw(h, w).unwrap(), (h, w));
    assert_eq!(Block3::PARAMS.dw_activation, Activation::Relu6);
    assert_eq!(V1Block::PARAMS.activation, Activation::Relu);
    assert_eq!(Clamped::PARAMS.activation, Activation::Clamp { min: 0.0, max: 6.0 });
    assert_eq!(Linear::ACTIVATION, Activation::None);
    assert_eq!(PwClamp::ACTIVATION, Activation::Clamp { min: -0.5, max: 0.5 });
    let boxed: Box<dyn Layer> = Box::new(layer);
    assert_eq!(boxed.out_channels(), 24);
}
