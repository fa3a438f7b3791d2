//! The stub emitted beside `compile_error!`: the user's struct unchanged plus the layer's public
//! API with bodies that never run. Code that uses the layer (`Layer::new(..)`, `layer.forward(..)`)
//! then still type-checks, so the user sees the attribute's error and not twenty follow-ups.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemStruct;

/// The struct plus an `impl` with the generated layer's public signatures. Compilation fails
/// anyway (the errors are emitted next to it), so the bodies are `unreachable!()`.
pub fn stub(item: &ItemStruct) -> TokenStream {
    let name = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    quote! {
        #item

        #[allow(dead_code, unused_variables, clippy::all)]
        impl #impl_generics #name #ty_generics #where_clause {
            pub const IN: usize = 0;
            pub const OUT: usize = 0;

            pub fn new(
                weight: &[f32],
                bias: ::core::option::Option<&[f32]>,
            ) -> ::conv_runtime::Result<Self> {
                ::core::unreachable!()
            }

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
