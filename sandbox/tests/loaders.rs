//! Loader behaviour on bad input: every error names the file and the line, loading stops at
//! the first bad line unless asked to skip, and skipped lines come back as errors.

mod common;

use std::io::Write;
use std::path::PathBuf;

use base64::Engine as _;
use mars2_sandbox::{
    detect_dataset, load_dataset, load_problems, read_dataset, Dataset, LineError, LoadError,
    LoadOptions,
};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A pickle (protocol 2) of one short Python string.
fn pickle_str(s: &str) -> Vec<u8> {
    let mut out = vec![0x80, 2, b'X'];
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(b'.');
    out
}

const TESTS: &str = r#"[{"input": "1\n", "output": "2\n", "testtype": "stdin"}]"#;

fn lcb_line(private: &str) -> String {
    serde_json::json!({
        "question_title": "t", "question_content": "add one", "platform": "atcoder",
        "question_id": "q1", "contest_id": "c", "contest_date": "2023-01-01T00:00:00",
        "starter_code": "", "difficulty": "easy",
        "public_test_cases": TESTS, "private_test_cases": private, "metadata": "{}"
    })
    .to_string()
}

fn read_lcb(text: &str, options: &LoadOptions) -> Result<mars2_sandbox::Loaded, LoadError> {
    read_dataset(
        "bad.jsonl",
        text.as_bytes(),
        Dataset::LiveCodeBench,
        options,
    )
}

fn line_error(result: Result<mars2_sandbox::Loaded, LoadError>) -> (usize, LineError, String) {
    match result {
        Err(e @ LoadError::Line { .. }) => {
            let shown = e.to_string();
            assert!(shown.starts_with("bad.jsonl:"), "{shown}");
            let line = e.line().unwrap();
            match e {
                LoadError::Line { kind, .. } => (line, kind, shown),
                _ => unreachable!(),
            }
        }
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn good_private_tests_decode_from_base64_zlib_pickle() {
    let private = b64(&zlib(&pickle_str(TESTS)));
    let loaded = read_lcb(&lcb_line(&private), &LoadOptions::default()).unwrap();
    assert_eq!(loaded.problems.len(), 1);
    assert_eq!(loaded.problems[0].hidden_tests.len(), 1);
    let plain = read_lcb(&lcb_line(TESTS), &LoadOptions::default()).unwrap();
    assert_eq!(
        plain.problems[0].hidden_tests,
        loaded.problems[0].hidden_tests
    );
}

#[test]
fn corrupt_json_line_is_named() {
    let text = format!("{}\n\n{{\"question_id\": \"q2\", oops\n", lcb_line(TESTS));
    let (line, kind, shown) = line_error(read_lcb(&text, &LoadOptions::default()));
    assert_eq!(line, 3);
    assert!(matches!(kind, LineError::Json(_)));
    assert!(shown.starts_with("bad.jsonl:3: invalid JSON"), "{shown}");
}

#[test]
fn bad_base64_is_named() {
    let (line, kind, _) = line_error(read_lcb(
        &lcb_line("!!not base64!!"),
        &LoadOptions::default(),
    ));
    assert_eq!(line, 1);
    assert!(
        matches!(
            kind,
            LineError::Base64 {
                field: "private_test_cases",
                ..
            }
        ),
        "{kind}"
    );
}

#[test]
fn bad_zlib_is_named() {
    let (_, kind, _) = line_error(read_lcb(
        &lcb_line(&b64(b"not zlib data")),
        &LoadOptions::default(),
    ));
    assert!(matches!(kind, LineError::Zlib { .. }), "{kind}");
}

#[test]
fn bad_pickle_is_named() {
    let (_, kind, _) = line_error(read_lcb(
        &lcb_line(&b64(&zlib(b"\x80\x04garbage"))),
        &LoadOptions::default(),
    ));
    assert!(matches!(kind, LineError::Pickle { .. }), "{kind}");
    // A valid pickle of something other than a string.
    let (_, kind, _) = line_error(read_lcb(
        &lcb_line(&b64(&zlib(b"\x80\x02K\x05."))),
        &LoadOptions::default(),
    ));
    assert!(
        kind.to_string().contains("does not hold a string"),
        "{kind}"
    );
}

#[test]
fn pickled_text_that_is_not_a_test_list_is_named() {
    let private = b64(&zlib(&pickle_str("[{\"input\": \"1\"}]")));
    let (_, kind, shown) = line_error(read_lcb(&lcb_line(&private), &LoadOptions::default()));
    assert!(matches!(kind, LineError::Tests { .. }), "{kind}");
    assert!(shown.contains("missing `output`"), "{shown}");
}

#[test]
fn missing_fields_are_named() {
    let mut record: serde_json::Value = serde_json::from_str(&lcb_line(TESTS)).unwrap();
    record.as_object_mut().unwrap().remove("public_test_cases");
    let (_, kind, shown) = line_error(read_lcb(&record.to_string(), &LoadOptions::default()));
    assert!(
        matches!(kind, LineError::MissingField("public_test_cases")),
        "{kind}"
    );
    assert!(shown.contains("missing field `public_test_cases`"));

    let humaneval =
        r#"{"task_id": "HumanEval/0", "prompt": "def f():\n", "test": "def check(c): pass"}"#;
    let err = read_dataset(
        "he.jsonl",
        humaneval.as_bytes(),
        Dataset::HumanEval,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "he.jsonl:1: missing field `entry_point`");

    let mbpp = r#"{"task_id": 3, "text": "t", "code": "x = 1", "test_list": "assert True"}"#;
    let err = read_dataset(
        "mbpp.jsonl",
        mbpp.as_bytes(),
        Dataset::Mbpp,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "mbpp.jsonl:1: field `test_list` should be a list of strings"
    );
}

#[test]
fn wrong_types_and_non_objects_are_named() {
    let err = read_dataset(
        "m.jsonl",
        b"[1, 2]\n".as_slice(),
        Dataset::Mbpp,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "m.jsonl:1: record is not a JSON object");
    let bad_id = r#"{"task_id": -4, "text": "t", "test_list": ["assert True"]}"#;
    let err = read_dataset(
        "m.jsonl",
        bad_id.as_bytes(),
        Dataset::Mbpp,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`task_id`"), "{err}");
    let err = read_dataset(
        "m.jsonl",
        b"\xff\xfe\n".as_slice(),
        Dataset::Mbpp,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "m.jsonl:1: line is not valid UTF-8");
}

#[test]
fn skipping_bad_lines_returns_the_rest_and_the_errors() {
    let good = lcb_line(TESTS);
    let text = format!("{good}\nnot json\n{}\n{good}\n", lcb_line("%%%"));
    let stop = read_lcb(&text, &LoadOptions::default());
    assert_eq!(stop.unwrap_err().line(), Some(2));
    let loaded = read_lcb(&text, &LoadOptions::skipping_bad_lines()).unwrap();
    assert_eq!(loaded.problems.len(), 2);
    let lines: Vec<Option<usize>> = loaded.errors.iter().map(LoadError::line).collect();
    assert_eq!(lines, vec![Some(2), Some(3)]);
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mars2-loader-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn errors_from_files_name_the_file() {
    let path = temp_file("broken-mbpp.jsonl", b"{\"task_id\": 1}\n");
    let err = load_dataset(&path, Dataset::Mbpp, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.path(), path.as_path());
    assert!(
        err.to_string()
            .starts_with(&format!("{}:1:", path.display())),
        "{err}"
    );

    let missing = std::env::temp_dir().join("mars2-no-such-file.jsonl");
    let err = load_problems(&missing, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }));

    let unknown = temp_file("things.jsonl", b"{\"a\": 1}\n");
    assert!(matches!(
        load_problems(&unknown, &LoadOptions::default()).unwrap_err(),
        LoadError::UnknownFormat { .. }
    ));

    // A truncated gzip file: the read error names the line where it happened.
    let gz = std::fs::read(common::data_dir().join("HumanEval.jsonl.gz")).unwrap();
    let cut = temp_file("HumanEval-cut.jsonl.gz", &gz[..gz.len() / 2]);
    let err = load_problems(&cut, &LoadOptions::default()).unwrap_err();
    assert!(err.line().is_some_and(|l| l > 1), "{err}");
    let skipped = load_problems(&cut, &LoadOptions::skipping_bad_lines()).unwrap();
    assert!(!skipped.problems.is_empty());
    assert_eq!(skipped.errors.len(), 1);
    std::fs::remove_dir_all(cut.parent().unwrap()).unwrap();
}

#[test]
fn datasets_are_detected_from_contents() {
    let data = common::data_dir();
    assert_eq!(
        detect_dataset(&data.join("HumanEval.jsonl.gz")).unwrap(),
        Dataset::HumanEval
    );
    assert_eq!(
        detect_dataset(&data.join("mbpp.jsonl")).unwrap(),
        Dataset::Mbpp
    );
    assert_eq!(
        detect_dataset(&data.join("lcb-lite-samples.jsonl")).unwrap(),
        Dataset::LiveCodeBench
    );
}
