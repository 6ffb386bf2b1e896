//! The run store: a sled database under `runs/<name>/store/` holding everything a run must not
//! lose — its resolved config, one record per committed step with the per-group reward records,
//! alignments and advantages actually used, each role's version and the checkpoint index.
//!
//! Why one crate with a small API: during training only the store actor writes here, and every
//! reader (`mgrpo store dump`, `mgrpo status`, `--resume`, tests) goes through the same typed
//! functions, so the on-disk layout stays private and versioned.
//!
//! Guarantees:
//! - a step is committed atomically (one sled batch): after a crash the store holds whole steps;
//! - committing a step that is already there is idempotent (same content → no-op, different
//!   content → [`StoreError::Conflict`]), so a retried request cannot double-count;
//! - every value is encoded with a one-byte format version ahead of its bincode body, and the
//!   store reads every older version it has written (format 1: before policy generations).
#![warn(missing_docs)]

pub mod codec;
mod keys;
mod legacy;
mod records;
mod store;

pub use codec::CodecError;
pub use records::{
    CheckpointEntry, Event, GroupRecord, GroupToolCalls, MainRolloutEntry, RoleVersion, StepCommit,
    StepRecord, SubCallEntry, SubSlot, SwapRecord, ToolCallEntry,
};
pub use store::{CommitOutcome, Store, StoreError};
