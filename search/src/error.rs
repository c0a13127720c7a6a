//! Errors of the search: generation, the sandbox, prompt rendering, run files.

use std::path::PathBuf;

/// Why a search could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("generation failed: {0}")]
    Generation(String),
    #[error("the sandbox failed: {0}")]
    Sandbox(#[from] mars2_sandbox::SandboxError),
    #[error("rendering the prompt failed: {0}")]
    Prompt(String),
    #[error("the team is empty or no agent may write a child of a node at depth {0}")]
    NoEligibleAgent(usize),
    #[error("agent {agent} names model {model}, but the policy has {models} models")]
    UnknownModel {
        agent: String,
        model: usize,
        models: usize,
    },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Device(#[from] mars2_engine::EngineError),
    #[error("loading {path}: {source}")]
    Model {
        path: PathBuf,
        source: mars2_models::ModelError,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{path}, line {line}: {message}")]
    Record {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl SearchError {
    pub fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        SearchError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;
