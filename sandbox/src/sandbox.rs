//! The [`Sandbox`]: built once (probing which protections work on this machine), then used
//! to judge candidates against problems, alone or in parallel, and to run raw scripts under
//! the same isolation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use crate::config::{Limits, SandboxConfig};
use crate::error::SandboxError;
use crate::isolate::{IsolationPlan, Rlimit};
use crate::problem::{Problem, TestSet};
use crate::referee::{Referee, RefereePool};
use crate::runner::{self, RawRun, RefereeSession, RunRequest};
use crate::verdict::{IsolationReport, Verdict};
use crate::workdir::WorkDir;
use crate::{extract, harness, judge, pool, probe, uid};

/// Runs untrusted Python programs in isolated processes.
#[derive(Debug, Clone)]
pub struct Sandbox {
    config: SandboxConfig,
    python: PathBuf,
    plan: IsolationPlan,
    report: IsolationReport,
    uid_start: u32,
    work_root: PathBuf,
    workers: usize,
    /// The harness, byte-compiled by the chosen interpreter when possible (saves compiling
    /// it in every run), else its source.
    harness: (&'static str, Vec<u8>),
    /// Referee processes, shared by the sandbox's clones.
    referees: Option<Arc<RefereePool>>,
}

/// A program to judge.
#[derive(Debug, Clone, Copy)]
pub enum Program<'a> {
    /// Python source, judged as it is.
    Code(&'a str),
    /// A model's answer: the last fenced Python block that compiles is judged.
    Response(&'a str),
}

/// One item of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub problem: &'a Problem,
    pub program: Program<'a>,
    pub tests: TestSet,
}

/// Output of a raw script run with [`Sandbox::run_script`].
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    /// Standard output (the first [`Limits::captured_output`] bytes).
    pub stdout: Vec<u8>,
    /// Standard error (the last [`Limits::captured_output`] bytes).
    pub stderr: Vec<u8>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    pub killed_by_backstop: bool,
    pub stdout_truncated: bool,
}

/// Limits of one launch.
pub(crate) struct LaunchLimits {
    pub cpu_total: Duration,
    pub deadline: Duration,
    pub idle: Option<Duration>,
    pub file_size: u64,
    pub address_space: u64,
}

impl Sandbox {
    /// Builds a sandbox, finding an interpreter and the strongest isolation that works.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let work_root = config.work_root.clone().unwrap_or_else(std::env::temp_dir);
        let workers = config.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let mut sandbox = Sandbox {
            uid_start: uid::block_start(config.uid_base),
            python: PathBuf::new(),
            plan: IsolationPlan::default(),
            report: IsolationReport::default(),
            work_root,
            workers: workers.max(1),
            config,
            harness: (
                harness::HARNESS_FILE,
                harness::HARNESS_SOURCE.as_bytes().to_vec(),
            ),
            referees: None,
        };
        let (python, plan, report) = probe::choose(&sandbox)?;
        sandbox.python = python;
        sandbox.plan = plan;
        sandbox.report = report;
        if let Some(compiled) = sandbox.compile_harness() {
            sandbox.harness = (harness::COMPILED_HARNESS_FILE, compiled);
        }
        sandbox.referees = Some(Arc::new(RefereePool::new(
            &sandbox.python,
            &sandbox.work_root,
            sandbox.workers,
        )?));
        Ok(sandbox)
    }

    /// The referees' pool (present once the sandbox is built).
    pub(crate) fn referees(&self) -> Result<&RefereePool, SandboxError> {
        self.referees
            .as_deref()
            .ok_or_else(|| SandboxError::Probe("the sandbox has no referees yet".into()))
    }

    /// Byte-compiles the harness with the sandbox's interpreter, in the sandbox.
    fn compile_harness(&self) -> Option<Vec<u8>> {
        let out = self
            .run_script(COMPILE_HARNESS_SCRIPT, harness::HARNESS_SOURCE.as_bytes())
            .ok()?;
        let ok = out.exit_code == Some(0) && !out.stdout_truncated && out.stdout.len() > 16;
        ok.then_some(out.stdout)
    }

    /// File name and contents of the harness program.
    pub(crate) fn harness_program(&self) -> (&'static str, &[u8]) {
        (self.harness.0, &self.harness.1)
    }

    /// A sandbox with default settings.
    pub fn with_defaults() -> Result<Sandbox, SandboxError> {
        Sandbox::new(SandboxConfig::default())
    }

    /// The protections in force for every run.
    pub fn isolation(&self) -> IsolationReport {
        self.report
    }

    /// Fails, naming what is missing, unless every protection is in force.
    pub fn require_full_isolation(&self) -> Result<(), SandboxError> {
        let missing = self.report.missing();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SandboxError::WeakIsolation {
                missing: missing.join(", "),
            })
        }
    }

    /// The interpreter programs run with.
    pub fn python(&self) -> &Path {
        &self.python
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// Parallel runs used by [`Sandbox::judge_all`].
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Judges Python source against the chosen tests of a problem.
    pub fn judge(&self, problem: &Problem, code: &str, tests: TestSet) -> Verdict {
        judge::judge(self, problem, &[code.to_string()], tests)
    }

    /// Judges a model's answer: the last fenced Python block (≥ 20 characters) that
    /// compiles. An answer without such a block is a compile error.
    pub fn judge_response(&self, problem: &Problem, response: &str, tests: TestSet) -> Verdict {
        let blocks = extract::candidate_blocks(response);
        judge::judge(self, problem, &blocks, tests)
    }

    /// Judges one submission.
    pub fn judge_submission(&self, submission: &Submission<'_>) -> Verdict {
        match submission.program {
            Program::Code(code) => self.judge(submission.problem, code, submission.tests),
            Program::Response(text) => {
                self.judge_response(submission.problem, text, submission.tests)
            }
        }
    }

    /// Judges many submissions on [`Sandbox::workers`] parallel runs; verdicts come back
    /// in input order. `on_done` is called (from worker threads) as each one finishes.
    pub fn judge_all(
        &self,
        submissions: &[Submission<'_>],
        on_done: impl Fn(usize, &Verdict) + Sync,
    ) -> Vec<Verdict> {
        pool::map_parallel(submissions, self.workers, |index, submission| {
            let verdict = self.judge_submission(submission);
            on_done(index, &verdict);
            verdict
        })
    }

    /// Which of `sources` parse as Python, checked by the real parser in one sandboxed run.
    pub fn parses(&self, sources: &[&str]) -> Result<Vec<bool>, SandboxError> {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let input = serde_json::to_vec(sources).map_err(|e| {
            SandboxError::io("encode sources", std::io::Error::other(e.to_string()))
        })?;
        let out = self.run_script(PARSE_CHECK_SCRIPT, &input)?;
        let verdicts: Vec<bool> = serde_json::from_slice(&out.stdout).map_err(|e| {
            SandboxError::Probe(format!(
                "syntax check gave no answer ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        })?;
        if verdicts.len() != sources.len() {
            return Err(SandboxError::Probe(
                "syntax check answer has the wrong length".into(),
            ));
        }
        Ok(verdicts)
    }

    /// The program in a model's answer: the last fenced Python block (≥ 20 characters)
    /// that parses.
    pub fn extract_code(&self, response: &str) -> Result<Option<String>, SandboxError> {
        let blocks = extract::candidate_blocks(response);
        let refs: Vec<&str> = blocks.iter().map(String::as_str).collect();
        let ok = self.parses(&refs)?;
        Ok(blocks
            .into_iter()
            .zip(ok)
            .rev()
            .find(|(_, ok)| *ok)
            .map(|(b, _)| b))
    }

    /// Runs a Python script under the sandbox's isolation with `stdin` as standard input,
    /// limited to one test's CPU and wall-clock time.
    pub fn run_script(&self, script: &str, stdin: &[u8]) -> Result<ScriptOutput, SandboxError> {
        let limits = &self.config.limits;
        let run = self.launch(
            &[("main.py", script.as_bytes())],
            "main.py",
            Some(stdin),
            LaunchLimits {
                cpu_total: limits.cpu_per_test,
                deadline: limits.wall_per_test(),
                idle: None,
                file_size: limits.file_size,
                address_space: limits.address_space,
            },
            None,
        )?;
        Ok(ScriptOutput {
            stdout_truncated: run.stdout.truncated(),
            stdout: run.stdout.bytes,
            stderr: run.stderr.bytes,
            exit_code: run.exit_code,
            signal: run.signal,
            cpu_seconds: run.cpu_seconds,
            wall_seconds: run.wall.as_secs_f64(),
            killed_by_backstop: run.killed_by_backstop,
        })
    }

    /// Runs `main` (one of `files`) in a fresh private directory under the current plan; with
    /// a referee, the program gets its two pipes to the referee (their descriptor numbers as
    /// the last arguments) and the referee gets `job`.
    pub(crate) fn launch(
        &self,
        files: &[(&str, &[u8])],
        main: &str,
        stdin: Option<&[u8]>,
        limits: LaunchLimits,
        referee: Option<(&Referee, Vec<u8>)>,
    ) -> Result<RawRun, SandboxError> {
        self.launch_with(self.plan, &self.python, files, main, stdin, limits, referee)
    }

    /// As [`Sandbox::launch`], with an explicit plan and interpreter (used by the probe).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn launch_with(
        &self,
        plan: IsolationPlan,
        python: &Path,
        files: &[(&str, &[u8])],
        main: &str,
        stdin: Option<&[u8]>,
        limits: LaunchLimits,
        referee: Option<(&Referee, Vec<u8>)>,
    ) -> Result<RawRun, SandboxError> {
        let credentials = plan.drop_privileges.then(|| {
            let id = uid::next_uid(self.uid_start);
            (id, id)
        });
        let dir = WorkDir::create(&self.work_root, credentials)?;
        for (name, contents) in files {
            dir.write(name, contents)?;
        }
        let stdin_path = match stdin {
            Some(bytes) => Some(dir.write("stdin.bin", bytes)?),
            None => None,
        };
        let (pass_fds, session) = match referee {
            Some((referee, job)) => {
                let (request_read, request_write) = runner::pipe()?;
                let (answer_read, answer_write) = runner::pipe()?;
                let session = RefereeSession {
                    referee,
                    request_write,
                    answer_read,
                    job,
                };
                (vec![request_read, answer_write], Some(session))
            }
            None => (Vec::new(), None),
        };
        let request = RunRequest {
            python,
            args: ["-I", "-B", "-X", "utf8", main]
                .iter()
                .map(Into::into)
                .collect(),
            workdir: dir.path(),
            stdin: stdin_path,
            env: self.environment(plan, dir.path()),
            plan,
            credentials,
            rlimits: self.rlimits(&limits, credentials.is_some()),
            deadline: limits.deadline,
            idle_timeout: limits.idle,
            output_cap: self.config.limits.captured_output,
            pass_fds,
            referee: session,
            results_cap: 64 << 20,
        };
        let run = runner::run(request);
        dir.remove()?;
        run
    }

    fn environment(&self, plan: IsolationPlan, workdir: &Path) -> Vec<(String, String)> {
        let temp = if plan.mount {
            "/tmp".to_string()
        } else {
            workdir.display().to_string()
        };
        let mut env: Vec<(String, String)> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("OPENBLAS_NUM_THREADS", "1"),
            ("OMP_NUM_THREADS", "1"),
            ("MKL_NUM_THREADS", "1"),
            ("NUMEXPR_NUM_THREADS", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.push(("HOME".into(), temp.clone()));
        env.push(("TMPDIR".into(), temp));
        env
    }

    fn rlimits(&self, limits: &LaunchLimits, dedicated_user: bool) -> Vec<Rlimit> {
        let config = &self.config.limits;
        let both = |resource, value: u64| Rlimit {
            resource,
            soft: value as libc::rlim_t,
            hard: value as libc::rlim_t,
        };
        let cpu = limits.cpu_total.as_secs_f64().ceil().max(1.0) as u64;
        let mut list = vec![
            both(libc::RLIMIT_CPU, cpu),
            both(libc::RLIMIT_AS, limits.address_space),
            both(libc::RLIMIT_STACK, config.stack.min(limits.address_space)),
            both(libc::RLIMIT_FSIZE, limits.file_size),
            both(libc::RLIMIT_NOFILE, config.open_files),
            both(libc::RLIMIT_CORE, 0),
        ];
        // Process counts are per user: only meaningful for a user of our own.
        if dedicated_user {
            list.push(both(libc::RLIMIT_NPROC, config.processes));
        }
        list
    }
}

/// Reads the harness source on standard input, writes it byte-compiled (a `.pyc` that the
/// interpreter runs directly).
const COMPILE_HARNESS_SCRIPT: &str = r#"
import importlib.util, marshal, sys
code = compile(sys.stdin.buffer.read(), "harness.py", "exec")
sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code))
"#;

/// Reads a JSON list of sources on standard input, prints a JSON list of booleans.
const PARSE_CHECK_SCRIPT: &str = r#"
import json, sys
result = []
for source in json.loads(sys.stdin.buffer.read()):
    try:
        compile(source, "candidate.py", "exec")
        result.append(True)
    except BaseException:
        result.append(False)
sys.stdout.write(json.dumps(result))
"#;
