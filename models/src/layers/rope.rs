//! Rotary position embedding in Hugging Face's rotate-half layout: dimension `i` is paired with
//! `i + head_dim/2` (not with its neighbour, as in Burn's `RotaryEncoding`).
//!
//! Tables of cos/sin are precomputed for every position up to `max_position_embeddings`; each
//! row of a batch looks up its own positions, so rows may sit at different offsets.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::config::{ModelConfig, RopeScaling};

#[derive(Module, Debug)]
pub struct Rope<B: Backend> {
    /// `[max_positions, head_dim]`, both halves equal.
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
    pub max_positions: usize,
}

/// Inverse frequencies `θ^(−2i/d)` with the config's scaling applied, computed as transformers
/// computes them (f32).
pub fn inverse_frequencies(config: &ModelConfig) -> Vec<f32> {
    let dim = config.head_dim;
    let base: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0 / (config.rope_theta as f32).powf((2 * i) as f32 / dim as f32))
        .collect();
    match config.rope_scaling {
        RopeScaling::None => base,
        RopeScaling::Linear { factor } => base.iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let low_wavelen = original_max_position_embeddings / low_freq_factor;
            let high_wavelen = original_max_position_embeddings / high_freq_factor;
            base.iter()
                .map(|&f| {
                    let f = f as f64;
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let scaled = if wavelen > low_wavelen {
                        f / factor
                    } else if wavelen < high_wavelen {
                        f
                    } else {
                        let smooth = (original_max_position_embeddings / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    };
                    scaled as f32
                })
                .collect()
        }
    }
}

impl<B: Backend> Rope<B> {
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        let dim = config.head_dim;
        let max = config.max_position_embeddings.max(1);
        let inv = inverse_frequencies(config);
        let mut cos = Vec::with_capacity(max * dim);
        let mut sin = Vec::with_capacity(max * dim);
        for p in 0..max {
            // Both halves of a head share the same frequencies.
            for _half in 0..2 {
                for &f in &inv {
                    let angle = p as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [max, dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [max, dim]), device),
            max_positions: max,
        }
    }

    /// Cos and sin for `positions` `[batch, tokens]`, shaped `[batch, 1, tokens, head_dim]`
    /// to broadcast over heads.
    pub fn tables(&self, positions: Tensor<B, 2, Int>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [batch, tokens] = positions.dims();
        let flat = positions.reshape([batch * tokens]);
        let dim = self.cos.dims()[1];
        let pick = |t: &Tensor<B, 2>| {
            t.clone()
                .select(0, flat.clone())
                .reshape([batch, 1, tokens, dim])
        };
        (pick(&self.cos), pick(&self.sin))
    }

    /// Runs `f` on the cos and sin tables `[max_positions, head_dim]`, read in place; `None`
    /// unless the backend is ndarray with f32 tensors.
    pub(crate) fn with_host_tables<R>(&self, f: impl FnOnce(&[f32], &[f32]) -> R) -> Option<R> {
        use crate::kernels::host::with_f32_values;
        with_f32_values(&self.cos, false, |cos| {
            with_f32_values(&self.sin, false, |sin| f(cos, sin))
        })
        .flatten()
    }

    /// Rotates `x` `[batch, heads, tokens, head_dim]`.
    pub fn apply(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::rope(x, cos, sin)
    }
}

/// Scalar reference: rotate one head vector at one position.
pub fn rope_reference(x: &[f32], position: usize, inv_freq: &[f32]) -> Vec<f32> {
    let half = x.len() / 2;
    let mut out = vec![0.0; x.len()];
    for i in 0..half {
        let angle = position as f32 * inv_freq[i];
        let (s, c) = angle.sin_cos();
        out[i] = x[i] * c - x[i + half] * s;
        out[i + half] = x[i + half] * c + x[i] * s;
    }
    out
}
