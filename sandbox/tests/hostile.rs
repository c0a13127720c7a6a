//! Hostile programs: each must be contained, get the right verdict, and leave nothing
//! running on the host.
//!
//! The destructive ones (fork bomb, `kill -9 -1`) run only after the containment they rely
//! on has been shown with harmless programs: the program is in its own PID namespace, runs
//! under a non-root user id, and the process limit stops 50 harmless sleepers. Otherwise
//! they are skipped with a message. Tests run one at a time (they share a user-id range
//! that the leftover-process check inspects).

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::ops::Range;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use mars2_sandbox::{
    Dataset, Limits, Problem, Sandbox, SandboxConfig, TestCase, TestSet, Verdict, VerdictKind,
};

const PROCESS_LIMIT: u64 = 16;

fn uid_base() -> u32 {
    1_500_000_000 + (std::process::id() % 100_000) * 4096
}

fn uid_range() -> Range<u32> {
    uid_base()..uid_base() + 4096
}

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(SandboxConfig {
            limits: Limits {
                cpu_per_test: Duration::from_secs(2),
                wall_per_test: Some(Duration::from_secs(4)),
                startup: Duration::from_secs(5),
                address_space: 1 << 30,
                processes: PROCESS_LIMIT,
                file_size: 8 << 20,
                ..Limits::default()
            },
            uid_base: Some(uid_base()),
            ..SandboxConfig::default()
        })
        .expect("sandbox")
    })
}

/// Serialises the tests of this file.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A problem with one stdin test expecting `expected`.
fn problem(expected: &str) -> Problem {
    Problem {
        id: "hostile".into(),
        dataset: Dataset::LiveCodeBench,
        title: None,
        statement: String::new(),
        starter_code: String::new(),
        entry_point: None,
        public_tests: vec![TestCase::Stdin {
            input: "hello\n".into(),
            output: expected.into(),
        }],
        hidden_tests: vec![],
        reference_solution: None,
        platform: None,
        difficulty: None,
        split: None,
    }
}

fn judge(code: &str, expected: &str) -> Verdict {
    let verdict = sandbox().judge(&problem(expected), code, TestSet::All);
    assert_nothing_left();
    verdict
}

fn assert_nothing_left() {
    let left = common::host_processes_of_uids(uid_range());
    assert!(left.is_empty(), "processes left on the host: {left:?}");
}

/// Shows, with harmless programs, that a sandboxed program cannot reach host processes and
/// cannot multiply without bound. Returns why not when it cannot be shown.
fn containment_proven() -> Result<(), String> {
    let sandbox = sandbox();
    let report = sandbox.isolation();
    if !report.pid_namespace || !report.unprivileged_user {
        return Err(format!("isolation is {report:?}"));
    }
    let host_ns = std::fs::read_link("/proc/self/ns/pid").map_err(|e| e.to_string())?;
    let out = sandbox
        .run_script(
            r#"
import json, os, time
facts = {"pid": os.getpid(), "uid": os.getuid(), "ns": os.readlink("/proc/self/ns/pid")}
forks = 0
for _ in range(50):
    try:
        child = os.fork()
    except OSError:
        break
    if child == 0:
        time.sleep(30)
        os._exit(0)
    forks += 1
facts["forks"] = forks
print(json.dumps(facts))
"#,
            b"",
        )
        .map_err(|e| e.to_string())?;
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("probe said {:?}: {e}", String::from_utf8_lossy(&out.stderr)))?;
    if Path::new(facts["ns"].as_str().unwrap_or_default()) == host_ns {
        return Err("the program shares the host's PID namespace".into());
    }
    if facts["uid"].as_u64().unwrap_or(0) == 0 {
        return Err("the program runs as root".into());
    }
    if facts["pid"].as_u64().unwrap_or(u64::MAX) > 3 {
        return Err(format!("unexpected pid {}", facts["pid"]));
    }
    let forks = facts["forks"].as_u64().unwrap_or(u64::MAX);
    if forks >= PROCESS_LIMIT {
        return Err(format!(
            "the process limit did not stop the sleepers ({forks} forks)"
        ));
    }
    if !common::host_processes_of_uids(uid_range()).is_empty() {
        return Err("the sleepers outlived the run".into());
    }
    Ok(())
}

fn require_containment(what: &str) -> bool {
    match containment_proven() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIPPED {what}: containment not proven here: {why}");
            false
        }
    }
}

#[test]
fn containment_holds_on_this_machine() {
    let _lock = one_at_a_time();
    // As root on Linux every protection must be in force; elsewhere report what is.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let report = sandbox().isolation();
        assert!(report.network_namespace, "{report:?}");
        assert!(report.pid_namespace, "{report:?}");
        assert!(report.unprivileged_user, "{report:?}");
        containment_proven().expect("containment");
    } else {
        eprintln!("not root: isolation is {:?}", sandbox().isolation());
    }
}

#[test]
fn fork_bomb_is_stopped() {
    let _lock = one_at_a_time();
    if !require_containment("fork bomb") {
        return;
    }
    let started = Instant::now();
    let verdict = judge("import os\nwhile True:\n    os.fork()\n", "hello");
    assert!(
        matches!(
            verdict.kind,
            VerdictKind::RuntimeError | VerdictKind::TimeLimit
        ),
        "{verdict:#?}"
    );
    if verdict.kind == VerdictKind::RuntimeError {
        let error = verdict.failure.and_then(|f| f.error).unwrap_or_default();
        assert!(error.contains("BlockingIOError"), "{error}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn kill_everything_kills_only_the_program() {
    let _lock = one_at_a_time();
    if !require_containment("kill -9 -1") {
        return;
    }
    let host_ns = std::fs::read_link("/proc/self/ns/pid").expect("host pid namespace");
    // A host process the program must not be able to touch.
    let mut canary = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("canary");
    // The program checks its own containment once more before it fires.
    let code = format!(
        r#"
import os, subprocess, sys
if os.getuid() == 0 or os.readlink("/proc/self/ns/pid") == {host:?}:
    print("refusing: not contained")
    sys.exit(0)
sleepers = [subprocess.Popen(["sleep", "100"]) for _ in range(3)]
os.system("kill -9 -1")
print("hello")
"#,
        host = host_ns.display().to_string()
    );
    let verdict = judge(&code, "hello");
    assert_eq!(verdict.kind, VerdictKind::RuntimeError, "{verdict:#?}");
    assert_eq!(verdict.stats.signal, Some(libc::SIGKILL));
    assert!(
        canary.try_wait().expect("canary status").is_none(),
        "the host canary died"
    );
    canary.kill().expect("stop canary");
    canary.wait().expect("reap canary");
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let _lock = one_at_a_time();
    // The address-space limit refuses the mappings whether or not their pages are touched;
    // untouched pages keep the test fast on a busy machine.
    let verdict = judge(
        "chunks = []\nwhile True:\n    chunks.append(bytearray(10**8))\n",
        "hello",
    );
    assert_eq!(verdict.kind, VerdictKind::MemoryLimit, "{verdict:#?}");
    assert!(
        verdict.stats.max_rss_kib < 2 << 20,
        "{}",
        verdict.stats.max_rss_kib
    );
}

#[test]
fn infinite_loop_hits_the_time_limit() {
    let _lock = one_at_a_time();
    let started = Instant::now();
    let verdict = judge("while True:\n    pass\n", "hello");
    assert_eq!(verdict.kind, VerdictKind::TimeLimit, "{verdict:#?}");
    let error = verdict.failure.and_then(|f| f.error).unwrap_or_default();
    // The CPU timer (2 s) stops it; on a loaded machine the wall-clock timer (4 s) may
    // come first. Either is a time limit.
    assert!(error.contains("time limit exceeded"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn sleeping_forever_hits_the_wall_clock_limit() {
    let _lock = one_at_a_time();
    let verdict = judge("import time\ntime.sleep(10**6)\n", "hello");
    assert_eq!(verdict.kind, VerdictKind::TimeLimit, "{verdict:#?}");
    assert!(verdict.stats.wall_seconds < 20.0);
}

#[test]
fn a_loop_that_blocks_every_timer_signal_is_still_stopped() {
    let _lock = one_at_a_time();
    let code = "import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGPROF, signal.SIGALRM, signal.SIGXCPU])\nwhile True:\n    pass\n";
    let started = Instant::now();
    let verdict = judge(code, "hello");
    assert_eq!(verdict.kind, VerdictKind::TimeLimit, "{verdict:#?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn infinite_output_hits_the_output_limit() {
    let _lock = one_at_a_time();
    let verdict = judge("while True:\n    print('x' * 1000)\n", "hello");
    assert_eq!(verdict.kind, VerdictKind::RuntimeError, "{verdict:#?}");
    let failure = verdict.failure.expect("failure");
    assert!(
        failure
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("output limit"),
        "{failure:?}"
    );
    assert!(failure.actual.unwrap_or_default().len() < 2000);
}

#[test]
fn infinite_error_output_is_capped() {
    let _lock = one_at_a_time();
    let verdict = judge(
        "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)\n",
        "hello",
    );
    assert_eq!(verdict.kind, VerdictKind::TimeLimit, "{verdict:#?}");
    assert!(verdict.stats.stderr_tail.len() < 10_000);
}

#[test]
fn no_network_not_even_the_hosts_loopback() {
    let _lock = one_at_a_time();
    if !sandbox().isolation().network_namespace {
        eprintln!("SKIPPED: no network namespace here");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("address").port();
    let code = format!(
        r#"
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    print("connected")
except OSError as e:
    print("blocked")
"#
    );
    let verdict = judge(&code, "blocked");
    assert!(verdict.is_accepted(), "{verdict:#?}");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the program reached the host: {other:?}"),
    }
}

#[test]
fn writes_outside_the_run_directory_do_not_reach_the_host() {
    let _lock = one_at_a_time();
    let isolation = sandbox().isolation();
    if !isolation.private_tmp || !isolation.unprivileged_user {
        eprintln!("SKIPPED: no private /tmp or no dedicated user here: {isolation:?}");
        return;
    }
    let marker = format!("mars2-hostile-{}", std::process::id());
    let repo_target = common::package_dir().join(&marker);
    let targets = [
        repo_target.clone(),
        Path::new("/tmp").join(&marker),
        Path::new("/var/tmp").join(&marker),
        Path::new("/dev/shm").join(&marker),
        Path::new("/etc").join(&marker),
    ];
    let list: Vec<String> = targets.iter().map(|t| t.display().to_string()).collect();
    let code = format!(
        r#"
import os
written = []
for path in {list:?}:
    try:
        with open(path, "w") as f:
            f.write("pwned")
        written.append(path)
    except OSError:
        pass
with open("inside.txt", "w") as f:
    f.write("fine")
print("ok")
"#
    );
    let verdict = judge(&code, "ok");
    assert!(verdict.is_accepted(), "{verdict:#?}");
    for target in &targets {
        assert!(!target.exists(), "{} reached the host", target.display());
    }
}

#[test]
fn the_parents_environment_is_out_of_reach() {
    let _lock = one_at_a_time();
    if !sandbox().isolation().contains_processes() {
        eprintln!("SKIPPED: host processes are visible here");
        return;
    }
    // Cargo sets CARGO_* variables for this test process.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    let code = r#"
import glob, os
leaks = [k for k in os.environ if k.startswith("CARGO")]
for path in glob.glob("/proc/[0-9]*/environ"):
    try:
        with open(path, "rb") as f:
            if b"CARGO" in f.read():
                leaks.append(path)
    except OSError:
        pass
allowed = {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "OPENBLAS_NUM_THREADS",
           "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "LC_CTYPE"}
extra = sorted(set(os.environ) - allowed)
print("clean" if not leaks and not extra else "leaked %r %r" % (leaks, extra))
"#;
    let verdict = judge(code, "clean");
    assert!(verdict.is_accepted(), "{verdict:#?}");
}

#[test]
fn killing_the_parent_only_hurts_the_program() {
    let _lock = one_at_a_time();
    // Unisolated, "the parent" would be this test process (or, as root, init).
    if !require_containment("killing the parent") {
        return;
    }
    let code = r#"
import os, signal
for target in (1, os.getppid()):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError:
        pass
print("hello")
"#;
    let verdict = judge(code, "hello");
    // In a PID namespace the parent is invisible (getppid() is 0): signalling "it" signals
    // the program's own process group, and only the program itself may be hit.
    assert!(
        matches!(
            verdict.kind,
            VerdictKind::RuntimeError | VerdictKind::Accepted
        ),
        "{verdict:#?}"
    );
    assert_ne!(verdict.kind, VerdictKind::SandboxFailure);
}

#[test]
fn a_double_forked_daemon_does_not_outlive_the_run() {
    let _lock = one_at_a_time();
    if !sandbox().isolation().pid_namespace {
        eprintln!("SKIPPED: no PID namespace here");
        return;
    }
    let marker = format!("mars2-daemon-{}", std::process::id());
    let code = format!(
        r#"
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "{marker}"])
    os._exit(0)
print("hello")
"#
    );
    let verdict = judge(&code, "hello");
    assert!(verdict.is_accepted(), "{verdict:#?}");
    assert!(
        common::host_processes_with(&marker).is_empty(),
        "the daemon outlived the run"
    );
}

#[test]
fn unbounded_recursion_is_contained() {
    let _lock = one_at_a_time();
    let code =
        "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n";
    let verdict = judge(code, "hello");
    // Which limit it meets first depends on the machine's speed: all three are right.
    assert!(
        matches!(
            verdict.kind,
            VerdictKind::RuntimeError | VerdictKind::MemoryLimit | VerdictKind::TimeLimit
        ),
        "{verdict:#?}"
    );
}

#[test]
fn deep_but_finite_recursion_works() {
    let _lock = one_at_a_time();
    let code = "import sys\nsys.setrecursionlimit(10**6)\ndef depth(n):\n    return 0 if n == 0 else depth(n - 1) + 1\nprint(depth(200000))\n";
    let verdict = judge(code, "200000");
    assert!(verdict.is_accepted(), "{verdict:#?}");
}

#[test]
fn seccomp_denies_tracing_and_namespaces() {
    let _lock = one_at_a_time();
    if !sandbox().isolation().seccomp {
        eprintln!("SKIPPED: no seccomp filter here");
        return;
    }
    let code = r#"
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
results = []
results.append((libc.ptrace(0, 0, 0, 0), ctypes.get_errno()))
results.append((libc.unshare(0x40000000), ctypes.get_errno()))
print("denied" if all(r == -1 and e == errno.EPERM for r, e in results) else results)
"#;
    let verdict = judge(code, "denied");
    assert!(verdict.is_accepted(), "{verdict:#?}");
}

#[test]
fn forged_harness_events_are_ignored() {
    let _lock = one_at_a_time();
    // Writes a fake "all passed" report on every descriptor it can find: on its answer
    // channel that garbles its own answer, which is the program's runtime error.
    let code = r#"
import os
fake = b'{"ev": "pass", "i": 0, "nonce": "x"}\n{"ev": "done", "nonce": "x"}\n'
for fd in range(3, 64):
    try:
        os.write(fd, fake)
    except OSError:
        pass
print("wrong")
"#;
    let verdict = judge(code, "right");
    assert_eq!(verdict.kind, VerdictKind::RuntimeError, "{verdict:#?}");
    let error = verdict.failure.and_then(|f| f.error).unwrap_or_default();
    assert!(error.contains("could not be read"), "{error}");
}
