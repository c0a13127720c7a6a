//! Slow, obvious host implementations (f64 accumulation, plain loops) that the kernels and the
//! stock ops are tested against.

/// Row-wise RMSNorm of `x` (rows of `weight.len()` values).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f64) -> Vec<f32> {
    let dim = weight.len();
    x.chunks(dim)
        .flat_map(|row| {
            let ms = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / dim as f64;
            let inv = 1.0 / (ms + eps).sqrt();
            row.iter()
                .zip(weight)
                .map(move |(v, w)| (*v as f64 * inv * *w as f64) as f32)
        })
        .collect()
}

/// Rotate-half RoPE of `x` `[batch, heads, tokens, d]` with tables `[batch, tokens, d]`.
pub fn rope(x: &[f32], cos: &[f32], sin: &[f32], dims: [usize; 4]) -> Vec<f32> {
    let [batch, heads, tokens, d] = dims;
    let half = d / 2;
    let mut out = vec![0.0; x.len()];
    for b in 0..batch {
        for h in 0..heads {
            for t in 0..tokens {
                let xo = ((b * heads + h) * tokens + t) * d;
                let co = (b * tokens + t) * d;
                for i in 0..d {
                    let rotated = if i < half {
                        -x[xo + i + half]
                    } else {
                        x[xo + i - half]
                    };
                    out[xo + i] = x[xo + i] * cos[co + i] + rotated * sin[co + i];
                }
            }
        }
    }
    out
}

/// The shapes of a paged attention call.
#[derive(Debug, Clone, Copy)]
pub struct PagedShape {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub tokens: usize,
    pub head_dim: usize,
    pub block_size: usize,
}

/// Paged attention, one query at a time: gather the visible keys through the block table,
/// softmax of scaled dot products, weighted sum of values. `q` and the result are
/// `[batch, heads, tokens, head_dim]`; caches are `[slots, kv_heads·head_dim]`;
/// `block_tables[b]` and `visible[b][t]` as in [`crate::kernels::paged_attention`].
#[allow(clippy::needless_range_loop)] // index arithmetic is the point of a reference
pub fn paged_attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    block_tables: &[Vec<usize>],
    visible: &[Vec<usize>],
    shape: PagedShape,
) -> Vec<f32> {
    let PagedShape {
        batch,
        heads,
        kv_heads,
        tokens,
        head_dim: d,
        block_size,
    } = shape;
    let width = kv_heads * d;
    let group = heads / kv_heads;
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0f32; q.len()];
    for b in 0..batch {
        for h in 0..heads {
            let kv = (h / group) * d;
            for t in 0..tokens {
                let qo = ((b * heads + h) * tokens + t) * d;
                let slots: Vec<usize> = (0..visible[b][t])
                    .map(|j| block_tables[b][j / block_size] * block_size + j % block_size)
                    .collect();
                let scores: Vec<f64> = slots
                    .iter()
                    .map(|s| {
                        (0..d)
                            .map(|e| q[qo + e] as f64 * k_cache[s * width + kv + e] as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for e in 0..d {
                    let acc: f64 = slots
                        .iter()
                        .zip(&weights)
                        .map(|(s, w)| w * v_cache[s * width + kv + e] as f64)
                        .sum();
                    out[qo + e] = if total > 0.0 {
                        (acc / total) as f32
                    } else {
                        0.0
                    };
                }
            }
        }
    }
    out
}
