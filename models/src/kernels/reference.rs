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

/// `x` `[m, k]` times `w` (`[k, n]`, or `[n, k]` when `transposed`), accumulated in f64.
pub fn matmul(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, transposed: bool) -> Vec<f32> {
    let at = |kk: usize, j: usize| {
        if transposed {
            w[j * k + kk]
        } else {
            w[kk * n + j]
        }
    };
    let mut y = vec![0.0f32; m * n];
    for r in 0..m {
        for j in 0..n {
            let sum: f64 = (0..k)
                .map(|kk| x[r * k + kk] as f64 * at(kk, j) as f64)
                .sum();
            y[r * n + j] = sum as f32;
        }
    }
    y
}

/// How one row of logits is sampled (the layout of the sampling kernel's parameter rows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleParams {
    /// 0: greedy (the log-prob is then that of the temperature-1 distribution).
    pub temperature: f32,
    /// Keep the k most likely tokens; 0: no limit.
    pub top_k: usize,
    /// Keep the most likely tokens while the probability mass before them is below p.
    pub top_p: f32,
    /// Keep tokens at least this fraction as likely as the most likely one.
    pub min_p: f32,
    /// Uniform in [0, 1) that picks the token.
    pub uniform: f32,
}

impl SampleParams {
    /// Values per parameter row of [`crate::kernels::sample`].
    pub const WIDTH: usize = 5;

    /// The parameters of one row as [`Self::row`] lays them out.
    pub fn from_row(row: &[f32]) -> Self {
        SampleParams {
            temperature: row[0],
            top_k: row[1] as usize,
            top_p: row[2],
            min_p: row[3],
            uniform: row[4],
        }
    }

    pub fn row(&self) -> [f32; Self::WIDTH] {
        [
            self.temperature,
            self.top_k as f32,
            self.top_p,
            self.min_p,
            self.uniform,
        ]
    }
}

/// The distribution a non-greedy row is drawn from: `(token, probability)` for every kept
/// token, in vocabulary order.
///
/// The kept set is every token whose probability is at least the smallest probability that
/// survives the top-k, top-p and min-p cuts, walking tokens from the most likely (which always
/// survives).
pub fn sampling_distribution(logits: &[f32], params: SampleParams) -> Vec<(usize, f64)> {
    let t = params.temperature.max(f32::MIN_POSITIVE) as f64;
    let scaled: Vec<f64> = logits.iter().map(|&l| l as f64 / t).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
    let z: f64 = weights.iter().sum();
    let mut order: Vec<usize> = (0..scaled.len()).collect();
    order.sort_by(|&a, &b| scaled[b].total_cmp(&scaled[a]));
    let k = if params.top_k == 0 {
        usize::MAX
    } else {
        params.top_k
    };
    let mut threshold = max;
    let mut before = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let kept = rank == 0
            || (rank < k && before / z < params.top_p as f64 && weights[i] >= params.min_p as f64);
        if !kept {
            break;
        }
        threshold = scaled[i];
        before += weights[i];
    }
    let total: f64 = (0..scaled.len())
        .filter(|&i| scaled[i] >= threshold)
        .map(|i| weights[i])
        .sum();
    (0..scaled.len())
        .filter(|&i| scaled[i] >= threshold)
        .map(|i| (i, weights[i] / total))
        .collect()
}

/// One token from `logits` under `params`, and its log-probability under the distribution
/// actually sampled from.
///
/// Greedy rows take the first most likely token (log-prob under the temperature-1 softmax).
/// Others draw from [`sampling_distribution`] by inverse CDF in vocabulary order: the first
/// kept token whose cumulative probability exceeds `uniform`.
pub fn sample(logits: &[f32], params: SampleParams) -> (usize, f64) {
    if params.temperature <= 0.0 {
        let (argmax, max) =
            logits
                .iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v as f64 > bv {
                        (i, v as f64)
                    } else {
                        (bi, bv)
                    }
                });
        let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        return (argmax, -z.ln());
    }
    let kept = sampling_distribution(logits, params);
    let mut running = 0.0;
    for &(i, p) in &kept {
        running += p;
        if running > params.uniform as f64 {
            return (i, p.ln());
        }
    }
    let &(i, p) = kept.last().expect("the most likely token is always kept");
    (i, p.ln())
}

/// `x·Wᵀ` for `x` `[m, k]` and a quantized `W` `[n, k]`, with `W`'s values taken from the GGUF
/// definition of its blocks (element by element) and f64 sums: `[m, n]`.
pub fn quantized_matmul(x: &[f32], m: usize, w: &crate::quantized::QuantizedBlocks) -> Vec<f32> {
    let (n, k) = (w.rows, w.cols);
    assert_eq!(x.len(), m * k, "x is [m, k]");
    let mut y = vec![0.0f32; m * n];
    for r in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k)
                .map(|i| f64::from(x[r * k + i]) * f64::from(w.value(j, i)))
                .sum();
            y[r * n + j] = dot as f32;
        }
    }
    y
}
