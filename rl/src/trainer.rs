//! One agent's learner: its trainable model, frozen reference, AdamW optimizer, step counter
//! and sample buffer. An update takes `train_batch` samples from the front of the buffer
//! (left-overs wait for the next update), runs forward/backward one sequence at a time
//! (gradient accumulation), clips the global gradient norm and steps the optimizer with the
//! scheduled learning rate.

use std::collections::VecDeque;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use mars2_models::Transformer;
use serde::{Deserialize, Serialize};

use crate::grad_norm::clip_global_norm;
use crate::logprobs::response_logprobs_at;
use crate::loss::{sequence_loss, LossConfig, LossKind, SequenceTerms};
use crate::samples::TrainSample;
use crate::schedule::LrSchedule;

/// Optimisation settings of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    pub schedule: LrSchedule,
    /// Samples per update.
    pub train_batch: usize,
    pub grad_clip: f64,
    pub loss: LossConfig,
    /// Sampling temperature of the rollouts: the policy, old and reference log-probs are taken
    /// from `logits / temperature`, the distribution the engine sampled from and reported
    /// log-probs under (so the importance ratio compares like with like).
    pub temperature: f64,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            schedule: LrSchedule {
                peak: 1e-6,
                warmup_fraction: 0.03,
                total_steps: 100,
                floor_fraction: 0.1,
            },
            train_batch: 8,
            grad_clip: 1.0,
            loss: LossConfig::default(),
            temperature: 1.0,
        }
    }
}

/// What one update did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub samples: usize,
    pub tokens: usize,
    pub loss: f64,
    pub kl: f64,
    pub ratio: f64,
    pub clipped: f64,
    pub vetoed: usize,
    pub grad_norm: f64,
    pub lr: f64,
    pub mean_reward: f64,
    pub mean_advantage: f64,
    /// Updates between the weights that generated a sample and the weights it trains
    /// (mean and largest over the batch).
    pub staleness_mean: f64,
    pub staleness_max: u64,
    pub seconds: f64,
}

pub(crate) type Adam<B> = OptimizerAdaptor<AdamW, Transformer<B>, B>;

/// AdamW with β = (0.9, 0.95) and no weight decay, the optimizer of every learner.
pub(crate) fn adamw<B: AutodiffBackend>() -> Adam<B> {
    AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.95)
        .with_weight_decay(0.0)
        .init::<B, Transformer<B>>()
}

/// The learner of one agent.
pub struct AgentTrainer<B: AutodiffBackend> {
    model: Option<Transformer<B>>,
    reference: Option<Transformer<B::InnerBackend>>,
    optimizer: Adam<B>,
    pub config: TrainerConfig,
    /// Updates done.
    pub step: usize,
    /// The version of these weights as the engine serves them (the caller sets it after each
    /// hand-off); a sample's staleness is this minus the version that generated it.
    pub weights_version: u64,
    buffer: VecDeque<TrainSample>,
    device: B::Device,
}

impl<B: AutodiffBackend> AgentTrainer<B> {
    /// A learner starting from `model`; the reference (kept only when the KL term is on) is
    /// a frozen copy of it, or, when `model` carries low-rank adapters, the same base weights
    /// with the adapters off.
    pub fn new(model: Transformer<B>, config: TrainerConfig, device: B::Device) -> Self {
        let reference = (config.loss.kl_beta > 0.0).then(|| model.valid().without_adapters());
        let optimizer = adamw::<B>();
        AgentTrainer {
            model: Some(model),
            reference,
            optimizer,
            config,
            step: 0,
            weights_version: 0,
            buffer: VecDeque::new(),
            device,
        }
    }

    pub fn push(&mut self, samples: impl IntoIterator<Item = TrainSample>) {
        self.buffer.extend(samples);
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The samples waiting for the next update, oldest first (saved with checkpoints, so a
    /// resumed run trains on them as the uninterrupted run would have).
    pub fn pending(&self) -> impl Iterator<Item = &TrainSample> {
        self.buffer.iter()
    }

    /// Whether the buffer holds a full batch.
    pub fn ready(&self) -> bool {
        self.buffer.len() >= self.config.train_batch.max(1)
    }

    /// The current weights for inference as dense weights: adapters (if any) folded into
    /// their projections (what an engine without its own copy of the base takes).
    pub fn inference_model(&self) -> Option<Transformer<B::InnerBackend>> {
        self.model.as_ref().map(|m| m.valid().merge_adapters())
    }

    pub fn model(&self) -> Option<&Transformer<B>> {
        self.model.as_ref()
    }

    pub fn optimizer(&self) -> &Adam<B> {
        &self.optimizer
    }

    /// Restores weights, optimizer state, step and the samples waiting for an update
    /// (resume); the buffer is replaced by `pending`.
    pub fn restore(
        &mut self,
        model: Transformer<B>,
        optimizer: <Adam<B> as Optimizer<Transformer<B>, B>>::Record,
        step: usize,
        pending: Vec<TrainSample>,
    ) {
        self.model = Some(model);
        self.optimizer = self.optimizer.clone().load_record(optimizer);
        self.step = step;
        self.buffer = pending.into();
    }

    /// One update from the first `train_batch` buffered samples; `None` when the buffer
    /// does not hold a batch.
    pub fn train_step(&mut self) -> Option<StepMetrics> {
        if !self.ready() {
            return None;
        }
        let started = std::time::Instant::now();
        let batch: Vec<TrainSample> = self
            .buffer
            .drain(..self.config.train_batch.max(1))
            .collect();
        let model = self.model.take()?;
        let n = batch.len() as f64;
        let batch_tokens: usize = batch.iter().map(|s| s.response.len()).sum();
        let mut accumulator = GradientsAccumulator::<Transformer<B>>::new();
        let mut m = StepMetrics {
            step: self.step,
            samples: batch.len(),
            tokens: batch_tokens,
            ..StepMetrics::default()
        };
        let temperature = self.config.temperature;
        for sample in &batch {
            let logp = response_logprobs_at(
                &model,
                &sample.prompt,
                &sample.response,
                temperature,
                &self.device,
            );
            let old: Vec<f32> = logp.to_data().iter::<f32>().collect();
            let reference: Option<Vec<f32>> = self.reference.as_ref().map(|r| {
                response_logprobs_at(
                    r,
                    &sample.prompt,
                    &sample.response,
                    temperature,
                    &self.device,
                )
                .to_data()
                .iter::<f32>()
                .collect()
            });
            let terms = SequenceTerms {
                rollout: &sample.rollout_logprobs,
                old: &old,
                reference: reference.as_deref(),
                advantage: sample.advantage,
                batch_tokens,
            };
            let (loss, stats) = sequence_loss(logp, &terms, &self.config.loss);
            // GSPO averages sequences; GRPO's loss is already normalised by the batch's tokens.
            let scale = match self.config.loss.kind {
                LossKind::Gspo => 1.0 / n,
                LossKind::Grpo => 1.0,
            };
            let grads = (loss * scale).backward();
            accumulator.accumulate(&model, GradientsParams::from_grads(grads, &model));
            m.loss += stats.loss * scale;
            m.kl += stats.kl / n;
            m.ratio += stats.ratio / n;
            m.clipped += stats.clipped / n;
            m.vetoed += stats.vetoed as usize;
            m.mean_reward += sample.reward / n;
            m.mean_advantage += sample.advantage / n;
            let staleness = self.weights_version.saturating_sub(sample.weights_version);
            m.staleness_mean += staleness as f64 / n;
            m.staleness_max = m.staleness_max.max(staleness);
        }
        let mut grads = accumulator.grads();
        m.grad_norm = clip_global_norm::<B, _>(&model, &mut grads, self.config.grad_clip);
        m.lr = self.config.schedule.at(self.step);
        self.model = Some(self.optimizer.step(m.lr, model, grads));
        self.step += 1;
        m.seconds = started.elapsed().as_secs_f64();
        Some(m)
    }
}
