//! Rewards from their parts (ALGORITHM.md, Rewards):
//! `R_M = α1·r_format + α2·r_correct` and `R_S = β1·r_format + β2·r_main_correct + β3·r_expert`,
//! both zero when the agent's own format reward is zero.
use serde::{Deserialize, Serialize};

/// The α and β weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardWeights {
    /// α1: main agent format.
    pub alpha_format: f32,
    /// α2: main agent correctness.
    pub alpha_correct: f32,
    /// β1: sub-agent format.
    pub beta_format: f32,
    /// β2: correctness of the main rollout that made the call.
    pub beta_main_correct: f32,
    /// β3: the judge's expert score of the call's result.
    pub beta_expert: f32,
}

impl Default for RewardWeights {
    fn default() -> Self {
        Self {
            alpha_format: 0.1,
            alpha_correct: 0.9,
            beta_format: 0.1,
            beta_main_correct: 0.5,
            beta_expert: 0.4,
        }
    }
}

/// The parts of a main rollout's reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MainParts {
    /// Every main-agent turn parsed.
    pub format: bool,
    /// The final answer matched (normalised exact match).
    pub correct: bool,
}

/// The parts of a sub-agent call's reward (its own; `r_main_correct` comes from the main side).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubParts {
    /// Every sub-agent turn of the call parsed.
    pub format: bool,
    /// The judge's score of the returned result, in `[0, 1]`.
    pub expert: f32,
}

impl RewardWeights {
    /// `R_M`; 0 on a format error.
    pub fn main_reward(&self, parts: &MainParts) -> f32 {
        if !parts.format {
            return 0.0;
        }
        self.alpha_format
            + if parts.correct {
                self.alpha_correct
            } else {
                0.0
            }
    }

    /// `R_S` of a call made by a main rollout whose `r_correct` is `main_correct`; 0 on a
    /// format error of the call.
    pub fn sub_reward(&self, parts: &SubParts, main_correct: bool) -> f32 {
        if !parts.format {
            return 0.0;
        }
        self.beta_format
            + if main_correct {
                self.beta_main_correct
            } else {
                0.0
            }
            + self.beta_expert * parts.expert.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_reward_table() {
        let w = RewardWeights::default();
        let r = |format, correct| w.main_reward(&MainParts { format, correct });
        assert_eq!(r(false, false), 0.0);
        assert_eq!(r(false, true), 0.0);
        assert!((r(true, false) - 0.1).abs() < 1e-7);
        assert!((r(true, true) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn sub_reward_table() {
        let w = RewardWeights::default();
        let r = |format, expert, mc| w.sub_reward(&SubParts { format, expert }, mc);
        assert_eq!(r(false, 1.0, true), 0.0);
        assert!((r(true, 0.0, false) - 0.1).abs() < 1e-7);
        assert!((r(true, 1.0, false) - 0.5).abs() < 1e-7);
        assert!((r(true, 0.0, true) - 0.6).abs() < 1e-7);
        assert!((r(true, 1.0, true) - 1.0).abs() < 1e-7);
        assert!((r(true, 0.5, true) - 0.8).abs() < 1e-7);
        assert!(
            (r(true, 7.0, false) - 0.5).abs() < 1e-7,
            "expert is clamped to [0, 1]"
        );
    }
}
