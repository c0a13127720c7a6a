//! The gradients of one update's batch: each sample's forward (policy, and the frozen
//! reference when the KL term is on), its sequence loss scaled as the whole batch's would be,
//! and its backward, accumulated. The samples run in lanes, a thread per core, each over its
//! own autodiff leaves of the same weights (Burn keeps graphs that share nodes under one lock,
//! so lanes sharing the parameters would run one at a time); the lanes' gradients are summed in
//! lane order, so the result depends on the lane count only through rounding.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;
use mars2_models::Transformer;

use crate::logprobs::response_logprobs_at;
use crate::loss::{sequence_loss, LossKind, SequenceTerms};
use crate::samples::TrainSample;
use crate::trainer::{share_ranges, TrainerConfig};

/// The batch of one update, as every share sees it.
pub(crate) struct Batch<'a> {
    pub(crate) samples: &'a [TrainSample],
    pub(crate) n: f64,
    pub(crate) tokens: usize,
}

/// The additive statistics of a share (summed over peers).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ShareTotals {
    pub(crate) loss: f64,
    pub(crate) kl: f64,
    pub(crate) ratio: f64,
    pub(crate) clipped: f64,
    pub(crate) vetoed: f64,
}

impl ShareTotals {
    /// Adds another share's statistics.
    pub(crate) fn add(&mut self, other: &ShareTotals) {
        self.loss += other.loss;
        self.kl += other.kl;
        self.ratio += other.ratio;
        self.clipped += other.clipped;
        self.vetoed += other.vetoed;
    }
}

/// Forward and backward of every sample of the batch in `lanes` lanes ([`training_lanes`] in
/// an update; no more than the batch has samples): each lane takes a contiguous share, and the
/// lanes' gradients and totals are summed in lane order.
pub(crate) fn batch_gradients<B: AutodiffBackend>(
    lanes: usize,
    model: &Transformer<B>,
    reference: Option<&Transformer<B::InnerBackend>>,
    batch: &Batch<'_>,
    config: &TrainerConfig,
    device: &B::Device,
) -> (GradientsParams, ShareTotals) {
    let lanes = lanes.min(batch.samples.len()).max(1);
    if lanes == 1 {
        return share_gradients(model, reference, batch.samples, batch, config, device);
    }
    // Each lane's parameters are distinct autodiff leaves (same values and parameter ids):
    // lanes sharing leaves would share one autodiff graph, whose lock serialises them.
    let lane_models: Vec<Transformer<B>> = (1..lanes).map(|_| model.clone().fork(device)).collect();
    let results: Vec<(GradientsParams, ShareTotals)> = std::thread::scope(|scope| {
        let handles: Vec<_> = share_ranges(batch.samples.len(), lanes)
            .into_iter()
            .zip(std::iter::once(model).chain(lane_models.iter()))
            .map(|(range, lane_model)| {
                let share = &batch.samples[range];
                scope.spawn(move || {
                    share_gradients(lane_model, reference, share, batch, config, device)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut accumulator = GradientsAccumulator::<Transformer<B>>::new();
    let mut totals = ShareTotals::default();
    for (grads, share) in results {
        accumulator.accumulate(model, grads);
        totals.add(&share);
    }
    (accumulator.grads(), totals)
}

/// Most lanes chosen by default: each lane holds one sequence's activations, and Burn's
/// matrix products already use up to four threads each.
pub const DEFAULT_MAX_LANES: usize = 4;

/// How many samples of an update run their forward and backward at once: the machine's cores
/// up to [`DEFAULT_MAX_LANES`], or `MARS2_TRAIN_LANES` where set to a positive number (`1`
/// runs them one at a time and sums gradients in sample order, for side-by-side timing).
pub fn training_lanes() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    lanes_from(std::env::var("MARS2_TRAIN_LANES").ok().as_deref(), cores)
}

/// [`training_lanes`] from the variable's value and the core count.
fn lanes_from(variable: Option<&str>, cores: usize) -> usize {
    match variable.map(|v| v.trim().parse::<usize>()) {
        Some(Ok(lanes)) if lanes > 0 => lanes,
        _ => cores.clamp(1, DEFAULT_MAX_LANES),
    }
}

/// Forward and backward of each sample of `share` (one at a time, gradients accumulated),
/// each loss scaled as the whole batch's would be.
pub(crate) fn share_gradients<B: AutodiffBackend>(
    model: &Transformer<B>,
    reference: Option<&Transformer<B::InnerBackend>>,
    share: &[TrainSample],
    batch: &Batch<'_>,
    config: &TrainerConfig,
    device: &B::Device,
) -> (GradientsParams, ShareTotals) {
    let mut accumulator = GradientsAccumulator::<Transformer<B>>::new();
    let mut t = ShareTotals::default();
    let (n, temperature) = (batch.n, config.temperature);
    for sample in share {
        let logp =
            response_logprobs_at(model, &sample.prompt, &sample.response, temperature, device);
        let old: Vec<f32> = logp.to_data().iter::<f32>().collect();
        let reference: Option<Vec<f32>> = reference.map(|r| {
            response_logprobs_at(r, &sample.prompt, &sample.response, temperature, device)
                .to_data()
                .iter::<f32>()
                .collect()
        });
        let terms = SequenceTerms {
            rollout: &sample.rollout_logprobs,
            old: &old,
            reference: reference.as_deref(),
            advantage: sample.advantage,
            batch_tokens: batch.tokens,
        };
        let (loss, stats) = sequence_loss(logp, &terms, &config.loss);
        // GSPO averages sequences; GRPO's loss is already normalised by the batch's tokens.
        let scale = match config.loss.kind {
            LossKind::Gspo => 1.0 / n,
            LossKind::Grpo => 1.0,
        };
        let grads = (loss * scale).backward();
        accumulator.accumulate(model, GradientsParams::from_grads(grads, model));
        t.loss += stats.loss * scale;
        t.kl += stats.kl / n;
        t.ratio += stats.ratio / n;
        t.clipped += stats.clipped / n;
        t.vetoed += f64::from(u8::from(stats.vetoed));
    }
    (accumulator.grads(), t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::flat_grads::flatten;
    use crate::LossConfig;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;
    use mars2_models::{LoraConfig, ModelConfig};

    type Train = Autodiff<NdArray<f32>>;

    fn samples(count: usize) -> Vec<TrainSample> {
        (0..count)
            .map(|i| TrainSample {
                prompt: vec![1, 2, 3 + i as u32 % 4],
                response: vec![4 + i as u32 % 5, 9, 3 + i as u32 % 3, 7],
                rollout_logprobs: vec![-2.4, -2.5, -2.3, -2.2],
                advantage: if i % 2 == 0 { 1.0 } else { -0.5 },
                reward: f64::from(u8::from(i % 2 == 0)),
                weights_version: 0,
            })
            .collect()
    }

    fn config() -> TrainerConfig {
        TrainerConfig {
            loss: LossConfig {
                kl_beta: 0.05,
                ..LossConfig::default()
            },
            ..TrainerConfig::default()
        }
    }

    /// Flat gradients and totals of one batch computed in `lanes` lanes.
    fn gradients_in(
        lanes: usize,
        model: &Transformer<Train>,
        reference: &Transformer<NdArray<f32>>,
        samples: &[TrainSample],
    ) -> (Vec<f32>, ShareTotals) {
        let batch = Batch {
            samples,
            n: samples.len() as f64,
            tokens: samples.iter().map(|s| s.response.len()).sum(),
        };
        let device = Default::default();
        let (grads, totals) =
            batch_gradients(lanes, model, Some(reference), &batch, &config(), &device);
        let flat = flatten::<Train, _>(model, grads).expect("the model trains");
        (flat.to_data().iter::<f32>().collect(), totals)
    }

    fn assert_same_update(model: &Transformer<Train>) {
        let reference = model.valid();
        let samples = samples(5);
        let (one, one_totals) = gradients_in(1, model, &reference, &samples);
        assert!(one.iter().any(|g| *g != 0.0), "the batch gives a gradient");
        for lanes in [2, 3, 8] {
            let (many, totals) = gradients_in(lanes, model, &reference, &samples);
            assert_eq!(one.len(), many.len());
            for (i, (a, b)) in one.iter().zip(&many).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 + 1e-5 * a.abs(),
                    "{lanes} lanes: gradient {i} is {b}, one lane gives {a}"
                );
            }
            for (name, a, b) in [
                ("loss", one_totals.loss, totals.loss),
                ("kl", one_totals.kl, totals.kl),
                ("ratio", one_totals.ratio, totals.ratio),
                ("clipped", one_totals.clipped, totals.clipped),
                ("vetoed", one_totals.vetoed, totals.vetoed),
            ] {
                assert!(
                    (a - b).abs() <= 1e-9,
                    "{lanes} lanes: {name} {b} against {a}"
                );
            }
        }
    }

    #[test]
    fn lanes_give_the_update_of_one_sequence_at_a_time() {
        let model =
            Transformer::<Train>::random(&ModelConfig::tiny_llama(12, 8, 1), &Default::default());
        assert_same_update(&model);
    }

    #[test]
    fn lanes_give_the_same_adapter_update() {
        let model =
            Transformer::<Train>::random(&ModelConfig::tiny_llama(12, 8, 1), &Default::default())
                .with_adapters(&LoraConfig {
                    rank: 2,
                    ..LoraConfig::default()
                });
        assert_same_update(&model);
    }

    #[test]
    fn lanes_default_to_the_cores_up_to_a_cap_and_follow_the_variable() {
        assert_eq!(lanes_from(None, 2), 2);
        assert_eq!(lanes_from(None, 1), 1);
        assert_eq!(lanes_from(None, 0), 1);
        assert_eq!(lanes_from(None, 64), DEFAULT_MAX_LANES);
        assert_eq!(lanes_from(Some("1"), 8), 1);
        assert_eq!(lanes_from(Some(" 6 "), 2), 6);
        // Not a positive number: the default.
        assert_eq!(lanes_from(Some("0"), 2), 2);
        assert_eq!(lanes_from(Some("many"), 2), 2);
    }
}
