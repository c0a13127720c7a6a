//! Judging a node's answer: extract the program, run it on the guiding tests and, for the
//! metrics, on the hidden tests — skipping runs whose outcome is already known.

use mars2_sandbox::{Problem, Sandbox, TestCase, TestSet, Verdict};

use crate::tree::Judgement;

/// The program of an answer and its verdicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub code: Option<String>,
    pub guide: Judgement,
    pub hidden: Option<Judgement>,
}

/// Extracts the program from `answer` and judges it on `guide` tests and, when
/// `score_hidden`, on the hidden tests. With `definitions_only`, a problem whose tests call
/// its functions is judged on the program's definitions alone (see
/// [`Sandbox::definitions_only`]).
pub fn judge_answer(
    sandbox: &Sandbox,
    problem: &Problem,
    answer: &str,
    guide: TestSet,
    score_hidden: bool,
    definitions_only: bool,
) -> Judged {
    let guide_total = problem.tests(guide).len();
    let extracted = sandbox.extract_code(answer).and_then(|code| match code {
        Some(code) if definitions_only && calls_its_functions(problem) => {
            sandbox.definitions_only(&code).map(Some)
        }
        code => Ok(code),
    });
    let code = match extracted {
        Ok(code) => code,
        Err(e) => {
            let failure = Judgement::from(&Verdict::sandbox_failure(guide_total, e.to_string()));
            return Judged {
                code: None,
                hidden: score_hidden.then(|| failure.clone()),
                guide: failure,
            };
        }
    };
    let Some(code) = code else {
        let none = |total| {
            Judgement::from(&Verdict::compile_error(
                total,
                "the answer has no fenced Python block of 20 or more characters that parses",
            ))
        };
        return Judged {
            code: None,
            guide: none(guide_total),
            hidden: score_hidden.then(|| none(problem.hidden_tests.len())),
        };
    };
    let code = with_starter_imports(problem, &code);
    let guide_verdict = Judgement::from(&sandbox.judge(problem, &code, guide));
    let hidden = score_hidden.then(|| match known_hidden(problem, guide, &guide_verdict) {
        Some(known) => known,
        None => Judgement::from(&sandbox.judge(problem, &code, TestSet::Hidden)),
    });
    Judged {
        code: Some(code),
        guide: guide_verdict,
        hidden,
    }
}

/// Whether every test of `problem` calls the program's functions (none reads its output).
fn calls_its_functions(problem: &Problem) -> bool {
    problem
        .public_tests
        .iter()
        .chain(&problem.hidden_tests)
        .all(|t| !matches!(t, TestCase::Stdin { .. }))
}

/// `code` preceded by the import lines of the problem's starter code that it lacks. Models
/// often answer with the function alone and drop the prompt's `from typing import List`;
/// the program is judged as if the starter's imports were kept.
pub fn with_starter_imports(problem: &Problem, code: &str) -> String {
    let present: Vec<&str> = code.lines().map(str::trim).collect();
    let missing: Vec<&str> = problem
        .starter_code
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("import ") || (l.starts_with("from ") && l.contains(" import ")))
        .filter(|l| !present.contains(l))
        .collect();
    if missing.is_empty() {
        code.to_string()
    } else {
        format!("{}\n{code}", missing.join("\n"))
    }
}

/// The hidden-test verdict when the guiding verdict already decides it: the same tests, or
/// guiding tests that are the first hidden tests and a failure among them (the sandbox stops
/// at the first failure, in order).
pub fn known_hidden(problem: &Problem, guide: TestSet, verdict: &Judgement) -> Option<Judgement> {
    let guide_tests = problem.tests(guide);
    let hidden = &problem.hidden_tests;
    if guide_tests.len() == hidden.len() && guide_tests.iter().zip(hidden).all(|(a, b)| *a == b) {
        return Some(verdict.clone());
    }
    let is_prefix =
        guide_tests.len() <= hidden.len() && guide_tests.iter().zip(hidden).all(|(a, b)| *a == b);
    if is_prefix && !verdict.accepted() && verdict.reward().is_some() {
        return Some(Judgement {
            total: hidden.len(),
            ..verdict.clone()
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use mars2_sandbox::{Dataset, TestCase, VerdictKind};

    fn assert_test(x: &str) -> TestCase {
        TestCase::Assert {
            setup: String::new(),
            assertion: x.into(),
        }
    }

    fn problem(public: Vec<TestCase>, hidden: Vec<TestCase>) -> Problem {
        Problem {
            id: "p".into(),
            dataset: Dataset::Mbpp,
            title: None,
            statement: String::new(),
            starter_code: String::new(),
            entry_point: None,
            public_tests: public,
            hidden_tests: hidden,
            reference_solution: None,
            platform: None,
            difficulty: None,
            split: None,
        }
    }

    fn verdict(kind: VerdictKind, passed: usize, total: usize) -> Judgement {
        Judgement {
            kind,
            passed,
            total,
            failure: None,
            message: None,
        }
    }

    #[test]
    fn starter_imports_are_added_once() {
        let mut p = problem(vec![], vec![]);
        p.starter_code = "from typing import List\nimport math\n\n\ndef f(x: List[int]):\n".into();
        let code = "import math\ndef f(x):\n    return x\n";
        assert_eq!(
            with_starter_imports(&p, code),
            format!("from typing import List\n{code}")
        );
        p.starter_code = "def f(x):\n    \"\"\"from a import b\"\"\"\n".into();
        assert_eq!(with_starter_imports(&p, code), code);
    }

    #[test]
    fn same_tests_reuse_the_verdict() {
        let p = problem(vec![assert_test("a")], vec![assert_test("a")]);
        let v = verdict(VerdictKind::Accepted, 1, 1);
        assert_eq!(known_hidden(&p, TestSet::Public, &v), Some(v));
    }

    #[test]
    fn a_failing_public_prefix_fails_the_hidden_tests() {
        let p = problem(
            vec![assert_test("a")],
            vec![assert_test("a"), assert_test("b")],
        );
        let failed = verdict(VerdictKind::WrongAnswer, 0, 1);
        let hidden = known_hidden(&p, TestSet::Public, &failed).unwrap();
        assert_eq!(
            (hidden.kind, hidden.passed, hidden.total),
            (VerdictKind::WrongAnswer, 0, 2)
        );
        // A pass of the prefix says nothing about the rest; a sandbox failure says nothing.
        assert_eq!(
            known_hidden(&p, TestSet::Public, &verdict(VerdictKind::Accepted, 1, 1)),
            None
        );
        assert_eq!(
            known_hidden(
                &p,
                TestSet::Public,
                &verdict(VerdictKind::SandboxFailure, 0, 1)
            ),
            None
        );
    }

    #[test]
    fn public_tests_outside_the_hidden_ones_decide_nothing() {
        let p = problem(vec![assert_test("x")], vec![assert_test("a")]);
        assert_eq!(
            known_hidden(
                &p,
                TestSet::Public,
                &verdict(VerdictKind::WrongAnswer, 0, 1)
            ),
            None
        );
    }
}
