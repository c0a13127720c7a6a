//! LiveCodeBench `code_generation_lite` records.
//!
//! `public_test_cases` is a JSON string holding a list of `{input, output, testtype}`;
//! `private_test_cases` is either the same kind of JSON string or
//! base64(zlib(pickle(JSON string))). The pickle is decoded by a pickle *reader*, never by
//! running Python. `metadata` is a JSON string whose `func_name` names the function that
//! functional tests call.

use std::io::Read;

use base64::Engine as _;
use serde_json::Value;

use super::fields::{self, Record};
use super::{LoadOptions, RecordResult};
use crate::error::LineError;
use crate::problem::{Dataset, Problem, TestCase};

/// Builds a problem from one LiveCodeBench record.
pub fn problem_from_record(record: &Record, options: &LoadOptions) -> RecordResult {
    let id = fields::id(record, "question_id")?;
    let statement = fields::string(record, "question_content")?.to_string();
    let metadata = parse_metadata(fields::optional_string(record, "metadata")?)?;
    let func_name = metadata
        .get("func_name")
        .and_then(Value::as_str)
        .map(str::to_string);

    let public_json = fields::string(record, "public_test_cases")?;
    let public_tests = parse_test_list(public_json, "public_test_cases", func_name.as_deref())?;
    let private_raw = fields::string(record, "private_test_cases")?;
    let private_json = decode_private_tests(private_raw, options.max_decompressed_bytes)?;
    let hidden_tests = parse_test_list(&private_json, "private_test_cases", func_name.as_deref())?;

    Ok(Problem {
        id,
        dataset: Dataset::LiveCodeBench,
        title: fields::optional_string(record, "question_title")?.map(str::to_string),
        statement,
        starter_code: fields::optional_string(record, "starter_code")?
            .unwrap_or_default()
            .to_string(),
        entry_point: func_name,
        public_tests,
        hidden_tests,
        reference_solution: None,
        platform: fields::optional_string(record, "platform")?.map(str::to_string),
        difficulty: fields::optional_string(record, "difficulty")?.map(str::to_string),
        split: None,
    })
}

fn parse_metadata(text: Option<&str>) -> Result<serde_json::Map<String, Value>, LineError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(Default::default());
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(LineError::WrongType {
            field: "metadata",
            expected: "a JSON string holding an object",
        }),
        Err(e) => Err(LineError::Invalid(format!(
            "field `metadata`: invalid JSON: {e}"
        ))),
    }
}

/// Returns the JSON text of the private tests, decoding base64 → zlib → pickle when the
/// field is not plain JSON.
pub fn decode_private_tests(raw: &str, max_bytes: u64) -> Result<String, LineError> {
    const FIELD: &str = "private_test_cases";
    let trimmed = raw.trim();
    if trimmed.starts_with('[') {
        return Ok(trimmed.to_string());
    }
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .map_err(|e| LineError::Base64 {
            field: FIELD,
            message: e.to_string(),
        })?;
    let mut pickled = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(max_bytes + 1)
        .read_to_end(&mut pickled)
        .map_err(|e| LineError::Zlib {
            field: FIELD,
            message: e.to_string(),
        })?;
    if pickled.len() as u64 > max_bytes {
        return Err(LineError::TooLarge {
            field: FIELD,
            limit: max_bytes,
        });
    }
    let value =
        serde_pickle::value_from_slice(&pickled, serde_pickle::DeOptions::new()).map_err(|e| {
            LineError::Pickle {
                field: FIELD,
                message: e.to_string(),
            }
        })?;
    match value {
        serde_pickle::Value::String(s) => Ok(s),
        serde_pickle::Value::Bytes(b) => String::from_utf8(b).map_err(|_| LineError::Pickle {
            field: FIELD,
            message: "pickled bytes are not UTF-8".into(),
        }),
        _ => Err(LineError::Pickle {
            field: FIELD,
            message: "pickle does not hold a string".into(),
        }),
    }
}

/// Parses a JSON list of `{input, output, testtype}` objects.
fn parse_test_list(
    json: &str,
    field: &'static str,
    func_name: Option<&str>,
) -> Result<Vec<TestCase>, LineError> {
    let bad = |message: String| LineError::Tests { field, message };
    let value: Value = serde_json::from_str(json).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(bad("not a JSON list".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(test) = item else {
                return Err(bad(format!("test {i} is not an object")));
            };
            let text = |key: &str| match test.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(bad(format!("test {i}: `{key}` is not a string"))),
                None => Err(bad(format!("test {i}: missing `{key}`"))),
            };
            let input = text("input")?;
            let output = text("output")?;
            match text("testtype")?.as_str() {
                "stdin" => Ok(TestCase::Stdin { input, output }),
                "functional" => {
                    let function = func_name.ok_or_else(|| {
                        bad(format!(
                            "test {i} is functional but `metadata` has no `func_name`"
                        ))
                    })?;
                    Ok(TestCase::Functional {
                        function: function.to_string(),
                        input,
                        output,
                    })
                }
                other => Err(bad(format!("test {i}: unknown testtype `{other}`"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_private_tests_pass_through() {
        let json = r#"[{"input": "1\n", "output": "2\n", "testtype": "stdin"}]"#;
        assert_eq!(decode_private_tests(json, 1024).unwrap(), json);
    }

    #[test]
    fn too_large_decompression_is_refused() {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(enc.finish().unwrap());
        assert!(matches!(
            decode_private_tests(&b64, 100),
            Err(LineError::TooLarge { .. })
        ));
    }

    #[test]
    fn functional_tests_need_a_function_name() {
        let json = r#"[{"input": "1", "output": "2", "testtype": "functional"}]"#;
        let err = parse_test_list(json, "public_test_cases", None).unwrap_err();
        assert!(err.to_string().contains("func_name"), "{err}");
        let tests = parse_test_list(json, "public_test_cases", Some("f")).unwrap();
        assert_eq!(
            tests,
            vec![TestCase::Functional {
                function: "f".into(),
                input: "1".into(),
                output: "2".into()
            }]
        );
    }
}
