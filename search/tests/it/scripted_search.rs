//! The search driven by scripted agents whose answers are known, judged by the real sandbox:
//! node counts, depths, who writes what, early stopping, path prompts and seeded
//! reproducibility.

use std::sync::Mutex;

use mars2_models::ChatMessage;
use mars2_sandbox::{Dataset, Problem, Sandbox, TestCase};
use mars2_search::config::{
    AgentChoice, AgentSpec, ContextMode, Method, PromptStyle, Role, SearchConfig,
};
use mars2_search::prompts;
use mars2_search::runner::{fresh_samples, grow_tree, run_problems};
use mars2_search::{problem_metrics, Generation, Policy, PolicyRequest, Result, SearchContext};

const RIGHT: &str = "def add(a, b):\n    return a + b\n";
const WRONG: &str = "def add(a, b):\n    return a - b\n";
/// Passes the public test only.
const OVERFIT: &str = "def add(a, b):\n    return 3 if a == 1 else 5\n";

fn answer(code: &str) -> String {
    format!("Here is my solution:\n```python\n{code}```\n")
}

fn problem() -> Problem {
    let t = |a: &str| TestCase::Assert {
        setup: String::new(),
        assertion: a.into(),
    };
    Problem {
        id: "toy/add".into(),
        dataset: Dataset::Mbpp,
        title: None,
        statement: "Write a function add(a, b) returning the sum of a and b.".into(),
        starter_code: String::new(),
        entry_point: Some("add".into()),
        public_tests: vec![t("assert add(1, 2) == 3")],
        hidden_tests: vec![t("assert add(1, 2) == 3"), t("assert add(-1, 1) == 0")],
        reference_solution: Some(RIGHT.into()),
        platform: None,
        difficulty: None,
        split: None,
    }
}

/// A policy whose model `m` answers with `script(m, messages, seed)`; it records every call.
struct Scripted<F> {
    models: usize,
    script: F,
    calls: Mutex<Vec<(usize, Vec<ChatMessage>, u64)>>,
    /// The response prefix of every call, in order.
    prefixes: Mutex<Vec<String>>,
}

impl<F: Fn(usize, &[ChatMessage], u64) -> String + Sync> Scripted<F> {
    fn new(models: usize, script: F) -> Self {
        Scripted {
            models,
            script,
            calls: Mutex::new(Vec::new()),
            prefixes: Mutex::new(Vec::new()),
        }
    }
}

impl<F: Fn(usize, &[ChatMessage], u64) -> String + Sync> Policy for Scripted<F> {
    fn models(&self) -> usize {
        self.models
    }
    fn model_name(&self, model: usize) -> String {
        format!("scripted-{model}")
    }
    fn generate(&self, r: PolicyRequest<'_>) -> Result<Generation> {
        self.calls
            .lock()
            .unwrap()
            .push((r.model, r.messages.to_vec(), r.seed));
        self.prefixes
            .lock()
            .unwrap()
            .push(r.response_prefix.to_string());
        let text = format!(
            "{}{}",
            r.response_prefix,
            (self.script)(r.model, r.messages, r.seed)
        );
        Ok(Generation {
            response_len: text.len() / 4,
            text,
            finish_reason: "stop".into(),
            ..Generation::default()
        })
    }
}

fn is_refinement(messages: &[ChatMessage]) -> bool {
    messages.len() > 2 || messages[1].content.contains("previous attempt")
}

fn sandbox() -> Sandbox {
    Sandbox::with_defaults().expect("a sandbox")
}

fn context<'a>(
    config: &'a SearchConfig,
    team: &'a [AgentSpec],
    policy: &'a dyn Policy,
    sandbox: &'a Sandbox,
) -> SearchContext<'a> {
    SearchContext {
        config,
        team,
        policy,
        sandbox,
        scorer: None,
    }
}

fn config(method: Method, budget: usize) -> SearchConfig {
    SearchConfig {
        stop_on_pass: false,
        ..SearchConfig::for_eval(method, budget)
    }
}

#[test]
fn sample_grows_independent_children_and_chain_one_path() {
    let sb = sandbox();
    let policy = Scripted::new(1, |_, _, _| answer(WRONG));
    let team = [AgentSpec::new("a", 0)];
    for (method, depth, children) in [(Method::Sample, 1, 5), (Method::Chain, 5, 1)] {
        let cfg = config(method, 5);
        let ctx = context(&cfg, &team, &policy, &sb);
        let tree = grow_tree(&ctx, &problem(), 1, &|_| {}).unwrap();
        assert_eq!(tree.size(), 5, "{method:?}");
        assert_eq!(tree.max_depth(), depth, "{method:?}");
        assert_eq!(tree.root().children.len(), children, "{method:?}");
        assert!(tree.generated().all(|n| !n.passes_guide()));
        assert_eq!(tree.node(1).code.as_deref(), Some(WRONG));
    }
}

#[test]
fn tree_search_stops_at_the_first_pass_and_scores_hidden_tests() {
    let sb = sandbox();
    // Fresh answers fail; refinements pass the public test but not the hidden ones.
    let policy = Scripted::new(1, |_, m, _| {
        answer(if is_refinement(m) { OVERFIT } else { WRONG })
    });
    let team = [AgentSpec::new("a", 0)];
    let cfg = SearchConfig::for_eval(Method::Abmcts, 16);
    let ctx = context(&cfg, &team, &policy, &sb);
    let tree = grow_tree(&ctx, &problem(), 1, &|_| {}).unwrap();
    let last = tree.nodes.last().unwrap();
    assert!(last.passes_guide() && !last.passes_hidden());
    assert!(last.depth >= 2);
    assert!(tree.generated().filter(|n| n.passes_guide()).count() == 1);
    let run = mars2_search::ProblemRun {
        problem_id: "toy/add".into(),
        tree,
        samples: vec![],
        wall_seconds: 0.0,
    };
    let m = problem_metrics(&run, 1, None);
    assert_eq!(m.picked, Some(run.tree.size()));
    assert!(!m.pass1_mcts && !m.pass_n);
}

#[test]
fn thompson_sampling_favours_the_agent_that_solves() {
    let sb = sandbox();
    let policy = Scripted::new(2, |model, _, _| {
        answer(if model == 1 { RIGHT } else { WRONG })
    });
    let team = [AgentSpec::new("weak", 0), AgentSpec::new("strong", 1)];
    let cfg = SearchConfig {
        agent_choice: AgentChoice::Thompson,
        ..config(Method::Abmcts, 12)
    };
    let ctx = context(&cfg, &team, &policy, &sb);
    let tree = grow_tree(&ctx, &problem(), 1, &|_| {}).unwrap();
    let strong = tree.generated().filter(|n| n.agent == Some(1)).count();
    assert!(strong >= 8, "strong agent wrote {strong} of 12");
    assert!(tree
        .generated()
        .all(|n| n.passes_hidden() == (n.agent == Some(1))));
}

#[test]
fn roles_split_fresh_solutions_and_refinements() {
    let sb = sandbox();
    let policy = Scripted::new(1, |_, _, _| answer(WRONG));
    let team = AgentSpec::multi_role("m", 0);
    let cfg = config(Method::Chain, 4);
    let ctx = context(&cfg, &team, &policy, &sb);
    let tree = grow_tree(&ctx, &problem(), 1, &|_| {}).unwrap();
    for node in tree.generated() {
        let role = team[node.agent.unwrap()].role;
        assert_eq!(role == Role::Generator, node.depth == 1);
    }
    let calls = policy.calls.lock().unwrap();
    assert_eq!(calls[0].1[0].content, prompts::SYSTEM_GENERATOR);
    assert_eq!(calls[1].1[0].content, prompts::SYSTEM_REFINER);
}

#[test]
fn path_context_prompts_extend_the_parents_conversation() {
    let sb = sandbox();
    let policy = Scripted::new(1, |_, _, seed| answer(&format!("{WRONG}# {seed}\n")));
    let team = [AgentSpec::new("a", 0)];
    let cfg = SearchConfig {
        context: ContextMode::Path,
        ..config(Method::Chain, 3)
    };
    let ctx = context(&cfg, &team, &policy, &sb);
    let tree = grow_tree(&ctx, &problem(), 1, &|_| {}).unwrap();
    let calls = policy.calls.lock().unwrap();
    for pair in calls.windows(2) {
        let (shorter, longer) = (&pair[0].1, &pair[1].1);
        assert_eq!(&longer[..shorter.len()], &shorter[..]);
        assert_eq!(longer.len(), shorter.len() + 2);
    }
    // The third prompt holds the first two answers verbatim.
    assert_eq!(
        calls[2].1[2].content,
        tree.node(1).generation.as_ref().unwrap().text
    );
}

#[test]
fn seeded_runs_are_identical_and_other_seeds_differ() {
    let sb = sandbox();
    // The answer depends on the sampling seed, as with a real sampler.
    let script = |_: usize, _: &[ChatMessage], seed: u64| {
        answer(match seed % 3 {
            0 => RIGHT,
            1 => WRONG,
            _ => OVERFIT,
        })
    };
    let team = [AgentSpec::new("a", 0), AgentSpec::new("b", 0)];
    let run = |seed: u64| {
        let policy = Scripted::new(1, script);
        let cfg = SearchConfig {
            seed,
            ..config(Method::Tplus, 8)
        };
        let ctx = context(&cfg, &team, &policy, &sb);
        let tree = grow_tree(&ctx, &problem(), 1, &|_| {}).unwrap();
        let seeds: Vec<u64> = policy.calls.lock().unwrap().iter().map(|c| c.2).collect();
        (serde_json::to_string(&tree).unwrap(), seeds)
    };
    let (a, seeds_a) = run(11);
    let (b, seeds_b) = run(11);
    let (_, seeds_c) = run(12);
    assert_eq!(a, b);
    assert_eq!(seeds_a, seeds_b);
    assert_ne!(seeds_a, seeds_c);
}

#[test]
fn many_problems_run_concurrently_with_pass1_samples() {
    let sb = sandbox();
    let policy = Scripted::new(1, |_, _, seed| {
        answer(if seed % 2 == 0 { RIGHT } else { WRONG })
    });
    let team = [AgentSpec::new("a", 0)];
    let cfg = config(Method::Sample, 2);
    let ctx = context(&cfg, &team, &policy, &sb);
    let problems: Vec<Problem> = (0..4)
        .map(|i| Problem {
            id: format!("toy/{i}"),
            ..problem()
        })
        .collect();
    let refs: Vec<&Problem> = problems.iter().collect();
    let done = Mutex::new(Vec::new());
    run_problems(&ctx, &refs, 4, 3, &|_| {}, &|i, r| {
        done.lock().unwrap().push((i, r.unwrap()))
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, _)| *i);
    assert_eq!(done.len(), 4);
    for (i, run) in &done {
        assert_eq!(run.problem_id, format!("toy/{i}"));
        assert_eq!(run.tree.size(), 2);
        assert_eq!(run.samples.len(), 4);
    }
    // Fresh samples are the same whatever else ran.
    let again = fresh_samples(&ctx, &problems[0], 4, 7).unwrap();
    assert_eq!(again, done[0].1.samples);
}

/// A reward model double: trusts programs that add.
struct AddsScorer;

impl mars2_search::Scorer for AddsScorer {
    fn score(&self, _: &Problem, code: &str) -> f64 {
        if code.contains("a + b") {
            0.9
        } else {
            0.2
        }
    }
}

#[test]
fn the_reward_model_scores_nodes_blends_rewards_and_breaks_ties() {
    let sb = sandbox();
    // Alternate a program that passes only the public test and the right one; both pass the
    // public test, so only the scorer tells them apart.
    let policy = Scripted::new(1, |_, _, seed| {
        answer(if seed % 2 == 0 { OVERFIT } else { RIGHT })
    });
    let team = [AgentSpec::new("a", 0)];
    let cfg = SearchConfig {
        blend_alpha: Some(0.5),
        ..config(Method::Tplus, 6)
    };
    let ctx = SearchContext {
        scorer: Some(&AddsScorer),
        ..context(&cfg, &team, &policy, &sb)
    };
    let tree = grow_tree(&ctx, &problem(), 1, &|_| {}).unwrap();
    assert!(tree.generated().all(|n| n.score.is_some()));
    let picked = mars2_search::metrics::pick_answer(&tree).unwrap();
    let kinds = |code: &str| {
        tree.generated()
            .filter(|n| n.code.as_deref() == Some(code))
            .count()
    };
    assert!(
        kinds(RIGHT) > 0 && kinds(OVERFIT) > 0,
        "this seed draws both programs"
    );
    assert_eq!(tree.node(picked).code.as_deref(), Some(RIGHT));
    assert!(tree.node(picked).passes_hidden());
}

#[test]
fn evalplus_style_starts_fresh_answers_and_judges_definitions_only() {
    // The model continues EvalPlus's open fence with a right function and a wrong
    // self-made assert; refinements keep the project's prompts.
    let continuation = format!("{RIGHT}\nassert add(2, 2) == 5\n```\n");
    let policy = Scripted::new(1, |_, _, _| continuation.clone());
    let team = vec![AgentSpec::new("a", 0)];
    let sandbox = sandbox();
    let mut cfg = SearchConfig {
        prompt_style: PromptStyle::EvalPlus,
        ..config(Method::Chain, 2)
    };
    let grow = |cfg: &SearchConfig| {
        grow_tree(
            &context(cfg, &team, &policy, &sandbox),
            &problem(),
            0,
            &|_| {},
        )
        .unwrap()
    };
    let tree = grow(&cfg);
    let fresh = tree.node(1);
    assert!(fresh
        .generation
        .as_ref()
        .unwrap()
        .text
        .starts_with(prompts::EVALPLUS_RESPONSE_PREFIX));
    assert!(fresh
        .code
        .as_deref()
        .unwrap()
        .contains("assert add(2, 2) == 5"));
    assert!(
        !fresh.hidden.as_ref().unwrap().accepted(),
        "the program's own assert fails"
    );
    let calls = policy.calls.lock().unwrap().clone();
    assert_eq!(calls[0].1.len(), 1, "no system message: {:?}", calls[0].1);
    assert!(calls[0].1[0]
        .content
        .starts_with(prompts::EVALPLUS_INSTRUCTION));
    assert!(calls[0].1[0]
        .content
        .contains("\"\"\"\nWrite a function add(a, b) returning the sum of a and b.\nassert add(1, 2) == 3\n\"\"\""));
    assert!(
        is_refinement(&calls[1].1),
        "refinements use the project's prompts"
    );
    assert_eq!(
        *policy.prefixes.lock().unwrap(),
        vec![prompts::EVALPLUS_RESPONSE_PREFIX.to_string(), String::new()]
    );

    cfg.definitions_only = true;
    let tree = grow(&cfg);
    let fresh = tree.node(1);
    assert_eq!(fresh.code.as_deref(), Some(RIGHT));
    assert!(
        fresh.hidden.as_ref().unwrap().accepted(),
        "{:?}",
        fresh.hidden
    );
}
