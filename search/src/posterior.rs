//! Posteriors over a node's reward: the Beta posterior with a Jeffreys prior (rewards in
//! [0, 1], the default) and the Gaussian Normal-Inverse-χ² posterior (any real reward).
//!
//! Each keeps sufficient statistics only (O(1) memory and O(1) per observation);
//! [`Posterior::sample`] draws one value of the mean reward for Thompson sampling.

use rand::Rng;
use rand_distr::{Beta, Distribution, Gamma, Normal};
use serde::{Deserialize, Serialize};

/// Which posterior the search keeps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PosteriorKind {
    /// Beta with the Jeffreys prior (0.5, 0.5).
    #[default]
    Beta,
    /// Normal-Inverse-χ² with m0 = 0, κ0 = 1, ν0 = 1, τ0² = 0.1.
    Gaussian,
}

/// Prior parameters of the Normal-Inverse-χ² posterior.
pub const NIX_M0: f64 = 0.0;
pub const NIX_KAPPA0: f64 = 1.0;
pub const NIX_NU0: f64 = 1.0;
pub const NIX_TAU0_SQ: f64 = 0.1;

/// The Jeffreys prior of the Beta posterior.
pub const BETA_PRIOR: f64 = 0.5;

/// A posterior over one arm's mean reward.
#[derive(Debug, Clone, PartialEq)]
pub enum Posterior {
    Beta { alpha: f64, beta: f64 },
    Gaussian(NixStats),
}

/// Running count, mean and scatter (sum of squared deviations) of the observations,
/// updated with Welford's method.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NixStats {
    pub n: f64,
    pub mean: f64,
    pub scatter: f64,
}

/// The parameters of a Normal-Inverse-χ² posterior.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NixParams {
    pub m: f64,
    pub kappa: f64,
    pub nu: f64,
    pub tau_sq: f64,
}

impl NixStats {
    /// Posterior parameters after the observations so far.
    pub fn params(&self) -> NixParams {
        let n = self.n;
        let kappa = NIX_KAPPA0 + n;
        let nu = NIX_NU0 + n;
        let m = (NIX_KAPPA0 * NIX_M0 + n * self.mean) / kappa;
        let shift = if n > 0.0 {
            n * NIX_KAPPA0 * (NIX_M0 - self.mean).powi(2) / (NIX_KAPPA0 + n)
        } else {
            0.0
        };
        let tau_sq = (NIX_NU0 * NIX_TAU0_SQ + self.scatter + shift) / nu;
        NixParams {
            m,
            kappa,
            nu,
            tau_sq,
        }
    }
}

impl Posterior {
    /// The prior of the chosen kind.
    pub fn prior(kind: PosteriorKind) -> Self {
        match kind {
            PosteriorKind::Beta => Posterior::Beta {
                alpha: BETA_PRIOR,
                beta: BETA_PRIOR,
            },
            PosteriorKind::Gaussian => Posterior::Gaussian(NixStats::default()),
        }
    }

    /// The posterior after observing `rewards`, starting from the prior.
    pub fn from_rewards(kind: PosteriorKind, rewards: &[f64]) -> Self {
        let mut p = Self::prior(kind);
        for &r in rewards {
            p.observe(r);
        }
        p
    }

    /// Adds one observed reward. A Beta posterior takes the reward clamped to [0, 1] as a
    /// fractional success.
    pub fn observe(&mut self, reward: f64) {
        match self {
            Posterior::Beta { alpha, beta } => {
                let r = reward.clamp(0.0, 1.0);
                *alpha += r;
                *beta += 1.0 - r;
            }
            Posterior::Gaussian(s) => {
                s.n += 1.0;
                let delta = reward - s.mean;
                s.mean += delta / s.n;
                s.scatter += delta * (reward - s.mean);
            }
        }
    }

    /// Draws a mean reward from the posterior.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Posterior::Beta { alpha, beta } => match Beta::new(*alpha, *beta) {
                Ok(d) => d.sample(rng),
                // Unreachable with a positive prior; fall back to the mean.
                Err(_) => alpha / (alpha + beta),
            },
            Posterior::Gaussian(s) => {
                let p = s.params();
                // σ² ~ InvGamma(ν/2, ν τ²/2)  ⇔  1/σ² ~ Gamma(shape ν/2, scale 2/(ν τ²)).
                let precision = match Gamma::new(p.nu / 2.0, 2.0 / (p.nu * p.tau_sq)) {
                    Ok(d) => d.sample(rng),
                    Err(_) => return p.m,
                };
                let variance = 1.0 / precision.max(f64::MIN_POSITIVE);
                match Normal::new(p.m, (variance / p.kappa).sqrt()) {
                    Ok(d) => d.sample(rng),
                    Err(_) => p.m,
                }
            }
        }
    }

    /// The posterior mean of the reward.
    pub fn mean(&self) -> f64 {
        match self {
            Posterior::Beta { alpha, beta } => alpha / (alpha + beta),
            Posterior::Gaussian(s) => s.params().m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn beta_adds_reward_to_alpha_and_its_complement_to_beta() {
        let p = Posterior::from_rewards(PosteriorKind::Beta, &[1.0, 0.0, 0.0, 0.25]);
        assert_eq!(
            p,
            Posterior::Beta {
                alpha: 0.5 + 1.25,
                beta: 0.5 + 2.75
            }
        );
        assert!((p.mean() - 1.75 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn nix_parameters_match_the_hand_computed_update() {
        // Observations 1, 0, 1: n = 3, x̄ = 2/3, S = 2/3.
        let p = Posterior::from_rewards(PosteriorKind::Gaussian, &[1.0, 0.0, 1.0]);
        let Posterior::Gaussian(s) = p else {
            panic!("kind")
        };
        let q = s.params();
        assert!((q.kappa - 4.0).abs() < 1e-12);
        assert!((q.nu - 4.0).abs() < 1e-12);
        assert!((q.m - 0.5).abs() < 1e-12); // (1·0 + 3·2/3) / 4
                                            // (1·0.1 + 2/3 + 3·1·(4/9)/4) / 4 = (0.1 + 0.6667 + 0.3333) / 4 = 0.275
        assert!((q.tau_sq - 0.275).abs() < 1e-12, "{}", q.tau_sq);
    }

    #[test]
    fn nix_prior_has_the_stated_parameters() {
        let q = NixStats::default().params();
        assert_eq!((q.m, q.kappa, q.nu, q.tau_sq), (0.0, 1.0, 1.0, 0.1));
    }

    #[test]
    fn samples_follow_the_posterior_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (kind, rewards) in [
            (PosteriorKind::Beta, vec![1.0; 30]),
            (PosteriorKind::Beta, vec![0.0; 30]),
            (PosteriorKind::Gaussian, vec![1.0, 0.8, 0.9, 1.0, 0.7, 0.9]),
        ] {
            let p = Posterior::from_rewards(kind, &rewards);
            let n = 4000;
            let avg: f64 = (0..n).map(|_| p.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!(
                (avg - p.mean()).abs() < 0.03,
                "{kind:?}: {avg} vs {}",
                p.mean()
            );
        }
    }

    #[test]
    fn beta_sample_of_jeffreys_prior_has_its_variance() {
        // Beta(0.5, 0.5): mean 1/2, variance αβ/((α+β)²(α+β+1)) = 0.125.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let p = Posterior::prior(PosteriorKind::Beta);
        let xs: Vec<f64> = (0..20000).map(|_| p.sample(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.01);
        assert!((var - 0.125).abs() < 0.005, "{var}");
    }
}
