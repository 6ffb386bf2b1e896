//! Property tests of the M-GRPO maths (ALGORITHM.md's invariants).
use mgrpo_algo::{
    MainParts, RewardWeights, Slot, StdKind, SubCallStat, SubSettings, align_group,
    group_advantages, main_advantages, publish_main_group, sub_advantages,
};
use proptest::prelude::*;

fn mean_std(xs: &[f32]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
    let v = xs.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, v.sqrt())
}

/// One rollout: (format, correct, its calls as (format, expert)).
type RolloutSpec = (bool, bool, Vec<(bool, f32)>);

/// One group of rollouts.
fn group_strategy() -> impl Strategy<Value = Vec<RolloutSpec>> {
    prop::collection::vec(
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec((any::<bool>(), 0.0f32..=1.0), 0..7),
        ),
        1..9,
    )
}

fn build(
    group: &[RolloutSpec],
) -> (Vec<mgrpo_algo::MainRolloutStat>, Vec<SubCallStat>) {
    let parts: Vec<MainParts> = group
        .iter()
        .map(|(format, correct, _)| MainParts {
            format: *format,
            correct: *correct,
        })
        .collect();
    let d: Vec<u32> = group.iter().map(|g| g.2.len() as u32).collect();
    let (main, _) = publish_main_group(
        3,
        1,
        &parts,
        &d,
        &RewardWeights::default(),
        StdKind::Population,
    );
    let calls = group
        .iter()
        .enumerate()
        .flat_map(|(k, g)| {
            g.2.iter()
                .enumerate()
                .map(move |(i, (format, expert))| SubCallStat {
                    version: 1,
                    step: 3,
                    query: 1,
                    rollout: k as u32,
                    call: i as u32,
                    format: *format,
                    expert: *expert,
                })
        })
        .collect();
    (main, calls)
}

fn settings(d_max: usize, seed: u64) -> SubSettings {
    SubSettings {
        d_max,
        run_seed: seed,
        weights: RewardWeights::default(),
        std: StdKind::Population,
        eps: 1e-6,
    }
}

proptest! {
    #[test]
    fn advantages_have_mean_zero_std_one(rewards in prop::collection::vec(0.0f32..1.0, 2..16)) {
        let (a, s) = group_advantages(&rewards, StdKind::Population, 1e-6);
        prop_assume!(s.std > 1e-3);
        let (m, sd) = mean_std(&a);
        prop_assert!(m.abs() < 1e-4, "mean {m}");
        prop_assert!((sd - 1.0).abs() < 1e-3, "std {sd}");
    }

    #[test]
    fn sub_advantages_normalised_over_non_padding(group in group_strategy(), d_max in 1usize..6, seed in any::<u64>()) {
        let (main, calls) = build(&group);
        let g = sub_advantages(&main, &calls, &settings(d_max, seed)).unwrap();
        let flat: Vec<f32> = g.alignment.iter().zip(&g.slot_advantages).flat_map(|(a, adv)| {
            a.slots.iter().zip(adv).filter(|(s, _)| **s != Slot::Padding).map(|(_, x)| *x).collect::<Vec<_>>()
        }).collect();
        if g.published.stats.std > 1e-3 {
            let (m, sd) = mean_std(&flat);
            prop_assert!(m.abs() < 1e-4);
            prop_assert!((sd - 1.0).abs() < 1e-3);
        } else {
            prop_assert!(flat.iter().all(|x| *x == 0.0));
        }
        for (a, adv) in g.alignment.iter().zip(&g.slot_advantages) {
            for (s, x) in a.slots.iter().zip(adv) {
                if *s == Slot::Padding { prop_assert_eq!(*x, 0.0); }
                prop_assert!(x.is_finite());
            }
        }
    }

    #[test]
    fn alignment_has_d_max_slots_of_own_calls(d in prop::collection::vec(0u32..10, 1..9), d_max in 1usize..6, seed in any::<u64>(), step in 0u64..100, query in 0u32..50) {
        let a = align_group(&d, d_max, seed, step, query);
        prop_assert_eq!(a.len(), d.len());
        for (k, r) in a.iter().enumerate() {
            prop_assert_eq!(r.slots.len(), d_max);
            prop_assert_eq!(r.rollout as usize, k);
            for s in &r.slots {
                match s {
                    Slot::Call(i) => prop_assert!(*i < d[k]),
                    Slot::Padding => prop_assert_eq!(d[k], 0),
                }
            }
            let kept = r.slots.iter().filter(|s| **s != Slot::Padding).count();
            let dk = d[k] as usize;
            let (want_kept, want_dropped) = if dk == 0 { (0, 0) } else if dk > d_max { (d_max, dk - d_max) } else { (d_max, 0) };
            prop_assert_eq!((kept, r.dropped.len()), (want_kept, want_dropped));
        }
        prop_assert_eq!(a, align_group(&d, d_max, seed, step, query));
    }

    #[test]
    fn results_invariant_to_arrival_order(group in group_strategy(), seed in any::<u64>(), rot in 0usize..50) {
        let (main, calls) = build(&group);
        let reference = sub_advantages(&main, &calls, &settings(4, seed)).unwrap();
        let mut main2 = main.clone();
        main2.reverse();
        let mut calls2 = calls.clone();
        if !calls2.is_empty() {
            let n = calls2.len();
            calls2.rotate_left(rot % n);
            calls2.reverse();
        }
        prop_assert_eq!(&reference, &sub_advantages(&main2, &calls2, &settings(4, seed)).unwrap());
        prop_assert_eq!(
            main_advantages(&main, StdKind::Population, 1e-6).unwrap(),
            main_advantages(&main2, StdKind::Population, 1e-6).unwrap()
        );
    }
}
