//! Token sampling on the host from one row of logits: greedy, temperature, top-k, top-p,
//! min-p; each choice comes with its log-probability under the distribution actually sampled
//! from (after temperature and truncation), which is what importance ratios in RL need.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

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

    /// Picks a token from one row of logits on the host: the reference for
    /// [`crate::device_sampling::sample_on_device`], which consumes the same draws.
    ///
    /// Greedy picks the first maximum (as `argmax` does) and reports its log-probability under
    /// the model's untempered distribution; it draws nothing.
    pub fn sample(&mut self, logits: &[f32]) -> SampledToken {
        if self.params.temperature == 0.0 {
            let (id, _) =
                logits
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (i, &l)| {
                        if l > best.1 {
                            (i, l)
                        } else {
                            best
                        }
                    });
            return SampledToken {
                id: id as u32,
                logprob: log_softmax_at(logits, id, 1.0),
            };
        }
        let u = self.draw();
        // The inverse CDF runs over the kept tokens in vocabulary order, as the sampling
        // kernels draw.
        let mut dist = truncated_distribution(logits, &self.params);
        dist.sort_by_key(|&(i, _)| i);
        let mut acc = 0.0f64;
        let mut chosen = dist.last().map(|&(i, _)| i).unwrap_or(0);
        for &(i, p) in &dist {
            acc += p;
            if u < acc {
                chosen = i;
                break;
            }
        }
        let p = dist
            .iter()
            .find(|&&(i, _)| i == chosen)
            .map(|&(_, p)| p)
            .unwrap_or(0.0);
        SampledToken {
            id: chosen as u32,
            logprob: p.ln() as f32,
        }
    }
}

/// `log softmax(logits / temperature)[index]`, computed stably in f64.
pub fn log_softmax_at(logits: &[f32], index: usize, temperature: f32) -> f32 {
    let t = f64::from(temperature);
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &l| m.max(f64::from(l) / t));
    let sum: f64 = logits.iter().map(|&l| (f64::from(l) / t - max).exp()).sum();
    (f64::from(logits[index]) / t - max - sum.ln()) as f32
}

/// The renormalized distribution after temperature, top-k, top-p and min-p, as
/// `(token, probability)` sorted by decreasing probability.
pub fn truncated_distribution(logits: &[f32], params: &SamplingParams) -> Vec<(usize, f64)> {
    let t = f64::from(params.temperature.max(1e-6));
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &l| m.max(f64::from(l) / t));
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i, (f64::from(l) / t - max).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut keep = probs.len();
    if params.top_k > 0 {
        keep = keep.min(params.top_k);
    }
    if params.top_p < 1.0 {
        let mut acc = 0.0;
        for (n, p) in probs.iter().enumerate().take(keep) {
            acc += p.1;
            if acc >= f64::from(params.top_p) {
                keep = n + 1;
                break;
            }
        }
    }
    if params.min_p > 0.0 {
        let floor = probs[0].1 * f64::from(params.min_p);
        keep = keep.min(probs.iter().take_while(|p| p.1 >= floor).count().max(1));
    }
    probs.truncate(keep.max(1));
    let kept: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= kept);
    probs
}

#[cfg(test)]
mod tests {
    use super::*;

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
