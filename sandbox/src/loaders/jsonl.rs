//! Line-by-line JSONL reading with 1-based line numbers, blank lines skipped, and the
//! stop-or-skip policy for bad lines.

use std::io::BufRead;
use std::path::Path;

use serde_json::{Map, Value};

use super::{LoadOptions, Loaded, RecordResult};
use crate::error::{LineError, LoadError};

/// Reads every non-blank line as a JSON object and turns it into a problem with `parse`.
pub(crate) fn read_records(
    path: &Path,
    mut reader: impl BufRead,
    options: &LoadOptions,
    mut parse: impl FnMut(&Map<String, Value>) -> RecordResult,
) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        line_no += 1;
        let outcome = match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => parse_line(&buf, &mut parse),
            // A read error (e.g. corrupt gzip) leaves the stream unusable: report and stop.
            Err(err) => {
                let error = LoadError::Line {
                    path: path.to_path_buf(),
                    line: line_no,
                    kind: LineError::Read(err),
                };
                if options.skip_bad_lines {
                    loaded.errors.push(error);
                    break;
                }
                return Err(error);
            }
        };
        match outcome {
            Ok(Some(problem)) => loaded.problems.push(problem),
            Ok(None) => {}
            Err(kind) => {
                let error = LoadError::Line {
                    path: path.to_path_buf(),
                    line: line_no,
                    kind,
                };
                if !options.skip_bad_lines {
                    return Err(error);
                }
                loaded.errors.push(error);
            }
        }
    }
    Ok(loaded)
}

fn parse_line(
    bytes: &[u8],
    parse: &mut impl FnMut(&Map<String, Value>) -> RecordResult,
) -> Result<Option<crate::Problem>, LineError> {
    let text = std::str::from_utf8(bytes).map_err(|_| LineError::Utf8)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| LineError::Json(e.to_string()))?;
    match value {
        Value::Object(record) => parse(&record).map(Some),
        _ => Err(LineError::NotAnObject),
    }
}
