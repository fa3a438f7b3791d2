//! `separable`: a depthwise stage and a pointwise stage fused into one kernel.
//!
//! Per batch image the output rows are computed in steps of `R` rows (`__private::fused_rows`:
//! as many as keep `in x R x w_out` floats within an L2 budget, a multiple of the depthwise row
//! tile). For each step, the depthwise stage (bias, `dw_act`) writes those `R` rows of every
//! channel into a scratch block, and the pointwise stage reads the block at once while it is
//! still in cache, a GEMM over its `R * w_out` pixels straight into the output rows. The
//! intermediate `n x in x h_out x w_out` tensor never exists.
//!
//! Split over threads, a pass on small planes (a part would get fewer rows than hold 128 pixels)
//! is cut by runs of the pointwise stage's output-channel tiles when the depthwise stage costs
//! at most a sixteenth of it (`Args::oc`): every part runs the whole depthwise stage and reads
//! only its share of the pointwise weights, where a cut by rows reads all of them in both parts
//! and splits 7 rows 3 | 4. On 2 threads (`with_ours.py`, both builds in the same 9 rounds,
//! medians): 1024 -> 1024 on 7 x 7 579 -> 490 us (XNNPACK 506), 512 -> 512 on 14 x 14 504 ->
//! 475 (XNNPACK 580); one thread unchanged.
//!
//! Both stages are the same register tiles as the standalone depthwise and pointwise layers
//! (`direct::stage`, `pointwise::stage`), planned for their own shapes.
//!
//! On `sep_mnv2_144_24_56` (AVX-512) the two stages take about half the time each, and reading
//! the input from L3 costs the row about 16% (98.5 ns per output pixel on 56 x 56 planes, 82.4
//! on 16 x 56 ones whose input stays in L2, interleaved). Prefetching the next channel's rows
//! of the step before each channel's depthwise tiles (into L2 or L1, one or two channels ahead)
//! made the row 8-18% slower (10th percentile, 30 interleaved rounds); so did prefetching the
//! next step's input rows into L2 a few lines per pointwise step (10-15% slower with steps of
//! 128 KiB to 1 MiB of depthwise rows, whose size alone changed little).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::emit::{lit, rt};
use super::{direct, pointwise, FamilyCode};
use crate::plan::{DirectPlan, GemmPlan, Plan};
use crate::spec::Spec;

pub fn emit(spec: &Spec, plans: &[Plan]) -> FamilyCode {
    let rt = rt();
    let (cin, cout) = (lit(spec.in_channels), lit(spec.out_channels));
    let (col_fields, col_inits) = pointwise::column_fields(
        &spec.pointwise_stage(),
        &format_ident!("pw_w"),
        &format_ident!("pw_b"),
        &quote!(pw_weight),
        &quote!(&pw_b),
    );
    let fields = quote! {
        dw_w: ::std::vec::Vec<f32>,
        dw_b: ::std::vec::Vec<f32>,
        pw_w: ::std::vec::Vec<f32>,
        pw_b: ::std::vec::Vec<f32>,
        #col_fields
        pw_amx: ::core::option::Option<#rt::AmxGemm>,
    };
    let pw_act = super::emit::activation(spec.pointwise_stage().act);
    let new_fn = quote! {
        /// Packs PyTorch-layout weights: the depthwise stage's `dw_weight (in, 1, kh, kw)` and
        /// `dw_bias (in)`, the pointwise stage's `pw_weight (out, in, 1, 1)` and `pw_bias (out)`.
        /// Biases are `Some` exactly when the layer has them (`bias = false` drops both).
        pub fn new(
            dw_weight: &[f32],
            dw_bias: ::core::option::Option<&[f32]>,
            pw_weight: &[f32],
            pw_bias: ::core::option::Option<&[f32]>,
        ) -> #rt::Result<Self> {
            Self::PARAMS.check_weights(
                dw_weight.len(),
                dw_bias.map(<[f32]>::len),
                pw_weight.len(),
                pw_bias.map(<[f32]>::len),
            )?;
            let pw_b = #rt::bias_or_zeros(pw_bias, #cout);
            ::core::result::Result::Ok(Self {
                dw_w: dw_weight.to_vec(),
                dw_b: #rt::bias_or_zeros(dw_bias, #cin),
                pw_w: pw_weight.to_vec(),
                #col_inits
                pw_amx: #rt::AmxGemm::new(pw_weight, &pw_b, 1, #cout, #cin, #pw_act),
                pw_b,
            })
        }
    };
    let fused: Vec<(&DirectPlan, &GemmPlan)> = plans
        .iter()
        .map(|p| match p {
            Plan::Fused(d, g) => (d, g),
            _ => unreachable!("separable layers have fused plans"),
        })
        .collect();
    let row_tiles = fused.iter().map(|(d, _)| lit(d.rows));
    let scratch_len = quote! {
        let p = <Self as #rt::Generated>::GEOMETRY;
        let mut need = 0;
        #( need = need.max(#rt::FusedScratch::new(&p, #cin, lanes, w, ho, wo, #row_tiles).len()); )*
        need
    };
    let runs = fused
        .iter()
        .map(|(d, g)| (d.regs, run(spec, d, g)))
        .collect();
    FamilyCode {
        fields,
        new_fn,
        scratch_len,
        runs,
        generated: quote!(),
    }
}

fn run(spec: &Spec, dw_plan: &DirectPlan, pw_plan: &GemmPlan) -> TokenStream {
    let rt = rt();
    let f = format_ident!("__run_r{}", dw_plan.regs);
    let (dw, pw) = (spec.depthwise_stage(), spec.pointwise_stage());
    let (cin, cout) = (lit(spec.in_channels), lit(spec.out_channels));
    let row_tile = lit(dw_plan.rows);
    // The depthwise tiles' input: one channel's plane read in place, or its band filled.
    let clear = if dw_plan.in_place {
        quote!()
    } else {
        quote!(band.clear(band_buf);)
    };
    let source = if dw_plan.in_place {
        quote! {
            let planes = &image[oc0 * plane_in..][..plane_in];
        }
    } else {
        quote! {
            band.fill(simd, &image[oc0 * plane_in..][..plane_in], h, w, oy0, band_buf);
            let buf: &[f32] = band_buf;
        }
    };
    let direct::Stage {
        tiles: dw_tiles,
        setup,
        sweeps,
    } = direct::stage(
        &dw,
        dw_plan,
        "dw",
        &format_ident!("dw_w"),
        &format_ident!("dw_b"),
    );
    // Narrow planes: the depthwise stage streams each step's rows (see `StreamRows::prefer`).
    let mut dw_rows = quote! {
        let mut mid_planes = #rt::PlanesMut::new(&mut *mid, #cin, mid_plane, mid_plane);
        for oc0 in 0..#cin {
            #source
            #setup
            let out = &mut mid_planes.planes(oc0, 1);
            let oy_base = 0;
            #sweeps
        }
    };
    if let Some(stream) = &dw_plan.stream {
        let stream =
            direct::stream_sweep(&dw, stream, &format_ident!("dw_w"), &format_ident!("dw_b"));
        dw_rows = quote! {
            if #rt::StreamRows::<1>::prefer(S::F32_LANES, wo) {
                let (input, units, span) = (image, 0..#cin, oy0..oy0 + rows);
                let mut output = #rt::PlanesMut::new(&mut *mid, #cin, mid_plane, mid_plane);
                #stream
            } else {
                #dw_rows
            }
        };
    }
    let pointwise::Stage {
        tiles: pw_tiles,
        sweep,
    } = pointwise::stage(
        &pw,
        pw_plan,
        "pw",
        &format_ident!("pw_w"),
        &format_ident!("pw_b"),
    );

    quote! {
        #[inline(always)]
        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, clippy::int_plus_one, clippy::modulo_one, unused_variables)]
        fn #f<S: #rt::Simd>(&self, simd: S, a: #rt::Args<'_>) {
            #dw_tiles
            #pw_tiles

            let #rt::Args { input, mut output, scratch, h, w, ho, wo, units, span, oc, amx, .. } = a;
            // The pointwise stage on AMX tiles where the call runs on `Isa::Amx`.
            // A part of a pass cut by output channels (`Args::oc`) runs the whole depthwise
            // stage and the pointwise stage for its channels; on AMX tiles only when its cut
            // falls on their tile pairs.
            let on_pairs = |c: usize| c % #rt::AMX_OUT_TILE == 0 || c == #cout;
            let pw_amx = if amx && on_pairs(oc.start) && on_pairs(oc.end) {
                self.pw_amx.as_ref()
            } else {
                ::core::option::Option::None
            };
            let lanes = S::F32_LANES;
            // Output rows per step, the depthwise band of one channel for them (or the row of
            // zeros in-place tiles read), and the block of depthwise rows the pointwise stage
            // reads (`in` planes, `mid_plane` floats apart).
            let layout = #rt::FusedScratch::new(&<Self as #rt::Generated>::GEOMETRY, #cin, lanes, w, ho, wo, #row_tile);
            let #rt::FusedScratch { band, step_rows, mid_plane, .. } = layout;
            let #rt::FusedParts { band: band_buf, zeros, mid } = layout.split(scratch);
            #clear
            let plane_in = h * w;
            for b in units.clone() {
                let image = &input[b * #cin * plane_in..][..#cin * plane_in];
                let mut out_image = output.planes((b - units.start) * oc.len(), oc.len());
                let mut oy0 = span.start;
                while oy0 < span.end {
                    let rows = (span.end - oy0).min(step_rows);
                    // Depthwise stage: rows `oy0..oy0 + rows` of every channel into `mid`.
                    #dw_rows
                    // Pointwise stage: those rows of every output channel, from `mid`.
                    {
                        let inp: &[f32] = mid;
                        let (istride, npix, oc0, oc_range) = (mid_plane, rows * wo, 0, oc.clone());
                        let out = &mut out_image.cols((oy0 - span.start) * wo, rows * wo);
                        let tiled = pw_amx.is_some_and(|g| {
                            let pass = #rt::AmxPass {
                                input: inp,
                                plane: istride,
                                units: 0..1,
                                span: 0..npix,
                                oc: oc.clone(),
                            };
                            #rt::amx_run(g, pass, out)
                        });
                        if !tiled {
                            #sweep
                        }
                    }
                    oy0 += rows;
                }
            }
        }
    }
}
