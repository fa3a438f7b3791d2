//! Bench support shared by the criterion bench (`benches/conv.rs`) and the quick side-by-side
//! table (`src/bin/summary.rs`).
//!
//! [`ROWS`] is the one table of benchmarked layers: one `#[conv_kernel]` layer per row of
//! `shared/shapes.tsv`. Row names are the names of `shapes.tsv`; a test checks the table against
//! that file. A `separable` row also carries the same pair as two generated layers run one after
//! the other ([`Row::unfused`]), the baseline the fused kernel has to beat.

use std::sync::Mutex;

pub mod peak;

use conv_runtime::{conv_kernel, Conv2dParams, GenericConv2d, Isa, Layer, Result, SeparableParams};

#[cfg(feature = "rust-peers")]
pub mod rust_peers;

/// Environment variable that forces the instruction set: `avx512`, `avx2`, `neon` or `scalar`.
pub const ISA_ENV: &str = "CONV_BENCH_ISA";

// ---------------------------------------------------------------------------------------------
// The layers, in the order of shapes.tsv
// ---------------------------------------------------------------------------------------------

/// `mnv2_dw32_112`: MobileNetV2 block 1 depthwise.
#[conv_kernel(in = 32, out = 32, k = 3, groups = 32, stride = 1, pad = 1)]
pub struct Mnv2Dw32_112;

/// `mnv2_dw96_112_s2`: MobileNetV2 block 2 depthwise, stride 2.
#[conv_kernel(in = 96, out = 96, k = 3, groups = 96, stride = 2, pad = 1)]
pub struct Mnv2Dw96_112S2;

/// `mnv2_dw144_56`: MobileNetV2 block 3 depthwise.
#[conv_kernel(in = 144, out = 144, k = 3, groups = 144, stride = 1, pad = 1)]
pub struct Mnv2Dw144_56;

/// `mnv2_dw384_14`: MobileNetV2 stage 4 depthwise.
#[conv_kernel(in = 384, out = 384, k = 3, groups = 384, stride = 1, pad = 1)]
pub struct Mnv2Dw384_14;

/// `mnv3_dw240_14_k5`: MobileNetV3 / EfficientNet 5x5 depthwise.
#[conv_kernel(in = 240, out = 240, k = 5, groups = 240, stride = 1, pad = 2)]
pub struct Mnv3Dw240_14K5;

/// `mnv2_pw144_24_56`: MobileNetV2 block 3 projection.
#[conv_kernel(in = 144, out = 24, k = 1)]
pub struct Mnv2Pw144_24_56;

/// `mnv2_pw384_64_14`: MobileNetV2 stage 4 projection.
#[conv_kernel(in = 384, out = 64, k = 1)]
pub struct Mnv2Pw384_64_14;

/// `mnv1_pw256_256_28`: MobileNetV1 pointwise.
#[conv_kernel(in = 256, out = 256, k = 1)]
pub struct Mnv1Pw256_256_28;

/// `resnext_g32_128_56`: ResNeXt-50 32x4d conv2 stage.
#[conv_kernel(in = 128, out = 128, k = 3, groups = 32, stride = 1, pad = 1)]
pub struct ResnextG32_128_56;

/// `resnext_g32_256_28`: ResNeXt-50 32x4d conv3 stage.
#[conv_kernel(in = 256, out = 256, k = 3, groups = 32, stride = 1, pad = 1)]
pub struct ResnextG32_256_28;

/// `resnext_g32_512_14`: ResNeXt-50 32x4d conv4 stage.
#[conv_kernel(in = 512, out = 512, k = 3, groups = 32, stride = 1, pad = 1)]
pub struct ResnextG32_512_14;

// The separable rows: the fused layer, and its two stages as separate generated layers.

/// `sep_mnv2_144_24_56`: MobileNetV2 block, depthwise 3x3 then pointwise 144 -> 24.
#[conv_kernel(in = 144, out = 24, k = 3, stride = 1, pad = 1, separable)]
pub struct SepMnv2_144_24_56;
/// The depthwise stage of `sep_mnv2_144_24_56` alone.
#[conv_kernel(in = 144, out = 144, k = 3, groups = 144, stride = 1, pad = 1)]
pub struct SepMnv2Dw144;
/// The pointwise stage of `sep_mnv2_144_24_56` alone.
#[conv_kernel(in = 144, out = 24, k = 1)]
pub struct SepMnv2Pw144_24;

/// `sep_mnv1_256_256_28`: MobileNetV1 block, depthwise 3x3 then pointwise 256 -> 256.
#[conv_kernel(in = 256, out = 256, k = 3, stride = 1, pad = 1, separable)]
pub struct SepMnv1_256_256_28;
/// The depthwise stage of `sep_mnv1_256_256_28` alone.
#[conv_kernel(in = 256, out = 256, k = 3, groups = 256, stride = 1, pad = 1)]
pub struct SepMnv1Dw256;
/// The pointwise stage of `sep_mnv1_256_256_28` alone.
#[conv_kernel(in = 256, out = 256, k = 1)]
pub struct SepMnv1Pw256_256;

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// What a row computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// One convolution.
    Conv(Conv2dParams),
    /// A depthwise convolution, then a pointwise one.
    Separable(SeparableParams),
}

impl Shape {
    fn in_channels(&self) -> usize {
        match self {
            Shape::Conv(p) => p.in_channels,
            Shape::Separable(p) => p.in_channels(),
        }
    }
}

/// Builds a layer from a row's operands. Benches call layers through `dyn Layer`: one indirect
/// call per forward pass is noise next to the microseconds a pass takes.
pub type BuildFn = fn(&Data) -> Result<Box<dyn Layer>>;

/// One benchmarked layer: a row of `shapes.tsv` and its generated kernel.
#[derive(Clone, Copy)]
pub struct Row {
    /// The row name of `shapes.tsv`, e.g. `mnv2_dw144_56`; criterion group name.
    pub name: &'static str,
    /// `depthwise`, `pointwise`, `grouped` or `separable`.
    pub kind: &'static str,
    /// Batch, input height and width of the benchmarked call.
    pub n: usize,
    pub h: usize,
    pub w: usize,
    /// The layer's parameters (the generated layer's `PARAMS`).
    pub shape: Shape,
    /// The generated kernel's name (`KERNEL_INFO.name`).
    pub kernel: &'static str,
    /// Builds the generated layer.
    pub build: BuildFn,
    /// `separable` rows: builds the two stages as separate generated layers run one after the
    /// other (the intermediate tensor written to memory and read back).
    pub unfused: Option<BuildFn>,
}

macro_rules! row {
    ($name:literal, $kind:literal, $layer:ty, n = $n:literal, hw = $h:literal x $w:literal) => {
        Row {
            name: $name,
            kind: $kind,
            n: $n,
            h: $h,
            w: $w,
            shape: Shape::Conv(<$layer>::PARAMS),
            kernel: <$layer>::KERNEL_INFO.name,
            build: |d| Ok(Box::new(<$layer>::new(&d.weights[0], Some(&d.weights[1]))?)),
            unfused: None,
        }
    };
    ($name:literal, separable, $layer:ty, $dw:ty, $pw:ty, n = $n:literal, hw = $h:literal x $w:literal) => {
        Row {
            name: $name,
            kind: "separable",
            n: $n,
            h: $h,
            w: $w,
            shape: Shape::Separable(<$layer>::PARAMS),
            kernel: <$layer>::KERNEL_INFO.name,
            build: |d| {
                let w = &d.weights;
                Ok(Box::new(<$layer>::new(
                    &w[0],
                    Some(&w[1]),
                    &w[2],
                    Some(&w[3]),
                )?))
            },
            unfused: Some(|d| {
                let w = &d.weights;
                Ok(Box::new(Chain::new(
                    Box::new(<$dw>::new(&w[0], Some(&w[1]))?),
                    Box::new(<$pw>::new(&w[2], Some(&w[3]))?),
                )))
            }),
        }
    };
}

// Feature `more-rows`: 28 more generated layers, off by default, so CI and a plain build do not
// compile them (they took CI from about 20 to 25 minutes).
#[cfg(feature = "more-rows")]
pub mod more;

/// The rows of `benches/more-shapes.tsv` (feature `more-rows`; empty without it).
#[cfg(feature = "more-rows")]
pub use more::MORE_ROWS;
/// The rows of `benches/more-shapes.tsv` (feature `more-rows`; empty without it).
#[cfg(not(feature = "more-rows"))]
pub static MORE_ROWS: &[Row] = &[];

/// The row named `name` in [`ROWS`] or [`MORE_ROWS`].
pub fn find_row(name: &str) -> Option<&'static Row> {
    ROWS.iter().chain(MORE_ROWS).find(|r| r.name == name)
}

/// Every benchmarked row, in the order of `shapes.tsv`.
pub static ROWS: &[Row] = &[
    row!("mnv2_dw32_112", "depthwise", Mnv2Dw32_112, n = 1, hw = 112 x 112),
    row!("mnv2_dw96_112_s2", "depthwise", Mnv2Dw96_112S2, n = 1, hw = 112 x 112),
    row!("mnv2_dw144_56", "depthwise", Mnv2Dw144_56, n = 1, hw = 56 x 56),
    row!("mnv2_dw384_14", "depthwise", Mnv2Dw384_14, n = 1, hw = 14 x 14),
    row!("mnv3_dw240_14_k5", "depthwise", Mnv3Dw240_14K5, n = 1, hw = 14 x 14),
    row!("mnv2_pw144_24_56", "pointwise", Mnv2Pw144_24_56, n = 1, hw = 56 x 56),
    row!("mnv2_pw384_64_14", "pointwise", Mnv2Pw384_64_14, n = 1, hw = 14 x 14),
    row!("mnv1_pw256_256_28", "pointwise", Mnv1Pw256_256_28, n = 1, hw = 28 x 28),
    row!("resnext_g32_128_56", "grouped", ResnextG32_128_56, n = 1, hw = 56 x 56),
    row!("resnext_g32_256_28", "grouped", ResnextG32_256_28, n = 1, hw = 28 x 28),
    row!("resnext_g32_512_14", "grouped", ResnextG32_512_14, n = 1, hw = 14 x 14),
    row!(
        "sep_mnv2_144_24_56",
        separable,
        SepMnv2_144_24_56,
        SepMnv2Dw144,
        SepMnv2Pw144_24,
        n = 1,
        hw = 56 x 56
    ),
    row!(
        "sep_mnv1_256_256_28",
        separable,
        SepMnv1_256_256_28,
        SepMnv1Dw256,
        SepMnv1Pw256_256,
        n = 1,
        hw = 28 x 28
    ),
];

/// Random operands of one row and a zeroed output of the right length.
pub struct Data {
    /// `(n, in, h, w)`.
    pub input: Aligned,
    /// PyTorch layouts: `[weight, bias]` of a convolution; `[dw_weight, dw_bias, pw_weight,
    /// pw_bias]` of a separable pair.
    pub weights: Vec<Vec<f32>>,
    /// `(n, out, h_out, w_out)`, zeros.
    pub output: Aligned,
}

/// Floats starting on a 64-byte boundary (a cache line), as the peers' frameworks allocate
/// tensors (ONNX Runtime, OpenVINO and XNNPACK all align to 64 bytes). A `Vec<f32>` from the
/// system allocator starts 16 bytes past a line for large sizes, so every 64-byte vector load
/// of it spans two lines; the kernels are correct for any alignment (the tests use plain
/// vectors), this only makes the timing conditions the same as the peers'.
pub struct Aligned {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// A copy of `v` on a 64-byte boundary.
    pub fn new(v: &[f32]) -> Self {
        let mut buf = vec![0.0f32; v.len() + 16];
        let start = buf.as_ptr().align_offset(64).min(16);
        buf[start..start + v.len()].copy_from_slice(v);
        Aligned {
            buf,
            start,
            len: v.len(),
        }
    }
}

impl Clone for Aligned {
    fn clone(&self) -> Self {
        Aligned::new(self)
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

impl Row {
    /// FLOPs (2 x MACs) of one forward pass.
    pub fn flops(&self) -> u64 {
        match &self.shape {
            Shape::Conv(p) => p.flops(self.n, self.h, self.w),
            Shape::Separable(p) => p.flops(self.n, self.h, self.w),
        }
    }

    /// The convolutions of the row, in order, with their activations.
    pub fn stages(&self) -> Vec<(Conv2dParams, conv_runtime::Activation)> {
        match self.shape {
            Shape::Conv(p) => vec![(p, conv_runtime::Activation::None)],
            Shape::Separable(p) => {
                vec![(p.depthwise, p.dw_activation), (p.pointwise, p.activation)]
            }
        }
    }

    /// Deterministic operands in `[-1, 1)`.
    pub fn data(&self) -> Data {
        let (n, h, w) = (self.n, self.h, self.w);
        let input_len = n * self.shape.in_channels() * h * w;
        let mut weights = Vec::new();
        let mut seed = 2;
        for (p, _) in self.stages() {
            weights.push(random_vec(p.weight_len(), seed));
            weights.push(random_vec(p.out_channels, seed + 1));
            seed += 2;
        }
        let layer = (self.build)(&Data {
            input: Aligned::new(&[]),
            weights: weights.clone(),
            output: Aligned::new(&[]),
        })
        .expect("generated layer");
        let output_len = layer.output_len(n, h, w).expect("row output size");
        Data {
            input: Aligned::new(&random_vec(input_len, 1)),
            weights,
            output: Aligned::new(&vec![0.0; output_len]),
        }
    }

    /// The generated layer with `data`'s weights.
    pub fn generated(&self, data: &Data) -> Box<dyn Layer> {
        (self.build)(data).expect("generated layer")
    }

    /// `separable` rows: the two generated stages run one after the other.
    pub fn unfused(&self, data: &Data) -> Option<Box<dyn Layer>> {
        self.unfused
            .map(|build| build(data).expect("unfused layers"))
    }

    /// The generic run-time-shaped layer(s) with `data`'s weights (two, chained, for a
    /// separable row).
    pub fn generic(&self, data: &Data) -> Box<dyn Layer> {
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        for (i, (p, act)) in self.stages().into_iter().enumerate() {
            let (w, b) = (&data.weights[2 * i], &data.weights[2 * i + 1]);
            let layer = GenericConv2d::new(p, w, Some(b))
                .and_then(|l| l.with_activation(act))
                .expect("generic layer");
            layers.push(Box::new(layer));
        }
        let mut layers = layers.into_iter();
        let first = layers.next().expect("one stage");
        match layers.next() {
            Some(second) => Box::new(Chain::new(first, second)),
            None => first,
        }
    }

    /// The naive reference on `data` (allocates, accumulates in `f64`): the stages one after
    /// the other.
    pub fn naive(&self, data: &Data) -> Vec<f32> {
        let (n, mut h, mut w) = (self.n, self.h, self.w);
        let mut x = data.input.to_vec();
        for (i, (p, act)) in self.stages().into_iter().enumerate() {
            let (wt, b) = (&data.weights[2 * i], &data.weights[2 * i + 1]);
            x = conv_runtime::reference::conv2d(&p, &x, n, h, w, wt, Some(b))
                .expect("naive reference");
            act.apply_slice(&mut x);
            (h, w) = p.output_hw(h, w).expect("stage output size");
        }
        x
    }
}

/// Two layers run one after the other through an intermediate tensor (kept between calls, so
/// only the first call allocates): how a library without fusion runs a separable pair.
pub struct Chain {
    first: Box<dyn Layer>,
    second: Box<dyn Layer>,
    mid: Mutex<Vec<f32>>,
}

impl Chain {
    /// `second(first(x))`; `second` must take `first`'s output channels.
    pub fn new(first: Box<dyn Layer>, second: Box<dyn Layer>) -> Self {
        Chain {
            first,
            second,
            mid: Mutex::new(Vec::new()),
        }
    }
}

impl Layer for Chain {
    fn in_channels(&self) -> usize {
        self.first.in_channels()
    }

    fn out_channels(&self) -> usize {
        self.second.out_channels()
    }

    fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (h, w) = self.first.output_hw(h, w)?;
        self.second.output_hw(h, w)
    }

    fn flops(&self, n: usize, h: usize, w: usize) -> u64 {
        let Ok((ho, wo)) = self.first.output_hw(h, w) else {
            return 0;
        };
        self.first.flops(n, h, w) + self.second.flops(n, ho, wo)
    }

    fn kernel_name(&self) -> &'static str {
        "chain"
    }

    fn forward_on(
        &self,
        isa: Isa,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
    ) -> Result<()> {
        let (hm, wm) = self.first.output_hw(h, w)?;
        let mut mid = self.mid.lock().unwrap_or_else(|e| e.into_inner());
        let len = self.first.output_len(n, h, w)?;
        mid.resize(len, 0.0);
        self.first.forward_on(isa, input, n, h, w, &mut mid)?;
        self.second.forward_on(isa, &mid, n, hm, wm, output)
    }
}

/// The instruction set to bench: `$CONV_BENCH_ISA` if set, else [`Isa::best`].
///
/// Panics with the list of accepted names when the variable names an unknown instruction set or
/// one this machine lacks.
pub fn bench_isa() -> Isa {
    match std::env::var(ISA_ENV) {
        Ok(name) if !name.is_empty() => parse_isa(&name).unwrap_or_else(|e| panic!("{e}")),
        _ => Isa::best(),
    }
}

/// Parses an instruction-set name and checks that this machine has it.
pub fn parse_isa(name: &str) -> std::result::Result<Isa, String> {
    let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
    let isa = Isa::ALL
        .into_iter()
        .find(|i| i.name() == name.trim())
        .ok_or_else(|| format!("`{ISA_ENV}={name}`: expected one of {}", names.join(", ")))?;
    if !isa.is_available() {
        let have: Vec<&str> = Isa::available().iter().map(|i| i.name()).collect();
        return Err(format!(
            "`{ISA_ENV}={name}`: this machine has only {}",
            have.join(", ")
        ));
    }
    Ok(isa)
}

/// `len` deterministic floats in `[-1, 1)` from a xorshift generator seeded with `seed`.
pub fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // The top 24 bits, as a float in [0, 1), mapped to [-1, 1).
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `shared/shapes.tsv`, beside the repository (as on the developer machines and in CI).
    const SHAPES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/shapes.tsv");

    fn col(fields: &[&str], i: usize) -> usize {
        fields[i]
            .parse()
            .unwrap_or_else(|_| panic!("shapes.tsv: column {i} of {fields:?} is not a number"))
    }

    /// `benches/more-shapes.tsv`, in this repository.
    #[cfg(feature = "more-rows")]
    const MORE_SHAPES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/more-shapes.tsv");

    /// `(name, kind, n, h, w, shape)` of every row of a shapes file.
    fn read_shapes(path: &str) -> Vec<(String, String, usize, usize, usize, Shape)> {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {path} (shared/ beside the repo?): {e}"));
        let mut want = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            // name kind n c_in c_out h w k stride pad groups dilation source
            let f: Vec<&str> = line.split('\t').collect();
            let params = Conv2dParams::new(col(&f, 3), col(&f, 4), col(&f, 7))
                .stride(col(&f, 8))
                .pad(col(&f, 9))
                .groups(col(&f, 10))
                .dilation(col(&f, 11));
            let shape = if f[1] == "separable" {
                // The depthwise stage carries the geometry; `groups` is `c_in`.
                let mut dw = params;
                dw.out_channels = dw.in_channels;
                Shape::Separable(SeparableParams {
                    depthwise: dw,
                    pointwise: Conv2dParams::new(col(&f, 3), col(&f, 4), 1),
                    dw_activation: conv_runtime::Activation::None,
                    activation: conv_runtime::Activation::None,
                })
            } else {
                Shape::Conv(params)
            };
            let (name, kind) = (f[0].to_string(), f[1].to_string());
            want.push((name, kind, col(&f, 2), col(&f, 5), col(&f, 6), shape));
        }
        want
    }

    fn table(rows: &[Row]) -> Vec<(String, String, usize, usize, usize, Shape)> {
        rows.iter()
            .map(|r| (r.name.into(), r.kind.into(), r.n, r.h, r.w, r.shape))
            .collect()
    }

    #[test]
    fn rows_match_shapes_tsv() {
        assert_eq!(table(ROWS), read_shapes(SHAPES));
    }

    #[cfg(feature = "more-rows")]
    #[test]
    fn more_rows_match_more_shapes_tsv() {
        assert_eq!(table(MORE_ROWS), read_shapes(MORE_SHAPES));
        let mut names: Vec<&str> = ROWS.iter().chain(MORE_ROWS).map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            ROWS.len() + MORE_ROWS.len(),
            "row names repeat"
        );
    }

    #[test]
    fn generated_and_generic_agree_on_every_row() {
        // A cheap check that the tables wire each row to the right layers (the kernels
        // themselves are tested against the reference in conv-tests).
        for row in ROWS.iter().chain(MORE_ROWS) {
            let data = row.data();
            let run = |layer: &dyn Layer| {
                let mut out = vec![0.0; data.output.len()];
                layer
                    .forward_on(Isa::best(), &data.input, row.n, row.h, row.w, &mut out)
                    .unwrap();
                out
            };
            let generic = run(&*row.generic(&data));
            let mut candidates = vec![("generated", run(&*row.generated(&data)))];
            if let Some(unfused) = row.unfused(&data) {
                candidates.push(("unfused", run(&*unfused)));
            }
            assert_eq!(candidates.len(), 1 + usize::from(row.kind == "separable"));
            for (what, out) in candidates {
                let worst = out
                    .iter()
                    .zip(&generic)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    worst < 1e-3,
                    "{}: {what} and generic differ by {worst}",
                    row.name
                );
            }
        }
    }

    #[test]
    fn isa_names_parse() {
        assert_eq!(parse_isa("scalar"), Ok(Isa::Scalar));
        assert!(parse_isa("sse9").unwrap_err().contains("expected one of"));
    }
}
