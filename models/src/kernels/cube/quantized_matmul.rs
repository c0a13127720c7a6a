//! `x·Wᵀ` with `W` kept in a block format (Q8_0, Q4_1, Q6_K) on the device: the decode-time
//! product of a few rows with a quantized weight, reading each weight block once.
//!
//! A cube per output column (a row of `W`). Its units take the column's blocks round-robin:
//! each unit unpacks a block's codes into 32 registers (`d·q`, `d·q + m`, or for Q6_K `d_h·q`
//! with one scale per half of 16 values), then adds the
//! block's dot product with every row of `x` to that row's accumulator. The units' partial
//! sums meet in shared memory. Layout and values: [`crate::quantized`]; definition:
//! [`crate::kernels::reference::quantized_matmul`].

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use crate::gguf::dequant::BLOCK;
use crate::quantized::QuantFormat;

/// Units per cube.
const THREADS: usize = 32;
/// Most rows of `x` one launch takes (the accumulators are sized for it).
pub const MAX_ROWS: usize = 16;

/// Byte `b` of `word` read as a two's-complement `i8`.
#[cube]
fn signed_byte(word: u32, b: u32) -> f32 {
    let byte = (word >> (8 * b)) & 255u32;
    let mut q = f32::cast_from(byte);
    if byte >= 128u32 {
        q -= f32::new(256.0);
    }
    q
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn quantized_matmul_kernel<F: Float, S: Float, I: Numeric>(
    x: &Tensor<F>,
    scales: &Tensor<S>,
    mins: &Tensor<S>,
    codes: &Tensor<I>,
    out: &mut Tensor<F>,
    #[comptime] q4_1: bool,
    #[comptime] scales_per_block: usize,
    #[comptime] threads: usize,
    #[comptime] max_rows: usize,
    #[define(F, S, I)] _dtypes: [StorageType; 3],
) {
    let rows = x.shape(0);
    let k = x.shape(1);
    let n = scales.shape(0);
    let blocks = scales.shape(1) / scales_per_block;
    let col = CUBE_POS;
    if col >= n {
        terminate!();
    }
    let tid = UNIT_POS_X as usize;
    let mut acc = Array::<f32>::new(max_rows);
    #[unroll]
    for r in 0..max_rows {
        acc[r] = f32::new(0.0);
    }
    let mut values = Array::<f32>::new(BLOCK);
    let mut blk = tid;
    while blk < blocks {
        let at = col * blocks + blk;
        // The first half's scale and the second's (the same one unless Q6_K).
        let d = f32::cast_from(scales[at * scales_per_block]);
        let d_high = f32::cast_from(scales[at * scales_per_block + scales_per_block - 1]);
        if q4_1 {
            let m = f32::cast_from(mins[at]);
            #[unroll]
            for w in 0..4usize {
                let word = u32::cast_from(codes[at * 4 + w]);
                #[unroll]
                for b in 0..4usize {
                    let byte = (word >> (8 * b as u32)) & 255u32;
                    values[4 * w + b] = d * f32::cast_from(byte & 15u32) + m;
                    values[16 + 4 * w + b] = d * f32::cast_from(byte >> 4u32) + m;
                }
            }
        } else {
            // Words 0..4 hold the first 16 codes, words 4..8 the second.
            #[unroll]
            for w in 0..4usize {
                let low = u32::cast_from(codes[at * 8 + w]);
                let high = u32::cast_from(codes[at * 8 + 4 + w]);
                #[unroll]
                for b in 0..4usize {
                    values[4 * w + b] = d * signed_byte(low, b as u32);
                    values[16 + 4 * w + b] = d_high * signed_byte(high, b as u32);
                }
            }
        }
        let base = blk * BLOCK;
        for r in 0..rows {
            let row = r * k + base;
            let mut dot = f32::new(0.0);
            #[unroll]
            for i in 0..BLOCK {
                dot += values[i] * f32::cast_from(x[row + i]);
            }
            acc[r] += dot;
        }
        blk += threads;
    }

    let mut partial = SharedMemory::<f32>::new(threads * max_rows);
    #[unroll]
    for r in 0..max_rows {
        partial[r * threads + tid] = acc[r];
    }
    sync_cube();
    if tid < rows {
        let mut total = f32::new(0.0);
        for u in 0..threads {
            total += partial[tid * threads + u];
        }
        out[tid * n + col] = F::cast_from(total);
    }
}

/// `x` `[m, k]` (m ≤ [`MAX_ROWS`]), `scales` `[n, k/32 · scales per block]`, `mins`
/// `[n, k/32]` (unused but for Q4_1; f32
/// whatever `x`'s float type, so that half-precision models keep GGUF's scales exactly),
/// `codes` `[n, k/32 · words]`; `out` contiguous `[m, n]` in `x`'s float type.
pub fn launch<R: CubeRuntime>(
    x: CubeTensor<R>,
    scales: CubeTensor<R>,
    mins: CubeTensor<R>,
    codes: CubeTensor<R>,
    format: QuantFormat,
    out: CubeTensor<R>,
) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let scales = into_contiguous(scales);
    let mins = into_contiguous(mins);
    let codes = into_contiguous(codes);
    let n = scales.meta.shape()[0];
    let client = x.client.clone();
    let float = x.dtype;
    let scale = scales.dtype;
    let int = codes.dtype;
    if n > 0 && x.meta.shape()[0] > 0 {
        quantized_matmul_kernel::launch::<R>(
            &client,
            super::cube_count(n),
            CubeDim::new_1d(THREADS as u32),
            x.into_tensor_arg(),
            scales.into_tensor_arg(),
            mins.into_tensor_arg(),
            codes.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            format == QuantFormat::Q4_1,
            format.scales_per_block(),
            THREADS,
            MAX_ROWS,
            [float.into(), scale.into(), int.into()],
        );
    }
    out
}
