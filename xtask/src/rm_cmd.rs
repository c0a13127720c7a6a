//! `cargo xtask train-rm`: the arguments of [`mars2_rl::training::reward_fit`], a progress bar
//! over the programs it reads, and its figures printed. Trains the T+ reward model from search
//! trees (`rollouts.jsonl` of a training run, `trees.jsonl` of an evaluation) and writes a JSON
//! file that `cargo xtask eval --reward-model FILE` loads.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_engine::DeviceSpec;
use mars2_rl::reward_model::RewardModel;
use mars2_rl::training::reward_fit::{
    fit_reward_model_on, read_tree_file, require_examples, RewardFitJob, SavedRewardModel,
};
use mars2_sandbox::{Problem, Split};

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
    pub device: DeviceSpec,
    /// Output file.
    #[arg(long, default_value = "runs/reward-model.json")]
    pub out: PathBuf,
}

pub fn run(args: TrainRmArgs) -> Result<()> {
    mars2_rl::training::config::require_f32_training(args.device.kind)?;
    let problems = known_problems()?;
    let mut examples = Vec::new();
    let mut seen = HashSet::new();
    let mut unknown = HashSet::new();
    for path in &args.trees {
        let report = read_tree_file(path, &problems, &mut examples, &mut seen)?;
        if report.torn_last_line {
            eprintln!("{}: skipping a torn last line", path.display());
        }
        unknown.extend(report.unknown_problems);
    }
    if !unknown.is_empty() {
        eprintln!(
            "skipped trees of {} problems not in HumanEval or MBPP",
            unknown.len()
        );
    }
    require_examples(&examples)?;
    let backbone = resolve_model_arg(&args.model)?;
    let progress = ProgressBar::new(examples.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] features {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let job = RewardFitJob {
        examples,
        problems,
        backbone_name: args.model.clone(),
        backbone,
        max_tokens: args.max_tokens,
        device: args.device,
    };
    let saved = fit_reward_model_on(job, &mut |done, _| progress.set_position(done as u64));
    progress.finish_and_clear();
    let saved = saved?;
    saved.write(&args.out)?;
    let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    println!(
        "{} examples ({} passed); held out {} ({} passed): accuracy {} (always \"fails\": {}), \
         ROC AUC {} (public tests' pass fraction: {})",
        saved.examples,
        saved.positives,
        saved.held_out_examples,
        saved.held_out_positives,
        show(saved.held_out_accuracy),
        show(saved.always_fails_accuracy()),
        show(saved.held_out_auc),
        show(saved.held_out_public_tests_auc)
    );
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Every HumanEval and MBPP problem by id.
fn known_problems() -> Result<HashMap<String, Problem>> {
    let mut all = load_benchmark(&Benchmark::HumanEval, Split::Test)?;
    for split in [Split::FewShot, Split::Test, Split::Validation, Split::Train] {
        all.extend(load_benchmark(&Benchmark::Mbpp, split)?);
    }
    Ok(all.into_iter().map(|p| (p.id.clone(), p)).collect())
}

/// Loads a reward model written by `cargo xtask train-rm` (fetching its backbone if needed).
pub fn load_reward_model<B: Backend>(path: &Path, device: &B::Device) -> Result<RewardModel<B>> {
    let saved = SavedRewardModel::read(path)?;
    let backbone = resolve_model_arg(&saved.backbone)?;
    saved
        .load::<B>(&backbone, device)
        .with_context(|| format!("loading the reward model {}", path.display()))
}
