//! The model hyper-parameters (`ModelConfig`) and their parsing from a Hugging Face `config.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ModelError, Result};

/// The decoder families this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama 2/3 and SmolLM: optional attention/MLP bias, no q/k norm.
    Llama,
    /// Qwen2 / Qwen2.5: bias on the q, k and v projections.
    Qwen2,
    /// Qwen3: per-head RMSNorm on q and k, explicit `head_dim`.
    Qwen3,
}

impl Architecture {
    /// Maps a `model_type` (or an `architectures[0]` class name) to an architecture.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "llama" | "llamaforcausallm" | "mistral" | "mistralforcausallm" => Some(Self::Llama),
            "qwen2" | "qwen2forcausallm" => Some(Self::Qwen2),
            "qwen3" | "qwen3forcausallm" => Some(Self::Qwen3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
        }
    }
}

/// How rotary frequencies are scaled for long contexts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3.1 frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// Everything the transformer needs to know about its shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on the q, k, v projections (always on for Qwen2).
    pub attention_bias: bool,
    /// Bias on the output projection (Llama `attention_bias` covers it too).
    pub attention_out_bias: bool,
    pub mlp_bias: bool,
    /// Per-head RMSNorm on queries and keys (Qwen3).
    pub qk_norm: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl ModelConfig {
    /// A small Llama (two heads, one KV head, head size `hidden / 2`, MLP twice the width,
    /// tied embeddings, 64 positions) for tests and examples with random weights.
    pub fn tiny_llama(vocab_size: usize, hidden_size: usize, num_layers: usize) -> Self {
        ModelConfig {
            architecture: Architecture::Llama,
            vocab_size,
            hidden_size,
            intermediate_size: 2 * hidden_size,
            num_layers,
            num_heads: 2,
            num_kv_heads: 1,
            head_dim: hidden_size / 2,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_scaling: RopeScaling::None,
            max_position_embeddings: 64,
            tie_word_embeddings: true,
            attention_bias: false,
            attention_out_bias: false,
            mlp_bias: false,
            qk_norm: false,
            bos_token_id: None,
            eos_token_ids: vec![],
        }
    }

    /// SmolLM2-135M's shape (30 layers, 576 wide, 9 query and 3 KV heads of 64, 49 152 tokens,
    /// tied embeddings), for throughput measurements with random weights.
    pub fn smollm2_135m() -> Self {
        ModelConfig {
            vocab_size: 49_152,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 100_000.0,
            max_position_embeddings: 8192,
            bos_token_id: Some(1),
            eos_token_ids: vec![2],
            ..Self::tiny_llama(49_152, 576, 30)
        }
    }

    /// Qwen2.5-Coder-0.5B-Instruct's shape (Qwen2: 24 layers, 896 wide, 14 query and 2 KV heads
    /// of 64, MLP 4864, 151 936 tokens, biased q/k/v, tied embeddings as in its Hugging Face
    /// checkpoint), for throughput measurements with random weights.
    pub fn qwen2_5_coder_0_5b() -> Self {
        ModelConfig {
            architecture: Architecture::Qwen2,
            vocab_size: 151_936,
            hidden_size: 896,
            intermediate_size: 4864,
            num_layers: 24,
            num_heads: 14,
            num_kv_heads: 2,
            head_dim: 64,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            max_position_embeddings: 32_768,
            attention_bias: true,
            bos_token_id: Some(151_643),
            eos_token_ids: vec![151_645],
            ..Self::tiny_llama(151_936, 896, 24)
        }
    }

    /// Qwen2.5-Coder-1.5B's shape (28 layers, 1536 wide, 12 query and 2 KV heads of 128, 8960
    /// MLP, tied embeddings), for measurements with random weights.
    pub fn qwen2_5_coder_1_5b() -> Self {
        ModelConfig {
            intermediate_size: 8960,
            num_heads: 12,
            head_dim: 128,
            ..Self::qwen2_5_coder_0_5b_with(1536, 28)
        }
    }

    fn qwen2_5_coder_0_5b_with(hidden_size: usize, num_layers: usize) -> Self {
        ModelConfig {
            hidden_size,
            num_layers,
            ..Self::qwen2_5_coder_0_5b()
        }
    }

    /// Reads and validates a Hugging Face `config.json`.
    pub fn from_hf_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_hf_json(&value, path)
    }

    /// Parses a Hugging Face config object; `path` is only used in error messages.
    pub fn from_hf_json(value: &Value, path: &Path) -> Result<Self> {
        let invalid = |message: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            message,
        };
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("config.json is not a JSON object".into()))?;
        let type_name = obj
            .get("model_type")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                obj.get("architectures")
                    .and_then(|a| a.get(0))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .ok_or_else(|| invalid("neither model_type nor architectures is set".into()))?;
        let architecture =
            Architecture::from_name(&type_name).ok_or_else(|| ModelError::UnknownArchitecture {
                path: path.to_path_buf(),
                name: type_name.clone(),
            })?;
        let usize_field = |key: &str| -> Result<usize> {
            obj.get(key)
                .ok_or_else(|| invalid(format!("missing field {key:?}")))?
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| invalid(format!("field {key:?} is not a non-negative integer")))
        };
        let opt_usize = |key: &str| -> Result<Option<usize>> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(|v| Some(v as usize))
                    .ok_or_else(|| invalid(format!("field {key:?} is not a non-negative integer"))),
            }
        };
        let opt_bool = |key: &str, default: bool| -> Result<bool> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| invalid(format!("field {key:?} is not a boolean"))),
            }
        };
        let hidden_size = usize_field("hidden_size")?;
        let num_heads = usize_field("num_attention_heads")?;
        if num_heads == 0 {
            return Err(invalid("num_attention_heads is 0".into()));
        }
        let num_kv_heads = opt_usize("num_key_value_heads")?.unwrap_or(num_heads);
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(invalid(format!(
                "num_attention_heads ({num_heads}) is not a multiple of num_key_value_heads ({num_kv_heads})"
            )));
        }
        let head_dim = opt_usize("head_dim")?.unwrap_or(hidden_size / num_heads);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(invalid(format!(
                "head_dim {head_dim} must be even and positive"
            )));
        }
        // Newer configs nest RoPE settings in `rope_parameters`; older ones use top-level keys.
        let rope_params = obj.get("rope_parameters").filter(|v| v.is_object());
        let rope_theta = rope_params
            .and_then(|p| p.get("rope_theta"))
            .or_else(|| obj.get("rope_theta"))
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| invalid("rope_theta is not a number".into()))
            })
            .transpose()?
            .unwrap_or(10_000.0);
        let scaling_obj = obj
            .get("rope_scaling")
            .filter(|v| v.is_object())
            .or(rope_params);
        let rope_scaling = parse_rope_scaling(scaling_obj, &invalid)?;
        let eos_token_ids = match obj.get("eos_token_id") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64()
                        .map(|v| v as u32)
                        .ok_or_else(|| invalid("eos_token_id holds a non-integer".into()))
                })
                .collect::<Result<_>>()?,
            Some(v) => vec![v
                .as_u64()
                .ok_or_else(|| invalid("eos_token_id is not an integer".into()))?
                as u32],
        };
        for key in ["torch_dtype", "dtype"] {
            if let Some(d) = obj.get(key).and_then(Value::as_str) {
                if !matches!(d, "float32" | "float16" | "bfloat16") {
                    return Err(invalid(format!(
                        "{key} {d:?} is not one of float32, float16, bfloat16"
                    )));
                }
            }
        }
        let attention_bias = match architecture {
            Architecture::Qwen2 => true,
            _ => opt_bool("attention_bias", false)?,
        };
        Ok(Self {
            architecture,
            vocab_size: usize_field("vocab_size")?,
            hidden_size,
            intermediate_size: usize_field("intermediate_size")?,
            num_layers: usize_field("num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: obj
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: opt_usize("max_position_embeddings")?.unwrap_or(4096),
            tie_word_embeddings: opt_bool("tie_word_embeddings", false)?,
            attention_bias,
            attention_out_bias: architecture == Architecture::Llama && attention_bias,
            mlp_bias: opt_bool("mlp_bias", false)?,
            qk_norm: architecture == Architecture::Qwen3,
            bos_token_id: opt_usize("bos_token_id")?.map(|v| v as u32),
            eos_token_ids,
        })
    }

    /// Number of query heads sharing one key/value head.
    pub fn group_size(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// Writes the config in Hugging Face form, so that transformers (and this crate) can load it.
    pub fn to_hf_json(&self) -> Value {
        let mut v = serde_json::json!({
            "architectures": [match self.architecture {
                Architecture::Llama => "LlamaForCausalLM",
                Architecture::Qwen2 => "Qwen2ForCausalLM",
                Architecture::Qwen3 => "Qwen3ForCausalLM",
            }],
            "model_type": self.architecture.name(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_ids,
        });
        if self.architecture == Architecture::Llama {
            v["attention_bias"] = self.attention_bias.into();
            v["mlp_bias"] = self.mlp_bias.into();
        }
        match &self.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => {
                v["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": factor});
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                v["rope_scaling"] = serde_json::json!({
                    "rope_type": "llama3", "factor": factor,
                    "low_freq_factor": low_freq_factor, "high_freq_factor": high_freq_factor,
                    "original_max_position_embeddings": original_max_position_embeddings,
                });
            }
        }
        v
    }
}

fn parse_rope_scaling(
    scaling: Option<&Value>,
    invalid: &dyn Fn(String) -> ModelError,
) -> Result<RopeScaling> {
    let Some(s) = scaling else {
        return Ok(RopeScaling::None);
    };
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |key: &str| -> Result<f64> {
        s.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| invalid(format!("rope scaling {kind:?} needs a numeric {key:?}")))
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: num("factor")?,
        }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        }),
        other => Err(invalid(format!(
            "rope scaling type {other:?} is not supported (supported: default, linear, llama3)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ModelConfig> {
        ModelConfig::from_hf_json(&v, Path::new("config.json"))
    }

    fn base() -> Value {
        json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
               "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2})
    }

    #[test]
    fn defaults_fill_kv_heads_head_dim_and_theta() {
        let c = parse(base()).unwrap();
        assert_eq!(c.num_kv_heads, 2);
        assert_eq!(c.head_dim, 4);
        assert_eq!(c.rope_theta, 10_000.0);
        assert!(!c.tie_word_embeddings);
    }

    #[test]
    fn rope_theta_is_read_from_both_places() {
        let mut v = base();
        v["rope_theta"] = json!(5.0);
        assert_eq!(parse(v.clone()).unwrap().rope_theta, 5.0);
        v["rope_parameters"] = json!({"rope_theta": 7.0, "rope_type": "default"});
        assert_eq!(parse(v).unwrap().rope_theta, 7.0);
    }

    #[test]
    fn unknown_architecture_is_named() {
        let mut v = base();
        v["model_type"] = json!("gpt_neox");
        let err = parse(v).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("gpt_neox"),
            "{err}"
        );
    }

    #[test]
    fn missing_field_and_bad_dtype_are_reported() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("vocab_size");
        assert!(parse(v).unwrap_err().to_string().contains("vocab_size"));
        let mut v = base();
        v["torch_dtype"] = json!("int8");
        assert!(parse(v).unwrap_err().to_string().contains("int8"));
    }

    #[test]
    fn qwen2_always_has_qkv_bias_and_qwen3_has_qk_norm() {
        let mut v = base();
        v["model_type"] = json!("qwen2");
        assert!(parse(v.clone()).unwrap().attention_bias);
        v["model_type"] = json!("qwen3");
        let c = parse(v).unwrap();
        assert!(c.qk_norm && !c.attention_bias);
    }

    #[test]
    fn eos_may_be_a_list() {
        let mut v = base();
        v["eos_token_id"] = json!([2, 7]);
        assert_eq!(parse(v).unwrap().eos_token_ids, vec![2, 7]);
    }

    #[test]
    fn hf_json_round_trips() {
        let mut v = base();
        v["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let c = parse(v).unwrap();
        assert_eq!(parse(c.to_hf_json()).unwrap(), c);
    }

    #[test]
    fn unsupported_rope_scaling_is_an_error() {
        let mut v = base();
        v["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0});
        assert!(parse(v).unwrap_err().to_string().contains("yarn"));
    }
}
