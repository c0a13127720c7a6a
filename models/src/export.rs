//! Writing a model as a Hugging Face checkpoint: `model.safetensors` (f32, Hugging Face
//! tensor names and `[out, in]` layouts), `config.json`, `generation_config.json`, and when
//! known `tokenizer.json`, `tokenizer_config.json` and `chat_template.jinja` — loadable by this
//! crate and by transformers (4.x and 5.x). The directory is written beside its destination and renamed into place, so
//! a reader sees either the old checkpoint or the whole new one.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::chat_template::ChatTemplate;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::layers::linear::{hf_orientation, Linear};
use crate::tokenizer::TextTokenizer;
use crate::transformer::Transformer;

/// `(name, shape, values)` of every weight, in Hugging Face form.
pub fn hf_tensors<B: Backend>(model: &Transformer<B>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
        let shape = t.dims().to_vec();
        (shape, t.to_data().iter::<f32>().collect())
    }
    let mut out = Vec::new();
    let mut push =
        |name: String, (shape, values): (Vec<usize>, Vec<f32>)| out.push((name, shape, values));
    let linear =
        |push: &mut dyn FnMut(String, (Vec<usize>, Vec<f32>)), name: String, l: &Linear<B>| {
            push(format!("{name}.weight"), host(l.effective_hf_weight()));
            if let Some(b) = &l.bias {
                push(format!("{name}.bias"), host(b.val()));
            }
        };
    push(
        "model.embed_tokens.weight".into(),
        host(model.embed_tokens.val()),
    );
    for (i, layer) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        let a = &layer.attention;
        linear(&mut push, format!("{p}.self_attn.q_proj"), &a.q_proj);
        linear(&mut push, format!("{p}.self_attn.k_proj"), &a.k_proj);
        linear(&mut push, format!("{p}.self_attn.v_proj"), &a.v_proj);
        linear(&mut push, format!("{p}.self_attn.o_proj"), &a.o_proj);
        if let Some(n) = &a.q_norm {
            push(format!("{p}.self_attn.q_norm.weight"), host(n.weight.val()));
        }
        if let Some(n) = &a.k_norm {
            push(format!("{p}.self_attn.k_norm.weight"), host(n.weight.val()));
        }
        linear(&mut push, format!("{p}.mlp.gate_proj"), &layer.mlp.gate);
        linear(&mut push, format!("{p}.mlp.up_proj"), &layer.mlp.up);
        linear(&mut push, format!("{p}.mlp.down_proj"), &layer.mlp.down);
        push(
            format!("{p}.input_layernorm.weight"),
            host(layer.input_norm.weight.val()),
        );
        push(
            format!("{p}.post_attention_layernorm.weight"),
            host(layer.post_attention_norm.weight.val()),
        );
    }
    push("model.norm.weight".into(), host(model.norm.weight.val()));
    if let Some(head) = &model.lm_head {
        // Stored `[hidden, vocab]` (or quantized `[vocab, hidden]`); Hugging Face keeps
        // `[vocab, hidden]`.
        let weight = hf_orientation(head.val(), model.quantized_head.as_ref());
        push("lm_head.weight".into(), host(weight));
    }
    out
}

/// Writes `model` as a Hugging Face checkpoint directory at `dir` (replacing it atomically).
pub fn save_hf_checkpoint<B: Backend>(
    dir: &Path,
    model: &Transformer<B>,
    config: &ModelConfig,
    tokenizer: Option<&TextTokenizer>,
    template: Option<&ChatTemplate>,
) -> Result<()> {
    replace_dir_atomically(
        dir,
        |p, e| ModelError::io(p, e),
        |tmp| write_hf_files(tmp, model, config, tokenizer, template),
    )
}

/// Fills a fresh `.<name>.partial` sibling of `dir` with `fill`, then moves it into the place
/// of `dir`, so readers see either the old directory or the whole new one. `io` turns an I/O
/// failure on a path into the caller's error.
pub fn replace_dir_atomically<E>(
    dir: &Path,
    io: impl Fn(&Path, std::io::Error) -> E,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    let tmp = dir.with_file_name(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    fill(&tmp)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))
}

/// The special tokens' text: the chat template's when there is one, else the tokenizer's
/// tokens of the config's ids. The pad token is the end-of-sequence token (these models have
/// no other), so that batched generation in transformers needs no setting.
fn special_tokens(
    config: &ModelConfig,
    tokenizer: Option<&TextTokenizer>,
    template: Option<&ChatTemplate>,
) -> (Option<String>, Option<String>) {
    let text_of = |id: Option<u32>| id.and_then(|id| tokenizer.and_then(|t| t.id_to_token(id)));
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let bos = template
        .and_then(|t| non_empty(t.bos_token()))
        .or_else(|| text_of(config.bos_token_id));
    let eos = template
        .and_then(|t| non_empty(t.eos_token()))
        .or_else(|| text_of(config.eos_token_ids.first().copied()));
    (bos, eos)
}

/// `tokenizer_config.json`: the tokenizer class named, so that transformers 4.x loads
/// `tokenizer.json` as it is (without a class it picks the architecture's own tokenizer, which
/// for Llama prepends a BOS the model never saw), and the special tokens, pad included.
pub fn tokenizer_config_json(
    config: &ModelConfig,
    tokenizer: Option<&TextTokenizer>,
    template: Option<&ChatTemplate>,
) -> serde_json::Value {
    let (bos, eos) = special_tokens(config, tokenizer, template);
    serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": eos,
        "clean_up_tokenization_spaces": false,
        "model_max_length": config.max_position_embeddings,
    })
}

/// `generation_config.json`: the ids generation starts and stops with, and the pad id (the
/// end-of-sequence token's).
pub fn generation_config_json(
    config: &ModelConfig,
    tokenizer: Option<&TextTokenizer>,
    template: Option<&ChatTemplate>,
) -> serde_json::Value {
    let (_, eos) = special_tokens(config, tokenizer, template);
    let pad = eos
        .and_then(|e| tokenizer.and_then(|t| t.token_to_id(&e)))
        .or_else(|| config.eos_token_ids.first().copied());
    let eos_ids = match config.eos_token_ids.as_slice() {
        [one] => serde_json::json!(one),
        many => serde_json::json!(many),
    };
    serde_json::json!({
        "bos_token_id": config.bos_token_id,
        "eos_token_id": eos_ids,
        "pad_token_id": pad,
    })
}

/// Writes a checkpoint's files (safetensors, config.json, tokenizer, chat template) into `tmp`,
/// an existing directory; [`save_hf_checkpoint`] wraps it in an atomic replacement.
pub fn write_hf_files<B: Backend>(
    tmp: &Path,
    model: &Transformer<B>,
    config: &ModelConfig,
    tokenizer: Option<&TextTokenizer>,
    template: Option<&ChatTemplate>,
) -> Result<()> {
    let tensors = hf_tensors(model);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, shape, values)| (n, shape, bytemuck::cast_slice(&values).to_vec()))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| ModelError::io(tmp, std::io::Error::other(e.to_string())))
        })
        .collect::<Result<_>>()?;
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let weights_path = tmp.join("model.safetensors");
    safetensors::serialize_to_file(views, Some(metadata), &weights_path)
        .map_err(|e| ModelError::io(&weights_path, std::io::Error::other(e.to_string())))?;
    let write = |file: &str, text: String| {
        let path = tmp.join(file);
        std::fs::write(&path, text).map_err(|e| ModelError::io(&path, e))
    };
    write(
        "config.json",
        serde_json::to_string_pretty(&config.to_hf_json()).unwrap_or_default(),
    )?;
    if let Some(t) = tokenizer {
        let path = tmp.join("tokenizer.json");
        t.inner()
            .save(&path, false)
            .map_err(|e| ModelError::io(&path, std::io::Error::other(e.to_string())))?;
    }
    if let Some(t) = template {
        write("chat_template.jinja", t.source().to_string())?;
    }
    if tokenizer.is_some() || template.is_some() {
        write(
            "tokenizer_config.json",
            serde_json::to_string_pretty(&tokenizer_config_json(config, tokenizer, template))
                .unwrap_or_default(),
        )?;
    }
    write(
        "generation_config.json",
        serde_json::to_string_pretty(&generation_config_json(config, tokenizer, template))
            .unwrap_or_default(),
    )?;
    Ok(())
}
