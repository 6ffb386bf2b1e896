//! M-GRPO maths with no I/O: rewards → group-relative advantages, trajectory alignment to a fixed
//! `D_max`, the decoupled statistics the learners exchange, batch assembly, and the variants.
//!
//! Everything here is a pure function of its inputs and a seed derived with
//! [`seed::derive_seed`], so it gives the same answer on one node or many, whatever the order in
//! which records arrive. `/work/shared/ALGORITHM.md` (in the repo: docs/algorithm.md) is the
//! specification; each module cites the rule it implements.
#![warn(missing_docs)]

pub mod advantages;
pub mod alignment;
pub mod assemble;
pub mod batch;
pub mod inspect;
pub mod records;
pub mod rewards;
pub mod seed;
pub mod stats;
pub mod variant;

pub use advantages::{GroupStats, StdKind, group_advantages, group_stats, weigh_negatives};
pub use alignment::{RolloutAlignment, Slot, align_group, align_rollout};
pub use assemble::{BatchRow, Trajectory, assemble, concat_batches, main_batch, sub_batch};
pub use batch::TrainBatch;
pub use records::{CallId, MainRolloutRecord, SubCallRecord};
pub use rewards::{MainParts, RewardWeights, SubParts};
pub use seed::{derive_seed, salt};
pub use stats::{
    MainGroupStat, MainRolloutStat, SubCallStat, SubGroupAdvantages, SubGroupStat, SubSettings,
    main_advantages, publish_main_group, sub_advantages,
};
pub use variant::{Algo, BatchKind};
