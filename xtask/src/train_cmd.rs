//! `cargo xtask train`: the project's main job. Reads the config, fetches the agents' models
//! and MBPP's splits, starts the sandbox, runs [`mars2_rl::training::train_on`] with a
//! progress bar over its events, then draws the plots and prints the before/after table.
//! The run directory holds `config.toml`, `metrics.jsonl`, `rollouts.jsonl`, `plots/*.png`,
//! `summary.json` and per-agent checkpoints.

use std::path::PathBuf;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_rl::training::{train_on, TrainConfig, TrainEvent, TrainJob, TrainSummary};
use mars2_sandbox::{SandboxConfig, Split};

use crate::benchmark::{load_benchmark, Benchmark};
use crate::judging::start_sandbox;
use crate::kill_point::kill_point;
use crate::plots::write_training_plots;
use crate::team::resolve_models;

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
    let sandbox = start_sandbox(SandboxConfig::default(), args.require_isolation)?;
    let agents = resolve_models(&config.agents)?;
    let mbpp = Benchmark::Mbpp;
    let job = TrainJob {
        train: load_benchmark(&mbpp, Split::Train)?,
        held_out: load_benchmark(&mbpp, Split::Test)?,
        agents,
        sandbox,
        resume: args.resume,
        config: config.clone(),
    };
    eprintln!("training on {}", config.device);
    let progress = ProgressBar::new(config.train.rounds as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] round {pos}/{len} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let summary = train_on(job, &mut |event: TrainEvent<'_>| show(&progress, event))?;
    progress.finish_and_clear();
    match write_training_plots(&config.out.join("metrics.jsonl"), &config.out.join("plots")) {
        Ok(paths) => eprintln!("wrote {} plots", paths.len()),
        Err(e) => eprintln!("warning: no plots: {e:#}"),
    }
    print_table(&summary);
    for a in &summary.agents {
        println!("{}: trained model in {}", a.agent, a.model.display());
    }
    println!("wrote {}", config.out.display());
    Ok(())
}

/// Shows one event of the run on the progress bar (and stops the process at a kill point
/// named by `MARS2_KILL_AT`, for the resume tests).
fn show(progress: &ProgressBar, event: TrainEvent<'_>) {
    let say = |line: String| progress.suspend(|| eprintln!("{line}"));
    match event {
        TrainEvent::Loading { agents } => say(format!("loading {agents} agent(s)")),
        TrainEvent::NoCheckpoint => say("no complete checkpoint yet; starting from round 0".into()),
        TrainEvent::Resumed { next_round } => {
            progress.set_position(next_round as u64);
            say(format!("resuming at round {next_round}"));
        }
        TrainEvent::Evaluating { agents, problems } => say(format!(
            "evaluating {agents} agent(s) on {problems} held-out problems"
        )),
        TrainEvent::RoundStarted { .. } => progress.set_message("rollout"),
        TrainEvent::RolloutGrown { round, .. } => kill_point("rollout", round),
        TrainEvent::WaitingForEvaluation { .. } => progress.set_message("held-out evaluation"),
        TrainEvent::Updating { agent, .. } => progress.set_message(format!("training {agent}")),
        TrainEvent::Updated {
            round,
            agent,
            metrics: step,
            ..
        } => {
            say(format!(
                "round {round} {agent}: step {} loss {:+.4} kl {:.5} grad-norm {:.3} lr {:.2e} \
                 reward {:.3} staleness {:.1}",
                step.step,
                step.loss,
                step.kl,
                step.grad_norm,
                step.lr,
                step.mean_reward,
                step.staleness_mean
            ));
            kill_point("update", round);
        }
        TrainEvent::CheckpointWritten { round, .. } => kill_point("checkpoint", round),
        TrainEvent::RoundCommitted { .. } => progress.inc(1),
        TrainEvent::Finished { .. } => {}
    }
}

fn print_table(summary: &TrainSummary) {
    println!(
        "\n{} on MBPP ({} train problems, {} held-out test problems), {:.0} s",
        summary.algorithm.name(),
        summary.train_problems,
        summary.held_out_problems,
        summary.wall_seconds
    );
    println!(
        "| agent | updates | held-out pass rate before | after | not judged (grader failed) |"
    );
    println!("|---|---|---|---|---|");
    for a in &summary.agents {
        let (b, f) = (&a.held_out_before, &a.held_out_after);
        println!(
            "| {} | {} | {:.1}% ({}/{}) | {:.1}% ({}/{}) | {} / {} |",
            a.agent,
            a.updates,
            100.0 * b.pass_rate(),
            b.passed,
            b.judged,
            100.0 * f.pass_rate(),
            f.passed,
            f.judged,
            b.sandbox_failures,
            f.sandbox_failures,
        );
    }
}
