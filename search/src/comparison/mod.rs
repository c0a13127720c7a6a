//! Comparisons of evaluation or training settings on the same problems and seeds: a
//! configuration names a grid of settings ([`grid`]), each runs as an ordinary resumable
//! evaluation or training run in its own directory, and their finished problems (a training
//! run's held-out problems) give each setting's figures with 95 % bootstrap intervals and
//! every pair's paired difference ([`stats`]), written as `comparison.json` and a page
//! ([`html`]).

pub mod grid;
pub mod html;
pub mod stats;

pub use grid::{ComparisonConfig, ComparisonKind, OptionValue, Options, Setting};
pub use html::render_comparison;
pub use stats::{compare, Comparison, Metric, PairResult, ProblemValues, SettingResult};
