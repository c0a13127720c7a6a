//! `cargo xtask sft`: the arguments of [`mars2_rl::training::fine_tune`] and a progress bar
//! over its steps. Its default recipe makes `smollm2-135m-mbpp-sft`, the second agent of the
//! heterogeneous team: SmolLM2-135M-Instruct tuned on the reference programs of MBPP's
//! validation split (tasks 511–600), disjoint from the train split that RL uses and the test
//! split that evaluation uses. The model is made on first use and cached.

use std::path::PathBuf;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_engine::{DeviceKind, DeviceSpec};
use mars2_models::registry::cache_dir;
use mars2_rl::training::fine_tune::{fine_tune_on, made_by, SftEvent, SftJob, SftRecipe};
use mars2_sandbox::Split;

use crate::benchmark::{load_benchmark, Benchmark};
use crate::fetch_model::resolve_model_arg;

/// The name of the model the default recipe makes.
pub const SFT_MODEL: &str = "smollm2-135m-mbpp-sft";

#[derive(clap::Args, Debug)]
pub struct SftArgs {
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// cpu, wgpu or cuda (among those compiled in); training needs f32.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Output directory (default: the cache entry of `smollm2-135m-mbpp-sft`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The recipe's settings on the command line (defaults: [`SftRecipe::default`]).
#[derive(clap::Args, Debug, Clone)]
pub struct RecipeArgs {
    /// The model to start from: a registered name or a checkpoint path.
    #[arg(long, default_value_t = SftRecipe::default().base)]
    pub base: String,
    /// MBPP split whose reference solutions are the targets.
    #[arg(long, default_value = "validation", value_parser = crate::benchmark::parse_split)]
    pub split: Split,
    /// Only the first N problems of the split (0: all).
    #[arg(long, default_value_t = SftRecipe::default().problems)]
    pub problems: usize,
    #[arg(long, default_value_t = SftRecipe::default().epochs)]
    pub epochs: usize,
    /// Examples per optimizer step.
    #[arg(long, default_value_t = SftRecipe::default().batch)]
    pub batch: usize,
    /// Peak learning rate (warm-up over the first step, cosine to a tenth).
    #[arg(long, default_value_t = SftRecipe::default().lr)]
    pub lr: f64,
    #[arg(long, default_value_t = SftRecipe::default().seed)]
    pub seed: u64,
}

impl From<RecipeArgs> for SftRecipe {
    fn from(a: RecipeArgs) -> Self {
        SftRecipe {
            base: a.base,
            split: a.split,
            problems: a.problems,
            epochs: a.epochs,
            batch: a.batch,
            lr: a.lr,
            seed: a.seed,
        }
    }
}

/// Where the default recipe's model is cached.
pub fn sft_model_dir() -> PathBuf {
    cache_dir().join("models").join(SFT_MODEL)
}

/// The default recipe's model, made first if it is missing or was made by another recipe.
pub fn ensure_sft_model() -> Result<PathBuf> {
    let dir = sft_model_dir();
    let recipe = SftRecipe::default();
    if made_by(&dir, &recipe) {
        return Ok(dir);
    }
    eprintln!(
        "{SFT_MODEL} is not cached yet: making it with `cargo xtask sft` ({} MBPP {} problems)",
        recipe.problems,
        split_name(recipe.split)
    );
    fine_tune_recipe(recipe, DeviceKind::Cpu.into(), dir.clone())?;
    Ok(dir)
}

fn split_name(split: Split) -> &'static str {
    match split {
        Split::FewShot => "prompt",
        Split::Test => "test",
        Split::Validation => "validation",
        Split::Train => "train",
    }
}

pub fn run(args: SftArgs) -> Result<()> {
    let out = args.out.unwrap_or_else(sft_model_dir);
    fine_tune_recipe(args.recipe.into(), args.device, out)
}

fn fine_tune_recipe(recipe: SftRecipe, device: DeviceSpec, out: PathBuf) -> Result<()> {
    let base = resolve_model_arg(&recipe.base)?;
    let mut problems = load_benchmark(&Benchmark::Mbpp, recipe.split)?;
    if recipe.problems > 0 {
        problems.truncate(recipe.problems);
    }
    let progress = ProgressBar::new_spinner();
    progress.set_message(format!("sft: loading {}", base.display()));
    progress.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut observer = |event: SftEvent<'_>| match event {
        SftEvent::Started { steps, .. } => {
            progress.disable_steady_tick();
            progress.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] sft step {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            progress.set_length(steps as u64);
            progress.set_message("");
        }
        SftEvent::Step { done, step } => {
            if let Some(step) = step {
                progress.set_message(format!("loss {:.3}", step.loss));
            }
            progress.set_position(done as u64);
        }
        SftEvent::Writing => progress.set_message("writing the checkpoint"),
    };
    let job = SftJob {
        recipe,
        base,
        problems,
        out,
        device,
    };
    let outcome = fine_tune_on(job, &mut observer);
    progress.finish_and_clear();
    let outcome = outcome?;
    eprintln!(
        "sft: {} examples, {} steps, mean response NLL {:.3} → {:.3}",
        outcome.examples,
        outcome.steps.len(),
        outcome.mean_nll_before,
        outcome.mean_nll_after
    );
    println!("{}", outcome.out.display());
    Ok(())
}
