//! Hot-swapping a role at runtime (`mgrpo swap`): what a swap may ask for and how it resolves
//! ([`target`]), the requests waiting for a step boundary ([`queue`]), and the procedure the
//! coordinator runs at each boundary — replay the store's swaps that are not yet in effect,
//! then prepare → fence → commit each due request ([`boundary`]) — and where moved roles'
//! inference instances run ([`placement`]).
//!
//! A swap never lands mid-step: the coordinator runs steps one at a time and swaps between
//! them, so no step mixes two generations of a role. The learner of the role owns the swap's
//! effect (weights, how the role is served, its generation), records it in its checkpoints,
//! and pushes it to its replicas through the same [`crate::policy::PolicySinks`] it publishes
//! versions with.
pub mod boundary;
pub mod placement;
pub mod queue;
pub mod target;

pub use queue::{SwapOutcome, SwapQueue, SwapRequest};
pub use target::{Serving, SwapPlan, SwapTarget, Weights};
