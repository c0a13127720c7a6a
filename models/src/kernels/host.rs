//! The CPU side: Burn tensors of the ndarray backend handed to host kernels ([`super::skinny`],
//! [`super::skinny_quantized`], [`super::host_sampling`]) without copying the weights.
//!
//! As for the GPU kernels, the backend is recognised from the type of its float primitive; an
//! autodiff backend (training) has a different primitive and keeps Burn's own ops, so gradients
//! never see these kernels.

use std::any::TypeId;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_ndarray::NdArrayTensor;

use super::cast;
use super::reference::SampleParams;
use super::skinny::{self, WeightLayout};

/// Whether `B` is the ndarray backend (the host kernels apply to it).
pub fn is_ndarray<B: Backend>() -> bool {
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<NdArrayTensor>()
}

/// `x` `[m, k]` times the weight `w` (`[k, n]` or `[n, k]` per `layout`) through the skinny
/// kernel; `None` unless `B` is ndarray with f32 tensors, `m ≤ MAX_ROWS` and the weight is
/// stored contiguously.
pub fn skinny_matmul<B: Backend>(
    x: &Tensor<B, 2>,
    w: &Tensor<B, 2>,
    layout: WeightLayout,
) -> Option<Tensor<B, 2>> {
    if !is_ndarray::<B>() {
        return None;
    }
    let [m, k] = x.dims();
    let [rows, cols] = w.dims();
    let n = match layout {
        WeightLayout::InOut if rows == k => cols,
        WeightLayout::OutIn if cols == k => rows,
        _ => return None,
    };
    if m == 0 || m > skinny::MAX_ROWS {
        return None;
    }
    // `x` is read in place: `to_data` of a tensor that is still referenced copies it value by
    // value through a dynamic-rank iterator, which costs more than the product on long inputs.
    let y = with_f32_values(x, true, |x_host| {
        with_f32_values(w, false, |w_host| {
            skinny::matmul(x_host, m, k, w_host, n, layout)
        })
    })??;
    Some(Tensor::from_data(TensorData::new(y, [m, n]), &x.device()))
}

/// Runs `f` on the values of an ndarray f32 tensor in row-major order, read in place when they
/// are stored contiguously (else copied once, if `copy_if_strided`). `None` unless `B` is
/// ndarray with f32 tensors.
pub(crate) fn with_f32_values<B: Backend, const D: usize, R>(
    t: &Tensor<B, D>,
    copy_if_strided: bool,
    f: impl FnOnce(&[f32]) -> R,
) -> Option<R> {
    let TensorPrimitive::Float(primitive) = t.clone().into_primitive() else {
        return None;
    };
    let tensor: NdArrayTensor = cast(primitive).ok()?;
    let NdArrayTensor::F32(storage) = &tensor else {
        return None;
    };
    let view = storage.view();
    if let Some(values) = view.as_slice() {
        return Some(f(values));
    }
    if !copy_if_strided {
        return None;
    }
    // One copy per run along the last axis: a value-by-value walk of a dynamic-rank view
    // costs several times more.
    let mut values = Vec::with_capacity(view.len());
    if view.ndim() == 0 {
        values.extend(view.iter().copied());
    } else {
        for lane in view.lanes(ndarray::Axis(view.ndim() - 1)) {
            match lane.as_slice() {
                Some(run) => values.extend_from_slice(run),
                None => values.extend(lane.iter().copied()),
            }
        }
    }
    Some(f(&values))
}

/// One token per row of `logits` through the host sampling kernel ([`super::host_sampling`]):
/// `[rows, 2]` of (token id, log-prob) as [`super::sample`] returns them (which checks the
/// shapes); `None` unless `B` is ndarray with f32 logits.
pub(crate) fn sample<B: Backend>(
    logits: &Tensor<B, 2>,
    params: &Tensor<B, 2>,
) -> Option<Tensor<B, 2>> {
    if !is_ndarray::<B>() {
        return None;
    }
    let [rows, vocab] = logits.dims();
    let params_data = params.to_data();
    let rows_params: Vec<SampleParams> = params_data
        .as_slice::<f32>()
        .ok()?
        .chunks_exact(SampleParams::WIDTH)
        .map(SampleParams::from_row)
        .collect();
    // The logits are read where they lie: a copy of a batch of vocabulary-wide rows costs
    // more than the sampling.
    let sampled = with_f32_values(logits, true, |values| {
        super::host_sampling::sample_rows(values, vocab, &rows_params)
    })?;
    let out: Vec<f32> = sampled
        .into_iter()
        .flat_map(|(id, logprob)| [id as f32, logprob as f32])
        .collect();
    Some(Tensor::from_data(
        TensorData::new(out, [rows, 2]),
        &logits.device(),
    ))
}

/// `x` `[m, k]` times a quantized weight `[n, k]` transposed, through the host kernel; `None`
/// unless `B` is ndarray with f32 tensors.
pub fn quantized_matmul<B: Backend>(
    x: &Tensor<B, 2>,
    w: &crate::quantized::QuantizedBlocks,
) -> Option<Tensor<B, 2>> {
    if !is_ndarray::<B>() {
        return None;
    }
    let [m, k] = x.dims();
    if k != w.cols {
        return None;
    }
    // Read in place, as in `skinny_matmul`.
    let y = with_f32_values(x, true, |x_host| match super::host_activations() {
        super::HostActivations::F32 => super::skinny_quantized::matmul(x_host, m, w),
        super::HostActivations::Int8 => {
            let x_q8 = super::int8_dot::Q8Activations::quantize(x_host, m, k);
            super::int8_dot::matmul(&x_q8, w)
        }
    })?;
    Some(Tensor::from_data(
        TensorData::new(y, [m, w.rows]),
        &x.device(),
    ))
}
