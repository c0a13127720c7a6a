//! A GGUF written from the tiny Llama checkpoint the way llama.cpp's converter writes it
//! (q/k rows permuted, names mapped) loads back to the same model: same logits as the
//! safetensors original (F32), and close ones when quantized to Q8_0.

use std::path::Path;

use mars2_engine::device::Cpu;
use mars2_engine::prompt_logits;
use mars2_models::gguf::dequant::quantize_q8_0;
use mars2_models::gguf::llama::{gguf_name, permute_rows};
use mars2_models::gguf::metadata::MetadataValue as M;
use mars2_models::gguf::writer::GgufWriter;
use mars2_models::{load_model, Architecture, ModelConfig, SafetensorsSource, WeightSource};
use mars2_tests::{fixture, ids, max_abs_diff, reference_json};

fn write_gguf(src_dir: &Path, out: &Path, quantize: bool) -> ModelConfig {
    let config = ModelConfig::from_hf_json_file(&src_dir.join("config.json")).unwrap();
    assert_eq!(config.architecture, Architecture::Llama);
    let mut source = SafetensorsSource::open_dir(src_dir).unwrap();
    let mut names: Vec<String> = source.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", M::String("llama".into()))
        .metadata("llama.embedding_length", M::U32(config.hidden_size as u32))
        .metadata("llama.block_count", M::U32(config.num_layers as u32))
        .metadata(
            "llama.feed_forward_length",
            M::U32(config.intermediate_size as u32),
        )
        .metadata(
            "llama.attention.head_count",
            M::U32(config.num_heads as u32),
        )
        .metadata(
            "llama.attention.head_count_kv",
            M::U32(config.num_kv_heads as u32),
        )
        .metadata(
            "llama.attention.layer_norm_rms_epsilon",
            M::F32(config.rms_norm_eps as f32),
        )
        .metadata("llama.rope.freq_base", M::F32(config.rope_theta as f32))
        .metadata(
            "llama.context_length",
            M::U32(config.max_position_embeddings as u32),
        )
        .metadata("llama.vocab_size", M::U32(config.vocab_size as u32));
    for name in names {
        let t = source.load(&name).unwrap().unwrap();
        let mut data = t.data.clone();
        let cols = if t.shape.len() == 2 { t.shape[1] } else { 1 };
        if name.contains("q_proj") {
            data = permute_rows(&data, config.num_heads, cols);
        } else if name.contains("k_proj") {
            data = permute_rows(&data, config.num_kv_heads, cols);
        }
        let gname = gguf_name(&name).unwrap();
        if quantize && t.shape.len() == 2 {
            w.tensor_raw(&gname, &t.shape, 8, quantize_q8_0(&data));
        } else {
            w.tensor_f32(&gname, &t.shape, &data);
        }
    }
    std::fs::write(out, w.to_bytes()).unwrap();
    config
}

#[test]
fn llama_tiny_through_gguf_gives_the_same_logits() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let input = ids(&reference_json("llama-tiny")["long"]["input_ids"]);
    let original = load_model::<Cpu>(&fixture("llama-tiny"), &device).unwrap();
    let expected = prompt_logits(&original.model, &original.config, &input, &device).unwrap();

    let f32_path = dir.path().join("tiny-f32.gguf");
    let config = write_gguf(&fixture("llama-tiny"), &f32_path, false);
    let loaded = load_model::<Cpu>(&f32_path, &device).unwrap();
    assert_eq!(loaded.config.num_kv_heads, config.num_kv_heads);
    assert!(!loaded.config.tie_word_embeddings);
    let got = prompt_logits(&loaded.model, &loaded.config, &input, &device).unwrap();
    assert!(max_abs_diff(&got, &expected) < 1e-5);

    let q8_path = dir.path().join("tiny-q8.gguf");
    write_gguf(&fixture("llama-tiny"), &q8_path, true);
    let loaded = load_model::<Cpu>(&q8_path, &device).unwrap();
    let got = prompt_logits(&loaded.model, &loaded.config, &input, &device).unwrap();
    // 8-bit weights move the logits but rarely the argmax.
    let err = max_abs_diff(&got, &expected);
    assert!(err > 0.0 && err < 2.0, "Q8_0 logits differ by {err}");
    let vocab = config.vocab_size;
    let argmax = |l: &[f32]| -> Vec<usize> {
        l.chunks(vocab)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold(0, |b, (i, v)| if *v > row[b] { i } else { b })
            })
            .collect()
    };
    let same = argmax(&got)
        .iter()
        .zip(argmax(&expected))
        .filter(|(a, b)| **a == *b)
        .count();
    assert!(
        same * 10 >= input.len() * 8,
        "argmax agrees at {same} of {} positions",
        input.len()
    );
}
