//! How an evaluation reports what it is doing. Trees grow on several threads at once, so the
//! observer is shared between them ([`EvalObserver`] is `Sync` and takes `&self`); every
//! finished problem is also written to the run directory, so an observer is never needed to
//! keep results.

use mars2_models::QuantizeReport;

use crate::metrics::Summary;

/// One step of an evaluation.
#[derive(Debug, Clone, Copy)]
pub enum EvalEvent<'a> {
    /// Model `agent` is loaded and its matrices stored as `report` says (only when the
    /// config asks for a quantization).
    Quantized {
        agent: &'a str,
        report: &'a QuantizeReport,
    },
    /// The directory already held `done` finished problems; `todo` are left.
    Resuming { done: usize, todo: usize },
    /// The search starts on `problems` problems.
    Started { problems: usize },
    /// A node was added to some tree; `nodes` have been added in this run so far.
    NodeGrown { nodes: usize },
    /// A problem is finished and written to `trees.jsonl`; `finished` problems are done in this
    /// run, `solved` of them by the search's pick (Pass@1(MCTS)).
    ProblemFinished {
        problem_id: &'a str,
        finished: usize,
        solved: usize,
    },
    /// A problem failed (generation or the sandbox); it runs again when the run resumes.
    ProblemFailed { problem_id: &'a str, error: &'a str },
    /// Every problem is done and `summary.json` and `report.html` are written.
    Finished { summary: &'a Summary },
}

/// Receives the events of an evaluation, from any of its threads.
pub trait EvalObserver: Sync {
    fn on_event(&self, event: EvalEvent<'_>);
}

/// No observer.
impl EvalObserver for () {
    fn on_event(&self, _: EvalEvent<'_>) {}
}

/// Any shareable closure over events.
impl<F: Fn(EvalEvent<'_>) + Sync> EvalObserver for F {
    fn on_event(&self, event: EvalEvent<'_>) {
        self(event)
    }
}
