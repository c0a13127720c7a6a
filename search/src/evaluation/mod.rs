//! Evaluation as a library function: [`evaluate`] grows one search tree per benchmark
//! problem with a team of agents, judges every program in the sandbox and writes the run
//! directory: `run.json` (the settings), `trees.jsonl` (a line per finished problem, written
//! as it finishes), `summary.json` and `report.html`. Running again in the same directory with
//! the same settings resumes: finished problems are not redone. Progress reaches the caller
//! as [`EvalEvent`]s.
//!
//! - [`config`]: the typed settings ([`EvalConfig`]) and the settings record of a run.
//! - [`observer`]: the events of a run.

pub mod config;
pub mod observer;

mod run;

pub use config::EvalConfig;
pub use observer::{EvalEvent, EvalObserver};
pub use run::{evaluate, evaluate_on, EvalJob, EvalOutcome, ProblemFailure};
