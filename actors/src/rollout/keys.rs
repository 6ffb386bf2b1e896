//! The coordinates of rollouts and calls, and what a rollout or a call produced.
use serde::{Deserialize, Serialize};

use crate::mcp::ToolUse;
use crate::policy::chunks::PolicyId;

/// Identifies one main rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RolloutKey {
    /// Training step (or an evaluation's pseudo-step).
    pub step: u64,
    /// Query index in the step's batch.
    pub query: u32,
    /// Rollout `k`.
    pub rollout: u32,
}

/// Identifies one sub-agent call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallKey {
    /// The rollout that made it.
    pub rollout: RolloutKey,
    /// Call index `i` within the rollout.
    pub call: u32,
}

/// A delegated sub-task to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubJob {
    /// Its coordinates.
    pub key: CallKey,
    /// The sub-task text.
    pub task: String,
}

/// What a sub-agent call produced (without its trajectory, which stays with its learner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubOutcome {
    /// Its coordinates.
    pub key: CallKey,
    /// The sub-task.
    pub task: String,
    /// What went back to the main agent.
    pub result: String,
    /// The call's `r_format`.
    pub format: bool,
    /// The judge's `r_expert` (filled in by the executor after judging).
    pub expert: f32,
    /// Tokens the sub-agent generated.
    pub generated_tokens: usize,
    /// The sub policy that ran the call (filled in by the executor).
    pub policy: PolicyId,
    /// Its tool calls (MCP), in order: the transcript the store records.
    pub tools: Vec<ToolUse>,
}

/// What a main (or single-agent) rollout produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MainOutcome {
    /// Its coordinates.
    pub key: RolloutKey,
    /// `r_format`.
    pub format: bool,
    /// The final answer, if any.
    pub answer: Option<String>,
    /// Its calls, in call order.
    pub calls: Vec<SubOutcome>,
    /// Tokens the main agent generated.
    pub generated_tokens: usize,
    /// The main (or single) agent's transcript: what a reward command reads.
    pub transcript: String,
}

/// How to sample: training (temperature, top-p) or evaluation (greedy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Sample with the config's temperature and top-p.
    Train,
    /// Greedy decoding.
    Eval,
}
