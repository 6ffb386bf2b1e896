//! A learner's side of a swap of its role. Prepare loads the plan's weights (a checkpoint of
//! the role, a model directory, or the current weights), health-checks them and stages them on
//! every replica — nothing the role serves or trains changes. Apply, at the step boundary and
//! only after the swap is in the store, keeps the replaced policy as a checkpoint (what
//! `previous` goes back to), switches, saves the new version with its generation and serving
//! (so a restarted learner comes back swapped) and activates it on the replicas.
//!
//! Apply without a matching prepare is a replay (the coordinator recovering a swap recorded
//! before a crash): the learner loads the plan itself and publishes it whole.
use std::sync::Arc;

use mgrpo_models::{Learner, load_checkpoint};

use crate::faults::FaultPoint;
use crate::learner::state::{LearnerState, Staged};
use crate::policy::checkpoints::{
    TrainState, keep_current, load_learner, save_learner, with_reference,
};
use crate::policy::chunks::PolicyId;
use crate::policy::health::{check, probe};
use crate::policy::tokenizer_check::same_tokenizer;
use crate::swap::target::{SwapPlan, Weights};

/// Loads the plan's weights and health-checks them.
fn candidate(s: &LearnerState, plan: &SwapPlan) -> Result<(Option<Learner>, Arc<Vec<u8>>), String> {
    let ctx = &s.ctx;
    let codec = ctx.codec(s.role).map_err(|e| e.to_string())?;
    let learner = match &plan.weights {
        Weights::Keep => None,
        Weights::Checkpoint(v) => {
            let dir = ctx.run_dir.checkpoint_path(s.role.name(), *v);
            if !dir.join("meta.json").exists() {
                return Err(format!(
                    "the {} role has no checkpoint version {v} (looked in {})",
                    s.role.name(),
                    dir.display()
                ));
            }
            let tokenizer = std::fs::read(dir.join("tokenizer.json"))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            same_tokenizer(
                &tokenizer,
                codec.tokenizer_json(),
                &format!("checkpoint:{v}"),
            )?;
            Some(load_learner(ctx, s.role, Some(*v))?.0)
        }
        Weights::Model(path) => {
            let what = format!("model:{}", path.display());
            let device = ctx
                .device(ctx.config.models.of(s.role))
                .map_err(|e| e.to_string())?;
            let policy = if path.join("meta.json").exists() {
                let ck =
                    load_checkpoint(path, &device, None).map_err(|e| format!("{what}: {e}"))?;
                same_tokenizer(&ck.tokenizer_json, codec.tokenizer_json(), &what)?;
                ck.policy
            } else {
                // A Hugging Face folder (config.json + safetensors + tokenizer.json).
                ctx.hf_folder(s.role, path)
                    .map_err(|e| format!("{what}: {e}"))?
                    .load(&device)
                    .map_err(|e| format!("{what}: {e}"))?
            };
            let settings = ctx.learner_config(s.role, ctx.config.models.of(s.role).lr);
            let learner =
                Learner::from_policy(policy, settings).map_err(|e| format!("{what}: {e}"))?;
            Some(with_reference(ctx, s.role, learner)?)
        }
    };
    let weights = match &learner {
        Some(l) => {
            check(&l.policy(), &probe(ctx, s.role)?)?;
            Arc::new(l.policy().to_bytes().map_err(|e| e.to_string())?)
        }
        None => {
            check(&s.learner.policy(), &probe(ctx, s.role)?)?;
            s.weights.clone()
        }
    };
    Ok((learner, weights))
}

/// Prepares `plan` as policy `id`: loaded and health-checked here and on every replica.
pub async fn prepare(s: &mut LearnerState, plan: SwapPlan, id: PolicyId) -> Result<(), String> {
    s.staged = None;
    let (learner, weights) = tokio::task::block_in_place(|| candidate(s, &plan))?;
    if let Err(e) = s.sinks.stage(&s.ctx, id, plan.serving, &weights).await {
        let _ = s.sinks.activate(&s.ctx, None).await;
        return Err(e);
    }
    s.staged = Some(Staged {
        id,
        plan,
        learner,
        weights,
    });
    Ok(())
}

/// Drops a prepared swap here and on the replicas.
pub async fn abort(s: &mut LearnerState) {
    s.staged = None;
    let _ = s.sinks.activate(&s.ctx, None).await;
}

/// Puts `plan` into effect as policy `id` before `step`.
pub async fn apply(
    s: &mut LearnerState,
    step: u64,
    plan: SwapPlan,
    id: PolicyId,
) -> Result<TrainState, String> {
    // A frozen or expert role takes no steps: it may be behind the boundary, never past it.
    let behind_ok = !s.state.serving.trains() && s.state.next_step < step;
    if s.state.next_step != step && !behind_ok {
        return Err(format!(
            "{} learner asked to swap before step {step} but is at step {}",
            s.role.name(),
            s.state.next_step
        ));
    }
    let staged = s.staged.take().filter(|st| st.id == id && st.plan == plan);
    let on_replicas = staged.is_some();
    let (learner, weights) = match staged {
        Some(st) => (st.learner, st.weights),
        None => tokio::task::block_in_place(|| candidate(s, &plan))?,
    };
    let (ctx, role) = (s.ctx.clone(), s.role);
    // The replaced policy stays on disk: `previous` goes back to it.
    tokio::task::block_in_place(|| keep_current(&ctx, role, &s.learner, s.state))?;
    // Half-way: the swap is recorded and the old policy kept; nothing switched yet. A failure
    // here leaves the role as it was, and the boundary replays the recorded swap.
    ctx.faults
        .strike(FaultPoint::SwapApply)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(l) = learner {
        s.learner = l;
    }
    s.weights = weights;
    s.state = TrainState {
        next_step: step,
        version: id.version,
        generation: id.generation,
        serving: plan.serving,
    };
    s.buffered.clear();
    tokio::task::block_in_place(|| save_learner(&ctx, role, &s.learner, s.state, true, true))?;
    if !on_replicas || s.sinks.activate(&ctx, Some(id)).await.is_err() {
        // A replay, or a replica restarted since it was prepared: send the version whole.
        s.publish().await?;
    }
    tracing::info!(
        role = role.name(),
        step,
        generation = id.generation,
        version = id.version,
        serving = plan.serving.name(),
        weights = %plan.weights,
        "swap in effect"
    );
    Ok(s.state)
}
