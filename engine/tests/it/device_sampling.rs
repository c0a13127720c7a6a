//! On-device sampling against the host reference: same draws, same tokens, same log-probs,
//! for greedy, plain temperature and truncated (top-k, top-p, min-p) rows in one batch. The
//! stock-op fallback draws truncated rows in another order: it is held to the distribution.

use burn::tensor::{Tensor, TensorData};
use mars2_engine::device::Cpu;
use mars2_engine::device_sampling::{sample_on_device, sample_with_stock_ops, RowDraw};
use mars2_engine::sampling::truncated_distribution;
use mars2_engine::{Sampler, SamplingParams};
use rand::{Rng, SeedableRng};

fn params(i: usize) -> SamplingParams {
    let base = SamplingParams {
        seed: 100 + i as u64,
        ..SamplingParams::default()
    };
    match i % 5 {
        0 => base,
        1 => SamplingParams {
            temperature: 0.7,
            ..base
        },
        2 => SamplingParams {
            temperature: 1.0,
            top_p: 0.8,
            ..base
        },
        3 => SamplingParams {
            temperature: 1.3,
            top_k: 5,
            ..base
        },
        _ => SamplingParams {
            temperature: 0.9,
            min_p: 0.05,
            top_p: 0.95,
            ..base
        },
    }
}

const ROWS: usize = 10;
const VOCAB: usize = 257;

/// One step's random logits (`ROWS × VOCAB`, host and tensor) and a draw from every sampler.
fn step(
    rng: &mut rand::rngs::StdRng,
    samplers: &mut [Sampler],
    device: &burn::tensor::Device<Cpu>,
) -> (Vec<f32>, Tensor<Cpu, 2>, Vec<RowDraw>) {
    let logits: Vec<f32> = (0..ROWS * VOCAB)
        .map(|_| rng.random_range(-4.0f32..4.0))
        .collect();
    let draws: Vec<RowDraw> = samplers.iter_mut().map(RowDraw::from_sampler).collect();
    let t = Tensor::<Cpu, 2>::from_data(TensorData::new(logits.clone(), [ROWS, VOCAB]), device);
    (logits, t, draws)
}

#[test]
fn device_sampling_matches_the_host_reference() {
    let device = Default::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut host: Vec<Sampler> = (0..ROWS).map(|i| Sampler::new(params(i))).collect();
    let mut dev: Vec<Sampler> = (0..ROWS).map(|i| Sampler::new(params(i))).collect();
    let (mut compared, mut differing) = (0, 0);
    for _step in 0..60 {
        let (logits, t, draws) = step(&mut rng, &mut dev, &device);
        let got = sample_on_device(t, &draws, &device);
        for (r, tok) in got.iter().enumerate() {
            let expected = host[r].sample(&logits[r * VOCAB..(r + 1) * VOCAB]);
            compared += 1;
            if tok.id != expected.id {
                // Only a draw within float rounding of a boundary may pick the neighbour.
                differing += 1;
                continue;
            }
            assert!(
                (tok.logprob - expected.logprob).abs() < 1e-4,
                "row {r}: {} vs {}",
                tok.logprob,
                expected.logprob
            );
        }
    }
    assert!(
        differing * 200 <= compared,
        "{differing} of {compared} tokens differ"
    );
}

#[test]
fn stock_op_sampling_draws_kept_tokens_with_their_log_probs() {
    let device = Default::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut samplers: Vec<Sampler> = (0..ROWS).map(|i| Sampler::new(params(i))).collect();
    for _step in 0..20 {
        let (logits, t, draws) = step(&mut rng, &mut samplers, &device);
        let got = sample_with_stock_ops(t, &draws, &device);
        for (r, tok) in got.iter().enumerate() {
            let row = &logits[r * VOCAB..(r + 1) * VOCAB];
            let p = params(r);
            let expected = if p.temperature == 0.0 {
                let mut greedy = Sampler::new(p);
                greedy.sample(row).logprob as f64
            } else {
                let kept = truncated_distribution(row, &p);
                let q = kept
                    .iter()
                    .find(|(i, _)| *i == tok.id as usize)
                    .map(|(_, q)| *q)
                    .unwrap_or_else(|| panic!("row {r}: token {} not kept", tok.id));
                q.ln()
            };
            assert!(
                (f64::from(tok.logprob) - expected).abs() < 1e-4,
                "row {r}: {} vs {expected}",
                tok.logprob
            );
        }
    }
}
