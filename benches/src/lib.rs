//! Bench support shared by the criterion bench (`benches/conv.rs`) and the quick side-by-side
//! table (`src/bin/summary.rs`).
//!
//! [`ROWS`] is the one table of benchmarked layers: one `#[conv_kernel]` layer per row of
//! `shared/shapes.tsv` whose kind is `depthwise`, `pointwise` or `grouped` (the `separable` rows
//! need the fused kernel and are not here yet). Row names are the names of `shapes.tsv`; a test
//! checks the table against that file.

use conv_runtime::{conv_kernel, Conv2dLayer, Conv2dParams, GenericConv2d, Isa, Result};

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

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// Builds a generated layer from PyTorch-layout weights and bias. Benches call it through
/// `dyn Conv2dLayer`: one indirect call per forward pass is noise next to the microseconds a
/// pass takes.
pub type BuildFn = fn(&[f32], Option<&[f32]>) -> Result<Box<dyn Conv2dLayer>>;

/// One benchmarked layer: a row of `shapes.tsv` and its generated kernel.
#[derive(Clone, Copy)]
pub struct Row {
    /// The row name of `shapes.tsv`, e.g. `mnv2_dw144_56`; criterion group name.
    pub name: &'static str,
    /// `depthwise`, `pointwise` or `grouped`.
    pub kind: &'static str,
    /// Batch, input height and width of the benchmarked call.
    pub n: usize,
    pub h: usize,
    pub w: usize,
    /// The layer's parameters (the generated layer's `PARAMS`).
    pub params: Conv2dParams,
    /// The generated kernel's name (`KERNEL_INFO.name`).
    pub kernel: &'static str,
    /// Builds the generated layer.
    pub build: BuildFn,
}

macro_rules! row {
    ($name:literal, $kind:literal, $layer:ty, n = $n:literal, hw = $h:literal x $w:literal) => {
        Row {
            name: $name,
            kind: $kind,
            n: $n,
            h: $h,
            w: $w,
            params: <$layer>::PARAMS,
            kernel: <$layer>::KERNEL_INFO.name,
            build: |weight, bias| Ok(Box::new(<$layer>::new(weight, bias)?)),
        }
    };
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
];

/// Random operands of one row and a zeroed output of the right length.
pub struct Data {
    /// `(n, in, h, w)`.
    pub input: Vec<f32>,
    /// `(out, in / groups, kh, kw)`.
    pub weight: Vec<f32>,
    /// `(out)`.
    pub bias: Vec<f32>,
    /// `(n, out, h_out, w_out)`, zeros.
    pub output: Vec<f32>,
}

impl Row {
    /// FLOPs (2 x MACs) of one forward pass.
    pub fn flops(&self) -> u64 {
        self.params.flops(self.n, self.h, self.w)
    }

    /// Deterministic operands in `[-1, 1)`.
    pub fn data(&self) -> Data {
        let p = &self.params;
        let input_len = p.input_len(self.n, self.h, self.w).expect("row input size");
        let output_len = p
            .output_len(self.n, self.h, self.w)
            .expect("row output size");
        Data {
            input: random_vec(input_len, 1),
            weight: random_vec(p.weight_len(), 2),
            bias: random_vec(p.out_channels, 3),
            output: vec![0.0; output_len],
        }
    }

    /// The generated layer with `data`'s weights.
    pub fn generated(&self, data: &Data) -> Box<dyn Conv2dLayer> {
        (self.build)(&data.weight, Some(&data.bias)).expect("generated layer")
    }

    /// The generic run-time-shaped layer with `data`'s weights.
    pub fn generic(&self, data: &Data) -> GenericConv2d {
        GenericConv2d::new(self.params, &data.weight, Some(&data.bias)).expect("generic layer")
    }

    /// The naive reference on `data` (allocates its output, accumulates in `f64`).
    pub fn naive(&self, data: &Data) -> Vec<f32> {
        conv_runtime::reference::conv2d(
            &self.params,
            &data.input,
            self.n,
            self.h,
            self.w,
            &data.weight,
            Some(&data.bias),
        )
        .expect("naive reference")
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

    #[test]
    fn rows_match_shapes_tsv() {
        let text = std::fs::read_to_string(SHAPES)
            .unwrap_or_else(|e| panic!("cannot read {SHAPES} (shared/ beside the repo): {e}"));
        let mut want = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            // name kind n c_in c_out h w k stride pad groups dilation source
            let f: Vec<&str> = line.split('\t').collect();
            if !matches!(f[1], "depthwise" | "pointwise" | "grouped") {
                continue;
            }
            let params = Conv2dParams::new(col(&f, 3), col(&f, 4), col(&f, 7))
                .stride(col(&f, 8))
                .pad(col(&f, 9))
                .groups(col(&f, 10))
                .dilation(col(&f, 11));
            want.push((f[0], f[1], col(&f, 2), col(&f, 5), col(&f, 6), params));
        }
        let have: Vec<_> = ROWS
            .iter()
            .map(|r| (r.name, r.kind, r.n, r.h, r.w, r.params))
            .collect();
        assert_eq!(have, want);
    }

    #[test]
    fn generated_and_generic_agree_on_every_row() {
        // A cheap check that the table wires each row to the right layer (the kernels
        // themselves are tested against the reference in conv-tests).
        for row in ROWS {
            let mut data = row.data();
            row.generated(&data)
                .forward_on(
                    Isa::best(),
                    &data.input,
                    row.n,
                    row.h,
                    row.w,
                    &mut data.output,
                )
                .unwrap();
            let mut generic = vec![0.0; data.output.len()];
            row.generic(&data)
                .forward_on(Isa::best(), &data.input, row.n, row.h, row.w, &mut generic)
                .unwrap();
            let worst = data
                .output
                .iter()
                .zip(&generic)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-3,
                "{}: generated and generic differ by {worst}",
                row.name
            );
        }
    }

    #[test]
    fn isa_names_parse() {
        assert_eq!(parse_isa("scalar"), Ok(Isa::Scalar));
        assert!(parse_isa("sse9").unwrap_err().contains("expected one of"));
    }
}
