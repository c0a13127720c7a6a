//! RMSNorm as one kernel: a cube per row; its units sum squares (in f32) over strided elements,
//! reduce them in shared memory, then scale their elements.

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::cube_reduce::reduce_over_cube;

/// Units per cube (a power of two).
const THREADS: usize = 256;

#[cube(launch)]
fn rms_norm_kernel<F: Float>(
    x: &Tensor<F>,
    weight: &Tensor<F>,
    out: &mut Tensor<F>,
    eps: f32,
    #[comptime] threads: usize,
    #[define(F)] _dtype: StorageType,
) {
    let dim = weight.len();
    let row = CUBE_POS;
    if row * dim >= x.len() {
        terminate!();
    }
    let tid = UNIT_POS_X as usize;
    let base = row * dim;
    let mut sum = f32::new(0.0);
    let mut i = tid;
    while i < dim {
        let v = f32::cast_from(x[base + i]);
        sum += v * v;
        i += threads;
    }
    let mut partial = SharedMemory::<f32>::new(threads);
    let total = reduce_over_cube::<f32>(&mut partial, sum, false);
    let inv = f32::new(1.0) / (total / f32::cast_from(dim as u32) + eps).sqrt();
    let mut i = tid;
    while i < dim {
        out[base + i] = F::cast_from(f32::cast_from(x[base + i]) * inv * f32::cast_from(weight[i]));
        i += threads;
    }
}

/// `x` holds whole rows of `dim` values; `out` is contiguous with as many elements.
pub fn launch<R: CubeRuntime>(
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
    dim: usize,
    eps: f64,
    out: CubeTensor<R>,
) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let weight = into_contiguous(weight);
    let rows = (x.meta.num_elements() / dim.max(1)) as u32;
    let client = x.client.clone();
    let dtype = x.dtype;
    if rows > 0 {
        rms_norm_kernel::launch::<R>(
            &client,
            super::cube_count(rows as usize),
            CubeDim::new_1d(THREADS as u32),
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            eps as f32,
            THREADS,
            dtype.into(),
        );
    }
    out
}
