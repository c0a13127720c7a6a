//! What a training run ends with ([`TrainSummary`], written as `summary.json`): each agent's
//! held-out results before and after training, as counts ([`HeldOut`]), with 95 % intervals
//! over the held-out problems for each pass rate and for its change.

use std::path::PathBuf;

use mars2_sandbox::IsolationReport;
use mars2_search::intervals::{paired_difference, wilson, Interval};
use mars2_search::runner::ProblemRun;
use serde::{Deserialize, Serialize};

use super::config::Algorithm;

/// One agent's held-out evaluation: answers that passed every hidden test among those the
/// grader judged, and answers the grader could not judge (counted apart, in no rate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub passed: usize,
    pub judged: usize,
    pub sandbox_failures: usize,
    /// Per held-out problem, in order: `[passed, judged]` (the unit intervals resample).
    #[serde(default)]
    pub per_problem: Vec<[usize; 2]>,
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

    /// Counts the generated nodes of `runs` (one per problem) by their hidden-test verdicts.
    pub fn count(runs: &[ProblemRun]) -> HeldOut {
        let mut held_out = HeldOut::default();
        for run in runs {
            let [mut passed, mut judged] = [0, 0];
            for node in run.tree.generated() {
                match node.hidden.as_ref() {
                    Some(j) if j.reward().is_none() => held_out.sandbox_failures += 1,
                    judgement => {
                        judged += 1;
                        passed += judgement.is_some_and(|j| j.accepted()) as usize;
                    }
                }
            }
            held_out.passed += passed;
            held_out.judged += judged;
            held_out.per_problem.push([passed, judged]);
        }
        held_out
    }

    /// Each problem's passing fraction, in order; `None` for a problem with no judged answer.
    pub fn problem_rates(&self) -> Vec<Option<f64>> {
        self.per_problem
            .iter()
            .map(|&[passed, judged]| (judged > 0).then(|| passed as f64 / judged as f64))
            .collect()
    }

    /// The pass rate with its 95 % Wilson interval over problems (a problem with several
    /// answers counts its passing fraction); `None` before per-problem counts were kept or
    /// when nothing was judged.
    pub fn pass_rate_interval(&self) -> Option<Interval> {
        let rates: Vec<f64> = self.problem_rates().into_iter().flatten().collect();
        wilson(rates.iter().sum(), rates.len())
    }
}

/// The change of the pass rate from `before` to `after` over the problems judged in both, with
/// its 95 % paired-bootstrap interval; `None` when they share no judged problem.
pub fn pass_rate_change(before: &HeldOut, after: &HeldOut) -> Option<Interval> {
    let (b, a): (Vec<f64>, Vec<f64>) = before
        .problem_rates()
        .into_iter()
        .zip(after.problem_rates())
        .filter_map(|(b, a)| Some((b?, a?)))
        .unzip();
    if b.is_empty() {
        return None;
    }
    paired_difference(&b, &a, 0)
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
    /// 95 % intervals of the pass rates (Wilson, over problems) and of their change (paired
    /// bootstrap over problems); absent when nothing was judged.
    #[serde(default)]
    pub interval_before: Option<Interval>,
    #[serde(default)]
    pub interval_after: Option<Interval>,
    #[serde(default)]
    pub change: Option<Interval>,
    /// The trained weights as a Hugging Face checkpoint (`models/<agent>` of the run
    /// directory for adapted learners, else `checkpoints/latest/<agent>/model`), or the
    /// starting model when no round ran.
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
