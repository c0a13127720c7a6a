//! The Python harness (`harness.py`, embedded) and the two halves of its protocol: the job
//! the runner writes for it, and the events it reports back, one JSON line each, on a
//! private descriptor. Events whose nonce differs from the job's are ignored.

use serde::{Deserialize, Serialize};

use crate::problem::TestCase;

/// Source of the harness run as the program's Python process.
pub const HARNESS_SOURCE: &str = include_str!("harness.py");

/// File name of the harness inside the run directory.
pub(crate) const HARNESS_FILE: &str = "harness.py";
/// File name of the byte-compiled harness inside the run directory.
pub(crate) const COMPILED_HARNESS_FILE: &str = "harness.pyc";
/// File name of the job inside the run directory (deleted by the harness once read).
pub(crate) const JOB_FILE: &str = "job.json";

/// What the harness is asked to do.
#[derive(Debug, Serialize)]
pub(crate) struct Job<'a> {
    pub nonce: &'a str,
    /// Candidate programs in order; the harness judges the last one that compiles.
    pub candidates: &'a [String],
    pub tests: Vec<&'a TestCase>,
    pub cpu_limit: f64,
    pub wall_limit: f64,
    /// Pre-import LiveCodeBench's common modules into the program's namespace.
    pub preamble: bool,
}

/// One event from the harness.
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
    Done,
}

/// Why a test failed, as the harness saw it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FailReason {
    WrongAnswer,
    RuntimeError,
    TimeLimit,
    MemoryLimit,
    OutputLimit,
}

#[derive(Deserialize)]
struct Envelope {
    nonce: String,
}

/// The authentic events in `bytes`, in order. Lines that are not JSON, carry another nonce
/// or have an unknown shape are dropped.
pub(crate) fn parse_events(bytes: &[u8], nonce: &str) -> Vec<Event> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| {
            let envelope: Envelope = serde_json::from_slice(line).ok()?;
            if envelope.nonce != nonce {
                return None;
            }
            serde_json::from_slice(line).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_need_the_nonce() {
        let bytes = br#"{"ev": "ready", "nonce": "n1"}
{"ev": "pass", "i": 0, "cpu": 0.1, "nonce": "forged"}
not json
{"ev": "fail", "i": 1, "why": "wrong_answer", "actual": "2", "cpu": 0.0, "nonce": "n1"}
{"ev": "done", "nonce": "n1"}"#;
        let events = parse_events(bytes, "n1");
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
                Event::Done
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
