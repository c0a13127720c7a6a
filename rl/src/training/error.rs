//! What can stop a training run, each error naming the file, setting or agent at fault.

use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {message}")]
    ConfigFile { path: PathBuf, message: String },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("loading {path}: {source}")]
    Model {
        path: PathBuf,
        source: mars2_models::ModelError,
    },
    #[error(transparent)]
    Search(#[from] mars2_search::SearchError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Engine(#[from] mars2_engine::EngineError),
    #[error("{path}: {message}")]
    Resume { path: PathBuf, message: String },
    #[error("{0}")]
    Stopped(String),
    #[error(transparent)]
    Parallel(#[from] crate::parallel::ParallelError),
}

impl TrainError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type TrainResult<T> = std::result::Result<T, TrainError>;
