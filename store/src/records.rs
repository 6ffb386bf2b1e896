//! The store's schema: what a committed step looks like on disk.
//!
//! These types are the store's own (not the algorithm crate's working types) so that the
//! on-disk format changes only deliberately, with a bump of the codec's format version.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One main-agent rollout `(q, k)` of a group: its reward parts and what was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MainRolloutEntry {
    /// Rollout index `k` within the group.
    pub rollout: u32,
    /// `r_format`: every main-agent turn parsed.
    pub format: bool,
    /// `r_correct`: normalised exact match of the final answer.
    pub correct: bool,
    /// `R_M`.
    pub reward: f32,
    /// The advantage `A_M(k)` used by the main learner.
    pub advantage: f32,
    /// `d_k`: how many sub-agent calls the rollout made.
    pub calls: u32,
    /// Version of the main policy that produced the rollout.
    pub role_version: u64,
    /// Generation of the main role when the rollout ran (bumped by hot-swaps).
    pub role_generation: u64,
}

/// One sub-agent call `(q, k, i)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubCallEntry {
    /// Rollout `k` that made the call.
    pub rollout: u32,
    /// Call index `i` within the rollout, in call order.
    pub call: u32,
    /// The sub-agent's own `r_format`.
    pub format: bool,
    /// `r_expert ∈ [0, 1]` from the judge.
    pub expert: f32,
    /// `R_S`.
    pub reward: f32,
    /// Version of the sub policy that produced the call.
    pub role_version: u64,
    /// Generation of the sub role when the call ran (bumped by hot-swaps).
    pub role_generation: u64,
}

/// What fills one of the `D_max` aligned slots of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubSlot {
    /// The slot trains on call `i` of the rollout (possibly a duplicate).
    Call(u32),
    /// A zero-weight padding slot (`d_k = 0`).
    Padding,
}

impl From<mgrpo_algo::Slot> for SubSlot {
    fn from(s: mgrpo_algo::Slot) -> Self {
        match s {
            mgrpo_algo::Slot::Call(i) => SubSlot::Call(i),
            mgrpo_algo::Slot::Padding => SubSlot::Padding,
        }
    }
}

impl From<SubSlot> for mgrpo_algo::Slot {
    fn from(s: SubSlot) -> Self {
        match s {
            SubSlot::Call(i) => mgrpo_algo::Slot::Call(i),
            SubSlot::Padding => mgrpo_algo::Slot::Padding,
        }
    }
}

/// One query group of one step: rewards, alignment and the advantages actually used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Training step.
    pub step: u64,
    /// Query index within the step's batch.
    pub query: u32,
    /// The task world's question id.
    pub question_id: String,
    /// The `K` main rollouts in rollout order.
    pub main: Vec<MainRolloutEntry>,
    /// Every sub-agent call of the group, ordered by `(rollout, call)`.
    pub calls: Vec<SubCallEntry>,
    /// Per rollout, the `D_max` aligned slots.
    pub alignment: Vec<Vec<SubSlot>>,
    /// Per rollout, the advantage of each aligned slot (0 for padding).
    pub sub_advantages: Vec<Vec<f32>>,
    /// Mean and std of `R_M` over the group.
    pub main_mean: f32,
    /// See `main_mean`.
    pub main_std: f32,
    /// Mean and std of `R_S` over the aligned non-padding slots.
    pub sub_mean: f32,
    /// See `sub_mean`.
    pub sub_std: f32,
    /// Number of aligned non-padding slots.
    pub sub_count: u32,
}

/// The summary of one committed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Training step (0-based).
    pub step: u64,
    /// Metrics of the step (reward, accuracy, format rate, calls per rollout, tokens/s…).
    pub metrics: BTreeMap<String, f64>,
    /// Role versions after the step's updates.
    pub role_versions: BTreeMap<String, u64>,
}

/// The current version of a role's policy and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleVersion {
    /// Role name (`main`, `sub`, `single`, `shared`).
    pub role: String,
    /// Monotone version number (0 = warm start).
    pub version: u64,
    /// Step after which this version was published.
    pub step: u64,
    /// What produced it: `learner`, `warmup`, `checkpoint:<path>`, `expert`…
    pub source: String,
}

/// One saved checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointEntry {
    /// Role name.
    pub role: String,
    /// Version saved.
    pub version: u64,
    /// Step after which it was saved.
    pub step: u64,
    /// Directory of the checkpoint, relative to the run directory.
    pub path: String,
}

/// Something that happened to the run outside the step loop (a swap, a restart, a resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Step during or after which it happened.
    pub step: u64,
    /// Short machine-readable kind (`swap`, `restart`, `resume`…).
    pub kind: String,
    /// Human-readable detail.
    pub detail: String,
}

/// One hot-swap of a role, written **before** it takes effect: resume and crash recovery replay
/// the swaps of the store so that a role reaches the same generations at the same steps, and
/// writing the same swap twice is a no-op (the key is the role and its new generation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapRecord {
    /// The swap takes effect before this step: the step is the first on the new policy.
    pub step: u64,
    /// The model swapped (`main`, `sub`).
    pub role: String,
    /// What the user asked for (`expert`, `previous`, `checkpoint:3`, `model:PATH`…).
    pub request: String,
    /// How the role was served before: `learner`, `frozen` or `expert`.
    pub from_serving: String,
    /// The version it ran before.
    pub from_version: u64,
    /// How it is served after.
    pub to_serving: String,
    /// Where the new weights come from: `keep`, `checkpoint:V` (a version of this run's role)
    /// or `model:PATH` (a checkpoint directory).
    pub weights: String,
    /// The role's new generation.
    pub generation: u64,
    /// The version published by the swap (the next version number of the role).
    pub version: u64,
    /// The node the role's inference instances moved to, if the swap moved them.
    pub node: Option<String>,
    /// From the request's arrival to the fence: waiting for the boundary, loading and
    /// health-checking on every instance (milliseconds; differs between runs).
    pub duration_ms: u64,
}

impl SwapRecord {
    /// The swap of model `role` in effect at `step`: the last one taking effect at or before it
    /// (`None`: the role runs as it started).
    pub fn in_effect<'a>(swaps: &'a [SwapRecord], role: &str, step: u64) -> Option<&'a SwapRecord> {
        swaps
            .iter()
            .filter(|s| s.role == role && s.step <= step)
            .max_by_key(|s| (s.step, s.generation))
    }

    /// `from` as the dump prints it (`learner v12`).
    pub fn from_label(&self) -> String {
        format!("{} v{}", self.from_serving, self.from_version)
    }

    /// `to` as the dump prints it (`expert v13`, `learner v13 (checkpoint:4)`, `… on main`).
    pub fn to_label(&self) -> String {
        let mut s = format!("{} v{}", self.to_serving, self.version);
        if self.weights != "keep" {
            s += &format!(" ({})", self.weights);
        }
        if let Some(n) = &self.node {
            s += &format!(" on {n}");
        }
        s
    }
}

/// One tool call (MCP) a sub-agent made: what it wrote, which tool ran, how it ended and the
/// observation it was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallEntry {
    /// Rollout `k` whose sub-agent call made it.
    pub rollout: u32,
    /// The sub-agent call `i` within the rollout.
    pub call: u32,
    /// Its position among that call's tool calls.
    pub index: u32,
    /// The call's words as the agent wrote them (between the tags).
    pub text: String,
    /// The tool that ran (`None`: the call did not bind).
    pub tool: Option<String>,
    /// `ok`, `malformed`, `tool_error`, `timeout` or `server_failed`.
    pub status: String,
    /// The observation segment appended to the sub-agent's context.
    pub observation: String,
}

/// The tool calls of one query group, ordered by `(rollout, call, index)`. Written only for
/// groups that made tool calls, under keys of their own: a run without tools stores exactly
/// what it stored before tools existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupToolCalls {
    /// Training step.
    pub step: u64,
    /// Query index within the step's batch.
    pub query: u32,
    /// The calls.
    pub calls: Vec<ToolCallEntry>,
}

/// Everything one step writes, committed atomically by [`crate::Store::commit_step`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepCommit {
    /// The step summary.
    pub record: StepRecord,
    /// The step's query groups.
    pub groups: Vec<GroupRecord>,
    /// Role versions published by the step.
    pub roles: Vec<RoleVersion>,
    /// Checkpoints saved by the step.
    pub checkpoints: Vec<CheckpointEntry>,
    /// The tool calls of the step's groups (only groups that made some).
    pub tool_calls: Vec<GroupToolCalls>,
}
