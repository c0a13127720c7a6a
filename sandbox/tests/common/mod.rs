//! Shared utilities of the integration tests: the repository's data directory and one
//! sandbox per test binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use mars2_sandbox::{load_problems, LoadOptions, Problem, Sandbox, SandboxConfig};

/// This package's directory as `cargo test` gives it when the test starts, so that a test
/// binary reused from another clone (through a shared `CARGO_TARGET_DIR`) reads this clone's
/// files; the directory seen at compile time when run by hand.
pub fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The vendored datasets.
pub fn data_dir() -> PathBuf {
    package_dir().join("../data")
}

/// All problems of one vendored file.
pub fn problems(file: &str) -> Vec<Problem> {
    let loaded = load_problems(data_dir().join(file), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {file}: {e}"));
    assert!(loaded.errors.is_empty());
    loaded.problems
}

/// The default sandbox, built once.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).expect("sandbox"))
}

/// The process ids of every process on the host whose `/proc/<pid>` directory satisfies `keep`.
fn host_processes_where(keep: impl Fn(&std::path::Path) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            keep(&entry.path()).then_some(pid)
        })
        .collect()
}

/// The process ids of every process on the host whose command line contains `needle`.
pub fn host_processes_with(needle: &str) -> Vec<u32> {
    host_processes_where(|dir| {
        std::fs::read(dir.join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
    })
}

/// The process ids of every process on the host owned by a user id in `range`.
pub fn host_processes_of_uids(range: std::ops::Range<u32>) -> Vec<u32> {
    host_processes_where(|dir| {
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            return false;
        };
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok())
            .is_some_and(|u| range.contains(&u))
    })
}
