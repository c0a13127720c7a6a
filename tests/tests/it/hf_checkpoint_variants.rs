//! Hugging Face checkpoints in other layouts load to the same model: sharded with an index,
//! and stored in f16 or bf16 (widened to f32 at load).

use std::collections::HashMap;
use std::path::Path;

use mars2_engine::device::Cpu;
use mars2_engine::prompt_logits;
use mars2_models::{load_model, SafetensorsSource, WeightSource};
use mars2_tests::{fixture, ids, max_abs_diff, reference_json};
use safetensors::tensor::{Dtype, TensorView};

/// Writes the tiny Llama's tensors into `shards` files of the given dtype, with an index.
fn rewrite(dir: &Path, shards: usize, dtype: Dtype) {
    std::fs::copy(
        fixture("llama-tiny").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let mut source = SafetensorsSource::open_dir(&fixture("llama-tiny")).unwrap();
    let mut names: Vec<String> = source.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    for (shard, chunk) in names.chunks(names.len().div_ceil(shards)).enumerate() {
        let file = format!("model-{:05}-of-{shards:05}.safetensors", shard + 1);
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = chunk
            .iter()
            .map(|name| {
                let t = source.load(name).unwrap().unwrap();
                let bytes = match dtype {
                    Dtype::F16 => t
                        .data
                        .iter()
                        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                        .collect(),
                    Dtype::BF16 => t
                        .data
                        .iter()
                        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                        .collect(),
                    _ => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                };
                weight_map.insert(name.clone(), file.clone().into());
                (name.clone(), t.shape, bytes)
            })
            .collect();
        let views: HashMap<String, TensorView> = tensors
            .iter()
            .map(|(n, shape, bytes)| {
                (
                    n.clone(),
                    TensorView::new(dtype, shape.clone(), bytes).unwrap(),
                )
            })
            .collect();
        std::fs::write(
            dir.join(&file),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

fn logits_of(dir: &Path) -> Vec<f32> {
    let device = Default::default();
    let loaded = load_model::<Cpu>(dir, &device).unwrap();
    let input = ids(&reference_json("llama-tiny")["short"]["input_ids"]);
    prompt_logits(&loaded.model, &loaded.config, &input, &device).unwrap()
}

#[test]
fn sharded_f32_checkpoint_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    rewrite(dir.path(), 3, Dtype::F32);
    assert_eq!(
        max_abs_diff(&logits_of(dir.path()), &logits_of(&fixture("llama-tiny"))),
        0.0
    );
}

#[test]
fn half_precision_checkpoints_load_and_stay_close() {
    let expected = logits_of(&fixture("llama-tiny"));
    for (dtype, tolerance) in [(Dtype::F16, 0.05), (Dtype::BF16, 0.5)] {
        let dir = tempfile::tempdir().unwrap();
        rewrite(dir.path(), 2, dtype);
        let err = max_abs_diff(&logits_of(dir.path()), &expected);
        assert!(err > 0.0 && err < tolerance, "{dtype:?}: {err}");
    }
}

#[test]
fn index_naming_a_missing_shard_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    rewrite(dir.path(), 2, Dtype::F32);
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_model::<Cpu>(dir.path(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
}
