//! Each numerical building block against its slow scalar reference on random inputs.

use crate::common::max_diff;
use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use mars2_models::attention_context::{
    attention_grouped, attention_reference, causal_mask_from_positions,
};
use mars2_models::config::{Architecture, ModelConfig, RopeScaling};
use mars2_models::kernels::reference::rms_norm as rms_norm_reference;
use mars2_models::layers::rms_norm::RmsNorm;
use mars2_models::layers::rope::{inverse_frequencies, rope_reference, Rope};
use rand::{Rng, SeedableRng};

type B = NdArray<f32>;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

fn config(head_dim: usize, theta: f64, scaling: RopeScaling) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 10,
        hidden_size: head_dim * 2,
        intermediate_size: 8,
        num_layers: 1,
        num_heads: 2,
        num_kv_heads: 1,
        head_dim,
        rms_norm_eps: 1e-6,
        rope_theta: theta,
        rope_scaling: scaling,
        max_position_embeddings: 600,
        tie_word_embeddings: true,
        attention_bias: false,
        attention_out_bias: false,
        mlp_bias: false,
        qk_norm: false,
        bos_token_id: None,
        eos_token_ids: vec![],
    }
}

/// Regression: with ≥ 64 rows Burn's SIMD `recip` (an approximation) used to leak into RMSNorm.
#[test]
fn rms_norm_matches_reference_small_and_large() {
    let device = Default::default();
    for (rows, dim) in [(1, 7), (3, 64), (130, 96)] {
        let x = random(rows * dim, rows as u64);
        let w = random(dim, 99);
        let norm = RmsNorm::<B>::new(
            Tensor::from_data(TensorData::new(w.clone(), [dim]), &device),
            1e-6,
        );
        let got: Vec<f32> = norm
            .forward(Tensor::<B, 2>::from_data(
                TensorData::new(x.clone(), [rows, dim]),
                &device,
            ))
            .into_data()
            .to_vec()
            .unwrap();
        let expected = rms_norm_reference(&x, &w, 1e-6);
        assert!(
            max_diff(&got, &expected) < 2e-6,
            "{rows}x{dim}: {}",
            max_diff(&got, &expected)
        );
    }
}

#[test]
fn rope_matches_reference_at_ragged_positions() {
    let device = Default::default();
    for scaling in [
        RopeScaling::None,
        RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64.0,
        },
    ] {
        let cfg = config(16, 10_000.0, scaling);
        let rope = Rope::<B>::new(&cfg, &device);
        let (batch, heads, tokens, dim) = (2, 3, 5, 16);
        let positions: Vec<i64> = vec![0, 1, 2, 3, 4, 100, 101, 102, 103, 590];
        let x = random(batch * heads * tokens * dim, 5);
        let pos = Tensor::<B, 2, Int>::from_data(
            TensorData::new(positions.clone(), [batch, tokens]),
            &device,
        );
        let (cos, sin) = rope.tables(pos);
        let xt = Tensor::<B, 4>::from_data(
            TensorData::new(x.clone(), [batch, heads, tokens, dim]),
            &device,
        );
        let got: Vec<f32> = Rope::apply(xt, &cos, &sin).into_data().to_vec().unwrap();
        let inv = inverse_frequencies(&cfg);
        for b in 0..batch {
            for h in 0..heads {
                for t in 0..tokens {
                    let off = ((b * heads + h) * tokens + t) * dim;
                    let expected = rope_reference(
                        &x[off..off + dim],
                        positions[b * tokens + t] as usize,
                        &inv,
                    );
                    assert!(max_diff(&got[off..off + dim], &expected) < 1e-5);
                }
            }
        }
    }
}

/// Scalar attention for one (row, head, query): softmax over visible keys, weighted sum.
fn naive_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: [usize; 5],
    qpos: &[i64],
    kpos: &[i64],
) -> Vec<f32> {
    let [b_n, h_n, kv_n, t_n, s_n] = dims;
    let d = q.len() / (b_n * h_n * t_n);
    let group = h_n / kv_n;
    let mut out = vec![0.0f32; q.len()];
    for b in 0..b_n {
        for h in 0..h_n {
            let kvh = h / group;
            for t in 0..t_n {
                let qo = ((b * h_n + h) * t_n + t) * d;
                let mut scores = Vec::new();
                for s in 0..s_n {
                    if kpos[b * s_n + s] > qpos[b * t_n + t] {
                        continue;
                    }
                    let ko = ((b * kv_n + kvh) * s_n + s) * d;
                    let dot: f64 = (0..d).map(|i| q[qo + i] as f64 * k[ko + i] as f64).sum();
                    scores.push((s, dot / (d as f64).sqrt()));
                }
                let max = scores.iter().fold(f64::NEG_INFINITY, |m, s| m.max(s.1));
                let z: f64 = scores.iter().map(|s| (s.1 - max).exp()).sum();
                for (s, sc) in scores {
                    let w = (sc - max).exp() / z;
                    let vo = ((b * kv_n + kvh) * s_n + s) * d;
                    for i in 0..d {
                        out[qo + i] += (w * v[vo + i] as f64) as f32;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn attention_matches_naive_with_gqa_and_per_row_positions() {
    let device = Default::default();
    let (b, h, kv, t, s, d) = (2, 4, 2, 3, 7, 8);
    let q = random(b * h * t * d, 1);
    let k = random(b * kv * s * d, 2);
    let v = random(b * kv * s * d, 3);
    // Row 0 queries sit at the end of 7 keys; row 1's keys are ragged (positions out of order).
    let qpos = vec![4i64, 5, 6, 2, 3, 9];
    let kpos = vec![0i64, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 8, 9];
    let tq = Tensor::<B, 4>::from_data(TensorData::new(q.clone(), [b, h, t, d]), &device);
    let tk = Tensor::<B, 4>::from_data(TensorData::new(k.clone(), [b, kv, s, d]), &device);
    let tv = Tensor::<B, 4>::from_data(TensorData::new(v.clone(), [b, kv, s, d]), &device);
    let mask = causal_mask_from_positions(
        Tensor::<B, 2, Int>::from_data(TensorData::new(qpos.clone(), [b, t]), &device),
        Tensor::<B, 2, Int>::from_data(TensorData::new(kpos.clone(), [b, s]), &device),
    );
    let got: Vec<f32> = attention_reference(tq.clone(), tk.clone(), tv.clone(), mask.clone())
        .into_data()
        .to_vec()
        .unwrap();
    let fast: Vec<f32> = attention_grouped(tq, tk, tv, mask)
        .into_data()
        .to_vec()
        .unwrap();
    let expected = naive_attention(&q, &k, &v, [b, h, kv, t, s], &qpos, &kpos);
    assert!(
        max_diff(&fast, &expected) < 1e-5,
        "grouped path: {}",
        max_diff(&fast, &expected)
    );
    assert!(
        max_diff(&got, &expected) < 1e-5,
        "{}",
        max_diff(&got, &expected)
    );
}

/// The skinny host matmul (decode-time projections) against the f64 reference, both weight
/// layouts, odd sizes; and through `kernels::linear` on the ndarray backend against Burn's matmul.
#[test]
fn skinny_matmul_matches_reference() {
    use mars2_models::kernels::{self, reference, skinny, stock};
    for (case, &(m, k, n)) in [
        (1, 1, 1),
        (1, 576, 1536),
        (3, 37, 700),
        (16, 64, 257),
        (7, 9, 5),
    ]
    .iter()
    .enumerate()
    {
        let x = random(m * k, 100 + case as u64);
        let w = random(k * n, 200 + case as u64);
        for (layout, transposed) in [
            (skinny::WeightLayout::InOut, false),
            (skinny::WeightLayout::OutIn, true),
        ] {
            let got = skinny::matmul(&x, m, k, &w, n, layout);
            let want = reference::matmul(&x, m, k, &w, n, transposed);
            let scale = (k as f32).sqrt();
            assert!(
                max_diff(&got, &want) < 1e-5 * scale * 4.0,
                "{m}x{k}x{n} {layout:?}: {}",
                max_diff(&got, &want)
            );
            // A row alone gives bitwise the same output as inside the batch.
            let alone = skinny::matmul(&x[(m - 1) * k..], 1, k, &w, n, layout);
            assert_eq!(alone, got[(m - 1) * n..].to_vec(), "{m}x{k}x{n} {layout:?}");
        }
        let device = Default::default();
        let xt = Tensor::<B, 3>::from_data(TensorData::new(x.clone(), [1, m, k]), &device);
        let wt = Tensor::<B, 2>::from_data(TensorData::new(w.clone(), [k, n]), &device);
        let fused = kernels::linear(xt.clone(), wt.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let plain = stock::linear(xt.clone(), wt)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!(max_diff(&fused, &plain) < 1e-4, "{m}x{k}x{n} linear");
        let wt = Tensor::<B, 2>::from_data(TensorData::new(w, [n, k]), &device);
        let fused = kernels::linear_transposed(xt.clone(), wt.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let plain = stock::linear_transposed(xt, wt)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!(
            max_diff(&fused, &plain) < 1e-4,
            "{m}x{k}x{n} linear_transposed"
        );
    }
}

/// More rows than the skinny path takes, and a non-contiguous weight: Burn's matmul runs.
#[test]
fn linear_falls_back_outside_the_skinny_shape() {
    use mars2_models::kernels::{self, host, skinny};
    let device = Default::default();
    let (m, k, n) = (skinny::MAX_ROWS + 1, 8, 12);
    let x = Tensor::<B, 2>::from_data(TensorData::new(random(m * k, 1), [m, k]), &device);
    let w = Tensor::<B, 2>::from_data(TensorData::new(random(k * n, 2), [k, n]), &device);
    assert!(host::skinny_matmul(&x, &w, skinny::WeightLayout::InOut).is_none());
    let transposed =
        Tensor::<B, 2>::from_data(TensorData::new(random(k * n, 2), [n, k]), &device).transpose();
    let one = x.clone().slice([0..1, 0..k]);
    assert!(host::skinny_matmul(&one, &transposed, skinny::WeightLayout::InOut).is_none());
    let y = kernels::linear(one.clone().unsqueeze::<3>(), transposed.clone());
    let want = one.matmul(transposed);
    let diff = max_diff(
        &y.into_data().to_vec::<f32>().unwrap(),
        &want.into_data().to_vec::<f32>().unwrap(),
    );
    assert!(diff < 1e-5, "{diff}");
}
