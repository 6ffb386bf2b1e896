//! The decoupled statistics: exactly what ALGORITHM.md lets cross nodes, and the functions
//! each learner uses to turn its own data plus the other side's published statistics into
//! advantages.
//!
//! - The main side publishes, per rollout `(q, k)`: `(R_M, r_format, r_correct, d_k)`
//!   ([`MainRolloutStat`]) and per group `(mean R_M, std R_M)` ([`MainGroupStat`]).
//! - The sub side publishes, per call `(q, k, i)`: `(r_format, r_expert)` ([`SubCallStat`]) and
//!   per group after alignment `(mean R_S, std R_S)` ([`SubGroupStat`]).
//! - The main learner needs nothing from the sub side; the sub learner needs the main side's
//!   per-rollout `r_correct` and `d_k`.
//!
//! Inputs are sorted by their coordinates before use, so results never depend on the order in
//! which records arrived.
use serde::{Deserialize, Serialize};

use crate::advantages::{GroupStats, StdKind, group_advantages};
use crate::alignment::{RolloutAlignment, Slot, align_group};
use crate::rewards::{MainParts, RewardWeights, SubParts};

/// Version of the statistics' encoding (they travel through the store and across nodes).
pub const STATS_VERSION: u16 = 1;

fn stats_version() -> u16 {
    STATS_VERSION
}

/// Per main rollout `(q, k)`: `(R_M, r_format, r_correct, d_k)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MainRolloutStat {
    /// Encoding version.
    #[serde(default = "stats_version")]
    pub version: u16,
    /// Training step.
    pub step: u64,
    /// Query index in the step's batch.
    pub query: u32,
    /// Rollout `k`.
    pub rollout: u32,
    /// `R_M`.
    pub reward: f32,
    /// `r_format`.
    pub format: bool,
    /// `r_correct`.
    pub correct: bool,
    /// `d_k`.
    pub calls: u32,
}

/// Per query group: `(mean R_M, std R_M)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MainGroupStat {
    /// Encoding version.
    #[serde(default = "stats_version")]
    pub version: u16,
    /// Training step.
    pub step: u64,
    /// Query index.
    pub query: u32,
    /// Mean, std and count of `R_M` over the K rollouts.
    pub stats: GroupStats,
}

/// Per sub call `(q, k, i)`: `(r_format, r_expert)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubCallStat {
    /// Encoding version.
    #[serde(default = "stats_version")]
    pub version: u16,
    /// Training step.
    pub step: u64,
    /// Query index.
    pub query: u32,
    /// Rollout `k`.
    pub rollout: u32,
    /// Call index `i` within the rollout.
    pub call: u32,
    /// The call's own `r_format`.
    pub format: bool,
    /// The judge's `r_expert`.
    pub expert: f32,
}

impl SubCallStat {
    /// `R_S` of this call (ALGORITHM.md): its own format and expert score, and the correctness
    /// of the main rollout `main` that made it. The one place the sub reward is computed.
    pub fn reward(&self, weights: &RewardWeights, main: &MainRolloutStat) -> f32 {
        let parts = SubParts {
            format: self.format,
            expert: self.expert,
        };
        weights.sub_reward(&parts, main.correct)
    }
}

/// Per query group after alignment: `(mean R_S, std R_S)` over non-padding slots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubGroupStat {
    /// Encoding version.
    #[serde(default = "stats_version")]
    pub version: u16,
    /// Training step.
    pub step: u64,
    /// Query index.
    pub query: u32,
    /// Mean, std and count of `R_S` over the aligned non-padding slots.
    pub stats: GroupStats,
}

/// Why a group's records are inconsistent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// Records of several steps or queries were mixed in one group.
    #[error("group mixes records of (step, query) {expected:?} and {found:?}")]
    MixedGroup {
        /// The group's coordinates.
        expected: (u64, u32),
        /// A stray record's.
        found: (u64, u32),
    },
    /// The rollouts are not exactly `0..K`.
    #[error("rollout indices must be 0..K without gaps or repeats, got {0:?}")]
    BadRollouts(Vec<u32>),
    /// A rollout's calls do not match its `d_k`.
    #[error("rollout {rollout} declares d_k = {declared} but the calls are {found:?}")]
    BadCalls {
        /// The rollout.
        rollout: u32,
        /// Its `d_k`.
        declared: u32,
        /// The call indices found.
        found: Vec<u32>,
    },
}

/// The main side of one group: rewards from parts, and what it publishes.
///
/// `parts[k]` and `calls[k]` describe rollout `k`.
pub fn publish_main_group(
    step: u64,
    query: u32,
    parts: &[MainParts],
    calls: &[u32],
    weights: &RewardWeights,
    kind: StdKind,
) -> (Vec<MainRolloutStat>, MainGroupStat) {
    let rollouts: Vec<MainRolloutStat> = parts
        .iter()
        .zip(calls)
        .enumerate()
        .map(|(k, (p, &d))| MainRolloutStat {
            version: STATS_VERSION,
            step,
            query,
            rollout: k as u32,
            reward: weights.main_reward(p),
            format: p.format,
            correct: p.correct,
            calls: d,
        })
        .collect();
    let rewards: Vec<f32> = rollouts.iter().map(|r| r.reward).collect();
    let (_, stats) = group_advantages(&rewards, kind, 1.0);
    (
        rollouts,
        MainGroupStat {
            version: STATS_VERSION,
            step,
            query,
            stats,
        },
    )
}

/// Sorts and checks one group's main records: same (step, query), rollouts exactly `0..K`.
fn sorted_main(rollouts: &[MainRolloutStat]) -> Result<Vec<MainRolloutStat>, StatsError> {
    let mut sorted = rollouts.to_vec();
    sorted.sort_by_key(|r| r.rollout);
    if let Some(first) = sorted.first() {
        let expected = (first.step, first.query);
        if let Some(stray) = sorted.iter().find(|r| (r.step, r.query) != expected) {
            return Err(StatsError::MixedGroup {
                expected,
                found: (stray.step, stray.query),
            });
        }
    }
    if sorted
        .iter()
        .enumerate()
        .any(|(k, r)| r.rollout != k as u32)
    {
        return Err(StatsError::BadRollouts(
            sorted.iter().map(|r| r.rollout).collect(),
        ));
    }
    Ok(sorted)
}

/// The main learner's advantages `A_M(k)`, in rollout order, from the group's published
/// per-rollout statistics alone.
pub fn main_advantages(
    rollouts: &[MainRolloutStat],
    kind: StdKind,
    eps: f32,
) -> Result<(Vec<f32>, GroupStats), StatsError> {
    let sorted = sorted_main(rollouts)?;
    let rewards: Vec<f32> = sorted.iter().map(|r| r.reward).collect();
    Ok(group_advantages(&rewards, kind, eps))
}

/// The sub learner's view of one group after alignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubGroupAdvantages {
    /// Per rollout, its `D_max` slots.
    pub alignment: Vec<RolloutAlignment>,
    /// Per rollout and slot, `R_S` of the call in the slot (0 for padding).
    pub slot_rewards: Vec<Vec<f32>>,
    /// Per rollout and slot, `A_S` (0 for padding).
    pub slot_advantages: Vec<Vec<f32>>,
    /// What the sub side publishes for the group.
    pub published: SubGroupStat,
}

/// Settings of the sub side's computation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubSettings {
    /// Slots per rollout.
    pub d_max: usize,
    /// The run seed (alignment draws derive from it).
    pub run_seed: u64,
    /// Reward weights.
    pub weights: RewardWeights,
    /// Std kind.
    pub std: StdKind,
    /// ε.
    pub eps: f32,
}

/// The sub learner's computation for one group: from the main side's published per-rollout
/// statistics (only `r_correct` and `d_k` are used) and its own call records, align, reward each
/// slot, and compute `A_S` over the aligned non-padding slots (duplicates count).
pub fn sub_advantages(
    main: &[MainRolloutStat],
    calls: &[SubCallStat],
    settings: &SubSettings,
) -> Result<SubGroupAdvantages, StatsError> {
    let main = sorted_main(main)?;
    let (step, query) = main.first().map_or((0, 0), |r| (r.step, r.query));
    let mut calls = calls.to_vec();
    calls.sort_by_key(|c| (c.rollout, c.call));
    if let Some(stray) = calls.iter().find(|c| (c.step, c.query) != (step, query)) {
        return Err(StatsError::MixedGroup {
            expected: (step, query),
            found: (stray.step, stray.query),
        });
    }
    // Per rollout, its calls in order; they must be exactly 0..d_k.
    let mut per_rollout: Vec<Vec<SubCallStat>> = vec![Vec::new(); main.len()];
    for c in &calls {
        match per_rollout.get_mut(c.rollout as usize) {
            Some(v) => v.push(*c),
            None => {
                return Err(StatsError::BadRollouts(
                    calls.iter().map(|c| c.rollout).collect(),
                ));
            }
        }
    }
    for (r, cs) in main.iter().zip(&per_rollout) {
        let ids: Vec<u32> = cs.iter().map(|c| c.call).collect();
        if ids != (0..r.calls).collect::<Vec<_>>() {
            return Err(StatsError::BadCalls {
                rollout: r.rollout,
                declared: r.calls,
                found: ids,
            });
        }
    }
    let d: Vec<u32> = main.iter().map(|r| r.calls).collect();
    let alignment = align_group(&d, settings.d_max, settings.run_seed, step, query);
    let slot_rewards: Vec<Vec<f32>> = alignment
        .iter()
        .map(|a| {
            let r = &main[a.rollout as usize];
            a.slots
                .iter()
                .map(|s| match s {
                    Slot::Call(i) => {
                        per_rollout[a.rollout as usize][*i as usize].reward(&settings.weights, r)
                    }
                    Slot::Padding => 0.0,
                })
                .collect()
        })
        .collect();
    let flat: Vec<f32> = alignment
        .iter()
        .zip(&slot_rewards)
        .flat_map(|(a, rs)| {
            a.slots
                .iter()
                .zip(rs)
                .filter(|(s, _)| **s != Slot::Padding)
                .map(|(_, r)| *r)
        })
        .collect();
    let (adv, stats) = group_advantages(&flat, settings.std, settings.eps);
    let mut it = adv.into_iter();
    let slot_advantages = alignment
        .iter()
        .map(|a| {
            a.slots
                .iter()
                .map(|s| match s {
                    Slot::Padding => 0.0,
                    Slot::Call(_) => it.next().unwrap_or(0.0),
                })
                .collect()
        })
        .collect();
    Ok(SubGroupAdvantages {
        alignment,
        slot_rewards,
        slot_advantages,
        published: SubGroupStat {
            version: STATS_VERSION,
            step,
            query,
            stats,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(rollout: u32, call: u32, format: bool, expert: f32) -> SubCallStat {
        SubCallStat {
            version: STATS_VERSION,
            step: 0,
            query: 0,
            rollout,
            call,
            format,
            expert,
        }
    }

    fn settings() -> SubSettings {
        SubSettings {
            d_max: 2,
            run_seed: 1,
            weights: RewardWeights::default(),
            std: StdKind::Population,
            eps: 1e-6,
        }
    }

    #[test]
    fn hand_computed_group() {
        let w = RewardWeights::default();
        let parts = [
            MainParts {
                format: true,
                correct: true,
            }, // R_M 1.0, d=2
            MainParts {
                format: true,
                correct: false,
            }, // 0.1, d=0
            MainParts {
                format: false,
                correct: true,
            }, // 0.0 (format error), d=1
        ];
        let (main, group) = publish_main_group(0, 0, &parts, &[2, 0, 1], &w, StdKind::Population);
        assert_eq!(
            main.iter().map(|r| r.reward).collect::<Vec<_>>(),
            vec![1.0, 0.1, 0.0]
        );
        assert!((group.stats.mean - 1.1 / 3.0).abs() < 1e-6);
        let (a, _) = main_advantages(&main, StdKind::Population, 1e-6).unwrap();
        assert!(a[0] > 0.0 && a[1] < 0.0 && a[2] < a[1]);

        let calls = [
            call(0, 1, true, 0.0),  // R_S = 0.1 + 0.5 = 0.6
            call(0, 0, true, 1.0),  // R_S = 0.1 + 0.5 + 0.4 = 1.0
            call(2, 0, false, 1.0), // format error → 0
        ];
        let g = sub_advantages(&main, &calls, &settings()).unwrap();
        assert_eq!(g.alignment[0].slots, vec![Slot::Call(0), Slot::Call(1)]);
        assert_eq!(g.alignment[1].slots, vec![Slot::Padding, Slot::Padding]);
        assert_eq!(g.alignment[2].slots, vec![Slot::Call(0), Slot::Call(0)]);
        assert!((g.slot_rewards[0][0] - 1.0).abs() < 1e-6);
        assert!((g.slot_rewards[0][1] - 0.6).abs() < 1e-6);
        assert_eq!(g.slot_rewards[2], vec![0.0, 0.0]);
        // Non-padding slots: 1.0, 0.6, 0.0, 0.0 → mean 0.4, pop std sqrt(0.18)
        let s = g.published.stats;
        assert_eq!(s.count, 4);
        assert!((s.mean - 0.4).abs() < 1e-6);
        let std = 0.18f32.sqrt();
        assert!((s.std - std).abs() < 1e-5);
        assert!((g.slot_advantages[0][0] - 0.6 / std).abs() < 1e-4);
        assert_eq!(g.slot_advantages[1], vec![0.0, 0.0]);
        assert!((g.slot_advantages[2][1] + 0.4 / std).abs() < 1e-4);
    }

    #[test]
    fn inconsistent_records_are_errors() {
        let w = RewardWeights::default();
        let parts = [MainParts {
            format: true,
            correct: true,
        }; 2];
        let (main, _) = publish_main_group(0, 0, &parts, &[1, 0], &w, StdKind::Population);
        let err = sub_advantages(&main, &[call(0, 1, true, 1.0)], &settings()).unwrap_err();
        assert!(matches!(err, StatsError::BadCalls { rollout: 0, .. }));
        let mut stray = call(0, 0, true, 1.0);
        stray.query = 5;
        assert!(matches!(
            sub_advantages(&main, &[stray], &settings()),
            Err(StatsError::MixedGroup { .. })
        ));
        assert!(matches!(
            main_advantages(&main[1..], StdKind::Population, 1e-6),
            Err(StatsError::BadRollouts(_))
        ));
    }
}
