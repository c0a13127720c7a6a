//! Confidence intervals for figures measured over a set of problems: a pass rate (Wilson score
//! interval, which stays honest at 0 of 10 and 10 of 10 where a bootstrap collapses to a
//! point) and the mean of per-problem values or of paired per-problem differences (percentile
//! bootstrap over problems, seeded so a report is reproducible).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A figure and its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Bootstrap resamples: enough that the 2.5 % and 97.5 % percentiles move by less than a
/// problem's weight between seeds at the sizes used here.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

impl Interval {
    /// Whether zero lies outside the interval (a difference the data support).
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }

    /// The interval scaled by `factor` (fractions to percentages).
    pub fn scaled(&self, factor: f64) -> Interval {
        Interval {
            estimate: self.estimate * factor,
            low: self.low * factor,
            high: self.high * factor,
        }
    }
}

/// Wilson score interval at 95 % for `successes` out of `n` (`successes` may be fractional:
/// a problem with several answers counts its passing fraction). `None` when `n` is 0.
pub fn wilson(successes: f64, n: usize) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let p = (successes / n).clamp(0.0, 1.0);
    let z2 = Z95 * Z95;
    let center = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(Interval {
        estimate: p,
        low: (center - half).max(0.0),
        high: (center + half).min(1.0),
    })
}

/// The mean of `values` with a 95 % percentile-bootstrap interval (`resamples` draws of
/// `values.len()` values with replacement, from `seed`). `None` when `values` is empty.
pub fn bootstrap_mean(values: &[f64], resamples: usize, seed: u64) -> Option<Interval> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let estimate = values.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    Some(Interval {
        estimate,
        low: at(0.025),
        high: at(0.975),
    })
}

/// The mean paired difference `after − before` over problems with its 95 % bootstrap interval
/// (problems resampled together, so what each problem contributes to both sides stays
/// paired). `None` when the lists are empty or of different lengths.
pub fn paired_difference(before: &[f64], after: &[f64], seed: u64) -> Option<Interval> {
    if before.len() != after.len() {
        return None;
    }
    let differences: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    bootstrap_mean(&differences, BOOTSTRAP_RESAMPLES, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn wilson_matches_published_values_and_stays_inside_zero_one() {
        // 0/10, 3/10, 10/10 at 95 % (Newcombe 1998, method 3): [0, 0.278], [0.108, 0.603], [0.722, 1].
        let none = wilson(0.0, 10).unwrap();
        assert!(close(none.low, 0.0) && close(none.high, 0.2775), "{none:?}");
        let three = wilson(3.0, 10).unwrap();
        assert!(
            close(three.low, 0.1078) && close(three.high, 0.6032),
            "{three:?}"
        );
        let all = wilson(10.0, 10).unwrap();
        assert!(close(all.low, 0.7225) && close(all.high, 1.0), "{all:?}");
        assert!(wilson(1.0, 0).is_none());
    }

    #[test]
    fn the_bootstrap_is_seeded_and_brackets_the_mean() {
        let values: Vec<f64> = (0..50).map(|i| f64::from(i % 2)).collect();
        let a = bootstrap_mean(&values, 2000, 1).unwrap();
        assert_eq!(a, bootstrap_mean(&values, 2000, 1).unwrap());
        assert!(a.low < a.estimate && a.estimate < a.high);
        // A mean of 50 fair coins: standard error 0.0707, so about ±0.14.
        assert!(close(a.estimate, 0.5));
        assert!((a.high - a.low - 0.277).abs() < 0.04, "{a:?}");
        assert!(bootstrap_mean(&[], 10, 0).is_none());
    }

    #[test]
    fn one_changed_problem_in_ten_is_not_a_shown_change() {
        let before = vec![0.0; 10];
        let mut after = before.clone();
        after[3] = 1.0;
        let change = paired_difference(&before, &after, 0).unwrap();
        assert!(close(change.estimate, 0.1));
        assert!(!change.excludes_zero(), "{change:?}");
        // Seven of ten problems newly solved and none lost is.
        let after: Vec<f64> = (0..10).map(|i| f64::from(u8::from(i < 7))).collect();
        assert!(paired_difference(&before, &after, 0)
            .unwrap()
            .excludes_zero());
        assert!(paired_difference(&before, &after[..3], 0).is_none());
    }
}
