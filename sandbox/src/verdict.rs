//! Verdicts: what happened when a candidate ran against a problem's tests, the first failing
//! test, and how the run was isolated. A [`VerdictKind::SandboxFailure`] means the grader
//! could not judge the program; it is neither a pass nor a fail, and [`Verdict::reward`]
//! returns `None` for it.

use serde::{Deserialize, Serialize};

/// Longest input, expected output or actual output kept in a failure report, in characters.
pub const DETAIL_CHARS: usize = 1000;

/// The outcome class of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VerdictKind {
    Accepted,
    WrongAnswer,
    RuntimeError,
    TimeLimit,
    MemoryLimit,
    CompileError,
    /// The grader itself failed; says nothing about the program.
    SandboxFailure,
}

impl VerdictKind {
    /// Every kind, in display order.
    pub const ALL: [VerdictKind; 7] = [
        VerdictKind::Accepted,
        VerdictKind::WrongAnswer,
        VerdictKind::RuntimeError,
        VerdictKind::TimeLimit,
        VerdictKind::MemoryLimit,
        VerdictKind::CompileError,
        VerdictKind::SandboxFailure,
    ];

    /// Reward of a run of this kind: 1 when accepted, 0 for any failure of the program,
    /// `None` when the sandbox could not judge it.
    pub fn reward(self) -> Option<f64> {
        match self {
            VerdictKind::Accepted => Some(1.0),
            VerdictKind::SandboxFailure => None,
            _ => Some(0.0),
        }
    }

    /// Partial credit `passed / total` of a run of this kind, `None` for sandbox failures.
    pub fn partial_credit(self, passed: usize, total: usize) -> Option<f64> {
        match self {
            VerdictKind::SandboxFailure => None,
            VerdictKind::Accepted => Some(1.0),
            _ if total == 0 => Some(0.0),
            _ => Some(passed as f64 / total as f64),
        }
    }

    /// Short human-readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Accepted => "Accepted",
            VerdictKind::WrongAnswer => "WrongAnswer",
            VerdictKind::RuntimeError => "RuntimeError",
            VerdictKind::TimeLimit => "TimeLimit",
            VerdictKind::MemoryLimit => "MemoryLimit",
            VerdictKind::CompileError => "CompileError",
            VerdictKind::SandboxFailure => "SandboxFailure",
        }
    }
}

impl std::fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first failing test of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedTest {
    /// Index into the list of tests that were run.
    pub index: usize,
    /// What the test fed the program (stdin, argument lines, or the assertion), truncated.
    pub input: String,
    /// The expected output, truncated (empty for assert tests).
    pub expected: String,
    /// What the program produced, truncated, when it produced something comparable.
    pub actual: Option<String>,
    /// The last lines of the exception, or the limit that was hit, truncated.
    pub error: Option<String>,
}

/// Which protections were in force for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IsolationReport {
    /// The program ran in its own network namespace (no route anywhere, not even loopback
    /// of the host).
    pub network_namespace: bool,
    /// The program ran in its own PID namespace: it sees no host process, and everything it
    /// started dies with it.
    pub pid_namespace: bool,
    /// The program ran in its own mount namespace with a fresh `/proc`.
    pub mount_namespace: bool,
    /// `/tmp`, `/var/tmp` and `/dev/shm` were private, discarded afterwards.
    pub private_tmp: bool,
    /// The program ran under a dedicated unprivileged user id, so process-count limits hold.
    pub unprivileged_user: bool,
    /// A seccomp filter denied administrative system calls.
    pub seccomp: bool,
}

impl IsolationReport {
    /// Whether a program can neither reach the host's processes nor outlive its run.
    pub fn contains_processes(&self) -> bool {
        self.pid_namespace && self.unprivileged_user
    }

    /// The protections of full isolation that are not in force, in words.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            (self.network_namespace, "a network namespace"),
            (self.pid_namespace, "a PID namespace"),
            (self.mount_namespace, "a mount namespace"),
            (self.private_tmp, "a private /tmp"),
            (self.unprivileged_user, "a dedicated unprivileged user"),
            (self.seccomp, "the seccomp filter"),
        ]
        .into_iter()
        .filter(|(present, _)| !present)
        .map(|(_, name)| name)
        .collect()
    }

    /// Every protection is in force.
    pub fn is_complete(&self) -> bool {
        self.missing().is_empty()
    }
}

/// How the run went, as seen from outside the program.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunStats {
    /// CPU time of the program process and the children it waited for, in seconds.
    pub cpu_seconds: f64,
    /// Wall-clock time of the whole run, in seconds.
    pub wall_seconds: f64,
    /// Peak resident memory in KiB.
    pub max_rss_kib: u64,
    /// Exit code of the program process, when it exited.
    pub exit_code: Option<i32>,
    /// Signal that ended the program process, when one did.
    pub signal: Option<i32>,
    /// The wall-clock backstop had to kill the run.
    pub killed_by_backstop: bool,
    /// Last lines the program wrote to standard error (diagnostics only).
    pub stderr_tail: String,
    pub isolation: IsolationReport,
}

/// The result of judging one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// Tests passed before the first failure (all of them when accepted).
    pub passed: usize,
    /// Tests that were to be run.
    pub total: usize,
    /// The first failing test, when one failed.
    pub failure: Option<FailedTest>,
    /// Why the program could not be compiled or judged, for compile errors and sandbox
    /// failures.
    pub message: Option<String>,
    pub stats: RunStats,
}

impl Verdict {
    /// Reward of the run: 1 when accepted, 0 for any failure of the program, and `None`
    /// when the sandbox could not judge it (never count that as a pass or a fail).
    pub fn reward(&self) -> Option<f64> {
        self.kind.reward()
    }

    /// Partial credit `passed / total` (tests up to the first failure), `None` for sandbox
    /// failures.
    pub fn partial_credit(&self) -> Option<f64> {
        self.kind.partial_credit(self.passed, self.total)
    }

    /// Whether the program passed every test.
    pub fn is_accepted(&self) -> bool {
        self.kind == VerdictKind::Accepted
    }

    /// A verdict that judges nothing: the grader could not run.
    pub fn sandbox_failure(total: usize, message: impl Into<String>) -> Verdict {
        Verdict {
            kind: VerdictKind::SandboxFailure,
            passed: 0,
            total,
            failure: None,
            message: Some(message.into()),
            stats: RunStats::default(),
        }
    }

    /// A compile error found without running anything (e.g. no code block at all).
    pub fn compile_error(total: usize, message: impl Into<String>) -> Verdict {
        Verdict {
            kind: VerdictKind::CompileError,
            passed: 0,
            total,
            failure: None,
            message: Some(message.into()),
            stats: RunStats::default(),
        }
    }

    /// One-line summary such as `WrongAnswer 2/5`.
    pub fn summary(&self) -> String {
        format!("{} {}/{}", self.kind, self.passed, self.total)
    }
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => {
            let omitted = text[cut..].chars().count();
            format!("{}…[{omitted} more characters]", &text[..cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(kind: VerdictKind, passed: usize, total: usize) -> Verdict {
        Verdict {
            kind,
            passed,
            total,
            failure: None,
            message: None,
            stats: RunStats::default(),
        }
    }

    #[test]
    fn sandbox_failure_has_no_reward() {
        assert_eq!(verdict(VerdictKind::SandboxFailure, 0, 3).reward(), None);
        assert_eq!(
            verdict(VerdictKind::SandboxFailure, 0, 3).partial_credit(),
            None
        );
        assert_eq!(verdict(VerdictKind::Accepted, 3, 3).reward(), Some(1.0));
        for kind in [
            VerdictKind::WrongAnswer,
            VerdictKind::RuntimeError,
            VerdictKind::TimeLimit,
            VerdictKind::MemoryLimit,
            VerdictKind::CompileError,
        ] {
            assert_eq!(verdict(kind, 1, 3).reward(), Some(0.0));
        }
        assert_eq!(
            verdict(VerdictKind::WrongAnswer, 1, 4).partial_credit(),
            Some(0.25)
        );
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 3), "abc…[3 more characters]");
        assert_eq!(truncate("ééé", 2), "éé…[1 more characters]");
    }
}
