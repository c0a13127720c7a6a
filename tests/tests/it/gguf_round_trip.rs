//! A GGUF written from the tiny Llama checkpoint the way llama.cpp's converter writes it
//! (q/k rows permuted, names mapped) loads back to the same model: same logits as the
//! safetensors original (F32), and close ones when quantized to Q8_0. Quantizing a loaded GGUF
//! keeps the file's own blocks, bit for bit.

use std::path::Path;

use mars2_engine::device::Cpu;
use mars2_engine::prompt_logits;
use mars2_models::gguf::llama::{gguf_name, permute_rows};
use mars2_models::gguf::metadata::MetadataValue as M;
use mars2_models::gguf::writer::GgufWriter;
use mars2_models::gguf::GgufFile;
use mars2_models::{
    load_model, quantize_from_checkpoint, Architecture, LoadedModel, ModelConfig, QuantFormat,
    Quantization, QuantizeReport, QuantizedBlocks, SafetensorsSource, WeightSource,
};

/// Quantizes a loaded model from the checkpoint it came from.
fn quantize(
    loaded: &mut LoadedModel<Cpu>,
    quantization: Quantization,
) -> mars2_models::Result<QuantizeReport> {
    quantize_from_checkpoint(
        &mut loaded.model,
        &loaded.source,
        &loaded.config,
        quantization,
    )
}

/// Block formats for the matrices of a written GGUF: projections, then embedding and head.
type Formats = Option<(QuantFormat, QuantFormat)>;

fn ggml_type_id(format: QuantFormat) -> u32 {
    match format {
        QuantFormat::Q8_0 => 8,
        QuantFormat::Q4_1 => 3,
        QuantFormat::Q6_K => panic!("the runtime Q6_K layout has no GGUF block of its own"),
    }
}
use mars2_tests::{fixture, ids, max_abs_diff, reference_json};

fn write_gguf(src_dir: &Path, out: &Path, formats: Formats) -> ModelConfig {
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
        let format = formats
            .filter(|_| t.shape.len() == 2)
            .map(|(projection, table)| {
                if name.contains("embed_tokens") || name.contains("lm_head") {
                    table
                } else {
                    projection
                }
            });
        if let Some(format) = format {
            let blocks = QuantizedBlocks::quantize(format, &data, t.shape[0], t.shape[1]).unwrap();
            w.tensor_raw(
                &gname,
                &t.shape,
                ggml_type_id(format),
                blocks.to_gguf_bytes().expect("a GGUF block format"),
            );
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
    let config = write_gguf(&fixture("llama-tiny"), &f32_path, None);
    let loaded = load_model::<Cpu>(&f32_path, &device).unwrap();
    assert_eq!(loaded.config.num_kv_heads, config.num_kv_heads);
    assert!(!loaded.config.tie_word_embeddings);
    let got = prompt_logits(&loaded.model, &loaded.config, &input, &device).unwrap();
    assert!(max_abs_diff(&got, &expected) < 1e-5);

    let q8_path = dir.path().join("tiny-q8.gguf");
    write_gguf(
        &fixture("llama-tiny"),
        &q8_path,
        Some((QuantFormat::Q8_0, QuantFormat::Q8_0)),
    );
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

#[test]
fn quantizing_a_gguf_keeps_its_own_blocks() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let input = ids(&reference_json("llama-tiny")["long"]["input_ids"]);
    // Projections Q4_1, embedding and head Q8_0: the mix of the SmolLM2 GGUF.
    let path = dir.path().join("tiny-q4_1.gguf");
    write_gguf(
        &fixture("llama-tiny"),
        &path,
        Some((QuantFormat::Q4_1, QuantFormat::Q8_0)),
    );
    let dense = load_model::<Cpu>(&path, &device).unwrap();
    let expected = prompt_logits(&dense.model, &dense.config, &input, &device).unwrap();

    let mut stored = load_model::<Cpu>(&path, &device).unwrap();
    let report = quantize(&mut stored, Quantization::AsStored).unwrap();
    let layers = stored.config.num_layers;
    assert_eq!(
        report,
        QuantizeReport {
            stored: 7 * layers + 1,
            quantized: 0,
            dense: 0
        }
    );
    // The kernels compute with exactly the values the loader dequantized.
    let got = prompt_logits(&stored.model, &stored.config, &input, &device).unwrap();
    let err = max_abs_diff(&got, &expected);
    assert!(err < 1e-4, "stored blocks move the logits by {err}");
    // The q projection's blocks, put back in llama.cpp's row order, are the file's bytes.
    let q_proj = &stored.model.layers[1].attention.q_proj;
    let blocks = q_proj.quantized.as_ref().unwrap().host_blocks().unwrap();
    let hf_order: Vec<usize> = (0..blocks.rows).collect();
    let file_order = permute_rows(
        &hf_order.iter().map(|&r| r as f32).collect::<Vec<_>>(),
        stored.config.num_heads,
        1,
    );
    let in_file_order =
        blocks.with_rows_from(&file_order.iter().map(|&r| r as usize).collect::<Vec<_>>());
    let file = GgufFile::open(&path).unwrap();
    let info = file.tensor_info("blk.1.attn_q.weight").unwrap();
    assert_eq!(
        in_file_order.to_gguf_bytes().unwrap(),
        file.tensor_bytes(info).unwrap()
    );

    // Naming Q4_1 keeps the Q4_1 projections and quantizes only the Q8_0 head again.
    let mut to_q4_1 = load_model::<Cpu>(&path, &device).unwrap();
    let report = quantize(&mut to_q4_1, Quantization::To(QuantFormat::Q4_1)).unwrap();
    assert_eq!(
        report,
        QuantizeReport {
            stored: 7 * layers,
            quantized: 1,
            dense: 0
        }
    );
}

#[test]
fn keeping_stored_blocks_refuses_files_without_them_or_with_corrupt_ones() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-f32.gguf");
    write_gguf(&fixture("llama-tiny"), &path, None);
    let mut loaded = load_model::<Cpu>(&path, &device).unwrap();
    let err = quantize(&mut loaded, Quantization::AsStored)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tiny-f32.gguf") && err.contains("q8_0"),
        "{err}"
    );
    assert!(!loaded.model.is_quantized());
    // A Hugging Face directory stores no blocks either.
    let mut hf = load_model::<Cpu>(&fixture("llama-tiny"), &device).unwrap();
    let err = quantize(&mut hf, Quantization::AsStored)
        .unwrap_err()
        .to_string();
    assert!(err.contains("llama-tiny"), "{err}");

    // A block whose scale is not finite is named, and the model is left as it was.
    let path = dir.path().join("tiny-bad-scale.gguf");
    write_gguf(
        &fixture("llama-tiny"),
        &path,
        Some((QuantFormat::Q4_1, QuantFormat::Q8_0)),
    );
    let offset = GgufFile::open(&path)
        .unwrap()
        .tensor_info("blk.1.attn_v.weight")
        .unwrap()
        .offset as usize;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offset..offset + 2].copy_from_slice(&[0x00, 0x7c]); // f16 infinity
    std::fs::write(&path, bytes).unwrap();
    let mut loaded = load_model::<Cpu>(&path, &device).unwrap();
    let err = quantize(&mut loaded, Quantization::AsStored)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blk.1.attn_v.weight") && err.contains("non-finite"),
        "{err}"
    );
    assert!(!loaded.model.is_quantized());
}
