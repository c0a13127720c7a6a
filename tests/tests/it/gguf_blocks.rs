//! Block formats against gguf-py, llama.cpp's own Python reader: blocks cut from both
//! Qwen2.5-Coder GGUF files and random blocks of every format (`fixtures/gguf-blocks`, made by
//! `fixtures/make_qwen_fixtures.py`) decode to bit-identical values, both when dequantized at
//! load and when held in the runtime block layouts the kernels read.

use mars2_models::gguf::dequant::{dequantize, dequantize_reference, GgmlType};
use mars2_models::QuantizedBlocks;
use mars2_tests::fixture;

struct Case {
    name: String,
    ty: GgmlType,
    blocks: Vec<u8>,
    values: Vec<f32>,
}

fn cases() -> Vec<Case> {
    let dir = fixture("gguf-blocks");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    manifest
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let name = entry["name"].as_str().unwrap().to_string();
            let ty = match entry["type"].as_str().unwrap() {
                "Q4_0" => GgmlType::Q4_0,
                "Q4_1" => GgmlType::Q4_1,
                "Q5_0" => GgmlType::Q5_0,
                "Q5_1" => GgmlType::Q5_1,
                "Q8_0" => GgmlType::Q8_0,
                "Q4_K" => GgmlType::Q4_K,
                "Q5_K" => GgmlType::Q5_K,
                "Q6_K" => GgmlType::Q6_K,
                other => panic!("{name}: unexpected type {other}"),
            };
            let blocks = std::fs::read(dir.join(format!("{name}.blocks"))).unwrap();
            let values = std::fs::read(dir.join(format!("{name}.f32")))
                .unwrap()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Case {
                name,
                ty,
                blocks,
                values,
            }
        })
        .collect()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn every_format_and_both_files_are_covered() {
    let cases = cases();
    for ty in [
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K",
    ] {
        assert!(
            cases.iter().any(|c| c.name == format!("random-{ty}")),
            "{ty}"
        );
    }
    for (model, types) in [
        ("qwen2.5-coder-0.5b", &["Q5_0", "Q8_0", "Q4_K", "Q6_K"][..]),
        ("qwen2.5-coder-1.5b", &["Q4_K", "Q6_K"][..]),
    ] {
        for ty in types {
            let prefix = format!("{model}-{ty}-");
            assert!(
                cases.iter().any(|c| c.name.starts_with(&prefix)),
                "{prefix}"
            );
        }
    }
}

#[test]
fn dequantization_is_bit_exact_with_gguf_py() {
    for case in cases() {
        let numel = case.values.len();
        let fast = dequantize(case.ty, &case.blocks, numel).expect("a supported format");
        assert_eq!(bits(&fast), bits(&case.values), "{}: fast path", case.name);
        let slow = dequantize_reference(case.ty, &case.blocks, numel);
        assert_eq!(bits(&slow), bits(&case.values), "{}: reference", case.name);
    }
}

#[test]
fn runtime_blocks_hold_the_same_values() {
    for case in cases() {
        let numel = case.values.len();
        let held = QuantizedBlocks::from_gguf(case.ty, &case.blocks, 1, numel).unwrap();
        let Some(held) = held else {
            // Q5_1 and Q5_K have no runtime block format; they load as f32.
            assert!(
                matches!(case.ty, GgmlType::Q5_1 | GgmlType::Q5_K),
                "{}",
                case.name
            );
            continue;
        };
        assert_eq!(
            bits(&held.dequantize()),
            bits(&case.values),
            "{}",
            case.name
        );
    }
}
