//! Token sampling as one kernel: a cube per row of logits, nothing but the sampled id and its
//! log-probability written back.
//!
//! The units of a cube stride over the vocabulary for the row's maximum (first index on ties)
//! and its partition function. A row that truncates (top-k, top-p) finds the smallest kept
//! logit by bisection on a threshold: the number of tokens above it and their mass are both
//! monotone in the threshold, so no sort is needed. The draw is an inverse CDF over the kept
//! tokens in vocabulary order: each unit owns a contiguous chunk, the chunk masses are summed
//! in shared memory, and the one unit whose chunk holds the target scans it and writes the row.
//! Semantics: [`crate::kernels::reference::sample`].

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::cube_reduce::reduce_over_cube;
use crate::kernels::reference::SampleParams;

/// Units per cube (a power of two).
const THREADS: usize = 256;
/// Halvings of the threshold interval; the interval spans the row's scaled logits, so this
/// takes it below the spacing of f32 values there.
const BISECTION_STEPS: u32 = 48;

/// Whether token value `s` (scaled logit) with weight `e = exp(s − max)` is kept.
#[cube]
fn is_kept<F: Float>(s: F, e: F, threshold: F, min_p: F, max: F) -> bool {
    s >= threshold && (e >= min_p || s >= max)
}

#[cube(launch)]
#[allow(clippy::manual_div_ceil)] // the cube macro translates plain arithmetic only
fn sample_kernel<F: Float>(
    logits: &Tensor<F>,
    params: &Tensor<F>,
    out: &mut Tensor<F>,
    #[comptime] threads: usize,
    #[define(F)] _dtype: StorageType,
) {
    let rows = logits.shape(0);
    let vocab = logits.shape(1);
    let row = CUBE_POS;
    if row >= rows {
        terminate!();
    }
    let tid = UNIT_POS_X as usize;
    let base = row * vocab;
    let p = row * 5;
    let temperature = params[p];
    let greedy = temperature <= F::new(0.0);
    let mut inv_t = F::new(1.0);
    if !greedy {
        inv_t = F::new(1.0) / temperature;
    }
    let top_k = params[p + 1];
    let top_p = params[p + 2];
    let min_p = params[p + 3];
    let uniform = params[p + 4];

    // Maximum (first index on ties) and minimum of the scaled logits.
    let mut best = F::new(-3.0e38);
    let mut best_i = 0u32;
    let mut low = F::new(3.0e38);
    let mut i = tid;
    while i < vocab {
        let s = logits[base + i] * inv_t;
        if s > best {
            best = s;
            best_i = i as u32;
        }
        low = low.min(s);
        i += threads;
    }
    let mut values = SharedMemory::<F>::new(threads);
    let mut indices = SharedMemory::<u32>::new(threads);
    let mut lows = SharedMemory::<F>::new(threads);
    values[tid] = best;
    indices[tid] = best_i;
    lows[tid] = low;
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if tid < stride {
            let v = values[tid + stride];
            let j = indices[tid + stride];
            if v > values[tid] || (v == values[tid] && j < indices[tid]) {
                values[tid] = v;
                indices[tid] = j;
            }
            lows[tid] = lows[tid].min(lows[tid + stride]);
        }
        sync_cube();
        stride /= 2;
    }
    let max = values[0];
    let argmax = indices[0];
    let min = lows[0];
    sync_cube();

    let mut z = F::new(0.0);
    let mut i = tid;
    while i < vocab {
        z += (logits[base + i] * inv_t - max).exp();
        i += threads;
    }
    let z = reduce_over_cube::<F>(&mut values, z, false);

    if greedy {
        if tid == 0 {
            out[row * 2] = F::cast_from(argmax);
            out[row * 2 + 1] = F::new(0.0) - z.ln();
        }
        terminate!();
    }

    // Threshold from top-k and top-p: P(τ) = (#{s > τ} < k) ∧ (mass{s > τ} < top_p·z) holds
    // for large τ; the kept tokens are those at or above the smallest τ where it holds.
    let mut k_limit = F::cast_from(vocab as u32) + F::new(1.0);
    if top_k > F::new(0.0) {
        k_limit = top_k;
    }
    let mut threshold = min;
    if k_limit <= F::cast_from(vocab as u32) || top_p < F::new(1.0) {
        let mut lo = min - F::new(1.0);
        let mut hi = max;
        for _step in 0..BISECTION_STEPS {
            let mid = (lo + hi) * F::new(0.5);
            let mut count = F::new(0.0);
            let mut mass = F::new(0.0);
            let mut i = tid;
            while i < vocab {
                let s = logits[base + i] * inv_t;
                if s > mid {
                    count += F::new(1.0);
                    mass += (s - max).exp();
                }
                i += threads;
            }
            let count = reduce_over_cube::<F>(&mut values, count, false);
            let mass = reduce_over_cube::<F>(&mut lows, mass, false);
            if count < k_limit && mass < top_p * z {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        // The boundary is a token's value in (lo, hi]: snap to the smallest value above lo, so
        // that a threshold the bisection left a hair above it does not drop that token.
        let mut snap = hi;
        let mut i = tid;
        while i < vocab {
            let s = logits[base + i] * inv_t;
            if s > lo {
                snap = snap.min(s);
            }
            i += threads;
        }
        threshold = reduce_over_cube::<F>(&mut lows, snap, true);
    }

    // Kept mass of each unit's contiguous chunk, then the draw.
    let chunk = (vocab + threads - 1) / threads;
    let start = tid * chunk;
    let mut end = start + chunk;
    if end > vocab {
        end = vocab;
    }
    let mut mine = F::new(0.0);
    let mut j = start;
    while j < end {
        let s = logits[base + j] * inv_t;
        let e = (s - max).exp();
        if is_kept::<F>(s, e, threshold, min_p, max) {
            mine += e;
        }
        j += 1;
    }
    values[tid] = mine;
    sync_cube();
    let mut before = F::new(0.0);
    let mut total = F::new(0.0);
    let mut last = 0usize;
    for u in 0..threads {
        let v = values[u];
        if u < tid {
            before += v;
        }
        if v > F::new(0.0) {
            last = u;
        }
        total += v;
    }
    let target = uniform * total;
    let local = target - before;
    let owns = mine > F::new(0.0) && local >= F::new(0.0) && (local < mine || tid == last);
    if owns {
        let mut running = F::new(0.0);
        let mut chosen = start;
        let mut found = false;
        let mut j = start;
        while j < end {
            let s = logits[base + j] * inv_t;
            let e = (s - max).exp();
            if !found && is_kept::<F>(s, e, threshold, min_p, max) {
                running += e;
                chosen = j;
                if running > local {
                    found = true;
                }
            }
            j += 1;
        }
        let s = logits[base + chosen] * inv_t;
        out[row * 2] = F::cast_from(chosen as u32);
        out[row * 2 + 1] = (s - max) - total.ln();
    }
}

/// `logits` `[rows, vocab]`, `params` `[rows, 5]`; `out` contiguous `[rows, 2]`.
pub fn launch<R: CubeRuntime>(
    logits: CubeTensor<R>,
    params: CubeTensor<R>,
    out: CubeTensor<R>,
) -> CubeTensor<R> {
    let logits = into_contiguous(logits);
    let params = into_contiguous(params);
    let rows = logits.meta.shape()[0];
    let client = logits.client.clone();
    let dtype = logits.dtype;
    debug_assert_eq!(params.meta.shape()[1], SampleParams::WIDTH);
    if rows > 0 {
        sample_kernel::launch::<R>(
            &client,
            super::cube_count(rows),
            CubeDim::new_1d(THREADS as u32),
            logits.into_tensor_arg(),
            params.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            THREADS,
            dtype.into(),
        );
    }
    out
}
