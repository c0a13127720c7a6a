//! The mars2 command line, run as `cargo xtask <command>`.

mod bench_cmd;
mod bench_kernels;
mod bench_train_step;
mod bench_vs_llama_cpp;
mod benchmark;
mod cmd_sandbox;
mod compare_cmd;
mod compare_train;
mod error_text;
mod eval_cmd;
mod fetch_model;
mod generate_cmd;
mod gvendi_eval;
mod judging;
mod kill_point;
mod logits_cmd;
mod model_task;
mod parallel_args;
mod plot_cmd;
mod plots;
mod rm_cmd;
mod sft_cmd;
mod team;
mod test_cmd;
mod train_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "MARS²: multi-agent tree search and RL for code generation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download a registered model, verify its checksum, cache it and print its path.
    FetchModel(fetch_model::FetchModelArgs),
    /// Generate continuations of prompts.
    Generate(generate_cmd::GenerateArgs),
    /// Write the logits of a token sequence to a safetensors file.
    Logits(logits_cmd::LogitsArgs),
    /// Throughput benchmarks that print a table.
    Bench(bench_cmd::BenchArgs),
    /// Judge solutions against a benchmark's tests in the sandbox.
    Sandbox(cmd_sandbox::SandboxArgs),
    /// The main job: train the agents by tree-search RL on MBPP and compare before/after.
    Train(train_cmd::TrainArgs),
    /// Grow search trees on a benchmark and write summary.json, trees.jsonl, report.html.
    Eval(eval_cmd::EvalArgs),
    /// Run a grid of eval settings on the same problems and report each with 95 % intervals
    /// and every pair's paired difference (comparison.json, report.html, plots).
    Compare(compare_cmd::CompareArgs),
    /// Redraw a training run's plots/*.png from its metrics.jsonl.
    Plot(plot_cmd::PlotArgs),
    /// Train the T+ reward model from search trees (rollouts.jsonl, trees.jsonl).
    TrainRm(rm_cmd::TrainRmArgs),
    /// Fine-tune a model on MBPP reference solutions (makes smollm2-135m-mbpp-sft).
    Sft(sft_cmd::SftArgs),
    /// Fetch the reference model, then run every test of the workspace.
    Test(test_cmd::TestArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {}", error_text::error_text(&e));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::FetchModel(args) => fetch_model::run(args),
        Command::Generate(args) => generate_cmd::run(args),
        Command::Logits(args) => logits_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Test(args) => test_cmd::run(args),
        Command::Sandbox(args) => cmd_sandbox::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Sft(args) => sft_cmd::run(args),
        Command::TrainRm(args) => rm_cmd::run(args),
        Command::Plot(args) => plot_cmd::run(args),
        Command::Compare(args) => compare_cmd::run(args),
    }
}
