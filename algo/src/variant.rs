//! The algorithm variants the system runs (ALGORITHM.md, Baselines), as data: which learners
//! train and which batches each builds.
use serde::{Deserialize, Serialize};

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
}
