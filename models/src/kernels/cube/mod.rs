//! The CubeCL side: kernels written once for every CubeCL runtime compiled in (CUDA, wgpu), and
//! the bridge from generic Burn tensors to the runtime's own tensors.
//!
//! A Burn tensor of backend `B` is handed to a kernel when `B`'s float primitive is a
//! `CubeTensor` of a compiled runtime and holds f32, f16 or bf16; anything else (ndarray,
//! autodiff wrappers) is declined with `None` and the caller runs the stock ops. The kernels
//! read and write the tensors' own float type and compute in f32 (sums, dot products, softmax);
//! sampling takes f32 logits only (the engine converts them first).

mod bridge;
mod cube_reduce;
mod paged_attention;
mod quantized_matmul;
mod rms_norm;
mod rope;
mod sampling;

pub use bridge::is_cube_backend;

/// A grid of at least `cubes` cubes that stays within every runtime's per-axis limit (65 535);
/// kernels index cubes by `CUBE_POS` and leave extra cubes idle.
fn cube_count(cubes: usize) -> cubecl::prelude::CubeCount {
    let x = cubes.clamp(1, 65_535);
    cubecl::prelude::CubeCount::Static(x as u32, cubes.div_ceil(x) as u32, 1)
}

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use bridge::{run_float, CubeWork};

/// RMSNorm kernel: one cube per row, a shared-memory sum of squares.
pub fn rms_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, D>> {
    let dims = x.dims();
    run_float::<B, D>(
        dims,
        CubeWork::RmsNorm {
            x: x.clone().reshape([-1]),
            weight: weight.clone(),
            dim: dims[D - 1],
            eps,
        },
    )
}

/// Fused rotate-half RoPE: one unit per pair of rotated elements.
pub fn rope<B: Backend>(
    x: &Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Option<Tensor<B, 4>> {
    let dims = x.dims();
    let [b, _, t, d] = dims;
    if cos.dims() != [b, 1, t, d] || sin.dims() != [b, 1, t, d] || d % 2 != 0 {
        return None;
    }
    run_float::<B, 4>(
        dims,
        CubeWork::Rope {
            x: x.clone(),
            cos: cos.clone(),
            sin: sin.clone(),
        },
    )
}

/// Paged attention kernel: one cube per (row, head, query token), keys split across the units
/// of the cube with an online softmax each, merged in shared memory.
pub fn paged_attention<B: Backend>(
    q: &Tensor<B, 4>,
    k_cache: &Tensor<B, 2>,
    v_cache: &Tensor<B, 2>,
    block_tables: &Tensor<B, 2, Int>,
    visible: &Tensor<B, 2, Int>,
    block_size: usize,
) -> Option<Tensor<B, 4>> {
    let dims = q.dims();
    let [b, heads, t, d] = dims;
    let width = k_cache.dims()[1];
    let supported = d > 0
        && d <= paged_attention::MAX_HEAD_DIM
        && width.is_multiple_of(d)
        && width > 0
        && heads.is_multiple_of(width / d)
        && v_cache.dims() == k_cache.dims()
        && visible.dims() == [b, t]
        && block_tables.dims()[0] == b
        && block_size > 0;
    if !supported {
        return None;
    }
    run_float::<B, 4>(
        dims,
        CubeWork::PagedAttention {
            q: q.clone(),
            k_cache: k_cache.clone(),
            v_cache: v_cache.clone(),
            block_tables: block_tables.clone(),
            visible: visible.clone(),
            block_size,
        },
    )
}

/// Sampling kernel: one cube per row; see [`crate::kernels::sample`], which checks the shapes.
pub(crate) fn sample<B: Backend>(
    logits: &Tensor<B, 2>,
    params: &Tensor<B, 2>,
) -> Option<Tensor<B, 2>> {
    let rows = logits.dims()[0];
    run_float::<B, 2>(
        [rows, 2],
        CubeWork::Sample {
            logits: logits.clone(),
            params: params.clone(),
        },
    )
}

/// Quantized product kernel for up to 16 rows: one cube per output column; see
/// [`crate::kernels::quantized_linear`].
pub fn quantized_matmul<B: Backend>(
    x: &Tensor<B, 2>,
    w: &crate::kernels::quantized::DeviceBlocks<B>,
    format: crate::quantized::QuantFormat,
) -> Option<Tensor<B, 2>> {
    let [m, k] = x.dims();
    let [n, scales] = w.scales.dims();
    let blocks = scales / format.scales_per_block();
    if m == 0 || m > quantized_matmul::MAX_ROWS || blocks * crate::gguf::dequant::BLOCK != k {
        return None;
    }
    run_float::<B, 2>(
        [m, n],
        CubeWork::QuantizedMatmul {
            x: x.clone(),
            scales: w.scales.clone(),
            mins: w.mins.clone(),
            codes: w.codes.clone(),
            format,
        },
    )
}
