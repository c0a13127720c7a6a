//! HumanEval records (`HumanEval.jsonl.gz`): `task_id`, `prompt`, `entry_point`,
//! `canonical_solution`, `test` (a script defining `check(candidate)`).
//!
//! A candidate is a complete program defining `entry_point` (the prompt plus a completion).
//! The docstring examples are prose, not tests, so the single `check(entry_point)` test is
//! both the public and the hidden test.

use super::fields::{self, Record};
use super::RecordResult;
use crate::error::LineError;
use crate::problem::{Dataset, Problem, TestCase};

/// Builds a problem from one HumanEval record.
pub fn problem_from_record(record: &Record) -> RecordResult {
    let id = fields::id(record, "task_id")?;
    let prompt = fields::string(record, "prompt")?;
    let entry_point = fields::string(record, "entry_point")?.trim();
    if !is_identifier(entry_point) {
        return Err(LineError::Invalid(format!(
            "field `entry_point` is not a Python identifier: {entry_point:?}"
        )));
    }
    let test = fields::string(record, "test")?;
    let canonical = fields::optional_string(record, "canonical_solution")?;
    let check = TestCase::Assert {
        setup: test.to_string(),
        assertion: format!("check({entry_point})"),
    };
    Ok(Problem {
        id,
        dataset: Dataset::HumanEval,
        title: None,
        statement: prompt.to_string(),
        starter_code: prompt.to_string(),
        entry_point: Some(entry_point.to_string()),
        public_tests: vec![check.clone()],
        hidden_tests: vec![check],
        reference_solution: canonical.map(|body| format!("{prompt}{body}")),
        platform: None,
        difficulty: None,
        split: None,
    })
}

/// Whether `name` is a plain ASCII Python identifier.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("has_close_elements"));
        assert!(is_identifier("_f2"));
        assert!(!is_identifier("2f"));
        assert!(!is_identifier("f()"));
        assert!(!is_identifier(""));
    }
}
