//! Supervised fine-tuning as a library function: [`fine_tune`] trains a model on the
//! reference programs of a set of problems (each answered in a ```python block after the
//! fresh-solution prompt the search shows a model) and writes a Hugging Face checkpoint with
//! `sft.json` beside it: the [`SftRecipe`], the example count, the mean response NLL before and
//! after, and every step's figures. [`made_by`] tells whether a directory already holds the
//! result of a recipe, so a cached model is remade only when its recipe changes.

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use mars2_engine::{run_on, BackendTask, DeviceSpec};
use mars2_models::export::{replace_dir_atomically, write_hf_files};
use mars2_models::{load_model, ChatOptions, ChatTemplate, TextTokenizer};
use mars2_sandbox::{Problem, Split};
use mars2_search::config::{AgentSpec, ContextMode, FeedbackMode};
use mars2_search::prompts::build_messages;
use mars2_search::Tree;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::require_f32_training;
use super::error::{TrainError, TrainResult};
use crate::schedule::LrSchedule;
use crate::sft::{mean_nll, SftExample, SftStep, SupervisedTrainer};

/// The file written beside the weights.
pub const RECIPE_FILE: &str = "sft.json";

/// What fine-tuned weights depend on; recorded beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftRecipe {
    /// The model to start from, as the caller named it (a registered name or a path).
    pub base: String,
    /// The MBPP split whose reference solutions are the targets.
    pub split: Split,
    /// Only the first N problems of the split (0: all).
    pub problems: usize,
    pub epochs: usize,
    /// Examples per optimizer step.
    pub batch: usize,
    /// Peak learning rate (warm-up over the first step, cosine to a tenth).
    pub lr: f64,
    pub seed: u64,
}

impl Default for SftRecipe {
    /// SmolLM2-135M-Instruct on the first 32 reference programs of MBPP's validation split,
    /// one epoch in batches of 8 at 3e-5.
    fn default() -> Self {
        SftRecipe {
            base: "smollm2-135m-instruct".into(),
            split: Split::Validation,
            problems: 32,
            epochs: 1,
            batch: 8,
            lr: 3e-5,
            seed: 0,
        }
    }
}

/// A fine-tuning run.
pub struct SftJob {
    pub recipe: SftRecipe,
    /// `recipe.base`, resolved to a checkpoint on disk.
    pub base: PathBuf,
    /// The problems whose reference solutions are the targets (already cut to
    /// `recipe.problems`); those without one are skipped.
    pub problems: Vec<Problem>,
    /// The output directory, replaced atomically when the run ends.
    pub out: PathBuf,
    pub device: DeviceSpec,
}

/// One step of a fine-tuning run.
#[derive(Debug, Clone, Copy)]
pub enum SftEvent<'a> {
    /// Training starts: `examples` examples, `steps` optimizer steps in all.
    Started { examples: usize, steps: usize },
    /// One batch is done (`step` is `None` when the batch held no usable example).
    Step {
        done: usize,
        step: Option<&'a SftStep>,
    },
    /// The checkpoint is being written.
    Writing,
}

/// What a run produced (also in `sft.json`).
#[derive(Debug, Clone)]
pub struct SftOutcome {
    pub examples: usize,
    pub steps: Vec<SftStep>,
    pub mean_nll_before: f64,
    pub mean_nll_after: f64,
    pub out: PathBuf,
}

/// Whether `dir` holds a complete checkpoint made with `recipe`.
pub fn made_by(dir: &Path, recipe: &SftRecipe) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(RECIPE_FILE)) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::from_value::<SftRecipe>(v["recipe"].clone()).ok())
        .is_some_and(|r| &r == recipe)
        && dir.join("config.json").is_file()
}

/// Runs `job` on the device it names (among the backends compiled in; f32 only).
pub fn fine_tune_on(
    job: SftJob,
    observer: &mut dyn FnMut(SftEvent<'_>),
) -> TrainResult<SftOutcome> {
    struct Task<'a> {
        job: SftJob,
        observer: &'a mut dyn FnMut(SftEvent<'_>),
    }
    impl BackendTask for Task<'_> {
        type Output = TrainResult<SftOutcome>;
        fn run<B: Backend>(self, device: B::Device) -> Self::Output {
            fine_tune::<B>(self.job, &device, self.observer)
        }
    }
    require_f32_training(job.device.kind)?;
    let device = job.device;
    run_on(device, Task { job, observer })?
}

/// Fine-tunes `job.base` on backend `B` (an f32 backend) and writes the checkpoint.
pub fn fine_tune<B: Backend>(
    job: SftJob,
    device: &B::Device,
    observer: &mut dyn FnMut(SftEvent<'_>),
) -> TrainResult<SftOutcome> {
    let SftJob {
        recipe,
        base,
        problems,
        out,
        ..
    } = job;
    if recipe.batch == 0 || recipe.epochs == 0 {
        return Err(TrainError::Config(
            "the batch and the number of epochs must be at least 1".into(),
        ));
    }
    let model_error = |source| TrainError::Model {
        path: base.clone(),
        source,
    };
    let loaded = load_model::<Autodiff<B>>(&base, device).map_err(model_error)?;
    let missing =
        |what: &str| TrainError::Config(format!("{}: the model has no {what}", base.display()));
    let tokenizer = loaded
        .tokenizer
        .clone()
        .ok_or_else(|| missing("tokenizer"))?;
    let template = loaded
        .chat_template
        .clone()
        .ok_or_else(|| missing("chat template"))?;
    let examples = examples(&problems, &tokenizer, &template).map_err(model_error)?;
    if examples.is_empty() {
        return Err(TrainError::Config(
            "no problem has a reference solution to train on".into(),
        ));
    }
    let total = examples.len().div_ceil(recipe.batch) * recipe.epochs;
    observer(SftEvent::Started {
        examples: examples.len(),
        steps: total,
    });
    let schedule = LrSchedule {
        peak: recipe.lr,
        warmup_fraction: 1.0 / total as f64,
        total_steps: total,
        floor_fraction: 0.1,
    };
    let before = mean_nll(&loaded.model.valid(), &examples, device);
    let mut trainer = SupervisedTrainer::new(loaded.model, schedule, 1.0, device.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(recipe.seed);
    let mut steps = Vec::new();
    let mut done = 0;
    for _ in 0..recipe.epochs {
        let mut order = examples.clone();
        order.shuffle(&mut rng);
        for batch in order.chunks(recipe.batch) {
            let step = trainer.train_step(batch);
            done += 1;
            observer(SftEvent::Step {
                done,
                step: step.as_ref(),
            });
            steps.extend(step);
        }
    }
    let model = trainer
        .inference_model()
        .ok_or_else(|| TrainError::Stopped("the trainer lost its model".into()))?;
    let after = mean_nll(&model, &examples, device);
    observer(SftEvent::Writing);
    let record = json!({
        "recipe": recipe,
        "base": base,
        "examples": examples.len(),
        "mean_nll_before": before,
        "mean_nll_after": after,
        "steps": steps,
    });
    replace_dir_atomically(&out, TrainError::io, |tmp| {
        write_hf_files(
            tmp,
            &model,
            &loaded.config,
            Some(&tokenizer),
            Some(&template),
        )
        .map_err(|source| TrainError::Model {
            path: tmp.to_path_buf(),
            source,
        })?;
        let path = tmp.join(RECIPE_FILE);
        let text = serde_json::to_string_pretty(&record)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))
    })?;
    Ok(SftOutcome {
        examples: examples.len(),
        steps,
        mean_nll_before: before,
        mean_nll_after: after,
        out,
    })
}

/// One example per problem with a reference solution: the fresh-solution prompt the search
/// shows a model, answered with the reference program in a ```python block and the
/// end-of-turn token.
pub fn examples(
    problems: &[Problem],
    tokenizer: &TextTokenizer,
    template: &ChatTemplate,
) -> mars2_models::Result<Vec<SftExample>> {
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
        let prompt = template.render(&messages, ChatOptions::default())?;
        let answer = format!("```python\n{}\n```{end}", code.trim_end());
        out.push(SftExample {
            prompt: tokenizer.encode(&prompt)?,
            response: tokenizer.encode(&answer)?,
        });
    }
    Ok(out)
}
