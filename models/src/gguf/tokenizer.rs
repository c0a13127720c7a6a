//! Rebuilds a Hugging Face `tokenizers` tokenizer from a GGUF file's own vocabulary
//! (`tokenizer.ggml.tokens`, `token_type`, `merges`): byte-level BPE as GPT-2 style models use,
//! with control and user-defined tokens registered as special added tokens.
//!
//! The pre-tokenizer follows the file's `tokenizer.ggml.pre`: `qwen2` (Qwen2/2.5/3) gets Qwen's
//! NFC normalization and split pattern (letters with one leading non-letter, digits one at a
//! time, punctuation runs with their newlines, whitespace runs); every other value keeps GPT-2's
//! byte-level splitting.

use serde_json::{json, Map, Value};

use super::file::GgufFile;
use super::metadata::MetadataValue;
use crate::error::{ModelError, Result};

/// GGUF token types that are whole added tokens rather than BPE pieces.
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Qwen's pre-tokenizer split pattern (`tokenizer.ggml.pre = "qwen2"`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `normalizer`, `pre_tokenizer` and `decoder` entries for a GGUF pre-tokenizer name.
fn text_handling(pre: Option<&str>) -> (Value, Value, Value) {
    match pre {
        Some("qwen2") => {
            let byte_level = json!({
                "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
                "use_regex": false,
            });
            (
                json!({"type": "NFC"}),
                json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated",
                     "invert": false},
                    byte_level,
                ]}),
                byte_level,
            )
        }
        _ => (
            Value::Null,
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                   "use_regex": true}),
            json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                   "use_regex": true}),
        ),
    }
}

/// Builds the `tokenizer.json` document for a GGUF file's vocabulary.
pub fn tokenizer_json_from_gguf(file: &GgufFile) -> Result<Value> {
    let err = |message: String| ModelError::Tokenizer {
        path: file.path().to_path_buf(),
        message,
    };
    let model = file
        .get("tokenizer.ggml.model")
        .and_then(MetadataValue::as_str)
        .ok_or_else(|| err("no tokenizer.ggml.model in the GGUF metadata".into()))?;
    if model != "gpt2" {
        return Err(err(format!(
            "tokenizer model {model:?} is not supported (supported: gpt2 byte-level BPE)"
        )));
    }
    let strings = |key: &str| -> Result<Vec<String>> {
        file.get(key)
            .and_then(MetadataValue::as_array)
            .ok_or_else(|| err(format!("no {key} array in the GGUF metadata")))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| err(format!("{key} holds a non-string")))
            })
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i64> = match file
        .get("tokenizer.ggml.token_type")
        .and_then(MetadataValue::as_array)
    {
        Some(items) => items.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
        None => vec![1; tokens.len()],
    };
    let mut vocab = Map::new();
    let mut added = Vec::new();
    for (id, token) in tokens.iter().enumerate() {
        vocab.insert(token.clone(), json!(id));
        let ty = types.get(id).copied().unwrap_or(1);
        if ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED {
            added.push(json!({
                "id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": ty == TOKEN_TYPE_CONTROL,
            }));
        }
    }
    let merges: Vec<Value> = merges
        .iter()
        .map(|m| {
            let (a, b) = m
                .split_once(' ')
                .ok_or_else(|| err(format!("merge {m:?} is not two space-separated pieces")))?;
            Ok(json!([a, b]))
        })
        .collect::<Result<_>>()?;
    let pre = file
        .get("tokenizer.ggml.pre")
        .and_then(MetadataValue::as_str);
    let (normalizer, pre_tokenizer, decoder) = text_handling(pre);
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": decoder,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": merges,
        },
    }))
}
