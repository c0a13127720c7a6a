//! What a training run ends with ([`TrainSummary`], written as `summary.json`): each agent's
//! held-out results before and after training, as counts ([`HeldOut`]).

use std::path::PathBuf;

use mars2_sandbox::IsolationReport;
use mars2_search::runner::ProblemRun;
use serde::{Deserialize, Serialize};

use super::config::Algorithm;

/// One agent's held-out evaluation: answers that passed every hidden test among those the
/// grader judged, and answers the grader could not judge (counted apart, in no rate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub passed: usize,
    pub judged: usize,
    pub sandbox_failures: usize,
}

impl HeldOut {
    /// Passed over judged (0 when nothing was judged).
    pub fn pass_rate(&self) -> f64 {
        if self.judged == 0 {
            0.0
        } else {
            self.passed as f64 / self.judged as f64
        }
    }

    /// Counts the generated nodes of `runs` by their hidden-test verdicts.
    pub fn count(runs: &[ProblemRun]) -> HeldOut {
        let mut held_out = HeldOut::default();
        for node in runs.iter().flat_map(|r| r.tree.generated()) {
            match node.hidden.as_ref() {
                Some(j) if j.reward().is_none() => held_out.sandbox_failures += 1,
                judgement => {
                    held_out.judged += 1;
                    held_out.passed += judgement.is_some_and(|j| j.accepted()) as usize;
                }
            }
        }
        held_out
    }
}

/// One agent at the end of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    pub agent: String,
    /// Optimizer steps taken.
    pub updates: usize,
    /// Samples still waiting for a full batch.
    pub left_over_samples: usize,
    pub pass_rate_before: f64,
    pub pass_rate_after: f64,
    pub held_out_before: HeldOut,
    pub held_out_after: HeldOut,
    /// The trained weights as a Hugging Face checkpoint (`checkpoints/latest/<agent>/model`),
    /// or the starting model when no round ran.
    #[serde(default)]
    pub model: PathBuf,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub algorithm: Algorithm,
    pub train_problems: usize,
    pub held_out_problems: usize,
    pub wall_seconds: f64,
    /// The sandbox's protections during the run.
    pub isolation: IsolationReport,
    pub agents: Vec<AgentSummary>,
}
