//! `cargo xtask train`: the project's main job. Evaluates the agents on held-out MBPP
//! problems, then alternates rollout (search trees over MBPP train problems, judged in the
//! sandbox) and per-agent updates (shaping, tree-group advantages, GSPO/GRPO, AdamW), hands
//! new weights to the engine after every step, evaluates again and prints a before/after
//! table. With `train.max_staleness` ≥ 1 the next round's trees grow while the current
//! round trains. Writes `metrics.jsonl`, `rollouts.jsonl`, `plots/*.png`, `summary.json` and
//! per-agent checkpoints to the run directory.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_engine::{run_on, BackendTask, DeviceKind, EngineConfig, SamplingParams};
use mars2_models::{load_model, ChatTemplate, TextTokenizer};
use mars2_rl::checkpoint::{load_checkpoint, save_checkpoint, ExportInfo};
use mars2_rl::schedule::LrSchedule;
use mars2_rl::{AgentTrainer, LossConfig, LossKind, TrainerConfig};
use mars2_sandbox::{Problem, Sandbox, SandboxConfig, Split};
use serde_json::json;

use crate::benchmark::{load_benchmark, Benchmark};
use crate::judging::start_sandbox;
use crate::kill_point::kill_point;
use crate::plots::write_training_plots;
use crate::team::{load_policy, resolve_models, team_of, ModelArg};
use crate::train_checkpoints::RunCheckpoints;
use crate::train_config::{Algorithm, TrainConfig};
use crate::train_rollout::{append_rollouts, evaluate, rollout, HeldOut, ROLLOUTS_FILE};
use crate::train_round::{
    keep_rounds_before, round_problems, RoundContext, RoundRollout, METRICS_FILE,
};

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
    /// Refuse to train unless every protection of the sandbox is in force (on by default: a
    /// policy rewarded for escaping its grader learns to escape it); `--require-isolation
    /// false` accepts weaker isolation with a warning.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub require_isolation: bool,
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
    let sandbox = start_sandbox(SandboxConfig::default(), args.require_isolation)?;
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
            sandbox,
        },
    )?
}

struct TrainTask {
    config: TrainConfig,
    models: Vec<ModelArg>,
    train: Vec<Problem>,
    held_out: Vec<Problem>,
    resume: bool,
    sandbox: Sandbox,
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
            sandbox,
        } = self;
        let started = Instant::now();
        let rollout_params = SamplingParams {
            temperature: config.sampling.temperature,
            top_p: config.sampling.top_p,
            max_new_tokens: config.sampling.max_new_tokens,
            stop_strings: config.sampling.stop_strings.clone(),
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
        // The rollout policy takes each update's f32 weights: it is never quantized.
        let policy = load_policy::<B>(&models, engine, &rollout_params, None, &device)?;
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

        let checkpoints = RunCheckpoints::new(&config.out);
        let resume_from = if resume { checkpoints.latest()? } else { None };
        if resume && resume_from.is_none() {
            eprintln!(
                "{}: no complete checkpoint yet; starting from round 0",
                config.out.display()
            );
        }
        if resume_from.is_none() {
            checkpoints.clear()?;
        }
        let mut first_round = 0;
        let mut before = Vec::new();
        if let Some(round) = resume_from {
            first_round = round + 1;
            for (i, trainer) in trainers.iter_mut().enumerate() {
                let dir = checkpoints.agent_dir(round, &models[i].name);
                let state = load_checkpoint(&dir, trainer, &device)?;
                before.push(
                    serde_json::from_value(state["held_out_before"].clone())
                        .with_context(|| format!("{}: no held-out figures", dir.display()))?,
                );
                if trainer.step > 0 {
                    let weights = trainer
                        .inference_model()
                        .ok_or_else(|| anyhow!("trainer lost its model"))?;
                    trainer.weights_version =
                        policy.update_weights_as(i, weights, trainer.step as u64)?;
                }
            }
            eprintln!("resuming at round {first_round}");
        }
        let metrics_path = config.out.join(METRICS_FILE);
        let rollouts_path = config.out.join(ROLLOUTS_FILE);
        for path in [&metrics_path, &rollouts_path] {
            keep_rounds_before(path, first_round)?;
        }
        let mut metrics_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .with_context(|| format!("opening {}", metrics_path.display()))?;
        let progress = ProgressBar::new(config.train.rounds as u64);
        progress.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] round {pos}/{len} · {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        progress.set_position(first_round as u64);
        let rounds = first_round..config.train.rounds;
        let grow = |round: usize| -> Result<RoundRollout> {
            let problems = round_problems(&train, config.train.problems_per_round, round);
            let started = Instant::now();
            let runs = rollout(&policy, &team, &problems, &sandbox, &config, round as u64)?;
            Ok(RoundRollout {
                round,
                runs,
                seconds: started.elapsed().as_secs_f64(),
            })
        };
        std::thread::scope(|scope| -> Result<()> {
            // A fresh run evaluates the starting weights beside the first rollout (the engine
            // batches both); the first update waits for that evaluation.
            let mut before_eval = resume_from.is_none().then(|| {
                let (policy, models, held_out) = (&policy, &models, &held_out);
                let (eval_params, sandbox, config) = (&eval_params, &sandbox, &config);
                scope
                    .spawn(move || evaluate(policy, models, held_out, eval_params, sandbox, config))
            });
            let mut join_before = |before: &mut Vec<HeldOut>| -> Result<()> {
                if let Some(handle) = before_eval.take() {
                    *before = handle
                        .join()
                        .map_err(|_| anyhow!("the evaluation thread panicked"))??;
                }
                Ok(())
            };
            // With max_staleness = k ≥ 1, a producer grows trees up to k rounds ahead of
            // training (k − 1 finished rounds queued plus the one being grown).
            let ahead = if config.train.max_staleness > 0 {
                let (tx, rx) = sync_channel(config.train.max_staleness - 1);
                let rounds = rounds.clone();
                let grow = &grow;
                scope.spawn(move || {
                    for round in rounds {
                        let grown = grow(round);
                        let failed = grown.is_err();
                        if tx.send(grown).is_err() || failed {
                            break;
                        }
                    }
                });
                Some(rx)
            } else {
                None
            };
            for round in rounds.clone() {
                progress.set_message("rollout");
                let grown = match &ahead {
                    Some(rx) => rx
                        .recv()
                        .map_err(|_| anyhow!("the rollout thread stopped"))??,
                    None => grow(round)?,
                };
                kill_point("rollout", round);
                append_rollouts(&config.out, round, &grown.runs)?;
                progress.set_message("held-out evaluation");
                join_before(&mut before)?;
                let round_metrics = RoundContext {
                    config: &config,
                    models: &models,
                    team: &team,
                    policy: &policy,
                    progress: &progress,
                };
                let mut updates = 0;
                round_metrics.train(grown, &mut trainers, &mut |line| {
                    writeln!(metrics_file, "{line}")
                        .and_then(|_| metrics_file.flush())
                        .with_context(|| format!("writing {}", metrics_path.display()))?;
                    updates += 1;
                    if updates == 1 {
                        kill_point("update", round);
                    }
                    Ok(())
                })?;
                for i in 0..models.len() {
                    let export = ExportInfo {
                        config: &text[i].config,
                        tokenizer: text[i].tokenizer.as_ref(),
                        template: text[i].template.as_ref(),
                    };
                    let state = json!({
                        "round": round,
                        "held_out_before": before[i],
                    });
                    save_checkpoint(
                        &checkpoints.agent_dir(round, &models[i].name),
                        &trainers[i],
                        &export,
                        state,
                    )?;
                    if i == 0 {
                        kill_point("checkpoint", round);
                    }
                }
                checkpoints.commit(round)?;
                progress.inc(1);
            }
            join_before(&mut before)
        })?;
        progress.finish_and_clear();
        match write_training_plots(&metrics_path, &config.out.join("plots")) {
            Ok(paths) => eprintln!("wrote {} plots", paths.len()),
            Err(e) => eprintln!("warning: no plots: {e:#}"),
        }

        let after = evaluate(&policy, &models, &held_out, &eval_params, &sandbox, &config)?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "\n{} on MBPP ({} train problems, {} held-out test problems), {:.0} s",
            algorithm_name(config.algorithm),
            train.len(),
            held_out.len(),
            seconds
        );
        println!(
            "| agent | updates | held-out pass rate before | after | not judged (grader failed) |"
        );
        println!("|---|---|---|---|---|");
        let mut rows = Vec::new();
        for (i, m) in models.iter().enumerate() {
            println!(
                "| {} | {} | {:.1}% ({}/{}) | {:.1}% ({}/{}) | {} / {} |",
                m.name,
                trainers[i].step,
                100.0 * before[i].pass_rate(),
                before[i].passed,
                before[i].judged,
                100.0 * after[i].pass_rate(),
                after[i].passed,
                after[i].judged,
                before[i].sandbox_failures,
                after[i].sandbox_failures,
            );
            rows.push(json!({
                "agent": m.name,
                "updates": trainers[i].step,
                "left_over_samples": trainers[i].buffered(),
                "pass_rate_before": before[i].pass_rate(),
                "pass_rate_after": after[i].pass_rate(),
                "held_out_before": before[i],
                "held_out_after": after[i],
            }));
        }
        let summary = json!({
            "algorithm": algorithm_name(config.algorithm),
            "train_problems": train.len(),
            "held_out_problems": held_out.len(),
            "wall_seconds": seconds,
            "isolation": sandbox.isolation(),
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
    // Each agent gets about its share of the round's nodes.
    let steps_per_round = (config.train.problems_per_round * config.search.budget)
        .div_ceil(t.train_batch.max(1) * config.agents.len().max(1))
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
        // Greedy rollouts (temperature 0) report temperature-1 log-probs.
        temperature: if config.sampling.temperature > 0.0 {
            config.sampling.temperature as f64
        } else {
            1.0
        },
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
