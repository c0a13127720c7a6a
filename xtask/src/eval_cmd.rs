//! `cargo xtask eval`: the arguments of [`mars2_search::evaluation::evaluate`], a progress
//! bar over its problems, G-Vendi on request, and the summary printed. The run directory
//! (`--out`) gets `summary.json`, `trees.jsonl` and `report.html`; rerunning with the same
//! `--out` and settings resumes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_engine::{run_on, BackendTask, DeviceSpec};
use mars2_sandbox::{SandboxConfig, Split};
use mars2_search::config::{AgentChoice, ContextMode, Method, PromptStyle};
use mars2_search::evaluation::{evaluate, EvalConfig, EvalEvent, EvalJob};
use mars2_search::records::{write_atomically, SUMMARY_FILE};
use mars2_search::{Scorer, Summary};
use serde_json::json;

use crate::benchmark::{load_benchmark, parse_split, Benchmark};
use crate::gvendi_eval::run_g_vendi;
use crate::judging::start_sandbox;
use crate::rm_cmd::load_reward_model;
use crate::team::resolve_models;

#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// humaneval, mbpp, mbpp-plus (EvalPlus's MBPP+ tasks, base tests) or lcb:FILE
    /// (LiveCodeBench code_generation_lite JSONL).
    #[arg(long)]
    pub benchmark: Benchmark,
    /// A registered model name or a checkpoint (HF directory or .gguf); repeat for a team.
    #[arg(long = "agent", required = true, value_name = "MODEL")]
    pub agents: Vec<String>,
    /// sample, chain, abmcts or tplus.
    #[arg(long)]
    pub method: Method,
    /// Nodes per tree.
    #[arg(long, default_value_t = 8)]
    pub budget: usize,
    /// Fresh samples per problem and generator agent for Pass@1 (0: skip).
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Only the first P problems.
    #[arg(long, value_name = "P")]
    pub limit: Option<usize>,
    /// cpu, wgpu or cuda (among those compiled in), or wgpu-f16, cuda-f16, cuda-bf16.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory (created; an existing one is resumed).
    #[arg(long)]
    pub out: PathBuf,
    /// MBPP split to evaluate on.
    #[arg(long, default_value = "test", value_parser = parse_split)]
    pub split: Split,
    /// Refinement context: parent or path.
    #[arg(long, default_value = "parent")]
    pub context: ContextMode,
    /// thompson, ucb1 or stack.
    #[arg(long, default_value = "thompson")]
    pub agent_choice: AgentChoice,
    /// Each model plays two agents: a generator (fresh solutions) and a refiner.
    #[arg(long)]
    pub multi_role: bool,
    /// κ of the depth-guided GEN scaling (default: 0.5 for tplus, 0 otherwise).
    #[arg(long)]
    pub kappa: Option<f64>,
    /// Keep growing a tree after a node passes the public tests.
    #[arg(long)]
    pub no_stop_on_pass: bool,
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 384)]
    pub max_new_tokens: usize,
    /// Trees grown at once (their requests are batched by the engine).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// KV cache memory for all agents, MiB.
    #[arg(long, default_value_t = 1024)]
    pub kv_cache_mb: usize,
    /// K of DA@K: correct programs clustered per problem.
    #[arg(long, default_value_t = 8)]
    pub da_k: usize,
    /// A reward model written by `cargo xtask train-rm`: breaks ties in the final pick.
    #[arg(long, value_name = "FILE")]
    pub reward_model: Option<PathBuf>,
    /// Blend the reward model into the rewards the search sees: α·tests + (1 − α)·model.
    #[arg(long, value_name = "A", requires = "reward_model")]
    pub blend_alpha: Option<f64>,
    /// Also compute G-Vendi (gradient diversity of each problem's correct programs, the first
    /// agent's model as the proxy).
    #[arg(long)]
    pub g_vendi: bool,
    /// Keep the agents' projections and output heads in a block format while searching
    /// (`q8_0`, `q4_1`, or `stored` for a GGUF file's own blocks): faster decoding on the CPU.
    #[arg(long)]
    pub quantize: Option<mars2_models::Quantization>,
    /// With blocks on the CPU: multiply them with f32 activations, or with activations
    /// quantized to 8 bits as llama.cpp does (`int8`: faster, with the activations' rounding).
    /// Unset: `MARS2_ACTIVATIONS`, else f32.
    #[arg(long)]
    pub activations: Option<mars2_models::kernels::HostActivations>,
    /// End each answer at the close of its first fenced code block, as `train`'s rollouts do:
    /// the tokens a model writes after its program are never judged.
    #[arg(long)]
    pub stop_at_fence: bool,
    /// How fresh solutions are asked for: project (the project's prompts), evalplus
    /// (EvalPlus's instruct prompt, the answer started with its response prefix) or
    /// qwen-coder (the prompt of Qwen2.5-Coder's own evaluation on EvalPlus's tasks).
    #[arg(long, default_value = "project")]
    pub prompt_style: PromptStyle,
    /// On HumanEval and MBPP, judge only a program's imports, definitions and assignments
    /// (EvalPlus's sanitizing): examples and asserts written after the function are not run.
    #[arg(long)]
    pub definitions_only: bool,
    /// Refuse to run unless every protection of the sandbox is in force (namespaces, a
    /// dedicated user, seccomp); without it, a missing protection is only a warning.
    #[arg(long)]
    pub require_isolation: bool,
}

impl EvalArgs {
    fn eval_config(&self) -> EvalConfig {
        EvalConfig {
            method: self.method,
            budget: self.budget,
            samples: self.samples,
            seed: self.seed,
            context: self.context,
            agent_choice: self.agent_choice,
            multi_role: self.multi_role,
            kappa: self.kappa,
            stop_on_pass: !self.no_stop_on_pass,
            temperature: self.temperature,
            top_p: self.top_p,
            max_new_tokens: self.max_new_tokens,
            stop_at_fence: self.stop_at_fence,
            concurrency: self.concurrency,
            kv_cache_mb: self.kv_cache_mb,
            da_k: self.da_k,
            blend_alpha: self.blend_alpha,
            quantize: self.quantize,
            activations: self.activations,
            prompt_style: self.prompt_style,
            definitions_only: self.definitions_only,
            device: self.device,
        }
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    // Refused before any model is fetched.
    args.eval_config().check()?;
    let models = resolve_models(&args.agents)?;
    let mut problems = load_benchmark(&args.benchmark, args.split)?;
    if let Some(limit) = args.limit {
        problems.truncate(limit);
    }
    let sandbox = start_sandbox(SandboxConfig::default(), args.require_isolation)?;
    let job = EvalJob {
        config: args.eval_config(),
        benchmark: args.benchmark.to_string(),
        split: args.split,
        agents: models,
        problems,
        sandbox,
        out: args.out.clone(),
        reward_model: args.reward_model.clone(),
    };
    run_on(args.device, EvalTask { job, args })?
}

struct EvalTask {
    job: EvalJob,
    args: EvalArgs,
}

impl BackendTask for EvalTask {
    type Output = Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let EvalTask { job, args } = self;
        let reward_model = match &args.reward_model {
            Some(path) => Some(load_reward_model::<B>(path, &device)?),
            None => None,
        };
        let first_model = job.agents[0].clone();
        let problems = if args.g_vendi {
            job.problems.clone()
        } else {
            Vec::new()
        };
        let progress = progress_bar(0);
        let nodes = AtomicUsize::new(0);
        let solved = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let update = |progress: &ProgressBar| {
            let f = finished.load(Ordering::SeqCst);
            let rate = if f > 0 {
                format!(
                    "{:.1}%",
                    100.0 * solved.load(Ordering::SeqCst) as f64 / f as f64
                )
            } else {
                "–".into()
            };
            progress.set_message(format!(
                "nodes {} · Pass@1(MCTS) so far {rate}",
                nodes.load(Ordering::SeqCst)
            ));
        };
        let observer = |event: EvalEvent<'_>| match event {
            EvalEvent::Quantized { agent, report } => {
                progress.suspend(|| eprintln!("{agent}: {report}"));
            }
            EvalEvent::Resuming { done, todo } => progress.suspend(|| {
                eprintln!(
                    "resuming {}: {done} problems done, {todo} to go",
                    args.out.display()
                )
            }),
            EvalEvent::Started { problems } => {
                progress.set_length(problems as u64);
                update(&progress);
            }
            EvalEvent::NodeGrown { nodes: n } => {
                nodes.store(n, Ordering::SeqCst);
                update(&progress);
            }
            EvalEvent::ProblemFinished {
                finished: f,
                solved: s,
                ..
            } => {
                finished.store(f, Ordering::SeqCst);
                solved.store(s, Ordering::SeqCst);
                progress.inc(1);
                update(&progress);
            }
            EvalEvent::ProblemFailed { problem_id, error } => {
                progress.suspend(|| eprintln!("{problem_id}: {error}"));
                progress.inc(1);
            }
            EvalEvent::Finished { .. } => {}
        };
        let scorer = reward_model.as_ref().map(|m| m as &dyn Scorer);
        let mut outcome = evaluate::<B>(job, &device, scorer, &observer)?;
        progress.finish_and_clear();

        // G-Vendi comes last and may fail (loading the proxy); the summary is kept anyway.
        let g_vendi_line = args.g_vendi.then(|| {
            eprintln!(
                "G-Vendi: gradients of the correct programs under {}",
                first_model.name
            );
            let scored = run_g_vendi::<B>(&first_model.path, &problems, &outcome.records, &device);
            let (score, scored_problems, line) = match scored {
                Ok(Some((score, n))) => (
                    Some(score),
                    n,
                    format!("G-Vendi {score:.3} (mean over {n} problems)"),
                ),
                Ok(None) => (
                    None,
                    0,
                    "G-Vendi: no problem has two distinct correct programs".to_string(),
                ),
                Err(e) => (None, 0, format!("G-Vendi failed: {e:#}")),
            };
            outcome.summary_json["g_vendi"] = json!(score);
            outcome.summary_json["g_vendi_problems"] = json!(scored_problems);
            line
        });
        if g_vendi_line.is_some() {
            write_atomically(
                &outcome.run_dir.join(SUMMARY_FILE),
                &serde_json::to_string_pretty(&outcome.summary_json)?,
            )?;
        }
        print_summary(&outcome.title, &outcome.summary);
        if let Some(line) = g_vendi_line {
            println!("{line}");
        }
        println!("wrote {}", outcome.run_dir.display());
        if !outcome.failures.is_empty() {
            let lines: Vec<String> = outcome
                .failures
                .iter()
                .map(|f| format!("{}: {}", f.problem_id, f.error))
                .collect();
            bail!(
                "{} problems failed and will run again on resume:\n  {}",
                lines.len(),
                lines.join("\n  ")
            );
        }
        Ok(())
    }
}

fn progress_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} problems · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn print_summary(title: &str, s: &Summary) {
    println!("{title}");
    println!(
        "  problems {}  Pass@1 {}  Pass@1(MCTS) {}  PassN {}  AEC {}  DA@K {}",
        s.problems,
        pct(s.pass1),
        pct(Some(s.pass1_mcts)),
        pct(Some(s.pass_n)),
        pct(s.aec),
        s.da_k.map_or("–".into(), |d| format!("{d:.2}")),
    );
    println!(
        "  nodes {}  tokens {}  wall {:.0} s  sandbox failures {}",
        s.nodes, s.tokens_generated, s.wall_seconds, s.sandbox_failures
    );
    for a in &s.per_agent {
        println!(
            "  {:<28} nodes {:>4}  public pass {:>6}  hidden pass {:>6}  Pass@1 {:>6}",
            a.name,
            a.nodes,
            pct(a.guide_pass_rate),
            pct(a.hidden_pass_rate),
            pct(a.pass1)
        );
    }
}
