//! The integration tests of this crate in one test binary (`--test it`), one module per
//! file: a single link instead of one per file. `cargo test --test it MODULE::` runs one
//! file's tests. `gradient_check` is a binary of its own: it computes in f64, and the CPU
//! device keeps the float type of its first tensor.

mod data_parallel;
mod gvendi;
mod learning;
mod losses;
mod resume;
mod reward_model;
mod rollout_logprobs;
mod sft;
mod support;
