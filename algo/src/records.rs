//! Records of what happened in a rollout, as each role's node keeps them locally.
use serde::{Deserialize, Serialize};

use crate::rewards::{MainParts, SubParts};

/// Version of the records' encoding.
pub const RECORD_VERSION: u16 = 1;

fn record_version() -> u16 {
    RECORD_VERSION
}

/// Identifies one sub-agent call: `(step, query, rollout, call)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallId {
    /// Training step.
    pub step: u64,
    /// Query index in the step's batch.
    pub query: u32,
    /// Rollout `k`.
    pub rollout: u32,
    /// Call index `i` within the rollout.
    pub call: u32,
}

/// One main rollout: its question, reward parts and the calls it made, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MainRolloutRecord {
    /// Encoding version.
    #[serde(default = "record_version")]
    pub version: u16,
    /// Training step.
    pub step: u64,
    /// Query index in the step's batch.
    pub query: u32,
    /// The task world's question id.
    pub question_id: String,
    /// Rollout `k`.
    pub rollout: u32,
    /// Reward parts.
    pub parts: MainParts,
    /// The sub-calls it made, in call order (`d_k = calls.len()`).
    pub calls: Vec<CallId>,
}

/// One sub-agent call: its coordinates, reward parts and the id of its trajectory (which stays
/// on the sub learner's node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubCallRecord {
    /// Encoding version.
    #[serde(default = "record_version")]
    pub version: u16,
    /// Coordinates.
    pub id: CallId,
    /// Reward parts.
    pub parts: SubParts,
    /// The trajectory's id on the sub learner's node.
    pub trajectory: u64,
}
