//! `cargo xtask sft`: supervised fine-tuning of a model on MBPP reference solutions, written
//! as a Hugging Face checkpoint. Its default recipe makes `smollm2-135m-mbpp-sft`, the second
//! agent of the heterogeneous team: SmolLM2-135M-Instruct tuned on the reference programs of
//! MBPP's validation split (tasks 511–600), disjoint from the train split that RL uses and the
//! test split that evaluation uses. The model is made on first use and cached.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_engine::{run_on, BackendTask, DeviceKind};
use mars2_models::export::{replace_dir_atomically, write_hf_files};
use mars2_models::registry::cache_dir;
use mars2_models::{load_model, ChatOptions, ChatTemplate, TextTokenizer};
use mars2_rl::schedule::LrSchedule;
use mars2_rl::sft::{mean_nll, SftExample, SupervisedTrainer};
use mars2_sandbox::{Problem, Split};
use mars2_search::config::{AgentSpec, ContextMode, FeedbackMode};
use mars2_search::prompts::build_messages;
use mars2_search::Tree;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::benchmark::{load_benchmark, Benchmark};
use crate::fetch_model::resolve_model_arg;

/// The name of the model the default recipe makes.
pub const SFT_MODEL: &str = "smollm2-135m-mbpp-sft";
/// The recipe file written beside the weights.
const RECIPE_FILE: &str = "sft.json";

#[derive(clap::Args, Debug)]
pub struct SftArgs {
    #[command(flatten)]
    pub recipe: SftRecipe,
    /// cpu, wgpu or cuda (among those compiled in); training needs f32.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    /// Output directory (default: the cache entry of `smollm2-135m-mbpp-sft`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What the fine-tuned weights depend on; recorded beside them.
#[derive(clap::Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftRecipe {
    /// The model to start from: a registered name or a checkpoint path.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub base: String,
    /// MBPP split whose reference solutions are the targets.
    #[arg(long, default_value = "validation", value_parser = crate::benchmark::parse_split)]
    pub split: Split,
    /// Only the first N problems of the split (0: all).
    #[arg(long, default_value_t = 32)]
    pub problems: usize,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Examples per optimizer step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Peak learning rate (warm-up over the first step, cosine to a tenth).
    #[arg(long, default_value_t = 3e-5)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl Default for SftRecipe {
    /// The command line's defaults.
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            recipe: SftRecipe,
        }
        Wrapper::parse_from(["sft"]).recipe
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
    run(SftArgs {
        recipe,
        device: DeviceKind::Cpu,
        out: Some(dir.clone()),
    })?;
    Ok(dir)
}

fn made_by(dir: &Path, recipe: &SftRecipe) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(RECIPE_FILE)) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::from_value::<SftRecipe>(v["recipe"].clone()).ok())
        .is_some_and(|r| &r == recipe)
        && dir.join("config.json").is_file()
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
    let SftArgs {
        recipe,
        device,
        out,
    } = args;
    crate::train_config::require_f32_training(device)?;
    let base = resolve_model_arg(&recipe.base)?;
    let mut problems = load_benchmark(&Benchmark::Mbpp, recipe.split)?;
    if recipe.problems > 0 {
        problems.truncate(recipe.problems);
    }
    if recipe.batch == 0 || recipe.epochs == 0 {
        bail!("--batch and --epochs must be at least 1");
    }
    let out = out.unwrap_or_else(sft_model_dir);
    run_on(
        device,
        SftTask {
            args: recipe,
            base,
            problems,
            out,
        },
    )?
}

struct SftTask {
    args: SftRecipe,
    base: PathBuf,
    problems: Vec<Problem>,
    out: PathBuf,
}

impl BackendTask for SftTask {
    type Output = Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let SftTask {
            args,
            base,
            problems,
            out,
        } = self;
        let loaded = load_model::<Autodiff<B>>(&base, &device)
            .with_context(|| format!("loading {}", base.display()))?;
        let tokenizer = loaded
            .tokenizer
            .clone()
            .ok_or_else(|| anyhow!("{}: the model has no tokenizer", base.display()))?;
        let template = loaded
            .chat_template
            .clone()
            .ok_or_else(|| anyhow!("{}: the model has no chat template", base.display()))?;
        let examples = examples(&problems, &tokenizer, &template)?;
        if examples.is_empty() {
            bail!("no MBPP problem of the split has a reference solution");
        }
        let steps_per_epoch = examples.len().div_ceil(args.batch);
        let total = steps_per_epoch * args.epochs;
        let schedule = LrSchedule {
            peak: args.lr,
            warmup_fraction: 1.0 / total as f64,
            total_steps: total,
            floor_fraction: 0.1,
        };
        let before = mean_nll(&loaded.model.valid(), &examples, &device);
        let mut trainer = SupervisedTrainer::new(loaded.model, schedule, 1.0, device.clone());
        let progress = ProgressBar::new(total as u64);
        progress.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] sft step {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
        let mut steps = Vec::new();
        for _ in 0..args.epochs {
            let mut order = examples.clone();
            order.shuffle(&mut rng);
            for batch in order.chunks(args.batch) {
                if let Some(step) = trainer.train_step(batch) {
                    progress.set_message(format!("loss {:.3}", step.loss));
                    steps.push(step);
                }
                progress.inc(1);
            }
        }
        progress.finish_and_clear();
        let model = trainer
            .inference_model()
            .ok_or_else(|| anyhow!("the trainer lost its model"))?;
        let after = mean_nll(&model, &examples, &device);
        let recipe = json!({
            "recipe": args,
            "base": base,
            "examples": examples.len(),
            "mean_nll_before": before,
            "mean_nll_after": after,
            "steps": steps,
        });
        replace_dir_atomically(
            &out,
            |p, e| anyhow::Error::new(e).context(format!("writing {}", p.display())),
            |tmp| {
                write_hf_files(
                    tmp,
                    &model,
                    &loaded.config,
                    Some(&tokenizer),
                    Some(&template),
                )?;
                let path = tmp.join(RECIPE_FILE);
                File::create(&path)
                    .and_then(|mut f| {
                        f.write_all(serde_json::to_string_pretty(&recipe)?.as_bytes())
                    })
                    .with_context(|| format!("writing {}", path.display()))
            },
        )
        .with_context(|| format!("writing {}", out.display()))?;
        eprintln!(
            "sft: {} examples, {} steps, mean response NLL {before:.3} → {after:.3}",
            examples.len(),
            steps.len()
        );
        println!("{}", out.display());
        Ok(())
    }
}

/// One example per problem: the fresh-solution prompt the search shows a model, answered
/// with the reference program in a ```python block and the end-of-turn token.
fn examples(
    problems: &[Problem],
    tokenizer: &TextTokenizer,
    template: &ChatTemplate,
) -> Result<Vec<SftExample>> {
    let agent = AgentSpec::new("sft", 0);
    let tree = Tree::new();
    let end = template.eos_token();
    let mut out = Vec::new();
    for problem in problems {
        let Some(code) = problem.reference_solution.as_deref() else {
            continue;
        };
        let messages = build_messages(
            problem,
            &tree,
            Tree::ROOT,
            &agent,
            ContextMode::Parent,
            FeedbackMode::Plain,
        );
        let prompt = template
            .render(&messages, ChatOptions::default())
            .with_context(|| format!("rendering the prompt of {}", problem.id))?;
        let answer = format!("```python\n{}\n```{end}", code.trim_end());
        out.push(SftExample {
            prompt: tokenizer.encode(&prompt)?,
            response: tokenizer.encode(&answer)?,
        });
    }
    Ok(out)
}
