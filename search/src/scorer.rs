//! The reward model seen from the search: a [`Scorer`] rates a program for a problem in
//! [0, 1]. T+ uses it to break ties in the final pick and, optionally, blends it into the
//! reward the search observes. The learned scorer lives with the learner.

use mars2_sandbox::Problem;

/// Rates a candidate program for a problem; higher is more likely correct.
pub trait Scorer: Sync {
    /// A score in [0, 1].
    fn score(&self, problem: &Problem, code: &str) -> f64;
}
