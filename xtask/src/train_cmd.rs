//! `cargo xtask train`: the project's main job. Reads the config, fetches the agents' models
//! and MBPP's splits, starts the sandbox, runs [`mars2_rl::training::train_on`] with a
//! progress bar over its events, then draws the plots and prints the before/after table.
//! The run directory holds `config.toml`, `metrics.jsonl`, `rollouts.jsonl`, `plots/*.png`,
//! `summary.json` and per-agent checkpoints.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_engine::DeviceSpec;
use mars2_rl::parallel::Parallel;
use mars2_rl::training::{train_on, TrainConfig, TrainEvent, TrainJob, TrainSummary};
use mars2_sandbox::{SandboxConfig, Split};
use mars2_search::intervals::Interval;

use crate::benchmark::{load_benchmark, Benchmark};
use crate::judging::start_sandbox;
use crate::kill_point::kill_point;
use crate::parallel_args::ParallelArgs;
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
    /// The device to run on, with an optional index (`cpu`, `cuda:1`, `wgpu:0`); overrides
    /// the config's `device`.
    #[arg(long, conflicts_with = "devices")]
    pub device: Option<DeviceSpec>,
    #[command(flatten)]
    pub parallel: ParallelArgs,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::default(),
    };
    if let Some(out) = &args.out {
        config.out = out.clone();
    }
    if let Some(device) = args.device {
        config.device = device;
    }
    let parallel = args.parallel.parallel()?;
    train(config, args.resume, args.require_isolation, parallel)?;
    Ok(())
}

/// Runs training as `config` says, with a progress bar, then draws the plots and prints the
/// before/after table (`cargo xtask compare` runs its training settings through here too).
pub fn train(
    mut config: TrainConfig,
    resume: bool,
    require_isolation: bool,
    parallel: Parallel,
) -> Result<TrainSummary> {
    config.device = parallel.first_device(config.device);
    config.validate()?;
    let sandbox = start_sandbox(SandboxConfig::default(), require_isolation)?;
    let agents = resolve_models(&config.agents)?;
    let mbpp = Benchmark::Mbpp;
    let job = TrainJob {
        train: load_benchmark(&mbpp, Split::Train)?,
        held_out: load_benchmark(&mbpp, Split::Test)?,
        agents,
        sandbox,
        resume,
        config: config.clone(),
        parallel: parallel.clone(),
    };
    match (&parallel.local_devices, &parallel.nodes) {
        (_, Some(nodes)) => eprintln!(
            "training on {} as node {} of {} ({} peers in all)",
            parallel
                .local_devices
                .as_ref()
                .map_or(config.device.to_string(), ToString::to_string),
            nodes.node_id,
            nodes.nodes,
            parallel.world()
        ),
        (Some(devices), None) => eprintln!("training on {devices} ({} peers)", devices.len()),
        (None, None) => eprintln!("training on {}", config.device),
    }
    let progress = ProgressBar::new(config.train.rounds as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] round {pos}/{len} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    progress.enable_steady_tick(std::time::Duration::from_millis(500));
    let status = Mutex::new(Status::default());
    let summary = train_on(job, &|event: TrainEvent<'_>| {
        show(&progress, &status, event)
    })?;
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
    Ok(summary)
}

/// What the run is doing now, shown as the progress bar's message: the rollout, the held-out
/// evaluation and the learners work at the same time.
#[derive(Default)]
struct Status {
    rollout: String,
    held_out: String,
    training: String,
}

impl Status {
    fn message(&self) -> String {
        [&self.rollout, &self.held_out, &self.training]
            .into_iter()
            .filter(|part| !part.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

/// A status part counting `done` of `total` under `label`; empty once all are done.
fn counting(label: &str, done: usize, total: usize) -> String {
    if done == total {
        String::new()
    } else {
        format!("{label} {done}/{total}")
    }
}

/// Shows one event of the run on the progress bar (and stops the process at a kill point
/// named by `MARS2_KILL_AT`, for the resume tests). Events come from several threads.
fn show(progress: &ProgressBar, status: &Mutex<Status>, event: TrainEvent<'_>) {
    let say = |line: String| progress.suspend(|| eprintln!("{line}"));
    let set = |change: &dyn Fn(&mut Status)| {
        if let Ok(mut status) = status.lock() {
            change(&mut status);
            progress.set_message(status.message());
        }
    };
    match event {
        TrainEvent::Loading { agents } => say(format!("loading {agents} agent(s)")),
        TrainEvent::NoCheckpoint => say("no complete checkpoint yet; starting from round 0".into()),
        TrainEvent::Resumed { next_round } => {
            progress.set_position(next_round as u64);
            say(format!("resuming at round {next_round}"));
        }
        TrainEvent::Evaluating { agents, problems } => {
            say(format!(
                "evaluating {agents} agent(s) on {problems} held-out problems"
            ));
            set(&|s| s.held_out = "held-out evaluation".into());
        }
        TrainEvent::HeldOutJudged { done, total } => {
            if done == total || done % (total / 4).max(1) == 0 {
                say(format!("held-out answers judged: {done}/{total}"));
            }
            set(&|s| s.held_out = counting("held-out", done, total));
        }
        TrainEvent::RoundStarted { .. } => {}
        TrainEvent::TreeGrown { round, done, total } => {
            say(format!("round {round}: tree {done}/{total} grown"));
            set(&|s| s.rollout = counting(&format!("round {round} trees"), done, total));
        }
        TrainEvent::RolloutGrown { round, .. } => kill_point("rollout", round),
        TrainEvent::WaitingForEvaluation { .. } => {}
        TrainEvent::Updating { agent, .. } => set(&|s| s.training = format!("training {agent}")),
        TrainEvent::Updated {
            round,
            agent,
            metrics: step,
            ..
        } => {
            set(&|s| s.training.clear());
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
        TrainEvent::Exporting { agent } => say(format!("writing the trained {agent}")),
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
        "| agent | updates | held-out pass rate before [95% CI] | after [95% CI] | change [95% CI] | \
         not judged (grader failed) |"
    );
    println!("|---|---|---|---|---|---|");
    for a in &summary.agents {
        let (b, f) = (&a.held_out_before, &a.held_out_after);
        println!(
            "| {} | {} | {} ({}/{}) | {} ({}/{}) | {} | {} / {} |",
            a.agent,
            a.updates,
            percent_with_interval(b.pass_rate(), a.interval_before),
            b.passed,
            b.judged,
            percent_with_interval(f.pass_rate(), a.interval_after),
            f.passed,
            f.judged,
            a.change
                .map_or("-".into(), |c| percent_with_interval(c.estimate, Some(c))),
            b.sandbox_failures,
            f.sandbox_failures,
        );
    }
    println!();
    for a in &summary.agents {
        match a.change {
            Some(change) if change.excludes_zero() => println!(
                "{}: the pass rate {} by {:+.1} points; the interval excludes no change.",
                a.agent,
                if change.estimate > 0.0 {
                    "rose"
                } else {
                    "fell"
                },
                100.0 * change.estimate
            ),
            Some(change) if change.low == 0.0 && change.high == 0.0 => println!(
                "{}: no held-out problem changed its verdict: this run shows no difference.",
                a.agent
            ),
            Some(change) => println!(
                "{}: {:+.1} points, but the interval [{:+.1}, {:+.1}] includes no change: this \
                 run shows no difference.",
                a.agent,
                100.0 * change.estimate,
                100.0 * change.low,
                100.0 * change.high
            ),
            None => println!("{}: nothing was judged; no change can be read.", a.agent),
        }
    }
}

/// `12.5% [3.1, 40.2]`: a rate with its interval, in percent.
fn percent_with_interval(value: f64, interval: Option<Interval>) -> String {
    match interval {
        Some(i) => format!(
            "{:.1}% [{:.1}, {:.1}]",
            100.0 * value,
            100.0 * i.low,
            100.0 * i.high
        ),
        None => format!("{:.1}%", 100.0 * value),
    }
}
