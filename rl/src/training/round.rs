//! One training round: the round's trees become per-agent samples (shaping, tree-group
//! advantages), each agent updates as often as its buffer allows and hands its new weights to
//! the engine, and every update writes one `metrics.jsonl` line. Also the round bookkeeping:
//! which problems a round grows trees for, and trimming the run's logs back to the last
//! checkpoint on resume.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use burn::tensor::backend::{AutodiffBackend, Backend};
use mars2_sandbox::Problem;
use mars2_search::config::AgentSpec;
use mars2_search::runner::ProblemRun;
use mars2_search::EnginePolicy;
use serde_json::{json, Value};

use super::config::{Algorithm, TrainConfig};
use super::engine_weights::EngineWeights;
use super::error::{TrainError, TrainResult};
use super::observer::{TrainEvent, TrainObserver};
use crate::{tree_samples, AgentTrainer, ShapingConfig, TrainSample};
use mars2_search::AgentModel;

/// The per-step log of a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// The trees grown for one round.
pub struct RoundRollout {
    pub round: usize,
    pub runs: Vec<ProblemRun>,
    pub seconds: f64,
}

/// The training problems of round `round`: the next `per_round` of the list, wrapping.
pub fn round_problems(train: &[Problem], per_round: usize, round: usize) -> Vec<&Problem> {
    if train.is_empty() {
        return Vec::new();
    }
    (0..per_round)
        .map(|i| &train[(round * per_round + i) % train.len()])
        .collect()
}

/// What a round's training needs to see.
pub struct RoundContext<'a, B: Backend> {
    pub config: &'a TrainConfig,
    pub models: &'a [AgentModel],
    pub team: &'a [AgentSpec],
    pub policy: &'a EnginePolicy<B>,
    pub engine_weights: &'a EngineWeights<B>,
}

impl<B: Backend> RoundContext<'_, B> {
    /// Trains every agent on its samples of `grown`; `write` receives one metrics line per
    /// update, then the observer hears of it.
    pub fn train<A>(
        &self,
        grown: RoundRollout,
        trainers: &mut [AgentTrainer<A>],
        write: &mut dyn FnMut(&Value) -> TrainResult<()>,
        observer: &dyn TrainObserver,
    ) -> TrainResult<()>
    where
        A: AutodiffBackend<InnerBackend = B>,
    {
        let shaping = ShapingConfig {
            gamma: if self.config.algorithm == Algorithm::Grpo {
                0.0
            } else {
                self.config.shaping.gamma
            },
            lambda: self.config.shaping.lambda,
            overlong: (self.config.shaping.overlong_buffer > 0).then_some((
                self.config.sampling.max_new_tokens,
                self.config.shaping.overlong_buffer,
            )),
            dynamic_filtering: self.config.shaping.dynamic_filtering,
        };
        let nodes: Vec<_> = grown.runs.iter().flat_map(|r| r.tree.generated()).collect();
        let tokens: usize = nodes
            .iter()
            .map(|n| n.generation.as_ref().map_or(0, |g| g.response_len))
            .sum();
        let mut per_model: Vec<Vec<TrainSample>> = vec![Vec::new(); self.models.len()];
        for run in &grown.runs {
            for (model, sample) in tree_samples(&run.tree, self.team, &shaping) {
                per_model[model].push(sample);
            }
        }
        for (model, samples) in per_model.into_iter().enumerate() {
            let name = &self.models[model].name;
            let rewards: Vec<f64> = samples.iter().map(|s| s.reward).collect();
            let mean = |v: &[f64]| {
                if v.is_empty() {
                    0.0
                } else {
                    v.iter().sum::<f64>() / v.len() as f64
                }
            };
            let solved: Vec<f64> = rewards
                .iter()
                .map(|&r| if r >= 1.0 { 1.0 } else { 0.0 })
                .collect();
            let trainer = &mut trainers[model];
            trainer.push(samples);
            while trainer.ready() {
                observer.on_event(TrainEvent::Updating {
                    round: grown.round,
                    agent: name,
                });
                let Some(step) = trainer.train_step()? else {
                    break;
                };
                let weights = self.engine_weights.for_engine(model, name, trainer)?;
                // Weights are numbered by updates, as a resumed run numbers them too.
                trainer.weights_version =
                    self.policy
                        .update_weights_as(model, weights, trainer.step as u64)?;
                let line = json!({
                    "round": grown.round,
                    "agent": name,
                    "weights_version": trainer.weights_version,
                    "rollout_samples": rewards.len(),
                    "rollout_mean_reward": mean(&rewards),
                    "rollout_pass_rate": mean(&solved),
                    "rollout_tokens": tokens,
                    "rollout_tokens_per_second": tokens as f64 / grown.seconds.max(1e-9),
                    "metrics": step,
                });
                write(&line)?;
                observer.on_event(TrainEvent::Updated {
                    round: grown.round,
                    agent: name,
                    metrics: &step,
                    line: &line,
                });
            }
        }
        Ok(())
    }
}

/// Keeps only the lines of the JSONL log at `path` whose `round` is below `round` (what the
/// last checkpoint covers), dropping a torn last line; a missing file is fine.
pub fn keep_rounds_before(path: &Path, round: usize) -> TrainResult<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    let mut kept = String::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| TrainError::io(path, e))?;
        let Ok(value) = serde_json::from_str::<Value>(&line) else {
            // A line cut short by a kill; whatever follows it is not trusted either.
            tracing::warn!(
                "{}: dropping line {} and after (torn)",
                path.display(),
                i + 1
            );
            break;
        };
        if value["round"]
            .as_u64()
            .is_some_and(|r| (r as usize) < round)
        {
            kept.push_str(&line);
            kept.push('\n');
        }
    }
    let tmp = path.with_extension("jsonl.partial");
    std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(kept.as_bytes()).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| TrainError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_trims_logs_to_the_checkpointed_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"round\":0,\"x\":1}\n{\"round\":1,\"x\":2}\n{\"round\":2,\"x\":3}\n{\"round\":2,\"x",
        )
        .unwrap();
        keep_rounds_before(&path, 2).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"round\":0,\"x\":1}\n{\"round\":1,\"x\":2}\n");
        keep_rounds_before(&path, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        keep_rounds_before(&dir.path().join("missing.jsonl"), 3).unwrap();
    }

    #[test]
    fn rounds_walk_through_the_problems_and_wrap() {
        let problems: Vec<Problem> = ["a", "b", "c"]
            .iter()
            .map(|id| Problem {
                id: id.to_string(),
                ..crate::training::blank_problem()
            })
            .collect();
        let ids = |round| {
            round_problems(&problems, 2, round)
                .iter()
                .map(|p| p.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(0), ["a", "b"]);
        assert_eq!(ids(1), ["c", "a"]);
        assert!(round_problems(&[], 2, 0).is_empty());
    }
}
