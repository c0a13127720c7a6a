//! Multi-agent tree search for code generation (MARS², MARS²-T+), its baselines and metrics.
//!
//! One tree per problem, grown node by node ([`runner::grow_tree`]): AB-MCTS-A selection
//! ([`select`]) decides from Beta or Normal-Inverse-χ² posteriors ([`posterior`]) whether
//! to generate a new answer at a node or go deeper, and which agent of the team writes it
//! (Thompson sampling, UCB1 or turns). Answers come from a [`Policy`] (the engine in
//! [`policy::EnginePolicy`]), prompts from [`prompts`] (fresh solution, refinement with the
//! parent or the whole path as context, plain verdicts or T+ error feedback), verdicts from
//! the sandbox ([`judging`]). Many trees grow at once ([`runner::run_problems`]); each
//! finished problem gives [`metrics`] (Pass@1, Pass@1(MCTS), Pass@N, AEC, DA@K via
//! [`diversity`]), a line of `trees.jsonl` ([`records`]) and a part of the HTML report
//! ([`report`]); [`intervals`] gives figures over problems their confidence intervals. The
//! search never touches tensors.

pub mod comparison;
pub mod config;
pub mod diversity;
pub mod error;
pub mod evaluation;
pub mod intervals;
pub mod judging;
pub mod metrics;
pub mod policy;
pub mod posterior;
pub mod prompts;
pub mod records;
pub mod report;
pub mod runner;
pub mod scorer;
pub mod select;
pub mod team;
pub mod tree;

pub use config::{
    AgentChoice, AgentSpec, ContextMode, FeedbackMode, Method, PromptStyle, Role, SearchConfig,
};
pub use error::{Result, SearchError};
pub use metrics::{problem_metrics, summarize, ProblemMetrics, Summary};
pub use policy::{EnginePolicy, Policy, PolicyRequest, SamplingOverride};
pub use posterior::{Posterior, PosteriorKind};
pub use records::{ProblemRecord, RunDir};
pub use runner::{grow_tree, run_problem, run_problems, ProblemRun, SearchContext};
pub use scorer::Scorer;
pub use team::{load_team, load_team_as, team_of, AgentModel, LoadedTeam, TeamWeights};
pub use tree::{Generation, Judgement, Node, NodeId, Tree};
