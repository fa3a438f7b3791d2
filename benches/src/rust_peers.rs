//! The Rust peers (feature `rust-peers`): every bench row run by the crates a Rust user would
//! otherwise pick for a CPU convolution, with the row's weights and bias, batch and input size,
//! on one thread.
//!
//! - `candle`: candle-core's `Tensor::conv2d` (groups are run one by one and concatenated by
//!   candle itself), then a broadcast bias add, as candle-nn's `Conv2d` does.
//! - `tract`: an ONNX model (`Conv`, plus `Relu` / `Clip` for an activation) built in memory as
//!   protobuf structs, loaded with tract-onnx, decluttered and optimised (`into_optimized`) and
//!   made runnable once; each call runs one reused `SimpleState`.
//! - `burn`: `burn::tensor::module::conv2d` (crate burn-tensor) with `ConvOptions { groups, .. }`
//!   on the ndarray backend (`Device::ndarray()`), the bias passed to the conv.
//!
//! A separable row is its two stages (depthwise, then pointwise) as two convolutions in the
//! peer, each with its activation, like an unfused model. Setup (building the model, tract's
//! optimisation, uploading weights and the input into the peer's tensors) happens once in
//! [`build_checked`]; a timed call ([`RustPeer::forward`]) is one forward pass from the peer's
//! input tensor to its output tensor, which is then dropped.
//!
//! One thread:
//! - candle runs its rayon loops on the rayon pool of the calling context: each call runs inside
//!   [`rayon::ThreadPool::install`] of a private 1-thread pool. Its GEMMs pick their parallelism
//!   from `RAYON_NUM_THREADS` (read on every matmul; candle has no API for it), which
//!   [`build_checked`] sets to `1` in this process.
//! - tract is built without its `multithread-mm` feature, and the plan is made with
//!   `RunOptions { executor: Some(Executor::SingleThread) }`.
//! - burn-ndarray is built without its `multi-threads` feature (no rayon, no threaded
//!   matrixmultiply): its kernels are sequential.
//!
//! Every peer is checked against the naive reference before it is returned: a peer that does
//! not compute the row's layer panics with the worst element.
//!
//! Crates (the newest releases on crates.io when this was written, all building on stable 1.95):
//! candle-core 0.11.1 (no default features: CPU only, no MKL / accelerate), tract-onnx 0.23.9
//! (no default features: drops the `transformers` ops), burn-tensor 0.22.1 with its `ndarray`
//! feature (burn 0.22's tensor API, what `burn::tensor` re-exports) plus burn-ndarray 0.22.1 with
//! `simd` and without `multi-threads`, and rayon 1 (candle's 1-thread pool; candle depends on it
//! already).

use candle_core as candle;
use conv_runtime::{Activation, Conv2dParams};
use tract_onnx::pb;
use tract_onnx::prelude::{self as tract, tvec, Framework, InferenceModelExt};

use crate::{Data, Row};

/// Relative tolerance of the check: `|peer - reference| <= RTOL * (|reference| + mean)`, where
/// `mean` is the mean absolute value of the reference output (so elements near zero get the
/// tolerance of a typical element). f32 summation in another order stays far below it; a
/// missing or wrong tap, a wrong padding or a wrong bias is far above it.
pub const RTOL: f32 = 1e-4;

/// One Rust peer, set up for one row.
pub trait RustPeer {
    /// The peer's short name: the bench id is `rust/<name>`.
    fn name(&self) -> &'static str;

    /// One forward pass on the row's input; the output tensor is dropped (freeing it is part of
    /// the call, as for a user who reads it and lets it go).
    fn forward(&mut self);

    /// One forward pass, its output copied into a `Vec` (NCHW).
    fn forward_vec(&mut self) -> Vec<f32>;
}

/// Names of the peers [`build_checked`] returns, in its order.
pub const PEERS: [&str; 3] = ["candle", "tract", "burn"];

/// Every Rust peer for `row`, with `data`'s weights and input, each checked against the naive
/// reference.
///
/// Panics if a peer cannot be built or its output does not match the reference within
/// [`RTOL`].
pub fn build_checked(row: &Row, data: &Data) -> Vec<Box<dyn RustPeer>> {
    let reference = row.naive(data);
    let peers: Vec<Box<dyn RustPeer>> = vec![
        Box::new(Candle::new(row, data)),
        Box::new(Tract::new(row, data)),
        Box::new(Burn::new(row, data)),
    ];
    peers
        .into_iter()
        .map(|mut peer| {
            let out = peer.forward_vec();
            check(row.name, peer.name(), &out, &reference);
            peer
        })
        .collect()
}

/// Panics unless `out` matches `reference` within [`RTOL`] (a NaN never matches).
fn check(row: &str, peer: &str, out: &[f32], reference: &[f32]) {
    assert_eq!(
        out.len(),
        reference.len(),
        "{row}: rust/{peer} returned {} outputs, the reference {}",
        out.len(),
        reference.len()
    );
    let mean = reference.iter().map(|r| r.abs()).sum::<f32>() / reference.len().max(1) as f32;
    let mut bad = 0usize;
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&o, &r)) in out.iter().zip(reference).enumerate() {
        let err = (o - r).abs() / (r.abs() + mean);
        if err.is_nan() || err > RTOL {
            bad += 1;
            // A NaN is the worst, and stays so.
            if worst.is_none_or(|(_, w)| err.is_nan() || err > w) {
                worst = Some((i, err));
            }
        }
    }
    if let Some((i, err)) = worst {
        panic!(
            "{row}: rust/{peer} does not compute the layer: {bad} of {} outputs differ from the \
             naive reference by more than {RTOL} relative; worst at flat index {i}: {} vs {} \
             (relative error {err})",
            out.len(),
            out[i],
            reference[i],
        );
    }
}

/// A stage of a row: its convolution, weight, bias and activation.
struct Stage<'a> {
    p: Conv2dParams,
    act: Activation,
    weight: &'a [f32],
    bias: &'a [f32],
}

fn stages<'a>(row: &Row, data: &'a Data) -> Vec<Stage<'a>> {
    row.stages()
        .into_iter()
        .enumerate()
        .map(|(i, (p, act))| Stage {
            p,
            act,
            weight: &data.weights[2 * i],
            bias: &data.weights[2 * i + 1],
        })
        .collect()
}

/// `(out, in / groups, kh, kw)`.
fn weight_dims(p: &Conv2dParams) -> [usize; 4] {
    [
        p.out_channels,
        p.in_channels / p.groups,
        p.kernel_h,
        p.kernel_w,
    ]
}

/// `(n, in, h, w)` of the row's input.
fn input_dims(row: &Row, data: &Data) -> [usize; 4] {
    let c = data.input.len() / (row.n * row.h * row.w);
    [row.n, c, row.h, row.w]
}

// ---------------------------------------------------------------------------------------------
// candle
// ---------------------------------------------------------------------------------------------

struct CandleStage {
    weight: candle::Tensor,
    /// `(1, out, 1, 1)`, added with a broadcast.
    bias: candle::Tensor,
    pad: usize,
    stride: usize,
    dilation: usize,
    groups: usize,
    act: Activation,
}

struct Candle {
    pool: rayon::ThreadPool,
    input: candle::Tensor,
    stages: Vec<CandleStage>,
}

impl Candle {
    fn new(row: &Row, data: &Data) -> Self {
        // candle's GEMMs read this on every call (`candle_core::utils::get_num_threads`): with
        // 1 they run `gemm::Parallelism::None`. It is the only way candle offers.
        std::env::set_var("RAYON_NUM_THREADS", "1");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "candle-1".to_string())
            .build()
            .expect("candle: a 1-thread rayon pool");
        let dev = candle::Device::Cpu;
        let tensor = |v: &[f32], dims: [usize; 4]| {
            candle::Tensor::from_slice(v, (dims[0], dims[1], dims[2], dims[3]), &dev)
                .expect("candle: tensor from the row's data")
        };
        let stages = stages(row, data)
            .into_iter()
            .map(|s| {
                let p = s.p;
                // candle's conv2d takes one padding, stride and dilation for both axes.
                let pads = [p.pad_top, p.pad_bottom, p.pad_left, p.pad_right];
                assert!(
                    pads.iter().all(|&x| x == p.pad_top)
                        && p.stride_h == p.stride_w
                        && p.dilation_h == p.dilation_w,
                    "{}: candle's conv2d needs the same padding, stride and dilation on both axes",
                    row.name
                );
                CandleStage {
                    weight: tensor(s.weight, weight_dims(&p)),
                    bias: tensor(s.bias, [1, p.out_channels, 1, 1]),
                    pad: p.pad_top,
                    stride: p.stride_h,
                    dilation: p.dilation_h,
                    groups: p.groups,
                    act: s.act,
                }
            })
            .collect();
        Candle {
            pool,
            input: tensor(&data.input, input_dims(row, data)),
            stages,
        }
    }

    fn run(&self) -> candle::Tensor {
        self.pool.install(|| {
            let mut x = self.input.clone();
            for s in &self.stages {
                x = x
                    .conv2d(&s.weight, s.pad, s.stride, s.dilation, s.groups)
                    .and_then(|y| y.broadcast_add(&s.bias))
                    .and_then(|y| match s.act {
                        Activation::None => Ok(y),
                        Activation::Relu => y.relu(),
                        act => {
                            let (lo, hi) = act.bounds();
                            y.clamp(lo, hi)
                        }
                    })
                    .expect("candle: forward");
            }
            x
        })
    }
}

impl RustPeer for Candle {
    fn name(&self) -> &'static str {
        "candle"
    }

    fn forward(&mut self) {
        std::hint::black_box(self.run());
    }

    fn forward_vec(&mut self) -> Vec<f32> {
        self.run()
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("candle: output to a Vec")
    }
}

// ---------------------------------------------------------------------------------------------
// tract
// ---------------------------------------------------------------------------------------------

struct Tract {
    state: tract::TypedSimpleState,
    input: tract::TValue,
}

/// An ONNX attribute of `ints`.
fn ints_attr(name: &str, ints: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: ints.iter().map(|&i| i as i64).collect(),
        ..Default::default()
    }
}

/// An ONNX f32 initializer.
fn initializer(name: &str, dims: &[usize], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

/// An ONNX f32 graph input or output of known shape.
fn value_info(name: &str, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let shape = pb::TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| Dimension {
                value: Some(Value::DimValue(d as i64)),
                ..Default::default()
            })
            .collect(),
    };
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(shape),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        name: output.to_string(),
        op_type: op.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    }
}

/// The row as an ONNX model (opset 13): `Conv` per stage, `Relu` or `Clip` for an activation.
fn onnx_model(row: &Row, data: &Data) -> pb::ModelProto {
    let input = input_dims(row, data);
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let mut x = "x".to_string();
    let (mut h, mut w) = (row.h, row.w);
    for (i, s) in stages(row, data).into_iter().enumerate() {
        let p = s.p;
        let (wn, bn, y) = (format!("w{i}"), format!("b{i}"), format!("conv{i}"));
        initializers.push(initializer(&wn, &weight_dims(&p), s.weight));
        initializers.push(initializer(&bn, &[p.out_channels], s.bias));
        nodes.push(node(
            "Conv",
            &[&x, &wn, &bn],
            &y,
            vec![
                ints_attr("kernel_shape", &[p.kernel_h, p.kernel_w]),
                ints_attr("strides", &[p.stride_h, p.stride_w]),
                ints_attr("dilations", &[p.dilation_h, p.dilation_w]),
                // ONNX order: all begins, then all ends.
                ints_attr("pads", &[p.pad_top, p.pad_left, p.pad_bottom, p.pad_right]),
                pb::AttributeProto {
                    name: "group".to_string(),
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    i: p.groups as i64,
                    ..Default::default()
                },
            ],
        ));
        x = y;
        match s.act {
            Activation::None => {}
            Activation::Relu => {
                let y = format!("relu{i}");
                nodes.push(node("Relu", &[&x], &y, Vec::new()));
                x = y;
            }
            act => {
                let (lo, hi) = act.bounds();
                let (lo_n, hi_n, y) = (format!("lo{i}"), format!("hi{i}"), format!("clip{i}"));
                initializers.push(initializer(&lo_n, &[], &[lo]));
                initializers.push(initializer(&hi_n, &[], &[hi]));
                nodes.push(node("Clip", &[&x, &lo_n, &hi_n], &y, Vec::new()));
                x = y;
            }
        }
        (h, w) = p.output_hw(h, w).expect("stage output size");
    }
    let out_c = row.stages().last().expect("one stage").0.out_channels;
    // The last node writes the graph output `y`.
    nodes.last_mut().expect("one node").output = vec!["y".to_string()];
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "conv-benches".to_string(),
        graph: Some(pb::GraphProto {
            name: row.name.to_string(),
            node: nodes,
            initializer: initializers,
            input: vec![value_info("x", &input)],
            output: vec![value_info("y", &[row.n, out_c, h, w])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Tract {
    fn new(row: &Row, data: &Data) -> Self {
        let proto = onnx_model(row, data);
        let options = tract_onnx::tract_core::runtime::RunOptions {
            executor: Some(
                tract_onnx::tract_core::tract_linalg::multithread::Executor::SingleThread,
            ),
            ..Default::default()
        };
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable_with_options(&options))
            .unwrap_or_else(|e| panic!("{}: tract: building the model: {e:?}", row.name));
        let state = plan.spawn().expect("tract: a state of the plan");
        let input = tract::Tensor::from_shape(&input_dims(row, data), &data.input)
            .expect("tract: input tensor")
            .into();
        Tract { state, input }
    }

    fn run(&mut self) -> tract::TVec<tract::TValue> {
        self.state
            .run(tvec!(self.input.clone()))
            .expect("tract: forward")
    }
}

impl RustPeer for Tract {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn forward(&mut self) {
        std::hint::black_box(self.run());
    }

    fn forward_vec(&mut self) -> Vec<f32> {
        let out = self.run();
        // In logical (NCHW) order, whatever the layout tract chose.
        out[0]
            .to_plain_array_view::<f32>()
            .expect("tract: f32 output")
            .iter()
            .copied()
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// burn
// ---------------------------------------------------------------------------------------------

struct BurnStage {
    weight: burn_tensor::Tensor<4>,
    bias: burn_tensor::Tensor<1>,
    options: burn_tensor::ops::ConvOptions<2>,
    act: Activation,
}

struct Burn {
    input: burn_tensor::Tensor<4>,
    stages: Vec<BurnStage>,
}

impl Burn {
    fn new(row: &Row, data: &Data) -> Self {
        use burn_tensor::{Tensor, TensorData};
        // burn 0.22 deprecates the ndarray backend in favour of its new `flex` one; ndarray is
        // the CPU backend the task names.
        #[allow(deprecated)]
        let device = burn_tensor::Device::ndarray();
        let stages = stages(row, data)
            .into_iter()
            .map(|s| {
                let p = s.p;
                BurnStage {
                    weight: Tensor::from_data(
                        TensorData::new(s.weight.to_vec(), weight_dims(&p)),
                        &device,
                    ),
                    bias: Tensor::from_data(
                        TensorData::new(s.bias.to_vec(), [p.out_channels]),
                        &device,
                    ),
                    options: burn_tensor::ops::ConvOptions {
                        stride: [p.stride_h, p.stride_w],
                        padding: [(p.pad_top, p.pad_bottom), (p.pad_left, p.pad_right)],
                        dilation: [p.dilation_h, p.dilation_w],
                        groups: p.groups,
                    },
                    act: s.act,
                }
            })
            .collect();
        let input = Tensor::from_data(
            TensorData::new(data.input.to_vec(), input_dims(row, data)),
            &device,
        );
        Burn { input, stages }
    }

    fn run(&self) -> burn_tensor::Tensor<4> {
        let mut x = self.input.clone();
        for s in &self.stages {
            x = burn_tensor::module::conv2d(
                x,
                s.weight.clone(),
                Some(s.bias.clone()),
                s.options.clone(),
            );
            x = match s.act {
                Activation::None => x,
                Activation::Relu => burn_tensor::activation::relu(x),
                act => {
                    let (lo, hi) = act.bounds();
                    x.clamp(lo, hi)
                }
            };
        }
        x
    }
}

impl RustPeer for Burn {
    fn name(&self) -> &'static str {
        "burn"
    }

    fn forward(&mut self) {
        std::hint::black_box(self.run());
    }

    fn forward_vec(&mut self) -> Vec<f32> {
        self.run()
            .into_data()
            .try_into_vec::<f32>()
            .expect("burn: f32 output")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ROWS;

    #[test]
    fn every_peer_computes_every_row() {
        // `build_checked` panics on a mismatch; this also checks that every row gets every peer.
        for row in ROWS {
            let data = row.data();
            let names: Vec<_> = build_checked(row, &data).iter().map(|p| p.name()).collect();
            assert_eq!(names, PEERS, "{}", row.name);
        }
    }

    #[test]
    #[should_panic(expected = "rust/candle does not compute the layer: 1 of 4 outputs")]
    fn check_rejects_one_wrong_element() {
        check(
            "row",
            "candle",
            &[1.0, 2.0, 3.0, 4.5],
            &[1.0, 2.0, 3.0, 4.0],
        );
    }

    #[test]
    #[should_panic(expected = "does not compute the layer")]
    fn check_rejects_nan() {
        check("row", "tract", &[1.0, f32::NAN], &[1.0, 2.0]);
    }

    #[test]
    fn check_accepts_rounding() {
        check("row", "burn", &[1.0, -2.000_01, 0.0], &[1.0, -2.0, 1e-6]);
    }
}
