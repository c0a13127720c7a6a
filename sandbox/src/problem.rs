//! The one problem type shared by every dataset: statement, starter code, public and hidden
//! tests, and the dataset's own reference solution when it has one.

use serde::{Deserialize, Serialize};

/// Which benchmark a problem comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    LiveCodeBench,
    HumanEval,
    Mbpp,
}

/// MBPP's standard split by task id: 1–10 few-shot prompts, 11–510 test, 511–600 validation,
/// 601–974 train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    FewShot,
    Test,
    Validation,
    Train,
}

impl Split {
    /// The MBPP split a task id belongs to; `None` outside 1–974.
    pub fn of_mbpp_task(task_id: u64) -> Option<Split> {
        match task_id {
            1..=10 => Some(Split::FewShot),
            11..=510 => Some(Split::Test),
            511..=600 => Some(Split::Validation),
            601..=974 => Some(Split::Train),
            _ => None,
        }
    }
}

/// One test of a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TestCase {
    /// Feed `input` on standard input; standard output must match `output` under the
    /// LiveCodeBench comparison rules (see [`crate::compare::stdout_matches`]).
    Stdin { input: String, output: String },
    /// Call `function` (a method of `class Solution` when the program defines one, else a
    /// top-level function) with one argument per line of `input`, each line a JSON value; the
    /// return value must equal the JSON value `output`, tuples read as lists.
    Functional {
        function: String,
        input: String,
        output: String,
    },
    /// Run the program, then `setup`, then `assertion` in the same namespace; the test passes
    /// when nothing raises. A failing `assert` in the test code is a wrong answer; any other
    /// exception is a runtime error.
    Assert { setup: String, assertion: String },
}

impl TestCase {
    /// What the test feeds the program, as shown in a failure report.
    pub fn shown_input(&self) -> &str {
        match self {
            TestCase::Stdin { input, .. } | TestCase::Functional { input, .. } => input,
            TestCase::Assert { assertion, .. } => assertion,
        }
    }

    /// What the test expects, as shown in a failure report (empty for assert tests, whose
    /// expectation is inside the assertion).
    pub fn shown_expected(&self) -> &str {
        match self {
            TestCase::Stdin { output, .. } | TestCase::Functional { output, .. } => output,
            TestCase::Assert { .. } => "",
        }
    }

    /// Size in bytes of the data the test carries (inputs and expected outputs).
    pub fn data_len(&self) -> usize {
        match self {
            TestCase::Stdin { input, output } => input.len() + output.len(),
            TestCase::Functional {
                function,
                input,
                output,
            } => function.len() + input.len() + output.len(),
            TestCase::Assert { setup, assertion } => setup.len() + assertion.len(),
        }
    }
}

/// Which tests of a problem to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TestSet {
    /// The tests shown with the statement.
    Public,
    /// The tests kept back for scoring.
    Hidden,
    /// Public tests, then the hidden tests not already among them.
    #[default]
    All,
}

/// A programming problem with its tests.
///
/// Public and hidden tests per dataset:
/// - LiveCodeBench: `public_test_cases` are public, `private_test_cases` hidden.
/// - MBPP: the first assert is public (it is what prompts usually show); all asserts are hidden.
/// - HumanEval: the docstring examples are prose, not tests, so both sets are the single
///   `check(candidate)` test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Dataset-wide identifier: LiveCodeBench `question_id`, HumanEval `task_id`
    /// ("HumanEval/0"), MBPP "Mbpp/<task_id>".
    pub id: String,
    pub dataset: Dataset,
    /// Short title when the dataset has one.
    pub title: Option<String>,
    /// The statement shown to a model.
    pub statement: String,
    /// Code the answer should start from (LiveCodeBench `starter_code`, HumanEval's signature
    /// and docstring); empty when none.
    pub starter_code: String,
    /// The function the tests call, when the tests call one.
    pub entry_point: Option<String>,
    pub public_tests: Vec<TestCase>,
    pub hidden_tests: Vec<TestCase>,
    /// A complete reference program from the dataset (HumanEval prompt + canonical solution,
    /// MBPP code); LiveCodeBench ships none.
    pub reference_solution: Option<String>,
    /// Platform (LiveCodeBench: codeforces, leetcode, atcoder).
    pub platform: Option<String>,
    /// Difficulty label when the dataset has one.
    pub difficulty: Option<String>,
    /// MBPP split of the task.
    pub split: Option<Split>,
}

impl Problem {
    /// The tests of the chosen set, in order. `All` keeps the public tests first and drops
    /// hidden tests equal to a public one.
    pub fn tests(&self, set: TestSet) -> Vec<&TestCase> {
        match set {
            TestSet::Public => self.public_tests.iter().collect(),
            TestSet::Hidden => self.hidden_tests.iter().collect(),
            TestSet::All => {
                let mut all: Vec<&TestCase> = self.public_tests.iter().collect();
                for test in &self.hidden_tests {
                    if !self.public_tests.contains(test) {
                        all.push(test);
                    }
                }
                all
            }
        }
    }

    /// Whether `key` names this problem: its full id, or the bare number/name after the
    /// dataset prefix ("0" for "HumanEval/0", "11" for "Mbpp/11").
    pub fn matches_id(&self, key: &str) -> bool {
        let key = key.trim();
        if self.id == key {
            return true;
        }
        match self.id.rsplit_once('/') {
            Some((_, bare)) => bare == key,
            None => false,
        }
    }

    /// Whether the LiveCodeBench import preamble applies (stdin and functional programs
    /// are judged with common modules pre-imported, as LiveCodeBench does).
    pub fn uses_import_preamble(&self) -> bool {
        self.dataset == Dataset::LiveCodeBench
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdin(i: &str) -> TestCase {
        TestCase::Stdin {
            input: i.into(),
            output: "x".into(),
        }
    }

    fn problem() -> Problem {
        Problem {
            id: "Mbpp/11".into(),
            dataset: Dataset::Mbpp,
            title: None,
            statement: String::new(),
            starter_code: String::new(),
            entry_point: None,
            public_tests: vec![stdin("a")],
            hidden_tests: vec![stdin("a"), stdin("b")],
            reference_solution: None,
            platform: None,
            difficulty: None,
            split: None,
        }
    }

    #[test]
    fn all_tests_keep_public_first_without_duplicates() {
        let p = problem();
        let all = p.tests(TestSet::All);
        assert_eq!(all, vec![&stdin("a"), &stdin("b")]);
        assert_eq!(p.tests(TestSet::Public).len(), 1);
        assert_eq!(p.tests(TestSet::Hidden).len(), 2);
    }

    #[test]
    fn ids_match_with_or_without_prefix() {
        let p = problem();
        assert!(p.matches_id("Mbpp/11"));
        assert!(p.matches_id("11"));
        assert!(!p.matches_id("1"));
    }

    #[test]
    fn mbpp_split_boundaries() {
        assert_eq!(Split::of_mbpp_task(1), Some(Split::FewShot));
        assert_eq!(Split::of_mbpp_task(10), Some(Split::FewShot));
        assert_eq!(Split::of_mbpp_task(11), Some(Split::Test));
        assert_eq!(Split::of_mbpp_task(510), Some(Split::Test));
        assert_eq!(Split::of_mbpp_task(511), Some(Split::Validation));
        assert_eq!(Split::of_mbpp_task(600), Some(Split::Validation));
        assert_eq!(Split::of_mbpp_task(601), Some(Split::Train));
        assert_eq!(Split::of_mbpp_task(974), Some(Split::Train));
        assert_eq!(Split::of_mbpp_task(0), None);
        assert_eq!(Split::of_mbpp_task(975), None);
    }
}
