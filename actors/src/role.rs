//! Roles, in one place: what a node can host ([`Role`]), which learner owns which model
//! ([`LearnerRole`]), the `ractor::pg` group each joins, and what each algorithm variant runs.
//!
//! A leaf: it imports nothing of this crate, so every module can name a role without a circle.
//! Every "which learner, which group, which batches under this variant" decision is answered
//! here from `mgrpo_algo`'s variant helpers, never re-derived at the call site.
use mgrpo_algo::{Algo, BatchKind};
use mgrpo_env::DemoRole;
use serde::{Deserialize, Serialize};

/// The `ractor::pg` group names of a run (scoped to the run, so two runs never meet).
pub mod group {
    /// Planners (main-agent inference).
    pub const PLANNER: &str = "role/planner";
    /// Executors (sub-agent inference + tools).
    pub const EXECUTOR: &str = "role/executor";
    /// The judge.
    pub const JUDGE: &str = "role/judge";
    /// The main learner (also the shared and single learners).
    pub const MAIN_LEARNER: &str = "role/learner-main";
    /// The sub learner.
    pub const SUB_LEARNER: &str = "role/learner-sub";
    /// The store actor.
    pub const STORE: &str = "role/store";
    /// The coordinator.
    pub const COORDINATOR: &str = "role/coordinator";
    /// One node agent per node (what runs where, link counters, faults, shutdown).
    pub const NODE_AGENT: &str = "node/agent";
    /// The control endpoint (next to the coordinator): `mgrpo swap` talks to it.
    pub const CONTROL: &str = "control/endpoint";
}

/// A role a node can host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Drives the steps (exactly one).
    Coordinator,
    /// Owns the sled store (exactly one, on the coordinator's node: it records the run).
    Store,
    /// Scores rollouts and calls.
    Judge,
    /// Main-agent inference.
    Planner,
    /// Sub-agent inference with tools.
    Executor,
    /// Trains the main agent (also the single/shared model); exactly one.
    LearnerMain,
    /// Trains the sub-agents (`mgrpo`, `frozen-sub`); exactly one.
    LearnerSub,
}

impl Role {
    /// Every role, in start order.
    pub const ALL: [Role; 7] = [
        Role::Store,
        Role::Judge,
        Role::LearnerMain,
        Role::LearnerSub,
        Role::Executor,
        Role::Planner,
        Role::Coordinator,
    ];

    /// The name used in `cluster.toml` and by `mgrpo status`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Store => "store",
            Role::Judge => "judge",
            Role::Planner => "planner",
            Role::Executor => "executor",
            Role::LearnerMain => "learner-main",
            Role::LearnerSub => "learner-sub",
        }
    }

    /// Parses a `cluster.toml` role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The `ractor::pg` group its actors join.
    pub fn group(self) -> &'static str {
        match self {
            Role::Coordinator => group::COORDINATOR,
            Role::Store => group::STORE,
            Role::Judge => group::JUDGE,
            Role::Planner => group::PLANNER,
            Role::Executor => group::EXECUTOR,
            Role::LearnerMain => group::MAIN_LEARNER,
            Role::LearnerSub => group::SUB_LEARNER,
        }
    }

    /// Whether a variant runs this role.
    pub fn used_by(self, variant: Algo) -> bool {
        match self {
            Role::Executor => variant.uses_sub_agents(),
            Role::LearnerSub => has_sub_model(variant),
            _ => true,
        }
    }

    /// Whether at most one instance may run in the cluster.
    pub fn singleton(self) -> bool {
        matches!(
            self,
            Role::Coordinator | Role::Store | Role::LearnerMain | Role::LearnerSub
        )
    }
}

/// Which model a learner owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LearnerRole {
    /// The main agent (or the single agent, or the shared model).
    Main,
    /// The sub-agents.
    Sub,
}

impl LearnerRole {
    /// The model's name: checkpoint directory, store role, metric prefix.
    pub fn name(self) -> &'static str {
        match self {
            LearnerRole::Main => "main",
            LearnerRole::Sub => "sub",
        }
    }

    /// The placement role of its learner.
    pub fn role(self) -> Role {
        match self {
            LearnerRole::Main => Role::LearnerMain,
            LearnerRole::Sub => Role::LearnerSub,
        }
    }

    /// The `ractor::pg` group of its learner.
    pub fn group(self) -> &'static str {
        self.role().group()
    }

    /// The batches this learner builds and trains on each step under `variant` (empty: it
    /// never trains, e.g. the sub learner of `frozen-sub`, which only serves version 0).
    pub fn batches(self, variant: Algo) -> Vec<BatchKind> {
        variant
            .batches()
            .iter()
            .copied()
            .filter(|k| (*k == BatchKind::Sub) == (self == LearnerRole::Sub))
            .collect()
    }

    /// Whether this learner takes updates under `variant`.
    pub fn trains(self, variant: Algo) -> bool {
        !self.batches(variant).is_empty()
    }

    /// The warm-start demonstrations this model learns from under `variant`: its own role's,
    /// both roles' for the shared model, the single agent's for `single`.
    pub fn demos(self, variant: Algo) -> Vec<DemoRole> {
        match self {
            LearnerRole::Sub => vec![DemoRole::Sub],
            LearnerRole::Main if variant.shares_model() => vec![DemoRole::Main, DemoRole::Sub],
            LearnerRole::Main if !variant.uses_sub_agents() => vec![DemoRole::Single],
            LearnerRole::Main => vec![DemoRole::Main],
        }
    }

    /// The inference roles that run this model under `variant` (who receives its versions).
    pub fn served_by(self, variant: Algo) -> Vec<Role> {
        match self {
            LearnerRole::Main if variant.shares_model() => vec![Role::Planner, Role::Executor],
            LearnerRole::Main => vec![Role::Planner],
            LearnerRole::Sub if has_sub_model(variant) => vec![Role::Executor],
            LearnerRole::Sub => Vec::new(),
        }
    }
}

/// Whether the variant has a sub-agent model of its own (`mgrpo`, `frozen-sub`).
pub fn has_sub_model(variant: Algo) -> bool {
    variant.uses_sub_agents() && !variant.shares_model()
}

/// The models a variant has, in warm-start order: `main`, and `sub` where it has its own.
pub fn models(variant: Algo) -> Vec<LearnerRole> {
    if has_sub_model(variant) {
        vec![LearnerRole::Main, LearnerRole::Sub]
    } else {
        vec![LearnerRole::Main]
    }
}

/// The learners that take updates each step under `variant`.
pub fn training_learners(variant: Algo) -> Vec<LearnerRole> {
    models(variant)
        .into_iter()
        .filter(|l| l.trains(variant))
        .collect()
}

/// The model the sub-agents run: their own, or the main model where it is shared.
pub fn sub_model(variant: Algo) -> LearnerRole {
    if has_sub_model(variant) {
        LearnerRole::Sub
    } else {
        LearnerRole::Main
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_map_to_learners_batches_and_servers() {
        use LearnerRole::{Main, Sub};
        assert_eq!(training_learners(Algo::Mgrpo), [Main, Sub]);
        assert_eq!(training_learners(Algo::FrozenSub), [Main]);
        assert_eq!(models(Algo::FrozenSub), [Main, Sub]);
        assert_eq!(training_learners(Algo::Shared), [Main]);
        assert_eq!(Main.batches(Algo::Shared), [BatchKind::Shared]);
        assert_eq!(Main.batches(Algo::Single), [BatchKind::Single]);
        assert_eq!(Sub.batches(Algo::Mgrpo), [BatchKind::Sub]);
        assert!(!Sub.trains(Algo::FrozenSub));
        assert_eq!(
            Main.served_by(Algo::Shared),
            [Role::Planner, Role::Executor]
        );
        assert_eq!(Sub.served_by(Algo::FrozenSub), [Role::Executor]);
        assert_eq!(sub_model(Algo::Shared), Main);
        assert_eq!(sub_model(Algo::FrozenSub), Sub);
        assert_eq!(Main.demos(Algo::Single), [DemoRole::Single]);
        assert_eq!(Main.demos(Algo::Shared), [DemoRole::Main, DemoRole::Sub]);
        assert_eq!(Main.demos(Algo::FrozenSub), [DemoRole::Main]);
        assert!(!Role::LearnerSub.used_by(Algo::Shared));
        assert!(!Role::Executor.used_by(Algo::Single));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.name()), Some(r));
        }
    }
}
