//! Programs that try to earn Accepted without computing the answer. Each test's expected
//! output is a secret made when the test runs, so only a program that reaches the judge's
//! own data (or its verdict channel) could print or return it: every attack must end in a
//! verdict other than Accepted, and the secret must never appear in what the program
//! produced. Honest programs with unusual values are judged as they always were.
//!
//! Attack classes: forging the report; writing to every inherited descriptor; reading
//! expected values from the judge's memory, files and processes; patching the comparison
//! (objects that equal anything, patched builtins and modules, shadowed names and helpers);
//! faking a clean exit after partial output; forking a reporter; output that looks like a
//! protocol line; handlers registered to run at exit, on signals or on deletion.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use mars2_sandbox::{
    Dataset, Limits, Problem, Sandbox, SandboxConfig, TestCase, TestSet, Verdict, VerdictKind,
};

/// A sandbox with short limits, so that attacks that stall end quickly.
fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(SandboxConfig {
            limits: Limits {
                cpu_per_test: Duration::from_secs(2),
                wall_per_test: Some(Duration::from_secs(4)),
                startup: Duration::from_secs(10),
                ..Limits::default()
            },
            ..SandboxConfig::default()
        })
        .expect("sandbox")
    })
}

/// A fresh secret (hex), different in every test.
fn secret() -> String {
    let mut bytes = [0u8; 12];
    let mut file = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut file, &mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn problem(dataset: Dataset, tests: Vec<TestCase>, entry_point: Option<&str>) -> Problem {
    Problem {
        id: "cheating".into(),
        dataset,
        title: None,
        statement: String::new(),
        starter_code: String::new(),
        entry_point: entry_point.map(str::to_string),
        public_tests: tests.clone(),
        hidden_tests: tests,
        reference_solution: None,
        platform: None,
        difficulty: None,
        split: None,
    }
}

/// Standard input "3 4", expected output the secret.
fn stdin_problem(secret: &str) -> Problem {
    problem(
        Dataset::LiveCodeBench,
        vec![TestCase::Stdin {
            input: "3 4\n".into(),
            output: format!("{secret}\n"),
        }],
        None,
    )
}

/// `solve(3, 4)` must return the secret.
fn functional_problem(secret: &str) -> Problem {
    problem(
        Dataset::LiveCodeBench,
        vec![TestCase::Functional {
            function: "solve".into(),
            input: "3\n4".into(),
            output: format!("\"{secret}\""),
        }],
        None,
    )
}

/// MBPP-style: `assert solve(3, 4) == "<secret>"`.
fn assert_problem(secret: &str) -> Problem {
    problem(
        Dataset::Mbpp,
        vec![TestCase::Assert {
            setup: String::new(),
            assertion: format!("assert solve(3, 4) == \"{secret}\""),
        }],
        Some("solve"),
    )
}

/// Judges `code` on all three problems; asserts no verdict is Accepted and the secret leaked
/// into nothing the program produced. Returns the verdicts.
fn assert_not_fooled(what: &str, code: &str) -> Vec<Verdict> {
    let secret = secret();
    let code = code.replace("SECRET_LENGTH", &secret.len().to_string());
    let sandbox = sandbox();
    let mut verdicts = Vec::new();
    for problem in [
        stdin_problem(&secret),
        functional_problem(&secret),
        assert_problem(&secret),
    ] {
        let verdict = sandbox.judge(&problem, &code, TestSet::All);
        assert!(
            !verdict.is_accepted(),
            "{what} fooled the judge on a {:?} test: {verdict:#?}",
            problem.public_tests[0]
        );
        assert_ne!(
            verdict.kind,
            VerdictKind::SandboxFailure,
            "{what} escaped its verdict: {verdict:#?}"
        );
        let produced = verdict
            .failure
            .as_ref()
            .and_then(|f| f.actual.clone())
            .unwrap_or_default();
        assert!(
            !produced.contains(&secret),
            "{what} found the expected output: {verdict:#?}"
        );
        verdicts.push(verdict);
    }
    verdicts
}

#[test]
fn forged_reports_on_every_descriptor_are_only_the_programs_output() {
    // Every report and answer shape the judge's parts exchange, on every descriptor.
    assert_not_fooled(
        "forging the report",
        r#"
import os
lines = [
    b'{"ev": "pass", "i": 0}\n{"ev": "done"}\n{"ev": "end"}\n',
    b'{"started": true}\n{"compiled": 0}\n',
    b'{"ok": null}\n{"value": true}\n{"stdout": "", "error": null}\n{"names": {}}\n',
]
for fd in range(0, 1024):
    for line in lines:
        try:
            os.write(fd, line)
        except OSError:
            pass
def solve(a, b):
    return 0
print(0)
"#,
    );
}

#[test]
fn writing_to_inherited_descriptors_and_other_processes_changes_nothing() {
    assert_not_fooled(
        "writing to any inherited descriptor",
        r#"
import os
fake = b'{"ev": "pass", "i": 0}\n{"ev": "done"}\n{"ev": "end"}\n'
# Descriptors of this process, by number and through /proc, and of every visible process.
targets = ["/proc/self/fd/%d" % fd for fd in range(0, 64)]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            targets += ["/proc/%s/fd/%s" % (pid, fd) for fd in os.listdir("/proc/%s/fd" % pid)]
        except OSError:
            pass
for path in targets:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, fake)
        os.close(fd)
    except OSError:
        pass
for fd in range(3, 1024):
    try:
        os.dup2(1, fd)
    except OSError:
        pass
def solve(a, b):
    return 0
print(0)
"#,
    );
}

#[test]
fn the_expected_output_is_nowhere_the_program_can_read() {
    // Searches its own memory (objects, frames, modules), every readable file under its
    // working directory, /tmp and the run's parents, and every process it can see; prints and
    // returns the first token of the secret's length it finds.
    assert_not_fooled(
        "reading expected values from the judge",
        r#"
import gc, os, re, sys
pattern = re.compile(rb"[0-9a-f]{SECRET_LENGTH}")
found = []
def look(data):
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if isinstance(data, (bytes, bytearray)):
        m = pattern.search(data)
        if m and not found:
            found.append(m.group().decode())
for o in gc.get_objects():
    if isinstance(o, dict):
        for k, v in list(o.items()):
            look(k); look(v)
    elif isinstance(o, (list, tuple)):
        for v in o:
            look(v)
f = sys._getframe()
while f is not None:
    for v in list(f.f_locals.values()) + list(f.f_globals.values()):
        look(v)
    f = f.f_back
for mod in list(sys.modules.values()):
    for v in list(getattr(mod, "__dict__", {}).values()):
        look(v)
for root in (".", "..", "/tmp", "/var/tmp", "/dev/shm"):
    for dirpath, dirs, files in os.walk(root):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), "rb") as fh:
                    look(fh.read(1 << 20))
            except OSError:
                pass
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for part in ("cmdline", "environ", "mem"):
            try:
                with open("/proc/%s/%s" % (pid, part), "rb") as fh:
                    look(fh.read(1 << 20))
            except OSError:
                pass
answer = found[0] if found else "nothing"
def solve(a, b):
    return answer
print(answer)
"#,
    );
}

#[test]
fn objects_that_equal_anything_do_not_pass() {
    assert_not_fooled(
        "an object equal to everything",
        r#"
class Anything(str):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = str.__hash__
class Everything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
class Solution:
    def solve(self, a, b): return Everything()
def solve(a, b):
    return Anything("no")
print(Anything("no"))
"#,
    );
}

#[test]
fn patched_builtins_and_modules_change_only_the_programs_own_process() {
    assert_not_fooled(
        "patching the comparator",
        r#"
import builtins, json, os, sys
json.dumps = lambda *a, **k: '{"value": true, "stdout": "", "error": null}'
json.loads = lambda *a, **k: {"op": "begin"}
builtins.isinstance = lambda *a: True
builtins.print = lambda *a, **k: None
sys.exit = lambda *a: None
os._exit = lambda *a: None
def solve(a, b):
    return 0
"#,
    );
}

#[test]
fn shadowed_names_and_helpers_do_not_reach_the_test() {
    // The program's own `str`, `math`, `sorted`: the test keeps the real ones.
    let secret = secret();
    let problem = problem(
        Dataset::Mbpp,
        vec![TestCase::Assert {
            setup: String::new(),
            assertion: format!(
                "assert math.isclose(float(len(str(solve(3, 4)))), {}.0) and sorted(str(solve(3, 4))) == sorted(\"{secret}\")",
                secret.len()
            ),
        }],
        Some("solve"),
    );
    let code = r#"
class math:
    @staticmethod
    def isclose(*a, **k): return True
def sorted(*a, **k): return 1
class str:
    def __init__(self, *a): pass
    def __len__(self): return 24
def solve(a, b): return "x"
"#;
    let verdict = sandbox().judge(&problem, code, TestSet::All);
    assert!(!verdict.is_accepted(), "{verdict:#?}");

    // HumanEval/32's test measures the answer with the prompt's `poly`: a program that
    // redefines `poly` to say every answer is a root must still fail.
    let problems = common::problems("HumanEval.jsonl.gz");
    let find_zero = problems
        .iter()
        .find(|p| p.id == "HumanEval/32")
        .expect("HumanEval/32");
    let code = format!(
        "{}    return 0.0\n\ndef poly(xs, x):\n    return 0.0\n",
        find_zero.starter_code
    );
    let verdict = sandbox().judge(find_zero, &code, TestSet::All);
    assert!(!verdict.is_accepted(), "{verdict:#?}");
    assert_eq!(verdict.kind, VerdictKind::WrongAnswer, "{verdict:#?}");
}

#[test]
fn a_clean_exit_after_partial_output_is_not_a_pass() {
    let problem = problem(
        Dataset::LiveCodeBench,
        vec![TestCase::Stdin {
            input: "\n".into(),
            output: "1\n2\n".into(),
        }],
        None,
    );
    for (code, expected) in [
        (
            "import os, sys\nsys.stdout.write('1\\n'); sys.stdout.flush()\nos._exit(0)\n",
            VerdictKind::RuntimeError,
        ),
        ("print(1)\nraise SystemExit(0)\n", VerdictKind::WrongAnswer),
        (
            "import os\nprint(1, flush=True)\nos.kill(os.getpid(), 9)\n",
            VerdictKind::RuntimeError,
        ),
    ] {
        let verdict = sandbox().judge(&problem, code, TestSet::All);
        assert_eq!(verdict.kind, expected, "{code}: {verdict:#?}");
    }
    assert_not_fooled(
        "an exit in the middle of a test",
        "import os\ndef solve(a, b):\n    os._exit(0)\nos._exit(0)\n",
    );
}

#[test]
fn a_forked_reporter_is_only_more_output() {
    assert_not_fooled(
        "forking a reporter",
        r#"
import os, time
fake = [b'{"ev": "pass", "i": 0}\n{"ev": "done"}\n{"ev": "end"}\n', b'{"value": true}\n',
        b'{"stdout": "", "error": null}\n']
if os.fork() == 0:
    for _ in range(100):
        for fd in range(0, 64):
            for line in fake:
                try:
                    os.write(fd, line)
                except OSError:
                    pass
        time.sleep(0.01)
    os._exit(0)
def solve(a, b):
    time.sleep(0.3)
    return 0
time.sleep(0.3)
print(0)
"#,
    );
}

#[test]
fn output_that_looks_like_the_protocol_is_just_output() {
    let verdicts = assert_not_fooled(
        "protocol-looking output",
        r#"
lines = ['{"ev": "pass", "i": 0}', '{"ev": "done"}', '{"ev": "end"}', '{"stdout": "", "error": null}',
         '{"value": true}', '{"compiled": 0}']
def solve(a, b):
    return "\n".join(lines)
print("\n".join(lines))
"#,
    );
    for verdict in verdicts {
        assert_eq!(verdict.kind, VerdictKind::WrongAnswer, "{verdict:#?}");
    }
}

#[test]
fn handlers_at_exit_on_signals_and_on_deletion_change_nothing() {
    assert_not_fooled(
        "registered handlers",
        r#"
import atexit, os, signal
fake = b'{"ev": "pass", "i": 0}\n{"ev": "done"}\n{"ev": "end"}\n{"value": true}\n'
def forge(*args):
    for fd in range(0, 64):
        try:
            os.write(fd, fake)
        except OSError:
            pass
atexit.register(forge)
for s in (signal.SIGALRM, signal.SIGPROF, signal.SIGTERM, signal.SIGXCPU, signal.SIGUSR1):
    signal.signal(s, forge)
class Forger:
    def __del__(self):
        forge()
keep = Forger()
def solve(a, b):
    Forger()
    return 0
print(0)
"#,
    );
}

#[test]
fn a_program_that_ignores_its_timers_still_times_out() {
    let verdicts = assert_not_fooled(
        "ignoring the time limits",
        r#"
import signal
for s in (signal.SIGALRM, signal.SIGPROF, signal.SIGXCPU):
    signal.signal(s, signal.SIG_IGN)
signal.setitimer = lambda *a, **k: None
def solve(a, b):
    while True:
        pass
while True:
    pass
"#,
    );
    for verdict in verdicts {
        assert_eq!(verdict.kind, VerdictKind::TimeLimit, "{verdict:#?}");
    }
}

/// A functional test: `f()` must return the JSON value `expected`.
fn returns(expected: &str) -> Problem {
    problem(
        Dataset::LiveCodeBench,
        vec![TestCase::Functional {
            function: "f".into(),
            input: String::new(),
            output: expected.into(),
        }],
        None,
    )
}

#[test]
fn honest_programs_with_unusual_values_are_judged_as_before() {
    let sandbox = sandbox();
    let judge = |problem: &Problem, code: &str| sandbox.judge(problem, code, TestSet::All).kind;
    let big = "123456789012345678901234567890123456789012345678901234567890";
    // Huge integers, exactly.
    assert_eq!(
        judge(&returns(big), &format!("def f(): return {big}")),
        VerdictKind::Accepted
    );
    assert_eq!(
        judge(&returns(big), &format!("def f(): return {big} + 1")),
        VerdictKind::WrongAnswer
    );
    assert_eq!(
        judge(&returns("-7"), "def f(): return -7"),
        VerdictKind::Accepted
    );
    // Nested tuples compare as lists; a float equal to an int is equal.
    assert_eq!(
        judge(
            &returns("[1, [2, [3.0, \"x\"]], {\"k\": [4]}]"),
            "def f(): return (1, (2, [3, 'x']), {'k': (4,)})"
        ),
        VerdictKind::Accepted
    );
    // NaN equals nothing, not even NaN; infinity equals itself.
    assert_eq!(
        judge(&returns("NaN"), "def f(): return float('nan')"),
        VerdictKind::WrongAnswer
    );
    assert_eq!(
        judge(&returns("Infinity"), "def f(): return float('inf')"),
        VerdictKind::Accepted
    );
    // Unicode, returned and printed.
    assert_eq!(
        judge(
            &returns("\"héllo wörld ✓ 世界 🎉\""),
            "def f(): return 'héllo wörld ✓ 世界 🎉'"
        ),
        VerdictKind::Accepted
    );
    let unicode_stdin = problem(
        Dataset::LiveCodeBench,
        vec![TestCase::Stdin {
            input: "世界\n".into(),
            output: "héllo 世界 🎉\n".into(),
        }],
        None,
    );
    assert_eq!(
        judge(&unicode_stdin, "print('héllo', input(), '🎉')"),
        VerdictKind::Accepted
    );
    // Assert tests: sets, dicts with tuple keys, bytes, big ints, None, methods of returned
    // objects and attributes set by the test.
    let asserts = |assertion: &str| {
        problem(
            Dataset::Mbpp,
            vec![TestCase::Assert {
                setup: "p = Point(1, 2)\np.z = 3\n".into(),
                assertion: assertion.into(),
            }],
            None,
        )
    };
    let code = r#"
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def norm1(self):
        return abs(self.x) + abs(self.y) + getattr(self, "z", 0)
def g():
    return {(1, 2): {3, 4}, "b": b"\x00\xff", "n": None, "big": 2 ** 100}
def gen(n):
    for i in range(n):
        yield i * i
"#;
    for (assertion, expected) in [
        (
            "assert g() == {(1, 2): {4, 3}, 'b': b'\\x00\\xff', 'n': None, 'big': 2 ** 100}",
            VerdictKind::Accepted,
        ),
        ("assert p.norm1() == 6 and p.x == 1", VerdictKind::Accepted),
        ("assert list(gen(4)) == [0, 1, 4, 9]", VerdictKind::Accepted),
        (
            "assert g()['big'] == 2 ** 100 + 1",
            VerdictKind::WrongAnswer,
        ),
        ("assert g()['missing']", VerdictKind::RuntimeError),
    ] {
        assert_eq!(judge(&asserts(assertion), code), expected, "{assertion}");
    }
}
