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

/// `x·W` for `x` `[batch, tokens, k]` and `W` `[k, n]`. The activations are flattened to
/// `[batch·tokens, k]` rather than `W` lifted to 3-D: Burn ndarray 0.21 copies every array it
/// reshapes, so lifting `W` copied the whole weight on every call (and autodiff kept the copy
/// until the backward pass: about one more copy of the model per training forward).
pub fn linear<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>) -> Tensor<B, 3> {
    let [b, t, k] = x.dims();
    let n = weight.dims()[1];
    x.reshape([b * t, k]).matmul(weight).reshape([b, t, n])
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

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use burn::tensor::{Tensor, TensorData};

    use crate::kernels::host::with_f32_values;

    type B = NdArray<f32>;

    fn address(t: &Tensor<B, 2>) -> usize {
        with_f32_values(t, false, |s| s.as_ptr() as usize).expect("a contiguous f32 tensor")
    }

    /// Why [`super::linear`] reshapes the activations and never the weight.
    #[test]
    fn burn_ndarray_copies_what_it_reshapes() {
        let device = Default::default();
        let w = Tensor::<B, 2>::ones([64, 32], &device);
        let round_trip = w.clone().unsqueeze::<3>().reshape([64, 32]);
        assert_ne!(
            address(&w),
            address(&round_trip),
            "Burn ndarray now reshapes without copying; lifting weights to 3-D is free again"
        );
        // A clone shares the values.
        assert_eq!(address(&w), address(&w.clone()));
    }

    #[test]
    fn linear_is_the_batched_product() {
        let device = Default::default();
        let x: Vec<f32> = (0..2 * 3 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..4 * 5).map(|i| (i as f32 * 0.11).cos()).collect();
        let x = Tensor::<B, 3>::from_data(TensorData::new(x, [2, 3, 4]), &device);
        let w = Tensor::<B, 2>::from_data(TensorData::new(w, [4, 5]), &device);
        let got: Vec<f32> = super::linear(x.clone(), w.clone())
            .to_data()
            .to_vec()
            .unwrap();
        let xs: Vec<f32> = x.to_data().to_vec().unwrap();
        let ws: Vec<f32> = w.to_data().to_vec().unwrap();
        for row in 0..6 {
            for col in 0..5 {
                let want: f32 = (0..4).map(|i| xs[row * 4 + i] * ws[i * 5 + col]).sum();
                assert!((got[row * 5 + col] - want).abs() < 1e-5, "{row},{col}");
            }
        }
    }
}
