//! The learning rate as a function of the step: a linear warm-up, then constant, linear or
//! cosine decay to a floor. A pure function of the step (not of the optimiser's history), so a
//! resumed or recovered learner sets exactly the rate the uninterrupted run had.
use serde::{Deserialize, Serialize};

/// How the rate falls after its warm-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// The peak rate throughout.
    #[default]
    Constant,
    /// A straight line from the peak to the floor at the last step.
    Linear,
    /// Half a cosine from the peak to the floor at the last step.
    Cosine,
}

/// A schedule over `total` steps peaking at `peak`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// The rate after the warm-up.
    pub peak: f64,
    /// Steps of linear warm-up from `peak / warmup_steps` (0: none).
    pub warmup_steps: u64,
    /// The decay after the warm-up.
    pub decay: Decay,
    /// The floor as a fraction of `peak`, reached at the last step.
    pub min_ratio: f64,
    /// Steps in all (the last step is `total - 1`).
    pub total: u64,
}

impl LrSchedule {
    /// The rate of step `step` (0-based); steps past `total` keep the floor.
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self
            .total
            .saturating_sub(self.warmup_steps)
            .saturating_sub(1);
        let done = if span == 0 {
            0.0
        } else {
            ((step - self.warmup_steps) as f64 / span as f64).min(1.0)
        };
        let fall = match self.decay {
            Decay::Constant => 0.0,
            Decay::Linear => done,
            Decay::Cosine => 0.5 * (1.0 - (std::f64::consts::PI * done).cos()),
        };
        let floor = self.peak * self.min_ratio;
        self.peak - (self.peak - floor) * fall
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(decay: Decay, warmup_steps: u64) -> LrSchedule {
        LrSchedule {
            peak: 1.0,
            warmup_steps,
            decay,
            min_ratio: 0.1,
            total: 11,
        }
    }

    #[test]
    fn constant_is_the_peak_after_warm_up() {
        let s = schedule(Decay::Constant, 0);
        assert!((0..20).all(|t| s.at(t) == 1.0));
        let s = schedule(Decay::Constant, 4);
        let ramp: Vec<f64> = (0..5).map(|t| s.at(t)).collect();
        assert_eq!(ramp, vec![0.25, 0.5, 0.75, 1.0, 1.0]);
    }

    #[test]
    fn decays_reach_the_floor_at_the_last_step() {
        for decay in [Decay::Linear, Decay::Cosine] {
            let s = schedule(decay, 0);
            assert_eq!(s.at(0), 1.0);
            assert!((s.at(10) - 0.1).abs() < 1e-12, "{decay:?}");
            assert!((s.at(50) - 0.1).abs() < 1e-12, "{decay:?}: past the end");
            assert!((s.at(5) - 0.55).abs() < 1e-12, "{decay:?}: halfway");
            assert!((1..11).all(|t| s.at(t) < s.at(t - 1)), "{decay:?} falls");
        }
        let lin = schedule(Decay::Linear, 0);
        let cos = schedule(Decay::Cosine, 0);
        assert!(cos.at(2) > lin.at(2) && cos.at(8) < lin.at(8));
    }

    #[test]
    fn warm_up_then_decay() {
        let s = schedule(Decay::Linear, 1);
        assert_eq!(s.at(0), 1.0);
        assert_eq!(s.at(1), 1.0);
        assert!((s.at(10) - 0.1).abs() < 1e-12);
        let one = LrSchedule {
            total: 1,
            ..schedule(Decay::Cosine, 0)
        };
        assert_eq!(one.at(0), 1.0);
    }
}
