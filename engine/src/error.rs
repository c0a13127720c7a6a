//! The engine's error type.

use mars2_models::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown device {0:?} (expected cpu, wgpu, wgpu-f16, cuda, cuda-f16 or cuda-bf16)")]
    UnknownDevice(String),
    #[error(
        "device {device} is not compiled into this build: rebuild with `--features {feature}`"
    )]
    NotCompiled { device: String, feature: String },
    #[error("devices {first} and {other} are of different kinds: peers of one process share one backend")]
    MixedDevices { first: String, other: String },
    #[error("device {device} is unavailable: {reason}")]
    DeviceUnavailable { device: String, reason: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("prompt {index} is empty")]
    EmptyPrompt { index: usize },
    #[error("prompt {index}: token id {id} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfRange { index: usize, id: u32, vocab: usize },
    #[error("sequence {index} needs {needed} positions but the model supports {max}")]
    TooLong {
        index: usize,
        needed: usize,
        max: usize,
    },
    #[error("unknown agent {0}")]
    UnknownAgent(usize),
    #[error("the KV cache is too small for agent {agent}: raise --kv-cache-mb")]
    KvCacheTooSmall { agent: String },
    #[error("the engine has shut down")]
    ShutDown,
    #[error("invalid sampling parameters: {0}")]
    InvalidSampling(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
