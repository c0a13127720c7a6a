//! The integration tests of this crate in one test binary (`--test it`), one module per
//! file: a single link instead of one per file. `cargo test --test it MODULE::` runs one
//! file's tests.

mod common;
mod export_roundtrip;
mod kernels_vs_reference;
mod quantized_model;
mod quantized_training;
