//! Root-mean-square layer norm: `x / sqrt(mean(x²) + ε) · w`, over the last dimension.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// `[dim]`.
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    pub fn new(weight: Tensor<B, 1>, eps: f64) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            eps,
        }
    }

    /// Normalizes over the last dimension of a tensor of any rank.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mean_square = x.clone().powi_scalar(2).mean_dim(D - 1);
        // A true division: Burn ndarray's SIMD `recip` is an approximation (~5e-5 relative).
        let rms = (mean_square + self.eps).sqrt();
        x / rms * self.weight.val().unsqueeze::<D>()
    }
}

/// The obvious scalar reference, row by row.
pub fn rms_norm_reference(x: &[f32], dim: usize, weight: &[f32], eps: f64) -> Vec<f32> {
    x.chunks(dim)
        .flat_map(|row| {
            let ms = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / dim as f64;
            let inv = 1.0 / (ms + eps).sqrt();
            row.iter()
                .zip(weight)
                .map(move |(v, w)| (*v as f64 * inv) as f32 * w)
        })
        .collect()
}
