//! Dataset loaders: JSONL (optionally gzip-compressed) files of LiveCodeBench, HumanEval and
//! MBPP records, turned into [`Problem`]s. A bad line is an error naming the file and line;
//! with [`LoadOptions::skip_bad_lines`] loading goes on and the errors come back alongside.

mod fields;
pub mod humaneval;
mod jsonl;
pub mod lcb;
pub mod mbpp;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{LineError, LoadError};
use crate::problem::{Dataset, Problem};

/// How to load a dataset file.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Keep loading after a bad line and return its error in [`Loaded::errors`]; otherwise
    /// the first bad line stops loading.
    pub skip_bad_lines: bool,
    /// Largest decompressed size of one compressed test field (LiveCodeBench private tests).
    pub max_decompressed_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            skip_bad_lines: false,
            max_decompressed_bytes: 1 << 30,
        }
    }
}

impl LoadOptions {
    /// Options that skip bad lines and report them.
    pub fn skipping_bad_lines() -> Self {
        LoadOptions {
            skip_bad_lines: true,
            ..LoadOptions::default()
        }
    }
}

/// The problems of a file, plus the errors of the lines that were skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub problems: Vec<Problem>,
    pub errors: Vec<LoadError>,
}

/// Loads a dataset file, telling the dataset from its first record (falling back to the
/// file name). Gzip-compressed files are recognised by their magic bytes.
pub fn load_problems(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Loaded, LoadError> {
    let path = path.as_ref();
    let dataset = detect_dataset(path)?;
    load_dataset(path, dataset, options)
}

/// Loads a file known to hold the given dataset.
pub fn load_dataset(
    path: impl AsRef<Path>,
    dataset: Dataset,
    options: &LoadOptions,
) -> Result<Loaded, LoadError> {
    let path = path.as_ref();
    let reader = open_text(path)?;
    read_dataset(path, reader, dataset, options)
}

/// Parses records of `dataset` from any reader; `name` is used in error messages.
pub fn read_dataset(
    name: impl Into<PathBuf>,
    reader: impl BufRead,
    dataset: Dataset,
    options: &LoadOptions,
) -> Result<Loaded, LoadError> {
    let name = name.into();
    match dataset {
        Dataset::LiveCodeBench => jsonl::read_records(&name, reader, options, |record| {
            lcb::problem_from_record(record, options)
        }),
        Dataset::HumanEval => {
            jsonl::read_records(&name, reader, options, humaneval::problem_from_record)
        }
        Dataset::Mbpp => jsonl::read_records(&name, reader, options, mbpp::problem_from_record),
    }
}

/// Which dataset a file holds: from the keys of its first record, else from its name.
pub fn detect_dataset(path: &Path) -> Result<Dataset, LoadError> {
    let mut reader = open_text(path)?;
    let mut first = Vec::new();
    loop {
        first.clear();
        let n = reader
            .read_until(b'\n', &mut first)
            .map_err(|source| LoadError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 || !first.iter().all(u8::is_ascii_whitespace) {
            break;
        }
    }
    if let Ok(serde_json::Value::Object(record)) = serde_json::from_slice(&first) {
        if record.contains_key("public_test_cases") || record.contains_key("question_id") {
            return Ok(Dataset::LiveCodeBench);
        }
        // MBPP+ records also carry HumanEval's keys; their asserts tell them apart.
        if record.contains_key("assertion") || record.contains_key("test_list") {
            return Ok(Dataset::Mbpp);
        }
        if record.contains_key("canonical_solution") || record.contains_key("entry_point") {
            return Ok(Dataset::HumanEval);
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.contains("humaneval") {
        Ok(Dataset::HumanEval)
    } else if name.contains("mbpp") {
        Ok(Dataset::Mbpp)
    } else if name.contains("lcb") || name.contains("livecodebench") {
        Ok(Dataset::LiveCodeBench)
    } else {
        Err(LoadError::UnknownFormat {
            path: path.to_path_buf(),
        })
    }
}

/// Opens a file for line reading, transparently gunzipping it when it starts with the gzip
/// magic bytes.
fn open_text(path: &Path) -> Result<Box<dyn BufRead>, LoadError> {
    let io_error = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        let n = file.read(&mut magic[got..]).map_err(io_error)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let file = File::open(path).map_err(io_error)?;
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            file,
        ))))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

/// The record-level error type the per-dataset parsers return.
pub(crate) type RecordResult = Result<Problem, LineError>;
