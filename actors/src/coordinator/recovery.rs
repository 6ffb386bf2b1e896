//! Bringing the cluster to a consistent point before the first step and after a failed one.
use std::sync::atomic::AtomicBool;

use crate::cluster::membership::wait_roles;
use crate::context::NodeContext;
use crate::learner::LearnerMsg;
use crate::role::{group, training_learners};
use crate::rpc;
use crate::store_actor::StoreMsg;

/// Returns the step to run next: waits for every placed role, reads the committed steps from
/// the store, and restores each learner to the last committed step (a learner that trained on
/// a step that was never committed, or that restarted from an older checkpoint, is rolled to
/// it). A learner that cannot reach it (no checkpoint there) makes every learner go back to the
/// oldest common step, and the steps from there are replayed: rollouts are seeded, so the
/// replay commits identical records, which the store takes as no-ops (and refuses with a
/// conflict if they differed).
pub async fn recover(ctx: &NodeContext, stop: &AtomicBool) -> Result<u64, String> {
    let within = std::time::Duration::from_secs(ctx.config.cluster.wait_roles_s);
    wait_roles(ctx, &ctx.config.placement(), within, stop).await?;
    let (committed, _) = rpc::request(ctx, group::STORE, 0, |reply| StoreMsg::Progress { reply })
        .await
        .map_err(|e| e.to_string())?;
    let mut states = Vec::new();
    for learner in training_learners(ctx.config.algo.variant) {
        let g = learner.group();
        let s = rpc::request(ctx, g, 0, |reply| LearnerMsg::GetState { reply })
            .await
            .map_err(|e| e.to_string())?;
        states.push((g, s));
    }
    // A learner whose role is swapped to frozen or expert takes no steps: its progress does
    // not hold the others back (it follows them in `Restore`).
    let target = states
        .iter()
        .filter(|(_, s)| s.serving.trains())
        .map(|(_, s)| s.next_step)
        .min()
        .unwrap_or(committed)
        .min(committed);
    let states: Vec<_> = states.into_iter().map(|(g, s)| (g, s.next_step)).collect();
    for (g, at) in states {
        if at != target {
            tracing::warn!(learner = g, at, target, committed, "restoring learner");
        }
        // Also when already there: drops half-received trajectories and republishes weights.
        rpc::request(ctx, g, 0, |reply| LearnerMsg::Restore {
            next_step: target,
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(target)
}
