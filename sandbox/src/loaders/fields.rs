//! Typed access to the fields of one JSON record, with errors that name the field.

use serde_json::{Map, Value};

use crate::error::LineError;

pub(crate) type Record = Map<String, Value>;

/// A required string field.
pub(crate) fn string<'a>(record: &'a Record, field: &'static str) -> Result<&'a str, LineError> {
    match record.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(LineError::WrongType {
            field,
            expected: "a string",
        }),
        None => Err(LineError::MissingField(field)),
    }
}

/// An optional string field; `null` counts as absent.
pub(crate) fn optional_string<'a>(
    record: &'a Record,
    field: &'static str,
) -> Result<Option<&'a str>, LineError> {
    match record.get(field) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(LineError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// A required identifier that may be written as a string or as a non-negative integer.
pub(crate) fn id(record: &Record, field: &'static str) -> Result<String, LineError> {
    match record.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        Some(_) => Err(LineError::WrongType {
            field,
            expected: "a non-empty string or a non-negative integer",
        }),
        None => Err(LineError::MissingField(field)),
    }
}

/// A required list of strings.
pub(crate) fn string_list(record: &Record, field: &'static str) -> Result<Vec<String>, LineError> {
    let wrong = LineError::WrongType {
        field,
        expected: "a list of strings",
    };
    match record.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(LineError::WrongType {
                    field,
                    expected: "a list of strings",
                }),
            })
            .collect(),
        Some(_) => Err(wrong),
        None => Err(LineError::MissingField(field)),
    }
}
