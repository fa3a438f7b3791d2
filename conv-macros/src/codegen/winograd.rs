//! Winograd F(2x2, 3x3) bodies (see `plan::plan_wino`): the weights are transformed at `new`,
//! and each body instantiates the runtime's transforms and products with the layer's channel
//! counts, padding and product tile as constants. A layer may have a Winograd plan on one
//! register class and direct tiles on another; `direct::emit` puts them together.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::emit::{f32_lit, lit, rt};
use crate::plan::{WinoLayout, WinoPlan};
use crate::spec::Spec;

/// The fields of the transformed weights `plans` read (`u`: lanes over tiles, `uc`: over
/// channels) and their initialisers in `new` (which has `weight`).
pub fn fields(spec: &Spec, plans: &[&WinoPlan]) -> (TokenStream, TokenStream) {
    let rt = rt();
    let (groups, ci, co) = (
        lit(spec.groups),
        lit(spec.in_per_group()),
        lit(spec.out_per_group()),
    );
    let (mut fields, mut inits) = (TokenStream::new(), TokenStream::new());
    if plans
        .iter()
        .any(|p| matches!(p.layout, WinoLayout::Tiles { .. }))
    {
        fields.extend(quote!(u: ::std::vec::Vec<f32>,));
        inits.extend(quote!(u: #rt::wino_pack(weight, #groups, #ci, #co),));
    }
    if plans
        .iter()
        .any(|p| matches!(p.layout, WinoLayout::Channels { .. }))
    {
        fields.extend(quote!(uc: ::std::vec::Vec<f32>,));
        inits.extend(quote!(uc: #rt::wino_ch_pack(weight, #groups, #ci, #co),));
    }
    (fields, inits)
}

/// Floats of scratch a Winograd body needs (an expression of `lanes`, `w` and `wo`).
pub fn scratch_need(spec: &Spec, plan: &WinoPlan) -> TokenStream {
    let rt = rt();
    let (ci, co) = (lit(spec.in_per_group()), lit(spec.out_per_group()));
    match plan.layout {
        WinoLayout::Tiles { .. } => quote!(#rt::wino_scratch_len(lanes, w, wo, #ci, #co)),
        WinoLayout::Channels { .. } => quote!(#rt::wino_ch_scratch_len(lanes, wo, #ci, #co)),
    }
}

/// The `__run_rNN` method of a Winograd plan. It reads `self.u` (the transformed weights),
/// `self.w` (the weights as given: the direct path for inputs with infinities or NaN) and
/// `self.b`.
pub fn run(spec: &Spec, plan: &WinoPlan) -> TokenStream {
    run_as(spec, plan, &format_ident!("__run_r{}", plan.regs))
}

/// [`run`] as the method `f`.
pub fn run_as(spec: &Spec, plan: &WinoPlan, f: &syn::Ident) -> TokenStream {
    let rt = rt();
    let opt = |v: Option<f32>| match v {
        Some(v) => {
            let v = f32_lit(v);
            quote!(::core::option::Option::Some(#v))
        }
        None => quote!(::core::option::Option::None),
    };
    let (lo, hi) = spec.act.bounds();
    let (lo, hi) = (opt(lo), opt(hi));
    let (groups, cin, ci, co) = (
        lit(spec.groups),
        lit(spec.in_channels),
        lit(spec.in_per_group()),
        lit(spec.out_per_group()),
    );
    let (pad_top, pl) = (lit(spec.pad_top), lit(spec.pad_left));
    let call = match plan.layout {
        WinoLayout::Tiles { cob, tvb } => {
            let (cob, tvb) = (lit(cob), lit(tvb));
            quote!(#rt::wino_run::<S, #ci, #co, #cob, #tvb, #pl>(simd, &self.u, &self.w, &self.b, layer, a))
        }
        WinoLayout::Channels { nt } => {
            let nt = lit(nt);
            quote!(#rt::wino_ch_run::<S, #ci, #co, #nt, #pl>(simd, &self.uc, &self.w, &self.b, layer, a))
        }
    };
    quote! {
        #[inline(always)]
        fn #f<S: #rt::Simd>(&self, simd: S, a: #rt::Args<'_>) {
            let layer = #rt::WinoLayer {
                groups: #groups,
                in_channels: #cin,
                pad_top: #pad_top,
                pad_left: #pl,
                lo: #lo,
                hi: #hi,
            };
            #call
        }
    }
}
