//! Tiny models whose tokens are whole words or whole programs, written as Hugging Face
//! directories (random weights, a word-level tokenizer, a ChatML template). Every answer of
//! one token is then a complete program, so tests and examples can run the real search,
//! sandbox and training loop in seconds and still see programs pass and fail.

use std::path::Path;

use burn::tensor::backend::Backend;
use serde_json::{json, Value};

use crate::error::{ModelError, Result};
use crate::{save_hf_checkpoint, ModelConfig, Transformer};

/// The special tokens every word-level model starts with: unknown, turn start, turn end (the
/// end-of-sequence token).
pub const WORD_LEVEL_SPECIALS: [&str; 3] = ["<unk>", "<|im_start|>", "<|im_end|>"];

/// Writes a model with random weights (`hidden_size` wide, one layer) over the vocabulary
/// [`WORD_LEVEL_SPECIALS`] followed by `words` into `dir`: `words[i]` is token `i + 3`. Text
/// splits on whitespace; a piece that is not a word is `<unk>`. Returns the model's config.
pub fn save_word_level_model<B: Backend>(
    dir: &Path,
    words: &[String],
    hidden_size: usize,
    device: &B::Device,
) -> Result<ModelConfig> {
    let vocabulary: Vec<&str> = WORD_LEVEL_SPECIALS
        .iter()
        .copied()
        .chain(words.iter().map(String::as_str))
        .collect();
    let config = ModelConfig {
        max_position_embeddings: 4096,
        eos_token_ids: vec![2],
        ..ModelConfig::tiny_llama(vocabulary.len(), hidden_size, 1)
    };
    let model = Transformer::<B>::random(&config, device);
    save_hf_checkpoint(dir, &model, &config, None, None)?;
    let vocab: serde_json::Map<String, Value> = vocabulary
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), json!(i)))
        .collect();
    let special = |id: usize| {
        json!({"id": id, "content": vocabulary[id], "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0), special(1), special(2)],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    let tokenizer_config = json!({
        "eos_token": "<|im_end|>", "bos_token": null, "unk_token": "<unk>"
    });
    let template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}\
                    <|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n\
                    {% endif %}";
    for (name, text) in [
        ("tokenizer.json", tokenizer.to_string()),
        ("tokenizer_config.json", tokenizer_config.to_string()),
        ("chat_template.jinja", template.to_string()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ModelError::Io { path, source })?;
    }
    Ok(config)
}
