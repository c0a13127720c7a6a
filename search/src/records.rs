//! The files of an evaluation run directory and resuming: `run.json` (the settings),
//! `trees.jsonl` (one finished problem per line, appended and flushed as each problem
//! finishes), `summary.json` and `report.html`.
//!
//! Rerunning with the same directory skips the problems already in `trees.jsonl`. A line
//! torn by an interruption (the last line, without its newline) is dropped and its problem
//! is run again; any other unreadable line is an error naming the file and line.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SearchError};
use crate::metrics::ProblemMetrics;
use crate::runner::FreshSample;
use crate::tree::Tree;

/// One finished problem, as one line of `trees.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemRecord {
    pub problem_id: String,
    pub tree: Tree,
    pub samples: Vec<FreshSample>,
    pub metrics: ProblemMetrics,
    pub wall_seconds: f64,
}

pub const SETTINGS_FILE: &str = "run.json";
pub const TREES_FILE: &str = "trees.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const REPORT_FILE: &str = "report.html";

/// An evaluation run directory.
pub struct RunDir {
    dir: PathBuf,
    trees: File,
}

impl RunDir {
    /// Opens (or creates) `dir` for a run with `settings`. An existing directory must hold
    /// a run with the same settings; its finished problems are returned.
    pub fn open(dir: &Path, settings: &serde_json::Value) -> Result<(RunDir, Vec<ProblemRecord>)> {
        fs::create_dir_all(dir).map_err(|e| SearchError::file(dir, e))?;
        let settings_path = dir.join(SETTINGS_FILE);
        if settings_path.exists() {
            let text = fs::read_to_string(&settings_path)
                .map_err(|e| SearchError::file(&settings_path, e))?;
            let old: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| SearchError::file(&settings_path, format!("not JSON: {e}")))?;
            if &old != settings {
                return Err(SearchError::file(
                    &settings_path,
                    format!(
                        "the directory holds a run with other settings; use another output directory or the same settings\n  there: {old}\n  now:   {settings}"
                    ),
                ));
            }
        } else {
            write_atomically(&settings_path, &pretty(settings)?)?;
        }
        let trees_path = dir.join(TREES_FILE);
        let done = read_records(&trees_path)?;
        let trees = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&trees_path)
            .map_err(|e| SearchError::file(&trees_path, e))?;
        Ok((
            RunDir {
                dir: dir.to_path_buf(),
                trees,
            },
            done,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Appends one finished problem and flushes it to disk.
    pub fn append(&mut self, record: &ProblemRecord) -> Result<()> {
        let path = self.dir.join(TREES_FILE);
        let mut line = serde_json::to_string(record).map_err(|e| SearchError::file(&path, e))?;
        line.push('\n');
        self.trees
            .write_all(line.as_bytes())
            .and_then(|_| self.trees.sync_data())
            .map_err(|e| SearchError::file(&path, e))
    }

    /// Writes `name` in the run directory atomically.
    pub fn write(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        write_atomically(&path, contents)?;
        Ok(path)
    }
}

pub(crate) fn pretty(value: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| SearchError::Generation(e.to_string()))
}

/// Writes through a temporary file and a rename, so readers never see half a file.
pub fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| SearchError::file(path, e))
}

/// Reads the finished problems of `path` (none when it does not exist), dropping a torn last
/// line and truncating the file to the last complete line.
pub fn read_records(path: &Path) -> Result<Vec<ProblemRecord>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SearchError::file(path, e)),
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut good_bytes = 0u64;
    let mut line_no = 0;
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| SearchError::file(path, e))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        let complete = line.ends_with('\n');
        if line.trim().is_empty() {
            good_bytes += read as u64;
            continue;
        }
        if !complete {
            // An interrupted append: keep everything before it, run its problem again.
            tracing::warn!(
                "{}: dropping the unfinished last line {line_no}; its problem runs again",
                path.display()
            );
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| SearchError::file(path, e))?;
            file.set_len(good_bytes)
                .map_err(|e| SearchError::file(path, e))?;
            break;
        }
        let record = serde_json::from_str::<ProblemRecord>(line.trim_end()).map_err(|e| {
            SearchError::Record {
                path: path.to_path_buf(),
                line: line_no,
                message: format!("not a problem record: {e}"),
            }
        })?;
        records.push(record);
        good_bytes += read as u64;
    }
    Ok(records)
}
