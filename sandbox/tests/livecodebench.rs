//! The three vendored LiveCodeBench problems (codeforces 1873_A and atcoder abc301_a on
//! standard input, leetcode 2727 functional): a correct solution passes public and hidden
//! tests; a subtly wrong one fails on the first test that exposes it.

mod common;

use mars2_sandbox::{Dataset, Problem, TestCase, TestSet, VerdictKind};

fn problem(id: &str) -> Problem {
    common::problems("lcb-lite-samples.jsonl")
        .into_iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("problem {id}"))
}

const CARDS_RIGHT: &str = r#"
t = int(input())
for _ in range(t):
    s = input().strip()
    misplaced = sum(1 for a, b in zip(s, "abc") if a != b)
    print("YES" if misplaced <= 2 else "NO")
"#;

// Also says YES for the two rotations, which need two swaps.
const CARDS_WRONG: &str = r#"
import sys
data = sys.stdin.read().split()
print("\n".join("YES" if s != "bca" else "NO" for s in data[1:]))
"#;

const SENIORS_RIGHT: &str = r#"
class Solution:
    def countSeniors(self, details: List[str]) -> int:
        return sum(1 for d in details if int(d[11:13]) > 60)
"#;

// Counts passengers of exactly 60 too.
const SENIORS_WRONG: &str = r#"
class Solution:
    def countSeniors(self, details: List[str]) -> int:
        return sum(1 for d in details if int(d[11:13]) >= 60)
"#;

const WINNER_RIGHT: &str = r#"
n = int(input())
s = input().strip()
t, a = s.count("T"), s.count("A")
if t != a:
    print("T" if t > a else "A")
else:
    # On a tie, whoever reached the final count first won: not the owner of the last game.
    print("A" if s[-1] == "T" else "T")
"#;

// Ignores the tie-break rule.
const WINNER_WRONG: &str = r#"
n = int(input())
s = input().strip()
print("T" if s.count("T") >= s.count("A") else "A")
"#;

#[test]
fn samples_load_with_public_and_hidden_tests() {
    let problems = common::problems("lcb-lite-samples.jsonl");
    assert_eq!(problems.len(), 3);
    assert!(problems.iter().all(|p| p.dataset == Dataset::LiveCodeBench));
    let cards = problem("1873_A");
    assert_eq!((cards.public_tests.len(), cards.hidden_tests.len()), (1, 4));
    assert_eq!(cards.platform.as_deref(), Some("codeforces"));
    assert!(matches!(cards.hidden_tests[0], TestCase::Stdin { .. }));
    let seniors = problem("2727");
    assert_eq!(seniors.entry_point.as_deref(), Some("countSeniors"));
    assert_eq!(
        (seniors.public_tests.len(), seniors.hidden_tests.len()),
        (1, 13)
    );
    assert!(seniors.starter_code.starts_with("class Solution:"));
    let winner = problem("abc301_a");
    assert_eq!(
        (winner.public_tests.len(), winner.hidden_tests.len()),
        (1, 14)
    );
}

#[test]
fn correct_solutions_pass_public_and_hidden_tests() {
    let sandbox = common::sandbox();
    for (id, code) in [
        ("1873_A", CARDS_RIGHT),
        ("2727", SENIORS_RIGHT),
        ("abc301_a", WINNER_RIGHT),
    ] {
        let problem = problem(id);
        for set in [TestSet::Public, TestSet::Hidden, TestSet::All] {
            let verdict = sandbox.judge(&problem, code, set);
            assert!(verdict.is_accepted(), "{id} {set:?}: {verdict:#?}");
            assert_eq!(verdict.passed, problem.tests(set).len());
        }
    }
}

#[test]
fn wrong_stdin_solution_fails_on_the_first_exposing_test() {
    let sandbox = common::sandbox();
    let cards = problem("1873_A");
    let verdict = sandbox.judge(&cards, CARDS_WRONG, TestSet::All);
    assert_eq!(verdict.kind, VerdictKind::WrongAnswer);
    assert_eq!(verdict.passed, 0);
    let failure = verdict.failure.expect("failure");
    assert_eq!(failure.index, 0);
    assert_eq!(failure.input, "6\nabc\nacb\nbac\nbca\ncab\ncba\n");
    assert_eq!(failure.expected, "YES\nYES\nYES\nNO\nNO\nYES\n");
    assert_eq!(
        failure.actual.as_deref(),
        Some("YES\nYES\nYES\nNO\nYES\nYES\n")
    );

    // Hidden tests 0 and 1 hold no rotation; test 2 does.
    let hidden = sandbox.judge(&cards, CARDS_WRONG, TestSet::Hidden);
    assert_eq!((hidden.kind, hidden.passed), (VerdictKind::WrongAnswer, 2));
    assert_eq!(hidden.failure.expect("failure").index, 2);

    let winner = problem("abc301_a");
    let verdict = sandbox.judge(&winner, WINNER_WRONG, TestSet::All);
    assert_eq!(
        (verdict.kind, verdict.passed),
        (VerdictKind::WrongAnswer, 3)
    );
    let failure = verdict.failure.expect("failure");
    assert_eq!(failure.index, 3);
    assert_eq!(failure.expected, "A\n");
    assert_eq!(failure.actual.as_deref(), Some("T\n"));
}

#[test]
fn wrong_functional_solution_fails_on_the_first_exposing_test() {
    let sandbox = common::sandbox();
    let seniors = problem("2727");
    let verdict = sandbox.judge(&seniors, SENIORS_WRONG, TestSet::All);
    assert_eq!(
        (verdict.kind, verdict.passed),
        (VerdictKind::WrongAnswer, 10)
    );
    let failure = verdict.failure.expect("failure");
    assert_eq!(failure.index, 10);
    assert_eq!(failure.expected, "7");
    assert_eq!(failure.actual.as_deref(), Some("8"));
    assert!(failure.input.starts_with("[\"9953307581O1066\""));
}

#[test]
fn functional_runtime_errors_show_the_exception() {
    let sandbox = common::sandbox();
    let seniors = problem("2727");
    let code =
        "class Solution:\n    def countSeniors(self, details):\n        return details[99]\n";
    let verdict = sandbox.judge(&seniors, code, TestSet::Public);
    assert_eq!(verdict.kind, VerdictKind::RuntimeError);
    let error = verdict.failure.and_then(|f| f.error).expect("error");
    assert!(error.contains("IndexError"), "{error}");
    assert!(error.contains("return details[99]"), "{error}");
}
