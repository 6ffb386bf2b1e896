//! Checkpoint I/O of a learner's model: weights, tokenizer, optimiser state and training
//! progress under `checkpoints/<role>/<version>/`, and pruning of recovery checkpoints.
use std::path::Path;

use mgrpo_models::{CheckpointMeta, Learner, Policy, load_checkpoint, save_checkpoint};
use serde::{Deserialize, Serialize};

use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::policy::chunks::PolicyId;
use crate::role::LearnerRole;
use crate::run_dir::RunDir;
use crate::staged_dir;
use crate::swap::target::Serving;

/// A file in a checkpoint directory that protects it from pruning (milestones, best, warm start).
const KEEP_MARKER: &str = "keep";

/// A LoRA learner's unmerged base weights and adapter factors (`model.bpk` holds the merged
/// weights that inference and exports use).
const LORA_STATE: &str = "lora.bpk";

/// The training progress of a checkpoint (the last file a save writes).
pub const TRAIN_STATE: &str = crate::run_dir::COMPLETE_MARKER;

/// Training progress saved with each checkpoint, so a resumed learner continues exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    /// The next step to train.
    pub next_step: u64,
    /// The version of the saved weights.
    pub version: u64,
    /// The role's generation (bumped by hot-swaps; 0 before any).
    #[serde(default)]
    pub generation: u64,
    /// How the role is served (a swap to frozen or expert stops its learner).
    #[serde(default)]
    pub serving: Serving,
}

impl TrainState {
    /// The policy these weights are: (generation, version).
    pub fn id(&self) -> PolicyId {
        PolicyId {
            generation: self.generation,
            version: self.version,
        }
    }
}

/// Loads the policy of checkpoint `version` of `role` (the latest when `None`) on the role's
/// device; returns it with the version loaded.
pub fn load_policy(
    ctx: &NodeContext,
    role: LearnerRole,
    version: Option<u64>,
) -> Result<(Policy, u64), String> {
    let device = ctx
        .device(ctx.config.models.of(role))
        .map_err(|e| e.to_string())?;
    let version = match version {
        Some(v) => {
            let saved = ctx.run_dir.checkpoint_versions(role.name());
            if !saved.contains(&v) {
                let list: Vec<String> = saved.iter().map(u64::to_string).collect();
                return Err(format!(
                    "{} has no {} checkpoint {v}; its versions are: {} (or @best, the \
                     dev-selected one)",
                    ctx.run_dir.root().display(),
                    role.name(),
                    if list.is_empty() {
                        "none (run warmup first)".into()
                    } else {
                        list.join(", ")
                    }
                ));
            }
            v
        }
        None => ctx.run_dir.latest_checkpoint(role.name()).ok_or_else(|| {
            format!(
                "no {} checkpoint in {} (run warmup first)",
                role.name(),
                ctx.run_dir.root().display()
            )
        })?,
    };
    let dir = ctx.run_dir.checkpoint_path(role.name(), version);
    let ck = load_checkpoint(&dir, &device, None).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((ck.policy, version))
}

/// Loads checkpoint `version` of `role` (the latest when `None`) into a learner, with its
/// optimiser state and training progress.
pub fn load_learner(
    ctx: &NodeContext,
    role: LearnerRole,
    version: Option<u64>,
) -> Result<(Learner, TrainState), String> {
    let (policy, version) = load_policy(ctx, role, version)?;
    let dir = ctx.run_dir.checkpoint_path(role.name(), version);
    let settings = ctx.learner_config(role, ctx.config.models.of(role).lr);
    // A LoRA learner continues from its unmerged base and adapters; without that file (or
    // without LoRA) it starts from the merged weights.
    let lora_state = settings
        .lora
        .as_ref()
        .and_then(|_| std::fs::read(dir.join(LORA_STATE)).ok());
    let mut learner = match lora_state {
        Some(state) => {
            let (config, device) = (policy.config().clone(), policy.device().clone());
            Learner::from_lora_state(config, &state, &device, settings)
        }
        None => Learner::from_policy(policy, settings),
    }
    .map_err(|e| format!("{}: {e}", dir.display()))?;
    // Saves are atomic, so a checkpoint without its progress is not one of ours: never read it
    // as "step 0".
    let state = read_train_state(&dir).ok_or_else(|| {
        format!(
            "{} has no readable {TRAIN_STATE}: not a complete checkpoint",
            dir.display()
        )
    })?;
    if let Ok(opt) = std::fs::read(dir.join("optimizer.bin")) {
        learner
            .load_optimizer_state(&opt)
            .map_err(|e| e.to_string())?;
    }
    Ok((with_reference(ctx, role, learner)?, state))
}

/// `learner` with its KL anchor when `algo.kl_coef > 0`: the role's checkpoint
/// `algo.kl_reference` (the warm start by default). Every learner the actors build — at start,
/// on restore, on a swap — goes through here, so the anchor never goes missing.
pub fn with_reference(
    ctx: &NodeContext,
    role: LearnerRole,
    mut learner: Learner,
) -> Result<Learner, String> {
    let algo = &ctx.config.algo;
    if algo.kl_coef > 0.0 {
        let (reference, _) = load_policy(ctx, role, Some(algo.kl_reference)).map_err(|e| {
            format!(
                "algo.kl_coef = {} anchors to checkpoint {} of {}: {e}",
                algo.kl_coef,
                algo.kl_reference,
                role.name()
            )
        })?;
        learner
            .set_reference(Some(reference))
            .map_err(|e| e.to_string())?;
    }
    Ok(learner)
}

/// The progress saved with checkpoint `version` of `role`, if it is a complete checkpoint.
pub fn checkpoint_state(ctx: &NodeContext, role: LearnerRole, version: u64) -> Option<TrainState> {
    read_train_state(&ctx.run_dir.checkpoint_path(role.name(), version))
}

fn read_train_state(dir: &Path) -> Option<TrainState> {
    serde_json::from_slice(&std::fs::read(dir.join(TRAIN_STATE)).ok()?).ok()
}

/// The saved version of `role` in effect at `next_step`, if any: the newest whose next step
/// is `next_step` (after a swap at that boundary, the swap's), or else the newest saved before
/// it if that one is frozen or expert (such a role takes no steps, so it is still in effect;
/// every swap saves a kept checkpoint, so no later swap can hide behind it).
pub fn checkpoint_for_step(ctx: &NodeContext, role: LearnerRole, next_step: u64) -> Option<u64> {
    let states: Vec<(u64, TrainState)> = ctx
        .run_dir
        .checkpoint_versions(role.name())
        .into_iter()
        .rev()
        .filter_map(|v| {
            Some((
                v,
                read_train_state(&ctx.run_dir.checkpoint_path(role.name(), v))?,
            ))
        })
        .collect();
    if let Some((v, _)) = states.iter().find(|(_, s)| s.next_step == next_step) {
        return Some(*v);
    }
    states
        .iter()
        .find(|(_, s)| s.next_step < next_step)
        .filter(|(_, s)| !s.serving.trains())
        .map(|(v, _)| *v)
}

/// Saves weights, tokenizer, optimizer state and progress. `keep` protects the checkpoint from
/// [`prune`]; recovery checkpoints are saved without it.
pub fn save_learner(
    ctx: &NodeContext,
    role: LearnerRole,
    learner: &Learner,
    state: TrainState,
    with_optimizer: bool,
    keep: bool,
) -> Result<String, String> {
    let dir = ctx.run_dir.checkpoint_path(role.name(), state.version);
    // Written whole or not at all: a kill mid-save leaves the previous checkpoints as they were.
    staged_dir::write_dir(&dir, |staging| {
        save_checkpoint(
            staging,
            &learner.policy(),
            ctx.codec(role)
                .map_err(|e| e.to_string())?
                .tokenizer_json()
                .as_bytes(),
            &CheckpointMeta::new(role.name(), state.version),
        )
        .map_err(|e| e.to_string())?;
        ctx.faults
            .strike_now(FaultPoint::CheckpointWrite)
            .map_err(|e| format!("{e}: no space left on device"))?;
        if let Some(state) = learner.lora_state().map_err(|e| e.to_string())? {
            std::fs::write(staging.join(LORA_STATE), state).map_err(|e| e.to_string())?;
        }
        if with_optimizer {
            std::fs::write(
                staging.join("optimizer.bin"),
                learner.optimizer_state().map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
        }
        write_json(&staging.join(TRAIN_STATE), &state)?;
        if keep {
            std::fs::write(staging.join(KEEP_MARKER), b"").map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    })
    .map_err(|e| format!("saving {}: {e}", dir.display()))?;
    Ok(RunDir::checkpoint_rel(role.name(), state.version))
}

/// Makes sure version `state.version` is on disk and kept from pruning (what a swap does with
/// the policy it replaces, for `previous`). An existing checkpoint is not rewritten: its
/// training progress says when that version came into effect.
pub fn keep_current(
    ctx: &NodeContext,
    role: LearnerRole,
    learner: &Learner,
    state: TrainState,
) -> Result<(), String> {
    let dir = ctx.run_dir.checkpoint_path(role.name(), state.version);
    if dir.join(TRAIN_STATE).exists() {
        return std::fs::write(dir.join(KEEP_MARKER), b"").map_err(|e| e.to_string());
    }
    save_learner(ctx, role, learner, state, true, true).map(|_| ())
}

/// Deletes recovery checkpoints older than the newest two (kept ones stay), or the newest
/// `2 + max_staleness` under the asynchronous schedule: recovery to the last committed step
/// also reloads the versions the next steps are sampled with.
pub fn prune(ctx: &NodeContext, role: LearnerRole) {
    let versions = ctx.run_dir.checkpoint_versions(role.name());
    let keep = 2 + ctx.config.algo.lag() as usize;
    let recent: Vec<u64> = versions.iter().rev().take(keep).copied().collect();
    for v in versions {
        let dir = ctx.run_dir.checkpoint_path(role.name(), v);
        if !recent.contains(&v)
            && !dir.join(KEEP_MARKER).exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not prune a recovery checkpoint");
        }
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    std::fs::write(
        path,
        serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}
