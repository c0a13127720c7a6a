//! Shared set-up for the criterion benchmarks: a model with random weights in the shape of a
//! small real one, so `cargo bench` needs no download.

use mars2_models::config::ModelConfig;

/// SmolLM2-135M's attention shape (9 query heads, 3 KV heads of 64) at reduced depth, width of
/// the MLP and vocabulary, so that one benchmark iteration takes milliseconds.
pub fn bench_config() -> ModelConfig {
    ModelConfig {
        vocab_size: 4096,
        num_layers: 4,
        max_position_embeddings: 2048,
        bos_token_id: None,
        eos_token_ids: vec![],
        ..ModelConfig::smollm2_135m()
    }
}

pub mod kernel_workloads;
