//! Sampling on the device: the logits of a batch never come back to the host, only one token
//! id and one log-probability per row.
//!
//! Each row has its own temperature (0 = greedy), top-k, top-p and min-p, and a uniform number
//! drawn from its request's seeded generator (so results do not depend on batching). The
//! sampling kernels (GPU and host) draw by inverse CDF in vocabulary order over the kept tokens;
//! the stock-op fallback sorts the vocabulary of truncating rows and draws in that order.
//! Semantics are those of the host reference [`crate::sampling::truncated_distribution`] /
//! [`crate::sampling::Sampler::sample`].

use burn::tensor::backend::Backend;
use burn::tensor::{DType, ElementConversion, FloatDType, Int, Tensor, TensorData};

use mars2_models::kernels::{self, reference::SampleParams};

use crate::sampling::{SampledToken, Sampler};

/// How one row samples in this step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowDraw {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    /// Uniform in [0, 1); ignored by greedy rows.
    pub uniform: f64,
}

impl RowDraw {
    /// Takes the row's parameters and, unless greedy, one uniform draw from its sampler.
    pub fn from_sampler(sampler: &mut Sampler) -> Self {
        let p = sampler.params().clone();
        let uniform = if p.temperature == 0.0 {
            0.0
        } else {
            sampler.draw()
        };
        Self {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            min_p: p.min_p,
            uniform,
        }
    }

    /// The row as the sampling kernel takes it (its uniform number narrowed to f32).
    pub fn sample_params(&self) -> SampleParams {
        SampleParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            uniform: self.uniform as f32,
        }
    }

    fn greedy(&self) -> bool {
        self.temperature == 0.0
    }

    fn truncates(&self) -> bool {
        !self.greedy() && (self.top_k > 0 || self.top_p < 1.0 || self.min_p > 0.0)
    }
}

fn column<B: Backend>(values: Vec<f32>, device: &B::Device) -> Tensor<B, 2> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n, 1]), (device, DType::F32))
}

fn host_ints<B: Backend>(t: Tensor<B, 2, Int>) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .to_vec()
        .expect("integer read-back")
}

fn host_floats<B: Backend>(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("float read-back")
}

/// The sampling kernel, on backends that have one (the CubeCL kernel on GPU backends, the host
/// kernel on ndarray): one launch and one read-back of `[rows, 2]` (id, log-prob). It draws by
/// inverse CDF over the kept tokens in vocabulary order, the stock path below in
/// descending-probability order: the same distribution, but a given uniform number may pick a
/// different token.
fn sample_with_kernel<B: Backend>(
    logits: &Tensor<B, 2>,
    draws: &[RowDraw],
    device: &B::Device,
) -> Option<Vec<SampledToken>> {
    if !kernels::has_custom_kernels::<B>() {
        return None;
    }
    let params: Vec<f32> = draws.iter().flat_map(|d| d.sample_params().row()).collect();
    let params = Tensor::from_data(
        TensorData::new(params, [draws.len(), SampleParams::WIDTH]),
        (device, DType::F32),
    );
    let out = host_floats(kernels::sample(logits, &params)?);
    Some(
        out.chunks(2)
            .map(|pair| SampledToken {
                id: pair[0] as u32,
                logprob: pair[1].elem(),
            })
            .collect(),
    )
}

/// Samples one token per row of `logits` (`[rows, vocab]`).
pub fn sample_on_device<B: Backend>(
    logits: Tensor<B, 2>,
    draws: &[RowDraw],
    device: &B::Device,
) -> Vec<SampledToken> {
    assert_eq!(logits.dims()[0], draws.len(), "one draw per row");
    // Probabilities and log-probs in f32 whatever the model's float type (a no-op for f32
    // models): half-precision log-probs would be off by ~1e-2 nats.
    let logits = logits.cast(FloatDType::F32);
    sample_with_kernel(&logits, draws, device)
        .unwrap_or_else(|| sample_with_stock_ops(logits, draws, device))
}

/// [`sample_on_device`] through Burn's own tensor ops (what backends without the sampling
/// kernel run, and its baseline in the kernel benchmarks); in f32 whatever the logits' type.
pub fn sample_with_stock_ops<B: Backend>(
    logits: Tensor<B, 2>,
    draws: &[RowDraw],
    device: &B::Device,
) -> Vec<SampledToken> {
    let logits = logits.cast(FloatDType::F32);
    let [rows, vocab] = logits.dims();
    assert_eq!(rows, draws.len(), "one draw per row");
    let temps: Vec<f32> = draws
        .iter()
        .map(|d| if d.greedy() { 1.0 } else { d.temperature })
        .collect();
    let scaled = logits / column::<B>(temps, device);
    let max = scaled.clone().max_dim(1);
    let shifted = scaled - max;
    let unnormalized = shifted.clone().exp();
    let z = unnormalized.clone().sum_dim(1);
    let log_z = z.clone().log();

    // Greedy and plain temperature sampling share the unsorted probabilities.
    let greedy_ids = shifted.clone().argmax(1);
    let cum = unnormalized.cumsum(1);
    let target = column::<B>(draws.iter().map(|d| d.uniform as f32).collect(), device) * z;
    let drawn = cum
        .lower_equal(target.expand([rows, vocab]))
        .int()
        .sum_dim(1)
        .clamp_max((vocab - 1) as i64);
    let any_plain = draws.iter().any(|d| !d.greedy() && !d.truncates());
    let any_greedy = draws.iter().any(RowDraw::greedy);
    let ids_plain = if any_plain {
        Some(host_ints(drawn.clone()))
    } else {
        None
    };
    let lp_plain = if any_plain {
        Some(host_floats(
            shifted.clone().gather(1, drawn) - log_z.clone(),
        ))
    } else {
        None
    };
    let ids_greedy = if any_greedy {
        Some(host_ints(greedy_ids.clone()))
    } else {
        None
    };
    let lp_greedy = if any_greedy {
        Some(host_floats(
            shifted.clone().gather(1, greedy_ids) - log_z.clone(),
        ))
    } else {
        None
    };

    // Truncated rows: sort, keep a prefix (top-k, top-p, min-p), renormalize, draw.
    let truncated = if draws.iter().any(RowDraw::truncates) {
        let (sorted, order) = shifted.sort_descending_with_indices(1);
        let probs = (sorted.clone() - log_z).exp();
        let exclusive = probs.clone().cumsum(1) - probs.clone();
        let rank = Tensor::<B, 1, Int>::arange(0..vocab as i64, device)
            .cast(FloatDType::F32)
            .unsqueeze::<2>()
            .expand([rows, vocab]);
        let top_k = column::<B>(
            draws
                .iter()
                .map(|d| {
                    if d.top_k == 0 {
                        vocab as f32
                    } else {
                        d.top_k as f32
                    }
                })
                .collect(),
            device,
        );
        let top_p = column::<B>(draws.iter().map(|d| d.top_p).collect(), device);
        let min_p = column::<B>(draws.iter().map(|d| d.min_p).collect(), device);
        let first = probs.clone().slice([0..rows, 0..1]);
        let keep = exclusive
            .lower(top_p.expand([rows, vocab]))
            .bool_and(rank.clone().lower(top_k.expand([rows, vocab])))
            .bool_and(
                probs
                    .clone()
                    .greater_equal((first * min_p).expand([rows, vocab])),
            )
            .bool_or(rank.lower_elem(1.0));
        let kept = probs.mask_fill(keep.bool_not(), 0.0);
        let kept_cum = kept.clone().cumsum(1);
        let total = kept_cum.clone().slice([0..rows, vocab - 1..vocab]);
        let target =
            column::<B>(draws.iter().map(|d| d.uniform as f32).collect(), device) * total.clone();
        let pos = kept_cum
            .lower_equal(target.expand([rows, vocab]))
            .int()
            .sum_dim(1)
            .clamp_max((vocab - 1) as i64);
        let ids = host_ints(order.gather(1, pos.clone()));
        let lps = host_floats(kept.gather(1, pos).log() - total.log());
        Some((ids, lps))
    } else {
        None
    };

    draws
        .iter()
        .enumerate()
        .map(|(r, d)| {
            let (ids, lps) = if d.greedy() {
                (ids_greedy.as_ref(), lp_greedy.as_ref())
            } else if d.truncates() {
                let t = truncated.as_ref().expect("computed when a row truncates");
                (Some(&t.0), Some(&t.1))
            } else {
                (ids_plain.as_ref(), lp_plain.as_ref())
            };
            let (ids, lps) = (ids.expect("computed"), lps.expect("computed"));
            SampledToken {
                id: ids[r] as u32,
                logprob: lps[r].elem(),
            }
        })
        .collect()
}
