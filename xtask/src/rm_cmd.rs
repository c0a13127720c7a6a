//! `cargo xtask train-rm`: trains the T+ reward model from search trees (`rollouts.jsonl` of a
//! training run, `trees.jsonl` of an evaluation): every judged program of every tree is one
//! (problem, program, passed) example. Problems are split 80/20 by a hash of their id; the
//! held-out fifth gives accuracy and ROC AUC, beside two baselines on the same programs: the
//! accuracy of always answering "fails", and the ROC AUC of the fraction of public tests a
//! program passes (what the search sees without a reward model). Writes a JSON file (backbone,
//! head, figures) that `cargo xtask eval --reward-model FILE` loads.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_engine::{run_on, BackendTask, DeviceKind};
use mars2_models::load_model;
use mars2_rl::reward_model::{pooled_features, reward_text, HeadTraining, RewardHead, RewardModel};
use mars2_sandbox::{Problem, Split};
use mars2_search::runner::stable_hash;
use mars2_search::Tree;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::benchmark::{load_benchmark, Benchmark};
use crate::fetch_model::resolve_model_arg;

#[derive(clap::Args, Debug)]
pub struct TrainRmArgs {
    /// JSONL files of trees (`rollouts.jsonl`, `trees.jsonl`); repeatable.
    #[arg(long = "trees", required = true, value_name = "FILE")]
    pub trees: Vec<PathBuf>,
    /// The frozen transformer under the head.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    /// Tokens of "problem + program" the model reads.
    #[arg(long, default_value_t = 384)]
    pub max_tokens: usize,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    /// Output file.
    #[arg(long, default_value = "runs/reward-model.json")]
    pub out: PathBuf,
}

/// The saved reward model: which backbone, how much it reads, the head and its figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedRewardModel {
    pub backbone: String,
    pub max_tokens: usize,
    pub head: RewardHead,
    pub examples: usize,
    pub positives: usize,
    pub held_out_examples: usize,
    pub held_out_accuracy: Option<f64>,
    pub held_out_auc: Option<f64>,
    /// Passing programs among the held-out ones.
    #[serde(default)]
    pub held_out_positives: usize,
    /// ROC AUC of the public tests' pass fraction on the held-out programs that have one.
    #[serde(default)]
    pub held_out_public_tests_auc: Option<f64>,
}

/// One judged program.
struct Example {
    problem: String,
    code: String,
    passed: bool,
    /// The fraction of the public tests it passed, when the tree was judged on public and
    /// hidden tests apart (evaluation trees).
    public_tests: Option<f64>,
}

pub fn run(args: TrainRmArgs) -> Result<()> {
    crate::train_config::require_f32_training(args.device)?;
    let problems = known_problems()?;
    let mut examples = Vec::new();
    let mut seen = HashSet::new();
    let mut unknown = HashSet::new();
    for path in &args.trees {
        read_examples(path, &problems, &mut examples, &mut seen, &mut unknown)?;
    }
    if !unknown.is_empty() {
        eprintln!(
            "skipped trees of {} problems not in HumanEval or MBPP",
            unknown.len()
        );
    }
    if examples.is_empty() {
        bail!("the tree files hold no judged program");
    }
    let backbone = resolve_model_arg(&args.model)?;
    run_on(
        args.device,
        RmTask {
            args,
            backbone,
            problems,
            examples,
        },
    )?
}

fn known_problems() -> Result<HashMap<String, Problem>> {
    let mut all = load_benchmark(&Benchmark::HumanEval, Split::Test)?;
    for split in [Split::FewShot, Split::Test, Split::Validation, Split::Train] {
        all.extend(load_benchmark(&Benchmark::Mbpp, split)?);
    }
    Ok(all.into_iter().map(|p| (p.id.clone(), p)).collect())
}

fn read_examples(
    path: &Path,
    problems: &HashMap<String, Problem>,
    out: &mut Vec<Example>,
    seen: &mut HashSet<(String, String)>,
    unknown: &mut HashSet<String>,
) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", path.display()))?;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() => {
                eprintln!("{}: skipping a torn last line", path.display());
                continue;
            }
            Err(e) => bail!("{}:{}: not JSON: {e}", path.display(), i + 1),
        };
        let id = value["problem"]
            .as_str()
            .or_else(|| value["problem_id"].as_str())
            .ok_or_else(|| anyhow!("{}:{}: no problem id", path.display(), i + 1))?
            .to_string();
        if !problems.contains_key(&id) {
            unknown.insert(id);
            continue;
        }
        let tree: Tree = serde_json::from_value(value["tree"].clone())
            .with_context(|| format!("{}:{}: not a search tree", path.display(), i + 1))?;
        for node in tree.generated() {
            let Some(code) = node.code.clone() else {
                continue;
            };
            // The hidden verdict when the tree has one, else the guide (training trees are
            // guided by every test).
            let Some(reward) = node
                .hidden
                .as_ref()
                .or(node.guide.as_ref())
                .and_then(|j| j.reward())
            else {
                continue;
            };
            let public_tests = node
                .hidden
                .as_ref()
                .and(node.guide.as_ref())
                .and_then(|j| j.partial_credit());
            if seen.insert((id.clone(), code.clone())) {
                out.push(Example {
                    problem: id.clone(),
                    code,
                    passed: reward >= 1.0,
                    public_tests,
                });
            }
        }
    }
    Ok(())
}

struct RmTask {
    args: TrainRmArgs,
    backbone: PathBuf,
    problems: HashMap<String, Problem>,
    examples: Vec<Example>,
}

impl BackendTask for RmTask {
    type Output = Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let RmTask {
            args,
            backbone,
            problems,
            examples,
        } = self;
        let loaded = load_model::<B>(&backbone, &device)
            .with_context(|| format!("loading {}", backbone.display()))?;
        let tokenizer = loaded
            .tokenizer
            .ok_or_else(|| anyhow!("{}: the model has no tokenizer", backbone.display()))?;
        let progress = ProgressBar::new(examples.len() as u64);
        progress.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] features {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let mut features = Vec::new();
        for example in &examples {
            let problem = &problems[&example.problem];
            let tokens = tokenizer.encode(&reward_text(problem, &example.code))?;
            features.push(pooled_features(
                &loaded.model,
                &tokens,
                args.max_tokens,
                &device,
            ));
            progress.inc(1);
        }
        progress.finish_and_clear();
        let held_out: Vec<bool> = examples
            .iter()
            .map(|e| stable_hash(&e.problem).is_multiple_of(5))
            .collect();
        let pick = |held: bool| -> (Vec<Vec<f32>>, Vec<bool>) {
            features
                .iter()
                .zip(&examples)
                .zip(&held_out)
                .filter(|(_, &h)| h == held)
                .map(|((x, e), _)| (x.clone(), e.passed))
                .unzip()
        };
        let (train_x, train_y) = pick(false);
        let (test_x, test_y) = pick(true);
        let head = RewardHead::fit(&train_x, &train_y, &HeadTraining::default());
        let scores: Vec<f64> = test_x.iter().map(|x| head.score(x)).collect();
        let accuracy = (!test_y.is_empty()).then(|| {
            scores
                .iter()
                .zip(&test_y)
                .filter(|(s, &y)| (**s > 0.5) == y)
                .count() as f64
                / test_y.len() as f64
        });
        let (public_scores, public_labels): (Vec<f64>, Vec<bool>) = examples
            .iter()
            .zip(&held_out)
            .filter(|(_, &h)| h)
            .filter_map(|(e, _)| Some((e.public_tests?, e.passed)))
            .unzip();
        let saved = SavedRewardModel {
            backbone: args.model.clone(),
            max_tokens: args.max_tokens,
            head,
            examples: examples.len(),
            positives: examples.iter().filter(|e| e.passed).count(),
            held_out_examples: test_y.len(),
            held_out_accuracy: accuracy,
            held_out_auc: roc_auc(&scores, &test_y),
            held_out_positives: test_y.iter().filter(|&&y| y).count(),
            held_out_public_tests_auc: roc_auc(&public_scores, &public_labels),
        };
        if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&args.out, serde_json::to_string_pretty(&saved)?)
            .with_context(|| format!("writing {}", args.out.display()))?;
        let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        let always_fails = (saved.held_out_examples > 0)
            .then(|| 1.0 - saved.held_out_positives as f64 / saved.held_out_examples as f64);
        println!(
            "{} examples ({} passed); held out {} ({} passed): accuracy {} (always \"fails\": {}), \
             ROC AUC {} (public tests' pass fraction: {})",
            saved.examples,
            saved.positives,
            saved.held_out_examples,
            saved.held_out_positives,
            show(saved.held_out_accuracy),
            show(always_fails),
            show(saved.held_out_auc),
            show(saved.held_out_public_tests_auc)
        );
        println!("wrote {}", args.out.display());
        Ok(())
    }
}

/// The area under the ROC curve: the chance a random passing program scores above a random
/// failing one (ties count half); `None` without both classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, &l)| !l)
        .map(|(s, _)| *s)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (pos.len() * neg.len()) as f64)
}

/// Loads a reward model written by `cargo xtask train-rm`.
pub fn load_reward_model<B: Backend>(path: &Path, device: &B::Device) -> Result<RewardModel<B>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let saved: SavedRewardModel = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a reward model file", path.display()))?;
    let backbone = resolve_model_arg(&saved.backbone)?;
    let loaded = load_model::<B>(&backbone, device)
        .with_context(|| format!("loading {}", backbone.display()))?;
    let tokenizer = loaded
        .tokenizer
        .ok_or_else(|| anyhow!("{}: the model has no tokenizer", backbone.display()))?;
    Ok(RewardModel::new(
        loaded.model,
        tokenizer,
        saved.head,
        saved.max_tokens,
        device.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs() {
        assert_eq!(roc_auc(&[0.9, 0.1], &[true, false]), Some(1.0));
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, false]), Some(0.0));
        assert_eq!(roc_auc(&[0.5, 0.5, 0.2], &[true, false, false]), Some(0.75));
        assert_eq!(roc_auc(&[0.5], &[true]), None);
    }

    /// The examples `text`, written to `path`, gives against problem Mbpp/601 alone, and the
    /// number of unknown problems; or the error, as printed.
    fn read_text(path: &Path, text: &str) -> Result<(Vec<Example>, usize), String> {
        let problems: HashMap<String, Problem> = known_problems()
            .unwrap()
            .into_iter()
            .filter(|(id, _)| id == "Mbpp/601")
            .collect();
        std::fs::write(path, text).unwrap();
        let mut examples = Vec::new();
        let mut unknown = HashSet::new();
        read_examples(
            path,
            &problems,
            &mut examples,
            &mut HashSet::new(),
            &mut unknown,
        )
        .map(|_| (examples, unknown.len()))
        .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn tree_files_with_bad_lines_are_refused_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollouts.jsonl");
        let read = |text: &str| read_text(&path, text).map(|(e, unknown)| (e.len(), unknown));
        // Unknown problems are counted, a torn last line is skipped.
        assert_eq!(
            read("{\"problem\":\"Lcb/9\",\"tree\":null}\n{\"probl"),
            Ok((0, 1))
        );
        let err = read("{\"problem\":\"Lcb/9\"}\nnot json\n{}\n").unwrap_err();
        assert!(err.contains("rollouts.jsonl:2: not JSON"), "{err}");
        let err = read("{\"problem\":\"Mbpp/601\",\"tree\":{\"nodes\":7}}\n").unwrap_err();
        assert!(err.contains("rollouts.jsonl:1: not a search tree"), "{err}");
        let err = read("{\"tree\":null}\n").unwrap_err();
        assert!(err.contains("rollouts.jsonl:1: no problem id"), "{err}");
    }

    #[test]
    fn evaluation_trees_give_the_public_tests_score_and_hidden_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trees.jsonl");
        let node = |id: usize, code: &str, public: usize, hidden: usize| {
            let verdict = |passed: usize, total: usize| {
                let kind = if passed == total {
                    "Accepted"
                } else {
                    "WrongAnswer"
                };
                format!(r#"{{"kind":"{kind}","passed":{passed},"total":{total},"failure":null}}"#)
            };
            format!(
                r#"{{"id":{id},"parent":0,"children":[],"depth":1,"agent":0,"generation":null,"code":"{code}","guide":{},"hidden":{},"reward":0.0}}"#,
                verdict(public, 2),
                verdict(hidden, 4)
            )
        };
        let root = r#"{"id":0,"parent":null,"children":[1,2],"depth":0,"agent":null,"generation":null,"code":null,"guide":null,"hidden":null,"reward":0.0}"#;
        let line = format!(
            r#"{{"problem_id":"Mbpp/601","tree":{{"nodes":[{root},{},{}]}}}}"#,
            node(1, "a = 1", 1, 2),
            node(2, "b = 2", 2, 4)
        );
        let (examples, _) = read_text(&path, &line).unwrap();
        let got: Vec<(bool, Option<f64>)> = examples
            .iter()
            .map(|e| (e.passed, e.public_tests))
            .collect();
        assert_eq!(got, vec![(false, Some(0.5)), (true, Some(1.0))]);
    }
}
