//! The integration tests of this crate in one test binary (`--test it`), one module per
//! file: a single link instead of one per file. `cargo test --test it MODULE::` runs one
//! file's tests.

mod bad_inputs;
mod engine_threads;
mod fused_kernels;
mod gguf_blocks;
mod gguf_round_trip;
mod hf_checkpoint_variants;
mod host_decode;
mod int8_activations;
mod paged_engine;
mod qwen2_5_coder;
mod qwen3_tokenizer;
mod smollm2;
mod tiny_parity;
mod training_device;
