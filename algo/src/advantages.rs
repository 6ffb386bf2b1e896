//! Group-relative advantages: `A = (R − mean) / (std + ε)` over one query group.
use serde::{Deserialize, Serialize};

/// Which standard deviation normalises the advantages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdKind {
    /// Divide by `n` (ALGORITHM.md's default).
    #[default]
    Population,
    /// Divide by `n − 1`, as torch's `std()` in the released code; 0 when `n = 1`.
    Unbiased,
}

/// Mean, std and size of one group's rewards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    /// Mean reward.
    pub mean: f32,
    /// Standard deviation (population or unbiased).
    pub std: f32,
    /// Number of rewards.
    pub count: u32,
}

/// Mean and std of `rewards` (computed in f64). An empty group has count 0 and zeros.
pub fn group_stats(rewards: &[f32], kind: StdKind) -> GroupStats {
    let n = rewards.len();
    if n == 0 {
        return GroupStats::default();
    }
    let mean = rewards.iter().map(|&r| r as f64).sum::<f64>() / n as f64;
    let ss = rewards
        .iter()
        .map(|&r| (r as f64 - mean).powi(2))
        .sum::<f64>();
    let denom = match kind {
        StdKind::Population => n as f64,
        StdKind::Unbiased => (n as f64 - 1.0).max(1.0),
    };
    let std = if n == 1 { 0.0 } else { (ss / denom).sqrt() };
    GroupStats {
        mean: mean as f32,
        std: std as f32,
        count: n as u32,
    }
}

/// `(r − mean) / (std + ε)` for each reward of a group with the given statistics. A group whose
/// rewards are all equal (or that has one member) gets exactly 0 everywhere, never NaN.
pub fn normalise(rewards: &[f32], stats: &GroupStats, eps: f32) -> Vec<f32> {
    let all_equal = rewards.windows(2).all(|w| w[0] == w[1]);
    if all_equal || stats.count <= 1 {
        return vec![0.0; rewards.len()];
    }
    let denom = stats.std as f64 + eps as f64;
    rewards
        .iter()
        .map(|&r| ((r as f64 - stats.mean as f64) / denom) as f32)
        .collect()
}

/// Statistics and advantages of one group in one call.
pub fn group_advantages(rewards: &[f32], kind: StdKind, eps: f32) -> (Vec<f32>, GroupStats) {
    let stats = group_stats(rewards, kind);
    (normalise(rewards, &stats, eps), stats)
}

/// The advantages a loss trains on when negative ones weigh `negative_weight` (`w`): `A` where
/// `A ≥ 0`, `w·A` below. `w = 1` is GRPO; `w = 0` trains only on what beat its group's mean.
pub fn weigh_negatives(advantages: &[f32], negative_weight: f32) -> Vec<f32> {
    advantages
        .iter()
        .map(|&a| if a < 0.0 { a * negative_weight } else { a })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
    }

    #[test]
    fn hand_computed_population_and_unbiased() {
        // rewards 1.0, 0.1, 0.1, 0.0: mean 0.3; population var = (0.49+0.04+0.04+0.09)/4 = 0.165.
        let r = [1.0, 0.1, 0.1, 0.0];
        let (a, s) = group_advantages(&r, StdKind::Population, 1e-6);
        assert!((s.mean - 0.3).abs() < 1e-6);
        let std = 0.165f32.sqrt();
        assert!((s.std - std).abs() < 1e-6);
        assert!(close(&a, &[0.7 / std, -0.2 / std, -0.2 / std, -0.3 / std]));
        let (a, s) = group_advantages(&r, StdKind::Unbiased, 1e-6);
        let std = (0.66f32 / 3.0).sqrt();
        assert!((s.std - std).abs() < 1e-6);
        assert!(close(&a, &[0.7 / std, -0.2 / std, -0.2 / std, -0.3 / std]));
    }

    #[test]
    fn negative_advantages_are_weighed() {
        let a = [1.5, -0.5, 0.0, -2.0];
        assert_eq!(weigh_negatives(&a, 1.0), a.to_vec());
        assert_eq!(weigh_negatives(&a, 0.0), vec![1.5, 0.0, 0.0, 0.0]);
        assert_eq!(weigh_negatives(&a, 0.5), vec![1.5, -0.25, 0.0, -1.0]);
    }

    #[test]
    fn degenerate_groups_are_zero() {
        let (a, s) = group_advantages(&[0.1; 8], StdKind::Population, 1e-6);
        assert_eq!(a, vec![0.0; 8]);
        assert_eq!(s.std, 0.0);
        let (a, s) = group_advantages(&[1.0], StdKind::Unbiased, 1e-6);
        assert_eq!((a, s.std, s.count), (vec![0.0], 0.0, 1));
        let (a, s) = group_advantages(&[], StdKind::Population, 1e-6);
        assert!(a.is_empty() && s.count == 0);
        // Two members: ±1 with population std.
        let (a, _) = group_advantages(&[1.0, 0.0], StdKind::Population, 0.0);
        assert!(close(&a, &[1.0, -1.0]));
    }
}
