//! The same operations as chains of Burn's own tensor ops: what every backend without a custom
//! kernel runs (and what autodiff differentiates), and the baseline the kernels are measured
//! against.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// `x / sqrt(mean(x²) + ε) · weight` over the last dimension.
pub fn rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    let mean_square = x.clone().powi_scalar(2).mean_dim(D - 1);
    // A true division: Burn ndarray's SIMD `recip` is an approximation (~5e-5 relative).
    let rms = (mean_square + eps).sqrt();
    x / rms * weight.unsqueeze::<D>()
}

/// Rotate-half RoPE: `x·cos + (−x₂, x₁)·sin`.
pub fn rope<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, h, t, d] = x.dims();
    let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..d / 2]);
    let x2 = x.clone().slice([0..b, 0..h, 0..t, d / 2..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// `x·W` for `x` `[batch, tokens, k]` and `W` `[k, n]`.
pub fn linear<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>) -> Tensor<B, 3> {
    x.matmul(weight.unsqueeze::<3>())
}

/// `x·Wᵀ` for `x` `[batch, tokens, k]` and `W` `[n, k]`. Computed as `W·xᵀ` so that the large
/// `W` stays in its stored layout (multiplying by a transposed view of it would copy it on every
/// call).
pub fn linear_transposed<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>) -> Tensor<B, 3> {
    let [b, t, d] = x.dims();
    let flat = x.reshape([b * t, d]);
    let y = weight.matmul(flat.transpose());
    let n = y.dims()[0];
    y.transpose().reshape([b, t, n])
}
