//! Policy losses of one sequence on Burn tensors, each beside a plain scalar reference:
//!
//! - **GSPO** (default): sequence ratio `s = exp(mean_t(log π_θ − log π_rollout))`,
//!   `ℓ = −mean_t(w_t) · min(s·A, clip(s, 1−ε, 1+ε)·A)`;
//! - **GRPO/DAPO** (token level): `r_t = exp(log π_θ − log π_rollout)`,
//!   `ℓ = −Σ_t w_t · min(r_t·A, clip(r_t)·A) / N` with `N` the tokens of the whole batch;
//!
//! where `w_t = min(exp(log π_old − log π_rollout), 2)` is the truncated importance weight
//! (a sequence with any `w_t < 1e-4` is vetoed: weight 0), plus `β · mean_t k3` with
//! `k3 = exp(ref − θ) − 1 − (ref − θ)` clamped to [−10, 10] against the frozen reference.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Which loss trains the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    #[default]
    Gspo,
    Grpo,
}

/// Loss settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    pub kind: LossKind,
    /// ε of the ratio clip.
    pub clip: f64,
    /// Upper bound of the importance weights.
    pub weight_cap: f64,
    /// A sequence with a token weight below this is vetoed.
    pub veto_below: f64,
    /// β of the k3 KL penalty (0: no reference model is run).
    pub kl_beta: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            kind: LossKind::Gspo,
            clip: 0.2,
            weight_cap: 2.0,
            veto_below: 1e-4,
            kl_beta: 1e-3,
        }
    }
}

/// The host-side data of one sequence's loss.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceTerms<'a> {
    /// Log-probs the sampler reported (under the distribution actually sampled from).
    pub rollout: &'a [f32],
    /// Log-probs under the weights before this update (π_old).
    pub old: &'a [f32],
    /// Log-probs under the frozen reference model, when the KL term is on.
    pub reference: Option<&'a [f32]>,
    pub advantage: f64,
    /// GRPO: the token count the batch is normalised by.
    pub batch_tokens: usize,
}

/// Diagnostics of one sequence's loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossStats {
    pub loss: f64,
    /// Sequence ratio (GSPO) or mean token ratio (GRPO).
    pub ratio: f64,
    /// Whether the ratio (GSPO) was clipped / fraction of clipped tokens (GRPO).
    pub clipped: f64,
    pub kl: f64,
    pub vetoed: bool,
}

/// Truncated importance weights and whether the sequence is vetoed.
pub fn importance_weights(old: &[f32], rollout: &[f32], config: &LossConfig) -> (Vec<f64>, bool) {
    let weights: Vec<f64> = old
        .iter()
        .zip(rollout)
        .map(|(&o, &r)| ((o - r) as f64).exp().min(config.weight_cap))
        .collect();
    let vetoed = weights.iter().any(|&w| w < config.veto_below);
    (weights, vetoed)
}

fn tensor1<B: Backend>(values: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// The loss of one sequence from its current log-probs `logp` (`[T]`, with gradients).
pub fn sequence_loss<B: Backend>(
    logp: Tensor<B, 1>,
    terms: &SequenceTerms<'_>,
    config: &LossConfig,
) -> (Tensor<B, 1>, LossStats) {
    let device = logp.device();
    let t = terms.rollout.len().max(1) as f64;
    let (weights, vetoed) = importance_weights(terms.old, terms.rollout, config);
    let rollout = tensor1::<B>(terms.rollout.to_vec(), &device);
    let delta = logp.clone() - rollout;
    let a = terms.advantage;
    let (lo, hi) = (1.0 - config.clip, 1.0 + config.clip);
    let (policy, ratio, clipped) = match config.kind {
        LossKind::Gspo => {
            let s = delta.mean().exp();
            let surrogate = (s.clone() * a).min_pair(s.clone().clamp(lo, hi) * a);
            let mean_w = if vetoed {
                0.0
            } else {
                weights.iter().sum::<f64>() / t
            };
            let s_value = scalar(&s);
            (
                surrogate * (-mean_w),
                s_value,
                ((s_value < lo) || (s_value > hi)) as u8 as f64,
            )
        }
        LossKind::Grpo => {
            let r = delta.exp();
            let surrogate = (r.clone() * a).min_pair(r.clone().clamp(lo, hi) * a);
            let w: Vec<f32> = if vetoed {
                vec![0.0; weights.len()]
            } else {
                weights.iter().map(|&w| w as f32).collect()
            };
            let norm = terms.batch_tokens.max(1) as f64;
            let loss = (surrogate * tensor1::<B>(w, &device)).sum() * (-1.0 / norm);
            let values = vec_of(&r);
            let ratio = values.iter().sum::<f64>() / t;
            let clipped = values.iter().filter(|&&v| v < lo || v > hi).count() as f64 / t;
            (loss, ratio, clipped)
        }
    };
    let (loss, kl) = match terms.reference {
        Some(reference) if config.kl_beta > 0.0 => {
            let diff = tensor1::<B>(reference.to_vec(), &device) - logp;
            let k3 = (diff.clone().exp() - 1.0 - diff).clamp(-10.0, 10.0).mean();
            let kl = scalar(&k3);
            (policy + k3 * config.kl_beta, kl)
        }
        _ => (policy, 0.0),
    };
    let stats = LossStats {
        loss: scalar(&loss),
        ratio,
        clipped,
        kl,
        vetoed,
    };
    (loss, stats)
}

fn vec_of<B: Backend>(t: &Tensor<B, 1>) -> Vec<f64> {
    t.to_data().iter::<f64>().collect()
}

fn scalar<B: Backend>(t: &Tensor<B, 1>) -> f64 {
    vec_of(t).first().copied().unwrap_or(0.0)
}

/// The same loss in plain f64 arithmetic: the oracle of [`sequence_loss`].
pub fn sequence_loss_reference(
    logp: &[f64],
    terms: &SequenceTerms<'_>,
    config: &LossConfig,
) -> f64 {
    let t = logp.len().max(1) as f64;
    let (weights, vetoed) = importance_weights(terms.old, terms.rollout, config);
    let a = terms.advantage;
    let clip = |x: f64| x.clamp(1.0 - config.clip, 1.0 + config.clip);
    let delta: Vec<f64> = logp
        .iter()
        .zip(terms.rollout)
        .map(|(&l, &r)| l - r as f64)
        .collect();
    let policy = match config.kind {
        LossKind::Gspo => {
            let s = (delta.iter().sum::<f64>() / t).exp();
            let mean_w = if vetoed {
                0.0
            } else {
                weights.iter().sum::<f64>() / t
            };
            -mean_w * (s * a).min(clip(s) * a)
        }
        LossKind::Grpo => {
            let total: f64 = delta
                .iter()
                .zip(&weights)
                .map(|(&d, &w)| {
                    let r = d.exp();
                    let w = if vetoed { 0.0 } else { w };
                    w * (r * a).min(clip(r) * a)
                })
                .sum();
            -total / terms.batch_tokens.max(1) as f64
        }
    };
    let kl = match terms.reference {
        Some(reference) if config.kl_beta > 0.0 => {
            reference
                .iter()
                .zip(logp)
                .map(|(&r, &l)| {
                    let d = r as f64 - l;
                    (d.exp() - 1.0 - d).clamp(-10.0, 10.0)
                })
                .sum::<f64>()
                / t
        }
        _ => 0.0,
    };
    policy + config.kl_beta * kl
}
