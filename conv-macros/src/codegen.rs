//! `expand()`: the only place the stages meet. Attribute + item -> validated spec -> plans ->
//! tokens. The family emitters in `codegen/` produce the shape-specific parts; this file wraps
//! them in the public API every layer shares.

mod direct;
mod dump;
mod emit;
mod pointwise;
mod separable;
#[cfg(test)]
mod tests;
mod winograd;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::plan::{self, Plan, REG_CLASSES};
use crate::spec::{Act, Family, Spec};
use crate::{fallback, validate};

/// What a family emitter contributes to a layer.
pub struct FamilyCode {
    /// Field declarations of the layer struct (packed weights, bias).
    pub fields: TokenStream,
    /// The inherent `pub fn new(..) -> Result<Self>`, with its docs.
    pub new_fn: TokenStream,
    /// Body of `Generated::scratch_len(lanes, h, w, ho, wo) -> usize`.
    pub scratch_len: TokenStream,
    /// One `fn __run_rNN<S: Simd>(&self, simd: S, a: Args<'_>)` per distinct plan, with its
    /// register count.
    pub runs: Vec<(usize, TokenStream)>,
    /// More items of the `Generated` impl (pointwise layers: `fn amx`).
    pub generated: TokenStream,
}

pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let original = item.clone();
    let original_attr = attr.clone();
    match validate::layer(attr, item) {
        Ok((spec, item)) => {
            let out = layer(&spec, &item);
            dump::write_if_asked(&item.ident.to_string(), &out);
            out
        }
        Err((err, item)) => {
            let mut out = err.to_compile_error();
            // A struct gets a stub with the layer API; anything else (an enum, a fn) is kept
            // as written, so the user sees the one error, not more from code that uses it.
            match item {
                Some(item) => out.extend(fallback::stub(&item, says_separable(original_attr))),
                None => out.extend(original),
            }
            out
        }
    }
}

/// Whether an attribute (valid or not) declares `separable`, so its stub gets that API.
fn says_separable(attr: TokenStream) -> bool {
    crate::args::parse(attr).entries.iter().any(|e| {
        e.key == crate::args::SEPARABLE
            && matches!(&e.value, Some(crate::args::Value::Bool(b)) if b.value)
    })
}

/// The plans of `spec`, one per register class, dropping a class whose plan equals a larger
/// class's (then one body serves both).
pub fn plans(spec: &Spec) -> Vec<Plan> {
    let mut plans: Vec<Plan> = Vec::new();
    for class in REG_CLASSES {
        let p = plan::plan(spec, class);
        let same = plans.iter().any(|q| strip_regs(q) == strip_regs(&p));
        if !same {
            plans.push(p);
        }
    }
    plans
}

fn strip_regs(p: &Plan) -> Plan {
    let mut p = p.clone();
    match &mut p {
        Plan::Direct(d) => d.regs = 0,
        Plan::Gemm(g) => g.regs = 0,
        Plan::Fused(d, g) => {
            d.regs = 0;
            g.regs = 0;
        }
        Plan::Winograd(w) => w.regs = 0,
    }
    p
}

/// The kernel name: family, type, kernel, stride, padding, dilation, channels, groups, and the
/// plan of each register class, e.g. `depthwise/f32/3x3/s1/p1/c144-144/g144/r32.t1r8h/r16.t1r6`.
pub fn kernel_name(spec: &Spec, plans: &[Plan]) -> String {
    let pair = |a: usize, b: usize| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}x{b}")
        }
    };
    let pads = [spec.pad_top, spec.pad_bottom, spec.pad_left, spec.pad_right];
    let pad = if pads.iter().all(|&p| p == pads[0]) {
        pads[0].to_string()
    } else {
        format!("{}-{}-{}-{}", pads[0], pads[1], pads[2], pads[3])
    };
    let mut name = format!(
        "{}/f32/{}x{}/s{}/p{}",
        spec.family().name(),
        spec.kernel_h,
        spec.kernel_w,
        pair(spec.stride_h, spec.stride_w),
        pad,
    );
    if spec.dilation_h != 1 || spec.dilation_w != 1 {
        name += &format!("/d{}", pair(spec.dilation_h, spec.dilation_w));
    }
    if spec.separable {
        name += &format!(
            "/c{}-{}/{}.{}",
            spec.in_channels,
            spec.out_channels,
            spec.dw_act.name(),
            spec.act.name()
        );
    } else {
        name += &format!(
            "/c{}-{}/g{}",
            spec.in_channels, spec.out_channels, spec.groups
        );
        if spec.act != Act::None {
            name += &format!("/{}", spec.act.name());
        }
    }
    for p in plans {
        // g: a GEMM over gathered pixels (`plan::gathers`).
        let g = if matches!(p, Plan::Gemm(_)) && spec.family() != Family::Pointwise {
            "g"
        } else {
            ""
        };
        name += &format!("/r{}.{}{}", p.regs(), g, p.tag());
    }
    name
}

fn layer(spec: &Spec, item: &syn::ItemStruct) -> TokenStream {
    let plans = plans(spec);
    let code = match spec.family() {
        Family::Pointwise => pointwise::emit(spec, &plans),
        Family::Grouped if plan::gathers(spec) => pointwise::emit(spec, &plans),
        Family::Depthwise | Family::Grouped => direct::emit(spec, &plans),
        Family::Separable => separable::emit(spec, &plans),
    };
    let rt = emit::rt();
    let name = &item.ident;
    let vis = &item.vis;
    let attrs = &item.attrs;
    let FamilyCode {
        fields,
        new_fn,
        scratch_len,
        runs,
        generated,
    } = code;
    let (cin, cout) = (emit::lit(spec.in_channels), emit::lit(spec.out_channels));
    let kname = kernel_name(spec, &plans);
    let family = spec.family().name();

    // What differs between a single convolution and a separable pair: the parameter type, the
    // geometry forward checks against, and `Conv2dLayer` (a pair is no single convolution).
    let (params_ty, params, geometry, conv_api) = if spec.separable {
        (
            quote!(#rt::SeparableParams),
            emit::separable_params(spec),
            quote!(Self::PARAMS.geometry()),
            quote!(),
        )
    } else {
        let act = emit::activation(spec.act);
        (
            quote!(#rt::Conv2dParams),
            emit::params(spec),
            quote!(Self::PARAMS),
            quote! {
                impl #name {
                    /// The activation fused after the bias.
                    pub const ACTIVATION: #rt::Activation = #act;
                }

                impl #rt::Conv2dLayer for #name {
                    fn params(&self) -> #rt::Conv2dParams {
                        Self::PARAMS
                    }

                    fn activation(&self) -> #rt::Activation {
                        Self::ACTIVATION
                    }
                }
            },
        )
    };

    // One body per distinct plan; a register class whose plan equals the wider class's reuses
    // its body (the runtime instantiates each class's body only for that class's ISAs).
    let mut fns = TokenStream::new();
    for (_, body) in &runs {
        fns.extend(body.clone());
    }
    let body_for = |regs: usize| {
        let (r, _) = runs.iter().find(|(r, _)| *r == regs).unwrap_or(&runs[0]);
        format_ident!("__run_r{}", r)
    };
    let (run32, run16) = (body_for(32), body_for(16));
    // How a pass splits over threads (`__private::Args`): a fused body runs whole images, the
    // others their groups; a GEMM body's span is pixels, the others' rows.
    let units = emit::lit(if spec.separable { 1 } else { spec.groups });
    let span_pixels = spec.family() == Family::Pointwise || plan::gathers(spec);
    // A GEMM body's parts may also take runs of whole output-channel tiles (`Args::oc`): the
    // tile of each class's plan, as the bodies are picked (`body_for`). So may a separable
    // body's pointwise stage, each part then running the whole depthwise stage: where that
    // repeat is at most a sixteenth of the pointwise work (`taps * 16 <= out`: the depthwise
    // stage's FMAs per pixel and input channel against the pointwise stage's).
    let repeat_ok = spec.taps() * 16 <= spec.out_channels;
    let out_tile = |regs: usize| {
        let gemm: Vec<&plan::GemmPlan> = plans
            .iter()
            .filter_map(|p| match p {
                Plan::Gemm(g) => Some(g),
                Plan::Fused(_, g) if repeat_ok => Some(g),
                _ => None,
            })
            .collect();
        let plan = gemm.iter().find(|g| g.regs == regs).or(gemm.first());
        emit::lit(plan.map_or(0, |g| g.oc_tile))
    };
    let (tile16, tile32) = (out_tile(16), out_tile(32));

    quote! {
        #(#attrs)*
        #vis struct #name {
            #fields
        }

        impl #name {
            /// Input channels.
            pub const IN: usize = #cin;
            /// Output channels.
            pub const OUT: usize = #cout;
            /// The layer's parameters.
            pub const PARAMS: #params_ty = #params;
            /// The generated kernel: its name encodes the parameters and the plan.
            pub const KERNEL_INFO: #rt::KernelInfo = #rt::KernelInfo {
                name: #kname,
                family: #family,
            };

            #new_fn

            /// `(h_out, w_out)` for an `h x w` input; `Err` when it is too small for the kernel.
            pub fn output_hw(h: usize, w: usize) -> #rt::Result<(usize, usize)> {
                Self::PARAMS.output_hw(h, w)
            }

            /// FLOPs (2 x MACs) of one forward pass.
            pub fn flops(n: usize, h: usize, w: usize) -> u64 {
                Self::PARAMS.flops(n, h, w)
            }

            /// `output (n, OUT, h_out, w_out) = layer(input (n, IN, h, w))` on the best ISA.
            pub fn forward(
                &self,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> #rt::Result<()> {
                #rt::forward(self, #rt::Isa::best(), input, n, h, w, output)
            }

            /// `forward` on an explicit instruction set (`Err` when this machine lacks it).
            pub fn forward_on(
                &self,
                isa: #rt::Isa,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> #rt::Result<()> {
                #rt::forward(self, isa, input, n, h, w, output)
            }

            /// `forward` split over the threads of the current rayon pool (the global pool, or
            /// the one whose `install` this runs in); same results as `forward`.
            pub fn forward_par(
                &self,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> #rt::Result<()> {
                #rt::forward_par(self, #rt::Isa::best(), input, n, h, w, output)
            }

            /// `forward_par` on an explicit instruction set.
            pub fn forward_par_on(
                &self,
                isa: #rt::Isa,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> #rt::Result<()> {
                #rt::forward_par(self, isa, input, n, h, w, output)
            }

            /// `forward_on` as exactly `parts` parts on the current rayon pool (fewer only when
            /// the shape has fewer groups and rows), however small the pass.
            #[allow(clippy::too_many_arguments)]
            pub fn forward_split_on(
                &self,
                isa: #rt::Isa,
                parts: usize,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> #rt::Result<()> {
                #rt::forward_split(self, isa, parts, input, n, h, w, output)
            }

            /// `forward` over checked NCHW tensor views.
            pub fn forward_tensor(
                &self,
                input: &#rt::TensorRef<'_>,
                output: &mut #rt::TensorMut<'_>,
            ) -> #rt::Result<()> {
                #rt::forward_tensor(self, #rt::Isa::best(), input, output)
            }

            /// `forward` into a new `Vec`.
            pub fn forward_vec(
                &self,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
            ) -> #rt::Result<::std::vec::Vec<f32>> {
                #rt::forward_vec(self, #rt::Isa::best(), input, n, h, w)
            }
        }

        #conv_api

        impl #rt::Layer for #name {
            fn in_channels(&self) -> usize {
                Self::IN
            }

            fn out_channels(&self) -> usize {
                Self::OUT
            }

            fn output_hw(&self, h: usize, w: usize) -> #rt::Result<(usize, usize)> {
                Self::PARAMS.output_hw(h, w)
            }

            fn flops(&self, n: usize, h: usize, w: usize) -> u64 {
                Self::PARAMS.flops(n, h, w)
            }

            fn kernel_name(&self) -> &'static str {
                Self::KERNEL_INFO.name
            }

            fn forward_on(
                &self,
                isa: #rt::Isa,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> #rt::Result<()> {
                #name::forward_on(self, isa, input, n, h, w, output)
            }

            fn forward_par_on(
                &self,
                isa: #rt::Isa,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> #rt::Result<()> {
                #name::forward_par_on(self, isa, input, n, h, w, output)
            }

            #[allow(clippy::too_many_arguments)]
            fn forward_split_on(
                &self,
                isa: #rt::Isa,
                parts: usize,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> #rt::Result<()> {
                #name::forward_split_on(self, isa, parts, input, n, h, w, output)
            }
        }

        impl #rt::Generated for #name {
            const GEOMETRY: #rt::Conv2dParams = #geometry;
            const UNITS: usize = #units;
            const SPAN_PIXELS: bool = #span_pixels;
            const OUT_TILES: [usize; 2] = [#tile16, #tile32];

            fn flops(n: usize, h: usize, w: usize) -> u64 {
                Self::PARAMS.flops(n, h, w)
            }

            fn scratch_len(lanes: usize, h: usize, w: usize, ho: usize, wo: usize) -> usize {
                let _ = (lanes, h, w, ho, wo);
                #scratch_len
            }

            #[inline(always)]
            fn run_r32<S: #rt::Simd>(&self, simd: S, args: #rt::Args<'_>) {
                self.#run32(simd, args)
            }

            #[inline(always)]
            fn run_r16<S: #rt::Simd>(&self, simd: S, args: #rt::Args<'_>) {
                self.#run16(simd, args)
            }

            #generated
        }

        impl #name {
            #fns
        }
    }
}
