//! Judging model answers: the last fenced Python block that parses is the program, checked
//! by the real Python parser; no block at all is a compile error.

mod common;

use mars2_sandbox::{Dataset, Problem, TestCase, TestSet, VerdictKind};

fn echo_problem() -> Problem {
    Problem {
        id: "echo".into(),
        dataset: Dataset::LiveCodeBench,
        title: None,
        statement: "Print the input.".into(),
        starter_code: String::new(),
        entry_point: None,
        public_tests: vec![TestCase::Stdin {
            input: "7\n".into(),
            output: "7\n".into(),
        }],
        hidden_tests: vec![],
        reference_solution: None,
        platform: None,
        difficulty: None,
        split: None,
    }
}

const ANSWER: &str = "Here is a first try:\n```python\nprint(input())  # echo the number\n```\nAnd a better one, which sadly has a typo:\n```python\nprint(int(input()) +)  # broken\n```\nAnd a shell command:\n```bash\necho this is not python at all\n```\n";

#[test]
fn the_last_parsing_block_is_judged() {
    let sandbox = common::sandbox();
    let verdict = sandbox.judge_response(&echo_problem(), ANSWER, TestSet::All);
    assert!(verdict.is_accepted(), "{verdict:#?}");
}

#[test]
fn answers_without_code_are_compile_errors() {
    let sandbox = common::sandbox();
    let verdict = sandbox.judge_response(&echo_problem(), "I don't know.", TestSet::All);
    assert_eq!(verdict.kind, VerdictKind::CompileError);
    assert_eq!(verdict.reward(), Some(0.0));
    let only_broken = "```python\nprint(int(input()) +)  # broken\n```";
    let verdict = sandbox.judge_response(&echo_problem(), only_broken, TestSet::All);
    assert_eq!(verdict.kind, VerdictKind::CompileError);
    assert!(verdict.message.unwrap_or_default().contains("SyntaxError"));
}

#[test]
fn code_with_a_syntax_error_is_a_compile_error() {
    let verdict = common::sandbox().judge(&echo_problem(), "def f(:\n    pass\n", TestSet::All);
    assert_eq!(verdict.kind, VerdictKind::CompileError);
    assert_eq!(verdict.passed, 0);
    assert_eq!(verdict.total, 1);
}

#[test]
fn the_parser_check_runs_python() {
    let sandbox = common::sandbox();
    let ok = sandbox
        .parses(&[
            "x = 1\n",
            "def f(:\n",
            "print('a')\0",
            "match x:\n    case 1:\n        pass\n",
        ])
        .expect("parse check");
    assert_eq!(ok, vec![true, false, false, true]);
    assert_eq!(
        sandbox.extract_code(ANSWER).expect("extract").as_deref(),
        Some("print(input())  # echo the number\n")
    );
}

#[test]
fn problems_without_tests_are_sandbox_failures() {
    let mut problem = echo_problem();
    problem.public_tests.clear();
    let verdict = common::sandbox().judge(&problem, "print(1)", TestSet::Public);
    assert_eq!(verdict.kind, VerdictKind::SandboxFailure);
    assert_eq!(verdict.reward(), None);
}

#[test]
fn definitions_only_drops_examples_and_self_made_asserts() {
    let sandbox = common::sandbox();
    let code = "import math\n\n@staticmethod\ndef area(r):\n    return math.pi * r * r\n\nclass Box:\n    size = 2\n\nLIMIT: int = 3\nscale = 2\nprint(area(1))\nassert area(1) == 3\nif __name__ == \"__main__\":\n    print(area(input()))\n";
    let kept = sandbox.definitions_only(code).expect("sandbox runs");
    assert_eq!(
        kept,
        "import math\n@staticmethod\ndef area(r):\n    return math.pi * r * r\nclass Box:\n    size = 2\nLIMIT: int = 3\nscale = 2\n"
    );
    // Code that does not parse, and code with no definition, come back as they were.
    let broken = "def f(:\n    pass\n";
    assert_eq!(sandbox.definitions_only(broken).expect("runs"), broken);
    let script = "print(int(input()) * 2)\n";
    assert_eq!(sandbox.definitions_only(script).expect("runs"), script);
}
