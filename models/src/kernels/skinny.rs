//! Matrix products with few rows (`x` `[m, k]`, m ≤ [`MAX_ROWS`]) against a large weight matrix,
//! on host memory: the decode-time shape of every projection and of the output head.
//!
//! A general GEMM packs the weight into blocks on every call, which for a handful of rows costs
//! more than the arithmetic. Here the weight is read once, in its stored order: columns are split
//! into chunks across threads (rayon), and each chunk streams its slice of every weight row
//! while all `m` rows of `x` accumulate into registers-sized buffers. Each output element is
//! summed in the same order whatever `m` is, so a row gets bitwise the same result alone or in a
//! batch.

use rayon::prelude::*;

/// Largest number of rows the skinny path takes; more rows amortize a packed GEMM better.
pub const MAX_ROWS: usize = 16;
/// Output columns per task.
const CHUNK: usize = 256;

/// How a weight matrix is stored (row-major either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[k, n]`: `y = x·W` (the layout of [`crate::layers::linear::Linear`]).
    InOut,
    /// `[n, k]`: `y = x·Wᵀ` (a tied output head: the embedding matrix).
    OutIn,
}

/// `y` `[m, n]` from `x` `[m, k]` and `w` (`k·n` values in `layout`).
pub fn matmul(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    layout: WeightLayout,
) -> Vec<f32> {
    assert_eq!(x.len(), m * k, "x is [m, k]");
    assert_eq!(w.len(), k * n, "w holds k·n values");
    by_column_chunks(m, n, CHUNK, |cols| match layout {
        WeightLayout::InOut => chunk_in_out(x, m, k, w, n, cols),
        WeightLayout::OutIn => chunk_out_in(x, m, k, w, cols),
    })
}

/// `y` `[m, n]` computed in chunks of `chunk` output columns across threads: `part(cols)`
/// returns columns `cols` of every row, `[m, cols.len()]`.
pub(crate) fn by_column_chunks(
    m: usize,
    n: usize,
    chunk: usize,
    part: impl Fn(std::ops::Range<usize>) -> Vec<f32> + Sync,
) -> Vec<f32> {
    let parts: Vec<Vec<f32>> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| part(c * chunk..n.min((c + 1) * chunk)))
        .collect();
    let mut y = vec![0.0f32; m * n];
    for (c, part) in parts.iter().enumerate() {
        let start = c * chunk;
        let width = part.len() / m.max(1);
        for r in 0..m {
            y[r * n + start..][..width].copy_from_slice(&part[r * width..][..width]);
        }
    }
    y
}

/// Columns `cols` of `x·W`, `W` `[k, n]`: `[m, cols.len()]`.
fn chunk_in_out(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    cols: std::ops::Range<usize>,
) -> Vec<f32> {
    let width = cols.len();
    let mut acc = vec![0.0f32; m * width];
    for kk in 0..k {
        let row = &w[kk * n + cols.start..][..width];
        for r in 0..m {
            let a = x[r * k + kk];
            for (o, &v) in acc[r * width..][..width].iter_mut().zip(row) {
                *o += a * v;
            }
        }
    }
    acc
}

/// Columns `cols` of `x·Wᵀ`, `W` `[n, k]`: `[m, cols.len()]`.
fn chunk_out_in(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    cols: std::ops::Range<usize>,
) -> Vec<f32> {
    let width = cols.len();
    let mut out = vec![0.0f32; m * width];
    for (j, col) in cols.enumerate() {
        let wrow = &w[col * k..][..k];
        for r in 0..m {
            out[r * width + j] = dot(&x[r * k..][..k], wrow);
        }
    }
    out
}

/// Dot product with eight independent partial sums (vectorizes; fixed summation order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut a8 = a.chunks_exact(8);
    let mut b8 = b.chunks_exact(8);
    for (x, y) in (&mut a8).zip(&mut b8) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in a8.remainder().iter().zip(b8.remainder()) {
        tail += x * y;
    }
    lanes.iter().sum::<f32>() + tail
}
