//! What the command-line tests share: the `xtask` binary, the repository's data, and a tiny
//! "code model" that trains and evaluates in seconds. Its vocabulary is 24 words, most of them
//! whole fenced Python programs (the reference solutions of the first MBPP train and test
//! problems, in several copies, and some wrong programs), so that even random weights write
//! programs that pass or fail real tests, and training has a signal to learn from.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::NdArray;
use mars2_models::save_word_level_model;
use mars2_sandbox::{load_problems, LoadOptions, Problem, Split};

/// The repository root (this package's parent), as `cargo test` gives it.
pub fn repo_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..")
}

/// `cargo xtask` as the built binary, run from the repository root.
pub fn xtask() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.current_dir(repo_dir());
    command
}

/// Runs `command`; panics with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("xtask starts");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn mbpp(split: Split, n: usize) -> Vec<Problem> {
    let loaded = load_problems(repo_dir().join("data/mbpp.jsonl"), &LoadOptions::default())
        .expect("MBPP loads");
    loaded
        .problems
        .into_iter()
        .filter(|p| p.split == Some(split))
        .take(n)
        .collect()
}

/// The tiny code model's words (after the three special tokens): programs.
fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let fenced = |code: &str, copy: usize| format!("```python\n{}\n# {copy}\n```", code.trim());
    for problem in mbpp(Split::Train, 4) {
        let code = problem.reference_solution.expect("MBPP has reference code");
        words.extend((0..3).map(|c| fenced(&code, c)));
    }
    for problem in mbpp(Split::Test, 2) {
        let code = problem.reference_solution.expect("MBPP has reference code");
        words.extend((0..2).map(|c| fenced(&code, c)));
    }
    for k in 0..4 {
        words.push(fenced(&format!("def wrong_{k}(*args):\n    return {k}"), 0));
    }
    words.push("the".into());
    words
}

/// Writes the tiny code model (a Hugging Face directory: config, random weights, a word-level
/// tokenizer, a ChatML template) into `dir/tiny-coder`; returns its path.
pub fn tiny_code_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny-coder");
    save_word_level_model::<NdArray<f32>>(&path, &vocabulary(), 32, &Default::default())
        .expect("tiny code model written");
    path
}

/// A training config for the tiny model: `rounds` rounds of 2 problems, 4 nodes per tree,
/// updates of 3 samples (so some wait for the next round), no rollout ahead of training, one
/// tree at a time (trees grown together meet in the engine's prefill batches in an order that
/// depends on thread timing, and a batch of another make-up rounds differently, so a rerun
/// agrees only to rounding).
pub fn tiny_train_config(model: &Path, out: &Path, rounds: usize) -> String {
    format!(
        r#"algorithm = "mars2"
agents = [{model:?}]
device = "cpu"
seed = 3
out = {out:?}

[data]
train_problems = 4
eval_problems = 2

[search]
budget = 4
concurrency = 1
partial_credit = true

[sampling]
temperature = 1.0
max_new_tokens = 1
stop_strings = []

[train]
rounds = {rounds}
problems_per_round = 2
train_batch = 3
lr = 0.05
warmup_fraction = 0.0
kl_beta = 0.0
max_staleness = 0
weights = "all"

[shaping]
dynamic_filtering = false

[engine]
kv_cache_mb = 64
"#,
        model = model.display().to_string(),
        out = out.display().to_string(),
    )
}

/// Three loopback ports for a two-node run (the coordinator's and each node's), each free
/// along with the port after it: exchanges between nodes use `port` and `port + 1`.
pub fn free_port_pairs() -> [u16; 3] {
    let mut ports: Vec<u16> = Vec::new();
    let mut held = Vec::new();
    while ports.len() < 3 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = first.local_addr().expect("its address").port();
        if port == u16::MAX || ports.iter().any(|&p| p.abs_diff(port) <= 1) {
            continue;
        }
        if let Ok(second) = std::net::TcpListener::bind(("127.0.0.1", port + 1)) {
            ports.push(port);
            held.push((first, second));
        }
    }
    [ports[0], ports[1], ports[2]]
}
