//! The error type of model loading: every variant names the file (or tensor) and the problem.

use std::path::PathBuf;

/// Everything that can go wrong while reading a checkpoint, a tokenizer or a chat template.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    InvalidConfig { path: PathBuf, message: String },
    #[error("{path}: unknown architecture {name:?} (supported: llama, qwen2, qwen3)")]
    UnknownArchitecture { path: PathBuf, name: String },
    #[error("{path}: missing tensor {name:?}")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor {name:?} has shape {actual:?}, expected {expected:?}")]
    WrongShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{path}: tensor {name:?} has unsupported data type {dtype}")]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("{path}: tensor {name:?} uses quantization type {kind} which is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)")]
    UnsupportedQuantization {
        path: PathBuf,
        name: String,
        kind: String,
    },
    #[error("{path}: truncated file: {what} needs bytes {start}..{end} but the file has {len}")]
    Truncated {
        path: PathBuf,
        what: String,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: not a valid GGUF file: {message}")]
    Gguf { path: PathBuf, message: String },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("chat template: {message}")]
    ChatTemplate { message: String },
    #[error("cannot quantize {name:?}: {source}")]
    Quantize {
        name: String,
        #[source]
        source: crate::quantized::QuantizeError,
    },
    #[error("{path}: no weight is stored in a block format the quantized kernels read (Q8_0, Q4_1); name a format (q8_0, q4_1) instead")]
    NothingStored { path: PathBuf },
    #[error("{path}: not a model: expected a directory with config.json or a .gguf file")]
    NotAModel { path: PathBuf },
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
