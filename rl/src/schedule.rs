//! The learning-rate schedule: linear warm-up over the first fraction of the steps, then a
//! cosine decay to a floor.

use serde::{Deserialize, Serialize};

/// Warm-up then cosine decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub peak: f64,
    /// Fraction of `total_steps` spent warming up (0.03 = 3 %).
    pub warmup_fraction: f64,
    pub total_steps: usize,
    /// The floor as a fraction of the peak.
    pub floor_fraction: f64,
}

impl LrSchedule {
    /// The learning rate of step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        let total = self.total_steps.max(1) as f64;
        let warmup = (self.warmup_fraction * total).ceil().max(1.0);
        let s = step as f64;
        if s < warmup {
            return self.peak * (s + 1.0) / warmup;
        }
        let progress = ((s - warmup) / (total - warmup).max(1.0)).clamp(0.0, 1.0);
        let floor = self.peak * self.floor_fraction;
        floor + (self.peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_the_floor() {
        let s = LrSchedule {
            peak: 1.0,
            warmup_fraction: 0.1,
            total_steps: 100,
            floor_fraction: 0.1,
        };
        assert!((s.at(0) - 0.1).abs() < 1e-12);
        assert!((s.at(9) - 1.0).abs() < 1e-12);
        assert!((s.at(10) - 1.0).abs() < 1e-12);
        // Halfway through the decay: floor + (peak − floor)/2.
        assert!((s.at(55) - 0.55).abs() < 1e-12);
        assert!((s.at(100) - 0.1).abs() < 1e-12);
        assert!((s.at(1000) - 0.1).abs() < 1e-12);
    }
}
