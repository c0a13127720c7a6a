//! Paged attention as one kernel, for decode and ragged prefill alike.
//!
//! A cube per (row, query head, query token). Its units take the visible keys round-robin,
//! find each key's slot through the row's block table, and keep an online softmax (running
//! max, running sum, weighted value accumulator in registers). The partial states meet in
//! shared memory, where each unit finishes some of the output dimensions. Grouped-query heads
//! read their key/value head directly: no copies of the cache.

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

/// Units per cube.
const THREADS: usize = 32;
/// Largest head size the register accumulators are compiled for.
pub const MAX_HEAD_DIM: usize = 256;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn paged_attention_kernel<F: Float, I: Numeric>(
    q: &Tensor<F>,
    k_cache: &Tensor<F>,
    v_cache: &Tensor<F>,
    block_tables: &Tensor<I>,
    visible: &Tensor<I>,
    out: &mut Tensor<F>,
    block_size: u32,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] threads: usize,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let heads = q.shape(1);
    let tokens = q.shape(2);
    let query = CUBE_POS;
    if query * head_dim >= q.len() {
        terminate!();
    }
    let t = query % tokens;
    let bh = query / tokens;
    let h = bh % heads;
    let b = bh / heads;
    let width = k_cache.shape(1);
    let group = heads / (width / head_dim);
    let kv_offset = (h / group) * head_dim;
    let bs = block_size as usize;
    let max_blocks = block_tables.shape(1);
    let n = u32::cast_from(visible[b * tokens + t]) as usize;
    let q_offset = query * head_dim;
    let neg = f32::new(-1.0e30);

    let mut qv = Array::<f32>::new(head_dim);
    let mut acc = Array::<f32>::new(head_dim);
    #[unroll]
    for e in 0..head_dim {
        qv[e] = f32::cast_from(q[q_offset + e]) * scale;
        acc[e] = f32::new(0.0);
    }
    let mut m = neg;
    let mut l = f32::new(0.0);
    let tid = UNIT_POS_X as usize;
    let mut j = tid;
    while j < n {
        let block = u32::cast_from(block_tables[b * max_blocks + j / bs]) as usize;
        let base = (block * bs + j % bs) * width + kv_offset;
        let mut dot = f32::new(0.0);
        #[unroll]
        for e in 0..head_dim {
            dot += qv[e] * f32::cast_from(k_cache[base + e]);
        }
        let m_new = m.max(dot);
        let correction = (m - m_new).exp();
        let p = (dot - m_new).exp();
        l = l * correction + p;
        #[unroll]
        for e in 0..head_dim {
            acc[e] = acc[e] * correction + p * f32::cast_from(v_cache[base + e]);
        }
        m = m_new;
        j += threads;
    }

    let mut shared_m = SharedMemory::<f32>::new(threads);
    let mut shared_l = SharedMemory::<f32>::new(threads);
    let mut shared_acc = SharedMemory::<f32>::new(threads * head_dim);
    shared_m[tid] = m;
    shared_l[tid] = l;
    #[unroll]
    for e in 0..head_dim {
        shared_acc[tid * head_dim + e] = acc[e];
    }
    sync_cube();

    let mut e = tid;
    while e < head_dim {
        let mut big = neg;
        for i in 0..threads {
            big = big.max(shared_m[i]);
        }
        let mut total = f32::new(0.0);
        let mut o = f32::new(0.0);
        for i in 0..threads {
            let w = (shared_m[i] - big).exp();
            total += shared_l[i] * w;
            o += shared_acc[i * head_dim + e] * w;
        }
        let mut value = f32::new(0.0);
        if total > f32::new(0.0) {
            value = o / total;
        }
        out[q_offset + e] = F::cast_from(value);
        e += threads;
    }
}

/// Shapes as in [`crate::kernels::paged_attention`]; `out` contiguous like `q`.
pub fn launch<R: CubeRuntime>(
    q: CubeTensor<R>,
    k_cache: CubeTensor<R>,
    v_cache: CubeTensor<R>,
    block_tables: CubeTensor<R>,
    visible: CubeTensor<R>,
    block_size: usize,
    out: CubeTensor<R>,
) -> CubeTensor<R> {
    let q = into_contiguous(q);
    let k_cache = into_contiguous(k_cache);
    let v_cache = into_contiguous(v_cache);
    let block_tables = into_contiguous(block_tables);
    let visible = into_contiguous(visible);
    let shape = q.meta.shape().clone();
    let head_dim = shape[3];
    let queries = (shape[0] * shape[1] * shape[2]) as u32;
    let client = q.client.clone();
    let float = q.dtype;
    let int = block_tables.dtype;
    if queries > 0 {
        paged_attention_kernel::launch::<R>(
            &client,
            super::cube_count(queries as usize),
            CubeDim::new_1d(THREADS as u32),
            q.into_tensor_arg(),
            k_cache.into_tensor_arg(),
            v_cache.into_tensor_arg(),
            block_tables.into_tensor_arg(),
            visible.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            block_size as u32,
            (1.0 / (head_dim as f64).sqrt()) as f32,
            head_dim,
            THREADS,
            [float.into(), int.into()],
        );
    }
    out
}
