//! Every loader refuses bad files with an error naming the file and the problem.

use std::path::Path;

use mars2_engine::device::Cpu;
use mars2_models::gguf::metadata::MetadataValue as M;
use mars2_models::gguf::writer::GgufWriter;
use mars2_models::{load_model, ModelError};
use mars2_tests::fixture;

fn load_err(path: &Path) -> String {
    match load_model::<Cpu>(path, &Default::default()) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e.to_string(),
    }
}

/// A copy of the tiny Llama checkpoint in a temporary directory, for corrupting.
fn tiny_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("llama-tiny").join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn unknown_architecture() {
    let dir = tiny_copy();
    edit_config(dir.path(), |v| v["model_type"] = "mamba".into());
    let err = load_err(dir.path());
    assert!(
        err.contains("config.json") && err.contains("mamba"),
        "{err}"
    );
}

#[test]
fn config_that_is_not_json() {
    let dir = tiny_copy();
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("config.json") && err.contains("invalid JSON"),
        "{err}"
    );
}

#[test]
fn wrong_shape_names_the_tensor() {
    let dir = tiny_copy();
    edit_config(dir.path(), |v| v["intermediate_size"] = 96.into());
    let err = load_err(dir.path());
    assert!(
        err.contains("model.safetensors")
            && err.contains("mlp.gate_proj.weight")
            && err.contains("[96, 64]"),
        "{err}"
    );
}

#[test]
fn missing_tensor_names_the_tensor() {
    let dir = tiny_copy();
    // Untied head expected, and one more layer than the checkpoint has.
    edit_config(dir.path(), |v| v["num_hidden_layers"] = 3.into());
    let err = load_err(dir.path());
    assert!(
        err.contains("missing tensor") && err.contains("model.layers.2."),
        "{err}"
    );
}

#[test]
fn truncated_safetensors() {
    let dir = tiny_copy();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("not a valid safetensors file"),
        "{err}"
    );
}

#[test]
fn not_a_model_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("expected a directory with config.json or a .gguf file"),
        "{err}"
    );
    let err = load_err(&dir.path().join("absent"));
    assert!(
        err.contains("absent") && err.contains("no such file"),
        "{err}"
    );
}

fn minimal_gguf(type_id: u32, bytes: Vec<u8>) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", M::String("llama".into()))
        .metadata("llama.embedding_length", M::U32(32))
        .metadata("llama.block_count", M::U32(1))
        .metadata("llama.feed_forward_length", M::U32(64))
        .metadata("llama.attention.head_count", M::U32(2))
        .metadata("llama.vocab_size", M::U32(8))
        .tensor_raw("token_embd.weight", &[8, 32], type_id, bytes);
    w.to_bytes()
}

#[test]
fn gguf_bad_magic_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, b"GGML\x03\x00\x00\x00").unwrap();
    let err = load_err(&path);
    assert!(err.contains("m.gguf") && err.contains("bad magic"), "{err}");
    let mut bytes = minimal_gguf(0, vec![0; 8 * 32 * 4]);
    bytes[4] = 9;
    std::fs::write(&path, bytes).unwrap();
    let err = load_err(&path);
    assert!(err.contains("unsupported GGUF version 9"), "{err}");
}

#[test]
fn gguf_truncated_anywhere_is_an_error_not_a_panic() {
    let full = minimal_gguf(0, vec![0; 8 * 32 * 4]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    for cut in [6, 20, 40, 100, 300, full.len() - 10] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let err = load_err(&path);
        assert!(err.contains("t.gguf"), "cut at {cut}: {err}");
    }
    std::fs::write(&path, &full[..full.len() - 10]).unwrap();
    assert!(load_err(&path).contains("truncated file"));
}

#[test]
fn gguf_unsupported_quantization_is_named() {
    // Q2_K (type 10): 84 bytes per 256 elements.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q2k.gguf");
    std::fs::write(&path, minimal_gguf(10, vec![0; 84])).unwrap();
    let err = load_err(&path);
    assert!(
        err.contains("q2k.gguf") && err.contains("token_embd.weight") && err.contains("Q2_K"),
        "{err}"
    );
}

#[test]
fn gguf_rows_that_split_a_super_block_are_named() {
    // Q6_K blocks hold 256 values; rows of 32 cannot be whole blocks whatever the byte count.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q6k.gguf");
    std::fs::write(&path, minimal_gguf(14, vec![0; 210])).unwrap();
    let err = load_err(&path);
    assert!(
        err.contains("q6k.gguf")
            && err.contains("token_embd.weight")
            && err.contains("Q6_K")
            && err.contains("256-value blocks"),
        "{err}"
    );
}

#[test]
fn gguf_truncated_k_quant_data_is_named() {
    // A Q4_K tensor of 8 rows of 256 values needs 8 · 144 bytes; the file ends sooner.
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", M::String("llama".into()))
        .metadata("llama.embedding_length", M::U32(256))
        .metadata("llama.block_count", M::U32(1))
        .metadata("llama.feed_forward_length", M::U32(64))
        .metadata("llama.attention.head_count", M::U32(2))
        .metadata("llama.vocab_size", M::U32(8))
        .tensor_raw("token_embd.weight", &[8, 256], 12, vec![0; 8 * 144]);
    let mut bytes = w.to_bytes();
    bytes.truncate(bytes.len() - 100);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q4k.gguf");
    std::fs::write(&path, bytes).unwrap();
    let err = load_err(&path);
    assert!(
        err.contains("q4k.gguf") && err.contains("token_embd.weight") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn gguf_missing_metadata_is_named() {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", M::String("llama".into()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.gguf");
    std::fs::write(&path, w.to_bytes()).unwrap();
    let err = load_err(&path);
    assert!(err.contains("llama.embedding_length"), "{err}");
}

#[test]
fn error_variants_are_matchable() {
    let dir = tiny_copy();
    edit_config(dir.path(), |v| v["model_type"] = "rwkv".into());
    let err = load_model::<Cpu>(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, ModelError::UnknownArchitecture { .. }));
}
