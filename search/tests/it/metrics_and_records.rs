//! Metrics on a hand-made tree against hand-computed values; DA@K clustering in the real
//! sandbox; run directories: resume, torn lines, corrupt lines, changed settings.

use std::io::Write;

use mars2_sandbox::{Sandbox, VerdictKind};
use mars2_search::diversity::distinct_algorithms;
use mars2_search::metrics::{pass_at_k, pick_answer, problem_metrics, summarize};
use mars2_search::records::{read_records, ProblemRecord, RunDir, TREES_FILE};
use mars2_search::runner::FreshSample;
use mars2_search::{Judgement, Node, ProblemRun, SearchError, Tree};

fn verdict(pass: bool) -> Option<Judgement> {
    Some(Judgement {
        kind: if pass {
            VerdictKind::Accepted
        } else {
            VerdictKind::WrongAnswer
        },
        passed: pass as usize,
        total: 1,
        failure: None,
        message: None,
    })
}

fn node(agent: usize, guide: bool, hidden: bool) -> Node {
    let mut n = Tree::blank_node(agent);
    n.guide = verdict(guide);
    n.hidden = verdict(hidden);
    n
}

/// root ─ 1 (a0 ✗/✗) ─ 3 (a1 ✓/✓)
///      │            └ 4 (a0 ✗/✗)
///      └ 2 (a1 ✓/✗) ─ 5 (a0 ✗/✗)
fn hand_tree() -> Tree {
    let mut t = Tree::new();
    t.add_child(0, node(0, false, false));
    t.add_child(0, node(1, true, false));
    t.add_child(1, node(1, true, true));
    t.add_child(1, node(0, false, false));
    t.add_child(2, node(0, false, false));
    t
}

fn run_of(tree: Tree, samples: Vec<FreshSample>) -> ProblemRun {
    ProblemRun {
        problem_id: "p".into(),
        tree,
        samples,
        wall_seconds: 2.0,
    }
}

#[test]
fn pass_at_k_matches_the_closed_form() {
    assert!((pass_at_k(5, 2, 1) - 0.4).abs() < 1e-12);
    // 1 − C(3,2)/C(5,2) = 1 − 3/10
    assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
    assert_eq!(pass_at_k(4, 0, 1), 0.0);
    assert_eq!(pass_at_k(4, 3, 2), 1.0);
}

#[test]
fn hand_tree_metrics() {
    let sample = |passed| FreshSample {
        agent: 0,
        passed,
        tokens: 10,
    };
    let samples = vec![
        sample(Some(true)),
        sample(Some(false)),
        sample(Some(false)),
        sample(None),
    ];
    let m = problem_metrics(&run_of(hand_tree(), samples), 2, Some(1));
    // Nodes 2 and 3 both pass the public test; the later one (3) is picked.
    assert_eq!(m.picked, Some(3));
    assert!(m.pass1_mcts && m.pass_n);
    assert!((m.pass1.unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!((m.nodes, m.max_depth), (5, 2));
    // Refinements of failing parents: 1→3 (a0→a1, fixed), 1→4 (a0→a0, not fixed);
    // 2→5 has a passing parent and does not count.
    let pairs: Vec<(usize, usize, usize, usize)> = m
        .corrections
        .iter()
        .map(|&(a, b, c)| (a, b, c.attempts, c.fixed))
        .collect();
    assert_eq!(pairs, vec![(0, 0, 1, 0), (0, 1, 1, 1)]);
    assert_eq!(m.per_agent[0].nodes, 3);
    assert_eq!(m.per_agent[1].guide_passed, 2);
    assert_eq!(m.per_agent[1].hidden_passed, 1);

    let other = problem_metrics(&run_of(Tree::new(), vec![]), 2, None);
    let s = summarize(&[m, other], &["a".into(), "b".into()], 9.0);
    assert_eq!(s.problems, 2);
    assert_eq!((s.pass1_mcts, s.pass_n), (0.5, 0.5));
    assert!((s.pass1.unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(s.aec, Some(0.5));
    assert_eq!(s.da_k, Some(1.0));
    assert_eq!(s.nodes, 5);
    assert_eq!(s.aec_pairs[1].parent_agent, "a");
    assert_eq!(s.aec_pairs[1].child_agent, "b");
    assert_eq!(s.per_agent[1].guide_pass_rate, Some(1.0));
}

#[test]
fn reward_model_breaks_ties_in_the_pick() {
    let mut tree = hand_tree();
    tree.nodes[2].score = Some(0.9);
    tree.nodes[3].score = Some(0.1);
    assert_eq!(pick_answer(&tree), Some(2));
    assert!(!problem_metrics(&run_of(tree, vec![]), 2, None).pass1_mcts);
    assert_eq!(pick_answer(&Tree::new()), None);
}

#[test]
fn renamed_variables_are_one_algorithm_and_a_loop_is_another() {
    let sandbox = Sandbox::with_defaults().unwrap();
    let programs = [
        "def f(x):\n    return x + 1\n",
        "def g(y):\n    \"\"\"Adds two.\"\"\"\n    return y + 2\n",
        "def f(x):\n    for _ in range(3):\n        x += 1\n    return x\n",
    ];
    assert_eq!(
        distinct_algorithms(&sandbox, &programs, 8).unwrap(),
        Some(2)
    );
    assert_eq!(
        distinct_algorithms(&sandbox, &programs, 2).unwrap(),
        Some(1)
    );
    assert_eq!(distinct_algorithms(&sandbox, &[], 8).unwrap(), None);
}

fn record(id: &str) -> ProblemRecord {
    let run = run_of(hand_tree(), vec![]);
    ProblemRecord {
        problem_id: id.into(),
        metrics: problem_metrics(&run, 2, None),
        tree: run.tree,
        samples: vec![],
        wall_seconds: 1.0,
    }
}

#[test]
fn a_run_directory_resumes_and_drops_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let settings = serde_json::json!({"method": "tplus", "budget": 8});
    {
        let (mut run, done) = RunDir::open(dir.path(), &settings).unwrap();
        assert!(done.is_empty());
        run.append(&record("a")).unwrap();
        run.append(&record("b")).unwrap();
    }
    // An interrupted append.
    let path = dir.path().join(TREES_FILE);
    let full = std::fs::read_to_string(&path).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"{\"problem_id\": \"c\", \"tree\": {").unwrap();
    drop(f);
    let (mut run, done) = RunDir::open(dir.path(), &settings).unwrap();
    let ids: Vec<&str> = done.iter().map(|r| r.problem_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(done[0], record("a"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), full);
    run.append(&record("c")).unwrap();
    assert_eq!(read_records(&path).unwrap().len(), 3);

    let other = serde_json::json!({"method": "sample", "budget": 8});
    let err = RunDir::open(dir.path(), &other).err().unwrap();
    assert!(err.to_string().contains("other settings"), "{err}");
}

#[test]
fn a_corrupt_complete_line_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(TREES_FILE);
    let good = serde_json::to_string(&record("a")).unwrap();
    std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
    match read_records(&path) {
        Err(SearchError::Record { line, path: p, .. }) => {
            assert_eq!(line, 2);
            assert_eq!(p, path);
        }
        other => panic!("{other:?}"),
    }
}
