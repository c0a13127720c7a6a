//! Output comparison rules (LiveCodeBench semantics). The harness applies the same rules in
//! Python inside the sandbox; this module is the reference they are tested against and is
//! usable on its own.
//!
//! Standard output matches the expected output when, tried in order:
//! 1. both are equal after stripping surrounding whitespace;
//! 2. their lines are equal after stripping each line;
//! 3. their whitespace-separated tokens are equal;
//! 4. they have as many tokens, and every differing pair is a pair of decimal numbers, not
//!    both integers, within `|actual − expected| ≤ ATOL + RTOL·|expected|`.
//!
//! Whitespace is the ASCII set space, tab, newline, carriage return, vertical tab and form
//! feed, in both implementations.

use serde_json::Value;

/// Relative tolerance of float tokens.
pub const RTOL: f64 = 1e-5;
/// Absolute tolerance of float tokens.
pub const ATOL: f64 = 1e-8;

const WHITESPACE: &[char] = &[' ', '\t', '\n', '\r', '\u{0b}', '\u{0c}'];

fn strip(s: &str) -> &str {
    s.trim_matches(WHITESPACE)
}

fn tokens(s: &str) -> Vec<&str> {
    s.split(WHITESPACE).filter(|t| !t.is_empty()).collect()
}

/// `[+-]?digits`
fn is_int_token(t: &str) -> bool {
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[+-]?(digits[.digits*] | .digits)([eE][+-]?digits)?` — no `inf`, `nan` or underscores.
fn is_float_token(t: &str) -> bool {
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => is_int_token(e),
    };
    mantissa_ok && exponent_ok
}

fn floats_close(actual: &str, expected: &str) -> bool {
    if is_int_token(actual) && is_int_token(expected) {
        return false;
    }
    if !(is_float_token(actual) && is_float_token(expected)) {
        return false;
    }
    match (actual.parse::<f64>(), expected.parse::<f64>()) {
        (Ok(a), Ok(e)) => (a - e).abs() <= ATOL + RTOL * e.abs(),
        _ => false,
    }
}

/// Which rule accepted an output, or `None` when none did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchRule {
    Exact,
    Lines,
    Tokens,
    FloatTokens,
}

/// The first rule under which `actual` matches `expected`.
pub fn stdout_match_rule(actual: &str, expected: &str) -> Option<MatchRule> {
    let (a, e) = (strip(actual), strip(expected));
    if a == e {
        return Some(MatchRule::Exact);
    }
    if a.split('\n').map(strip).eq(e.split('\n').map(strip)) {
        return Some(MatchRule::Lines);
    }
    let (at, et) = (tokens(a), tokens(e));
    if at == et {
        return Some(MatchRule::Tokens);
    }
    if at.len() == et.len()
        && at
            .iter()
            .zip(&et)
            .all(|(x, y)| x == y || floats_close(x, y))
    {
        return Some(MatchRule::FloatTokens);
    }
    None
}

/// Whether a program's standard output is accepted for the expected output.
pub fn stdout_matches(actual: &str, expected: &str) -> bool {
    stdout_match_rule(actual, expected).is_some()
}

/// Whether a functional test's return value (as JSON, tuples already lists) equals the
/// expected JSON value under Python's `==`: numbers compare by value (`1 == 1.0`), booleans
/// equal the numbers 0 and 1, lists element-wise, objects key-wise.
pub fn functional_matches(actual: &Value, expected: &Value) -> bool {
    fn number(v: &Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }
    match (actual, expected) {
        (Value::Null, Value::Null) => true,
        (Value::String(a), Value::String(e)) => a == e,
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(x, y)| functional_matches(x, y))
        }
        (Value::Object(a), Value::Object(e)) => {
            a.len() == e.len()
                && a.iter()
                    .all(|(k, v)| e.get(k).is_some_and(|w| functional_matches(v, w)))
        }
        (Value::Number(a), Value::Number(e)) => match (a.as_i64(), e.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (a.as_u64(), e.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => a.as_f64() == e.as_f64(),
            },
        },
        _ => match (number(actual), number(expected)) {
            (Some(a), Some(e)) => a == e,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_after_strip() {
        assert_eq!(stdout_match_rule("YES\n", "YES"), Some(MatchRule::Exact));
        assert_eq!(stdout_match_rule("  \n3\n\n", "3"), Some(MatchRule::Exact));
        assert!(!stdout_matches("YES", "NO"));
        assert!(!stdout_matches("", "0"));
        assert!(stdout_matches("", "\n"));
    }

    #[test]
    fn trailing_spaces_on_lines() {
        assert_eq!(
            stdout_match_rule("1 2 \n3   \n", "1 2\n3\n"),
            Some(MatchRule::Lines)
        );
        assert_eq!(
            stdout_match_rule("a\r\nb\r\n", "a\nb\n"),
            Some(MatchRule::Lines)
        );
    }

    #[test]
    fn blank_lines_and_spacing_fall_to_tokens() {
        assert_eq!(
            stdout_match_rule("1\n\n2\n", "1\n2\n"),
            Some(MatchRule::Tokens)
        );
        assert_eq!(stdout_match_rule("1  2", "1 2"), Some(MatchRule::Tokens));
        assert_eq!(
            stdout_match_rule("1 2\n3", "1\n2 3"),
            Some(MatchRule::Tokens)
        );
        assert!(!stdout_matches("1 2 3", "1 2"));
        assert!(!stdout_matches("12", "1 2"));
    }

    #[test]
    fn float_tolerance() {
        assert_eq!(
            stdout_match_rule("0.3333333", "0.33333333333"),
            Some(MatchRule::FloatTokens)
        );
        assert!(stdout_matches("1.000001", "1.0"));
        assert!(!stdout_matches("1.0001", "1.0"));
        assert!(stdout_matches("1e-9", "0"));
        assert!(stdout_matches("3.0", "3"));
        assert!(stdout_matches("2.50 x", "2.5 x"));
        assert!(stdout_matches("1E5", "100000.0"));
        assert!(!stdout_matches("0.5 y", "0.5 x"));
        assert!(!stdout_matches("nan", "0.0"), "nan is not a number token");
        assert!(!stdout_matches("inf", "1e400"));
        assert!(stdout_matches(".5", "0.5"));
    }

    #[test]
    fn integers_never_get_tolerance() {
        assert!(!stdout_matches("1000001", "1000000"));
        assert!(!stdout_matches("+5", "5"));
        assert!(!stdout_matches("007", "7"));
        assert!(!stdout_matches("1.", "2"));
    }

    #[test]
    fn number_token_grammar() {
        for t in ["1", "-1", "+1", "1.", ".5", "1.5e10", "1E-3", "-.5e+2"] {
            assert!(is_float_token(t), "{t}");
        }
        for t in [
            "", ".", "e5", "1e", "1.5.2", "inf", "nan", "1_000", "0x10", "--1",
        ] {
            assert!(!is_float_token(t), "{t}");
        }
        assert!(is_int_token("-12"));
        assert!(!is_int_token("1.0"));
        assert!(!is_int_token("-"));
    }

    #[test]
    fn functional_tuples_arrive_as_lists_and_compare_equal() {
        assert!(functional_matches(&json!([1, 2]), &json!([1, 2])));
        assert!(!functional_matches(&json!([1, 2]), &json!([2, 1])));
        assert!(functional_matches(&json!([[1, "a"]]), &json!([[1, "a"]])));
    }

    #[test]
    fn functional_follows_python_equality() {
        assert!(functional_matches(&json!(1), &json!(1.0)));
        assert!(functional_matches(&json!(true), &json!(1)));
        assert!(!functional_matches(&json!(true), &json!("true")));
        assert!(!functional_matches(&json!(null), &json!(0)));
        assert!(functional_matches(&json!({"a": 1}), &json!({"a": 1.0})));
        assert!(!functional_matches(&json!({"a": 1}), &json!({"b": 1})));
        assert!(!functional_matches(&json!(2.0000001), &json!(2.0)));
    }
}
