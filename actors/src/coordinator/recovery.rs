//! Bringing the cluster to a consistent point before the first step and after a failed one.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::agent::{host, node_infos};
use crate::cluster::membership::{STOPPED, wait_roles};
use crate::config::cluster::NodePlacement;
use crate::context::NodeContext;
use crate::coordinator::versions::Versions;
use crate::learner::LearnerMsg;
use crate::role::{Role, group, training_learners};
use crate::rpc;
use crate::store_actor::StoreMsg;
use crate::swap::boundary::recorded;
use crate::swap::placement::{any_moves, effective};

/// Returns the step to run next: waits for every placed role, reads the committed steps from
/// the store, and restores each learner to the last committed step (a learner that trained on
/// a step that was never committed, or that restarted from an older checkpoint, is rolled to
/// it). A learner that cannot reach it (no checkpoint there) makes every learner go back to the
/// oldest common step, and the steps from there are replayed: rollouts are seeded, so the
/// replay commits identical records, which the store takes as no-ops (and refuses with a
/// conflict if they differed).
///
/// Under the asynchronous schedule each learner also republishes the versions the next steps
/// are sampled with; the returned [`Versions`] name them.
pub async fn recover(ctx: &NodeContext, stop: &AtomicBool) -> Result<Recovered, String> {
    let within = std::time::Duration::from_secs(ctx.config.cluster.wait_roles_s);
    let swaps = recorded(ctx).await?;
    let placement = effective(&ctx.config.placement(), &swaps);
    if any_moves(&swaps) {
        put_back(ctx, &placement, within, stop).await?;
    }
    wait_roles(ctx, &placement, within, stop).await?;
    let (committed, _) = rpc::request(ctx, group::STORE, 0, |reply| StoreMsg::Progress { reply })
        .await
        .map_err(|e| e.to_string())?;
    let mut states = Vec::new();
    for learner in training_learners(ctx.config.algo.variant) {
        let s = rpc::request(ctx, learner.group(), 0, |reply| LearnerMsg::GetState {
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
        states.push((learner, s));
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
    let lag = ctx.config.algo.lag();
    let mut versions = Versions::new(lag);
    for (learner, s) in states {
        let (g, at) = (learner.group(), s.next_step);
        if at != target {
            tracing::warn!(learner = g, at, target, committed, "restoring learner");
        }
        // Also when already there: drops half-received trajectories and republishes weights.
        let restored = rpc::request(ctx, g, 0, |reply| LearnerMsg::Restore {
            next_step: target,
            keep: lag,
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
        for (step, id) in restored.versions {
            versions.record(learner, step, id);
        }
    }
    Ok(Recovered {
        next: target,
        versions,
    })
}

/// Where training continues after recovery.
#[derive(Debug)]
pub struct Recovered {
    /// The step to run next.
    pub next: u64,
    /// The versions the learners republished (what the next steps are sampled with).
    pub versions: Versions,
}

/// Makes every node host the inference instances `placement` gives it (after swaps moved
/// some): a node restarted with the config's placement is told to start or stop them. Waits for
/// every node's agent, up to `within`.
async fn put_back(
    ctx: &NodeContext,
    placement: &[NodePlacement],
    within: Duration,
    stop: &AtomicBool,
) -> Result<(), String> {
    let start = Instant::now();
    let timeout = Duration::from_secs(5);
    loop {
        let infos = node_infos(ctx, timeout).await;
        let mut settled = true;
        for node in placement {
            let Some(info) = infos.iter().find(|i| i.node == node.node) else {
                settled = false;
                continue;
            };
            for role in [Role::Planner, Role::Executor] {
                let want = node.roles.get(&role).copied().unwrap_or(0);
                let have = info.roles.get(role.name()).copied().unwrap_or(0);
                if want != have {
                    tracing::warn!(node = %node.node, role = role.name(), have, want, "putting moved instances back");
                    if let Err(e) = host(ctx, &node.node, role, want, timeout).await {
                        tracing::warn!(error = %e, "could not put moved instances back yet");
                        settled = false;
                    }
                }
            }
        }
        if settled {
            return Ok(());
        }
        if stop.load(Ordering::SeqCst) {
            return Err(STOPPED.into());
        }
        if start.elapsed() > within {
            return Err(format!(
                "nodes still missing after {within:?} (moved roles cannot be put back)"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
