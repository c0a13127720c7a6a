//! Growing trees: one tree per problem node by node ([`grow_tree`]), independent fresh
//! samples for Pass@1 ([`fresh_samples`]), and many problems at once ([`run_problems`]):
//! each worker thread grows one tree at a time, so a tree never waits on another, and the
//! requests of all trees in flight reach the engine together.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mars2_sandbox::{Problem, Sandbox, TestSet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{AgentSpec, Method, PromptStyle, SearchConfig};
use crate::error::{Result, SearchError};
use crate::judging::judge_answer;
use crate::policy::{Policy, PolicyRequest};
use crate::prompts::{build_messages, evalplus_request, qwen_coder_request};
use crate::scorer::Scorer;
use crate::select::{eligible_agents, pick_agent, SearchState};
use crate::tree::{Generation, Judgement, Node, NodeId, Tree};

/// What a search needs besides the problem.
#[derive(Clone, Copy)]
pub struct SearchContext<'a> {
    pub config: &'a SearchConfig,
    pub team: &'a [AgentSpec],
    pub policy: &'a dyn Policy,
    pub sandbox: &'a Sandbox,
    pub scorer: Option<&'a dyn Scorer>,
}

impl SearchContext<'_> {
    /// Checks that every agent names a model of the policy.
    pub fn validate(&self) -> Result<()> {
        if self.team.is_empty() {
            return Err(SearchError::NoEligibleAgent(0));
        }
        for agent in self.team {
            if agent.model >= self.policy.models() {
                return Err(SearchError::UnknownModel {
                    agent: agent.name.clone(),
                    model: agent.model,
                    models: self.policy.models(),
                });
            }
        }
        Ok(())
    }
}

/// A stable 64-bit hash of a string (FNV-1a), so seeds do not depend on the platform.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The random stream of one purpose within one problem of a seeded run.
pub fn problem_rng(seed: u64, problem_id: &str, purpose: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stable_hash(problem_id));
    rng.set_stream(stable_hash(purpose));
    rng
}

/// Grows the tree of `problem` to the configured budget. `on_node` sees each node as it is
/// created. `group` ties this tree's generations together in the engine.
pub fn grow_tree(
    ctx: &SearchContext<'_>,
    problem: &Problem,
    group: u64,
    on_node: &(dyn Fn(&Node) + Sync),
) -> Result<Tree> {
    let config = ctx.config;
    let mut rng = problem_rng(config.seed, &problem.id, "tree");
    let mut tree = Tree::new();
    let mut state = SearchState::new(config.posterior, ctx.team.len());
    for _ in 0..config.budget {
        let parent = choose_parent(config, &tree, &state, &mut rng);
        let parent_depth = tree.node(parent).depth;
        let agent = pick_agent(
            config.agent_choice,
            config.posterior,
            &eligible_agents(ctx.team, parent_depth),
            &state.agent_rewards,
            parent_depth,
            &mut rng,
        )?;
        let seed = rng.random::<u64>();
        let node = make_node(ctx, problem, &tree, parent, agent, group, seed)?;
        let observed = observed_reward(config, &node);
        let passed = node.passes_guide();
        let id = tree.add_child(parent, node);
        state.back_up(&tree, id, agent, observed);
        on_node(tree.node(id));
        if passed && config.stop_on_pass {
            break;
        }
    }
    Ok(tree)
}

/// Where the next node goes under each method.
fn choose_parent(
    config: &SearchConfig,
    tree: &Tree,
    state: &SearchState,
    rng: &mut ChaCha8Rng,
) -> NodeId {
    match config.method {
        Method::Sample => Tree::ROOT,
        Method::Chain => tree.nodes.len() - 1,
        Method::Abmcts => state.select_parent(tree, 0.0, rng),
        Method::Tplus => state.select_parent(tree, config.depth_kappa, rng),
    }
}

/// Generates, extracts, judges and scores one child of `parent`.
fn make_node(
    ctx: &SearchContext<'_>,
    problem: &Problem,
    tree: &Tree,
    parent: NodeId,
    agent: usize,
    group: u64,
    seed: u64,
) -> Result<Node> {
    let config = ctx.config;
    let generation = ask(ctx, problem, tree, parent, agent, group, seed)?;
    let judged = judge_answer(
        ctx.sandbox,
        problem,
        &generation.text,
        config.guide_tests,
        config.score_hidden,
        config.definitions_only,
    );
    let base = guide_reward(config, &judged.guide);
    let score = match (ctx.scorer, &judged.code) {
        (Some(scorer), Some(code)) => Some(scorer.score(problem, code).clamp(0.0, 1.0)),
        (Some(_), None) => Some(0.0),
        (None, _) => None,
    };
    let mut node = Tree::blank_node(agent);
    node.generation = Some(generation);
    node.code = judged.code;
    node.guide = Some(judged.guide);
    node.hidden = judged.hidden;
    node.reward = base.unwrap_or(0.0);
    node.score = score;
    Ok(node)
}

/// Asks `agent` for a child of `parent`.
fn ask(
    ctx: &SearchContext<'_>,
    problem: &Problem,
    tree: &Tree,
    parent: NodeId,
    agent: usize,
    group: u64,
    seed: u64,
) -> Result<Generation> {
    let spec = &ctx.team[agent];
    let (messages, response_prefix) = match ctx.config.prompt_style {
        PromptStyle::EvalPlus if parent == Tree::ROOT => evalplus_request(problem),
        PromptStyle::QwenCoder if parent == Tree::ROOT => qwen_coder_request(problem),
        _ => {
            let messages = build_messages(
                problem,
                tree,
                parent,
                spec,
                ctx.config.context,
                ctx.config.feedback,
            );
            (messages, "")
        }
    };
    ctx.policy.generate(PolicyRequest {
        model: spec.model,
        group,
        messages: &messages,
        response_prefix,
        seed,
    })
}

/// A node's reward on its guiding tests: all-or-nothing, or partial credit when configured;
/// `None` when the grader could not run.
fn guide_reward(config: &SearchConfig, guide: &Judgement) -> Option<f64> {
    if config.partial_credit {
        guide.partial_credit()
    } else {
        guide.reward()
    }
}

/// The reward the search observes for a node: its guide reward, blended with the scorer's
/// score when configured; `None` when the grader could not run.
fn observed_reward(config: &SearchConfig, node: &Node) -> Option<f64> {
    let base = guide_reward(config, node.guide.as_ref()?)?;
    Some(match (config.blend_alpha, node.score) {
        (Some(alpha), Some(score)) => alpha * base + (1.0 - alpha) * score,
        _ => base,
    })
}

/// One independent fresh solution, judged on the hidden tests (for Pass@1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreshSample {
    pub agent: usize,
    /// Passed every hidden test; `None` when the grader could not run.
    pub passed: Option<bool>,
    pub tokens: usize,
}

/// `k` fresh solutions per agent that may write children of the root, generated at once.
pub fn fresh_samples(
    ctx: &SearchContext<'_>,
    problem: &Problem,
    k: usize,
    group: u64,
) -> Result<Vec<FreshSample>> {
    let mut jobs = Vec::new();
    for agent in eligible_agents(ctx.team, 0) {
        let mut rng = problem_rng(ctx.config.seed, &problem.id, &format!("pass1/{agent}"));
        for _ in 0..k {
            jobs.push((agent, rng.random::<u64>()));
        }
    }
    let tree = Tree::new();
    let results: Vec<Result<FreshSample>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|&(agent, seed)| {
                let tree = &tree;
                scope.spawn(move || -> Result<FreshSample> {
                    let generation = ask(ctx, problem, tree, Tree::ROOT, agent, group, seed)?;
                    let judged = judge_answer(
                        ctx.sandbox,
                        problem,
                        &generation.text,
                        TestSet::Hidden,
                        false,
                        ctx.config.definitions_only,
                    );
                    Ok(FreshSample {
                        agent,
                        passed: judged.guide.reward().map(|r| r >= 1.0),
                        tokens: generation.response_len,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(SearchError::Generation("a sampling thread panicked".into()))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Everything found for one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemRun {
    pub problem_id: String,
    pub tree: Tree,
    /// Fresh samples for Pass@1 (empty when not asked for).
    pub samples: Vec<FreshSample>,
    pub wall_seconds: f64,
}

/// Grows the tree of `problem` and draws `samples` fresh samples per generator agent.
pub fn run_problem(
    ctx: &SearchContext<'_>,
    problem: &Problem,
    samples: usize,
    group: u64,
    on_node: &(dyn Fn(&Node) + Sync),
) -> Result<ProblemRun> {
    let started = Instant::now();
    let tree = grow_tree(ctx, problem, group, on_node)?;
    let samples = if samples > 0 {
        fresh_samples(ctx, problem, samples, group)?
    } else {
        Vec::new()
    };
    Ok(ProblemRun {
        problem_id: problem.id.clone(),
        tree,
        samples,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs every problem on `concurrency` worker threads. `on_done(index, result)` is called
/// from the workers as each problem finishes; `on_node` as each node is created.
pub fn run_problems(
    ctx: &SearchContext<'_>,
    problems: &[&Problem],
    samples: usize,
    concurrency: usize,
    on_node: &(dyn Fn(&Node) + Sync),
    on_done: &(dyn Fn(usize, Result<ProblemRun>) + Sync),
) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1).min(problems.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(problem) = problems.get(index) else {
                    return;
                };
                let group = stable_hash(&problem.id);
                on_done(index, run_problem(ctx, problem, samples, group, on_node));
            });
        }
    });
}
