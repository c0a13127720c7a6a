//! Training the T+ reward model as a library function. Search trees (`rollouts.jsonl` of a
//! training run, `trees.jsonl` of an evaluation) give one (problem, program, passed) example
//! per distinct judged program ([`read_tree_file`]). Problems are split 80/20 by a hash of their
//! id; [`fit_reward_model`] reads every example through the frozen backbone, fits the head on
//! the larger part and scores the held-out fifth (accuracy, ROC AUC) beside two baselines on
//! the same programs: always answering "fails", and the fraction of public tests a program
//! passes (what the search sees without a reward model). The result is a JSON file
//! ([`SavedRewardModel`]) that evaluation loads back as a [`RewardModel`].

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use mars2_engine::{run_on, BackendTask, DeviceSpec};
use mars2_models::load_model;
use mars2_sandbox::Problem;
use mars2_search::runner::stable_hash;
use mars2_search::Tree;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::require_f32_training;
use super::error::{TrainError, TrainResult};
use crate::reward_model::{pooled_features, reward_text, HeadTraining, RewardHead, RewardModel};

/// A trained reward model: which backbone, how much it reads, the head and its figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedRewardModel {
    /// The backbone as its trainer named it (a registered model or a path).
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

impl SavedRewardModel {
    /// Reads a reward model file.
    pub fn read(path: &Path) -> TrainResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::ConfigFile {
            path: path.to_path_buf(),
            message: format!("not a reward model file: {e}"),
        })
    }

    /// Writes it as pretty JSON (creating the parent directory).
    pub fn write(&self, path: &Path) -> TrainResult<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        }
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        std::fs::write(path, text).map_err(|e| TrainError::io(path, e))
    }

    /// The accuracy of always answering "fails" on the held-out programs.
    pub fn always_fails_accuracy(&self) -> Option<f64> {
        (self.held_out_examples > 0)
            .then(|| 1.0 - self.held_out_positives as f64 / self.held_out_examples as f64)
    }

    /// The scorer, with the backbone read from `backbone` (the checkpoint `self.backbone`
    /// names) on `device`.
    pub fn load<B: Backend>(
        self,
        backbone: &Path,
        device: &B::Device,
    ) -> TrainResult<RewardModel<B>> {
        let loaded = load_model::<B>(backbone, device).map_err(|source| TrainError::Model {
            path: backbone.to_path_buf(),
            source,
        })?;
        let tokenizer = loaded.tokenizer.ok_or_else(|| {
            TrainError::Config(format!(
                "{}: the model has no tokenizer",
                backbone.display()
            ))
        })?;
        Ok(RewardModel::new(
            loaded.model,
            tokenizer,
            self.head,
            self.max_tokens,
            device.clone(),
        ))
    }
}

/// One judged program.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedProgram {
    pub problem: String,
    pub code: String,
    pub passed: bool,
    /// The fraction of the public tests it passed, when the tree was judged on public and
    /// hidden tests apart (evaluation trees).
    pub public_tests: Option<f64>,
}

/// What [`read_tree_file`] found besides its examples.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TreeFileReport {
    /// Ids of the problems not among the known ones (their trees are skipped).
    pub unknown_problems: HashSet<String>,
    /// Whether the last line was torn (an interrupted write) and skipped.
    pub torn_last_line: bool,
}

/// Appends to `out` every judged program of the trees in `path` whose problem is in
/// `problems`, once per (problem, program) (`seen` spans several files). A program's label
/// is its hidden verdict when the tree has one, else its guiding verdict (training trees are
/// guided by every test). A line that is not a tree is an error naming the file and line;
/// a torn last line is skipped.
pub fn read_tree_file(
    path: &Path,
    problems: &HashMap<String, Problem>,
    out: &mut Vec<JudgedProgram>,
    seen: &mut HashSet<(String, String)>,
) -> TrainResult<TreeFileReport> {
    let file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|e| TrainError::io(path, e))?;
    let bad_line = |line: usize, message: String| TrainError::Line {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut report = TreeFileReport::default();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() => {
                report.torn_last_line = true;
                continue;
            }
            Err(e) => return Err(bad_line(i + 1, format!("not JSON: {e}"))),
        };
        let id = value["problem"]
            .as_str()
            .or_else(|| value["problem_id"].as_str())
            .ok_or_else(|| bad_line(i + 1, "no problem id".into()))?
            .to_string();
        if !problems.contains_key(&id) {
            report.unknown_problems.insert(id);
            continue;
        }
        let tree: Tree = serde_json::from_value(value["tree"].clone())
            .map_err(|e| bad_line(i + 1, format!("not a search tree: {e}")))?;
        for node in tree.generated() {
            let Some(code) = node.code.clone() else {
                continue;
            };
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
                out.push(JudgedProgram {
                    problem: id.clone(),
                    code,
                    passed: reward >= 1.0,
                    public_tests,
                });
            }
        }
    }
    Ok(report)
}

/// Refuses an empty set of examples (before a backbone is loaded or fetched for nothing).
pub fn require_examples(examples: &[JudgedProgram]) -> TrainResult<()> {
    if examples.is_empty() {
        return Err(TrainError::Config(
            "the tree files hold no judged program".into(),
        ));
    }
    Ok(())
}

/// A reward model to fit.
pub struct RewardFitJob {
    pub examples: Vec<JudgedProgram>,
    /// Every problem an example names.
    pub problems: HashMap<String, Problem>,
    /// The backbone's name as recorded in the saved model (a registered name or a path).
    pub backbone_name: String,
    /// The backbone's checkpoint on disk.
    pub backbone: PathBuf,
    /// Tokens of "problem + program" the backbone reads.
    pub max_tokens: usize,
    pub device: DeviceSpec,
}

/// Fits `job` on the device it names (f32 backends only).
pub fn fit_reward_model_on(
    job: RewardFitJob,
    on_features: &mut dyn FnMut(usize, usize),
) -> TrainResult<SavedRewardModel> {
    struct Task<'a> {
        job: RewardFitJob,
        on_features: &'a mut dyn FnMut(usize, usize),
    }
    impl BackendTask for Task<'_> {
        type Output = TrainResult<SavedRewardModel>;
        fn run<B: Backend>(self, device: B::Device) -> Self::Output {
            fit_reward_model::<B>(self.job, &device, self.on_features)
        }
    }
    require_f32_training(job.device.kind)?;
    let device = job.device;
    run_on(device, Task { job, on_features })?
}

/// Reads every example through the backbone (`on_features(done, total)` after each), fits
/// the head on the problems outside the held-out fifth and scores the held-out programs.
pub fn fit_reward_model<B: Backend>(
    job: RewardFitJob,
    device: &B::Device,
    on_features: &mut dyn FnMut(usize, usize),
) -> TrainResult<SavedRewardModel> {
    let RewardFitJob {
        examples,
        problems,
        backbone_name,
        backbone,
        max_tokens,
        ..
    } = job;
    require_examples(&examples)?;
    let model_error = |source| TrainError::Model {
        path: backbone.clone(),
        source,
    };
    let loaded = load_model::<B>(&backbone, device).map_err(model_error)?;
    let tokenizer = loaded.tokenizer.ok_or_else(|| {
        TrainError::Config(format!(
            "{}: the model has no tokenizer",
            backbone.display()
        ))
    })?;
    let mut features = Vec::new();
    for (i, example) in examples.iter().enumerate() {
        let problem = problems.get(&example.problem).ok_or_else(|| {
            TrainError::Config(format!("no problem {} for its example", example.problem))
        })?;
        let tokens = tokenizer
            .encode(&reward_text(problem, &example.code))
            .map_err(model_error)?;
        features.push(pooled_features(&loaded.model, &tokens, max_tokens, device));
        on_features(i + 1, examples.len());
    }
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
    Ok(SavedRewardModel {
        backbone: backbone_name,
        max_tokens,
        head,
        examples: examples.len(),
        positives: examples.iter().filter(|e| e.passed).count(),
        held_out_examples: test_y.len(),
        held_out_accuracy: accuracy,
        held_out_auc: roc_auc(&scores, &test_y),
        held_out_positives: test_y.iter().filter(|&&y| y).count(),
        held_out_public_tests_auc: roc_auc(&public_scores, &public_labels),
    })
}

/// The area under the ROC curve: the chance a random passing program scores above a random
/// failing one (ties count half); `None` without both classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let class = |want: bool| -> Vec<f64> {
        scores
            .iter()
            .zip(labels)
            .filter(|(_, &l)| l == want)
            .map(|(s, _)| *s)
            .collect()
    };
    let (pos, neg) = (class(true), class(false));
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

    fn one_problem() -> HashMap<String, Problem> {
        let problem = Problem {
            id: "Mbpp/601".into(),
            statement: "Write a function.".into(),
            ..crate::training::blank_problem()
        };
        HashMap::from([(problem.id.clone(), problem)])
    }

    /// The examples `text`, written to `path`, gives, with the report; or the error, as
    /// printed.
    fn read_text(path: &Path, text: &str) -> Result<(Vec<JudgedProgram>, TreeFileReport), String> {
        std::fs::write(path, text).unwrap();
        let mut examples = Vec::new();
        read_tree_file(path, &one_problem(), &mut examples, &mut HashSet::new())
            .map(|report| (examples, report))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn tree_files_with_bad_lines_are_refused_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollouts.jsonl");
        let read = |text: &str| {
            read_text(&path, text)
                .map(|(e, r)| (e.len(), r.unknown_problems.len(), r.torn_last_line))
        };
        // Unknown problems are counted, a torn last line is skipped.
        assert_eq!(
            read("{\"problem\":\"Lcb/9\",\"tree\":null}\n{\"probl"),
            Ok((0, 1, true))
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

    #[test]
    fn a_saved_model_that_is_not_one_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm.json");
        std::fs::write(&path, "{\"backbone\": 3}").unwrap();
        let err = SavedRewardModel::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("rm.json") && err.contains("not a reward model file"),
            "{err}"
        );
    }
}
