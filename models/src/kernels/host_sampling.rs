//! Sampling on the host, for the ndarray backend: one token per row of logits under per-row
//! parameters, with the semantics of [`super::reference::sample`] (the kept set walks the
//! tokens from the most likely; the draw is an inverse CDF in vocabulary order, as the GPU
//! kernel draws).
//!
//! Where Burn's ops sort the whole vocabulary of every truncating row, this finds the kept set
//! among the few most likely tokens, picked by partial selection, and looks further only when
//! all of those are kept. Rows run in parallel (rayon).

use rayon::prelude::*;

use super::reference::SampleParams;

/// Most likely tokens examined first; a row that keeps all of them looks at 8× as many, or at
/// the whole vocabulary once that would be more than a quarter of it.
const FIRST_CANDIDATES: usize = 64;

/// One `(token, log-probability)` per row of `logits` (`[rows, vocab]`, row-major). A row
/// holding a NaN logit gives a NaN log-probability (a broken model shows in the RL ratios
/// rather than as a plausible number).
///
/// # Panics
/// If `logits` does not hold `params.len()` rows of `vocab` values, or `vocab` is 0 or does not
/// fit in a `u32`.
pub fn sample_rows(logits: &[f32], vocab: usize, params: &[SampleParams]) -> Vec<(usize, f64)> {
    assert_eq!(
        logits.len(),
        params.len() * vocab,
        "one row per parameter set"
    );
    assert!(
        vocab > 0 && u32::try_from(vocab).is_ok(),
        "vocabulary of {vocab} tokens"
    );
    logits
        .par_chunks(vocab)
        .zip(params.par_iter())
        .map(|(row, p)| sample_row(row, *p))
        .collect()
}

/// One token from one (non-empty) row: see [`super::reference::sample`].
fn sample_row(logits: &[f32], p: SampleParams) -> (usize, f64) {
    if logits.iter().any(|l| l.is_nan()) {
        return (0, f64::NAN);
    }
    if p.temperature <= 0.0 {
        return greedy(logits);
    }
    let t = f64::from(p.temperature.max(f32::MIN_POSITIVE));
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let top = f64::from(max) / t;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| (f64::from(l) / t - top).exp())
        .collect();
    let z: f64 = weights.iter().sum();
    let threshold = kept_threshold(logits, &weights, z, p);
    let total: f64 = logits
        .iter()
        .zip(&weights)
        .filter(|(&l, _)| l >= threshold)
        .map(|(_, &w)| w)
        .sum();
    let uniform = f64::from(p.uniform);
    let mut running = 0.0;
    let mut last = 0;
    for (i, (&l, &w)) in logits.iter().zip(&weights).enumerate() {
        if l < threshold {
            continue;
        }
        let prob = w / total;
        running += prob;
        last = i;
        if running > uniform {
            return (i, prob.ln());
        }
    }
    (last, (weights[last] / total).ln())
}

/// The first most likely token, with its log-probability under the temperature-1 softmax.
fn greedy(logits: &[f32]) -> (usize, f64) {
    let (argmax, max) =
        logits
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if f64::from(v) > bv {
                    (i, f64::from(v))
                } else {
                    (bi, bv)
                }
            });
    let z: f64 = logits.iter().map(|&l| (f64::from(l) - max).exp()).sum();
    (argmax, -z.ln())
}

/// The smallest logit that survives the cuts: walking from the most likely token, a token is
/// kept while it ranks below top-k, the mass before it is below top-p and its weight (relative
/// to the most likely token's) is at least min-p; the first token always is.
fn kept_threshold(logits: &[f32], weights: &[f64], z: f64, p: SampleParams) -> f32 {
    let vocab = logits.len();
    let top_k = if p.top_k == 0 {
        vocab
    } else {
        p.top_k.min(vocab)
    };
    let mut order: Vec<u32> = (0..vocab as u32).collect();
    let mut candidates = FIRST_CANDIDATES.min(vocab);
    loop {
        let by_logit_descending =
            |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        if candidates < vocab {
            order.select_nth_unstable_by(candidates - 1, by_logit_descending);
        }
        let best = &mut order[..candidates];
        best.sort_unstable_by(by_logit_descending);
        let mut threshold = logits[best[0] as usize];
        let mut before = 0.0;
        for (rank, &i) in best.iter().enumerate() {
            let i = i as usize;
            let kept = rank == 0
                || (rank < top_k
                    && before / z < f64::from(p.top_p)
                    && weights[i] >= f64::from(p.min_p));
            if !kept {
                return threshold;
            }
            threshold = logits[i];
            before += weights[i];
        }
        if candidates == vocab {
            return threshold;
        }
        candidates *= 8;
        if candidates > vocab / 4 {
            candidates = vocab;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;
    use rand::{Rng, SeedableRng};

    fn params(case: usize, uniform: f32) -> SampleParams {
        let (temperature, top_k, top_p, min_p) = match case % 6 {
            0 => (0.0, 0, 1.0, 0.0),
            1 => (0.7, 0, 1.0, 0.0),
            2 => (0.7, 0, 0.95, 0.0),
            3 => (1.3, 5, 1.0, 0.0),
            4 => (0.9, 0, 0.9, 0.05),
            // Flat enough that top-p keeps more than the first candidates.
            _ => (6.0, 0, 0.99, 0.0),
        };
        SampleParams {
            temperature,
            top_k,
            top_p,
            min_p,
            uniform,
        }
    }

    #[test]
    fn rows_match_the_reference_on_random_logits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut checked = 0;
        for &vocab in &[1usize, 2, 63, 64, 65, 1000, 4099] {
            let rows = 12;
            let mut logits: Vec<f32> = (0..rows * vocab)
                .map(|_| rng.random_range(-6.0f32..6.0))
                .collect();
            if vocab > 10 {
                // Exact ties in every row: at the top, and among the next most likely tokens.
                for row in logits.chunks_mut(vocab) {
                    let mut order: Vec<usize> = (0..vocab).collect();
                    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                    row[order[1]] = row[order[0]];
                    row[order[4]] = row[order[3]];
                    row[3] = row[7];
                }
            }
            let params: Vec<SampleParams> = (0..rows)
                .map(|r| params(r, rng.random_range(0.0f32..1.0)))
                .collect();
            let got = sample_rows(&logits, vocab, &params);
            // The same arithmetic in the same order as the reference: bit-exact.
            for (r, p) in params.iter().enumerate() {
                let row = &logits[r * vocab..][..vocab];
                assert_eq!(
                    got[r],
                    reference::sample(row, *p),
                    "vocab {vocab} row {r} {p:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 7 * 12);
    }

    #[test]
    fn a_nan_logit_gives_a_nan_log_prob() {
        let p = params(2, 0.5);
        let (_, lp) = sample_rows(&[0.0, f32::NAN, 1.0], 3, &[p])[0];
        assert!(lp.is_nan());
    }

    #[test]
    fn a_wide_nucleus_is_found_past_the_first_candidates() {
        // 500 equally likely tokens and the rest far below: top-p 0.9 keeps 450 of them.
        let vocab = 2000;
        let logits: Vec<f32> = (0..vocab)
            .map(|i| if i % 4 == 0 { 1.0 } else { -30.0 })
            .collect();
        let p = SampleParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.9,
            min_p: 0.0,
            uniform: 0.999,
        };
        let kept = reference::sampling_distribution(&logits, p);
        assert_eq!(kept.len(), 500, "ties at the threshold are all kept");
        let (id, lp) = sample_row(&logits, p);
        assert_eq!((id, lp), reference::sample(&logits, p));
        assert_eq!(id % 4, 0);
        assert!((lp - (1.0f64 / 500.0).ln()).abs() < 1e-9);
    }
}
