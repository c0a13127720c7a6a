//! From a finished tree to per-sample advantages: tree-consistent reward shaping, the
//! optional overlong penalty, and the group advantage over the whole tree (pooled across
//! agents), with optional dynamic filtering of trees whose raw rewards are all equal.
//!
//! Shaping reads a copy of the raw rewards, so the order nodes are visited in does not
//! matter: with γ the shaping weight and λ the sibling weight,
//! - parent not root, siblings exist: `b = (1−λ)·r_parent + λ·sib`
//! - parent not root, no siblings: `b = r_parent`
//! - parent is root, siblings exist: `b = sib`; otherwise no shaping
//! - `r̃ = r + γ·(r − b)`, with `sib` the leave-one-out mean of the siblings' rewards.

use serde::{Deserialize, Serialize};

use mars2_search::Tree;

/// Settings of shaping and advantages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapingConfig {
    /// γ: how strongly a node is rewarded for beating its baseline (0: no shaping).
    pub gamma: f64,
    /// λ: weight of the siblings against the parent in the baseline.
    pub lambda: f64,
    /// Overlong penalty: `(L_max, buffer)` in tokens; `None` turns it off.
    pub overlong: Option<(usize, usize)>,
    /// Drop trees whose raw rewards are all equal (they carry no signal).
    pub dynamic_filtering: bool,
}

impl Default for ShapingConfig {
    fn default() -> Self {
        ShapingConfig {
            gamma: 0.5,
            lambda: 0.5,
            overlong: None,
            dynamic_filtering: false,
        }
    }
}

/// Shaped rewards of the generated nodes (index `i` is node `i + 1`), from a copy of the
/// raw rewards `raw` (same indexing).
pub fn shape_rewards(tree: &Tree, raw: &[f64], gamma: f64, lambda: f64) -> Vec<f64> {
    let judged: Vec<Option<f64>> = raw.iter().copied().map(Some).collect();
    shape_judged_rewards(tree, &judged, gamma, lambda)
        .into_iter()
        .map(|r| r.unwrap_or(0.0))
        .collect()
}

/// As [`shape_rewards`] where `raw[i]` is `None` for a node the grader could not judge: such a
/// node has no shaped reward and is nobody's baseline (a child of it is shaped as if its
/// parent were the root; it is left out of its siblings' mean).
pub fn shape_judged_rewards(
    tree: &Tree,
    raw: &[Option<f64>],
    gamma: f64,
    lambda: f64,
) -> Vec<Option<f64>> {
    let reward = |id: usize| if id == Tree::ROOT { None } else { raw[id - 1] };
    tree.generated()
        .map(|node| {
            let r = reward(node.id)?;
            let parent = node.parent.unwrap_or(Tree::ROOT);
            let siblings: Vec<f64> = tree
                .node(parent)
                .children
                .iter()
                .filter(|&&c| c != node.id)
                .filter_map(|&c| reward(c))
                .collect();
            let sib = (!siblings.is_empty())
                .then(|| siblings.iter().sum::<f64>() / siblings.len() as f64);
            let baseline = match (reward(parent), sib) {
                (Some(p), Some(sib)) => Some((1.0 - lambda) * p + lambda * sib),
                (Some(p), None) => Some(p),
                (None, Some(sib)) => Some(sib),
                (None, None) => None,
            };
            Some(match baseline {
                Some(b) => r + gamma * (r - b),
                None => r,
            })
        })
        .collect()
}

/// The overlong penalty of a response of `len` tokens: `−min(len − (L_max − buf), buf)/buf`
/// past `L_max − buf`, else 0.
pub fn overlong_penalty(len: usize, max_len: usize, buffer: usize) -> f64 {
    let start = max_len.saturating_sub(buffer);
    if len <= start || buffer == 0 {
        return 0.0;
    }
    -((len - start).min(buffer) as f64) / buffer as f64
}

/// `(r − mean) / (std + 1e-6)` with the unbiased standard deviation (0 for one value).
pub fn group_advantages(rewards: &[f64]) -> Vec<f64> {
    let n = rewards.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = rewards.iter().sum::<f64>() / n as f64;
    let std = if n > 1 {
        (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    rewards.iter().map(|r| (r - mean) / (std + 1e-6)).collect()
}

/// Advantages of every generated node of `tree` (index `i` is node `i + 1`), or `None` when
/// dynamic filtering drops the tree. Nodes whose grader could not run take no part: they get
/// advantage 0 (callers drop them from training) and enter no baseline, mean or deviation.
pub fn tree_advantages(tree: &Tree, config: &ShapingConfig) -> Option<Vec<f64>> {
    let raw: Vec<Option<f64>> = tree
        .generated()
        .map(|n| n.guide.as_ref().and_then(|g| g.reward()).map(|_| n.reward))
        .collect();
    let judged: Vec<f64> = raw.iter().flatten().copied().collect();
    if config.dynamic_filtering && judged.windows(2).all(|w| w[0] == w[1]) {
        return None;
    }
    let mut shaped = shape_judged_rewards(tree, &raw, config.gamma, config.lambda);
    if let Some((max_len, buffer)) = config.overlong {
        for (r, node) in shaped.iter_mut().zip(tree.generated()) {
            let len = node.generation.as_ref().map_or(0, |g| g.response_len);
            if let Some(r) = r {
                *r += overlong_penalty(len, max_len, buffer);
            }
        }
    }
    let advantages = group_advantages(&shaped.iter().flatten().copied().collect::<Vec<_>>());
    let mut advantages = advantages.into_iter();
    Some(
        shaped
            .iter()
            .map(|r| r.and_then(|_| advantages.next()).unwrap_or(0.0))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// root ─ 1 ─ 3
    ///      │   └ 4
    ///      ├ 2
    ///      └ 5 ─ 6
    fn tree() -> Tree {
        let mut t = Tree::new();
        for parent in [0, 0, 1, 1, 0, 5] {
            t.add_child(parent, Tree::blank_node(0));
        }
        t
    }

    #[test]
    fn shaping_matches_hand_values() {
        let raw = [0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        let s = shape_rewards(&tree(), &raw, 0.5, 0.5);
        // Node 1: root parent, siblings 2 and 5 → sib = 0.5; 0 + 0.5·(0 − 0.5) = −0.25.
        assert!((s[0] + 0.25).abs() < 1e-12);
        // Node 2: siblings 1, 5 → sib 0; 1 + 0.5·1 = 1.5.
        assert!((s[1] - 1.5).abs() < 1e-12);
        // Node 3: parent 1 (r 0), sibling 4 (r 0) → b = 0; 1 + 0.5 = 1.5.
        assert!((s[2] - 1.5).abs() < 1e-12);
        // Node 4: parent 0, sibling 3 (1) → b = 0.5; 0 − 0.25.
        assert!((s[3] + 0.25).abs() < 1e-12);
        // Node 5: root parent, siblings 1, 2 → sib 0.5; −0.25.
        assert!((s[4] + 0.25).abs() < 1e-12);
        // Node 6: parent 5 (0), no siblings → b = 0; 1.5.
        assert!((s[5] - 1.5).abs() < 1e-12);
    }

    #[test]
    fn a_lone_fresh_node_is_not_shaped() {
        let mut t = Tree::new();
        t.add_child(0, Tree::blank_node(0));
        assert_eq!(shape_rewards(&t, &[1.0], 0.5, 0.5), vec![1.0]);
    }

    #[test]
    fn shaping_reads_raw_rewards_not_shaped_ones() {
        // Node 3's baseline uses node 1's raw reward even though node 1 is shaped first.
        let raw = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let s = shape_rewards(&tree(), &raw, 0.5, 0.5);
        // Node 3: b = 0.5·1 + 0.5·1 = 1 → 1.
        assert!((s[2] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn overlong_penalty_ramps_over_the_buffer() {
        assert_eq!(overlong_penalty(90, 100, 20), -0.5);
        assert_eq!(overlong_penalty(80, 100, 20), 0.0);
        assert_eq!(overlong_penalty(150, 100, 20), -1.0);
    }

    #[test]
    fn advantages_use_the_unbiased_std() {
        let a = group_advantages(&[1.0, 0.0, 0.0, 0.0]);
        // mean 0.25, unbiased std sqrt(0.75/3) = 0.5.
        assert!((a[0] - 1.5).abs() < 1e-5);
        assert!((a[1] + 0.5).abs() < 1e-5);
        assert_eq!(group_advantages(&[1.0]), vec![0.0]);
    }

    #[test]
    fn dynamic_filtering_drops_uniform_trees() {
        let t = tree();
        let config = ShapingConfig {
            dynamic_filtering: true,
            ..ShapingConfig::default()
        };
        assert_eq!(tree_advantages(&t, &config), None);
        let off = tree_advantages(&t, &ShapingConfig::default()).unwrap();
        assert!(off.iter().all(|a| *a == 0.0));
    }

    #[test]
    fn nodes_the_grader_could_not_judge_take_no_part() {
        // Node 1 could not be judged.
        let raw = [None, Some(1.0), Some(1.0), Some(0.0), Some(0.0), Some(1.0)];
        let s = shape_judged_rewards(&tree(), &raw, 0.5, 0.5);
        assert_eq!(s[0], None);
        // Node 3: its parent has no reward, so its baseline is its sibling 4 alone.
        assert_eq!(s[2], Some(1.5));
        assert_eq!(s[3], Some(-0.5));
        // Node 2: siblings 1 (left out) and 5 (0).
        assert_eq!(s[1], Some(1.5));
        assert_eq!(s[4], Some(-0.5));
        assert_eq!(s[5], Some(1.5));
    }

    fn judged(kind: mars2_sandbox::VerdictKind) -> Option<mars2_search::Judgement> {
        Some(mars2_search::Judgement {
            kind,
            passed: 0,
            total: 1,
            failure: None,
            message: None,
        })
    }

    #[test]
    fn advantages_ignore_unjudged_nodes() {
        use mars2_sandbox::VerdictKind::{Accepted, SandboxFailure, WrongAnswer};
        // A leaf that could not be judged changes no other node's advantage.
        let build = |with_failure: bool| {
            let mut t = Tree::new();
            let mut add = |parent, kind, reward| {
                let mut node = Tree::blank_node(0);
                node.guide = judged(kind);
                node.reward = reward;
                t.add_child(parent, node)
            };
            let a = add(Tree::ROOT, Accepted, 1.0);
            add(Tree::ROOT, WrongAnswer, 0.0);
            add(a, WrongAnswer, 0.0);
            if with_failure {
                add(Tree::ROOT, SandboxFailure, 0.0);
            }
            t
        };
        let config = ShapingConfig::default();
        let without = tree_advantages(&build(false), &config).unwrap();
        let with = tree_advantages(&build(true), &config).unwrap();
        assert_eq!(with.len(), 4);
        assert_eq!(&with[..3], &without[..]);
        assert_eq!(with[3], 0.0);
        assert!(without.iter().any(|a| *a != 0.0));
    }
}
