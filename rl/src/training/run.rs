//! The loop itself: [`train`] on a backend chosen by the caller, [`train_on`] on the device
//! the config names.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use mars2_engine::{run_on, BackendTask, EngineConfig, SamplingParams};
use mars2_models::{keep_stored_blocks, load_model, ChatTemplate, ModelConfig, TextTokenizer};
use mars2_sandbox::{Problem, Sandbox};
use mars2_search::{load_team_as, team_of, AgentModel, TeamWeights};
use serde_json::json;

use super::checkpoints::RunCheckpoints;
use super::config::{FrozenBase, TrainConfig};
use super::engine_weights::EngineWeights;
use super::error::{TrainError, TrainResult};
use super::gather::gather_trees;
use super::observer::{TrainEvent, TrainObserver};
use super::rollout::{append_rollouts, evaluate, rollout, ROLLOUTS_FILE};
use super::round::{keep_rounds_before, round_problems, RoundContext, RoundRollout, METRICS_FILE};
use super::summary::{pass_rate_change, AgentSummary, HeldOut, TrainSummary};
use crate::checkpoint::{export_model, load_checkpoint, save_checkpoint, ExportInfo};
use crate::parallel::{Parallel, PeerGroup};
use crate::schedule::LrSchedule;
use crate::{AgentTrainer, LossConfig, TrainerConfig};

/// Everything a training run needs besides its device.
pub struct TrainJob {
    /// The settings; `config.out` is the run directory.
    pub config: TrainConfig,
    /// The models to train, one per agent, in `config.agents`' order.
    pub agents: Vec<AgentModel>,
    /// Training problems (the first `config.data.train_problems` are used).
    pub train: Vec<Problem>,
    /// Held-out problems (the first `config.data.eval_problems` are used).
    pub held_out: Vec<Problem>,
    /// Judges every program of the run.
    pub sandbox: Sandbox,
    /// Continue the run in `config.out` from its last committed round instead of starting
    /// afresh (the config must be the one the run started with).
    pub resume: bool,
    /// Data-parallel peers: this process's devices and the other nodes (default: one peer on
    /// `config.device`).
    pub parallel: Parallel,
}

/// Runs `job` on the device `job.config.device` names (among the backends compiled in).
pub fn train_on(job: TrainJob, observer: &dyn TrainObserver) -> TrainResult<TrainSummary> {
    struct Task<'a> {
        job: TrainJob,
        observer: &'a dyn TrainObserver,
    }
    impl BackendTask for Task<'_> {
        type Output = TrainResult<TrainSummary>;
        fn run<B: Backend>(self, device: B::Device) -> Self::Output {
            train::<B>(self.job, &device, self.observer)
        }
    }
    let device = job.parallel.first_device(job.config.device);
    run_on(device, Task { job, observer })?
}

/// Tokenizer and chat template of a model, kept for its checkpoints.
struct TextSide {
    tokenizer: Option<TextTokenizer>,
    template: Option<ChatTemplate>,
    config: ModelConfig,
}

/// Trains `job.agents` on backend `B` (which must be an f32 backend) and returns the
/// before/after summary, also written to `summary.json` in the run directory. `device` is
/// this process's first device; with `job.parallel` naming more peers, each agent's learner
/// has a replica per local device and exchanges gradients with the other nodes, the round's
/// trees are grown in shards by the nodes and gathered, and node 0 alone writes the run's
/// files (which the other nodes read from the same path when resuming).
pub fn train<B: Backend>(
    job: TrainJob,
    device: &B::Device,
    observer: &dyn TrainObserver,
) -> TrainResult<TrainSummary> {
    let TrainJob {
        config,
        agents: models,
        mut train,
        mut held_out,
        sandbox,
        resume,
        parallel,
    } = job;
    config.validate()?;
    let writes = parallel.writes_files();
    if parallel.node_count() > 1 && config.train.max_staleness > 0 {
        return Err(TrainError::Config(
            "a multi-node run grows each round's trees before training on them: set \
             train.max_staleness = 0"
                .into(),
        ));
    }
    let peers = if parallel.is_distributed() {
        let devices = parallel.devices_of::<B>(device);
        Some(Arc::new(PeerGroup::<B>::start(&parallel, devices)?))
    } else {
        None
    };
    if models.len() != config.agents.len() {
        return Err(TrainError::Config(format!(
            "{} models given for {} agents in the config",
            models.len(),
            config.agents.len()
        )));
    }
    train.truncate(config.data.train_problems.max(1));
    held_out.truncate(config.data.eval_problems);
    if writes {
        prepare_run_dir(&config, resume)?;
    }
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
    observer.on_event(TrainEvent::Loading {
        agents: models.len(),
    });
    // Merged weights are dense f32 after each update, so the engine's starting weights are
    // too; with adapters on the fly the engine keeps each base as its checkpoint stores it.
    let on_the_fly = EngineWeights::<B>::adapters_on_the_fly(&config);
    let weights = if on_the_fly {
        TeamWeights::StoredWherePresent
    } else {
        TeamWeights::F32
    };
    let loaded_team = load_team_as::<B>(&models, engine, &rollout_params, weights, device)?;
    let policy = loaded_team.policy;
    let engine_weights = EngineWeights::new(on_the_fly.then_some(loaded_team.models));
    let team = team_of(&models, config.multi_role);
    let mut trainers = Vec::new();
    let mut text = Vec::new();
    for m in &models {
        let model_error = |source| TrainError::Model {
            path: m.path.clone(),
            source,
        };
        let mut loaded = load_model::<Autodiff<B>>(&m.path, device).map_err(model_error)?;
        if config.adapters().is_some() && config.train.frozen_base == FrozenBase::AsStored {
            keep_stored_blocks(&mut loaded.model, &loaded.source, &loaded.config)
                .map_err(model_error)?;
        }
        text.push(TextSide {
            tokenizer: loaded.tokenizer.clone(),
            template: loaded.chat_template.clone(),
            config: loaded.config.clone(),
        });
        let model = match config.adapters() {
            Some(lora) => loaded.model.with_adapters(lora),
            None => loaded.model,
        };
        let trainer = AgentTrainer::new(model, trainer_config(&config), device.clone());
        trainers.push(match &peers {
            Some(peers) => trainer.with_peers(peers.clone()),
            None => trainer,
        });
    }

    let checkpoints = RunCheckpoints::new(&config.out);
    let resume_from = if resume { checkpoints.latest()? } else { None };
    if resume && resume_from.is_none() {
        observer.on_event(TrainEvent::NoCheckpoint);
    }
    if resume_from.is_none() && writes {
        checkpoints.clear()?;
    }
    let mut first_round = 0;
    let mut before = Vec::new();
    if let Some(round) = resume_from {
        first_round = round + 1;
        for (i, trainer) in trainers.iter_mut().enumerate() {
            let dir = checkpoints.agent_dir(round, &models[i].name);
            let state = load_checkpoint(&dir, trainer, device)?;
            before.push(
                serde_json::from_value(state["held_out_before"].clone()).map_err(|e| {
                    TrainError::Resume {
                        path: dir.clone(),
                        message: format!("no held-out figures in its state: {e}"),
                    }
                })?,
            );
            if trainer.step > 0 {
                let weights = engine_weights.for_engine(i, &models[i].name, trainer)?;
                trainer.weights_version =
                    policy.update_weights_as(i, weights, trainer.step as u64)?;
            }
        }
        observer.on_event(TrainEvent::Resumed {
            next_round: first_round,
        });
    }
    let metrics_path = config.out.join(METRICS_FILE);
    let rollouts_path = config.out.join(ROLLOUTS_FILE);
    let mut metrics_file = if writes {
        for path in [&metrics_path, &rollouts_path] {
            keep_rounds_before(path, first_round)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|e| TrainError::io(&metrics_path, e))?;
        Some(file)
    } else {
        None
    };
    let rounds = first_round..config.train.rounds;
    let (node, nodes) = (parallel.node_id(), parallel.node_count());
    let grow = |round: usize| -> TrainResult<RoundRollout> {
        // Each node grows every `nodes`-th tree of the round (all of them on one node).
        let problems: Vec<&Problem> =
            round_problems(&train, config.train.problems_per_round, round)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % nodes == node)
                .map(|(_, p)| p)
                .collect();
        let started = Instant::now();
        let on_grown = |done: usize, total: usize| {
            observer.on_event(TrainEvent::TreeGrown { round, done, total });
        };
        let runs = rollout(
            &policy, &team, &problems, &sandbox, &config, round, &on_grown,
        )?;
        Ok(RoundRollout {
            round,
            runs,
            seconds: started.elapsed().as_secs_f64(),
        })
    };
    std::thread::scope(|scope| -> TrainResult<()> {
        // A fresh run evaluates the starting weights beside the first rollout (the engine
        // batches both); the first update waits for that evaluation.
        if resume_from.is_none() {
            observer.on_event(TrainEvent::Evaluating {
                agents: models.len(),
                problems: held_out.len(),
            });
        }
        let mut before_eval = resume_from.is_none().then(|| {
            let (policy, models, held_out) = (&policy, &models, &held_out);
            let (eval_params, sandbox, config) = (&eval_params, &sandbox, &config);
            scope.spawn(move || {
                evaluate(
                    policy,
                    models,
                    held_out,
                    eval_params,
                    sandbox,
                    config,
                    observer,
                )
            })
        });
        let mut join_before = |before: &mut Vec<HeldOut>| -> TrainResult<()> {
            if let Some(handle) = before_eval.take() {
                *before = handle
                    .join()
                    .map_err(|_| TrainError::Stopped("the evaluation thread panicked".into()))??;
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
            observer.on_event(TrainEvent::RoundStarted {
                round,
                rounds: config.train.rounds,
            });
            let grown = match &ahead {
                Some(rx) => rx
                    .recv()
                    .map_err(|_| TrainError::Stopped("the rollout thread stopped".into()))??,
                None => grow(round)?,
            };
            let grown = match &peers {
                Some(peers) if nodes > 1 => gather_trees(peers, grown)?,
                _ => grown,
            };
            observer.on_event(TrainEvent::RolloutGrown {
                round,
                trees: grown.runs.len(),
                seconds: grown.seconds,
            });
            if writes {
                append_rollouts(&config.out, round, &grown.runs)?;
            }
            if resume_from.is_none() && round == first_round {
                observer.on_event(TrainEvent::WaitingForEvaluation { round });
            }
            join_before(&mut before)?;
            let context = RoundContext {
                config: &config,
                models: &models,
                team: &team,
                policy: &policy,
                engine_weights: &engine_weights,
            };
            let mut write = |line: &serde_json::Value| -> TrainResult<()> {
                match metrics_file.as_mut() {
                    Some(file) => writeln!(file, "{line}")
                        .and_then(|_| file.flush())
                        .map_err(|e| TrainError::io(&metrics_path, e)),
                    None => Ok(()),
                }
            };
            context.train(grown, &mut trainers, &mut write, observer)?;
            if !writes {
                continue;
            }
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
                observer.on_event(TrainEvent::CheckpointWritten {
                    round,
                    agent: &models[i].name,
                });
            }
            checkpoints.commit(round)?;
            observer.on_event(TrainEvent::RoundCommitted { round });
        }
        join_before(&mut before)
    })?;

    let trained = checkpoints.latest()?.is_some();
    // Adapted learners' checkpoints hold only adapters: their merged models are written once.
    let exported = config.adapters().is_some() && trained;
    if exported && writes {
        for (i, m) in models.iter().enumerate() {
            observer.on_event(TrainEvent::Exporting { agent: &m.name });
            let export = ExportInfo {
                config: &text[i].config,
                tokenizer: text[i].tokenizer.as_ref(),
                template: text[i].template.as_ref(),
            };
            export_model(&exported_model_dir(&config, &m.name), &trainers[i], &export)?;
        }
    }
    observer.on_event(TrainEvent::Evaluating {
        agents: models.len(),
        problems: held_out.len(),
    });
    let after = evaluate(
        &policy,
        &models,
        &held_out,
        &eval_params,
        &sandbox,
        &config,
        observer,
    )?;
    let summary = TrainSummary {
        algorithm: config.algorithm,
        train_problems: train.len(),
        held_out_problems: held_out.len(),
        wall_seconds: started.elapsed().as_secs_f64(),
        isolation: sandbox.isolation(),
        agents: models
            .iter()
            .enumerate()
            .map(|(i, m)| AgentSummary {
                agent: m.name.clone(),
                updates: trainers[i].step,
                left_over_samples: trainers[i].buffered(),
                pass_rate_before: before[i].pass_rate(),
                pass_rate_after: after[i].pass_rate(),
                interval_before: before[i].pass_rate_interval(),
                interval_after: after[i].pass_rate_interval(),
                change: pass_rate_change(&before[i], &after[i]),
                held_out_before: before[i].clone(),
                held_out_after: after[i].clone(),
                model: if exported {
                    exported_model_dir(&config, &m.name)
                } else if trained {
                    checkpoints.latest_agent_dir(&m.name).join("model")
                } else {
                    m.path.clone()
                },
            })
            .collect(),
    };
    if writes {
        let path = config.out.join("summary.json");
        let text = serde_json::to_string_pretty(&summary).map_err(|e| TrainError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))?;
    }
    observer.on_event(TrainEvent::Finished { summary: &summary });
    Ok(summary)
}

/// Where a run with adapters writes agent `agent`'s merged model when it ends.
fn exported_model_dir(config: &TrainConfig, agent: &str) -> std::path::PathBuf {
    config.out.join("models").join(agent)
}

/// Creates the run directory and keeps the config there; a resumed run must have been
/// started with the same config.
fn prepare_run_dir(config: &TrainConfig, resume: bool) -> TrainResult<()> {
    std::fs::create_dir_all(&config.out).map_err(|e| TrainError::io(&config.out, e))?;
    let saved = config.out.join("config.toml");
    if resume {
        let old = TrainConfig::from_file(&saved).map_err(|e| TrainError::Resume {
            path: saved.clone(),
            message: format!("resuming needs the run directory of an earlier run ({e})"),
        })?;
        if &old != config {
            return Err(TrainError::Resume {
                path: saved,
                message: "the run was started with other settings; resume with the same config"
                    .into(),
            });
        }
        Ok(())
    } else {
        std::fs::write(&saved, config.to_toml()?).map_err(|e| TrainError::io(&saved, e))
    }
}

/// Each learner's settings: its share of the round's nodes sets the schedule's length.
fn trainer_config(config: &TrainConfig) -> TrainerConfig {
    let t = &config.train;
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
            kind: t.loss,
            clip: t.clip,
            kl_beta: t.kl_beta,
            ..LossConfig::default()
        },
    }
}
