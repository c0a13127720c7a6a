//! One agent's learner: its trainable model, frozen reference, AdamW optimizer, step counter
//! and sample buffer. An update takes `train_batch` samples from the front of the buffer
//! (left-overs wait for the next update), runs forward and backward over its samples in lanes
//! ([`crate::batch_gradients`]), clips the global gradient norm and steps the optimizer with
//! the scheduled learning rate. A learner given a [`PeerGroup`] is one of several data-parallel
//! peers: each takes a contiguous share of the batch and the shares' gradients are summed over
//! the run before every replica takes the same step.

use std::collections::VecDeque;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use mars2_models::Transformer;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};

use crate::batch_gradients::{
    batch_gradients, share_gradients, training_lanes, Batch, ShareTotals,
};
use crate::grad_norm::clip_global_norm;
use crate::loss::LossConfig;
use crate::parallel::flat_grads::{flatten, unflatten};
use crate::parallel::{ParallelError, PeerGroup};
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
    /// The data-parallel group this learner belongs to, if any.
    peers: Option<Arc<PeerGroup<B::InnerBackend>>>,
    /// Replicas on the group's other local devices (made at the first update).
    replicas: Vec<Replica<B>>,
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
            peers: None,
            replicas: Vec::new(),
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
        // Replicas are made again from the restored weights and moments.
        self.replicas.clear();
    }

    /// Makes this learner one of the data-parallel peers of `peers`: a replica on each of the
    /// group's local devices (the first being this learner's own), each computing the
    /// gradients of its share of every batch; the shares' gradients are summed over the
    /// whole run before the (identical) AdamW step of every replica.
    pub fn with_peers(mut self, peers: Arc<PeerGroup<B::InnerBackend>>) -> Self {
        self.peers = Some(peers);
        self.replicas.clear();
        self
    }

    /// One update from the first `train_batch` buffered samples; `Ok(None)` when the buffer
    /// does not hold a batch. Errors come only from peers (one stopped or timed out).
    pub fn train_step(&mut self) -> Result<Option<StepMetrics>, ParallelError> {
        if !self.ready() {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let batch: Vec<TrainSample> = self
            .buffer
            .drain(..self.config.train_batch.max(1))
            .collect();
        let Some(model) = self.model.take() else {
            return Ok(None);
        };
        let n = batch.len() as f64;
        let batch_tokens: usize = batch.iter().map(|s| s.response.len()).sum();
        let mut m = StepMetrics {
            step: self.step,
            samples: batch.len(),
            tokens: batch_tokens,
            lr: self.config.schedule.at(self.step),
            ..StepMetrics::default()
        };
        for sample in &batch {
            m.mean_reward += sample.reward / n;
            m.mean_advantage += sample.advantage / n;
            let staleness = self.weights_version.saturating_sub(sample.weights_version);
            m.staleness_mean += staleness as f64 / n;
            m.staleness_max = m.staleness_max.max(staleness);
        }
        let batch = Batch {
            samples: &batch,
            n,
            tokens: batch_tokens,
        };
        let (totals, grad_norm) = match self.peers.clone() {
            None => {
                let (grads, totals) = batch_gradients(
                    training_lanes(),
                    &model,
                    self.reference.as_ref(),
                    &batch,
                    &self.config,
                    &self.device,
                );
                let mut grads = grads;
                let norm = clip_global_norm::<B, _>(&model, &mut grads, self.config.grad_clip);
                self.model = Some(self.optimizer.step(m.lr, model, grads));
                (totals, norm)
            }
            Some(peers) => self.parallel_step(&peers, model, &batch, m.lr)?,
        };
        m.loss = totals.loss;
        m.kl = totals.kl;
        m.ratio = totals.ratio;
        m.clipped = totals.clipped;
        m.vetoed = totals.vetoed.round() as usize;
        m.grad_norm = grad_norm;
        self.step += 1;
        m.seconds = started.elapsed().as_secs_f64();
        Ok(Some(m))
    }

    /// The data-parallel update: every local peer (a thread each) takes its share of the
    /// batch, the flat gradients and the share totals are summed over the run, and every
    /// replica steps its own optimizer with the same gradients.
    fn parallel_step(
        &mut self,
        peers: &PeerGroup<B::InnerBackend>,
        model: Transformer<B>,
        batch: &Batch<'_>,
        lr: f64,
    ) -> Result<(ShareTotals, f64), ParallelError> {
        let devices = peers.devices().to_vec();
        if self.replicas.len() + 1 != devices.len() {
            self.replicas = devices[1..]
                .iter()
                .map(|device| Replica {
                    model: Some(model.clone().fork(device)),
                    reference: self.reference.as_ref().map(|r| r.clone().fork(device)),
                    optimizer: self.optimizer.clone(),
                })
                .collect();
        }
        let shares = share_ranges(batch.samples.len(), peers.world());
        let config = &self.config;
        let mut slots = vec![PeerSlot {
            model,
            reference: self.reference.as_ref(),
            optimizer: &mut self.optimizer,
        }];
        for replica in self.replicas.iter_mut() {
            let Some(model) = replica.model.take() else {
                return Err(ParallelError::PeerStopped {
                    peer: peers.peer(slots.len()),
                    message: "its replica was lost in an earlier failed update".into(),
                });
            };
            slots.push(PeerSlot {
                model,
                reference: replica.reference.as_ref(),
                optimizer: &mut replica.optimizer,
            });
        }
        let results: Vec<Result<PeerUpdate<B>, ParallelError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = slots
                .into_iter()
                .enumerate()
                .map(|(local, slot)| {
                    let share = &batch.samples[shares[peers.peer(local)].clone()];
                    let device = &devices[local];
                    scope.spawn(move || {
                        let (grads, totals) = share_gradients(
                            &slot.model,
                            slot.reference,
                            share,
                            batch,
                            config,
                            device,
                        );
                        let result = sum_and_step(peers, local, slot, grads, totals, config, lr);
                        if result.is_err() {
                            peers.mark_failed();
                        }
                        result
                    })
                })
                .collect();
            peers.join_peers(handles, "updating")
        });
        let mut first = None;
        for (local, result) in results.into_iter().enumerate() {
            let update = result?;
            match local {
                0 => first = Some(update),
                _ => self.replicas[local - 1].model = Some(update.model),
            }
        }
        let update = first.ok_or_else(|| ParallelError::PeerStopped {
            peer: peers.peer(0),
            message: "no update came back".into(),
        })?;
        self.model = Some(update.model);
        Ok((update.totals, update.grad_norm))
    }
}

/// What one local peer works with during an update.
struct PeerSlot<'a, B: AutodiffBackend> {
    model: Transformer<B>,
    reference: Option<&'a Transformer<B::InnerBackend>>,
    optimizer: &'a mut Adam<B>,
}

/// One local peer's part of an update, done: its stepped model and the run's totals.
struct PeerUpdate<B: AutodiffBackend> {
    model: Transformer<B>,
    totals: ShareTotals,
    grad_norm: f64,
}

/// One replica of a learner on another local device.
struct Replica<B: AutodiffBackend> {
    /// `None` only while an update has it.
    model: Option<Transformer<B>>,
    reference: Option<Transformer<B::InnerBackend>>,
    optimizer: Adam<B>,
}

/// Contiguous shares of `len` samples for `world` peers, sizes differing by at most one (the
/// first peers take the extra ones; peers beyond `len` get empty shares).
pub fn share_ranges(len: usize, world: usize) -> Vec<std::ops::Range<usize>> {
    let world = world.max(1);
    let (base, extra) = (len / world, len % world);
    let mut start = 0;
    (0..world)
        .map(|p| {
            let size = base + usize::from(p < extra);
            let range = start..start + size;
            start += size;
            range
        })
        .collect()
}

/// One peer's part of a data-parallel update after its backward passes: sum gradients and
/// totals over the run, clip, step.
fn sum_and_step<B: AutodiffBackend>(
    peers: &PeerGroup<B::InnerBackend>,
    local: usize,
    slot: PeerSlot<'_, B>,
    grads: GradientsParams,
    totals: ShareTotals,
    config: &TrainerConfig,
    lr: f64,
) -> Result<PeerUpdate<B>, ParallelError> {
    let PeerSlot {
        model, optimizer, ..
    } = slot;
    let device = peers.devices()[local].clone();
    let stats = [
        totals.loss,
        totals.kl,
        totals.ratio,
        totals.clipped,
        totals.vetoed,
    ];
    let stats = Tensor::<B::InnerBackend, 1>::from_data(
        TensorData::new(stats.map(|v| v as f32).to_vec(), [stats.len()]),
        &device,
    );
    let stats: Vec<f32> = peers
        .all_reduce_sum(local, stats)?
        .into_data()
        .to_vec::<f32>()
        .unwrap_or_default();
    let get = |i: usize| stats.get(i).copied().unwrap_or(0.0) as f64;
    let totals = ShareTotals {
        loss: get(0),
        kl: get(1),
        ratio: get(2),
        clipped: get(3),
        vetoed: get(4),
    };
    let Some(flat) = flatten::<B, _>(&model, grads) else {
        return Ok(PeerUpdate {
            model,
            totals,
            grad_norm: 0.0,
        });
    };
    let summed = peers.all_reduce_sum(local, flat)?;
    let mut grads = unflatten::<B, _>(&model, &summed);
    let grad_norm = clip_global_norm::<B, _>(&model, &mut grads, config.grad_clip);
    Ok(PeerUpdate {
        model: optimizer.step(lr, model, grads),
        totals,
        grad_norm,
    })
}
