//! One learner update, as data: the step's published statistics plus this learner's own
//! trajectories → advantages (its role's, from `mgrpo_algo`) → the batch its variant trains on.
use std::collections::BTreeMap;

use mgrpo_algo::{
    BatchKind, SubGroupAdvantages, SubSettings, TrainBatch, Trajectory, concat_batches,
    main_advantages, main_batch, sub_advantages, sub_batch, weigh_negatives,
};

use crate::config::AlgoConfig;
use crate::rollout::keys::{CallKey, RolloutKey};
use crate::store_actor::StepStatistics;

/// A learner's trajectories of the steps it has not trained yet, keyed by their coordinates
/// (a duplicate replaces, never doubles).
#[derive(Debug, Default)]
pub struct Buffered {
    /// Main-agent (or single-agent) rollouts.
    pub main: BTreeMap<RolloutKey, Trajectory>,
    /// Sub-agent calls.
    pub sub: BTreeMap<CallKey, Trajectory>,
}

impl Buffered {
    /// Drops everything of step `step` and before.
    pub fn drop_through(&mut self, step: u64) {
        self.main.retain(|k, _| k.step > step);
        self.sub.retain(|k, _| k.rollout.step > step);
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.main.clear();
        self.sub.clear();
    }
}

/// The batch of one update and the advantages it used.
pub struct Built {
    /// The batch to train on.
    pub batch: TrainBatch,
    /// Per group (query order), `A_M(k)` (empty if this learner has no main rows), before
    /// `algo.negative_weight` weighs the batch's negative ones.
    pub main_advantages: Vec<Vec<f32>>,
    /// Per group, alignment and `A_S` (empty if this learner has no sub rows).
    pub sub: Vec<SubGroupAdvantages>,
    /// Bytes of the trajectories trained on (what stayed on this node).
    pub trajectory_bytes: u64,
}

/// Builds the batch of `kinds` for `step` from the statistics and the buffered trajectories.
pub fn build(
    algo: &AlgoConfig,
    run_seed: u64,
    pad: u32,
    kinds: &[BatchKind],
    step: u64,
    stats: &StepStatistics,
    buffered: &Buffered,
) -> Result<Built, String> {
    let needs_main = kinds.iter().any(|k| *k != BatchKind::Sub);
    let needs_sub = kinds
        .iter()
        .any(|k| matches!(k, BatchKind::Sub | BatchKind::Shared));
    let mut trajectory_bytes = 0u64;
    let mut size = |t: &Trajectory| {
        trajectory_bytes += mgrpo_store::codec::encode(t).map_or(0, |b| b.len() as u64);
    };
    let mut main_adv_all = Vec::new();
    let mut main = None;
    if needs_main {
        let mut trajs: Vec<Vec<&Trajectory>> = Vec::new();
        for (q, group) in stats.main.iter().enumerate() {
            let (adv, _) = main_advantages(group, algo.std, algo.eps).map_err(|e| e.to_string())?;
            let row: Vec<&Trajectory> = (0..group.len())
                .map(|k| {
                    buffered
                        .main
                        .get(&RolloutKey {
                            step,
                            query: q as u32,
                            rollout: k as u32,
                        })
                        .ok_or_else(|| format!("missing main trajectory ({step}, {q}, {k})"))
                })
                .collect::<Result<_, _>>()?;
            row.iter().for_each(|t| size(t));
            trajs.push(row);
            main_adv_all.push(adv);
        }
        let trained: Vec<_> = main_adv_all
            .iter()
            .map(|a| weigh_negatives(a, algo.negative_weight))
            .collect();
        main = Some(main_batch(&trajs, &trained, pad, None));
    }
    let mut sub_all = Vec::new();
    let mut sub = None;
    if needs_sub {
        let settings = SubSettings {
            d_max: algo.d_max,
            run_seed,
            weights: algo.weights,
            std: algo.std,
            eps: algo.eps,
        };
        let mut calls: Vec<Vec<Vec<&Trajectory>>> = Vec::new();
        for (q, (main, sub)) in stats.main.iter().zip(&stats.calls).enumerate() {
            let g = sub_advantages(main, sub, &settings).map_err(|e| e.to_string())?;
            let per_rollout: Vec<Vec<&Trajectory>> = main
                .iter()
                .map(|r| {
                    (0..r.calls)
                        .map(|i| {
                            let key = CallKey {
                                rollout: RolloutKey {
                                    step,
                                    query: q as u32,
                                    rollout: r.rollout,
                                },
                                call: i,
                            };
                            buffered
                                .sub
                                .get(&key)
                                .ok_or_else(|| format!("missing sub trajectory {key:?}"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<_, _>>()?;
            per_rollout.iter().flatten().for_each(|t| size(t));
            calls.push(per_rollout);
            sub_all.push(g);
        }
        let align: Vec<_> = sub_all.iter().map(|g| g.alignment.clone()).collect();
        let adv: Vec<Vec<_>> = sub_all
            .iter()
            .map(|g| {
                g.slot_advantages
                    .iter()
                    .map(|a| weigh_negatives(a, algo.negative_weight))
                    .collect()
            })
            .collect();
        sub = Some(sub_batch(&calls, &align, &adv, pad, None));
    }
    // Each built batch is moved into the one it belongs to, never copied.
    let batch_of = |kind: &BatchKind| -> Option<TrainBatch> {
        match kind {
            BatchKind::Main | BatchKind::Single => main.take(),
            BatchKind::Sub => sub.take(),
            BatchKind::Shared => Some(concat_batches(main.as_ref()?, sub.as_ref()?)),
        }
    };
    let batch = kinds
        .iter()
        .map(batch_of)
        .collect::<Option<Vec<_>>>()
        .and_then(|b| b.into_iter().reduce(|a, b| concat_batches(&a, &b)))
        .ok_or("nothing to train")?;
    Ok(Built {
        batch,
        main_advantages: main_adv_all,
        sub: sub_all,
        trajectory_bytes,
    })
}

#[cfg(test)]
mod tests {
    use mgrpo_algo::stats::STATS_VERSION;
    use mgrpo_algo::{MainRolloutStat, SubCallStat};

    use super::*;

    /// One group of two rollouts, the first right and the second wrong, each with one call
    /// whose expert score follows its rollout: every advantage is ±1 (main 1.0 / 0.1, sub
    /// 1.0 / 0.1).
    fn step() -> (StepStatistics, Buffered) {
        let traj = |t: u32| Trajectory {
            tokens: vec![t, t + 1],
            generated: vec![false, true],
            logprobs: vec![0.0, -0.5],
        };
        let mut buffered = Buffered::default();
        let mut main = Vec::new();
        let mut calls = Vec::new();
        for k in 0..2u32 {
            let right = k == 0;
            let rollout = RolloutKey {
                step: 0,
                query: 0,
                rollout: k,
            };
            main.push(MainRolloutStat {
                version: STATS_VERSION,
                step: 0,
                query: 0,
                rollout: k,
                reward: if right { 1.0 } else { 0.1 },
                format: true,
                correct: right,
                calls: 1,
            });
            calls.push(SubCallStat {
                version: STATS_VERSION,
                step: 0,
                query: 0,
                rollout: k,
                call: 0,
                format: true,
                expert: if right { 1.0 } else { 0.0 },
            });
            buffered.main.insert(rollout, traj(10 + k));
            buffered
                .sub
                .insert(CallKey { rollout, call: 0 }, traj(20 + k));
        }
        let stats = StepStatistics {
            main: vec![main],
            calls: vec![calls],
        };
        (stats, buffered)
    }

    /// The advantage on each row's generated token.
    fn trained(batch: &TrainBatch) -> Vec<f32> {
        (0..batch.rows)
            .filter(|r| batch.row_weights[*r] > 0.0)
            .map(|r| batch.advantages[r * batch.seq_len + 1])
            .collect()
    }

    #[test]
    fn negative_weight_scales_the_trained_negative_advantages_only() {
        let (stats, buffered) = step();
        for w in [1.0, 0.5, 0.0] {
            let algo = AlgoConfig {
                negative_weight: w,
                ..AlgoConfig::default()
            };
            // The sub batch fills each rollout's D_max = 4 slots with its one call.
            for (kind, per_rollout) in [(BatchKind::Main, 1), (BatchKind::Sub, 4)] {
                let built = build(&algo, 1, 0, &[kind], 0, &stats, &buffered).unwrap();
                let a = trained(&built.batch);
                let mut want = vec![1.0; per_rollout];
                want.extend(vec![-w; per_rollout]);
                assert_eq!(a.len(), want.len(), "{kind:?}");
                let close = a.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-4);
                assert!(close, "{kind:?} w = {w}: {a:?}, want {want:?}");
            }
            // What the run records stays the group-relative A.
            let built = build(&algo, 1, 0, &[BatchKind::Main], 0, &stats, &buffered).unwrap();
            assert!((built.main_advantages[0][1] + 1.0).abs() < 1e-4);
        }
    }
}
