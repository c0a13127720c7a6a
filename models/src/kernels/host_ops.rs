//! The element-wise and per-row operations of a decoder layer on host memory, for the host
//! decode path ([`crate::host_decode`]): RMSNorm of rows, rotate-half RoPE of head vectors in
//! place, SwiGLU's `silu(gate)·up`, residual sums. Each works on row-major slices the caller
//! reuses between layers; [`super::reference`] holds the definitions they are tested against.

/// `Σ a[i]·b[i]` over eight partial sums added in a fixed order: a vector loop (a plain sum
/// waits on each addition in turn), and the same result for a row alone or in a batch.
pub fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

fn sum_of_squares(row: &[f32]) -> f32 {
    lane_dot(row, row)
}

/// `out[r] = x[r] / sqrt(mean(x[r]²) + ε) · weight` for each row of `weight.len()` values.
///
/// # Panics
/// If `x` and `out` differ in length or are not whole rows.
pub fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f64, out: &mut [f32]) {
    let dim = weight.len();
    assert_eq!(x.len(), out.len(), "x and out have the same shape");
    assert_eq!(x.len() % dim.max(1), 0, "x holds whole rows");
    for (row, out) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let mean = sum_of_squares(row) / dim as f32;
        let inverse = 1.0 / (mean + eps as f32).sqrt();
        for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
            *o = v * inverse * w;
        }
    }
}

/// [`rms_norm_rows`] in place.
pub fn rms_norm_rows_in_place(x: &mut [f32], weight: &[f32], eps: f64) {
    let dim = weight.len();
    assert_eq!(x.len() % dim.max(1), 0, "x holds whole rows");
    for row in x.chunks_exact_mut(dim) {
        let mean = sum_of_squares(row) / dim as f32;
        let inverse = 1.0 / (mean + eps as f32).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            *v = *v * inverse * w;
        }
    }
}

/// Rotates, in place, every head vector of `x` `[tokens, heads, head_dim]`: token `t` by the
/// table row `cos/sin[positions[t]]` (tables `[max_positions, head_dim]`, both halves equal,
/// as [`crate::layers::rope::Rope`] keeps them).
///
/// # Panics
/// If a position is past the tables or the shapes disagree.
pub fn rope_in_place(
    x: &mut [f32],
    positions: &[usize],
    head_dim: usize,
    cos_table: &[f32],
    sin_table: &[f32],
) {
    let half = head_dim / 2;
    let per_token = x.len() / positions.len().max(1);
    assert_eq!(
        per_token * positions.len(),
        x.len(),
        "x is [tokens, heads, head_dim]"
    );
    assert_eq!(per_token % head_dim.max(1), 0, "whole heads per token");
    for (token, &p) in x.chunks_exact_mut(per_token).zip(positions) {
        let cos = &cos_table[p * head_dim..][..head_dim];
        let sin = &sin_table[p * head_dim..][..head_dim];
        for head in token.chunks_exact_mut(head_dim) {
            let (low, high) = head.split_at_mut(half);
            for i in 0..half {
                let (a, b) = (low[i], high[i]);
                low[i] = a * cos[i] - b * sin[i];
                high[i] = b * cos[half + i] + a * sin[half + i];
            }
        }
    }
}

/// `gate[i] ← silu(gate[i]) · up[i]`, SwiGLU's gated activation.
pub fn silu_mul_in_place(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "gate and up have the same shape");
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `x[i] += y[i]`.
pub fn add_in_place(x: &mut [f32], y: &[f32]) {
    assert_eq!(x.len(), y.len(), "the same shape");
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Adds `bias` to each row of `x` (rows of `bias.len()` values).
pub fn add_bias_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len().max(1)) {
        add_in_place(row, bias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect()
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    #[test]
    fn rms_norm_matches_the_reference_on_random_rows() {
        for dim in [7, 64, 576, 899] {
            let x = random(3 * dim, dim as u64);
            let w = random(dim, 1 + dim as u64);
            let mut out = vec![f32::NAN; x.len()];
            rms_norm_rows(&x, &w, 1e-6, &mut out);
            let expected = reference::rms_norm(&x, &w, 1e-6);
            assert_close(&out, &expected, 1e-5);
            let mut in_place = x.clone();
            rms_norm_rows_in_place(&mut in_place, &w, 1e-6);
            assert_eq!(in_place, out);
        }
    }

    #[test]
    fn rope_matches_the_reference_at_each_tokens_own_position() {
        let (tokens, heads, d, max) = (3, 4, 16, 40);
        let inv: Vec<f32> = (0..d / 2)
            .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / d as f32))
            .collect();
        let mut cos = Vec::new();
        let mut sin = Vec::new();
        for p in 0..max {
            for _ in 0..2 {
                for f in &inv {
                    cos.push((p as f32 * f).cos());
                    sin.push((p as f32 * f).sin());
                }
            }
        }
        let positions = [5, 0, 37];
        let x = random(tokens * heads * d, 3);
        let mut rotated = x.clone();
        rope_in_place(&mut rotated, &positions, d, &cos, &sin);
        // The reference takes [batch, heads, tokens, d] with per-token tables: one token per
        // batch row here.
        for (t, &p) in positions.iter().enumerate() {
            let one = &x[t * heads * d..][..heads * d];
            let expected = reference::rope(
                one,
                &cos[p * d..][..d],
                &sin[p * d..][..d],
                [1, heads, 1, d],
            );
            assert_close(&rotated[t * heads * d..][..heads * d], &expected, 1e-6);
        }
    }

    #[test]
    fn silu_mul_and_sums_are_the_obvious_loops() {
        let mut g = random(100, 4);
        let u = random(100, 5);
        let expected: Vec<f32> = g
            .iter()
            .zip(&u)
            .map(|(&g, &u)| (g as f64 / (1.0 + (-g as f64).exp()) * u as f64) as f32)
            .collect();
        silu_mul_in_place(&mut g, &u);
        assert_close(&g, &expected, 1e-6);

        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        add_bias_rows(&mut x, &[10.0, 20.0]);
        assert_eq!(x, [11.0, 22.0, 13.0, 24.0]);
        add_in_place(&mut x, &[1.0; 4]);
        assert_eq!(x, [12.0, 23.0, 14.0, 25.0]);
    }
}
