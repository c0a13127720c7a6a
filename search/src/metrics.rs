//! Metrics of finished searches, per problem then averaged over problems:
//! Pass@1 (fresh samples, unbiased estimator), Pass@1(MCTS) (the node picked by public
//! score), Pass@N (coverage of the tree), AEC (error-correction rate per agent pair) and
//! DA@K (distinct algorithms among correct solutions; the clustering is in
//! [`crate::diversity`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::runner::{FreshSample, ProblemRun};
use crate::tree::{NodeId, Tree};

/// Unbiased pass@k from `n` samples of which `c` passed: 1 − C(n−c, k)/C(n, k)
/// (computed as a product, stable for large n).
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if k == 0 || n == 0 {
        return 0.0;
    }
    if n - c.min(n) < k {
        return 1.0;
    }
    let mut fail = 1.0;
    for i in (n - c + 1)..=n {
        fail *= 1.0 - k as f64 / i as f64;
    }
    1.0 - fail
}

/// The node a search answers with: the best public score (tests passed over tests run),
/// ties broken by the reward model's score when there is one, then by the most recently
/// created node. `None` for a tree without generated nodes.
pub fn pick_answer(tree: &Tree) -> Option<NodeId> {
    let public_score = |id: NodeId| {
        tree.node(id)
            .guide
            .as_ref()
            .and_then(|g| g.partial_credit())
            .unwrap_or(0.0)
    };
    tree.generated().map(|n| n.id).max_by(|&a, &b| {
        public_score(a)
            .total_cmp(&public_score(b))
            .then_with(|| {
                let sa = tree.node(a).score.unwrap_or(0.0);
                let sb = tree.node(b).score.unwrap_or(0.0);
                sa.total_cmp(&sb)
            })
            .then(a.cmp(&b))
    })
}

/// Refinement edges whose parent fails its guiding tests, and those whose child passes, per
/// (parent's agent, child's agent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Corrections {
    pub attempts: usize,
    pub fixed: usize,
}

impl Corrections {
    pub fn rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.fixed as f64 / self.attempts as f64)
    }
}

/// AEC counts of one tree, keyed by "parent agent → child agent" indices.
pub fn corrections(tree: &Tree) -> BTreeMap<(usize, usize), Corrections> {
    let mut out: BTreeMap<(usize, usize), Corrections> = BTreeMap::new();
    for node in tree.generated() {
        let Some(parent) = node.parent.filter(|&p| p != Tree::ROOT) else {
            continue;
        };
        let parent = tree.node(parent);
        if parent.passes_guide() {
            continue;
        }
        let (Some(pa), Some(ca)) = (parent.agent, node.agent) else {
            continue;
        };
        let entry = out.entry((pa, ca)).or_default();
        entry.attempts += 1;
        if node.passes_guide() {
            entry.fixed += 1;
        }
    }
    out
}

/// Per-agent facts of one tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentTally {
    pub nodes: usize,
    pub guide_passed: usize,
    pub hidden_passed: usize,
    pub tokens_generated: usize,
    pub samples: usize,
    pub samples_passed: usize,
}

/// The metrics of one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemMetrics {
    /// Pass@1 from the fresh samples (c/n); `None` without samples.
    pub pass1: Option<f64>,
    /// Hidden pass of the node picked by public score.
    pub pass1_mcts: bool,
    /// Some node passes the hidden tests.
    pub pass_n: bool,
    pub picked: Option<NodeId>,
    pub nodes: usize,
    pub max_depth: usize,
    pub tokens_generated: usize,
    /// Distinct algorithms among up to K hidden-passing programs; `None` when none passes
    /// or it was not computed.
    pub da_k: Option<usize>,
    pub per_agent: Vec<AgentTally>,
    /// AEC counts: (parent agent, child agent, counts).
    pub corrections: Vec<(usize, usize, Corrections)>,
    /// Nodes whose grader could not run.
    pub sandbox_failures: usize,
}

/// Metrics of one problem's run over a team of `agents`.
pub fn problem_metrics(run: &ProblemRun, agents: usize, da_k: Option<usize>) -> ProblemMetrics {
    let tree = &run.tree;
    let picked = pick_answer(tree);
    let mut per_agent = vec![AgentTally::default(); agents];
    let mut tokens = 0;
    let mut sandbox_failures = 0;
    for node in tree.generated() {
        let response = node.generation.as_ref().map_or(0, |g| g.response_len);
        tokens += response;
        if node.guide.as_ref().is_some_and(|g| g.reward().is_none()) {
            sandbox_failures += 1;
        }
        if let Some(tally) = node.agent.and_then(|a| per_agent.get_mut(a)) {
            tally.nodes += 1;
            tally.guide_passed += node.passes_guide() as usize;
            tally.hidden_passed += node.passes_hidden() as usize;
            tally.tokens_generated += response;
        }
    }
    for sample in &run.samples {
        tokens += sample.tokens;
        if let Some(tally) = per_agent.get_mut(sample.agent) {
            tally.samples += 1;
            tally.samples_passed += (sample.passed == Some(true)) as usize;
            tally.tokens_generated += sample.tokens;
        }
    }
    ProblemMetrics {
        pass1: sample_pass_rate(&run.samples),
        pass1_mcts: picked.is_some_and(|id| tree.node(id).passes_hidden()),
        pass_n: tree.generated().any(|n| n.passes_hidden()),
        picked,
        nodes: tree.size(),
        max_depth: tree.max_depth(),
        tokens_generated: tokens,
        da_k,
        per_agent,
        corrections: corrections(tree)
            .into_iter()
            .map(|((a, b), c)| (a, b, c))
            .collect(),
        sandbox_failures,
    }
}

/// Unbiased Pass@1 of the samples the grader judged.
fn sample_pass_rate(samples: &[FreshSample]) -> Option<f64> {
    let judged: Vec<bool> = samples.iter().filter_map(|s| s.passed).collect();
    let c = judged.iter().filter(|&&p| p).count();
    (!judged.is_empty()).then(|| pass_at_k(judged.len(), c, 1))
}

/// Per-agent part of the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    pub name: String,
    pub nodes: usize,
    /// Fraction of its nodes passing the guiding tests.
    pub guide_pass_rate: Option<f64>,
    /// Fraction of its nodes passing the hidden tests.
    pub hidden_pass_rate: Option<f64>,
    /// Pass@1 of its fresh samples.
    pub pass1: Option<f64>,
    pub tokens_generated: usize,
}

/// One agent pair's error-correction rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairCorrection {
    pub parent_agent: String,
    pub child_agent: String,
    pub attempts: usize,
    pub fixed: usize,
    pub rate: Option<f64>,
}

/// Averages over problems (the keys of `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub problems: usize,
    /// Mean Pass@1 over problems with fresh samples.
    pub pass1: Option<f64>,
    pub pass1_mcts: f64,
    #[serde(rename = "passN")]
    pub pass_n: f64,
    /// Error-correction rate over all refinement edges from a failing parent.
    pub aec: Option<f64>,
    /// Mean distinct algorithms over problems with a correct solution.
    pub da_k: Option<f64>,
    pub nodes: usize,
    pub mean_depth: f64,
    pub tokens_generated: usize,
    pub wall_seconds: f64,
    pub sandbox_failures: usize,
    pub per_agent: Vec<AgentSummary>,
    pub aec_pairs: Vec<PairCorrection>,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The summary of per-problem metrics for a team named `agents`; `wall_seconds` is the
/// run's wall time.
pub fn summarize(metrics: &[ProblemMetrics], agents: &[String], wall_seconds: f64) -> Summary {
    let mut tallies = vec![AgentTally::default(); agents.len()];
    let mut pairs: BTreeMap<(usize, usize), Corrections> = BTreeMap::new();
    for m in metrics {
        for (t, a) in tallies.iter_mut().zip(&m.per_agent) {
            t.nodes += a.nodes;
            t.guide_passed += a.guide_passed;
            t.hidden_passed += a.hidden_passed;
            t.tokens_generated += a.tokens_generated;
            t.samples += a.samples;
            t.samples_passed += a.samples_passed;
        }
        for &(a, b, c) in &m.corrections {
            let e = pairs.entry((a, b)).or_default();
            e.attempts += c.attempts;
            e.fixed += c.fixed;
        }
    }
    let total_attempts: usize = pairs.values().map(|c| c.attempts).sum();
    let total_fixed: usize = pairs.values().map(|c| c.fixed).sum();
    let name = |i: usize| {
        agents
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("agent {i}"))
    };
    Summary {
        problems: metrics.len(),
        pass1: mean(metrics.iter().filter_map(|m| m.pass1)),
        pass1_mcts: mean(metrics.iter().map(|m| m.pass1_mcts as u8 as f64)).unwrap_or(0.0),
        pass_n: mean(metrics.iter().map(|m| m.pass_n as u8 as f64)).unwrap_or(0.0),
        aec: ratio(total_fixed, total_attempts),
        da_k: mean(metrics.iter().filter_map(|m| m.da_k.map(|d| d as f64))),
        nodes: metrics.iter().map(|m| m.nodes).sum(),
        mean_depth: mean(metrics.iter().map(|m| m.max_depth as f64)).unwrap_or(0.0),
        tokens_generated: metrics.iter().map(|m| m.tokens_generated).sum(),
        wall_seconds,
        sandbox_failures: metrics.iter().map(|m| m.sandbox_failures).sum(),
        per_agent: tallies
            .iter()
            .enumerate()
            .map(|(i, t)| AgentSummary {
                name: name(i),
                nodes: t.nodes,
                guide_pass_rate: ratio(t.guide_passed, t.nodes),
                hidden_pass_rate: ratio(t.hidden_passed, t.nodes),
                pass1: ratio(t.samples_passed, t.samples),
                tokens_generated: t.tokens_generated,
            })
            .collect(),
        aec_pairs: pairs
            .iter()
            .map(|(&(a, b), c)| PairCorrection {
                parent_agent: name(a),
                child_agent: name(b),
                attempts: c.attempts,
                fixed: c.fixed,
                rate: c.rate(),
            })
            .collect(),
    }
}
