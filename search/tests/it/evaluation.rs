//! The evaluation loop itself ([`mars2_search::evaluation::evaluate`]) on a tiny model whose
//! tokens are whole programs: every problem gets a tree judged in the real sandbox, the run
//! directory gets its files, a second run in the same directory resumes without redoing a
//! problem, and other settings or a zero budget are refused.

use std::sync::Mutex;

use burn::backend::NdArray;
use mars2_models::save_word_level_model;
use mars2_sandbox::{Dataset, Problem, Sandbox, Split, TestCase};
use mars2_search::config::Method;
use mars2_search::evaluation::{evaluate, EvalConfig, EvalEvent, EvalJob};
use mars2_search::records::read_records;
use mars2_search::AgentModel;

type Cpu = NdArray<f32>;

fn programs() -> Vec<String> {
    ["a + b", "a - b", "a * b", "b"]
        .iter()
        .map(|body| format!("```python\ndef add(a, b):\n    return {body}\n```"))
        .collect()
}

fn problem(n: usize) -> Problem {
    let t = |a: String| TestCase::Assert {
        setup: String::new(),
        assertion: a,
    };
    Problem {
        id: format!("toy/add-{n}"),
        dataset: Dataset::Mbpp,
        title: None,
        statement: format!("Write add(a, b) (variant {n})."),
        starter_code: String::new(),
        entry_point: Some("add".into()),
        public_tests: vec![t(format!("assert add({n}, 2) == {}", n + 2))],
        hidden_tests: vec![t(format!("assert add({n}, 2) == {}", n + 2))],
        reference_solution: None,
        platform: None,
        difficulty: None,
        split: Some(Split::Test),
    }
}

fn job(dir: &std::path::Path, model: &std::path::Path, config: EvalConfig) -> EvalJob {
    EvalJob {
        config,
        benchmark: "toy".into(),
        split: Split::Test,
        agents: vec![AgentModel {
            name: "tiny".into(),
            path: model.to_path_buf(),
        }],
        problems: (1..=3).map(problem).collect(),
        sandbox: Sandbox::with_defaults().expect("sandbox"),
        out: dir.join("run"),
        reward_model: None,
    }
}

fn config() -> EvalConfig {
    EvalConfig {
        method: Method::Abmcts,
        budget: 3,
        samples: 1,
        temperature: 1.0,
        max_new_tokens: 1,
        concurrency: 2,
        kv_cache_mb: 16,
        ..EvalConfig::default()
    }
}

#[test]
fn evaluation_writes_its_run_and_resumes_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = dir.path().join("tiny");
    save_word_level_model::<Cpu>(&model, &programs(), 16, &Default::default()).expect("model");
    let device = Default::default();

    let events = Mutex::new(Vec::new());
    let observer = |event: EvalEvent<'_>| {
        let name = match event {
            EvalEvent::Resuming { done, todo } => format!("resuming {done}/{todo}"),
            EvalEvent::Started { problems } => format!("started {problems}"),
            EvalEvent::ProblemFinished { .. } => "finished".into(),
            EvalEvent::ProblemFailed { problem_id, error } => format!("{problem_id}: {error}"),
            EvalEvent::Finished { .. } => "done".into(),
            _ => return,
        };
        events.lock().unwrap().push(name);
    };
    let outcome = evaluate::<Cpu>(job(dir.path(), &model, config()), &device, None, &observer)
        .expect("the evaluation runs");
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.summary.problems, 3);
    assert_eq!(outcome.records.len(), 3);
    let ids: Vec<&str> = outcome
        .records
        .iter()
        .map(|r| r.problem_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["toy/add-1", "toy/add-2", "toy/add-3"],
        "benchmark order"
    );
    for record in &outcome.records {
        let nodes = record.tree.generated().count();
        assert!((1..=3).contains(&nodes), "{nodes} nodes");
        // Every node was judged by the sandbox on the hidden tests.
        assert!(record.tree.generated().all(|n| n.hidden.is_some()));
    }
    let run = dir.path().join("run");
    for file in ["run.json", "trees.jsonl", "summary.json", "report.html"] {
        assert!(run.join(file).is_file(), "{file} written");
    }
    assert_eq!(
        read_records(&run.join("trees.jsonl"))
            .expect("records")
            .len(),
        3
    );
    assert_eq!(outcome.summary_json["settings"]["benchmark"], "toy");
    assert_eq!(
        events.lock().unwrap().clone(),
        ["started 3", "finished", "finished", "finished", "done"]
    );

    // The same settings resume: nothing is redone, the summary covers all three problems.
    events.lock().unwrap().clear();
    let again = evaluate::<Cpu>(job(dir.path(), &model, config()), &device, None, &observer)
        .expect("the resumed evaluation runs");
    assert_eq!(again.summary.problems, 3);
    // (Records on disk keep no token ids, so compare what they decide.)
    let decided = |records: &[mars2_search::ProblemRecord]| {
        records
            .iter()
            .map(|r| (r.problem_id.clone(), r.metrics.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(decided(&again.records), decided(&outcome.records));
    assert_eq!(
        events.lock().unwrap().clone(),
        ["resuming 3/0", "started 0", "done"]
    );

    // Other settings in the same directory are refused, naming its settings file.
    let other = EvalConfig {
        budget: 2,
        ..config()
    };
    let err = evaluate::<Cpu>(job(dir.path(), &model, other), &device, None, &())
        .expect_err("another run's directory");
    assert!(err.to_string().contains("run.json"), "{err}");

    let zero = EvalConfig {
        budget: 0,
        ..config()
    };
    let err =
        evaluate::<Cpu>(job(dir.path(), &model, zero), &device, None, &()).expect_err("no nodes");
    assert!(err.to_string().contains("budget"), "{err}");
}

/// Two models with different chat templates in one tree: every prompt, fresh or a refinement
/// of the other model's program, is rendered in the template of the model that answers it.
#[test]
fn each_agent_reads_its_prompts_in_its_own_chat_template() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let device = Default::default();
    let chatml = dir.path().join("chatml");
    let plain = dir.path().join("plain");
    for path in [&chatml, &plain] {
        save_word_level_model::<Cpu>(path, &programs(), 16, &device).expect("model");
    }
    // No turn markers at all: the second model's prompts never hold <|im_start|> (id 1).
    std::fs::write(
        plain.join("chat_template.jinja"),
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}\
         {% if add_generation_prompt %}assistant: {% endif %}",
    )
    .expect("template written");
    let mut job = job(
        dir.path(),
        &chatml,
        EvalConfig {
            budget: 6,
            samples: 0,
            ..config()
        },
    );
    job.agents.push(AgentModel {
        name: "plain".into(),
        path: plain,
    });
    let outcome = evaluate::<Cpu>(job, &device, None, &()).expect("the evaluation runs");
    let mut seen = [0usize; 2];
    let mut refinements = 0;
    let mut cross = 0;
    for record in &outcome.records {
        let author = |id: Option<usize>| {
            id.and_then(|id| record.tree.generated().find(|n| n.id == id))
                .and_then(|n| n.agent)
        };
        for node in record.tree.generated() {
            if let (Some(a), Some(b)) = (node.agent, author(node.parent)) {
                cross += (a != b) as usize;
            }
            let agent = node.agent.expect("a generated node has an agent");
            let prompt = &node
                .generation
                .as_ref()
                .expect("a generation")
                .prompt_tokens;
            assert!(!prompt.is_empty());
            assert_eq!(
                prompt.contains(&1),
                agent == 0,
                "agent {agent}'s prompt: {prompt:?}"
            );
            seen[agent] += 1;
            refinements += (node.depth > 1) as usize;
        }
    }
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "both agents wrote nodes: {seen:?}"
    );
    assert!(refinements > 0, "some nodes refine another");
    assert!(cross > 0, "some node refines the other model's program");
}
