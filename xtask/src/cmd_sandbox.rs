//! `cargo xtask sandbox`: judges solutions against a problem file in the sandbox and prints
//! one verdict per solution (text, or JSON lines with `--json`) followed by a summary.
//!
//! The problem file may be LiveCodeBench `code_generation_lite` JSONL, HumanEval
//! `.jsonl.gz` or MBPP JSONL; the format is told from its contents. Solutions are a JSONL
//! file of `{"question_id" | "task_id": …, "code": "…"}` (several lines may name the same
//! problem), or `canonical` for the dataset's own reference solutions.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mars2_sandbox::{
    load_problems, LoadOptions, Problem, Program, Sandbox, SandboxConfig, Split, Submission,
    TestSet, Verdict, VerdictKind,
};
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// Problem file: LiveCodeBench JSONL, HumanEval .jsonl.gz or MBPP JSONL.
    #[arg(long, value_name = "FILE")]
    pub problems: PathBuf,
    /// JSONL of {"question_id"|"task_id": ..., "code": ...}, or `canonical` for the
    /// dataset's reference solutions.
    #[arg(long, value_name = "SOL.jsonl|canonical")]
    pub solutions: String,
    /// Print one JSON verdict per line and a JSON summary line.
    #[arg(long)]
    pub json: bool,
    /// Which tests to run.
    #[arg(long, value_enum, default_value_t = TestsArg::All)]
    pub tests: TestsArg,
    /// Treat each `code` as a model's answer and judge its last fenced Python block that
    /// compiles.
    #[arg(long)]
    pub extract: bool,
    /// Only problems of this MBPP split.
    #[arg(long, value_enum)]
    pub split: Option<SplitArg>,
    /// Parallel runs (default: the machine's available parallelism).
    #[arg(long)]
    pub workers: Option<usize>,
    /// CPU seconds per test.
    #[arg(long, default_value_t = 6.0)]
    pub cpu_limit: f64,
    /// Keep going past unreadable problem lines (they are reported on stderr).
    #[arg(long)]
    pub skip_bad_lines: bool,
    /// Refuse to run unless every protection of the sandbox is in force.
    #[arg(long)]
    pub require_isolation: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestsArg {
    Public,
    Hidden,
    All,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    FewShot,
    Test,
    Validation,
    Train,
}

impl From<TestsArg> for TestSet {
    fn from(arg: TestsArg) -> TestSet {
        match arg {
            TestsArg::Public => TestSet::Public,
            TestsArg::Hidden => TestSet::Hidden,
            TestsArg::All => TestSet::All,
        }
    }
}

impl From<SplitArg> for Split {
    fn from(arg: SplitArg) -> Split {
        match arg {
            SplitArg::FewShot => Split::FewShot,
            SplitArg::Test => Split::Test,
            SplitArg::Validation => Split::Validation,
            SplitArg::Train => Split::Train,
        }
    }
}

/// One solution to judge: which problem, the code, and where it came from.
struct Solution {
    problem: usize,
    code: String,
    /// Line of the solutions file, `None` for canonical solutions.
    line: Option<usize>,
}

pub fn run(args: SandboxArgs) -> Result<()> {
    if !(args.cpu_limit > 0.0 && args.cpu_limit.is_finite()) {
        bail!("--cpu-limit must be a positive number of seconds");
    }
    let options = LoadOptions {
        skip_bad_lines: args.skip_bad_lines,
        ..LoadOptions::default()
    };
    let loaded = load_problems(&args.problems, &options)?;
    for error in &loaded.errors {
        eprintln!("skipped: {error}");
    }
    let mut problems = loaded.problems;
    if let Some(split) = args.split {
        let split = Split::from(split);
        problems.retain(|p| p.split == Some(split));
    }
    if problems.is_empty() {
        bail!("{}: no problems to judge", args.problems.display());
    }

    let solutions = if args.solutions == "canonical" {
        canonical_solutions(&problems)?
    } else {
        read_solutions(Path::new(&args.solutions), &problems)?
    };

    let mut config = SandboxConfig {
        workers: args.workers,
        ..SandboxConfig::default()
    };
    config.limits.cpu_per_test = Duration::from_secs_f64(args.cpu_limit);
    let sandbox = crate::judging::start_sandbox(config, args.require_isolation)?;

    let tests = TestSet::from(args.tests);
    let submissions: Vec<Submission<'_>> = solutions
        .iter()
        .map(|s| Submission {
            problem: &problems[s.problem],
            program: if args.extract {
                Program::Response(&s.code)
            } else {
                Program::Code(&s.code)
            },
            tests,
        })
        .collect();

    let progress = ProgressBar::new(submissions.len() as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} judging [{bar:40}] {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    // Verdicts finish in any order; print them in input order as soon as possible.
    let printer = Mutex::new((0usize, BTreeMap::<usize, String>::new()));
    let started = Instant::now();
    let verdicts = sandbox.judge_all(&submissions, |index, verdict| {
        let line = render(&problems, &solutions[index], verdict, args.json);
        let mut state = printer.lock().unwrap_or_else(|p| p.into_inner());
        state.1.insert(index, line);
        loop {
            let next = state.0;
            let Some(text) = state.1.remove(&next) else {
                break;
            };
            progress.suspend(|| println!("{text}"));
            state.0 += 1;
        }
        progress.inc(1);
        if verdict.kind == VerdictKind::SandboxFailure {
            progress.set_message("(sandbox failures!)");
        }
    });
    progress.finish_and_clear();

    let summary = summarize(&verdicts, started.elapsed(), &sandbox);
    if args.json {
        println!("{}", json!({ "summary": summary }));
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn canonical_solutions(problems: &[Problem]) -> Result<Vec<Solution>> {
    let solutions: Vec<Solution> = problems
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            p.reference_solution.as_ref().map(|code| Solution {
                problem: i,
                code: code.clone(),
                line: None,
            })
        })
        .collect();
    if solutions.is_empty() {
        bail!("this dataset ships no reference solutions; pass --solutions SOL.jsonl");
    }
    Ok(solutions)
}

fn read_solutions(path: &Path, problems: &[Problem]) -> Result<Vec<Solution>> {
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (i, problem) in problems.iter().enumerate() {
        by_id.insert(problem.id.clone(), i);
        if let Some((_, bare)) = problem.id.rsplit_once('/') {
            by_id.entry(bare.to_string()).or_insert(i);
        }
    }
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut solutions = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let n = n + 1;
        let line = line.with_context(|| format!("{}:{n}: cannot read", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{n}: invalid JSON", path.display()))?;
        let id = match record.get("question_id").or_else(|| record.get("task_id")) {
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(x)) => x.to_string(),
            _ => bail!(
                "{}:{n}: needs a string or number `question_id` or `task_id`",
                path.display()
            ),
        };
        let Some(Value::String(code)) = record.get("code") else {
            bail!("{}:{n}: needs a string `code`", path.display());
        };
        let Some(&problem) = by_id.get(&id) else {
            bail!(
                "{}:{n}: no problem `{id}` in the problem file",
                path.display()
            );
        };
        solutions.push(Solution {
            problem,
            code: code.clone(),
            line: Some(n),
        });
    }
    if solutions.is_empty() {
        bail!("{}: no solutions", path.display());
    }
    Ok(solutions)
}

/// One output line for a verdict.
fn render(problems: &[Problem], solution: &Solution, verdict: &Verdict, as_json: bool) -> String {
    let id = &problems[solution.problem].id;
    if as_json {
        let mut value = json!({
            "id": id,
            "line": solution.line,
            "reward": verdict.reward(),
        });
        if let (Value::Object(map), Ok(Value::Object(fields))) =
            (&mut value, serde_json::to_value(verdict))
        {
            map.extend(fields);
        }
        return value.to_string();
    }
    let mut text = format!(
        "{id:<20} {:<14} {:>3}/{:<3} {:>6.2}s",
        verdict.kind.as_str(),
        verdict.passed,
        verdict.total,
        verdict.stats.wall_seconds
    );
    let detail = verdict
        .message
        .clone()
        .or_else(|| verdict.failure.as_ref().and_then(|f| f.error.clone()))
        .or_else(|| {
            verdict.failure.as_ref().map(|f| {
                format!(
                    "expected {:?}, got {:?}",
                    f.expected,
                    f.actual.as_deref().unwrap_or("")
                )
            })
        });
    if let Some(detail) = detail {
        let last = detail.lines().last().unwrap_or_default();
        text.push_str("  ");
        text.push_str(&mars2_sandbox::truncate(last, 100));
    }
    text
}

fn summarize(verdicts: &[Verdict], elapsed: Duration, sandbox: &Sandbox) -> Value {
    let mut counts = serde_json::Map::new();
    for kind in VerdictKind::ALL {
        let n = verdicts.iter().filter(|v| v.kind == kind).count();
        counts.insert(kind.as_str().to_string(), json!(n));
    }
    let judged: Vec<f64> = verdicts.iter().filter_map(Verdict::reward).collect();
    let accepted = verdicts.iter().filter(|v| v.is_accepted()).count();
    let pass_rate = if judged.is_empty() {
        None
    } else {
        Some(judged.iter().sum::<f64>() / judged.len() as f64)
    };
    json!({
        "solutions": verdicts.len(),
        "accepted": accepted,
        "judged": judged.len(),
        "pass_rate": pass_rate,
        "counts": counts,
        "seconds": elapsed.as_secs_f64(),
        "workers": sandbox.workers(),
        "python": sandbox.python().display().to_string(),
        "isolation": sandbox.isolation(),
    })
}

fn print_summary(summary: &Value) {
    println!();
    println!(
        "accepted {} of {} solutions ({} judged; sandbox failures are not judged)",
        summary["accepted"], summary["solutions"], summary["judged"]
    );
    if let Some(rate) = summary["pass_rate"].as_f64() {
        println!("pass rate {:.2}%", 100.0 * rate);
    }
    if let Some(counts) = summary["counts"].as_object() {
        let parts: Vec<String> = counts
            .iter()
            .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        println!("{}", parts.join(", "));
    }
    println!(
        "{:.1} s on {} workers with {}",
        summary["seconds"].as_f64().unwrap_or(0.0),
        summary["workers"],
        summary["python"].as_str().unwrap_or("python")
    );
}
