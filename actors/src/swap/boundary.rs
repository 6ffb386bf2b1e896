//! What the coordinator does at each step boundary, before the step: replay the swaps the
//! store holds for this boundary that are not in effect yet (a crash came between recording
//! and applying), then run each due request through prepare → fence → commit:
//!
//! ```text
//! resolve ──► prepare (learner + every replica: load, health-check, stage) ──► record in store
//!   (the fence: from here the swap happens, even across a crash) ──► apply (learner switches,
//!   saves, replicas activate) ──► answer the caller with the step
//! ```
//!
//! A failure before the record changes nothing (the staged candidate is dropped everywhere);
//! a failure after it is a failed step, and recovery replays the recorded swap.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mgrpo_store::SwapRecord;

use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::learner::LearnerMsg;
use crate::policy::checkpoints::TrainState;
use crate::policy::chunks::PolicyId;
use crate::role::{LearnerRole, models};
use crate::rpc::{self, Wire};
use crate::store_actor::StoreMsg;
use crate::swap::queue::{Pending, SwapOutcome, expired_reason};
use crate::swap::target::{Serving, SwapPlan, resolve};

/// How each model of the run is served at a boundary.
pub type Servings = BTreeMap<LearnerRole, Serving>;

async fn state_of(ctx: &NodeContext, role: LearnerRole) -> Result<TrainState, String> {
    rpc::request(ctx, role.group(), 0, |reply| LearnerMsg::GetState { reply })
        .await
        .map_err(|e| e.to_string())
}

async fn recorded(ctx: &NodeContext) -> Result<Vec<SwapRecord>, String> {
    rpc::request(ctx, crate::role::group::STORE, 0, |reply| StoreMsg::Swaps {
        reply,
    })
    .await
    .map_err(|e| e.to_string())
}

async fn apply(
    ctx: &NodeContext,
    role: LearnerRole,
    step: u64,
    plan: &SwapPlan,
    id: PolicyId,
) -> Result<TrainState, String> {
    rpc::request(ctx, role.group(), 0, |reply| LearnerMsg::ApplySwap {
        step,
        plan: Wire(plan.clone()),
        id: Wire(id),
        reply,
    })
    .await
    .map_err(|e| e.to_string())
}

/// The boundary before `step`: replays recorded swaps not yet in effect, performs the due
/// requests, answers the expired ones; returns how each model is served for the step. An
/// error (a recorded swap that could not be applied) fails the step: recovery retries it.
pub async fn at_boundary(ctx: &NodeContext, step: u64) -> Result<Servings, String> {
    let variant = ctx.config.algo.variant;
    let swaps = recorded(ctx).await?;
    for r in swaps.iter().filter(|r| r.step == step) {
        let Some(role) = models(variant).into_iter().find(|m| m.name() == r.role) else {
            continue;
        };
        if state_of(ctx, role).await?.generation < r.generation {
            tracing::warn!(
                role = role.name(),
                step,
                generation = r.generation,
                "replaying a swap recorded before a crash"
            );
            let id = PolicyId {
                generation: r.generation,
                version: r.version,
            };
            apply(ctx, role, step, &SwapPlan::of_record(r)?, id).await?;
        }
    }
    let (due, expired) = ctx.swaps.take_due(step);
    for p in expired {
        let (role, wait_s) = (p.request.role, p.request.wait_s);
        p.answer(Err(expired_reason(wait_s)));
        ctx.swaps.done(role);
    }
    let mut after_fence = None;
    for p in due {
        let role = p.request.role;
        if after_fence.is_some() {
            // The step fails and is retried; answer, and let the caller ask again.
            p.answer(Err(
                "an earlier swap at this boundary failed; nothing changed".into(),
            ));
            ctx.swaps.done(role);
            continue;
        }
        let r = perform(ctx, step, &p, &swaps).await;
        match &r {
            Ok(o) => {
                tracing::info!(role = role.name(), step, from = %o.from, to = %o.to, latency_ms = o.latency_ms, "swap answered")
            }
            Err(SwapFailure::Refused(e)) => {
                tracing::warn!(role = role.name(), step, error = %e, "swap refused; nothing changed")
            }
            Err(e @ SwapFailure::AfterFence(_)) => after_fence = Some(e.to_string()),
        }
        p.answer(r.map_err(|e| e.to_string()));
        ctx.swaps.done(role);
    }
    if let Some(e) = after_fence {
        return Err(e);
    }
    let mut servings = Servings::new();
    for m in models(variant) {
        servings.insert(m, state_of(ctx, m).await?.serving);
    }
    Ok(servings)
}

/// Why a swap failed, and whether it failed before the fence (nothing changed).
#[derive(Debug, thiserror::Error)]
enum SwapFailure {
    #[error("{0}")]
    Refused(String),
    #[error(
        "the swap was recorded but putting it into effect failed ({0}); recovery applies it before the next step"
    )]
    AfterFence(String),
}

async fn perform(
    ctx: &NodeContext,
    step: u64,
    p: &Pending,
    swaps: &[SwapRecord],
) -> Result<SwapOutcome, SwapFailure> {
    let role = p.request.role;
    let refused = SwapFailure::Refused;
    // The role must be present: wait for it within what is left of the request's wait.
    let left = Duration::from_secs(p.request.wait_s).saturating_sub(p.received.elapsed());
    rpc::wait_member::<LearnerMsg>(ctx, role.group(), left)
        .await
        .map_err(|e| refused(format!("the {} learner is not present: {e}", role.name())))?;
    let now = state_of(ctx, role).await.map_err(refused)?;
    let last = swaps.iter().rfind(|r| r.role == role.name());
    let plan = resolve(&p.request.target, role, ctx.config.algo.variant, last).map_err(refused)?;
    let id = PolicyId {
        generation: now.generation + 1,
        version: now.version + 1,
    };
    rpc::request(ctx, role.group(), 0, |reply| LearnerMsg::PrepareSwap {
        plan: Wire(plan.clone()),
        id: Wire(id),
        reply,
    })
    .await
    .map_err(|e| refused(e.to_string()))?;
    let record = SwapRecord {
        step,
        role: role.name().into(),
        request: p.request.target.to_string(),
        from_serving: now.serving.name().into(),
        from_version: now.version,
        to_serving: plan.serving.name().into(),
        weights: plan.weights.to_string(),
        generation: id.generation,
        version: id.version,
        duration_ms: p.received.elapsed().as_millis() as u64,
    };
    let stored = rpc::request(ctx, crate::role::group::STORE, 0, |reply| {
        StoreMsg::RecordSwap {
            swap: Wire(record.clone()),
            reply,
        }
    })
    .await;
    if let Err(e) = stored {
        let _ = rpc::request(ctx, role.group(), 0, |reply| LearnerMsg::AbortSwap {
            reply,
        })
        .await;
        return Err(refused(format!("recording the swap failed: {e}")));
    }
    tracing::info!(role = role.name(), step, generation = id.generation, request = %record.request, "swap recorded");
    ctx.faults
        .strike(FaultPoint::SwapRecorded)
        .await
        .map_err(|e| SwapFailure::AfterFence(e.to_string()))?;
    apply(ctx, role, step, &plan, id)
        .await
        .map_err(SwapFailure::AfterFence)?;
    Ok(SwapOutcome {
        role,
        step,
        generation: id.generation,
        version: id.version,
        from: record.from_label(),
        to: record.to_label(),
        latency_ms: elapsed_ms(p.received),
    })
}

fn elapsed_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}
