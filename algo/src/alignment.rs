//! Trajectory alignment (ALGORITHM.md): every main rollout contributes exactly `D_max`
//! sub-trajectory slots, whatever its number of calls `d_k`.
//!
//! - `d_k > D_max`: `D_max` distinct calls drawn uniformly without replacement; the others are
//!   dropped from training (still logged).
//! - `0 < d_k < D_max`: all `d_k` calls are kept, and the `D_max − d_k` remaining slots are
//!   filled with calls of the same rollout drawn uniformly *with* replacement. (ALGORITHM.md's
//!   "fill the remaining slots by duplicating" reads as: the originals stay, duplicates fill.)
//! - `d_k = D_max`: the calls in order.
//! - `d_k = 0`: `D_max` padding slots of weight 0.
//!
//! Kept calls appear in ascending call order, duplicates after them in draw order. The draws use
//! `derive_seed(run_seed, [ALIGN, step, query, rollout])`, so the result depends only on those
//! coordinates and `d_k`, never on arrival order or on the node.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::seed::{derive_seed, salt};

/// What fills one aligned slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// Call `i` of the rollout trains in this slot.
    Call(u32),
    /// A zero-weight padding slot.
    Padding,
}

/// The aligned slots of one rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutAlignment {
    /// The rollout `k`.
    pub rollout: u32,
    /// `d_k`, the calls it made.
    pub calls: u32,
    /// Exactly `D_max` slots.
    pub slots: Vec<Slot>,
    /// Calls dropped from training (`d_k > D_max`), ascending.
    pub dropped: Vec<u32>,
}

impl RolloutAlignment {
    /// Whether slot `j` is padding.
    pub fn is_padding(&self, j: usize) -> bool {
        self.slots[j] == Slot::Padding
    }
}

/// Aligns one rollout with `calls = d_k` to `d_max` slots using the given seed.
pub fn align_rollout(rollout: u32, calls: u32, d_max: usize, seed: u64) -> RolloutAlignment {
    let d = calls as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (slots, dropped) = if d == 0 {
        (vec![Slot::Padding; d_max], Vec::new())
    } else if d > d_max {
        // Partial Fisher–Yates: the first d_max entries are a uniform draw without replacement.
        let mut ids: Vec<u32> = (0..calls).collect();
        for j in 0..d_max {
            let pick = rng.random_range(j..d);
            ids.swap(j, pick);
        }
        let mut kept = ids[..d_max].to_vec();
        kept.sort_unstable();
        let mut dropped = ids[d_max..].to_vec();
        dropped.sort_unstable();
        (kept.into_iter().map(Slot::Call).collect(), dropped)
    } else {
        let mut slots: Vec<Slot> = (0..calls).map(Slot::Call).collect();
        while slots.len() < d_max {
            slots.push(Slot::Call(rng.random_range(0..calls)));
        }
        (slots, Vec::new())
    };
    RolloutAlignment {
        rollout,
        calls,
        slots,
        dropped,
    }
}

/// Aligns every rollout of one query group; `calls_per_rollout[k] = d_k`.
pub fn align_group(
    calls_per_rollout: &[u32],
    d_max: usize,
    run_seed: u64,
    step: u64,
    query: u32,
) -> Vec<RolloutAlignment> {
    calls_per_rollout
        .iter()
        .enumerate()
        .map(|(k, &d)| {
            let seed = derive_seed(run_seed, &[salt::ALIGN, step, query as u64, k as u64]);
            align_rollout(k as u32, d, d_max, seed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d_zero_is_padding() {
        let a = align_rollout(0, 0, 4, 1);
        assert_eq!(a.slots, vec![Slot::Padding; 4]);
        assert!(a.dropped.is_empty());
    }

    #[test]
    fn d_equal_is_identity() {
        let a = align_rollout(2, 4, 4, 9);
        assert_eq!(a.slots, (0..4).map(Slot::Call).collect::<Vec<_>>());
    }

    #[test]
    fn d_above_drops_without_replacement() {
        for seed in 0..50 {
            let a = align_rollout(0, 7, 4, seed);
            let mut ids: Vec<u32> = a
                .slots
                .iter()
                .map(|s| match s {
                    Slot::Call(i) => *i,
                    Slot::Padding => panic!("no padding"),
                })
                .collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "distinct, ascending");
            ids.extend(&a.dropped);
            ids.sort_unstable();
            assert_eq!(ids, (0..7).collect::<Vec<_>>());
        }
    }

    #[test]
    fn d_below_keeps_originals_then_duplicates() {
        let a = align_rollout(0, 2, 4, 3);
        assert_eq!(&a.slots[..2], &[Slot::Call(0), Slot::Call(1)]);
        assert!(
            a.slots[2..]
                .iter()
                .all(|s| matches!(s, Slot::Call(i) if *i < 2))
        );
        // Uniform with replacement: over 8000 draws each call fills 4000 ± 4σ (σ ≈ 45) of the
        // extra slots — a 45/55 bias (3600) fails.
        let mut counts = [0; 2];
        for seed in 0..4000 {
            for s in &align_rollout(0, 2, 4, seed).slots[2..] {
                if let Slot::Call(i) = s {
                    counts[*i as usize] += 1;
                }
            }
        }
        assert_eq!(counts.iter().sum::<i32>(), 8000);
        assert!(
            counts.iter().all(|&c| (3820..=4180).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn group_uses_rollout_coordinates() {
        let g = align_group(&[1, 0, 6], 4, 42, 3, 1);
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].slots, vec![Slot::Call(0); 4]);
        assert_eq!(g[1].slots, vec![Slot::Padding; 4]);
        assert_eq!(g[2].dropped.len(), 2);
        assert_eq!(g, align_group(&[1, 0, 6], 4, 42, 3, 1));
    }
}
