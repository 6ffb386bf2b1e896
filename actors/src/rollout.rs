//! Rollouts: agents acting in the task world's episodes, batched in lockstep.
//!
//! [`lockstep`] is the one driver, generic over the episode ([`episode`]: main, sub-agent or
//! single agent) and over where turns come from ([`turns`]: a policy model); [`dispatch`] is the
//! one place that picks the episodes for a variant (main agent + sub-agents, or the single
//! agent), used alike by the planner actors and by offline evaluation. [`keys`] names rollouts
//! and calls; [`facts`] says which of the world's variants a rollout is asked in; [`trace`]
//! records what a policy saw and sampled.
//!
//! Every draw is seeded from `(run seed, step, query, rollout[, call], turn)`, so a rollout's
//! tokens do not depend on which other rollouts share its batch.
pub mod dispatch;
pub mod episode;
pub mod facts;
pub mod keys;
pub mod lockstep;
pub mod trace;
pub mod turns;

pub use dispatch::Rollouts;
pub use keys::{CallKey, MainOutcome, Mode, RolloutKey, SubJob, SubOutcome};
