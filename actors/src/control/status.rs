//! `mgrpo status`: a short-lived client joins the cluster, asks every node agent what runs
//! where, each learner for its version and the store for the committed steps, and leaves.
use std::collections::BTreeMap;
use std::time::Duration;

use mgrpo_store::StepRecord;
use serde::{Deserialize, Serialize};

use crate::cluster::agent::{NodeInfo, node_infos};
use crate::cluster::link::{ClusterError, join};
use crate::config::Config;
use crate::context::{ContextError, NodeContext};
use crate::learner::LearnerMsg;
use crate::policy::checkpoints::TrainState;
use crate::role::{LearnerRole, group};
use crate::rpc::{self, members};
use crate::run::cluster_scope;
use crate::run_dir::RunDir;
use crate::store_actor::StoreMsg;

/// Why the status could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Joining as a client failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The context could not be built.
    #[error(transparent)]
    Context(#[from] ContextError),
}

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

/// The cluster's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
    /// Every configured node, in config order.
    pub nodes: Vec<NodeStatus>,
    /// Each learner that answered (`learner-main`, `learner-sub`): its state.
    pub learners: BTreeMap<String, Option<TrainState>>,
    /// The store's progress, if it answered.
    pub progress: Option<StoreProgress>,
}

/// Gathers the status of the cluster of `config`, waiting up to `timeout` for each answer.
pub async fn status(config: Config, timeout: Duration) -> Result<ClusterStatus, StatusError> {
    let names: Vec<String> = config
        .cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let dial = config
        .cluster
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.dial_address().to_string()))
        .collect();
    let me = format!("status-{}", std::process::id());
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let link = join(&config, &me, listen, dial).await?;
    let down = link.wait_peers(&names, timeout).await;
    // Group membership arrives with each session; give the last one a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let scope = cluster_scope(&config);
    let ctx = NodeContext::new(config, RunDir::new("."), scope)?;
    let infos = node_infos(&ctx, timeout).await;
    let mut learners = BTreeMap::new();
    for model in [LearnerRole::Main, LearnerRole::Sub] {
        if let Some(l) = members::<LearnerMsg>(&ctx, model.group()).first() {
            let state =
                rpc::call_member(l, |reply| LearnerMsg::GetState { reply }, Some(timeout)).await;
            learners.insert(model.role().name().to_string(), state.ok());
        }
    }
    let mut progress = None;
    if let Some(s) = members::<StoreMsg>(&ctx, group::STORE).first()
        && let Ok((committed, last)) =
            rpc::call_member(s, |reply| StoreMsg::Progress { reply }, Some(timeout)).await
    {
        progress = Some(StoreProgress {
            committed_steps: committed,
            last,
        });
    }
    link.stop();
    let nodes = names
        .iter()
        .map(|n| {
            let info = infos.iter().find(|i| &i.node == n).cloned();
            NodeStatus {
                node: n.clone(),
                up: info.is_some() && !down.contains(n),
                info,
            }
        })
        .collect();
    Ok(ClusterStatus {
        cluster: ctx.config.cluster.name.clone(),
        nodes,
        learners,
        progress,
    })
}
