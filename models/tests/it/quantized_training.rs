//! Training over a frozen base kept in blocks (autodiff over ndarray): a projection whose
//! weight stays in Q4_1/Q8_0 blocks computes what the same projection with the dequantized
//! weight as a dense f32 tensor computes, forward and backward (the gradients of its input
//! and of its adapter), for a few rows (the skinny block kernel), for many (dense products)
//! and for a matrix taller than one dequantized chunk; the frozen weight gets no gradient. And a whole model: the adapters' gradients
//! of a model in blocks equal those of its dequantized twin.

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use mars2_models::kernels::quantized_autodiff::is_cpu_learner;
use mars2_models::layers::linear::Linear;
use mars2_models::layers::lora::LoraAdapter;
use mars2_models::{FullSequence, LoraConfig, ModelConfig, QuantFormat, Transformer};

type Learner = Autodiff<NdArray<f32>>;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<Learner, D> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn values<const D: usize>(t: Tensor<NdArray<f32>, D>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

fn max_relative_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

/// A `k → n` projection with a trained-looking adapter, its weight in `format`'s blocks, and
/// its twin holding the dequantized weight as a dense frozen tensor.
fn twins(k: usize, n: usize, format: QuantFormat) -> (Linear<Learner>, Linear<Learner>) {
    let weight = tensor(random(k * n, 1), [k, n]);
    let mut blocks = Linear::new(weight, Some(tensor(random(n, 2), [n])));
    blocks.quantize(format).unwrap();
    let dequantized = blocks.hf_weight().transpose().detach();
    let dense = Linear::new(dequantized, blocks.bias.as_ref().map(|b| b.val()));
    let mut adapter = LoraAdapter::<Learner>::new(k, n, 4, 2.0, 3, &Default::default());
    adapter.b = Param::from_tensor(tensor(random(4 * n, 4), [4, n]));
    let frozen_with_adapter = |linear: Linear<Learner>| Linear {
        lora: Some(adapter.clone()),
        ..linear.no_grad()
    };
    (frozen_with_adapter(blocks), frozen_with_adapter(dense))
}

/// Output, input gradient and adapter gradients of `linear` on `x` `[1, rows, k]` under the
/// loss `Σ y ⊙ r`.
fn forward_backward(linear: &Linear<Learner>, x: &[f32], rows: usize, k: usize) -> [Vec<f32>; 4] {
    let x = tensor(x.to_vec(), [1, rows, k]).require_grad();
    let y = linear.forward(x.clone());
    let n = y.dims()[2];
    let r = tensor(random(rows * n, 9), [1, rows, n]);
    let grads = (y.clone() * r).sum().backward();
    let lora = linear.lora.as_ref().unwrap();
    assert!(
        linear.weight.val().grad(&grads).is_none(),
        "the frozen weight gets no gradient"
    );
    [
        values(y.inner()),
        values(x.grad(&grads).expect("x has a gradient")),
        values(lora.a.val().grad(&grads).expect("A has a gradient")),
        values(lora.b.val().grad(&grads).expect("B has a gradient")),
    ]
}

/// The output and the three gradients of the two twins on `x` agree to f32 rounding.
fn twins_agree(
    blocks: &Linear<Learner>,
    dense: &Linear<Learner>,
    x: &[f32],
    rows: usize,
    case: &str,
) {
    let k = x.len() / rows;
    let got = forward_backward(blocks, x, rows, k);
    let want = forward_backward(dense, x, rows, k);
    for (name, (g, w)) in ["y", "∂x", "∂A", "∂B"].iter().zip(got.iter().zip(&want)) {
        let diff = max_relative_diff(g, w);
        assert!(diff < 1e-5, "{case}, {name}: {diff}");
    }
}

#[test]
fn a_projection_in_blocks_trains_as_its_dequantized_twin() {
    let (k, n) = (64, 48);
    for format in [QuantFormat::Q4_1, QuantFormat::Q8_0] {
        let (blocks, dense) = twins(k, n, format);
        // The learner keeps the blocks themselves (the product is the block op's).
        assert!(is_cpu_learner::<Learner>());
        assert!(blocks.quantized.as_ref().unwrap().host_blocks().is_some());
        // 5 rows take the skinny block kernel, 40 the dense product.
        for rows in [5, 40] {
            let x = random(rows * k, rows as u64);
            twins_agree(
                &blocks,
                &dense,
                &x,
                rows,
                &format!("{format:?}, {rows} rows"),
            );
        }
    }
}

#[test]
fn a_tall_matrix_is_dequantized_in_chunks_with_the_same_result() {
    // More rows than one 4 Mi-value chunk holds at k = 64: the product and its backward pass
    // run over two chunks.
    let (k, n, rows) = (64, (1 << 22) / 64 + 100, 40);
    let (blocks, dense) = twins(k, n, QuantFormat::Q8_0);
    twins_agree(&blocks, &dense, &random(rows * k, 7), rows, "two chunks");
}

#[test]
fn a_model_in_blocks_gives_its_adapters_the_gradients_of_its_dequantized_twin() {
    let config = ModelConfig {
        intermediate_size: 64,
        ..ModelConfig::tiny_llama(40, 32, 2)
    };
    let lora = LoraConfig {
        rank: 2,
        ..LoraConfig::default()
    };
    let mut blocks = Transformer::<Learner>::random(&config, &Default::default());
    blocks.quantize(QuantFormat::Q8_0).unwrap();
    // The twin: the same model with every matrix dequantized into a dense f32 weight.
    let mut dense = blocks.clone();
    for layer in &mut dense.layers {
        for (_, linear) in layer.projections_mut() {
            let weight = linear.hf_weight().transpose().detach();
            linear.quantized = None;
            linear.weight = Param::from_tensor(weight);
        }
    }
    let head = dense.quantized_head.take().expect("the head is in blocks");
    dense.lm_head = Some(Param::from_tensor(head.dequantize().transpose().detach()));
    let grads_of = |model: Transformer<Learner>| -> Vec<Vec<f32>> {
        let model = model.with_adapters(&lora);
        let ids = Tensor::<Learner, 2, Int>::from_data(
            TensorData::new((0..24).map(|i| (i * 7 % 40) as i64).collect(), [1, 24]),
            &Default::default(),
        );
        let positions = Tensor::<Learner, 2, Int>::from_data(
            TensorData::new((0..24i64).collect(), [1, 24]),
            &Default::default(),
        );
        let mut ctx = FullSequence::new(positions.clone());
        let logits = model.forward(ids, positions, &mut ctx);
        let weights = tensor(random(24 * 40, 5), [1, 24, 40]);
        let grads = (logits * weights).sum().backward();
        model
            .adapters()
            .iter()
            .flatten()
            // Fresh adapters have B = 0, so ∂A is 0; ∂B carries the base's activations.
            .map(|a| values(a.b.val().grad(&grads).expect("∂B")))
            .collect()
    };
    let got = grads_of(blocks);
    let want = grads_of(dense);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let diff = max_relative_diff(g, w);
        assert!(diff < 1e-3, "adapter {i}: {diff}");
    }
}
