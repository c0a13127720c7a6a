//! The search tree: an arena of nodes in creation order. Node 0 is the root (the problem, no
//! code); every other node is one generated answer with its code, its verdicts and what the
//! learner needs (prompt and response tokens, sampling log-probs, weights version).
//!
//! The tree holds facts only; the search statistics (posteriors, per-agent rewards) live in
//! [`crate::select::SearchState`] and are rebuilt from these facts when needed.

use mars2_sandbox::{FailedTest, Verdict, VerdictKind};
use serde::{Deserialize, Serialize};

/// Index of a node in its tree's arena (creation order; the root is 0).
pub type NodeId = usize;

/// The outcome of judging a node's program on one set of tests, without run statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub kind: VerdictKind,
    pub passed: usize,
    pub total: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailedTest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Judgement {
    pub fn accepted(&self) -> bool {
        self.kind == VerdictKind::Accepted
    }

    /// 1 when every test passed, 0 for any failure of the program, `None` when the grader
    /// could not run.
    pub fn reward(&self) -> Option<f64> {
        self.kind.reward()
    }

    /// Tests passed before the first failure over tests run, `None` when the grader could
    /// not run.
    pub fn partial_credit(&self) -> Option<f64> {
        self.kind.partial_credit(self.passed, self.total)
    }
}

impl From<&Verdict> for Judgement {
    fn from(v: &Verdict) -> Self {
        Judgement {
            kind: v.kind,
            passed: v.passed,
            total: v.total,
            failure: v.failure.clone(),
            message: v.message.clone(),
        }
    }
}

/// What a model produced for one node. Token ids and log-probs are kept in memory for the
/// learner and left out of the written records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The answer as text, from the response prefix the prompt wrote for the model (if any)
    /// on.
    pub text: String,
    #[serde(skip)]
    pub prompt_tokens: Vec<u32>,
    #[serde(skip)]
    pub response_tokens: Vec<u32>,
    /// Log-prob of each response token under the distribution it was sampled from.
    #[serde(skip)]
    pub logprobs: Vec<f32>,
    /// Prompt length in tokens.
    pub prompt_len: usize,
    /// Response length in tokens.
    pub response_len: usize,
    /// Why generation stopped: "stop", "length", …
    pub finish_reason: String,
    /// The weights version of the agent that generated it.
    pub weights_version: u64,
}

/// One node of a search tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    /// `None` for the root.
    pub parent: Option<NodeId>,
    pub children: Vec<NodeId>,
    /// Root 0, fresh solutions 1, their refinements 2, …
    pub depth: usize,
    /// Index of the team member that generated it; `None` for the root.
    pub agent: Option<usize>,
    pub generation: Option<Generation>,
    /// The program extracted from the answer; `None` when it has none.
    pub code: Option<String>,
    /// Verdict on the tests that guide the search (public at evaluation, all in training).
    pub guide: Option<Judgement>,
    /// Verdict on the scoring tests (hidden), when they were run.
    pub hidden: Option<Judgement>,
    /// The reward the search observed for this node.
    pub reward: f64,
    /// The reward model's score of the code, when a scorer is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

impl Node {
    pub fn is_root(&self) -> bool {
        self.parent.is_none()
    }

    /// Whether the program passed every guiding test.
    pub fn passes_guide(&self) -> bool {
        self.guide.as_ref().is_some_and(Judgement::accepted)
    }

    /// Whether the program passed every scoring (hidden) test.
    pub fn passes_hidden(&self) -> bool {
        self.hidden.as_ref().is_some_and(Judgement::accepted)
    }
}

/// One problem's tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only the root.
    pub fn new() -> Self {
        Tree {
            nodes: vec![Node {
                id: 0,
                parent: None,
                children: Vec::new(),
                depth: 0,
                agent: None,
                generation: None,
                code: None,
                guide: None,
                hidden: None,
                reward: 0.0,
                score: None,
            }],
        }
    }

    pub const ROOT: NodeId = 0;

    pub fn root(&self) -> &Node {
        &self.nodes[Self::ROOT]
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Number of generated nodes (the root not counted).
    pub fn size(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Generated nodes in creation order.
    pub fn generated(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().skip(1)
    }

    /// Appends a child of `parent` and returns its id.
    ///
    /// # Panics
    /// If `parent` is not a node of this tree.
    pub fn add_child(&mut self, parent: NodeId, mut node: Node) -> NodeId {
        let id = self.nodes.len();
        node.id = id;
        node.parent = Some(parent);
        node.depth = self.nodes[parent].depth + 1;
        node.children.clear();
        self.nodes[parent].children.push(id);
        self.nodes.push(node);
        id
    }

    /// The ids from the root's child down to `id` (the root excluded).
    pub fn path_to(&self, id: NodeId) -> Vec<NodeId> {
        let mut path = Vec::new();
        let mut cur = id;
        while let Some(parent) = self.nodes[cur].parent {
            path.push(cur);
            cur = parent;
        }
        path.reverse();
        path
    }

    /// Nodes at each depth: `counts[d]` nodes have depth `d`.
    pub fn depth_counts(&self) -> Vec<usize> {
        let mut counts = Vec::new();
        for n in &self.nodes {
            if counts.len() <= n.depth {
                counts.resize(n.depth + 1, 0);
            }
            counts[n.depth] += 1;
        }
        counts
    }

    pub fn max_depth(&self) -> usize {
        self.nodes.iter().map(|n| n.depth).max().unwrap_or(0)
    }

    /// A generated node with no fields set, ready for [`Tree::add_child`].
    pub fn blank_node(agent: usize) -> Node {
        Node {
            agent: Some(agent),
            ..Tree::new().nodes.remove(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_get_ids_depths_and_paths() {
        let mut t = Tree::new();
        let a = t.add_child(Tree::ROOT, Tree::blank_node(0));
        let b = t.add_child(a, Tree::blank_node(1));
        let c = t.add_child(Tree::ROOT, Tree::blank_node(0));
        assert_eq!((a, b, c), (1, 2, 3));
        assert_eq!(t.node(b).depth, 2);
        assert_eq!(t.node(b).parent, Some(a));
        assert_eq!(t.root().children, vec![1, 3]);
        assert_eq!(t.path_to(b), vec![1, 2]);
        assert_eq!(t.depth_counts(), vec![1, 2, 1]);
        assert_eq!(t.size(), 3);
        assert_eq!(t.max_depth(), 2);
    }

    #[test]
    fn tokens_stay_out_of_the_json_record() {
        let mut t = Tree::new();
        let mut n = Tree::blank_node(0);
        n.generation = Some(Generation {
            text: "x".into(),
            prompt_tokens: vec![1, 2],
            response_tokens: vec![3],
            logprobs: vec![-0.5],
            prompt_len: 2,
            response_len: 1,
            finish_reason: "stop".into(),
            weights_version: 0,
        });
        t.add_child(0, n);
        let json = serde_json::to_string(&t).unwrap();
        assert!(!json.contains("logprobs"));
        let back: Tree = serde_json::from_str(&json).unwrap();
        let g = back.node(1).generation.as_ref().unwrap();
        assert_eq!((g.prompt_len, g.response_len), (2, 1));
        assert!(g.response_tokens.is_empty());
    }
}
