//! Helpers shared by the integration tests: locating the reference fixtures (made with Hugging
//! Face transformers) and reading their token ids and logits.

use std::path::PathBuf;

/// The README's Rust example compiles (as a doctest of this crate).
#[doc = include_str!("../../README.md")]
mod readme {}

use safetensors::SafeTensors;
use serde_json::Value;

/// This package's directory as `cargo test` gives it when the test starts, so that a test
/// binary reused from another clone (through a shared `CARGO_TARGET_DIR`) reads this clone's
/// files; the directory seen at compile time when run by hand.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `tests/fixtures/<name>` in this repository.
pub fn fixture(name: &str) -> PathBuf {
    package_dir().join("fixtures").join(name)
}

pub fn reference_json(name: &str) -> Value {
    let path = fixture(name).join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an array of token ids")
        .iter()
        .map(|v| v.as_u64().expect("a token id") as u32)
        .collect()
}

/// A `[rows, cols]` f32 tensor from `reference_logits.safetensors`.
pub fn reference_logits(name: &str, tensor: &str) -> (Vec<usize>, Vec<f32>) {
    let path = fixture(name).join("reference_logits.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let view = st.tensor(tensor).expect("tensor present");
    let data = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (view.shape().to_vec(), data)
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The backend tests run on: `$MARS2_TEST_DEVICE` (cpu, wgpu, cuda), default cpu.
pub fn test_device() -> mars2_engine::DeviceKind {
    match std::env::var("MARS2_TEST_DEVICE") {
        Ok(name) if !name.is_empty() => name
            .parse()
            .unwrap_or_else(|e| panic!("MARS2_TEST_DEVICE: {e}")),
        _ => mars2_engine::DeviceKind::Cpu,
    }
}

/// Set to `1` to let tests whose registered model is not cached skip (visibly) instead of
/// failing; `cargo xtask test --offline` sets it.
pub const SKIP_MISSING_MODELS: &str = "MARS2_SKIP_MISSING_MODELS";
/// A file each skipped test appends its name and reason to, so that the test command can list
/// them at the end of its run.
pub const SKIPPED_LOG: &str = "MARS2_SKIPPED_LOG";

/// Records that the running test skips, and why: on stderr and in `$MARS2_SKIPPED_LOG`.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    eprintln!("SKIPPED {test}: {reason}");
    if let Some(log) = std::env::var_os(SKIPPED_LOG).filter(|v| !v.is_empty()) {
        use std::io::Write;
        let line = format!("{test}: {reason}\n");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            eprintln!(
                "could not record the skip in {}: {e}",
                log.to_string_lossy()
            );
        }
    }
}

/// The cached file of registered model `name`. When it has not been fetched the test fails,
/// unless `$MARS2_SKIP_MISSING_MODELS` is `1`: then the skip is recorded and `None` returned.
pub fn registered_model(name: &str) -> Option<PathBuf> {
    let model = mars2_models::registry::find(name)
        .unwrap_or_else(|| panic!("{name:?} is not a registered model"));
    let path = mars2_models::registry::cached_path(model);
    if path.is_file() {
        return Some(path);
    }
    let reason = format!(
        "{} not found; run `cargo xtask fetch-model {name}`",
        path.display()
    );
    if std::env::var(SKIP_MISSING_MODELS).is_ok_and(|v| v == "1") {
        skip(&reason);
        return None;
    }
    panic!("{reason} (or set {SKIP_MISSING_MODELS}=1 to skip the tests that need it)");
}

/// Whether the opt-in variable `var` is `1`; if not, the skip is recorded.
pub fn opted_in(var: &str) -> bool {
    if std::env::var(var).is_ok_and(|v| v == "1") {
        return true;
    }
    skip(&format!("opt-in test; set {var}=1 to run it"));
    false
}
