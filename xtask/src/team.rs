//! Loading a team of agents for the search: each `--agent` names a registered model or a
//! checkpoint path; all are loaded on the chosen device into one engine behind an
//! [`EnginePolicy`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use mars2_engine::{Engine, EngineConfig, SamplingParams};
use mars2_models::{load_model, Quantization};
use mars2_search::{AgentSpec, EnginePolicy};

use crate::fetch_model::resolve_model_arg;

/// A model named on the command line, resolved to a checkpoint on disk.
#[derive(Debug, Clone)]
pub struct ModelArg {
    pub name: String,
    pub path: PathBuf,
}

/// Resolves `--agent` arguments (fetching registered models on first use) and gives each
/// a distinct display name.
pub fn resolve_models(args: &[String]) -> Result<Vec<ModelArg>> {
    let mut out: Vec<ModelArg> = Vec::new();
    for arg in args {
        let path = resolve_model_arg(arg)?;
        let base = display_name(arg, &path);
        let mut name = base.clone();
        let mut n = 2;
        while out.iter().any(|m| m.name == name) {
            name = format!("{base}#{n}");
            n += 1;
        }
        out.push(ModelArg { name, path });
    }
    Ok(out)
}

fn display_name(arg: &str, path: &Path) -> String {
    if !arg.contains('/') && !arg.contains('.') {
        return arg.to_string();
    }
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| arg.to_string())
}

/// The team: one agent per model, or a generator and a refiner per model (`multi_role`).
pub fn team_of(models: &[ModelArg], multi_role: bool) -> Vec<AgentSpec> {
    models
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            if multi_role {
                AgentSpec::multi_role(&m.name, i)
            } else {
                vec![AgentSpec::new(m.name.clone(), i)]
            }
        })
        .collect()
}

/// Loads every model on `device` into one engine and wraps it as a policy; with
/// `quantization`, each model computes with block-format weights (a GGUF's own blocks kept).
pub fn load_policy<B: Backend>(
    models: &[ModelArg],
    engine: EngineConfig,
    params: &SamplingParams,
    quantization: Option<Quantization>,
    device: &B::Device,
) -> Result<EnginePolicy<B>> {
    let mut policy = EnginePolicy::new(Engine::<B>::new(engine, device.clone()));
    for m in models {
        let mut loaded = load_model::<B>(&m.path, device)
            .with_context(|| format!("loading {}", m.path.display()))?;
        if let Some(quantization) = quantization {
            crate::model_task::quantize_as_asked(
                &mut loaded.model,
                &loaded.source,
                &loaded.config,
                quantization,
                &m.name,
            )?;
        }
        policy.add_model(&m.name, loaded, params.clone())?;
    }
    Ok(policy)
}
