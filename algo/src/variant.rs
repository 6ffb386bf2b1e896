//! The algorithm variants the system runs (ALGORITHM.md, Baselines), as data: which learners
//! train and which batches each builds.
use serde::{Deserialize, Serialize};

use crate::assemble::concat_batches;
use crate::batch::TrainBatch;

/// A batch some learner builds and trains on in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchKind {
    /// The main learner's `B·K` rows of main-agent trajectories, advantages `A_M`.
    Main,
    /// The sub learner's `B·K·D_max` aligned rows of sub-agent trajectories, advantages `A_S`.
    Sub,
    /// One learner's batch: the main rows then the sub rows, each row with its own role's
    /// advantage (`shared`).
    Shared,
    /// One GRPO batch over the single agent's `B·K` rollouts, advantages from `R_M` only.
    Single,
}

/// The variant selected by config (`algo.variant`) or `--algo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algo {
    /// The full method: both roles train, each on its own batch.
    #[default]
    Mgrpo,
    /// The sub-agent is fixed after warm start; only the main agent trains.
    FrozenSub,
    /// One model for both roles; one batch holding both roles' rows.
    Shared,
    /// One agent using the tools directly, GRPO over its K rollouts with `R_M` only.
    Single,
}

impl Algo {
    /// All variants, in a stable order.
    pub const ALL: [Algo; 4] = [Algo::Mgrpo, Algo::FrozenSub, Algo::Shared, Algo::Single];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Mgrpo => "mgrpo",
            Algo::FrozenSub => "frozen-sub",
            Algo::Shared => "shared",
            Algo::Single => "single",
        }
    }

    /// Whether the main agent delegates to sub-agents (all but `single`).
    pub fn uses_sub_agents(self) -> bool {
        self != Algo::Single
    }

    /// Whether a separate sub learner trains the sub-agent (only `mgrpo`).
    pub fn trains_sub_separately(self) -> bool {
        self == Algo::Mgrpo
    }

    /// Whether the sub-agent's policy changes during training.
    pub fn sub_is_trained(self) -> bool {
        matches!(self, Algo::Mgrpo | Algo::Shared)
    }

    /// Whether both roles share one model (and one learner).
    pub fn shares_model(self) -> bool {
        self == Algo::Shared
    }

    /// The batches built each step, in the order they are built.
    ///
    /// `mgrpo` → main + sub; `frozen-sub` → main only; `shared` → one batch of both roles'
    /// rows; `single` → one GRPO batch.
    pub fn batches(self) -> &'static [BatchKind] {
        match self {
            Algo::Mgrpo => &[BatchKind::Main, BatchKind::Sub],
            Algo::FrozenSub => &[BatchKind::Main],
            Algo::Shared => &[BatchKind::Shared],
            Algo::Single => &[BatchKind::Single],
        }
    }

    /// Whether the step needs sub-agent advantages (alignment and `A_S`) at all.
    pub fn needs_sub_advantages(self) -> bool {
        matches!(self, Algo::Mgrpo | Algo::Shared)
    }

    /// Turns the step's assembled role batches into the batches this variant trains on, as
    /// [`Algo::batches`] lists them. `main` is the main (or single) agent's `B·K` batch with
    /// `A_M`; `sub` the aligned `B·K·D_max` sub batch with `A_S` (ignored where the variant
    /// does not train the sub-agent; an absent one counts as empty).
    pub fn step_batches(
        self,
        main: TrainBatch,
        sub: Option<TrainBatch>,
    ) -> Vec<(BatchKind, TrainBatch)> {
        let sub = sub.unwrap_or_else(|| TrainBatch::empty(main.pad_id));
        match self {
            Algo::Mgrpo => vec![(BatchKind::Main, main), (BatchKind::Sub, sub)],
            Algo::FrozenSub => vec![(BatchKind::Main, main)],
            Algo::Shared => vec![(BatchKind::Shared, concat_batches(&main, &sub))],
            Algo::Single => vec![(BatchKind::Single, main)],
        }
    }
}

impl std::str::FromStr for Algo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algo::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!("unknown algorithm {s:?}: expected mgrpo, frozen-sub, shared or single")
            })
    }
}

impl std::fmt::Display for Algo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_fromstr() {
        for a in Algo::ALL {
            assert_eq!(a.name().parse::<Algo>().unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.name()));
        }
        assert!("grpo".parse::<Algo>().is_err());
        assert!(Algo::Mgrpo.trains_sub_separately() && !Algo::FrozenSub.sub_is_trained());
        assert!(!Algo::Single.uses_sub_agents() && Algo::Shared.shares_model());
    }

    fn batch(rows: usize, seq_len: usize, adv: f32) -> TrainBatch {
        let n = rows * seq_len;
        TrainBatch {
            rows,
            seq_len,
            pad_id: 0,
            tokens: vec![1; n],
            loss_mask: vec![1.0; n],
            advantages: vec![adv; n],
            old_logprobs: vec![0.0; n],
            row_weights: vec![1.0; rows],
        }
    }

    #[test]
    fn step_batches_follow_the_plan() {
        for a in Algo::ALL {
            let built = a.step_batches(batch(2, 3, 1.0), Some(batch(8, 5, -1.0)));
            let kinds: Vec<BatchKind> = built.iter().map(|(k, _)| *k).collect();
            assert_eq!(kinds, a.batches());
            match a {
                Algo::Mgrpo => assert_eq!((built[0].1.rows, built[1].1.rows), (2, 8)),
                Algo::FrozenSub | Algo::Single => assert_eq!(built[0].1.rows, 2),
                Algo::Shared => {
                    let b = &built[0].1;
                    assert_eq!((b.rows, b.seq_len), (10, 5));
                    // Main rows keep +1 on their 3 tokens, sub rows keep −1.
                    assert_eq!(&b.advantages[..5], &[1.0, 1.0, 1.0, 0.0, 0.0]);
                    assert_eq!(&b.advantages[10..15], &[-1.0; 5]);
                }
            }
        }
        assert!(Algo::Shared.needs_sub_advantages() && !Algo::FrozenSub.needs_sub_advantages());
        let shared = Algo::Shared.step_batches(batch(2, 3, 1.0), None);
        assert_eq!(shared[0].1.rows, 2);
    }
}
