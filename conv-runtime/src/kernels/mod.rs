//! Kernels that do not depend on the macro: the naive reference and the generic run-time-shaped
//! kernel.

pub mod generic;
pub mod reference;
