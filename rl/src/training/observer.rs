//! How a training run reports what it is doing: every step of the loop is a [`TrainEvent`]
//! handed to the caller's [`TrainObserver`] (progress bars, logs, tests that stop a run at a
//! chosen point). The loop's own steps arrive in order from its thread; the progress of
//! rollout trees and held-out answers arrives from the threads growing them, so the observer
//! is shared (`Sync`). Metrics are also written to the run directory,
//! so an observer is never needed to keep them.

use serde_json::Value;

use super::summary::TrainSummary;
use crate::StepMetrics;

/// One step of a training run.
#[derive(Debug, Clone, Copy)]
pub enum TrainEvent<'a> {
    /// The agents' models are loading.
    Loading { agents: usize },
    /// `resume` was asked but the run directory holds no complete checkpoint.
    NoCheckpoint,
    /// The run continues after its last checkpoint, at round `next_round`.
    Resumed { next_round: usize },
    /// Round `round` of `rounds` waits for its trees (grown now, or ahead of training).
    RoundStarted { round: usize, rounds: usize },
    /// The held-out evaluation of every agent starts (before or after training).
    Evaluating { agents: usize, problems: usize },
    /// `done` of the `total` held-out answers of the evaluation under way are judged (every
    /// agent's together).
    HeldOutJudged { done: usize, total: usize },
    /// `done` of round `round`'s `total` trees are grown.
    TreeGrown {
        round: usize,
        done: usize,
        total: usize,
    },
    /// Round `round`'s trees are grown; nothing of them is written yet.
    RolloutGrown {
        round: usize,
        trees: usize,
        seconds: f64,
    },
    /// The round's trees are logged; training waits for the starting weights' evaluation.
    WaitingForEvaluation { round: usize },
    /// Agent `agent` starts an update.
    Updating { round: usize, agent: &'a str },
    /// Agent `agent` finished an update and its metrics line is written (`line` is that
    /// line of `metrics.jsonl`).
    Updated {
        round: usize,
        agent: &'a str,
        metrics: &'a StepMetrics,
        line: &'a Value,
    },
    /// Agent `agent`'s checkpoint of round `round` is written (the round not yet committed).
    CheckpointWritten { round: usize, agent: &'a str },
    /// Round `round` is committed: a run stopped from now on resumes after it.
    RoundCommitted { round: usize },
    /// Agent `agent`'s trained model (adapters merged) is being written to the run directory's
    /// `models/`.
    Exporting { agent: &'a str },
    /// Training is over; the result is written to `summary.json`.
    Finished { summary: &'a TrainSummary },
}

/// Receives the events of a training run.
pub trait TrainObserver: Sync {
    fn on_event(&self, event: TrainEvent<'_>);
}

/// No observer.
impl TrainObserver for () {
    fn on_event(&self, _: TrainEvent<'_>) {}
}

/// Any shareable closure over events.
impl<F: Fn(TrainEvent<'_>) + Sync> TrainObserver for F {
    fn on_event(&self, event: TrainEvent<'_>) {
        self(event)
    }
}
