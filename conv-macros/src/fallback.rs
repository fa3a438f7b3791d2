//! The stub emitted beside `compile_error!`: the user's struct unchanged plus the layer's public
//! API with bodies that never run. Code that uses the layer (`Layer::new(..)`, `layer.forward(..)`)
//! then still type-checks, so the user sees the attribute's error and not twenty follow-ups.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemStruct;

/// The struct plus an `impl` with the generated layer's public signatures. Compilation fails
/// anyway (the errors are emitted next to it), so the bodies are `unreachable!()`.
///
/// `separable` selects the separable API (`new` with four slices, `SeparableParams`), so the
/// user's calls to it type-check too.
pub fn stub(item: &ItemStruct, separable: bool) -> TokenStream {
    let name = &item.ident;
    let (params_ty, params, new_fn) = if separable {
        (
            quote!(::conv_runtime::SeparableParams),
            quote! {
                ::conv_runtime::SeparableParams {
                    depthwise: ::conv_runtime::Conv2dParams::new(1, 1, 1),
                    pointwise: ::conv_runtime::Conv2dParams::new(1, 1, 1),
                    dw_activation: ::conv_runtime::Activation::None,
                    activation: ::conv_runtime::Activation::None,
                }
            },
            quote! {
                pub fn new(
                    dw_weight: &[f32],
                    dw_bias: ::core::option::Option<&[f32]>,
                    pw_weight: &[f32],
                    pw_bias: ::core::option::Option<&[f32]>,
                ) -> ::conv_runtime::Result<Self> {
                    ::core::unreachable!()
                }
            },
        )
    } else {
        (
            quote!(::conv_runtime::Conv2dParams),
            quote!(::conv_runtime::Conv2dParams::new(1, 1, 1)),
            quote! {
                pub fn new(
                    weight: &[f32],
                    bias: ::core::option::Option<&[f32]>,
                ) -> ::conv_runtime::Result<Self> {
                    ::core::unreachable!()
                }
            },
        )
    };
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    quote! {
        #item

        #[allow(dead_code, unused_variables, clippy::all)]
        impl #impl_generics #name #ty_generics #where_clause {
            pub const IN: usize = 0;
            pub const OUT: usize = 0;
            pub const PARAMS: #params_ty = #params;
            pub const KERNEL_INFO: ::conv_runtime::KernelInfo = ::conv_runtime::KernelInfo {
                name: "",
                family: "",
            };

            pub fn flops(n: usize, h: usize, w: usize) -> u64 {
                ::core::unreachable!()
            }

            pub fn forward_on(
                &self,
                isa: ::conv_runtime::Isa,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> ::conv_runtime::Result<()> {
                ::core::unreachable!()
            }

            pub fn forward_par(
                &self,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> ::conv_runtime::Result<()> {
                ::core::unreachable!()
            }

            pub fn forward_par_on(
                &self,
                isa: ::conv_runtime::Isa,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> ::conv_runtime::Result<()> {
                ::core::unreachable!()
            }

            pub fn forward_split_on(
                &self,
                isa: ::conv_runtime::Isa,
                parts: usize,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> ::conv_runtime::Result<()> {
                ::core::unreachable!()
            }

            pub fn forward_tensor(
                &self,
                input: &::conv_runtime::TensorRef<'_>,
                output: &mut ::conv_runtime::TensorMut<'_>,
            ) -> ::conv_runtime::Result<()> {
                ::core::unreachable!()
            }

            pub fn forward_vec(
                &self,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
            ) -> ::conv_runtime::Result<::std::vec::Vec<f32>> {
                ::core::unreachable!()
            }

            #new_fn

            pub fn output_hw(h: usize, w: usize) -> ::conv_runtime::Result<(usize, usize)> {
                ::core::unreachable!()
            }

            pub fn forward(
                &self,
                input: &[f32],
                n: usize,
                h: usize,
                w: usize,
                output: &mut [f32],
            ) -> ::conv_runtime::Result<()> {
                ::core::unreachable!()
            }
        }
    }
}
