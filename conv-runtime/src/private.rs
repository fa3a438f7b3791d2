//! The only path generated code calls. Not public API: no stability promise.
