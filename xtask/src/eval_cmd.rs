//! `cargo xtask eval`: grows one search tree per benchmark problem with a team of agents and
//! writes `summary.json`, `trees.jsonl` and `report.html` into `--out`. Rerunning with the
//! same `--out` and settings resumes: finished problems are not redone.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use mars2_engine::{run_on, BackendTask, DeviceKind, EngineConfig, SamplingParams};
use mars2_sandbox::{Problem, Sandbox, SandboxConfig, Split};
use mars2_search::config::{AgentChoice, ContextMode, Method, PromptStyle, SearchConfig};
use mars2_search::diversity::distinct_algorithms;
use mars2_search::records::{ProblemRecord, RunDir, REPORT_FILE, SUMMARY_FILE};
use mars2_search::report::{render_report, ReportInput};
use mars2_search::runner::{run_problems, ProblemRun, SearchContext};
use mars2_search::{problem_metrics, summarize, AgentSpec, Scorer, Summary};
use serde_json::json;

use crate::benchmark::{load_benchmark, parse_split, Benchmark};
use crate::gvendi_eval::run_g_vendi;
use crate::judging::start_sandbox;
use crate::rm_cmd::load_reward_model;
use crate::team::{load_policy, resolve_models, team_of, ModelArg};

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
    pub device: DeviceKind,
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
    fn search_config(&self) -> SearchConfig {
        let mut config = SearchConfig::for_eval(self.method, self.budget);
        config.context = self.context;
        config.agent_choice = self.agent_choice;
        if let Some(kappa) = self.kappa {
            config.depth_kappa = kappa;
        }
        config.stop_on_pass = !self.no_stop_on_pass;
        config.seed = self.seed;
        config.blend_alpha = self.blend_alpha;
        config.prompt_style = self.prompt_style;
        config.definitions_only = self.definitions_only;
        config
    }

    fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            max_new_tokens: self.max_new_tokens,
            stop_strings: if self.stop_at_fence {
                vec![crate::train_config::CLOSING_FENCE.to_string()]
            } else {
                Vec::new()
            },
            ..SamplingParams::default()
        }
    }

    /// Everything that decides the results (not the problem limit, device or concurrency):
    /// a run directory only resumes a run with the same settings.
    fn settings(&self, models: &[ModelArg]) -> serde_json::Value {
        let mut settings = json!({
            "benchmark": self.benchmark.to_string(),
            "split": format!("{:?}", self.split).to_lowercase(),
            "agents": models.iter().map(|m| json!({"name": m.name, "path": m.path})).collect::<Vec<_>>(),
            "multi_role": self.multi_role,
            "search": self.search_config(),
            "samples": self.samples,
            "sampling": self.sampling(),
            "da_k": self.da_k,
            "reward_model": self.reward_model,
        });
        // Only when set, so that run directories written before the option still resume.
        if let Some(q) = self.quantize {
            settings["quantize"] = json!(q.name());
        }
        settings
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    if args.budget == 0 {
        bail!("--budget must be at least 1");
    }
    let models = resolve_models(&args.agents)?;
    let mut problems = load_benchmark(&args.benchmark, args.split)?;
    if let Some(limit) = args.limit {
        problems.truncate(limit);
    }
    let settings = args.settings(&models);
    let sandbox = start_sandbox(SandboxConfig::default(), args.require_isolation)?;
    let (run_dir, done) = RunDir::open(&args.out, &settings)?;
    let previous_wall = previous_wall_seconds(&args.out);
    let device = args.device;
    run_on(
        device,
        EvalTask {
            args,
            models,
            problems,
            done,
            run_dir,
            settings,
            previous_wall,
            sandbox,
        },
    )?
}

/// Wall seconds recorded by earlier runs in the same directory.
fn previous_wall_seconds(out: &std::path::Path) -> f64 {
    std::fs::read_to_string(out.join(SUMMARY_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("wall_seconds").and_then(|w| w.as_f64()))
        .unwrap_or(0.0)
}

struct EvalTask {
    args: EvalArgs,
    models: Vec<ModelArg>,
    problems: Vec<Problem>,
    done: Vec<ProblemRecord>,
    run_dir: RunDir,
    settings: serde_json::Value,
    previous_wall: f64,
    sandbox: Sandbox,
}

impl BackendTask for EvalTask {
    type Output = Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let EvalTask {
            args,
            models,
            problems,
            done,
            run_dir,
            settings,
            previous_wall,
            sandbox,
        } = self;
        let started = Instant::now();
        let engine = EngineConfig {
            kv_cache_bytes: args.kv_cache_mb << 20,
            ..EngineConfig::default()
        };
        let policy = load_policy::<B>(&models, engine, &args.sampling(), args.quantize, &device)?;
        let team = team_of(&models, args.multi_role);
        let agent_names: Vec<String> = team.iter().map(|a| a.name.clone()).collect();
        let config = args.search_config();
        let reward_model = match &args.reward_model {
            Some(path) => Some(load_reward_model::<B>(path, &device)?),
            None => None,
        };
        let ctx = SearchContext {
            config: &config,
            team: &team,
            policy: &policy,
            sandbox: &sandbox,
            scorer: reward_model.as_ref().map(|m| m as &dyn Scorer),
        };
        ctx.validate()?;

        let todo: Vec<&Problem> = problems
            .iter()
            .filter(|p| !done.iter().any(|r| r.problem_id == p.id))
            .collect();
        if !done.is_empty() {
            eprintln!(
                "resuming {}: {} problems done, {} to go",
                run_dir.path().display(),
                done.len(),
                todo.len()
            );
        }
        let progress = progress_bar(todo.len());
        let nodes = AtomicUsize::new(0);
        let solved = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let run_dir = Mutex::new(run_dir);
        let new_records = Mutex::new(Vec::new());
        let failures = Mutex::new(Vec::new());
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
        let on_node = |_: &mars2_search::Node| {
            nodes.fetch_add(1, Ordering::SeqCst);
            update(&progress);
        };
        let on_done = |index: usize, result: mars2_search::Result<ProblemRun>| {
            let problem = todo[index];
            let outcome = finish_problem(&sandbox, &team, args.da_k, result).and_then(|record| {
                run_dir
                    .lock()
                    .map_err(|_| anyhow::anyhow!("run directory lock poisoned"))?
                    .append(&record)?;
                Ok(record)
            });
            match outcome {
                Ok(record) => {
                    solved.fetch_add(record.metrics.pass1_mcts as usize, Ordering::SeqCst);
                    finished.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut v) = new_records.lock() {
                        v.push(record);
                    }
                }
                Err(e) => {
                    progress.suspend(|| eprintln!("{}: {e:#}", problem.id));
                    if let Ok(mut v) = failures.lock() {
                        v.push(format!("{}: {e:#}", problem.id));
                    }
                }
            }
            progress.inc(1);
            update(&progress);
        };
        run_problems(
            &ctx,
            &todo,
            args.samples,
            args.concurrency,
            &on_node,
            &on_done,
        );
        progress.finish_and_clear();

        let mut records = done;
        records.extend(new_records.into_inner().unwrap_or_default());
        // Report in benchmark order.
        records.sort_by_key(|r| problems.iter().position(|p| p.id == r.problem_id));
        let metrics: Vec<_> = records.iter().map(|r| r.metrics.clone()).collect();
        let wall = previous_wall + started.elapsed().as_secs_f64();
        let summary = summarize(&metrics, &agent_names, wall);
        let run_dir = run_dir
            .into_inner()
            .map_err(|_| anyhow::anyhow!("run directory lock poisoned"))?;
        let mut summary_json = serde_json::to_value(&summary)?;
        summary_json["settings"] = settings.clone();
        summary_json["isolation"] = serde_json::to_value(sandbox.isolation())?;
        // G-Vendi comes last and may fail (loading the proxy); the summary is written anyway.
        let g_vendi_line = args.g_vendi.then(|| {
            eprintln!(
                "G-Vendi: gradients of the correct programs under {}",
                models[0].name
            );
            let scored = run_g_vendi::<B>(&models[0].path, &problems, &records, &device);
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
            summary_json["g_vendi"] = serde_json::json!(score);
            summary_json["g_vendi_problems"] = serde_json::json!(scored_problems);
            line
        });
        run_dir.write(SUMMARY_FILE, &serde_json::to_string_pretty(&summary_json)?)?;
        let title = format!(
            "{} · {} · budget {}",
            args.benchmark,
            config.method.as_str(),
            config.budget
        );
        run_dir.write(
            REPORT_FILE,
            &render_report(&ReportInput {
                title: &title,
                settings: &settings,
                summary: &summary,
                agents: &agent_names,
                records: &records,
            }),
        )?;
        print_summary(&title, &summary);
        if let Some(line) = g_vendi_line {
            println!("{line}");
        }
        println!("wrote {}", run_dir.path().display());
        let failures = failures.into_inner().unwrap_or_default();
        if !failures.is_empty() {
            bail!(
                "{} problems failed and will run again on resume:\n  {}",
                failures.len(),
                failures.join("\n  ")
            );
        }
        Ok(())
    }
}

/// Metrics (with DA@K) of a finished problem.
fn finish_problem(
    sandbox: &Sandbox,
    team: &[AgentSpec],
    da_k: usize,
    result: mars2_search::Result<ProblemRun>,
) -> Result<ProblemRecord> {
    let run = result?;
    let correct: Vec<&str> = run
        .tree
        .generated()
        .filter(|n| n.passes_hidden())
        .filter_map(|n| n.code.as_deref())
        .collect();
    let da = distinct_algorithms(sandbox, &correct, da_k)?;
    let metrics = problem_metrics(&run, team.len(), da);
    Ok(ProblemRecord {
        problem_id: run.problem_id,
        tree: run.tree,
        samples: run.samples,
        metrics,
        wall_seconds: run.wall_seconds,
    })
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
