//! The referee's Python comparison must agree with `compare.rs` on every rule: both are run
//! on the same table of outputs and their answers compared.

mod common;

use mars2_sandbox::compare::{functional_matches, stdout_matches};
use mars2_sandbox::REFEREE_SOURCE;

const STDOUT_CASES: &[(&str, &str)] = &[
    ("YES\n", "YES"),
    ("YES", "NO"),
    ("", "\n"),
    ("", "0"),
    ("1 2 \n3   \n", "1 2\n3\n"),
    ("a\r\nb\r\n", "a\nb\n"),
    ("1\n\n2\n", "1\n2\n"),
    ("1  2", "1 2"),
    ("1 2\n3", "1\n2 3"),
    ("1 2 3", "1 2"),
    ("12", "1 2"),
    ("0.3333333", "0.33333333333"),
    ("1.000001", "1.0"),
    ("1.0001", "1.0"),
    ("1e-9", "0"),
    ("3.0", "3"),
    ("2.50 x", "2.5 x"),
    ("1E5", "100000.0"),
    ("0.5 y", "0.5 x"),
    ("nan", "0.0"),
    ("inf", "1e400"),
    ("1e400", "1e401"),
    (".5", "0.5"),
    ("1000001", "1000000"),
    ("+5", "5"),
    ("007", "7"),
    ("1.", "2"),
    ("1_000", "1000"),
    ("\u{a0}1", "1"),
    ("1\u{0b}2", "1 2"),
    ("-0.0", "0"),
    ("100000.1", "100000"),
    ("100001", "100000.0"),
];

const FUNCTIONAL_CASES: &[(&str, &str)] = &[
    ("[1, 2]", "[1, 2]"),
    ("[1, 2]", "[2, 1]"),
    ("1", "1.0"),
    ("true", "1"),
    ("true", "\"true\""),
    ("null", "0"),
    ("{\"a\": 1}", "{\"a\": 1.0}"),
    ("{\"a\": 1}", "{\"b\": 1}"),
    ("2.0000001", "2.0"),
    ("[[1, \"a\"]]", "[[1, \"a\"]]"),
    ("false", "0"),
];

#[test]
fn python_and_rust_comparisons_agree() {
    // The referee's functions without its entry point.
    let library = REFEREE_SOURCE
        .trim_end()
        .strip_suffix("if __name__ == \"__main__\":\n    main()")
        .expect("the referee ends by calling main()");
    let script = format!(
        r#"{library}
import json, sys
cases = json.loads(sys.stdin.read())
out = {{
    "stdout": [stdout_matches(a, e) for a, e in cases["stdout"]],
    "functional": [as_lists(json.loads(a)) == json.loads(e) for a, e in cases["functional"]],
    "tuple": as_lists((1, (2, 3))) == [1, [2, 3]],
}}
print(json.dumps(out))
"#
    );
    let input = serde_json::json!({ "stdout": STDOUT_CASES, "functional": FUNCTIONAL_CASES });
    let out = common::sandbox()
        .run_script(&script, input.to_string().as_bytes())
        .expect("run");
    let answers: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(answers["tuple"], true);
    for (i, (actual, expected)) in STDOUT_CASES.iter().enumerate() {
        assert_eq!(
            answers["stdout"][i].as_bool(),
            Some(stdout_matches(actual, expected)),
            "stdout case {actual:?} vs {expected:?}"
        );
    }
    for (i, (actual, expected)) in FUNCTIONAL_CASES.iter().enumerate() {
        let a: serde_json::Value = serde_json::from_str(actual).unwrap();
        let e: serde_json::Value = serde_json::from_str(expected).unwrap();
        assert_eq!(
            answers["functional"][i].as_bool(),
            Some(functional_matches(&a, &e)),
            "functional case {actual} vs {expected}"
        );
    }
}
