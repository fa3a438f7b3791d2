use conv_runtime::conv_kernel;

// The only error is the bad `groups`: the stub keeps every use of the layer type-checking.
#[conv_kernel(in = 16, out = 16, k = 3, groups = 0)]
pub struct X;

fn main() -> conv_runtime::Result<()> {
    let weight = vec![0.0; X::OUT * X::IN * 9];
    let layer = X::new(&weight, None)?;
    let (ho, wo) = X::output_hw(8, 8)?;
    let input = vec![0.0; X::IN * 64];
    let mut output = vec![0.0; X::OUT * ho * wo];
    layer.forward_par(&input, 1, 8, 8, &mut output)?;
    layer.forward(&input, 1, 8, 8, &mut output)
}
