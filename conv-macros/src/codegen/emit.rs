//! Helpers shared by the family emitters.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::spec::{Act, Spec};

/// The hidden runtime path every generated item goes through.
pub fn rt() -> TokenStream {
    quote!(::conv_runtime::__private)
}

/// `Conv2dParams { .. }` literal of a spec.
pub fn params(spec: &Spec) -> TokenStream {
    let rt = rt();
    let Spec {
        in_channels,
        out_channels,
        kernel_h,
        kernel_w,
        stride_h,
        stride_w,
        pad_top,
        pad_bottom,
        pad_left,
        pad_right,
        dilation_h,
        dilation_w,
        groups,
        bias,
        ..
    } = spec;
    let [in_channels, out_channels, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dilation_h, dilation_w, groups] =
        [
            in_channels,
            out_channels,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_top,
            pad_bottom,
            pad_left,
            pad_right,
            dilation_h,
            dilation_w,
            groups,
        ]
        .map(|v| lit(*v));
    quote! {
        #rt::Conv2dParams {
            in_channels: #in_channels,
            out_channels: #out_channels,
            kernel_h: #kernel_h,
            kernel_w: #kernel_w,
            stride_h: #stride_h,
            stride_w: #stride_w,
            pad_top: #pad_top,
            pad_bottom: #pad_bottom,
            pad_left: #pad_left,
            pad_right: #pad_right,
            dilation_h: #dilation_h,
            dilation_w: #dilation_w,
            groups: #groups,
            bias: #bias,
        }
    }
}

/// Name of accumulator `(t, r, v)`: output channel `t` of the tile, row `r`, vector `v`.
pub fn acc(t: usize, r: usize, v: usize) -> syn::Ident {
    format_ident!("acc_{}_{}_{}", t, r, v)
}

/// The fields and the `new` constructor of a single convolution: weights kept in PyTorch order
/// (the tiles index them by constant offsets), bias expanded to zeros for bias-free layers.
pub fn conv_fields(spec: &Spec) -> (TokenStream, TokenStream) {
    conv_fields_with(spec, quote!(), quote!())
}

/// [`conv_fields`] plus more fields (`extra_fields`) initialised by `extra_inits`, which may read
/// `weight` (the PyTorch-layout slice) and `b` (the stored bias).
pub fn conv_fields_with(
    spec: &Spec,
    extra_fields: TokenStream,
    extra_inits: TokenStream,
) -> (TokenStream, TokenStream) {
    let rt = rt();
    let out = lit(spec.out_channels);
    let fields = quote! {
        w: ::std::vec::Vec<f32>,
        b: ::std::vec::Vec<f32>,
        #extra_fields
    };
    let new_fn = quote! {
        /// Packs PyTorch-layout weights `(out, in / groups, kh, kw)` and bias `(out)`; the bias
        /// is `Some` exactly when the layer has one (`bias = false` layers take `None`).
        pub fn new(weight: &[f32], bias: ::core::option::Option<&[f32]>) -> #rt::Result<Self> {
            Self::PARAMS.check_weights(weight.len(), bias.map(<[f32]>::len))?;
            let b = #rt::bias_or_zeros(bias, #out);
            ::core::result::Result::Ok(Self {
                w: weight.to_vec(),
                #extra_inits
                b,
            })
        }
    };
    (fields, new_fn)
}

/// `Activation` tokens of an activation.
pub fn activation(act: Act) -> TokenStream {
    let rt = rt();
    match act {
        Act::None => quote!(#rt::Activation::None),
        Act::Relu => quote!(#rt::Activation::Relu),
        Act::Relu6 => quote!(#rt::Activation::Relu6),
        Act::Clamp(lo, hi) => {
            let (lo, hi) = (f32_lit(lo), f32_lit(hi));
            quote!(#rt::Activation::Clamp { min: #lo, max: #hi })
        }
    }
}

/// Statements applying `act` to the vector variable `v` (nothing for `none`); NaN stays NaN.
pub fn activate(act: Act, v: &syn::Ident) -> TokenStream {
    let rt = rt();
    let (lo, hi) = act.bounds();
    let mut out = TokenStream::new();
    if let Some(lo) = lo {
        let lo = f32_lit(lo);
        out.extend(quote!(#v = #rt::clamp_min(simd, #v, #lo);));
    }
    if let Some(hi) = hi {
        let hi = f32_lit(hi);
        out.extend(quote!(#v = #rt::clamp_max(simd, #v, #hi);));
    }
    out
}

/// An `isize` constant; negative values as `{ -N }`, which serves both as an expression and as
/// a const generic argument (a literal token cannot be negative).
pub fn isize_lit(v: isize) -> TokenStream {
    let abs = lit(v.unsigned_abs());
    if v < 0 {
        quote!({ -#abs })
    } else {
        quote!(#abs)
    }
}

/// An `f32` literal; negative values as `-` and a literal (a literal token cannot be negative).
pub fn f32_lit(v: f32) -> TokenStream {
    let abs = proc_macro2::Literal::f32_suffixed(v.abs());
    if v.is_sign_negative() {
        quote!(-#abs)
    } else {
        quote!(#abs)
    }
}

/// Literal `usize` tokens (unsuffixed, so they read as `3` not `3usize` in dumps).
pub fn lit(v: usize) -> proc_macro2::Literal {
    proc_macro2::Literal::usize_unsuffixed(v)
}

/// `SeparableParams { .. }` literal of a `separable` spec.
pub fn separable_params(spec: &Spec) -> TokenStream {
    let rt = rt();
    let dw = params(&spec.depthwise_stage());
    let pw = params(&spec.pointwise_stage());
    let (dw_act, act) = (activation(spec.dw_act), activation(spec.act));
    quote! {
        #rt::SeparableParams {
            depthwise: #dw,
            pointwise: #pw,
            dw_activation: #dw_act,
            activation: #act,
        }
    }
}
