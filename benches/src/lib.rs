//! Shared set-up for the criterion benchmarks: a model with random weights in the shape of a
//! small real one, so `cargo bench` needs no download.

use mars2_models::config::{Architecture, ModelConfig, RopeScaling};

/// SmolLM2-135M's attention shape (9 query heads, 3 KV heads of 64) at reduced depth, width of
/// the MLP and vocabulary, so that one benchmark iteration takes milliseconds.
pub fn bench_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 4096,
        hidden_size: 576,
        intermediate_size: 1536,
        num_layers: 4,
        num_heads: 9,
        num_kv_heads: 3,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 100_000.0,
        rope_scaling: RopeScaling::None,
        max_position_embeddings: 2048,
        tie_word_embeddings: true,
        attention_bias: false,
        attention_out_bias: false,
        mlp_bias: false,
        qk_norm: false,
        bos_token_id: None,
        eos_token_ids: vec![],
    }
}
