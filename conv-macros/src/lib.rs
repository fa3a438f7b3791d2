//! `#[conv_kernel(...)]`: compile-time specialised 2-D convolution kernels.
//!
//! This crate only parses and expands; users depend on `conv-runtime`, which re-exports the
//! macro. See that crate's README for the attribute reference.
#![forbid(unsafe_code)]

mod args;
mod codegen;
mod fallback;
mod plan;
mod spec;
mod validate;

use proc_macro::TokenStream;

/// Generates a convolution layer specialised to the given shape. See the `conv-runtime` docs.
#[proc_macro_attribute]
pub fn conv_kernel(attr: TokenStream, item: TokenStream) -> TokenStream {
    codegen::expand(attr.into(), item.into()).into()
}
