//! Training samples from finished trees: every generated node is one sample (its own prompt,
//! its response, the sampling log-probs, its advantage), routed to the model that wrote it.

use mars2_search::{AgentSpec, Tree};
use serde::{Deserialize, Serialize};

use crate::shaping::{tree_advantages, ShapingConfig};

/// One sequence to learn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSample {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
    /// Log-probs of the response tokens under the sampling distribution.
    pub rollout_logprobs: Vec<f32>,
    pub advantage: f64,
    /// The raw reward of the node.
    pub reward: f64,
    /// Weights version that generated it.
    pub weights_version: u64,
}

/// The samples of `tree`, each with the index of the model (in the team's models) that
/// generated it. Nodes the grader could not judge and empty responses are left out; a tree
/// dropped by dynamic filtering gives none.
pub fn tree_samples(
    tree: &Tree,
    team: &[AgentSpec],
    config: &ShapingConfig,
) -> Vec<(usize, TrainSample)> {
    let Some(advantages) = tree_advantages(tree, config) else {
        return Vec::new();
    };
    tree.generated()
        .zip(advantages)
        .filter_map(|(node, advantage)| {
            let generation = node.generation.as_ref()?;
            node.guide.as_ref()?.reward()?;
            if generation.response_tokens.is_empty()
                || generation.prompt_tokens.is_empty()
                || generation.logprobs.len() != generation.response_tokens.len()
            {
                return None;
            }
            let model = team.get(node.agent?)?.model;
            Some((
                model,
                TrainSample {
                    prompt: generation.prompt_tokens.clone(),
                    response: generation.response_tokens.clone(),
                    rollout_logprobs: generation.logprobs.clone(),
                    advantage,
                    reward: node.reward,
                    weights_version: generation.weights_version,
                },
            ))
        })
        .collect()
}
