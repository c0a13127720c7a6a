//! The two kinds of generation of a training run: rollout trees over training problems
//! (judged on all their tests, growing to the full budget) and the held-out evaluation
//! (fresh answers judged on the hidden tests), plus the rollout log `rollouts.jsonl`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use burn::tensor::backend::Backend;
use mars2_engine::SamplingParams;
use mars2_sandbox::{Problem, Sandbox};
use mars2_search::config::{AgentSpec, Method, SearchConfig};
use mars2_search::runner::{run_problems, ProblemRun, SearchContext};
use mars2_search::EnginePolicy;
use serde_json::json;

use super::config::{Algorithm, TrainConfig};
use super::error::{TrainError, TrainResult};
use super::observer::{TrainEvent, TrainObserver};
use super::summary::HeldOut;
use mars2_search::AgentModel;

/// The rollout log of a run directory: one line per tree.
pub const ROLLOUTS_FILE: &str = "rollouts.jsonl";

/// Grows one training tree per problem (all tests guide; the tree always reaches its budget).
pub fn rollout<B: Backend>(
    policy: &EnginePolicy<B>,
    team: &[AgentSpec],
    problems: &[&Problem],
    sandbox: &Sandbox,
    config: &TrainConfig,
    round: usize,
    on_grown: &(dyn Fn(usize, usize) + Sync),
) -> TrainResult<Vec<ProblemRun>> {
    let method = match config.algorithm {
        Algorithm::Grpo => Method::Sample,
        Algorithm::Mars2 | Algorithm::Mars2Heter => Method::Abmcts,
    };
    let mut search = SearchConfig::for_training(method, config.search.budget);
    search.partial_credit = config.search.partial_credit;
    search.seed = config
        .seed
        .wrapping_mul(1_000_003)
        .wrapping_add(round as u64);
    search.context = config.search.context;
    search.agent_choice = config.search.agent_choice;
    let ctx = SearchContext {
        config: &search,
        team,
        policy,
        sandbox,
        scorer: None,
    };
    ctx.validate()?;
    collect(&ctx, problems, config.search.concurrency, on_grown)
}

/// Runs `problems` and returns their runs in order, or the first error; `on_done(done,
/// total)` hears of each finished problem.
fn collect(
    ctx: &SearchContext<'_>,
    problems: &[&Problem],
    concurrency: usize,
    on_done: &(dyn Fn(usize, usize) + Sync),
) -> TrainResult<Vec<ProblemRun>> {
    let results: Mutex<Vec<Option<mars2_search::Result<ProblemRun>>>> =
        Mutex::new((0..problems.len()).map(|_| None).collect());
    let done = AtomicUsize::new(0);
    run_problems(ctx, problems, 0, concurrency, &|_| {}, &|i, r| {
        if let Ok(mut v) = results.lock() {
            v[i] = Some(r);
        }
        on_done(done.fetch_add(1, Ordering::Relaxed) + 1, problems.len());
    });
    results
        .into_inner()
        .map_err(|_| TrainError::Stopped("a search thread panicked".into()))?
        .into_iter()
        .zip(problems)
        .map(|(r, p)| {
            r.ok_or_else(|| TrainError::Stopped(format!("problem {} did not finish", p.id)))?
                .map_err(Into::into)
        })
        .collect()
}

/// Held-out pass rate of each model: `eval.samples` fresh answers per problem, judged on the
/// hidden tests. Every model is evaluated at the same time (the engine batches their requests,
/// and any rollout running beside), with the evaluation's own sampling parameters.
pub fn evaluate<B: Backend>(
    policy: &EnginePolicy<B>,
    models: &[AgentModel],
    problems: &[Problem],
    eval_params: &SamplingParams,
    sandbox: &Sandbox,
    config: &TrainConfig,
    observer: &dyn TrainObserver,
) -> TrainResult<Vec<HeldOut>> {
    let refs: Vec<&Problem> = problems.iter().collect();
    let greedy = policy.with_sampling(eval_params.clone());
    let mut search = SearchConfig::for_eval(Method::Sample, config.eval.samples.max(1));
    search.stop_on_pass = false;
    search.seed = config.seed;
    let concurrency = config.search.concurrency.max(problems.len().min(16));
    let judged = AtomicUsize::new(0);
    let total = models.len() * problems.len();
    let on_done = |_: usize, _: usize| {
        let done = judged.fetch_add(1, Ordering::Relaxed) + 1;
        observer.on_event(TrainEvent::HeldOutJudged { done, total });
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (greedy, search, refs, on_done) = (&greedy, &search, &refs, &on_done);
                scope.spawn(move || -> TrainResult<HeldOut> {
                    let team = [AgentSpec::new(m.name.clone(), i)];
                    let ctx = SearchContext {
                        config: search,
                        team: &team,
                        policy: greedy,
                        sandbox,
                        scorer: None,
                    };
                    let runs = collect(&ctx, refs, concurrency, on_done)?;
                    Ok(HeldOut::count(&runs))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| TrainError::Stopped("an evaluation thread panicked".into()))?
            })
            .collect()
    })
}

/// Appends round `round`'s trees to the run's rollout log (synced), one line per tree:
/// `{"round", "problem", "tree"}` (the tree without token ids).
pub fn append_rollouts(run_dir: &Path, round: usize, runs: &[ProblemRun]) -> TrainResult<()> {
    let path = run_dir.join(ROLLOUTS_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| TrainError::io(&path, e))?;
    let mut text = String::new();
    for run in runs {
        let line = json!({"round": round, "problem": run.problem_id, "tree": run.tree});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_data())
        .map_err(|e| TrainError::io(&path, e))
}
