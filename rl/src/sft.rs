//! Supervised fine-tuning: next-token cross-entropy on (prompt, response) pairs, the
//! response tokens only, averaged over the batch's response tokens. Used to make a second
//! agent with weights of its own (a heterogeneous team) from reference solutions.
//!
//! Same optimisation as the RL learner: AdamW (0.9, 0.95), warm-up + cosine, global
//! gradient-norm clipping, one sequence at a time with gradient accumulation.

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ElementConversion;
use mars2_models::Transformer;
use serde::{Deserialize, Serialize};

use crate::grad_norm::clip_global_norm;
use crate::logprobs::response_logprobs;
use crate::schedule::LrSchedule;
use crate::trainer::{adamw, Adam};

/// One supervised example: the prompt the model sees and the response it should write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftExample {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
}

/// What one supervised update did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SftStep {
    pub step: usize,
    pub examples: usize,
    pub tokens: usize,
    /// Mean negative log-likelihood per response token, before the update.
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub seconds: f64,
}

/// A supervised learner.
pub struct SupervisedTrainer<B: AutodiffBackend> {
    model: Option<Transformer<B>>,
    optimizer: Adam<B>,
    pub schedule: LrSchedule,
    pub grad_clip: f64,
    /// Updates done.
    pub step: usize,
    device: B::Device,
}

impl<B: AutodiffBackend> SupervisedTrainer<B> {
    pub fn new(
        model: Transformer<B>,
        schedule: LrSchedule,
        grad_clip: f64,
        device: B::Device,
    ) -> Self {
        SupervisedTrainer {
            model: Some(model),
            optimizer: adamw::<B>(),
            schedule,
            grad_clip,
            step: 0,
            device,
        }
    }

    /// The current weights for inference.
    pub fn inference_model(&self) -> Option<Transformer<B::InnerBackend>> {
        self.model.as_ref().map(|m| m.valid())
    }

    /// The trained model, for export.
    pub fn into_model(self) -> Option<Transformer<B>> {
        self.model
    }

    /// One update on `batch` (examples with an empty prompt or response are skipped);
    /// `None` when nothing in it can be trained on.
    pub fn train_step(&mut self, batch: &[SftExample]) -> Option<SftStep> {
        let usable: Vec<&SftExample> = batch
            .iter()
            .filter(|e| !e.prompt.is_empty() && !e.response.is_empty())
            .collect();
        let tokens: usize = usable.iter().map(|e| e.response.len()).sum();
        if tokens == 0 {
            return None;
        }
        let started = std::time::Instant::now();
        let model = self.model.take()?;
        let mut accumulator = GradientsAccumulator::<Transformer<B>>::new();
        let mut total_nll = 0.0;
        for example in &usable {
            let logp = response_logprobs(&model, &example.prompt, &example.response, &self.device);
            let nll = logp.sum().neg() / tokens as f64;
            total_nll += nll.clone().into_scalar().elem::<f64>();
            let grads = nll.backward();
            accumulator.accumulate(&model, GradientsParams::from_grads(grads, &model));
        }
        let mut grads = accumulator.grads();
        let grad_norm = clip_global_norm::<B, _>(&model, &mut grads, self.grad_clip);
        let lr = self.schedule.at(self.step);
        self.model = Some(self.optimizer.step(lr, model, grads));
        let step = SftStep {
            step: self.step,
            examples: usable.len(),
            tokens,
            loss: total_nll,
            grad_norm,
            lr,
            seconds: started.elapsed().as_secs_f64(),
        };
        self.step += 1;
        Some(step)
    }
}

/// Mean negative log-likelihood per response token of `examples` under `model` (no
/// gradient), for reporting before and after training.
pub fn mean_nll<B: Backend>(
    model: &Transformer<B>,
    examples: &[SftExample],
    device: &B::Device,
) -> f64 {
    let mut total = 0.0;
    let mut tokens = 0;
    for e in examples
        .iter()
        .filter(|e| !e.prompt.is_empty() && !e.response.is_empty())
    {
        let logp = response_logprobs(model, &e.prompt, &e.response, device);
        let sum = logp.sum().into_scalar().elem::<f64>();
        total -= sum;
        tokens += e.response.len();
    }
    if tokens == 0 {
        0.0
    } else {
        total / tokens as f64
    }
}
