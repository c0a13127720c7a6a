//! MBPP records (`mbpp.jsonl`): `task_id`, `text`, `code`, `test_setup_code`, `test_list`
//! (three asserts), `challenge_test_list`.
//!
//! Each assert is one test, run after `test_setup_code`. The first assert is public (prompts
//! conventionally show it to fix the function name); all asserts are hidden. The optional
//! challenge asserts are not part of the standard benchmark and are left out.

use serde_json::Value;

use super::fields::{self, Record};
use super::humaneval::is_identifier;
use super::RecordResult;
use crate::error::LineError;
use crate::problem::{Dataset, Problem, Split, TestCase};

/// Builds a problem from one MBPP record.
pub fn problem_from_record(record: &Record) -> RecordResult {
    let task_id = match record.get("task_id") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
        None => return Err(LineError::MissingField("task_id")),
    }
    .ok_or(LineError::WrongType {
        field: "task_id",
        expected: "a non-negative integer",
    })?;
    let text = fields::string(record, "text")?;
    let code = fields::optional_string(record, "code")?;
    let setup = fields::optional_string(record, "test_setup_code")?.unwrap_or_default();
    let asserts = fields::string_list(record, "test_list")?;
    if asserts.is_empty() {
        return Err(LineError::Invalid("field `test_list` is empty".into()));
    }
    let hidden_tests: Vec<TestCase> = asserts
        .iter()
        .map(|assertion| TestCase::Assert {
            setup: setup.to_string(),
            assertion: assertion.clone(),
        })
        .collect();
    Ok(Problem {
        id: format!("Mbpp/{task_id}"),
        dataset: Dataset::Mbpp,
        title: None,
        statement: text.to_string(),
        starter_code: String::new(),
        entry_point: code.and_then(|code| called_function(&asserts[0], code)),
        public_tests: vec![hidden_tests[0].clone()],
        hidden_tests,
        reference_solution: code.map(str::to_string),
        platform: None,
        difficulty: None,
        split: Split::of_mbpp_task(task_id),
    })
}

/// The first function called in `assertion` that `code` defines with `def`.
fn called_function(assertion: &str, code: &str) -> Option<String> {
    let bytes = assertion.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident_char = b == b'_' || b.is_ascii_alphanumeric();
        match (start, ident_char) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let name = &assertion[s..i];
                if b == b'(' && is_identifier(name) && code.contains(&format!("def {name}(")) {
                    return Some(name.to_string());
                }
                start = None;
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_called_function() {
        let code = "def helper(x):\n  return x\ndef min_cost(c, m, n):\n  return 1\n";
        assert_eq!(
            called_function("assert min_cost([[1]], 2, 2) == 8", code),
            Some("min_cost".into())
        );
        assert_eq!(
            called_function("assert set(min_cost(a)) == set([1])", code),
            Some("min_cost".into())
        );
        assert_eq!(called_function("assert 1 == 1", code), None);
    }
}
