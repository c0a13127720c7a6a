//! Judging one candidate: starts the program's process (the harness, in a private run
//! directory, isolated) and hands a referee the tests and the program's pipes; turns the
//! referee's events plus the process's fate into a [`Verdict`].
//!
//! When the program's process dies in the middle of a test, the test that was running is the
//! failing one: a CPU-limit signal, or a kill by the backstop or the idle watchdog, is a time
//! limit; a death by another signal with memory near the limit is a memory limit; anything
//! else is a runtime error. A harness that never started, or a referee that failed, is a
//! sandbox failure.

use std::time::Duration;

use crate::harness::{self, Event, FailReason, Job};
use crate::problem::{Dataset, Problem, TestCase, TestSet};
use crate::referee::RefereeJob;
use crate::runner::RawRun;
use crate::sandbox::{LaunchLimits, Sandbox};
use crate::verdict::{truncate, FailedTest, RunStats, Verdict, VerdictKind, DETAIL_CHARS};

/// Lines of standard error kept in the verdict's statistics.
const STDERR_TAIL_LINES: usize = 20;

/// Largest answer the program may send for one request.
const ANSWER_CAP: usize = 64 << 20;

/// Judges the last compiling candidate of `candidates` on the chosen tests.
pub(crate) fn judge(
    sandbox: &Sandbox,
    problem: &Problem,
    candidates: &[String],
    set: TestSet,
) -> Verdict {
    let tests = problem.tests(set);
    let total = tests.len();
    let mut verdict = if candidates.is_empty() {
        Verdict::compile_error(
            total,
            "no fenced Python code block of at least 20 characters",
        )
    } else if total == 0 {
        Verdict::sandbox_failure(0, format!("problem {} has no {set:?} tests", problem.id))
    } else {
        run_and_judge(sandbox, problem, candidates, &tests)
    };
    verdict.stats.isolation = sandbox.isolation();
    verdict
}

fn run_and_judge(
    sandbox: &Sandbox,
    problem: &Problem,
    candidates: &[String],
    tests: &[&TestCase],
) -> Verdict {
    let limits = sandbox.limits();
    let wall = limits.wall_per_test();
    let job = Job {
        candidates,
        cpu_limit: limits.cpu_per_test.as_secs_f64(),
        wall_limit: wall.as_secs_f64(),
        preamble: problem.uses_import_preamble(),
    };
    let referee_job = RefereeJob {
        tests: tests.to_vec(),
        wall_limit: wall.as_secs_f64(),
        startup: limits.startup.as_secs_f64(),
        // HumanEval's prompt defines helpers its tests use (`poly`, `encode_cyclic`...): the
        // referee runs the dataset's own, not the program's copies of them.
        prelude: (problem.dataset == Dataset::HumanEval && !problem.starter_code.is_empty())
            .then_some(problem.starter_code.as_str()),
        entry_point: problem.entry_point.as_deref(),
        answer_cap: ANSWER_CAP,
    };
    let (job_bytes, referee_bytes) =
        match (serde_json::to_vec(&job), serde_json::to_vec(&referee_job)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                return Verdict::sandbox_failure(tests.len(), format!("encode job: {e}"))
            }
        };
    let largest_input = tests.iter().map(|t| t.data_len() as u64).max().unwrap_or(0);
    let n = tests.len() as u32;
    let per_test_cpu = limits.cpu_per_test + Duration::from_secs(1);
    let launch = LaunchLimits {
        cpu_total: per_test_cpu * n + Duration::from_secs(5),
        deadline: limits.startup + (wall + Duration::from_secs(2)) * n,
        // The referee reports at least once per test; silence past the per-test wall limit
        // means it is stuck in a way neither its timers nor the harness's could break.
        idle: Some(limits.startup.max(wall) + Duration::from_secs(5)),
        file_size: limits.file_size.max(largest_input + (1 << 20)),
        // The harness holds one test's input at a time next to the program.
        address_space: limits.address_space + 4 * largest_input,
    };
    let referees = match sandbox.referees() {
        Ok(pool) => pool,
        Err(e) => return Verdict::sandbox_failure(tests.len(), e.to_string()),
    };
    let referee = match referees.take() {
        Ok(referee) => referee,
        Err(e) => return Verdict::sandbox_failure(tests.len(), format!("start a referee: {e}")),
    };
    let (harness_file, harness_program) = sandbox.harness_program();
    let run = sandbox.launch(
        &[
            (harness_file, harness_program),
            (harness::JOB_FILE, &job_bytes),
        ],
        harness_file,
        None,
        launch,
        Some((&referee, referee_bytes)),
    );
    match run {
        Ok(run) => {
            let verdict = interpret(&run, tests, sandbox, || referee.stderr_tail());
            if run.referee_ended {
                referees.give_back(referee);
            }
            verdict
        }
        Err(e) => Verdict::sandbox_failure(tests.len(), e.to_string()),
    }
}

/// Builds the verdict from the referee's events and the program process's fate.
fn interpret(
    run: &RawRun,
    tests: &[&TestCase],
    sandbox: &Sandbox,
    referee_stderr: impl Fn() -> String,
) -> Verdict {
    let events = harness::parse_events(&run.results.bytes);
    let total = tests.len();
    let stats = stats_of(run);
    let verdict = |kind, passed, failure, message: Option<String>| Verdict {
        kind,
        passed,
        total,
        failure,
        message,
        stats: stats.clone(),
    };

    let mut ready = false;
    let mut compiled = false;
    let mut running: Option<usize> = None;
    let mut passed = 0usize;
    let mut done = false;
    let mut lost = false;
    for event in &events {
        match event {
            Event::Ready => ready = true,
            Event::CompileError { message } => {
                return verdict(
                    VerdictKind::CompileError,
                    0,
                    None,
                    Some(truncate(message, DETAIL_CHARS)),
                )
            }
            Event::Compiled { .. } => compiled = true,
            Event::Start { i } => running = Some(*i),
            Event::Pass { i } => {
                passed = passed.max(i + 1);
                running = None;
            }
            Event::Fail {
                i,
                why,
                actual,
                expected,
                error,
            } => {
                let kind = match why {
                    FailReason::WrongAnswer => VerdictKind::WrongAnswer,
                    FailReason::RuntimeError | FailReason::OutputLimit => VerdictKind::RuntimeError,
                    FailReason::TimeLimit => VerdictKind::TimeLimit,
                    FailReason::MemoryLimit => VerdictKind::MemoryLimit,
                };
                let failure = failed_test(tests, *i, actual.clone(), error.clone(), expected);
                return verdict(kind, *i, failure, None);
            }
            Event::BadTest { i, message } => {
                return verdict(
                    VerdictKind::SandboxFailure,
                    *i,
                    None,
                    Some(format!("test {i} could not be run: {message}")),
                )
            }
            Event::Lost { .. } => lost = true,
            Event::Done => done = true,
            Event::End => {}
        }
    }

    if done && passed >= total {
        return verdict(VerdictKind::Accepted, total, None, None);
    }
    let killed = run.killed_by_backstop || run.killed_when_idle;
    if !run.referee_ended && !killed {
        let message = format!(
            "the referee stopped before its verdict; its stderr: {}",
            referee_stderr()
        );
        return verdict(VerdictKind::SandboxFailure, passed, None, Some(message));
    }
    if !ready && !killed {
        let message = format!(
            "the harness did not start ({}); stderr: {}",
            fate(run),
            stats.stderr_tail
        );
        return verdict(VerdictKind::SandboxFailure, 0, None, Some(message));
    }
    if !compiled {
        return verdict(
            VerdictKind::CompileError,
            0,
            None,
            Some(format!("compilation did not finish ({})", fate(run))),
        );
    }
    if !lost && !killed {
        return verdict(
            VerdictKind::SandboxFailure,
            passed,
            None,
            Some("the referee ended without a verdict".into()),
        );
    }

    // The process ended while (or between) running tests.
    let index = running.unwrap_or(passed);
    let limits = sandbox.limits();
    let cpu_hard = (limits.cpu_per_test.as_secs_f64() + 1.0) * total as f64 + 5.0;
    let (kind, error) = if killed {
        (
            VerdictKind::TimeLimit,
            "time limit exceeded (killed after the wall-clock limit)".to_string(),
        )
    } else if run.signal == Some(libc::SIGXCPU)
        || (run.signal == Some(libc::SIGKILL) && run.cpu_seconds >= cpu_hard - 0.5)
    {
        (
            VerdictKind::TimeLimit,
            format!(
                "time limit exceeded ({} s CPU per test)",
                limits.cpu_per_test.as_secs_f64()
            ),
        )
    } else if run.signal.is_some()
        && (run.max_rss_kib as f64) * 1024.0 >= 0.8 * limits.address_space as f64
    {
        (
            VerdictKind::MemoryLimit,
            format!("memory limit exceeded ({})", fate(run)),
        )
    } else {
        (
            VerdictKind::RuntimeError,
            format!("the program ended the judge ({})", fate(run)),
        )
    };
    let failure = failed_test(tests, index, None, Some(error), &None);
    verdict(kind, passed.min(index), failure, None)
}

fn failed_test(
    tests: &[&TestCase],
    index: usize,
    actual: Option<String>,
    error: Option<String>,
    expected: &Option<String>,
) -> Option<FailedTest> {
    let test = tests.get(index)?;
    Some(FailedTest {
        index,
        input: truncate(test.shown_input(), DETAIL_CHARS),
        expected: truncate(
            expected.as_deref().unwrap_or(test.shown_expected()),
            DETAIL_CHARS,
        ),
        actual: actual.map(|a| truncate(&a, DETAIL_CHARS)),
        error: error.map(|e| truncate(&e, DETAIL_CHARS)),
    })
}

/// How the process ended, in words.
fn fate(run: &RawRun) -> String {
    match (run.exit_code, run.signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal} ({})", signal_name(signal)),
        (None, None) => "end unknown".to_string(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGTERM => "SIGTERM",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGSYS => "SIGSYS",
        _ => "other",
    }
}

fn stats_of(run: &RawRun) -> RunStats {
    let stderr = String::from_utf8_lossy(&run.stderr.bytes);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
    RunStats {
        cpu_seconds: run.cpu_seconds,
        wall_seconds: run.wall.as_secs_f64(),
        max_rss_kib: run.max_rss_kib,
        exit_code: run.exit_code,
        signal: run.signal,
        killed_by_backstop: run.killed_by_backstop || run.killed_when_idle,
        stderr_tail: truncate(&tail, 2 * DETAIL_CHARS),
        isolation: Default::default(),
    }
}
