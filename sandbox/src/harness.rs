//! The program side's harness (`harness.py`, embedded) and the protocol the sandbox reads:
//! the program's job, written for the harness, and the referee's events, one JSON line each
//! on the referee's private socket (no program can write there).

use serde::{Deserialize, Serialize};

/// Source of the harness run as the program's Python process.
pub const HARNESS_SOURCE: &str = include_str!("harness.py");

/// File name of the harness inside the run directory.
pub(crate) const HARNESS_FILE: &str = "harness.py";
/// File name of the byte-compiled harness inside the run directory.
pub(crate) const COMPILED_HARNESS_FILE: &str = "harness.pyc";
/// File name of the job inside the run directory (deleted by the harness once read).
pub(crate) const JOB_FILE: &str = "job.json";

/// What the harness needs to run the program: the program and its limits, nothing of the
/// tests.
#[derive(Debug, Serialize)]
pub(crate) struct Job<'a> {
    /// Candidate programs in order; the harness runs the last one that compiles.
    pub candidates: &'a [String],
    pub cpu_limit: f64,
    pub wall_limit: f64,
    /// Pre-import LiveCodeBench's common modules into the program's namespace.
    pub preamble: bool,
}

/// One event from the referee.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub(crate) enum Event {
    Ready,
    Compiled {
        candidate: usize,
    },
    CompileError {
        message: String,
    },
    Start {
        i: usize,
    },
    Pass {
        i: usize,
    },
    Fail {
        i: usize,
        why: FailReason,
        #[serde(default)]
        actual: Option<String>,
        #[serde(default)]
        expected: Option<String>,
        #[serde(default)]
        error: Option<String>,
    },
    BadTest {
        i: usize,
        message: String,
    },
    /// The program's process stopped answering (it ended, or closed its channel) while
    /// test `i` ran, or before any test when `i` is absent.
    Lost {
        #[serde(default)]
        i: Option<usize>,
    },
    Done,
    End,
}

/// Why a test failed, as the referee saw it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FailReason {
    WrongAnswer,
    RuntimeError,
    TimeLimit,
    MemoryLimit,
    OutputLimit,
}

/// The events in `bytes`, in order; lines of another shape are dropped (the referee writes
/// only well-formed ones).
pub(crate) fn parse_events(bytes: &[u8]) -> Vec<Event> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::TestCase;

    #[test]
    fn events_parse_in_order() {
        let bytes = br#"{"ev": "ready"}
not json
{"ev": "fail", "i": 1, "why": "wrong_answer", "actual": "2"}
{"ev": "lost", "i": null}
{"ev": "done"}
{"ev": "end"}"#;
        let events = parse_events(bytes);
        assert_eq!(
            events,
            vec![
                Event::Ready,
                Event::Fail {
                    i: 1,
                    why: FailReason::WrongAnswer,
                    actual: Some("2".into()),
                    expected: None,
                    error: None
                },
                Event::Lost { i: None },
                Event::Done,
                Event::End,
            ]
        );
    }

    #[test]
    fn tests_serialize_with_the_kind_the_harness_expects() {
        let test = TestCase::Functional {
            function: "f".into(),
            input: "1".into(),
            output: "2".into(),
        };
        let json = serde_json::to_value(&test).unwrap();
        assert_eq!(json["kind"], "functional");
        assert_eq!(json["function"], "f");
        let test = TestCase::Assert {
            setup: String::new(),
            assertion: "assert 1".into(),
        };
        assert_eq!(serde_json::to_value(&test).unwrap()["kind"], "assert");
    }
}
