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
