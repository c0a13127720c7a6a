//! A model written by `save_hf_checkpoint` loads back with identical weights and logits,
//! with tied and untied heads, biases and q/k norms; the write replaces the old directory.

use crate::common::{logits, Cpu};
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

/// A word-level tokenizer of the 13 tokens of [`config`]'s vocabulary, ids 0–2 special.
fn tokenizer(dir: &std::path::Path) -> mars2_models::TextTokenizer {
    let words = [
        "<unk>",
        "<|im_start|>",
        "<|im_end|>",
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
        "g",
        "h",
        "i",
        "j",
    ];
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let special = |id: usize| {
        serde_json::json!({"id": id, "content": words[id], "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true})
    };
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0), special(1), special(2)],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    let path = dir.join("source-tokenizer.json");
    std::fs::write(&path, json.to_string()).unwrap();
    mars2_models::TextTokenizer::from_file(&path).unwrap()
}

#[test]
fn checkpoints_name_their_tokenizer_class_pad_token_and_generation_ids() {
    let device = Default::default();
    let root = tempfile::tempdir().unwrap();
    let c = config(true, false);
    let model = Transformer::<Cpu>::random(&c, &device);
    let read = |dir: &std::path::Path, file: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
    };

    // With a chat template: its special tokens; the pad token is the end of a turn.
    let tok = tokenizer(root.path());
    let template = mars2_models::ChatTemplate::new(
        "{% for m in messages %}{{ m['content'] }}<|im_end|>{% endfor %}",
        "<|im_start|>",
        "<|im_end|>",
    )
    .unwrap();
    let dir = root.path().join("with-template");
    save_hf_checkpoint(&dir, &model, &c, Some(&tok), Some(&template)).unwrap();
    let config_json = read(&dir, "tokenizer_config.json");
    assert_eq!(config_json["tokenizer_class"], "PreTrainedTokenizerFast");
    assert_eq!(config_json["bos_token"], "<|im_start|>");
    assert_eq!(config_json["eos_token"], "<|im_end|>");
    assert_eq!(config_json["pad_token"], "<|im_end|>");
    assert_eq!(config_json["model_max_length"], 64);
    let generation = read(&dir, "generation_config.json");
    assert_eq!(generation["bos_token_id"], 1);
    assert_eq!(generation["eos_token_id"], 2);
    assert_eq!(generation["pad_token_id"], 2);
    let reloaded = mars2_models::ChatTemplate::from_model_dir(&dir)
        .unwrap()
        .expect("the template is written");
    assert_eq!(reloaded.eos_token(), "<|im_end|>");

    // Without a template: the tokens of the config's ids.
    let dir = root.path().join("tokenizer-only");
    save_hf_checkpoint(&dir, &model, &c, Some(&tok), None).unwrap();
    let config_json = read(&dir, "tokenizer_config.json");
    assert_eq!(config_json["bos_token"], "<|im_start|>");
    assert_eq!(config_json["pad_token"], "<|im_end|>");

    // Without a tokenizer: no tokenizer files, the generation ids from the config.
    let dir = root.path().join("weights-only");
    save_hf_checkpoint(&dir, &model, &c, None, None).unwrap();
    assert!(!dir.join("tokenizer_config.json").exists());
    assert_eq!(read(&dir, "generation_config.json")["pad_token_id"], 2);
}
