//! The losses on tensors against their scalar references on random inputs and on
//! hand-computed values.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use mars2_rl::loss::{sequence_loss, sequence_loss_reference, LossConfig, LossKind, SequenceTerms};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Cpu = NdArray<f32>;

fn random_terms(rng: &mut ChaCha8Rng, t: usize) -> (Vec<f64>, Vec<f32>, Vec<f32>, Vec<f32>, f64) {
    let logp: Vec<f64> = (0..t).map(|_| -rng.random_range(0.01..3.0)).collect();
    let jitter = |rng: &mut ChaCha8Rng, v: &[f64], s: f64| -> Vec<f32> {
        v.iter()
            .map(|&x| (x + rng.random_range(-s..s)) as f32)
            .collect()
    };
    let rollout = jitter(rng, &logp, 0.4);
    let old = jitter(rng, &logp, 0.1);
    let reference = jitter(rng, &logp, 0.5);
    (logp, rollout, old, reference, rng.random_range(-2.0..2.0))
}

#[test]
fn tensor_losses_match_the_scalar_references() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let device = Default::default();
    for kind in [LossKind::Gspo, LossKind::Grpo] {
        for with_kl in [false, true] {
            for _ in 0..20 {
                let t = rng.random_range(1..40);
                let (logp, rollout, old, reference, advantage) = random_terms(&mut rng, t);
                let config = LossConfig {
                    kind,
                    clip: 0.2,
                    kl_beta: if with_kl { 0.05 } else { 0.0 },
                    ..LossConfig::default()
                };
                let terms = SequenceTerms {
                    rollout: &rollout,
                    old: &old,
                    reference: with_kl.then_some(reference.as_slice()),
                    advantage,
                    batch_tokens: t + 7,
                };
                let x = Tensor::<Cpu, 1>::from_data(
                    TensorData::new(logp.iter().map(|&v| v as f32).collect::<Vec<_>>(), [t]),
                    &device,
                );
                let (_, stats) = sequence_loss(x, &terms, &config);
                let expected = sequence_loss_reference(&logp, &terms, &config);
                assert!(
                    (stats.loss - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                    "{kind:?} kl={with_kl}: {} vs {expected}",
                    stats.loss
                );
            }
        }
    }
}

#[test]
fn hand_computed_gspo_value_and_veto() {
    let device = Default::default();
    // logp − rollout = [0.1, −0.1] → s = 1; weights exp(old − rollout) = [1, e^0.5 → capped? no]
    let rollout = [-1.0f32, -2.0];
    let old = [-1.0f32, -1.5];
    let terms = SequenceTerms {
        rollout: &rollout,
        old: &old,
        reference: None,
        advantage: 2.0,
        batch_tokens: 2,
    };
    let config = LossConfig {
        kl_beta: 0.0,
        ..LossConfig::default()
    };
    let x = Tensor::<Cpu, 1>::from_data(TensorData::new(vec![-0.9f32, -2.1], [2]), &device);
    let (_, stats) = sequence_loss(x.clone(), &terms, &config);
    // mean w = (1 + e^0.5)/2; loss = −mean_w · 2.
    let expected = -(1.0 + 0.5f64.exp()) / 2.0 * 2.0;
    assert!((stats.loss - expected).abs() < 1e-5, "{}", stats.loss);
    // A token whose old log-prob is far below the rollout's vetoes the sequence.
    let old = [-1.0f32, -20.0];
    let vetoed = SequenceTerms { old: &old, ..terms };
    let (_, stats) = sequence_loss(x, &vetoed, &config);
    assert!(stats.vetoed);
    assert_eq!(stats.loss, 0.0);
}
