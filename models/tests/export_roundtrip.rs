//! A model written by `save_hf_checkpoint` loads back with identical weights and logits,
//! with tied and untied heads, biases and q/k norms; the write replaces the old directory.

mod common;

use common::{logits, Cpu};
use mars2_models::export::hf_tensors;
use mars2_models::{
    load_model, save_hf_checkpoint, Architecture, ModelConfig, RopeScaling, Transformer,
};

/// The token ids whose logits are compared.
const PROBE: [i64; 4] = [3, 7, 1, 12];

fn config(tied: bool, qwen3: bool) -> ModelConfig {
    ModelConfig {
        architecture: if qwen3 {
            Architecture::Qwen3
        } else {
            Architecture::Llama
        },
        vocab_size: 13,
        hidden_size: 8,
        intermediate_size: 12,
        num_layers: 2,
        num_heads: 2,
        num_kv_heads: 1,
        head_dim: 4,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling::None,
        max_position_embeddings: 64,
        tie_word_embeddings: tied,
        // Hugging Face Llama's `attention_bias` covers o_proj too.
        attention_bias: !qwen3,
        attention_out_bias: !qwen3,
        mlp_bias: false,
        qk_norm: qwen3,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
    }
}

#[test]
fn saved_checkpoints_load_back_identically() {
    let device = Default::default();
    let root = tempfile::tempdir().unwrap();
    for (tied, qwen3) in [(true, false), (false, false), (false, true)] {
        let c = config(tied, qwen3);
        let model = Transformer::<Cpu>::random(&c, &device);
        let dir = root.path().join(format!("ckpt-{tied}-{qwen3}"));
        // A stale directory is replaced.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stale.txt"), "old").unwrap();
        save_hf_checkpoint(&dir, &model, &c, None, None).unwrap();
        assert!(!dir.join("stale.txt").exists());
        let loaded = load_model::<Cpu>(&dir, &device).unwrap();
        assert_eq!(loaded.config.tie_word_embeddings, tied);
        assert_eq!(hf_tensors(&loaded.model), hf_tensors(&model));
        assert_eq!(logits(&loaded.model, &PROBE), logits(&model, &PROBE));
    }
}
