//! MBPP records in two layouts:
//!
//! - Google's (`mbpp.jsonl`): `task_id`, `text`, `code`, `test_setup_code`, `test_list` (three
//!   asserts), `challenge_test_list`. Each assert is one test, run after `test_setup_code`. The
//!   first assert is public (prompts conventionally show it to fix the function name); all
//!   asserts are hidden. The optional challenge asserts are not part of the standard benchmark
//!   and are left out.
//! - EvalPlus's MBPP+ (`task_id` `"Mbpp/N"`, `prompt`, `entry_point`, `canonical_solution`,
//!   `assertion`): the prompt is a docstring holding the task's (sanitized) statement and one
//!   assert, which is the public test; each `assert` line of `assertion` is a hidden test, run
//!   after its other lines (imports; `import math` added where asserts use `math.` without
//!   it). These are the base tests of EvalPlus's MBPP; the extra
//!   generated inputs of MBPP+ are not part of this layout.

use serde_json::Value;

use super::fields::{self, Record};
use super::humaneval::is_identifier;
use super::RecordResult;
use crate::error::LineError;
use crate::problem::{Dataset, Problem, Split, TestCase};

/// Builds a problem from one MBPP record, in either layout.
pub fn problem_from_record(record: &Record) -> RecordResult {
    if record.contains_key("assertion") {
        return problem_from_evalplus_record(record);
    }
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

/// Builds a problem from one MBPP+ record of EvalPlus.
fn problem_from_evalplus_record(record: &Record) -> RecordResult {
    let id = fields::string(record, "task_id")?.trim();
    let task_id = id
        .strip_prefix("Mbpp/")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or(LineError::WrongType {
            field: "task_id",
            expected: "\"Mbpp/\" and a task number",
        })?;
    let prompt = fields::string(record, "prompt")?;
    let entry_point = fields::string(record, "entry_point")?.trim();
    if !is_identifier(entry_point) {
        return Err(LineError::Invalid(format!(
            "field `entry_point` is not a Python identifier: {entry_point:?}"
        )));
    }
    let solution = fields::optional_string(record, "canonical_solution")?;
    let assertion = fields::string(record, "assertion")?;
    let is_assert = |line: &&str| line.trim_start().starts_with("assert ");
    let setup: Vec<&str> = assertion
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_assert(l))
        .collect();
    let mut setup = setup.join("\n");
    // A few records call `math.isclose` without importing `math` (EvalPlus's own harness
    // compares values in Python, not through these lines).
    if assertion.contains("math.") && !setup.lines().any(|l| l.trim() == "import math") {
        setup = if setup.is_empty() {
            "import math".to_string()
        } else {
            format!("import math\n{setup}")
        };
    }
    let hidden_tests: Vec<TestCase> = assertion
        .lines()
        .filter(is_assert)
        .map(|line| TestCase::Assert {
            setup: setup.clone(),
            assertion: line.trim().to_string(),
        })
        .collect();
    if hidden_tests.is_empty() {
        return Err(LineError::Invalid("field `assertion` has no assert".into()));
    }
    // The docstring's lines: the statement, and the assert shown as an example.
    let inside = prompt.trim().trim_matches('"').trim();
    let (examples, statement): (Vec<&str>, Vec<&str>) = inside.lines().partition(|l| is_assert(l));
    let statement = statement.join("\n").trim().to_string();
    if statement.is_empty() {
        return Err(LineError::Invalid("field `prompt` has no statement".into()));
    }
    let public_tests = match examples.first() {
        Some(example) => vec![TestCase::Assert {
            setup: setup.clone(),
            assertion: example.trim().to_string(),
        }],
        None => vec![hidden_tests[0].clone()],
    };
    Ok(Problem {
        id: format!("Mbpp/{task_id}"),
        dataset: Dataset::Mbpp,
        title: None,
        statement,
        starter_code: String::new(),
        entry_point: Some(entry_point.to_string()),
        public_tests,
        hidden_tests,
        reference_solution: solution.map(str::to_string),
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

    fn record(json: &str) -> Record {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn reads_an_mbpp_plus_record() {
        let r = record(
            r#"{"task_id": "Mbpp/82", "entry_point": "volume_sphere",
            "prompt": "\"\"\"\nWrite a function to find the volume of a sphere.\nassert math.isclose(volume_sphere(10), 4188.79, rel_tol=0.001)\n\"\"\"\n",
            "canonical_solution": "import math\ndef volume_sphere(r):\n  return 4/3*math.pi*r**3\n",
            "assertion": "\nimport math\nassert math.isclose(volume_sphere(10), 4188.79, rel_tol=0.001)\nassert math.isclose(volume_sphere(25), 65449.85, rel_tol=0.001)\n"}"#,
        );
        let p = problem_from_record(&r).unwrap();
        assert_eq!(p.id, "Mbpp/82");
        assert_eq!(p.split, Some(Split::Test));
        assert_eq!(
            p.statement,
            "Write a function to find the volume of a sphere."
        );
        assert_eq!(p.entry_point.as_deref(), Some("volume_sphere"));
        assert_eq!(p.hidden_tests.len(), 2);
        assert_eq!(
            p.hidden_tests[1],
            TestCase::Assert {
                setup: "import math".into(),
                assertion: "assert math.isclose(volume_sphere(25), 65449.85, rel_tol=0.001)".into()
            }
        );
        assert_eq!(p.public_tests.len(), 1);
    }

    #[test]
    fn refuses_broken_mbpp_plus_records() {
        let base = |task: &str, entry: &str, assertion: &str| {
            record(&format!(
                r#"{{"task_id": {task}, "entry_point": "{entry}", "prompt": "\"\"\"\nDo it.\n\"\"\"", "assertion": "{assertion}"}}"#
            ))
        };
        let error = |r: Record| problem_from_record(&r).unwrap_err().to_string();
        assert!(error(base("\"HumanEval/2\"", "f", "assert f()")).contains("task_id"));
        assert!(error(base("2", "f", "assert f()")).contains("task_id"));
        assert!(error(base("\"Mbpp/2\"", "not an id", "assert f()")).contains("entry_point"));
        assert!(error(base("\"Mbpp/2\"", "f", "import math")).contains("no assert"));
        let p = problem_from_record(&base("\"Mbpp/2\"", "f", "assert f() == 1")).unwrap();
        assert_eq!(
            p.public_tests, p.hidden_tests,
            "no example: the first test is shown"
        );
    }
}
