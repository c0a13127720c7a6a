//! With protections switched off (as on machines that allow no namespaces), judging still
//! works and the verdicts say which protections were missing. Harmless programs only.

mod common;

use std::time::Duration;

use mars2_sandbox::{
    Dataset, IsolationOptions, Limits, Problem, Sandbox, SandboxConfig, TestCase, TestSet,
    VerdictKind,
};

fn echo_problem() -> Problem {
    Problem {
        id: "echo".into(),
        dataset: Dataset::LiveCodeBench,
        title: None,
        statement: String::new(),
        starter_code: String::new(),
        entry_point: None,
        public_tests: vec![
            TestCase::Stdin {
                input: "1\n".into(),
                output: "1\n".into(),
            },
            TestCase::Stdin {
                input: "2\n".into(),
                output: "2\n".into(),
            },
        ],
        hidden_tests: vec![],
        reference_solution: None,
        platform: None,
        difficulty: None,
        split: None,
    }
}

#[test]
fn judging_without_any_namespace() {
    let sandbox = Sandbox::new(SandboxConfig {
        isolation: IsolationOptions {
            network: false,
            pid: false,
            mount: false,
            drop_privileges: false,
            seccomp: false,
        },
        limits: Limits {
            cpu_per_test: Duration::from_secs(1),
            ..Limits::default()
        },
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let isolation = sandbox.isolation();
    assert!(!isolation.network_namespace && !isolation.pid_namespace && !isolation.seccomp);

    let problem = echo_problem();
    let verdict = sandbox.judge(&problem, "print(input())", TestSet::All);
    assert!(verdict.is_accepted(), "{verdict:#?}");
    assert_eq!(verdict.stats.isolation, isolation);
    assert_eq!(verdict.stats.exit_code, Some(0));

    let verdict = sandbox.judge(
        &problem,
        "x = int(input())\nprint(x + 0 // (2 - x))",
        TestSet::All,
    );
    assert_eq!(
        (verdict.kind, verdict.passed),
        (VerdictKind::RuntimeError, 1)
    );
    let error = verdict.failure.and_then(|f| f.error).unwrap_or_default();
    assert!(error.contains("ZeroDivisionError"), "{error}");

    let verdict = sandbox.judge(&problem, "while True:\n    pass", TestSet::All);
    assert_eq!(verdict.kind, VerdictKind::TimeLimit, "{verdict:#?}");
}

#[test]
fn network_isolation_alone_is_reported() {
    let sandbox = Sandbox::new(SandboxConfig {
        isolation: IsolationOptions {
            network: true,
            pid: false,
            mount: false,
            drop_privileges: true,
            seccomp: false,
        },
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let isolation = sandbox.isolation();
    assert!(!isolation.pid_namespace && !isolation.mount_namespace);
    let verdict = sandbox.judge(&echo_problem(), "print(input())", TestSet::All);
    assert!(verdict.is_accepted(), "{verdict:#?}");
    assert_eq!(verdict.stats.isolation, isolation);
}
