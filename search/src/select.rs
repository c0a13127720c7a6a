//! AB-MCTS-A selection with agents as actions: where the next node goes (GEN at a node or go
//! deeper through its best-sampled child), which agent writes it, and the back-up of its
//! reward.
//!
//! Every node v keeps `GEN_v`, `CONT_v` and, as a child of its parent, `child_parent[v]`.
//! One step walks down from the root: at a node without children it generates; otherwise it
//! draws g ~ GEN_v (times the depth weight ω) and c ~ CONT_v, generates at v when g ≥ c, else
//! moves to the child whose posterior draw is largest. Each agent's rewards in this tree feed
//! its own posterior for the agent choice.

use rand::Rng;

use crate::config::{AgentChoice, AgentSpec};
use crate::error::{Result, SearchError};
use crate::posterior::{Posterior, PosteriorKind};
use crate::tree::{NodeId, Tree};

/// The search statistics of one tree: posteriors per node and rewards per agent.
#[derive(Debug, Clone)]
pub struct SearchState {
    kind: PosteriorKind,
    gen: Vec<Posterior>,
    cont: Vec<Posterior>,
    /// `as_child[u]` is the parent's posterior for the arm "go to child u".
    as_child: Vec<Posterior>,
    /// `agent_rewards[a]`: rewards of the nodes agent `a` created in this tree.
    pub agent_rewards: Vec<Vec<f64>>,
}

impl SearchState {
    /// The state of a tree holding only its root, for a team of `agents`.
    pub fn new(kind: PosteriorKind, agents: usize) -> Self {
        SearchState {
            kind,
            gen: vec![Posterior::prior(kind)],
            cont: vec![Posterior::prior(kind)],
            as_child: vec![Posterior::prior(kind)],
            agent_rewards: vec![Vec::new(); agents],
        }
    }

    pub fn gen(&self, v: NodeId) -> &Posterior {
        &self.gen[v]
    }

    pub fn cont(&self, v: NodeId) -> &Posterior {
        &self.cont[v]
    }

    pub fn as_child(&self, v: NodeId) -> &Posterior {
        &self.as_child[v]
    }

    /// Chooses the node under which the next node is generated. `depth_kappa` > 0 scales
    /// the GEN draw at depth d by ω = (1 + c)^(−κ), c = nodes already at depth d + 1.
    pub fn select_parent<R: Rng + ?Sized>(
        &self,
        tree: &Tree,
        depth_kappa: f64,
        rng: &mut R,
    ) -> NodeId {
        let depth_counts = tree.depth_counts();
        let mut v = Tree::ROOT;
        loop {
            let node = tree.node(v);
            if node.children.is_empty() {
                return v;
            }
            let next_depth_count = depth_counts.get(node.depth + 1).copied().unwrap_or(0);
            let g = self.gen[v].sample(rng) * depth_weight(next_depth_count, depth_kappa);
            let c = self.cont[v].sample(rng);
            if g >= c {
                return v;
            }
            v = best_child(&node.children, |u| self.as_child[u].sample(rng));
        }
    }

    /// Records node `u` (just added to `tree`, written by `agent`) with observed reward
    /// `reward`: the agent's history, the parent's GEN and child arm, then CONT and the
    /// child arm of every ancestor step up to the root. `None` (the grader could not run)
    /// observes nothing.
    pub fn back_up(&mut self, tree: &Tree, u: NodeId, agent: usize, reward: Option<f64>) {
        while self.gen.len() < tree.nodes.len() {
            self.gen.push(Posterior::prior(self.kind));
            self.cont.push(Posterior::prior(self.kind));
            self.as_child.push(Posterior::prior(self.kind));
        }
        let Some(s) = reward else { return };
        if let Some(history) = self.agent_rewards.get_mut(agent) {
            history.push(s);
        }
        let Some(p) = tree.node(u).parent else { return };
        self.as_child[u].observe(s);
        self.gen[p].observe(s);
        let mut cur = p;
        while let Some(q) = tree.node(cur).parent {
            self.as_child[cur].observe(s);
            self.cont[q].observe(s);
            cur = q;
        }
    }
}

/// ω(d, c_d) = (1 + c_d)^(−κ).
pub fn depth_weight(nodes_at_next_depth: usize, kappa: f64) -> f64 {
    if kappa == 0.0 {
        1.0
    } else {
        (1.0 + nodes_at_next_depth as f64).powf(-kappa)
    }
}

/// The child with the largest draw (the first one on ties).
fn best_child(children: &[NodeId], mut draw: impl FnMut(NodeId) -> f64) -> NodeId {
    let mut best = children[0];
    let mut best_value = f64::NEG_INFINITY;
    for &u in children {
        let x = draw(u);
        if x > best_value {
            best = u;
            best_value = x;
        }
    }
    best
}

/// The agents of `team` allowed to write a child of a node at `parent_depth`.
pub fn eligible_agents(team: &[AgentSpec], parent_depth: usize) -> Vec<usize> {
    team.iter()
        .enumerate()
        .filter(|(_, a)| a.role.may_write_under(parent_depth))
        .map(|(i, _)| i)
        .collect()
}

/// Picks the agent that writes the next node among `eligible`, from each agent's rewards in
/// this tree.
pub fn pick_agent<R: Rng + ?Sized>(
    choice: AgentChoice,
    kind: PosteriorKind,
    eligible: &[usize],
    agent_rewards: &[Vec<f64>],
    parent_depth: usize,
    rng: &mut R,
) -> Result<usize> {
    match eligible {
        [] => return Err(SearchError::NoEligibleAgent(parent_depth)),
        [only] => return Ok(*only),
        _ => {}
    }
    let history = |a: usize| agent_rewards.get(a).map(Vec::as_slice).unwrap_or(&[]);
    let mut best = eligible[0];
    let mut best_value = f64::NEG_INFINITY;
    match choice {
        AgentChoice::Thompson => {
            for &a in eligible {
                let x = Posterior::from_rewards(kind, history(a)).sample(rng);
                if x > best_value {
                    best = a;
                    best_value = x;
                }
            }
        }
        AgentChoice::Ucb1 => {
            let total: usize = eligible.iter().map(|&a| history(a).len()).sum();
            for &a in eligible {
                let x = ucb1(history(a), total);
                if x > best_value {
                    best = a;
                    best_value = x;
                }
            }
        }
        AgentChoice::Stack => {
            // Fewest nodes first; ties go to the earlier agent in the team.
            best = *eligible
                .iter()
                .min_by_key(|&&a| history(a).len())
                .unwrap_or(&eligible[0]);
        }
    }
    Ok(best)
}

/// mean(R) + sqrt(2 ln N / |R|), +∞ for an agent without nodes.
pub fn ucb1(rewards: &[f64], total: usize) -> f64 {
    if rewards.is_empty() {
        return f64::INFINITY;
    }
    let n = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / n;
    mean + (2.0 * (total.max(1) as f64).ln() / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn beta(alpha: f64, beta: f64) -> Posterior {
        Posterior::Beta { alpha, beta }
    }

    /// root ─ 1 (agent 0, r=0) ─ 3 (agent 1, r=1)
    ///      └ 2 (agent 1, r=1)
    fn small_tree() -> (Tree, SearchState) {
        let mut tree = Tree::new();
        let mut state = SearchState::new(PosteriorKind::Beta, 2);
        for (parent, agent, r) in [(0, 0, 0.0), (0, 1, 1.0), (1, 1, 1.0)] {
            let u = tree.add_child(parent, Tree::blank_node(agent));
            state.back_up(&tree, u, agent, Some(r));
        }
        (tree, state)
    }

    #[test]
    fn back_up_updates_the_arms_on_the_path() {
        let (_, s) = small_tree();
        // Root: GEN saw the two fresh children (0, 1); CONT saw node 3's reward via node 1.
        assert_eq!(s.gen(0), &beta(1.5, 1.5));
        assert_eq!(s.cont(0), &beta(1.5, 0.5));
        // Node 1: GEN saw its child (1); its arm at the root saw itself (0) and node 3 (1).
        assert_eq!(s.gen(1), &beta(1.5, 0.5));
        assert_eq!(s.cont(1), &beta(0.5, 0.5));
        assert_eq!(s.as_child(1), &beta(1.5, 1.5));
        assert_eq!(s.as_child(2), &beta(1.5, 0.5));
        assert_eq!(s.as_child(3), &beta(1.5, 0.5));
        assert_eq!(s.agent_rewards, vec![vec![0.0], vec![1.0, 1.0]]);
    }

    #[test]
    fn sandbox_failures_observe_nothing() {
        let mut tree = Tree::new();
        let mut s = SearchState::new(PosteriorKind::Beta, 1);
        let u = tree.add_child(0, Tree::blank_node(0));
        s.back_up(&tree, u, 0, None);
        assert_eq!(s.gen(0), &beta(0.5, 0.5));
        assert!(s.agent_rewards[0].is_empty());
    }

    #[test]
    fn an_empty_root_always_generates() {
        let tree = Tree::new();
        let s = SearchState::new(PosteriorKind::Beta, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(s.select_parent(&tree, 0.0, &mut rng), 0);
    }

    #[test]
    fn failing_fresh_children_and_a_passing_branch_pull_the_search_deeper() {
        // Many failing fresh children, one child whose refinements pass: CONT at the root
        // dominates GEN, and the walk goes into the passing branch.
        let mut tree = Tree::new();
        let mut s = SearchState::new(PosteriorKind::Beta, 1);
        let good = tree.add_child(0, Tree::blank_node(0));
        s.back_up(&tree, good, 0, Some(0.0));
        for _ in 0..6 {
            let u = tree.add_child(0, Tree::blank_node(0));
            s.back_up(&tree, u, 0, Some(0.0));
        }
        for _ in 0..6 {
            let u = tree.add_child(good, Tree::blank_node(0));
            s.back_up(&tree, u, 0, Some(1.0));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let picks: Vec<NodeId> = (0..200)
            .map(|_| s.select_parent(&tree, 0.0, &mut rng))
            .collect();
        let at_good_or_below = picks
            .iter()
            .filter(|&&p| p == good || tree.node(p).parent == Some(good))
            .count();
        assert!(at_good_or_below > 120, "{at_good_or_below} of 200");
    }

    #[test]
    fn depth_weight_is_one_without_kappa_and_shrinks_with_width() {
        assert_eq!(depth_weight(10, 0.0), 1.0);
        assert!((depth_weight(3, 0.5) - 0.5).abs() < 1e-12);
        assert!((depth_weight(0, 2.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn depth_guidance_moves_generation_below_a_wide_root() {
        // Eight fresh children, all rewarded 0.5: without κ, GEN at the root is as likely as
        // going down; with κ = 3 the root's GEN draw is scaled by 9^-3 and the walk descends.
        let mut tree = Tree::new();
        let mut s = SearchState::new(PosteriorKind::Beta, 1);
        for _ in 0..8 {
            let u = tree.add_child(0, Tree::blank_node(0));
            s.back_up(&tree, u, 0, Some(0.5));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let root_share = |kappa: f64, rng: &mut ChaCha8Rng| {
            (0..400)
                .filter(|_| s.select_parent(&tree, kappa, rng) == 0)
                .count()
        };
        let plain = root_share(0.0, &mut rng);
        let guided = root_share(3.0, &mut rng);
        assert!(plain > 100, "{plain}");
        assert!(guided < 20, "{guided}");
    }

    #[test]
    fn ucb1_matches_hand_values() {
        assert_eq!(ucb1(&[], 3), f64::INFINITY);
        let x = ucb1(&[1.0, 0.0], 4);
        assert!((x - (0.5 + (2.0 * 4f64.ln() / 2.0).sqrt())).abs() < 1e-12);
    }

    #[test]
    fn agent_choices() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let rewards = vec![vec![0.0; 20], vec![1.0; 20], vec![]];
        let pick = |c, rng: &mut ChaCha8Rng| {
            pick_agent(c, PosteriorKind::Beta, &[0, 1, 2], &rewards, 1, rng).unwrap()
        };
        assert_eq!(pick(AgentChoice::Ucb1, &mut rng), 2);
        assert_eq!(pick(AgentChoice::Stack, &mut rng), 2);
        let wins = (0..200)
            .filter(|_| pick(AgentChoice::Thompson, &mut rng) == 1)
            .count();
        assert!(wins > 100, "{wins}");
        assert!(pick_agent(
            AgentChoice::Thompson,
            PosteriorKind::Beta,
            &[],
            &rewards,
            0,
            &mut rng
        )
        .is_err());
    }

    #[test]
    fn roles_restrict_who_writes_where() {
        let team = AgentSpec::multi_role("m", 0);
        assert_eq!(eligible_agents(&team, 0), vec![0]);
        assert_eq!(eligible_agents(&team, 2), vec![1]);
    }
}
