//! The training loop of MARS² as a library function: [`train`] evaluates the agents on
//! held-out problems, then alternates rollout (search trees over training problems, judged in
//! the sandbox) and per-agent updates (shaping, tree-group advantages, GSPO/GRPO, AdamW),
//! handing new weights to the engine after every step; it evaluates again at the end. With
//! `train.max_staleness` ≥ 1 the next round's trees grow while the current round trains.
//!
//! Everything a run produces is a file in its run directory: `config.toml`, `metrics.jsonl`
//! (one line per update), `rollouts.jsonl` (every tree), `summary.json` ([`TrainSummary`])
//! and per-agent checkpoints committed after every round ([`checkpoints`]), from which
//! `resume` continues a stopped run exactly. Progress reaches the caller as
//! [`TrainEvent`]s.
//!
//! - [`config`]: the typed settings ([`TrainConfig`]), read from TOML.
//! - [`rollout`]: rollout trees, held-out evaluation, the rollout log.
//! - [`round`]: one round of updates and its metrics lines.
//! - [`engine_weights`]: how each update's weights reach the rollout engine.
//! - [`gather`]: a multi-node run's trees, grown in shards, gathered on every node.
//! - [`fine_tune`]: supervised fine-tuning on reference programs ([`fine_tune::fine_tune`]).
//! - [`reward_fit`]: the T+ reward model fitted on judged programs of search trees.

pub mod checkpoints;
pub mod config;
pub mod engine_weights;
pub mod error;
pub mod fine_tune;
pub mod gather;
pub mod observer;
pub mod reward_fit;
pub mod rollout;
pub mod round;
pub mod summary;

mod run;

pub use config::{AdapterWeights, Algorithm, FrozenBase, TrainConfig, TrainedWeights};
pub use error::{TrainError, TrainResult};
pub use mars2_search::team::{team_of, AgentModel};
pub use observer::{TrainEvent, TrainObserver};
pub use run::{train, train_on, TrainJob};
pub use summary::{AgentSummary, HeldOut, TrainSummary};

/// An MBPP problem with nothing in it, for the tests of this module to fill in.
#[cfg(test)]
fn blank_problem() -> mars2_sandbox::Problem {
    mars2_sandbox::Problem {
        id: String::new(),
        dataset: mars2_sandbox::Dataset::Mbpp,
        title: None,
        statement: String::new(),
        starter_code: String::new(),
        entry_point: None,
        public_tests: Vec::new(),
        hidden_tests: Vec::new(),
        reference_solution: None,
        platform: None,
        difficulty: None,
        split: None,
    }
}
