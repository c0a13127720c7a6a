//! Runs untrusted Python candidates against LiveCodeBench, HumanEval and MBPP tests:
//! safely, fast, and with LiveCodeBench's comparison rules.
//!
//! - [`loaders`] read the datasets into one [`Problem`] type with public and hidden tests.
//! - [`extract`] finds the program in a model's answer (the last fenced Python block).
//! - [`Sandbox`] judges a program in two processes. The program's process (the embedded
//!   harness) runs inside new PID, network and mount namespaces, as a dedicated unprivileged
//!   user, under resource limits and a seccomp filter, with a wall-clock backstop that kills
//!   its whole process tree; it receives one test's inputs at a time and answers with data.
//!   A trusted referee process, which never runs candidate code, holds the tests, compares
//!   the answers and decides the verdict; nothing of the tests reaches the program's process.
//! - [`Verdict`] says what happened; [`Verdict::reward`] is `None` for a sandbox failure,
//!   which is never a pass or a fail of the program.
//!
//! ```no_run
//! use mars2_sandbox::{load_problems, LoadOptions, Sandbox, TestSet};
//!
//! let problems = load_problems("data/HumanEval.jsonl.gz", &LoadOptions::default())?.problems;
//! let sandbox = Sandbox::with_defaults()?;
//! let problem = &problems[0];
//! let code = problem.reference_solution.as_deref().unwrap_or_default();
//! let verdict = sandbox.judge(problem, code, TestSet::All);
//! assert_eq!(verdict.reward(), Some(1.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod compare;
mod config;
mod definitions;
mod error;
pub mod extract;
mod harness;
mod isolate;
mod judge;
pub mod loaders;
mod nonce;
mod pool;
mod probe;
mod problem;
mod python;
mod referee;
mod runner;
mod sandbox;
mod seccomp;
mod uid;
mod verdict;
mod workdir;

pub use config::{IsolationOptions, Limits, SandboxConfig};
pub use error::{LineError, LoadError, SandboxError};
pub use harness::HARNESS_SOURCE;
pub use loaders::{detect_dataset, load_dataset, load_problems, read_dataset, LoadOptions, Loaded};
pub use problem::{Dataset, Problem, Split, TestCase, TestSet};
pub use python::PYTHON_ENV;
pub use referee::REFEREE_SOURCE;
pub use sandbox::{Program, Sandbox, ScriptOutput, Submission};
pub use verdict::{
    truncate, FailedTest, IsolationReport, RunStats, Verdict, VerdictKind, DETAIL_CHARS,
};
