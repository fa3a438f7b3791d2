//! Bench support shared by the criterion benches.
