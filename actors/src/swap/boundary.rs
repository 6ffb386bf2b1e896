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

use crate::cluster::agent::host;
use crate::config::cluster::{NodePlacement, totals};
use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::learner::LearnerMsg;
use crate::policy::checkpoints::TrainState;
use crate::policy::chunks::PolicyId;
use crate::role::{LearnerRole, Role, models};
use crate::rpc::{self, Wire};
use crate::store_actor::StoreMsg;
use crate::swap::placement::{effective, instance_role};
use crate::swap::queue::{Pending, SwapOutcome, expired_reason};
use crate::swap::target::{SwapPlan, SwapTarget, resolve};

/// Each model's learner state at a boundary: how it is served and its generation for the step.
pub type Servings = BTreeMap<LearnerRole, TrainState>;

async fn state_of(ctx: &NodeContext, role: LearnerRole) -> Result<TrainState, String> {
    rpc::request(ctx, role.group(), 0, |reply| LearnerMsg::GetState { reply })
        .await
        .map_err(|e| e.to_string())
}

/// Every swap the store holds, by step.
pub async fn recorded(ctx: &NodeContext) -> Result<Vec<SwapRecord>, String> {
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
/// requests, answers the expired ones; returns each model's state for the step. An
/// error (a recorded swap that could not be applied) fails the step: recovery retries it.
/// `rolled`: the step was already rolled out (asynchronous schedule), so due requests wait
/// for the next boundary (the coordinator does not roll ahead of them).
pub async fn at_boundary(ctx: &NodeContext, step: u64, rolled: bool) -> Result<Servings, String> {
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
    let (due, expired) = if rolled {
        (Vec::new(), Vec::new())
    } else {
        ctx.swaps.take_due(step)
    };
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
        servings.insert(m, state_of(ctx, m).await?);
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
    if let Some(node) = &p.request.node {
        check_node(ctx, node).map_err(refused)?;
    }
    let now = state_of(ctx, role).await.map_err(refused)?;
    let last = swaps.iter().rfind(|r| r.role == role.name());
    let variant = ctx.config.algo.variant;
    if p.request.target == SwapTarget::Expert && ctx.task.world().is_none() {
        return Err(refused(
            "this task has no scripted expert (only the generated world has one)".into(),
        ));
    }
    let plan = resolve(&p.request.target, role, variant, now.serving, last).map_err(refused)?;
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
    // A move: the role's instances start on the new node (each fetches the current version in
    // chunks and loads it) while the old ones keep serving.
    let placement = effective(&ctx.config.placement(), swaps);
    let instances = instance_role(role);
    if let Some(node) = &p.request.node
        && let Err(e) = host_all(ctx, &placement, instances, node).await
    {
        let _ = rpc::request(ctx, role.group(), 0, |reply| LearnerMsg::AbortSwap {
            reply,
        })
        .await;
        let had = placement
            .iter()
            .find(|n| &n.node == node)
            .and_then(|n| n.roles.get(&instances).copied())
            .unwrap_or(0);
        let _ = host(ctx, node, instances, had, timeout(ctx)).await;
        return Err(refused(format!("moving to node {node}: {e}")));
    }
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
        node: p.request.node.clone(),
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
    if let Some(node) = &p.request.node {
        // The old instances stop; the role now runs on `node` only.
        for n in placement.iter().filter(|n| &n.node != node) {
            if n.roles.get(&instances).is_some_and(|c| *c > 0) {
                host(ctx, &n.node, instances, 0, timeout(ctx))
                    .await
                    .map_err(SwapFailure::AfterFence)?;
            }
        }
    }
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

fn timeout(ctx: &NodeContext) -> Duration {
    Duration::from_secs(ctx.config.actors.request_timeout_s)
}

/// Whether `node` can take a role's instances.
fn check_node(ctx: &NodeContext, node: &str) -> Result<(), String> {
    let c = &ctx.config.cluster;
    if !c.is_distributed() {
        return Err("--node needs a cluster: a one-process run has one node".into());
    }
    if c.node(node).is_none() {
        let known: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(format!(
            "no node named {node:?} in [[cluster.nodes]] (known: {})",
            known.join(", ")
        ));
    }
    Ok(())
}

/// Starts every instance of `role` (as many as `placement` has over the cluster) on `node`.
async fn host_all(
    ctx: &NodeContext,
    placement: &[NodePlacement],
    role: Role,
    node: &str,
) -> Result<(), String> {
    let total = totals(placement).get(&role).copied().unwrap_or(0);
    host(ctx, node, role, total, timeout(ctx)).await
}

fn elapsed_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}
