//! A transformer with its projections and head quantized (Q8_0, Q4_1) computes the same logits
//! as a dense model holding the quantized values, stays close to the unquantized model, and
//! refuses shapes the block formats cannot hold.

use crate::common::{max_diff, Cpu};
use burn::tensor::{Tensor, TensorData};
use mars2_models::quantized::QuantizeError;
use mars2_models::{
    load_model, save_hf_checkpoint, Architecture, ModelConfig, QuantFormat, RopeScaling,
    Transformer,
};

fn config(tied: bool, hidden: usize) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 50,
        hidden_size: hidden,
        intermediate_size: 96,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: hidden / 4,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling::None,
        max_position_embeddings: 64,
        tie_word_embeddings: tied,
        attention_bias: false,
        attention_out_bias: false,
        mlp_bias: false,
        qk_norm: false,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
    }
}

/// The logits of a fixed probe sequence of `tokens` ids (up to 16 takes the fused kernels, more
/// the dense fallback).
fn logits(model: &Transformer<Cpu>, tokens: usize) -> Vec<f32> {
    let ids: Vec<i64> = (0..tokens as i64).map(|i| (i * 7 + 3) % 50).collect();
    crate::common::logits(model, &ids)
}

#[test]
fn quantized_models_compute_with_their_quantized_values() {
    let device = Default::default();
    let root = tempfile::tempdir().unwrap();
    for tied in [true, false] {
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_1, QuantFormat::Q6_K] {
            let c = config(tied, 64);
            let dense = Transformer::<Cpu>::random(&c, &device);
            let mut quantized = dense.clone();
            quantized.quantize(format).unwrap();
            assert!(quantized.is_quantized() && !dense.is_quantized());
            // The checkpoint holds the dequantized values; loaded back, it is a dense model.
            let dir = root.path().join(format!("{tied}-{}", format.name()));
            save_hf_checkpoint(&dir, &quantized, &c, None, None).unwrap();
            let dequantized = load_model::<Cpu>(&dir, &device).unwrap().model;
            for tokens in [1, 5, 20] {
                let q = logits(&quantized, tokens);
                let reference = logits(&dequantized, tokens);
                let err = max_diff(&q, &reference);
                assert!(err < 1e-4, "{format:?} tied {tied}, {tokens} tokens: {err}");
                // Quantization moves the logits, by little.
                let moved = max_diff(&q, &logits(&dense, tokens));
                let bound = if format == QuantFormat::Q8_0 {
                    0.02
                } else {
                    0.2
                };
                assert!(moved > 0.0 && moved < bound, "{format:?}: moved {moved}");
            }
        }
    }
}

#[test]
fn widths_that_are_not_whole_blocks_are_refused() {
    let device = Default::default();
    let mut model = Transformer::<Cpu>::random(&config(true, 48), &device);
    assert_eq!(
        model.quantize(QuantFormat::Q8_0),
        Err(QuantizeError::PartialBlock {
            cols: 48,
            block: 32
        })
    );
}

#[test]
fn a_matrix_that_cannot_be_quantized_leaves_the_model_unchanged() {
    use burn::module::Param;
    let device = Default::default();
    let c = config(true, 64);
    let mut model = Transformer::<Cpu>::random(&c, &device);
    // An infinite weight in the last layer: its block scale is not finite.
    let down = &mut model.layers[1].mlp.down;
    let [d_in, d_out] = down.weight.dims();
    let mut values: Vec<f32> = down.weight.val().to_data().iter::<f32>().collect();
    values[5] = f32::INFINITY;
    down.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(values, [d_in, d_out]),
        &device,
    ));
    let before = logits(&model, 3);
    assert!(matches!(
        model.quantize(QuantFormat::Q8_0),
        Err(QuantizeError::NonFiniteScale { .. })
    ));
    assert!(
        !model.is_quantized(),
        "layer 0 was quantized before the refusal"
    );
    let after = logits(&model, 3);
    assert_eq!(
        before.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        after.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn other_backends_unpack_the_same_blocks_with_stock_ops() {
    use burn::backend::Autodiff;
    use burn::module::AutodiffModule;
    type Train = Autodiff<Cpu>;
    let device = Default::default();
    let c = config(false, 64);
    let mut host = Transformer::<Cpu>::random(&c, &device);
    host.quantize(QuantFormat::Q4_1).unwrap();
    // On the autodiff backend the blocks are tensors, unpacked by Burn's ops on every call.
    let mut wrapped = Transformer::<Train>::random(&c, &device);
    wrapped.quantize(QuantFormat::Q4_1).unwrap();
    let inner = wrapped.valid();
    for tokens in [1, 20] {
        let err = max_diff(&logits(&inner, tokens), &logits(&host, tokens));
        assert!(err < 1e-4, "{tokens} tokens: {err}");
    }
}
