//! Sandbox settings: resource limits per run and per test, which protections to ask for,
//! the interpreter, the worker count and where private directories go.

use std::path::PathBuf;
use std::time::Duration;

/// Resource limits of a sandboxed program.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// CPU time per test (LiveCodeBench default: 6 s).
    pub cpu_per_test: Duration,
    /// Wall-clock time per test before the program counts as stuck; `None` = 3 × CPU + 5 s.
    /// Deliberately generous: under load wall time stretches, CPU time does not.
    pub wall_per_test: Option<Duration>,
    /// Wall-clock allowance for interpreter start-up and compilation, on top of the tests.
    pub startup: Duration,
    /// Address-space limit per process, in bytes (a memory bomb gets `MemoryError`).
    pub address_space: u64,
    /// Stack limit per process, in bytes.
    pub stack: u64,
    /// Processes and threads the run's user may have at once.
    pub processes: u64,
    /// Largest file the program may write (this also caps captured standard output).
    pub file_size: u64,
    /// Open file descriptors per process.
    pub open_files: u64,
    /// Bytes of the process's raw standard output and error kept for diagnostics.
    pub captured_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_per_test: Duration::from_secs(6),
            wall_per_test: None,
            startup: Duration::from_secs(20),
            address_space: 2 << 30,
            stack: 64 << 20,
            processes: 16,
            file_size: 64 << 20,
            open_files: 256,
            captured_output: 1 << 20,
        }
    }
}

impl Limits {
    /// The wall-clock limit of one test.
    pub fn wall_per_test(&self) -> Duration {
        self.wall_per_test
            .unwrap_or(self.cpu_per_test * 3 + Duration::from_secs(5))
    }
}

/// Which protections to ask for. Each is used only if the probe at start-up shows it works
/// here; [`crate::Sandbox::isolation`] tells what is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsolationOptions {
    /// A new network namespace (no network at all).
    pub network: bool,
    /// A new PID namespace (nothing outlives the run; host processes are invisible).
    pub pid: bool,
    /// A new mount namespace with a fresh `/proc` and private `/tmp`, `/var/tmp`, `/dev/shm`.
    pub mount: bool,
    /// Run as a dedicated unprivileged user id (when started as root).
    pub drop_privileges: bool,
    /// Install the seccomp deny-list filter.
    pub seccomp: bool,
}

impl Default for IsolationOptions {
    fn default() -> Self {
        IsolationOptions {
            network: true,
            pid: true,
            mount: true,
            drop_privileges: true,
            seccomp: true,
        }
    }
}

/// Everything a [`crate::Sandbox`] is built from.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    /// Python interpreter; `None` = `$MARS2_SANDBOX_PYTHON`, else the first of
    /// `/usr/bin/python3`, `/usr/local/bin/python3`, `python3` on `PATH` that runs sandboxed.
    pub python: Option<PathBuf>,
    pub limits: Limits,
    pub isolation: IsolationOptions,
    /// Parallel runs in batch judging; `None` = the machine's available parallelism.
    pub workers: Option<usize>,
    /// Where private run directories are created; `None` = the system temp directory.
    pub work_root: Option<PathBuf>,
    /// First of 4096 user ids for runs; `None` = a block chosen from the process id.
    pub uid_base: Option<u32>,
}
