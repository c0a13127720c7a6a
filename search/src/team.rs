//! The team of a search: each agent is a model on disk (a Hugging Face directory or a GGUF
//! file) under a display name, every model served by one engine behind an
//! [`EnginePolicy`], and the agents ([`AgentSpec`]) that the search picks among.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use mars2_engine::{Engine, EngineConfig, SamplingParams};
use mars2_models::{
    keep_stored_blocks, load_model, quantize_from_checkpoint, Quantization, QuantizeReport,
    Transformer,
};

use crate::config::AgentSpec;
use crate::error::{Result, SearchError};
use crate::policy::EnginePolicy;

/// A model of the team, resolved to a checkpoint on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentModel {
    /// Unique within the team; names the model's agents, checkpoints and metrics.
    pub name: String,
    pub path: PathBuf,
}

/// The team: one agent per model, or a generator and a refiner per model (`multi_role`).
pub fn team_of(models: &[AgentModel], multi_role: bool) -> Vec<AgentSpec> {
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

/// A team's models loaded into one engine, and how each model's matrices were stored.
pub struct LoadedTeam<B: Backend> {
    pub policy: EnginePolicy<B>,
    /// One report per model kept in blocks (in `models`' order).
    pub quantized: Vec<(String, QuantizeReport)>,
    /// Each model as the engine got it (clones share the engine's weights): the base a
    /// learner's adapters are put on.
    pub models: Vec<Transformer<B>>,
}

/// How a team's models hold their matrices in the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamWeights {
    /// Every matrix in f32.
    F32,
    /// As `Quantization` says (an error for [`Quantization::AsStored`] on a checkpoint that
    /// stores no blocks).
    Quantized(Quantization),
    /// Each checkpoint's own blocks where it stores them, f32 where it stores floats.
    StoredWherePresent,
}

/// Loads every model on `device` into one engine and wraps it as a policy sampling with
/// `params`. With `quantization`, each model computes with block-format weights (a GGUF
/// file's own blocks kept where it asks for them); without, every matrix is f32.
pub fn load_team<B: Backend>(
    models: &[AgentModel],
    engine: EngineConfig,
    params: &SamplingParams,
    quantization: Option<Quantization>,
    device: &B::Device,
) -> Result<LoadedTeam<B>> {
    let weights = quantization.map_or(TeamWeights::F32, TeamWeights::Quantized);
    load_team_as(models, engine, params, weights, device)
}

/// As [`load_team`], with the models' matrices held as `weights` says.
pub fn load_team_as<B: Backend>(
    models: &[AgentModel],
    engine: EngineConfig,
    params: &SamplingParams,
    weights: TeamWeights,
    device: &B::Device,
) -> Result<LoadedTeam<B>> {
    let mut policy = EnginePolicy::new(Engine::<B>::new(engine, device.clone()));
    let mut quantized = Vec::new();
    let mut loaded_models = Vec::new();
    for m in models {
        let mut loaded = load_model::<B>(&m.path, device).map_err(|source| SearchError::Model {
            path: m.path.clone(),
            source,
        })?;
        let model_error = |source| SearchError::Model {
            path: m.path.clone(),
            source,
        };
        let report = match weights {
            TeamWeights::F32 => None,
            TeamWeights::Quantized(quantization) => Some(
                quantize_from_checkpoint(
                    &mut loaded.model,
                    &loaded.source,
                    &loaded.config,
                    quantization,
                )
                .map_err(model_error)?,
            ),
            TeamWeights::StoredWherePresent => {
                keep_stored_blocks(&mut loaded.model, &loaded.source, &loaded.config)
                    .map_err(model_error)?
            }
        };
        if let Some(report) = report {
            quantized.push((m.name.clone(), report));
        }
        loaded_models.push(loaded.model.clone());
        policy.add_model(&m.name, loaded, params.clone())?;
    }
    Ok(LoadedTeam {
        policy,
        quantized,
        models: loaded_models,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    fn models(n: usize) -> Vec<AgentModel> {
        (0..n)
            .map(|i| AgentModel {
                name: format!("m{i}"),
                path: PathBuf::from(format!("/models/m{i}")),
            })
            .collect()
    }

    #[test]
    fn a_team_has_one_agent_per_model_or_two_with_roles() {
        let single = team_of(&models(2), false);
        assert_eq!(single.len(), 2);
        assert_eq!(single[1].model, 1);
        let roles = team_of(&models(2), true);
        assert_eq!(roles.len(), 4);
        assert!(roles
            .iter()
            .any(|a| a.role == Role::Generator && a.model == 1));
        assert!(roles
            .iter()
            .any(|a| a.role == Role::Refiner && a.model == 0));
    }

    #[test]
    fn a_missing_model_is_an_error_naming_its_path() {
        let err = load_team::<burn::backend::NdArray>(
            &models(1),
            EngineConfig::default(),
            &SamplingParams::default(),
            None,
            &Default::default(),
        )
        .err()
        .expect("no model there");
        assert!(err.to_string().contains("/models/m0"), "{err}");
    }
}
