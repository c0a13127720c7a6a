//! GGUF checkpoints of the Llama family (and Qwen2/Qwen3, which llama.cpp stores the same way):
//! the model config from the `{arch}.*` metadata, and a `WeightSource` that serves tensors under
//! their Hugging Face names.
//!
//! llama.cpp's converter permutes the rows of Llama's q and k projections so that its RoPE can
//! rotate interleaved pairs; our RoPE rotates halves as Hugging Face does, so those rows are put
//! back in Hugging Face order at load ([`unpermute_rows`]). Qwen checkpoints are not permuted.

use std::path::Path;

use super::file::GgufFile;
use super::metadata::MetadataValue;
use crate::config::{Architecture, ModelConfig, RopeScaling};
use crate::error::{ModelError, Result};
use crate::host_tensor::{BlockSource, HostTensor, WeightSource};
use crate::quantized::{QuantFormat, QuantizedBlocks};

/// Reads the model config from GGUF metadata.
pub fn config_from_gguf(file: &GgufFile) -> Result<ModelConfig> {
    let arch_name = file
        .require("general.architecture")?
        .as_str()
        .ok_or_else(|| file.corrupt("general.architecture is not a string"))?
        .to_string();
    let architecture =
        Architecture::from_name(&arch_name).ok_or_else(|| ModelError::UnknownArchitecture {
            path: file.path().to_path_buf(),
            name: arch_name.clone(),
        })?;
    let key = |k: &str| format!("{arch_name}.{k}");
    let req_usize = |k: &str| -> Result<usize> {
        let full = key(k);
        file.require(&full)?
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| file.corrupt(&format!("{full} is not an unsigned integer")))
    };
    let opt_usize = |k: &str| {
        file.get(&key(k))
            .and_then(MetadataValue::as_u64)
            .map(|v| v as usize)
    };
    let hidden_size = req_usize("embedding_length")?;
    let num_heads = req_usize("attention.head_count")?;
    let num_kv_heads = opt_usize("attention.head_count_kv").unwrap_or(num_heads);
    if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(file.corrupt(&format!(
            "head counts {num_heads}/{num_kv_heads} are inconsistent"
        )));
    }
    let head_dim = opt_usize("attention.key_length").unwrap_or(hidden_size / num_heads);
    let tokens = file
        .get("tokenizer.ggml.tokens")
        .and_then(MetadataValue::as_array)
        .map(<[_]>::len);
    let vocab_size = match opt_usize("vocab_size").or(tokens) {
        Some(v) => v,
        None => {
            let emb = file
                .tensor_info("token_embd.weight")
                .ok_or_else(|| file.corrupt("missing tensor \"token_embd.weight\""))?;
            emb.dims.get(1).copied().unwrap_or(0) as usize
        }
    };
    let f = |k: &str, default: f64| {
        file.get(&key(k))
            .and_then(MetadataValue::as_f64)
            .unwrap_or(default)
    };
    let rope_scaling = match file
        .get(&key("rope.scaling.type"))
        .and_then(MetadataValue::as_str)
    {
        None | Some("none") => RopeScaling::None,
        Some("linear") => RopeScaling::Linear {
            factor: f("rope.scaling.factor", 1.0),
        },
        Some(other) => {
            return Err(file.corrupt(&format!("rope scaling type {other:?} is not supported")))
        }
    };
    let token_id = |k: &str| {
        file.get(k)
            .and_then(MetadataValue::as_u64)
            .map(|v| v as u32)
    };
    Ok(ModelConfig {
        architecture,
        vocab_size,
        hidden_size,
        intermediate_size: req_usize("feed_forward_length")?,
        num_layers: req_usize("block_count")?,
        num_heads,
        num_kv_heads,
        head_dim,
        rms_norm_eps: f("attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta: f("rope.freq_base", 10_000.0),
        rope_scaling,
        max_position_embeddings: opt_usize("context_length").unwrap_or(4096),
        tie_word_embeddings: file.tensor_info("output.weight").is_none(),
        attention_bias: file.tensor_info("blk.0.attn_q.bias").is_some(),
        attention_out_bias: file.tensor_info("blk.0.attn_output.bias").is_some(),
        mlp_bias: file.tensor_info("blk.0.ffn_up.bias").is_some(),
        qk_norm: architecture == Architecture::Qwen3,
        bos_token_id: token_id("tokenizer.ggml.bos_token_id"),
        eos_token_ids: token_id("tokenizer.ggml.eos_token_id")
            .into_iter()
            .collect(),
    })
}

/// Translates a Hugging Face tensor name to its GGUF name.
pub fn gguf_name(hf_name: &str) -> Option<String> {
    let fixed = match hf_name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let mapped = match suffix {
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "self_attn.o_proj.bias" => "attn_output.bias",
        "self_attn.q_norm.weight" => "attn_q_norm.weight",
        "self_attn.k_norm.weight" => "attn_k_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        "mlp.gate_proj.bias" => "ffn_gate.bias",
        "mlp.up_proj.bias" => "ffn_up.bias",
        "mlp.down_proj.bias" => "ffn_down.bias",
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{mapped}"))
}

/// Pairs of (Hugging Face row, llama.cpp row) for the q/k permutation. Rows of head `h` are
/// stored by llama.cpp as pairs `(j, s)` for `j < head_dim/2`, `s ∈ {0,1}`; Hugging Face
/// orders them `(s, j)`.
fn row_pairs(rows: usize, n_heads: usize) -> impl Iterator<Item = (usize, usize)> {
    let head_dim = rows / n_heads;
    let half = head_dim / 2;
    (0..n_heads).flat_map(move |h| {
        (0..2).flat_map(move |s| {
            (0..half).map(move |j| (h * head_dim + s * half + j, h * head_dim + j * 2 + s))
        })
    })
}

fn move_rows(data: &[f32], n_heads: usize, cols: usize, to_hf: bool) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    for (hf_row, gguf_row) in row_pairs(data.len() / cols, n_heads) {
        let (dst, src) = if to_hf {
            (hf_row, gguf_row)
        } else {
            (gguf_row, hf_row)
        };
        out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
    }
    out
}

/// Undoes llama.cpp's q/k row permutation (GGUF order to Hugging Face order). Works on
/// weights (`[rows, cols]`) and biases (`cols = 1`).
pub fn unpermute_rows(data: &[f32], n_heads: usize, cols: usize) -> Vec<f32> {
    move_rows(data, n_heads, cols, true)
}

/// The inverse of [`unpermute_rows`]: Hugging Face order to llama.cpp order (for writers).
pub fn permute_rows(data: &[f32], n_heads: usize, cols: usize) -> Vec<f32> {
    move_rows(data, n_heads, cols, false)
}

/// Serves a GGUF file's tensors under Hugging Face names, dequantized, q/k rows un-permuted.
pub struct GgufWeights<'a> {
    file: &'a GgufFile,
    config: ModelConfig,
}

impl<'a> GgufWeights<'a> {
    pub fn new(file: &'a GgufFile, config: ModelConfig) -> Self {
        Self { file, config }
    }

    /// The number of heads whose rows llama.cpp permuted in tensor `hf_name` (Llama's q and k
    /// projections), or `None` for tensors stored in Hugging Face order.
    fn permuted_heads(&self, hf_name: &str) -> Option<usize> {
        if self.config.architecture != Architecture::Llama {
            None
        } else if hf_name.contains("q_proj") {
            Some(self.config.num_heads)
        } else if hf_name.contains("k_proj") {
            Some(self.config.num_kv_heads)
        } else {
            None
        }
    }

    /// Refuses a permuted tensor whose rows do not split into pairs per head.
    fn check_permutable(
        &self,
        name: &str,
        rows: usize,
        n_heads: usize,
        shape: &[usize],
    ) -> Result<()> {
        if rows.is_multiple_of(n_heads * 2) {
            return Ok(());
        }
        Err(ModelError::WrongShape {
            path: self.file.path().to_path_buf(),
            name: name.to_string(),
            expected: vec![
                n_heads * self.config.head_dim,
                shape.get(1).copied().unwrap_or(1),
            ],
            actual: shape.to_vec(),
        })
    }
}

impl WeightSource for GgufWeights<'_> {
    fn path(&self) -> &Path {
        self.file.path()
    }

    fn load(&mut self, hf_name: &str) -> Result<Option<HostTensor>> {
        let Some(name) = gguf_name(hf_name) else {
            return Ok(None);
        };
        let Some(mut tensor) = self.file.load_f32(&name)? else {
            return Ok(None);
        };
        if let Some(n_heads) = self.permuted_heads(hf_name) {
            let cols = if tensor.shape.len() == 2 {
                tensor.shape[1]
            } else {
                1
            };
            self.check_permutable(
                &name,
                tensor.data.len() / cols.max(1),
                n_heads,
                &tensor.shape,
            )?;
            tensor.data = unpermute_rows(&tensor.data, n_heads, cols);
        }
        Ok(Some(tensor))
    }
}

/// The file's block-format matrices in their runtime formats ([`crate::quantized_gguf`]),
/// values as stored (q/k rows un-permuted whole).
impl BlockSource for GgufWeights<'_> {
    fn path(&self) -> &Path {
        self.file.path()
    }

    fn blocks(
        &mut self,
        hf_name: &str,
        wanted: Option<QuantFormat>,
    ) -> Result<Option<QuantizedBlocks>> {
        let Some(name) = gguf_name(hf_name) else {
            return Ok(None);
        };
        let Some(info) = self.file.tensor_info(&name) else {
            return Ok(None);
        };
        let (Some(format), &[rows, cols]) = (
            QuantFormat::from_ggml(info.ty),
            info.torch_shape().as_slice(),
        ) else {
            return Ok(None);
        };
        if wanted.is_some_and(|w| w != format) {
            return Ok(None);
        }
        let bytes = self.file.tensor_bytes(info)?;
        let Some(blocks) = QuantizedBlocks::from_gguf(info.ty, bytes, rows, cols)
            .map_err(|e| self.file.corrupt(&format!("tensor {name:?}: {e}")))?
        else {
            return Ok(None);
        };
        let Some(n_heads) = self.permuted_heads(hf_name) else {
            return Ok(Some(blocks));
        };
        self.check_permutable(&name, rows, n_heads, &[rows, cols])?;
        let mut source_rows = vec![0; rows];
        for (hf_row, gguf_row) in row_pairs(rows, n_heads) {
            source_rows[hf_row] = gguf_row;
        }
        Ok(Some(blocks.with_rows_from(&source_rows)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_and_unpermute_are_inverse() {
        let data: Vec<f32> = (0..2 * 8 * 3).map(|i| i as f32).collect();
        let p = permute_rows(&data, 2, 3);
        assert_ne!(p, data);
        assert_eq!(unpermute_rows(&p, 2, 3), data);
    }

    #[test]
    fn unpermute_moves_rows_to_rotate_half_order() {
        // One head of dim 4, one column: GGUF rows (j,s) = (0,0),(0,1),(1,0),(1,1) → HF (s,j).
        let gguf = [10.0, 20.0, 11.0, 21.0];
        assert_eq!(unpermute_rows(&gguf, 1, 1), vec![10.0, 11.0, 20.0, 21.0]);
    }

    #[test]
    fn names_map_both_ways_for_layers() {
        assert_eq!(
            gguf_name("model.layers.12.self_attn.k_proj.weight").as_deref(),
            Some("blk.12.attn_k.weight")
        );
        assert_eq!(
            gguf_name("model.layers.3.mlp.down_proj.weight").as_deref(),
            Some("blk.3.ffn_down.weight")
        );
        assert_eq!(gguf_name("unrelated"), None);
    }
}
