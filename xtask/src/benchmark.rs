//! Benchmarks by name: `humaneval`, `mbpp` (a split of the vendored MBPP), `mbpp-plus`
//! (EvalPlus's MBPP+ tasks with their base tests, drawn from all of MBPP's splits) and
//! `lcb:FILE` (a LiveCodeBench `code_generation_lite` JSONL file), loaded with the sandbox's
//! loaders.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use mars2_sandbox::{load_problems, LoadOptions, Problem, Split};

/// The repository's vendored data directory.
///
/// Found from `CARGO_MANIFEST_DIR` as `cargo run` sets it when the command starts, so that a
/// binary built in another clone of the repository (a shared `CARGO_TARGET_DIR` reuses it)
/// reads this clone's data; the directory seen at compile time is the fallback for a binary
/// started by hand.
pub fn data_dir() -> PathBuf {
    data_dir_from(std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from))
}

fn data_dir_from(run_time_manifest_dir: Option<PathBuf>) -> PathBuf {
    run_time_manifest_dir
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..")
        .join("data")
}

/// A benchmark named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Benchmark {
    HumanEval,
    Mbpp,
    MbppPlus,
    LiveCodeBench(PathBuf),
}

impl FromStr for Benchmark {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "humaneval" => Ok(Benchmark::HumanEval),
            "mbpp" => Ok(Benchmark::Mbpp),
            "mbpp-plus" => Ok(Benchmark::MbppPlus),
            _ => match s.strip_prefix("lcb:") {
                Some(file) if !file.is_empty() => Ok(Benchmark::LiveCodeBench(file.into())),
                _ => Err(format!(
                    "unknown benchmark {s:?} (expected humaneval, mbpp, mbpp-plus or lcb:FILE)"
                )),
            },
        }
    }
}

impl std::fmt::Display for Benchmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Benchmark::HumanEval => f.write_str("humaneval"),
            Benchmark::Mbpp => f.write_str("mbpp"),
            Benchmark::MbppPlus => f.write_str("mbpp-plus"),
            Benchmark::LiveCodeBench(p) => write!(f, "lcb:{}", p.display()),
        }
    }
}

/// The problems of `benchmark`; for MBPP only those of `split` (MBPP+ takes all its tasks,
/// whatever their MBPP split).
pub fn load_benchmark(benchmark: &Benchmark, split: Split) -> Result<Vec<Problem>> {
    let path = match benchmark {
        Benchmark::HumanEval => data_dir().join("HumanEval.jsonl.gz"),
        Benchmark::Mbpp => data_dir().join("mbpp.jsonl"),
        Benchmark::MbppPlus => data_dir().join("MbppPlus-v0.1.0-base.jsonl"),
        Benchmark::LiveCodeBench(p) => p.clone(),
    };
    let loaded = load_problems(&path, &LoadOptions::default())
        .with_context(|| format!("loading {benchmark}"))?;
    let mut problems = loaded.problems;
    if *benchmark == Benchmark::Mbpp {
        problems.retain(|p| p.split == Some(split));
    }
    if problems.is_empty() {
        bail!("{} holds no problems", path.display());
    }
    Ok(problems)
}

/// Parses an MBPP split name.
pub fn parse_split(s: &str) -> Result<Split, String> {
    match s {
        "train" => Ok(Split::Train),
        "test" => Ok(Split::Test),
        "validation" => Ok(Split::Validation),
        "few-shot" | "few_shot" => Ok(Split::FewShot),
        _ => Err(format!(
            "unknown MBPP split {s:?} (expected train, test, validation or few-shot)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_follows_the_manifest_dir_given_at_run_time() {
        let moved = data_dir_from(Some(PathBuf::from("/elsewhere/clone/xtask")));
        assert_eq!(moved, PathBuf::from("/elsewhere/clone/xtask/../data"));
        let built = data_dir_from(None);
        assert!(built.join("mbpp.jsonl").is_file(), "{}", built.display());
    }

    #[test]
    fn mbpp_plus_holds_its_399_tasks_from_every_split() {
        let benchmark: Benchmark = "mbpp-plus".parse().unwrap();
        assert_eq!(benchmark.to_string(), "mbpp-plus");
        let problems = load_benchmark(&benchmark, Split::Test).unwrap();
        assert_eq!(problems.len(), 399);
        assert_eq!(problems[0].id, "Mbpp/2");
        assert!(problems.iter().any(|p| p.split == Some(Split::Train)));
        assert!(problems.iter().all(|p| p.entry_point.is_some()));
    }
}
