//! A multi-node round's trees: node `k` of `n` grows the trees at positions `k, k + n, …` of
//! the round's problems, and every node gathers them all, in the round's order, so every node
//! trains on the same batches. The trees travel whole, with the token ids and log-probs that
//! their written form (`rollouts.jsonl`) leaves out.

use burn::tensor::backend::Backend;
use mars2_search::runner::ProblemRun;
use serde::{Deserialize, Serialize};

use super::error::{TrainError, TrainResult};
use super::round::RoundRollout;
use crate::parallel::{ParallelError, PeerGroup};

/// One tree as it travels: the run and, per node, what a learner needs of its generation.
#[derive(Serialize, Deserialize)]
struct TreeOnWire {
    run: ProblemRun,
    tokens: Vec<Option<NodeTokens>>,
}

#[derive(Serialize, Deserialize)]
struct NodeTokens {
    prompt: Vec<u32>,
    response: Vec<u32>,
    logprobs: Vec<f32>,
}

impl TreeOnWire {
    fn pack(run: ProblemRun) -> Self {
        let tokens = run
            .tree
            .nodes
            .iter()
            .map(|node| {
                node.generation.as_ref().map(|g| NodeTokens {
                    prompt: g.prompt_tokens.clone(),
                    response: g.response_tokens.clone(),
                    logprobs: g.logprobs.clone(),
                })
            })
            .collect();
        TreeOnWire { run, tokens }
    }

    fn unpack(self) -> ProblemRun {
        let mut run = self.run;
        for (node, tokens) in run.tree.nodes.iter_mut().zip(self.tokens) {
            if let (Some(g), Some(t)) = (node.generation.as_mut(), tokens) {
                g.prompt_tokens = t.prompt;
                g.response_tokens = t.response;
                g.logprobs = t.logprobs;
            }
        }
        run
    }
}

/// Every node's trees of the round, in the round's order (all nodes call this together).
pub fn gather_trees<B: Backend>(
    peers: &PeerGroup<B>,
    grown: RoundRollout,
) -> TrainResult<RoundRollout> {
    let mine: Vec<TreeOnWire> = grown.runs.into_iter().map(TreeOnWire::pack).collect();
    let bytes = serde_json::to_vec(&mine)
        .map_err(|e| TrainError::Stopped(format!("encoding this node's trees: {e}")))?;
    let shards = peers.gather_bytes(&bytes)?;
    let mut shards: Vec<std::vec::IntoIter<TreeOnWire>> = shards
        .iter()
        .map(|bytes| serde_json::from_slice::<Vec<TreeOnWire>>(bytes).map(Vec::into_iter))
        .collect::<Result<_, _>>()
        .map_err(|e| ParallelError::Gathered(format!("a node's trees: {e}")))?;
    let total: usize = shards.iter().map(|s| s.len()).sum();
    let nodes = shards.len().max(1);
    let runs = (0..total)
        .filter_map(|i| shards[i % nodes].next())
        .map(TreeOnWire::unpack)
        .collect();
    Ok(RoundRollout {
        runs,
        round: grown.round,
        seconds: grown.seconds,
    })
}
