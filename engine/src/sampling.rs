//! Token sampling on the host from one row of logits: greedy, temperature, top-k, top-p,
//! min-p; each choice comes with its log-probability under the distribution actually sampled
//! from (after temperature and truncation), which is what importance ratios in RL need.
//!
//! The semantics have one definition, `mars2_models::kernels::reference`'s sampler, which the
//! host and GPU sampling kernels are tested against; [`Sampler`] adds the seeded stream of
//! uniform draws a request samples with.

use mars2_models::kernels::reference::{self, SampleParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::device_sampling::RowDraw;
use crate::error::{EngineError, Result};

/// How to pick the next token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1 = off).
    pub top_p: f32,
    /// Keep the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens whose probability is below `min_p` times the top probability (0 = off).
    pub min_p: f32,
    pub seed: u64,
    pub max_new_tokens: usize,
    /// Generation stops after any of these ids (in addition to the model's end-of-sequence ids
    /// unless `ignore_eos`).
    pub stop_token_ids: Vec<u32>,
    /// Generation stops once the decoded output contains any of these (engine agents with a
    /// tokenizer only).
    #[serde(default)]
    pub stop_strings: Vec<String>,
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: 0,
            max_new_tokens: 64,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            ignore_eos: false,
        }
    }
}

impl SamplingParams {
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::InvalidSampling(m));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!("temperature {} must be ≥ 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return bad(format!("min_p {} must be in [0, 1)", self.min_p));
        }
        Ok(())
    }
}

/// A per-sequence sampler: its own seeded generator, so results don't depend on batching.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

/// One sampled token and its log-probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampledToken {
    pub id: u32,
    pub logprob: f32,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The next uniform number in [0, 1) of this sequence's generator.
    pub fn draw(&mut self) -> f64 {
        self.rng.random()
    }

    /// Picks a token from one row of logits on the host, with the semantics of the sampling
    /// kernels and their reference ([`reference::sample`], which this calls): greedy takes the
    /// first maximum and reports its log-probability under the untempered distribution,
    /// drawing nothing; other rows take one uniform draw (the same one
    /// [`crate::device_sampling::sample_on_device`] takes) and pick by inverse CDF over the
    /// kept tokens in vocabulary order.
    pub fn sample(&mut self, logits: &[f32]) -> SampledToken {
        let params = RowDraw::from_sampler(self).sample_params();
        let (id, logprob) = reference::sample(logits, params);
        SampledToken {
            id: id as u32,
            logprob: logprob as f32,
        }
    }
}

/// The renormalized distribution after temperature, top-k, top-p and min-p, as
/// `(token, probability)` in vocabulary order: [`reference::sampling_distribution`], the one
/// definition the sampling kernels and [`Sampler::sample`] follow (the kept set is closed
/// under ties).
pub fn truncated_distribution(logits: &[f32], params: &SamplingParams) -> Vec<(usize, f64)> {
    reference::sampling_distribution(
        logits,
        SampleParams {
            temperature: params.temperature,
            top_k: params.top_k,
            top_p: params.top_p,
            min_p: params.min_p,
            uniform: 0.0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `log softmax(logits / temperature)[index]`, computed stably in f64.
    fn log_softmax_at(logits: &[f32], index: usize, temperature: f32) -> f32 {
        let t = f64::from(temperature);
        let max = logits
            .iter()
            .fold(f64::NEG_INFINITY, |m, &l| m.max(f64::from(l) / t));
        let sum: f64 = logits.iter().map(|&l| (f64::from(l) / t - max).exp()).sum();
        (f64::from(logits[index]) / t - max - sum.ln()) as f32
    }

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(params(0.0));
        let tok = s.sample(&[1.0, 3.0, 3.0, -1.0]);
        assert_eq!(tok.id, 1);
        let expected = (3.0f64 - (1f64.exp() + 2.0 * 3f64.exp() + (-1f64).exp()).ln()) as f32;
        assert!((tok.logprob - expected).abs() < 1e-6);
    }

    #[test]
    fn top_k_one_is_greedy_with_logprob_zero() {
        let mut s = Sampler::new(SamplingParams {
            top_k: 1,
            ..params(1.0)
        });
        let tok = s.sample(&[0.1, 2.0, 0.3]);
        assert_eq!(
            tok,
            SampledToken {
                id: 1,
                logprob: 0.0
            }
        );
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // Probabilities 0.5, 0.3, 0.2 → top_p 0.7 keeps two tokens, renormalized to 5/8, 3/8.
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let d = truncated_distribution(
            &logits,
            &SamplingParams {
                top_p: 0.7,
                ..params(1.0)
            },
        );
        assert_eq!(d.len(), 2);
        assert!((d[0].1 - 0.625).abs() < 1e-6 && (d[1].1 - 0.375).abs() < 1e-6);
    }

    #[test]
    fn top_p_keeps_every_token_tied_with_the_last_kept_one() {
        // Two equally likely tokens: a nucleus of 0.3 reaches past the first, and its tie
        // stays in as the sampling kernels keep it.
        let logits = [2.0f32, 2.0, 0.0];
        let d = truncated_distribution(
            &logits,
            &SamplingParams {
                top_p: 0.3,
                ..params(1.0)
            },
        );
        assert_eq!(d.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!((d[0].1 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let d = truncated_distribution(
            &logits,
            &SamplingParams {
                min_p: 0.5,
                ..params(1.0)
            },
        );
        assert_eq!(d.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn sampling_frequencies_follow_the_distribution_and_logprobs_match() {
        let logits = [0.0f32, 1.0, 2.0];
        let mut s = Sampler::new(SamplingParams {
            seed: 7,
            ..params(1.0)
        });
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            let tok = s.sample(&logits);
            counts[tok.id as usize] += 1;
            let expected = log_softmax_at(&logits, tok.id as usize, 1.0);
            assert!((tok.logprob - expected).abs() < 1e-5);
        }
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for (i, &c) in counts.iter().enumerate() {
            let p = f64::from(logits[i]).exp() / z;
            assert!((c as f64 / 20_000.0 - p).abs() < 0.02, "token {i}: {c}");
        }
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = || {
            let mut s = Sampler::new(SamplingParams {
                seed: 3,
                ..params(0.8)
            });
            (0..20).map(|_| s.sample(&logits).id).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(SamplingParams {
            top_p: 0.0,
            ..params(1.0)
        }
        .validate()
        .is_err());
        assert!(params(-1.0).validate().is_err());
        assert!(params(0.7).validate().is_ok());
    }
}
