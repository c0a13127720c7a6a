//! `x·Wᵀ` for a few rows of `x` against a weight kept in a block format ([`QuantizedBlocks`]),
//! on host memory: the ndarray backend's decode-time product with quantized weights.
//!
//! Output columns (rows of `W`) are split into chunks across threads (rayon). Each block is
//! unpacked once into its 32 values on the stack (`d·q`, `d·q + m`, or `d_h·q` with a scale per
//! half block), and every row of `x`
//! adds its products with them to eight lane sums that run across the column's blocks. Each
//! output element is summed in the same order whatever `m` is, so a row gets bitwise the same
//! result alone or in a batch.

use crate::gguf::dequant::BLOCK;
use crate::quantized::{unpack_q4_1, unpack_q6_k, unpack_q8_0, QuantFormat, QuantizedBlocks};

/// Output columns per task.
const CHUNK: usize = 64;

/// `y` `[m, n]` from `x` `[m, k]` and `w` `[n, k]`.
pub fn matmul(x: &[f32], m: usize, w: &QuantizedBlocks) -> Vec<f32> {
    let (n, k) = (w.rows, w.cols);
    assert_eq!(x.len(), m * k, "x is [m, k]");
    let blocks = w.blocks_per_row();
    let wpb = w.format.words_per_block();
    super::skinny::by_column_chunks(m, n, CHUNK, |cols| {
        let width = cols.len();
        // Eight partial sums per row of x, carried across the column's blocks.
        let mut lanes = vec![[0.0f32; 8]; m];
        let mut out = vec![0.0f32; m * width];
        let mut values = [0.0f32; BLOCK];
        for (j, col) in cols.enumerate() {
            lanes.fill([0.0; 8]);
            for b in 0..blocks {
                let at = col * blocks + b;
                let words = &w.codes[at * wpb..(at + 1) * wpb];
                match w.format {
                    QuantFormat::Q8_0 => unpack_q8_0(words, w.scales[at], &mut values),
                    QuantFormat::Q4_1 => unpack_q4_1(words, w.scales[at], w.mins[at], &mut values),
                    QuantFormat::Q6_K => unpack_q6_k(words, &w.scales[2 * at..][..2], &mut values),
                }
                for (r, acc) in lanes.iter_mut().enumerate() {
                    accumulate(acc, &values, &x[r * k + b * BLOCK..][..BLOCK]);
                }
            }
            for (r, acc) in lanes.iter().enumerate() {
                out[r * width + j] = acc.iter().sum();
            }
        }
        out
    })
}

/// Adds one block's products to eight lane sums (lane `l` takes elements `l`, `l + 8`, …).
#[inline(always)]
fn accumulate(lanes: &mut [f32; 8], values: &[f32; BLOCK], x: &[f32]) {
    let x = &x[..BLOCK];
    for i in 0..BLOCK / 8 {
        for l in 0..8 {
            lanes[l] += values[8 * i + l] * x[8 * i + l];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;
    use crate::quantized::QuantFormat;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
    }

    #[test]
    fn matches_the_reference_on_random_inputs() {
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_1, QuantFormat::Q6_K] {
            for &(m, n, k) in &[(1, 1, 32), (3, 65, 96), (16, 200, 320), (40, 7, 64)] {
                let w = QuantizedBlocks::quantize(format, &random(n * k, 1), n, k).unwrap();
                let x = random(m * k, 2);
                let got = matmul(&x, m, &w);
                let want = reference::quantized_matmul(&x, m, &w);
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() < 1e-4 * (k as f32).sqrt(),
                        "{format:?} {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_row_gets_the_same_bits_alone_or_in_a_batch() {
        let (n, k) = (150, 128);
        let w = QuantizedBlocks::quantize(QuantFormat::Q4_1, &random(n * k, 3), n, k).unwrap();
        let x = random(5 * k, 4);
        let batch = matmul(&x, 5, &w);
        for r in 0..5 {
            let alone = matmul(&x[r * k..(r + 1) * k], 1, &w);
            assert_eq!(alone, batch[r * n..(r + 1) * n], "row {r}");
        }
    }
}
