//! Attention over paged keys and values in host memory, read where they lie: the host decode
//! path's attention ([`crate::host_decode`]), with the semantics of
//! [`super::reference::paged_attention`].
//!
//! Queries come token-major, `[rows, heads, head_dim]` (as the projection leaves them), and the
//! output has the same layout. The `group` query heads that share a key/value head are one
//! task: each key and value row is loaded once for all of them. Tasks (row × key/value head)
//! run across threads when there is enough work to pay for waking them.

use rayon::prelude::*;

use super::host_ops::lane_dot as dot;
use super::reference::PagedShape;

/// Multiply-adds below which a call stays on the calling thread.
const PARALLEL_WORK: usize = 1 << 16;

/// Attention of `q` `[batch·tokens, heads, head_dim]` (row `b·tokens + t`) over the caches
/// `[slots, kv_heads·head_dim]`: query `t` of row `b` sees the keys at positions
/// `0..visible[b][t]`, position `j` in slot `block_tables[b][j / block_size]·block_size +
/// j % block_size`. Writes `out` in the layout of `q`; a query that sees no key gets zeros.
///
/// # Panics
/// If the slices disagree with `shape`.
pub fn paged_attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    block_tables: &[Vec<usize>],
    visible: &[Vec<usize>],
    shape: PagedShape,
    out: &mut [f32],
) {
    let PagedShape {
        batch,
        heads,
        kv_heads,
        tokens,
        head_dim: d,
        block_size,
    } = shape;
    let group = heads / kv_heads;
    let width = kv_heads * d;
    assert_eq!(q.len(), batch * tokens * heads * d, "q is [rows, heads, d]");
    assert_eq!(out.len(), q.len(), "out is shaped as q");
    assert_eq!(k_cache.len(), v_cache.len(), "keys and values share slots");
    let scale = 1.0 / (d as f32).sqrt();
    // Heads h = kv·group + g are contiguous, so each (row, kv head) task owns one slice.
    let task = |index: usize, out: &mut [f32]| {
        let (row, kv) = (index / kv_heads, index % kv_heads);
        let (b, t) = (row / tokens, row % tokens);
        let seen = visible[b][t];
        let queries = &q[(row * heads + kv * group) * d..][..group * d];
        let slot = |j: usize| block_tables[b][j / block_size] * block_size + j % block_size;
        let mut scores = vec![0.0f32; group * seen];
        for j in 0..seen {
            let key = &k_cache[slot(j) * width + kv * d..][..d];
            for g in 0..group {
                scores[g * seen + j] = dot(&queries[g * d..][..d], key) * scale;
            }
        }
        let mut totals = vec![0.0f32; group];
        for (g, total) in totals.iter_mut().enumerate() {
            let row_scores = &mut scores[g * seen..][..seen];
            let max = row_scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            for s in row_scores.iter_mut() {
                *s = (*s - max).exp();
                *total += *s;
            }
        }
        out.fill(0.0);
        for j in 0..seen {
            let value = &v_cache[slot(j) * width + kv * d..][..d];
            for g in 0..group {
                let w = scores[g * seen + j];
                for (o, v) in out[g * d..][..d].iter_mut().zip(value) {
                    *o += w * v;
                }
            }
        }
        for (g, total) in totals.iter().enumerate() {
            if *total > 0.0 {
                let inverse = 1.0 / total;
                out[g * d..][..d].iter_mut().for_each(|o| *o *= inverse);
            }
        }
    };
    let work: usize = visible.iter().flatten().sum::<usize>() * heads * d;
    if work >= PARALLEL_WORK {
        out.par_chunks_mut(group * d)
            .enumerate()
            .for_each(|(i, chunk)| task(i, chunk));
    } else {
        out.chunks_mut(group * d)
            .enumerate()
            .for_each(|(i, chunk)| task(i, chunk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;
    use rand::{Rng, SeedableRng};

    /// `[rows, heads, d]` ↔ `[batch, heads, tokens, d]`.
    fn heads_major(x: &[f32], batch: usize, tokens: usize, heads: usize, d: usize) -> Vec<f32> {
        let mut y = vec![0.0; x.len()];
        for b in 0..batch {
            for t in 0..tokens {
                for h in 0..heads {
                    let from = ((b * tokens + t) * heads + h) * d;
                    let to = ((b * heads + h) * tokens + t) * d;
                    y[to..to + d].copy_from_slice(&x[from..from + d]);
                }
            }
        }
        y
    }

    #[test]
    fn matches_the_reference_on_ragged_random_batches() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        for (heads, kv_heads, tokens) in [(9, 3, 1), (14, 2, 3), (4, 4, 2)] {
            let (batch, d, block_size, blocks) = (3, 64, 16, 12);
            let width = kv_heads * d;
            let mut random =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
            let k_cache = random(blocks * block_size * width);
            let v_cache = random(blocks * block_size * width);
            let q = random(batch * tokens * heads * d);
            // Row 0 sees 40 keys through scattered blocks, row 1 one block, row 2 none at the
            // first place (an empty row gets zeros).
            let block_tables = vec![vec![7, 2, 9], vec![4], vec![0, 1]];
            let visible: Vec<Vec<usize>> = vec![
                (0..tokens).map(|t| 38 + t).collect(),
                (0..tokens).map(|t| 5 + t).collect(),
                (0..tokens).map(|t| t * 9).collect(),
            ];
            let shape = PagedShape {
                batch,
                heads,
                kv_heads,
                tokens,
                head_dim: d,
                block_size,
            };
            let mut out = vec![f32::NAN; q.len()];
            paged_attention(
                &q,
                &k_cache,
                &v_cache,
                &block_tables,
                &visible,
                shape,
                &mut out,
            );
            let expected = reference::paged_attention(
                &heads_major(&q, batch, tokens, heads, d),
                &k_cache,
                &v_cache,
                &block_tables,
                &visible,
                shape,
            );
            let got = heads_major(&out, batch, tokens, heads, d);
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (a - b).abs() < 1e-5,
                    "{heads}/{kv_heads} heads, at {i}: {a} vs {b}"
                );
            }
        }
    }
}
