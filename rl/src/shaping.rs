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
    let reward = |id: usize| raw[id - 1];
    tree.generated()
        .map(|node| {
            let r = reward(node.id);
            let parent = node.parent.unwrap_or(Tree::ROOT);
            let siblings: Vec<f64> = tree
                .node(parent)
                .children
                .iter()
                .filter(|&&c| c != node.id)
                .map(|&c| reward(c))
                .collect();
            let sib = (!siblings.is_empty())
                .then(|| siblings.iter().sum::<f64>() / siblings.len() as f64);
            let baseline = match (parent == Tree::ROOT, sib) {
                (false, Some(sib)) => Some((1.0 - lambda) * reward(parent) + lambda * sib),
                (false, None) => Some(reward(parent)),
                (true, Some(sib)) => Some(sib),
                (true, None) => None,
            };
            match baseline {
                Some(b) => r + gamma * (r - b),
                None => r,
            }
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
/// dynamic filtering drops the tree. Nodes whose grader could not run get reward 0 here;
/// callers drop them from training.
pub fn tree_advantages(tree: &Tree, config: &ShapingConfig) -> Option<Vec<f64>> {
    let raw: Vec<f64> = tree.generated().map(|n| n.reward).collect();
    if config.dynamic_filtering && raw.windows(2).all(|w| w[0] == w[1]) {
        return None;
    }
    let mut shaped = shape_rewards(tree, &raw, config.gamma, config.lambda);
    if let Some((max_len, buffer)) = config.overlong {
        for (r, node) in shaped.iter_mut().zip(tree.generated()) {
            let len = node.generation.as_ref().map_or(0, |g| g.response_len);
            *r += overlong_penalty(len, max_len, buffer);
        }
    }
    Some(group_advantages(&shaped))
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
}
