//! From generic Burn tensors to `CubeTensor`s of a concrete runtime and back.
//!
//! Burn 0.21 backends are types; whether `B` is a CubeCL backend is answered by comparing the
//! type of its float primitive with `CubeTensor<R>` for each runtime compiled in, and the
//! primitives are moved across with `Any` (no unsafe code).

use std::any::TypeId;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorPrimitive};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;

use crate::kernels::{cast, poison_outputs};

fn is_runtime<B: Backend, R: CubeRuntime>() -> bool {
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<CubeTensor<R>>()
        && TypeId::of::<B::IntTensorPrimitive>() == TypeId::of::<CubeTensor<R>>()
}

/// Whether `B` is a CubeCL backend of a runtime compiled into this build.
pub fn is_cube_backend<B: Backend>() -> bool {
    #[cfg(feature = "cuda")]
    if is_runtime::<B, cubecl::cuda::CudaRuntime>() {
        return true;
    }
    #[cfg(feature = "wgpu")]
    if is_runtime::<B, cubecl::wgpu::WgpuRuntime>() {
        return true;
    }
    false
}

/// What to launch, with its Burn-side inputs.
pub enum CubeWork<B: Backend> {
    RmsNorm {
        /// Flattened input.
        x: Tensor<B, 1>,
        weight: Tensor<B, 1>,
        dim: usize,
        eps: f64,
    },
    Rope {
        x: Tensor<B, 4>,
        cos: Tensor<B, 4>,
        sin: Tensor<B, 4>,
    },
    PagedAttention {
        q: Tensor<B, 4>,
        k_cache: Tensor<B, 2>,
        v_cache: Tensor<B, 2>,
        block_tables: Tensor<B, 2, Int>,
        visible: Tensor<B, 2, Int>,
        block_size: usize,
    },
    Sample {
        logits: Tensor<B, 2>,
        params: Tensor<B, 2>,
    },
    QuantizedMatmul {
        x: Tensor<B, 2>,
        scales: Tensor<B, 2>,
        mins: Tensor<B, 2>,
        codes: Tensor<B, 2, Int>,
        format: crate::quantized::QuantFormat,
    },
}

/// Runs `work` on the runtime of `B`, writing a fresh output of shape `dims` in the float type
/// of the main input; `None` when `B` is not a CubeCL backend, when the float tensors are not
/// all of that type, or when the work needs f32 and has other tensors (sampling writes token
/// ids as floats, exact in f32 only).
/// Half-precision tensors (f16, bf16) are read and written as they are; the kernels compute in
/// f32.
pub fn run_float<B: Backend, const D: usize>(
    dims: [usize; D],
    work: CubeWork<B>,
) -> Option<Tensor<B, D>> {
    #[cfg(feature = "cuda")]
    if is_runtime::<B, cubecl::cuda::CudaRuntime>() {
        return run_on::<B, cubecl::cuda::CudaRuntime, D>(dims, work);
    }
    #[cfg(feature = "wgpu")]
    if is_runtime::<B, cubecl::wgpu::WgpuRuntime>() {
        return run_on::<B, cubecl::wgpu::WgpuRuntime, D>(dims, work);
    }
    let _ = (dims, work);
    None
}

/// The float types the kernels read and write.
fn kernel_float_type(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
}

/// `x` as a tensor of `R`, if its float type is `dtype`.
fn float<B: Backend, R: CubeRuntime, const D: usize>(
    x: Tensor<B, D>,
    dtype: DType,
) -> Option<CubeTensor<R>> {
    match x.into_primitive() {
        TensorPrimitive::Float(p) => cast::<B::FloatTensorPrimitive, CubeTensor<R>>(p)
            .ok()
            .filter(|t| t.dtype == dtype),
        TensorPrimitive::QFloat(_) => None,
    }
}

fn int<B: Backend, R: CubeRuntime, const D: usize>(x: Tensor<B, D, Int>) -> Option<CubeTensor<R>> {
    cast::<B::IntTensorPrimitive, CubeTensor<R>>(x.into_primitive()).ok()
}

fn back<B: Backend, R: CubeRuntime, const D: usize>(x: CubeTensor<R>) -> Option<Tensor<B, D>> {
    cast::<CubeTensor<R>, B::FloatTensorPrimitive>(x)
        .ok()
        .map(|p| Tensor::from_primitive(TensorPrimitive::Float(p)))
}

fn run_on<B: Backend, R: CubeRuntime, const D: usize>(
    dims: [usize; D],
    work: CubeWork<B>,
) -> Option<Tensor<B, D>> {
    // The output takes the float type of the main input.
    let (device, dtype) = match &work {
        CubeWork::RmsNorm { x, .. } => (x.device(), x.dtype()),
        CubeWork::Rope { x, .. } => (x.device(), x.dtype()),
        CubeWork::PagedAttention { q, .. } => (q.device(), q.dtype()),
        CubeWork::Sample { logits, .. } => (logits.device(), logits.dtype()),
        CubeWork::QuantizedMatmul { x, .. } => (x.device(), x.dtype()),
    };
    let needs_f32 = matches!(work, CubeWork::Sample { .. });
    if !kernel_float_type(dtype) || (needs_f32 && dtype != DType::F32) {
        return None;
    }
    // A 1-D allocation is always contiguous; reshaping it keeps it so.
    let numel: usize = dims.iter().product();
    let out = if poison_outputs() {
        Tensor::<B, 1>::full([numel], f32::NAN, (&device, dtype))
    } else {
        Tensor::<B, 1>::empty([numel], (&device, dtype))
    };
    let out = float::<B, R, D>(out.reshape(dims), dtype)?;
    let out = match work {
        CubeWork::RmsNorm {
            x,
            weight,
            dim,
            eps,
        } => super::rms_norm::launch(
            float::<B, R, 1>(x, dtype)?,
            float::<B, R, 1>(weight, dtype)?,
            dim,
            eps,
            out,
        ),
        CubeWork::Rope { x, cos, sin } => super::rope::launch(
            float::<B, R, 4>(x, dtype)?,
            float::<B, R, 4>(cos, dtype)?,
            float::<B, R, 4>(sin, dtype)?,
            out,
        ),
        CubeWork::PagedAttention {
            q,
            k_cache,
            v_cache,
            block_tables,
            visible,
            block_size,
        } => super::paged_attention::launch(
            float::<B, R, 4>(q, dtype)?,
            float::<B, R, 2>(k_cache, dtype)?,
            float::<B, R, 2>(v_cache, dtype)?,
            int::<B, R, 2>(block_tables)?,
            int::<B, R, 2>(visible)?,
            block_size,
            out,
        ),
        CubeWork::Sample { logits, params } => super::sampling::launch(
            float::<B, R, 2>(logits, dtype)?,
            float::<B, R, 2>(params, dtype)?,
            out,
        ),
        CubeWork::QuantizedMatmul {
            x,
            scales,
            mins,
            codes,
            format,
        } => super::quantized_matmul::launch(
            float::<B, R, 2>(x, dtype)?,
            float::<B, R, 2>(scales, DType::F32)?,
            float::<B, R, 2>(mins, DType::F32)?,
            int::<B, R, 2>(codes)?,
            format,
            out,
        ),
    };
    back::<B, R, D>(out)
}
