//! Swap targets as users write them (`checkpoint:V`, `previous`, `expert`, `frozen`, `train`,
//! `model:PATH`) and what each resolves to: how the role is served afterwards and where its
//! weights come from. Pure: the coordinator resolves with the learner's state and the role's
//! last recorded swap, and the store keeps the resolved plan so a replay needs nothing else.
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use mgrpo_algo::Algo;
use mgrpo_store::SwapRecord;
use serde::{Deserialize, Serialize};

use crate::role::{LearnerRole, has_sub_model};

/// How a role is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Serving {
    /// Its policy samples and its learner trains on what it samples (the default).
    #[default]
    Learner,
    /// Its policy samples; its learner takes no update (weights frozen).
    Frozen,
    /// The world's scripted expert acts for it, through the same protocol and tools.
    Expert,
}

impl Serving {
    /// Its name in the store, the status and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Serving::Learner => "learner",
            Serving::Frozen => "frozen",
            Serving::Expert => "expert",
        }
    }

    /// Parses [`Serving::name`].
    pub fn parse(s: &str) -> Option<Self> {
        [Serving::Learner, Serving::Frozen, Serving::Expert]
            .into_iter()
            .find(|v| v.name() == s)
    }

    /// Whether the role's learner trains (its trajectories are kept and it takes updates).
    pub fn trains(self) -> bool {
        self == Serving::Learner
    }
}

/// What a user asks a role to become.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwapTarget {
    /// A saved version of the role (`checkpoint:V`); training continues from it.
    Checkpoint(u64),
    /// The policy before the role's last swap (rollback).
    Previous,
    /// The scripted expert.
    Expert,
    /// Keep the weights, stop the learner.
    Frozen,
    /// Keep the weights, (re)start the learner with the optimiser state it had.
    Train,
    /// A checkpoint directory, possibly of another preset, or a Hugging Face folder
    /// (`model:PATH`); the learner starts a fresh optimiser. The tokenizer must be the run's.
    Model(PathBuf),
    /// As it is (`keep`): a swap that only moves the role's inference instances.
    Keep,
}

impl FromStr for SwapTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown swap target {s:?}: expected checkpoint:V, previous, expert, frozen, train, model:PATH or keep"
            )
        };
        Ok(match s {
            "previous" => SwapTarget::Previous,
            "expert" => SwapTarget::Expert,
            "frozen" => SwapTarget::Frozen,
            "train" => SwapTarget::Train,
            "keep" => SwapTarget::Keep,
            _ => match s.split_once(':') {
                Some(("checkpoint", v)) => SwapTarget::Checkpoint(
                    v.parse()
                        .map_err(|_| format!("checkpoint:V needs a version number, got {v:?}"))?,
                ),
                Some(("model", p)) if !p.is_empty() => SwapTarget::Model(PathBuf::from(p)),
                _ => return Err(bad()),
            },
        })
    }
}

impl fmt::Display for SwapTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwapTarget::Checkpoint(v) => write!(f, "checkpoint:{v}"),
            SwapTarget::Previous => f.write_str("previous"),
            SwapTarget::Expert => f.write_str("expert"),
            SwapTarget::Frozen => f.write_str("frozen"),
            SwapTarget::Train => f.write_str("train"),
            SwapTarget::Model(p) => write!(f, "model:{}", p.display()),
            SwapTarget::Keep => f.write_str("keep"),
        }
    }
}

/// Where a swap's weights come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Weights {
    /// The role's current weights.
    Keep,
    /// Version V of the role, from this run's checkpoints.
    Checkpoint(u64),
    /// A checkpoint directory.
    Model(PathBuf),
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weights::Keep => f.write_str("keep"),
            Weights::Checkpoint(v) => write!(f, "checkpoint:{v}"),
            Weights::Model(p) => write!(f, "model:{}", p.display()),
        }
    }
}

impl FromStr for Weights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<SwapTarget>() {
            Ok(SwapTarget::Keep) => Ok(Weights::Keep),
            Ok(SwapTarget::Checkpoint(v)) => Ok(Weights::Checkpoint(v)),
            Ok(SwapTarget::Model(p)) => Ok(Weights::Model(p)),
            _ => Err(format!("unknown weights {s:?} in a recorded swap")),
        }
    }
}

/// What a swap does to a role: how it is served afterwards, with which weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapPlan {
    /// How the role is served after the swap.
    pub serving: Serving,
    /// Its weights after the swap.
    pub weights: Weights,
}

impl SwapPlan {
    /// The plan a recorded swap carried (what a replay applies).
    pub fn of_record(r: &SwapRecord) -> Result<Self, String> {
        Ok(Self {
            serving: Serving::parse(&r.to_serving)
                .ok_or_else(|| format!("unknown serving {:?} in a recorded swap", r.to_serving))?,
            weights: r.weights.parse()?,
        })
    }
}

/// Whether `role` may be swapped under `variant`.
pub fn check_role(role: LearnerRole, variant: Algo) -> Result<(), String> {
    if role == LearnerRole::Sub && !has_sub_model(variant) {
        return Err(format!(
            "variant {} has no separate sub-agent model (the {}): swap --role main",
            variant.name(),
            if variant.uses_sub_agents() {
                "sub-agents run the main model"
            } else {
                "single agent has no sub-agents"
            }
        ));
    }
    Ok(())
}

/// Resolves `target` for `role` (served as `now`), given the role's last recorded swap.
/// Weights from a checkpoint or a model resume training where the variant trains the role.
pub fn resolve(
    target: &SwapTarget,
    role: LearnerRole,
    variant: Algo,
    now: Serving,
    last: Option<&SwapRecord>,
) -> Result<SwapPlan, String> {
    check_role(role, variant)?;
    let trained = if role.trains(variant) {
        Serving::Learner
    } else {
        Serving::Frozen
    };
    let plan = |serving, weights| SwapPlan { serving, weights };
    Ok(match target {
        SwapTarget::Checkpoint(v) => plan(trained, Weights::Checkpoint(*v)),
        SwapTarget::Model(p) => plan(trained, Weights::Model(p.clone())),
        SwapTarget::Expert => plan(Serving::Expert, Weights::Keep),
        SwapTarget::Keep => plan(now, Weights::Keep),
        SwapTarget::Frozen => plan(Serving::Frozen, Weights::Keep),
        SwapTarget::Train => {
            if !role.trains(variant) {
                return Err(format!(
                    "variant {} never trains the {} model",
                    variant.name(),
                    role.name()
                ));
            }
            plan(Serving::Learner, Weights::Keep)
        }
        SwapTarget::Previous => {
            let last = last.ok_or_else(|| {
                format!(
                    "the {} role was never swapped: there is no previous policy",
                    role.name()
                )
            })?;
            plan(
                Serving::parse(&last.from_serving).unwrap_or(trained),
                Weights::Checkpoint(last.from_version),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(from: &str, from_version: u64) -> SwapRecord {
        SwapRecord {
            step: 4,
            role: "sub".into(),
            request: "expert".into(),
            from_serving: from.into(),
            from_version,
            to_serving: "expert".into(),
            weights: "keep".into(),
            generation: 1,
            version: from_version + 1,
            node: None,
            duration_ms: 3,
        }
    }

    #[test]
    fn targets_parse_and_print_back() {
        for s in [
            "checkpoint:7",
            "previous",
            "expert",
            "frozen",
            "train",
            "model:/tmp/m",
            "keep",
        ] {
            assert_eq!(s.parse::<SwapTarget>().unwrap().to_string(), s);
        }
        assert!("checkpoint:x".parse::<SwapTarget>().is_err());
        assert!("model:".parse::<SwapTarget>().is_err());
        assert!(
            "bogus"
                .parse::<SwapTarget>()
                .unwrap_err()
                .contains("expected")
        );
        for w in ["keep", "checkpoint:3", "model:/x"] {
            assert_eq!(w.parse::<Weights>().unwrap().to_string(), w);
        }
    }

    #[test]
    fn targets_resolve_to_a_serving_and_weights() {
        use LearnerRole::{Main, Sub};
        let r =
            |t: &str, role, v, last| resolve(&t.parse().unwrap(), role, v, Serving::Frozen, last);
        assert_eq!(
            r("checkpoint:3", Sub, Algo::Mgrpo, None).unwrap(),
            SwapPlan {
                serving: Serving::Learner,
                weights: Weights::Checkpoint(3)
            }
        );
        // The frozen-sub variant never trains the sub model: weights come in frozen.
        assert_eq!(
            r("checkpoint:3", Sub, Algo::FrozenSub, None)
                .unwrap()
                .serving,
            Serving::Frozen
        );
        assert!(r("train", Sub, Algo::FrozenSub, None).is_err());
        assert!(
            r("expert", Sub, Algo::Shared, None)
                .unwrap_err()
                .contains("--role main")
        );
        assert!(r("expert", Sub, Algo::Single, None).is_err());
        assert_eq!(
            r("expert", Main, Algo::Single, None).unwrap().serving,
            Serving::Expert
        );
        assert_eq!(
            r("keep", Sub, Algo::Mgrpo, None).unwrap().serving,
            Serving::Frozen
        );
        assert!(
            r("previous", Sub, Algo::Mgrpo, None)
                .unwrap_err()
                .contains("never swapped")
        );
        // Rollback: how it was served before the last swap, with the version it ran then.
        let last = record("frozen", 12);
        assert_eq!(
            r("previous", Sub, Algo::Mgrpo, Some(&last)).unwrap(),
            SwapPlan {
                serving: Serving::Frozen,
                weights: Weights::Checkpoint(12)
            }
        );
        assert_eq!(
            SwapPlan::of_record(&last).unwrap(),
            SwapPlan {
                serving: Serving::Expert,
                weights: Weights::Keep
            }
        );
    }
}
