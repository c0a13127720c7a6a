//! `cargo xtask train`: the project's main job. Evaluates the agents on held-out MBPP
//! problems, then alternates rollout (search trees over MBPP train problems, judged in the
//! sandbox) and per-agent updates (shaping, tree-group advantages, GSPO/GRPO, AdamW), hands
//! new weights to the engine after every step, evaluates again and prints a before/after
//! table. Writes `metrics.jsonl`, `summary.json` and per-agent Hugging Face checkpoints to
//! the run directory.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_engine::{run_on, BackendTask, DeviceKind, EngineConfig, SamplingParams};
use mars2_models::{load_model, ChatTemplate, TextTokenizer};
use mars2_rl::checkpoint::{load_checkpoint, save_checkpoint, ExportInfo};
use mars2_rl::schedule::LrSchedule;
use mars2_rl::{
    tree_samples, AgentTrainer, LossConfig, LossKind, ShapingConfig, TrainSample, TrainerConfig,
};
use mars2_sandbox::{Problem, Sandbox, Split};
use mars2_search::config::{AgentSpec, Method, SearchConfig};
use mars2_search::runner::{run_problems, ProblemRun, SearchContext};
use mars2_search::{EnginePolicy, Tree};
use serde_json::json;

use crate::benchmark::{load_benchmark, Benchmark};
use crate::team::{load_policy, resolve_models, team_of, ModelArg};
use crate::train_config::{Algorithm, TrainConfig};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// TOML settings (see configs/train-default.toml); without it, the embedded default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run directory (overrides the config's `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in the run directory from its last checkpoints (written after every
    /// round): weights, optimizer state, step and round counters.
    #[arg(long)]
    pub resume: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::default(),
    };
    if let Some(out) = args.out {
        config.out = out;
    }
    config.validate()?;
    let device: DeviceKind = config.device.parse()?;
    let models = resolve_models(&config.agents)?;
    let mbpp = Benchmark::Mbpp;
    let mut train = load_benchmark(&mbpp, Split::Train)?;
    train.truncate(config.data.train_problems.max(1));
    let mut held_out = load_benchmark(&mbpp, Split::Test)?;
    held_out.truncate(config.data.eval_problems);
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("creating {}", config.out.display()))?;
    let saved = config.out.join("config.toml");
    if args.resume {
        let old = TrainConfig::from_file(&saved)
            .with_context(|| "--resume needs the run directory of an earlier run")?;
        if old != config {
            bail!(
                "{}: the run was started with other settings; resume with the same config",
                saved.display()
            );
        }
    } else {
        std::fs::write(&saved, toml::to_string_pretty(&config)?)
            .with_context(|| format!("writing {}", saved.display()))?;
    }
    run_on(
        device,
        TrainTask {
            config,
            models,
            train,
            held_out,
            resume: args.resume,
        },
    )?
}

struct TrainTask {
    config: TrainConfig,
    models: Vec<ModelArg>,
    train: Vec<Problem>,
    held_out: Vec<Problem>,
    resume: bool,
}

/// Tokenizer and chat template of a model, kept for its checkpoints.
struct TextSide {
    tokenizer: Option<TextTokenizer>,
    template: Option<ChatTemplate>,
    config: mars2_models::ModelConfig,
}

impl BackendTask for TrainTask {
    type Output = Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let TrainTask {
            config,
            models,
            train,
            held_out,
            resume,
        } = self;
        let started = Instant::now();
        let sandbox = Sandbox::with_defaults().context("starting the sandbox")?;
        let rollout_params = SamplingParams {
            temperature: config.sampling.temperature,
            top_p: config.sampling.top_p,
            max_new_tokens: config.sampling.max_new_tokens,
            ..SamplingParams::default()
        };
        let eval_params = SamplingParams {
            temperature: config.eval.temperature,
            ..rollout_params.clone()
        };
        let engine = EngineConfig {
            kv_cache_bytes: config.engine.kv_cache_mb << 20,
            ..EngineConfig::default()
        };
        eprintln!("loading {} agent(s) on {}", models.len(), config.device);
        let mut policy = load_policy::<B>(&models, engine, &rollout_params, &device)?;
        let team = team_of(&models, config.multi_role);
        let mut trainers = Vec::new();
        let mut text = Vec::new();
        for m in &models {
            let loaded = load_model::<Autodiff<B>>(&m.path, &device)
                .with_context(|| format!("loading {} for training", m.path.display()))?;
            text.push(TextSide {
                tokenizer: loaded.tokenizer.clone(),
                template: loaded.chat_template.clone(),
                config: loaded.config.clone(),
            });
            trainers.push(AgentTrainer::new(
                loaded.model,
                trainer_config(&config),
                device.clone(),
            ));
        }

        let checkpoint_dir = |i: usize| config.out.join("checkpoints").join(&models[i].name);
        let mut first_round = 0;
        let mut next_problem = 0;
        let mut before = Vec::new();
        if resume {
            for (i, trainer) in trainers.iter_mut().enumerate() {
                let state = load_checkpoint(&checkpoint_dir(i), trainer, &device)?;
                first_round = state["round"].as_u64().map_or(0, |r| r as usize + 1);
                next_problem = state["next_problem"].as_u64().unwrap_or(0) as usize;
                before.push(state["pass_rate_before"].as_f64().unwrap_or(0.0));
                let weights = trainer
                    .inference_model()
                    .ok_or_else(|| anyhow!("trainer lost its model"))?;
                policy.update_weights(i, weights)?;
            }
            eprintln!("resuming at round {first_round}");
        } else {
            before = evaluate(
                &mut policy,
                &models,
                &held_out,
                &eval_params,
                &rollout_params,
                &sandbox,
                &config,
            )?;
        }
        let metrics_path = config.out.join("metrics.jsonl");
        let mut metrics_file = OpenOptions::new()
            .create(true)
            .append(resume)
            .write(true)
            .truncate(!resume)
            .open(&metrics_path)
            .with_context(|| format!("opening {}", metrics_path.display()))?;
        let progress = ProgressBar::new(config.train.rounds as u64);
        progress.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] round {pos}/{len} · {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        progress.set_position(first_round as u64);
        for round in first_round..config.train.rounds {
            let problems: Vec<&Problem> = (0..config.train.problems_per_round)
                .map(|i| &train[(next_problem + i) % train.len()])
                .collect();
            next_problem += problems.len();
            progress.set_message("rollout");
            let rollout_started = Instant::now();
            let trees = rollout(&policy, &team, &problems, &sandbox, &config, round as u64)?;
            let rollout_seconds = rollout_started.elapsed().as_secs_f64();
            let tokens: usize = trees
                .iter()
                .flat_map(|t| t.generated())
                .map(|n| n.generation.as_ref().map_or(0, |g| g.response_len))
                .sum();
            let shaping = ShapingConfig {
                gamma: if config.algorithm == Algorithm::Grpo {
                    0.0
                } else {
                    config.shaping.gamma
                },
                lambda: config.shaping.lambda,
                overlong: None,
                dynamic_filtering: config.shaping.dynamic_filtering,
            };
            let mut per_model: Vec<Vec<TrainSample>> = vec![Vec::new(); models.len()];
            for tree in &trees {
                for (model, sample) in tree_samples(tree, &team, &shaping) {
                    per_model[model].push(sample);
                }
            }
            for (model, samples) in per_model.into_iter().enumerate() {
                let rewards: Vec<f64> = samples.iter().map(|s| s.reward).collect();
                let pass_rate = if rewards.is_empty() {
                    0.0
                } else {
                    rewards.iter().sum::<f64>() / rewards.len() as f64
                };
                trainers[model].push(samples);
                while trainers[model].ready() {
                    progress.set_message(format!("training {}", models[model].name));
                    let Some(step) = trainers[model].train_step() else {
                        break;
                    };
                    let weights = trainers[model]
                        .inference_model()
                        .ok_or_else(|| anyhow!("trainer lost its model"))?;
                    let version = policy.update_weights(model, weights)?;
                    let line = json!({
                        "round": round,
                        "agent": models[model].name,
                        "weights_version": version,
                        "rollout_pass_rate": pass_rate,
                        "rollout_tokens": tokens,
                        "rollout_tokens_per_second": tokens as f64 / rollout_seconds.max(1e-9),
                        "metrics": step,
                    });
                    writeln!(metrics_file, "{line}")
                        .and_then(|_| metrics_file.flush())
                        .with_context(|| format!("writing {}", metrics_path.display()))?;
                    progress.suspend(|| eprintln!(
                        "round {round} {}: step {} loss {:+.4} kl {:.5} grad-norm {:.3} lr {:.2e} reward {:.3}",
                        models[model].name,
                        step.step,
                        step.loss,
                        step.kl,
                        step.grad_norm,
                        step.lr,
                        step.mean_reward
                    ));
                }
            }
            for i in 0..models.len() {
                let export = ExportInfo {
                    config: &text[i].config,
                    tokenizer: text[i].tokenizer.as_ref(),
                    template: text[i].template.as_ref(),
                };
                let state = json!({
                    "round": round,
                    "next_problem": next_problem,
                    "pass_rate_before": before[i],
                });
                save_checkpoint(&checkpoint_dir(i), &trainers[i], &export, state)?;
            }
            progress.inc(1);
        }
        progress.finish_and_clear();

        let after = evaluate(
            &mut policy,
            &models,
            &held_out,
            &eval_params,
            &rollout_params,
            &sandbox,
            &config,
        )?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "\n{} on MBPP ({} train problems, {} held-out test problems), {:.0} s",
            algorithm_name(config.algorithm),
            train.len(),
            held_out.len(),
            seconds
        );
        println!("| agent | updates | held-out pass rate before | after |");
        println!("|---|---|---|---|");
        let mut rows = Vec::new();
        for (i, m) in models.iter().enumerate() {
            println!(
                "| {} | {} | {:.1}% | {:.1}% |",
                m.name,
                trainers[i].step,
                100.0 * before[i],
                100.0 * after[i]
            );
            rows.push(json!({
                "agent": m.name,
                "updates": trainers[i].step,
                "left_over_samples": trainers[i].buffered(),
                "pass_rate_before": before[i],
                "pass_rate_after": after[i],
            }));
        }
        let summary = json!({
            "algorithm": algorithm_name(config.algorithm),
            "train_problems": train.len(),
            "held_out_problems": held_out.len(),
            "wall_seconds": seconds,
            "agents": rows,
        });
        let path = config.out.join("summary.json");
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", config.out.display());
        Ok(())
    }
}

fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Grpo => "grpo",
        Algorithm::Mars2 => "mars2",
        Algorithm::Mars2Heter => "mars2-heter",
    }
}

fn trainer_config(config: &TrainConfig) -> TrainerConfig {
    let t = &config.train;
    let steps_per_round = (config.train.problems_per_round * config.search.budget)
        .div_ceil(t.train_batch.max(1))
        .max(1);
    TrainerConfig {
        schedule: LrSchedule {
            peak: t.lr,
            warmup_fraction: t.warmup_fraction,
            total_steps: steps_per_round * t.rounds,
            floor_fraction: t.floor_fraction,
        },
        train_batch: t.train_batch,
        grad_clip: t.grad_clip,
        loss: LossConfig {
            kind: if t.loss == "grpo" {
                LossKind::Grpo
            } else {
                LossKind::Gspo
            },
            clip: t.clip,
            kl_beta: t.kl_beta,
            ..LossConfig::default()
        },
    }
}

/// Grows one training tree per problem (all tests guide; the tree always reaches its budget).
fn rollout<B: Backend>(
    policy: &EnginePolicy<B>,
    team: &[AgentSpec],
    problems: &[&Problem],
    sandbox: &Sandbox,
    config: &TrainConfig,
    round: u64,
) -> Result<Vec<Tree>> {
    let method = match config.algorithm {
        Algorithm::Grpo => Method::Sample,
        Algorithm::Mars2 | Algorithm::Mars2Heter => Method::Abmcts,
    };
    let mut search = SearchConfig::for_training(method, config.search.budget);
    search.seed = config.seed.wrapping_mul(1_000_003).wrapping_add(round);
    search.context = config
        .search
        .context
        .parse()
        .map_err(|e: String| anyhow!("search.context: {e}"))?;
    search.agent_choice = config
        .search
        .agent_choice
        .parse()
        .map_err(|e: String| anyhow!("search.agent_choice: {e}"))?;
    let ctx = SearchContext {
        config: &search,
        team,
        policy,
        sandbox,
        scorer: None,
    };
    ctx.validate()?;
    collect(&ctx, problems, config.search.concurrency)
        .map(|runs| runs.into_iter().map(|r| r.tree).collect())
}

/// Runs `problems` and returns their runs in order, or the first error.
fn collect(
    ctx: &SearchContext<'_>,
    problems: &[&Problem],
    concurrency: usize,
) -> Result<Vec<ProblemRun>> {
    let results: Mutex<Vec<Option<mars2_search::Result<ProblemRun>>>> =
        Mutex::new((0..problems.len()).map(|_| None).collect());
    run_problems(ctx, problems, 0, concurrency, &|_| {}, &|i, r| {
        if let Ok(mut v) = results.lock() {
            v[i] = Some(r);
        }
    });
    results
        .into_inner()
        .map_err(|_| anyhow!("results lock poisoned"))?
        .into_iter()
        .map(|r| {
            r.ok_or_else(|| anyhow!("a problem did not finish"))?
                .map_err(Into::into)
        })
        .collect()
}

/// Held-out pass rate of each model: `eval.samples` fresh answers per problem, judged on the
/// hidden tests.
fn evaluate<B: Backend>(
    policy: &mut EnginePolicy<B>,
    models: &[ModelArg],
    problems: &[Problem],
    eval_params: &SamplingParams,
    rollout_params: &SamplingParams,
    sandbox: &Sandbox,
    config: &TrainConfig,
) -> Result<Vec<f64>> {
    let mut rates = Vec::new();
    let refs: Vec<&Problem> = problems.iter().collect();
    for (i, m) in models.iter().enumerate() {
        policy.set_sampling(i, eval_params.clone())?;
        let team = [AgentSpec::new(m.name.clone(), i)];
        let mut search = SearchConfig::for_eval(Method::Sample, config.eval.samples.max(1));
        search.stop_on_pass = false;
        search.seed = config.seed;
        let ctx = SearchContext {
            config: &search,
            team: &team,
            policy: &*policy,
            sandbox,
            scorer: None,
        };
        eprintln!(
            "evaluating {} on {} held-out problems",
            m.name,
            problems.len()
        );
        let runs = collect(
            &ctx,
            &refs,
            config.search.concurrency.max(problems.len().min(16)),
        )?;
        let (passed, total) = runs
            .iter()
            .flat_map(|r| r.tree.generated())
            .fold((0, 0), |(p, t), n| (p + n.passes_hidden() as usize, t + 1));
        rates.push(if total == 0 {
            0.0
        } else {
            passed as f64 / total as f64
        });
        policy.set_sampling(i, rollout_params.clone())?;
    }
    Ok(rates)
}
