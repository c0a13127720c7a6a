//! HumanEval end to end: every canonical solution is accepted, and every solution whose body
//! is replaced by `return None` is not.

mod common;

use mars2_sandbox::{Dataset, Program, Submission, TestSet, VerdictKind};

#[test]
fn canonical_solutions_pass_and_hollow_ones_fail() {
    let problems = common::problems("HumanEval.jsonl.gz");
    assert_eq!(problems.len(), 164);
    assert!(problems.iter().all(|p| p.dataset == Dataset::HumanEval));
    let sandbox = common::sandbox();

    let canonical: Vec<String> = problems
        .iter()
        .map(|p| p.reference_solution.clone().expect("canonical solution"))
        .collect();
    let hollow: Vec<String> = problems
        .iter()
        .map(|p| format!("{}    return None\n", p.starter_code))
        .collect();
    let mut submissions = Vec::new();
    for (i, problem) in problems.iter().enumerate() {
        for code in [&canonical[i], &hollow[i]] {
            submissions.push(Submission {
                problem,
                program: Program::Code(code),
                tests: TestSet::All,
            });
        }
    }
    let verdicts = sandbox.judge_all(&submissions, |_, _| {});

    let mut failures = Vec::new();
    for (i, problem) in problems.iter().enumerate() {
        let good = &verdicts[2 * i];
        let bad = &verdicts[2 * i + 1];
        if !good.is_accepted() {
            failures.push(format!("{} canonical: {:?}", problem.id, good));
        }
        if bad.reward() != Some(0.0) {
            failures.push(format!("{} hollow: {:?}", problem.id, bad));
        }
        assert!(matches!(
            bad.kind,
            VerdictKind::WrongAnswer | VerdictKind::RuntimeError
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let wrong = verdicts
        .iter()
        .filter(|v| v.kind == VerdictKind::WrongAnswer)
        .count();
    println!("HumanEval: 164/164 canonical accepted; hollow solutions: {wrong} wrong answers, the rest runtime errors");
}

#[test]
fn public_and_hidden_tests_are_the_check_function() {
    let problems = common::problems("HumanEval.jsonl.gz");
    let first = &problems[0];
    assert_eq!(first.id, "HumanEval/0");
    assert_eq!(first.entry_point.as_deref(), Some("has_close_elements"));
    assert_eq!(first.public_tests, first.hidden_tests);
    assert_eq!(first.tests(TestSet::All).len(), 1);
    assert_eq!(
        first.public_tests[0].shown_input(),
        "check(has_close_elements)"
    );
}

#[test]
fn a_failing_check_reports_the_assertion() {
    let problems = common::problems("HumanEval.jsonl.gz");
    let problem = &problems[0];
    let code = format!("{}    return True\n", problem.starter_code);
    let verdict = common::sandbox().judge(problem, &code, TestSet::All);
    assert_eq!(verdict.kind, VerdictKind::WrongAnswer);
    let failure = verdict.failure.expect("failure details");
    assert_eq!(failure.index, 0);
    let error = failure.error.expect("assertion text");
    assert!(error.contains("AssertionError"), "{error}");
    assert!(error.contains("assert candidate("), "{error}");
}
