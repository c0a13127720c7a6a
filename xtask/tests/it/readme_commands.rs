//! Every command of the README's "Commands" block runs: each subcommand it lists is run here
//! on tiny inputs (the tiny code model, a few problems, one round) and must exit cleanly,
//! never panic. A subcommand added to the README without a run here fails the test.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{repo_dir, run_ok, tiny_code_model, tiny_train_config, xtask};

/// The subcommands the README's Commands block uses (`cargo xtask <sub> ...`).
fn readme_subcommands() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_dir().join("README.md")).expect("README.md");
    let block = readme
        .split("## Commands")
        .nth(1)
        .and_then(|rest| rest.split("```sh").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("a ```sh block under ## Commands");
    block
        .lines()
        .filter_map(|line| line.trim().strip_prefix("cargo xtask "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn every_readme_command_runs_on_tiny_inputs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let tmp = dir.path();
    let model = tiny_code_model(tmp);
    let m = arg(&model);
    let mut covered = BTreeSet::new();
    let mut skipped = BTreeSet::new();
    let mut run = |sub: &str, args: &[&str]| {
        covered.insert(sub.to_string());
        let mut command = xtask();
        command.arg(sub).args(args);
        run_ok(&mut command)
    };

    // fetch-model: a registered model is downloaded only when missing; the test command
    // fetches it first, so here it is only checked, or visibly skipped when offline.
    let cache = std::env::var_os("MARS2_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/mars2")));
    let cached = cache.is_some_and(|c| c.join("models/smollm2-135m-instruct").exists());
    if cached {
        run("fetch-model", &["smollm2-135m-instruct"]);
    } else {
        skipped.insert("fetch-model".to_string());
        eprintln!("SKIPPED fetch-model smollm2-135m-instruct: not cached (offline run)");
    }

    run(
        "generate",
        &[
            "--model",
            &m,
            "--chat",
            "Write is_prime in Python",
            "--max-new-tokens",
            "2",
        ],
    );
    let out = run(
        "generate",
        &[
            "--model",
            &m,
            "--input-ids",
            "1,2,3",
            "--input-ids",
            "4,5",
            "--max-new-tokens",
            "3",
            "--json",
        ],
    );
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, 2, "one JSON line per prompt");
    let logits = tmp.join("logits.safetensors");
    run(
        "logits",
        &[
            "--model",
            &m,
            "--input-ids",
            "1,2,3",
            "--out",
            &arg(&logits),
        ],
    );
    assert!(logits.exists());
    run(
        "bench",
        &[
            "engine",
            "--model",
            &m,
            "--batches",
            "1,2",
            "--new-tokens",
            "2",
            "--tree",
            "2,8,4,2",
        ],
    );
    run(
        "sandbox",
        &[
            "--problems",
            "data/HumanEval.jsonl.gz",
            "--solutions",
            "canonical",
        ],
    );
    let he = tmp.join("he-tplus");
    run(
        "eval",
        &[
            "--benchmark",
            "humaneval",
            "--agent",
            &m,
            "--method",
            "tplus",
            "--budget",
            "2",
            "--limit",
            "1",
            "--samples",
            "1",
            "--max-new-tokens",
            "1",
            "--out",
            &arg(&he),
        ],
    );
    assert!(he.join("summary.json").exists() && he.join("report.html").exists());

    let train_out = tmp.join("train");
    let config = tmp.join("train.toml");
    std::fs::write(&config, tiny_train_config(&model, &train_out, 1)).expect("config");
    run(
        "train",
        &[
            "--config",
            &arg(&config),
            "--out",
            &arg(&train_out),
            "--require-isolation",
            "false",
        ],
    );
    assert!(train_out.join("summary.json").exists());
    run(
        "sft",
        &[
            "--base",
            &m,
            "--problems",
            "2",
            "--batch",
            "2",
            "--out",
            &arg(&tmp.join("sft-model")),
        ],
    );
    let reward_model = tmp.join("reward-model.json");
    run(
        "train-rm",
        &[
            "--trees",
            &arg(&train_out.join("rollouts.jsonl")),
            "--model",
            &m,
            "--max-tokens",
            "64",
            "--out",
            &arg(&reward_model),
        ],
    );
    run(
        "eval",
        &[
            "--benchmark",
            "mbpp",
            "--agent",
            &m,
            "--method",
            "tplus",
            "--reward-model",
            &arg(&reward_model),
            "--budget",
            "2",
            "--limit",
            "1",
            "--samples",
            "1",
            "--max-new-tokens",
            "1",
            "--out",
            &arg(&tmp.join("mbpp-tplus")),
        ],
    );
    run("plot", &[&arg(&train_out)]);
    let compare = tmp.join("compare.toml");
    std::fs::write(
        &compare,
        format!(
            "[common]\nbenchmark = \"mbpp\"\nagent = [{m:?}]\nlimit = 1\nsamples = 0\n\
             max_new_tokens = 1\n[grid]\nmethod = [\"sample\", \"abmcts\"]\nbudget = [1, 2]\n"
        ),
    )
    .expect("comparison config");
    let compared = tmp.join("compare");
    run(
        "compare",
        &["--config", &arg(&compare), "--out", &arg(&compared)],
    );
    assert!(compared.join("comparison.json").exists() && compared.join("report.html").exists());

    covered.extend(skipped);
    let listed = readme_subcommands();
    assert!(
        listed.len() >= 9,
        "the README lists its commands: {listed:?}"
    );
    let missing: Vec<_> = listed.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "README commands with no run here: {missing:?}"
    );
}
