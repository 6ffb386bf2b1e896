//! `mgrpo status`: a short-lived client joins the cluster (or a one-process run's control
//! endpoint), asks every node agent what runs where, each learner for its generation, version
//! and serving, and the store for the committed steps and the swaps, and leaves.
use std::collections::BTreeMap;
use std::time::Duration;

use mgrpo_store::{StepRecord, SwapRecord};
use serde::{Deserialize, Serialize};

use crate::cluster::agent::{NodeInfo, node_infos};
use crate::context::NodeContext;
use crate::control::client::{ClientError, Target, connect};
use crate::learner::LearnerMsg;
use crate::policy::checkpoints::TrainState;
use crate::role::{LearnerRole, group};
use crate::rpc::{self, members};
use crate::store_actor::StoreMsg;
use crate::swap::target::Serving;

/// Why the status could not be gathered.
pub type StatusError = ClientError;

/// One node as the status sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its name.
    pub node: String,
    /// Whether it answered.
    pub up: bool,
    /// What its agent said.
    pub info: Option<NodeInfo>,
}

/// The store's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreProgress {
    /// Steps committed.
    pub committed_steps: u64,
    /// The last step's record.
    pub last: Option<StepRecord>,
}

/// A model as the status sees it: its learner's state, where its policy came from, its last
/// swap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleStatus {
    /// `main` or `sub`.
    pub role: String,
    /// Its generation.
    pub generation: u64,
    /// Its version.
    pub version: u64,
    /// Where its policy comes from: `learner`, `checkpoint`, `model`, `expert` or `frozen`.
    pub source: String,
    /// Its last swap, if any.
    pub last_swap: Option<SwapRecord>,
}

/// The cluster's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
    /// Every configured node, in config order.
    pub nodes: Vec<NodeStatus>,
    /// Each learner that answered (`learner-main`, `learner-sub`): its state.
    pub learners: BTreeMap<String, Option<TrainState>>,
    /// Each model whose learner answered.
    pub roles: Vec<RoleStatus>,
    /// The store's progress, if it answered.
    pub progress: Option<StoreProgress>,
}

/// Where a role's current policy comes from, given its serving and its last swap.
fn source(state: &TrainState, last: Option<&SwapRecord>) -> String {
    match (state.serving, last) {
        (Serving::Expert, _) => "expert".into(),
        (Serving::Frozen, _) => "frozen".into(),
        (Serving::Learner, Some(s)) if s.weights.starts_with("checkpoint:") => "checkpoint".into(),
        (Serving::Learner, Some(s)) if s.weights.starts_with("model:") => "model".into(),
        (Serving::Learner, _) => "learner".into(),
    }
}

/// Gathers the status of `target`, waiting up to `timeout` for each answer.
pub async fn status(target: &Target, timeout: Duration) -> Result<ClusterStatus, StatusError> {
    let names = target.nodes();
    let client = connect(target, timeout, false).await?;
    Ok(status_via(&client.ctx, &names, &client.down, timeout).await)
}

/// The status as seen from `ctx` — a control client's, or the run's own node (the dashboard
/// of `mgrpo train --dashboard`): `names` are the nodes to report, `down` those known not to
/// answer.
pub async fn status_via(
    ctx: &NodeContext,
    names: &[String],
    down: &[String],
    timeout: Duration,
) -> ClusterStatus {
    let infos = node_infos(ctx, timeout).await;
    let mut progress = None;
    let mut swaps = Vec::new();
    if let Some(s) = members::<StoreMsg>(ctx, group::STORE).first() {
        if let Ok((committed, last)) =
            rpc::call_member(s, |reply| StoreMsg::Progress { reply }, Some(timeout)).await
        {
            progress = Some(StoreProgress {
                committed_steps: committed,
                last,
            });
        }
        swaps = rpc::call_member(s, |reply| StoreMsg::Swaps { reply }, Some(timeout))
            .await
            .unwrap_or_default();
    }
    let mut learners = BTreeMap::new();
    let mut roles = Vec::new();
    for model in [LearnerRole::Main, LearnerRole::Sub] {
        if let Some(l) = members::<LearnerMsg>(ctx, model.group()).first() {
            let state =
                rpc::call_member(l, |reply| LearnerMsg::GetState { reply }, Some(timeout)).await;
            if let Ok(st) = &state {
                let last = swaps.iter().rfind(|s| s.role == model.name());
                roles.push(RoleStatus {
                    role: model.name().into(),
                    generation: st.generation,
                    version: st.version,
                    source: source(st, last),
                    last_swap: last.cloned(),
                });
            }
            learners.insert(model.role().name().to_string(), state.ok());
        }
    }
    let nodes = names
        .iter()
        .map(|n| {
            // A one-process run's agent calls its node `local`.
            let only = (names.len() == 1 && infos.len() == 1).then(|| &infos[0]);
            let info = infos.iter().find(|i| &i.node == n).or(only).cloned();
            NodeStatus {
                node: n.clone(),
                up: info.is_some() && !down.contains(n),
                info,
            }
        })
        .collect();
    ClusterStatus {
        cluster: ctx.config.cluster.name.clone(),
        nodes,
        learners,
        roles,
        progress,
    }
}
