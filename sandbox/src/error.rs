//! Error types of the crate: what can go wrong while loading a dataset and while setting up
//! the sandbox itself. A failing *program* is never an error: it is a [`crate::Verdict`].

use std::io;
use std::path::PathBuf;

/// A dataset could not be loaded, or one of its lines is unusable.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or read at all.
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// One line of a JSONL file is unusable; `line` counts from 1.
    #[error("{path}:{line}: {kind}")]
    Line {
        path: PathBuf,
        line: usize,
        kind: LineError,
    },
    /// Neither the file name nor its first record says which dataset this is.
    #[error("{path}: cannot tell which dataset this file holds (expected LiveCodeBench, HumanEval or MBPP records)")]
    UnknownFormat { path: PathBuf },
}

impl LoadError {
    /// The 1-based line number this error is about, if it is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            LoadError::Line { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            LoadError::Io { path, .. }
            | LoadError::Line { path, .. }
            | LoadError::UnknownFormat { path } => path,
        }
    }
}

/// Why one record of a dataset could not be turned into a [`crate::Problem`].
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("cannot read this line: {0}")]
    Read(io::Error),
    #[error("line is not valid UTF-8")]
    Utf8,
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("record is not a JSON object")]
    NotAnObject,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` should be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `{field}`: invalid base64: {message}")]
    Base64 {
        field: &'static str,
        message: String,
    },
    #[error("field `{field}`: invalid zlib data: {message}")]
    Zlib {
        field: &'static str,
        message: String,
    },
    #[error("field `{field}`: decompressed data exceeds {limit} bytes")]
    TooLarge { field: &'static str, limit: u64 },
    #[error("field `{field}`: invalid pickle: {message}")]
    Pickle {
        field: &'static str,
        message: String,
    },
    #[error("field `{field}`: invalid test list: {message}")]
    Tests {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The sandbox could not be set up or could not run a process at all.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no usable Python interpreter: {0}")]
    PythonUnavailable(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("could not start the sandboxed process: {0}")]
    Spawn(#[source] io::Error),
    #[error("the sandboxed process could not be cleaned up: {0}")]
    Cleanup(String),
    #[error("the sandbox probe failed: {0}")]
    Probe(String),
    /// Full isolation was required and this machine does not give it.
    #[error("programs would run without {missing} on this machine (full isolation is required: run as root on Linux with namespaces allowed, or accept weaker isolation explicitly)")]
    WeakIsolation { missing: String },
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }
}
