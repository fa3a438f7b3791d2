//! Helpers shared by the family emitters.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::spec::Spec;

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

/// The shared fields and `pack` body: weights kept in PyTorch order (the tiles index them by
/// constant offsets), bias expanded to zeros for bias-free layers.
pub fn weight_fields(spec: &Spec) -> (TokenStream, TokenStream) {
    let out = lit(spec.out_channels);
    let fields = quote! {
        w: ::std::vec::Vec<f32>,
        b: ::std::vec::Vec<f32>,
    };
    let pack = quote! {
        Self {
            w: weight.to_vec(),
            b: match bias {
                ::core::option::Option::Some(b) => b.to_vec(),
                ::core::option::Option::None => ::std::vec![0.0; #out],
            },
        }
    };
    (fields, pack)
}

/// Literal `usize` tokens (unsuffixed, so they read as `3` not `3usize` in dumps).
pub fn lit(v: usize) -> proc_macro2::Literal {
    proc_macro2::Literal::usize_unsuffixed(v)
}
