//! The evaluation loop: [`evaluate`] on a backend chosen by the caller, [`evaluate_on`] on the
//! device the config names.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use burn::tensor::backend::Backend;
use mars2_engine::{run_on, BackendTask, EngineConfig};
use mars2_sandbox::{Problem, Sandbox, Split};
use serde_json::Value;

use super::config::EvalConfig;
use super::observer::{EvalEvent, EvalObserver};
use crate::config::AgentSpec;
use crate::diversity::distinct_algorithms;
use crate::error::{Result, SearchError};
use crate::metrics::{problem_metrics, summarize, Summary};
use crate::records::{pretty, ProblemRecord, RunDir, REPORT_FILE, SUMMARY_FILE};
use crate::report::{render_report, ReportInput};
use crate::runner::{run_problems, ProblemRun, SearchContext};
use crate::scorer::Scorer;
use crate::team::{load_team, team_of, AgentModel};

/// Everything an evaluation needs besides its device and scorer.
pub struct EvalJob {
    pub config: EvalConfig,
    /// The benchmark's name, for the settings record and the report's title.
    pub benchmark: String,
    /// The benchmark split the problems come from (recorded in the settings).
    pub split: Split,
    /// The team's models; each is one agent, or two with `config.multi_role`.
    pub agents: Vec<AgentModel>,
    pub problems: Vec<Problem>,
    /// Judges every program.
    pub sandbox: Sandbox,
    /// The run directory (created; one holding a run with the same settings is resumed).
    pub out: PathBuf,
    /// The file of the scorer handed to [`evaluate`], recorded in the settings; `None` when
    /// there is no scorer.
    pub reward_model: Option<PathBuf>,
}

/// A problem that failed; it runs again when the run resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemFailure {
    pub problem_id: String,
    pub error: String,
}

/// What an evaluation produced (also in the run directory's files).
#[derive(Debug)]
pub struct EvalOutcome {
    pub summary: Summary,
    /// Every finished problem, this run's and earlier ones', in benchmark order.
    pub records: Vec<ProblemRecord>,
    /// `summary.json` as written: the summary with the settings and the sandbox's isolation.
    pub summary_json: Value,
    /// "benchmark · method · budget N".
    pub title: String,
    pub run_dir: PathBuf,
    pub failures: Vec<ProblemFailure>,
}

/// Runs `job` without a scorer on the device `job.config.device` names (among the backends
/// compiled in).
pub fn evaluate_on(job: EvalJob, observer: &dyn EvalObserver) -> Result<EvalOutcome> {
    struct Task<'a> {
        job: EvalJob,
        observer: &'a dyn EvalObserver,
    }
    impl BackendTask for Task<'_> {
        type Output = Result<EvalOutcome>;
        fn run<B: Backend>(self, device: B::Device) -> Self::Output {
            evaluate::<B>(self.job, &device, None, self.observer)
        }
    }
    let device = job.config.device;
    run_on(device, Task { job, observer })?
}

/// Evaluates `job.agents` on backend `B`. `scorer` (a reward model) breaks ties in the final
/// pick and, with `config.blend_alpha`, blends into the rewards the search sees. A problem
/// that fails is listed in the outcome and left for a resumed run; the summary covers the
/// others.
pub fn evaluate<B: Backend>(
    job: EvalJob,
    device: &B::Device,
    scorer: Option<&dyn Scorer>,
    observer: &dyn EvalObserver,
) -> Result<EvalOutcome> {
    let EvalJob {
        config,
        benchmark,
        split,
        agents,
        problems,
        sandbox,
        out,
        reward_model,
    } = job;
    config.check()?;
    if config.blend_alpha.is_some() && scorer.is_none() {
        return Err(SearchError::Config(
            "blending rewards needs a scorer (a reward model)".into(),
        ));
    }
    let settings = config.settings(&benchmark, split, &agents, reward_model.as_deref());
    let (run_dir, done) = RunDir::open(&out, &settings)?;
    let previous_wall = previous_wall_seconds(&out);
    let started = Instant::now();

    let engine = EngineConfig {
        kv_cache_bytes: config.kv_cache_mb << 20,
        activations: config.activations,
        ..EngineConfig::default()
    };
    let loaded = load_team::<B>(&agents, engine, &config.sampling(), config.quantize, device)?;
    for (agent, report) in &loaded.quantized {
        observer.on_event(EvalEvent::Quantized { agent, report });
    }
    let policy = loaded.policy;
    let team = team_of(&agents, config.multi_role);
    let agent_names: Vec<String> = team.iter().map(|a| a.name.clone()).collect();
    let search = config.search_config();
    let ctx = SearchContext {
        config: &search,
        team: &team,
        policy: &policy,
        sandbox: &sandbox,
        scorer,
    };
    ctx.validate()?;

    let todo: Vec<&Problem> = problems
        .iter()
        .filter(|p| !done.iter().any(|r| r.problem_id == p.id))
        .collect();
    if !done.is_empty() {
        observer.on_event(EvalEvent::Resuming {
            done: done.len(),
            todo: todo.len(),
        });
    }
    observer.on_event(EvalEvent::Started {
        problems: todo.len(),
    });
    let nodes = AtomicUsize::new(0);
    let counts = Mutex::new((0usize, 0usize)); // (finished, solved)
    let run_dir = Mutex::new(run_dir);
    let new_records = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    let on_node = |_: &crate::Node| {
        let nodes = nodes.fetch_add(1, Ordering::SeqCst) + 1;
        observer.on_event(EvalEvent::NodeGrown { nodes });
    };
    let on_done = |index: usize, result: Result<ProblemRun>| {
        let problem_id = todo[index].id.as_str();
        let outcome = finish_problem(&sandbox, &team, config.da_k, result).and_then(|record| {
            run_dir
                .lock()
                .map_err(|_| {
                    SearchError::Generation("the run directory's lock is poisoned".into())
                })?
                .append(&record)?;
            Ok(record)
        });
        match outcome {
            Ok(record) => {
                let (finished, solved) = {
                    let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
                    counts.0 += 1;
                    counts.1 += record.metrics.pass1_mcts as usize;
                    *counts
                };
                if let Ok(mut records) = new_records.lock() {
                    records.push(record);
                }
                observer.on_event(EvalEvent::ProblemFinished {
                    problem_id,
                    finished,
                    solved,
                });
            }
            Err(e) => {
                let error = e.to_string();
                observer.on_event(EvalEvent::ProblemFailed {
                    problem_id,
                    error: &error,
                });
                if let Ok(mut failures) = failures.lock() {
                    failures.push(ProblemFailure {
                        problem_id: problem_id.to_string(),
                        error,
                    });
                }
            }
        }
    };
    run_problems(
        &ctx,
        &todo,
        config.samples,
        config.concurrency,
        &on_node,
        &on_done,
    );

    let mut records = done;
    records.extend(new_records.into_inner().unwrap_or_else(|e| e.into_inner()));
    records.sort_by_key(|r| problems.iter().position(|p| p.id == r.problem_id));
    let metrics: Vec<_> = records.iter().map(|r| r.metrics.clone()).collect();
    let wall = previous_wall + started.elapsed().as_secs_f64();
    let summary = summarize(&metrics, &agent_names, wall);
    let run_dir = run_dir.into_inner().unwrap_or_else(|e| e.into_inner());
    let summary_json = summary_record(&summary, &settings, &sandbox)?;
    run_dir.write(SUMMARY_FILE, &pretty(&summary_json)?)?;
    let title = format!(
        "{benchmark} · {} · budget {}",
        search.method.as_str(),
        search.budget
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
    observer.on_event(EvalEvent::Finished { summary: &summary });
    Ok(EvalOutcome {
        summary,
        records,
        summary_json,
        title,
        run_dir: run_dir.path().to_path_buf(),
        failures: failures.into_inner().unwrap_or_else(|e| e.into_inner()),
    })
}

/// `summary.json`: the summary, the settings and the sandbox's isolation.
fn summary_record(summary: &Summary, settings: &Value, sandbox: &Sandbox) -> Result<Value> {
    let mut record = serde_json::to_value(summary)
        .map_err(|e| SearchError::Generation(format!("serializing the summary: {e}")))?;
    record["settings"] = settings.clone();
    record["isolation"] = serde_json::to_value(sandbox.isolation())
        .map_err(|e| SearchError::Generation(format!("serializing the isolation: {e}")))?;
    Ok(record)
}

/// Wall seconds recorded by earlier runs in the same directory.
fn previous_wall_seconds(out: &Path) -> f64 {
    std::fs::read_to_string(out.join(SUMMARY_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("wall_seconds").and_then(|w| w.as_f64()))
        .unwrap_or(0.0)
}

/// Metrics (with DA@K) of a finished problem.
fn finish_problem(
    sandbox: &Sandbox,
    team: &[AgentSpec],
    da_k: usize,
    result: Result<ProblemRun>,
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
