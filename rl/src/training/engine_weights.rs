//! How a learner's weights reach the rollout engine after an update: whole, with any adapters
//! folded into dense f32 weights, or, for adapted learners, as the adapters alone put on the
//! engine's own copy of the base, which keeps the matrices as the checkpoint stores them (a
//! GGUF file's blocks stay blocks, so decoding reads 4–6 bits per weight instead of 32) and
//! adds the adapters' low-rank products on the fly.

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use mars2_models::Transformer;

use super::config::{AdapterWeights, TrainConfig};
use super::error::{TrainError, TrainResult};
use crate::AgentTrainer;

/// Where the engine's weights after an update come from.
pub struct EngineWeights<B: Backend> {
    /// The engine's bases, one per agent, when adapters are added on the fly.
    bases: Option<Vec<Transformer<B>>>,
}

impl<B: Backend> EngineWeights<B> {
    /// Whether `config` has the engine keep its bases and take adapters on the fly.
    pub fn adapters_on_the_fly(config: &TrainConfig) -> bool {
        config.adapters().is_some() && config.engine.adapters == AdapterWeights::OnTheFly
    }

    /// Weights sent whole (merged), or `bases` (the models the engine was loaded with, in
    /// agent order) taking each update's adapters.
    pub fn new(bases: Option<Vec<Transformer<B>>>) -> Self {
        EngineWeights { bases }
    }

    /// The model the engine computes with after `trainer`'s latest update of agent `agent`.
    pub fn for_engine<A>(
        &self,
        agent: usize,
        name: &str,
        trainer: &AgentTrainer<A>,
    ) -> TrainResult<Transformer<B>>
    where
        A: AutodiffBackend<InnerBackend = B>,
    {
        let lost = || TrainError::Stopped(format!("the learner of {name} lost its model"));
        match &self.bases {
            Some(bases) => {
                let base = bases.get(agent).ok_or_else(lost)?;
                let learner = trainer.model().ok_or_else(lost)?.valid();
                base.clone().with_adapters_of(&learner).map_err(|e| {
                    TrainError::Stopped(format!(
                        "the adapters of {name} do not fit the engine's copy of its base: {e}"
                    ))
                })
            }
            None => trainer.inference_model().ok_or_else(lost),
        }
    }
}
