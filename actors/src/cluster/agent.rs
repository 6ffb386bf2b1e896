//! The node agent: one per node, in the `node/agent` group. It says what runs on its node and
//! what crossed its links, arms faults on its node, hosts role instances on demand (a swap
//! moving a role here), and stops the node when the run is over.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use crate::cluster::bytes::{LinkCounters, link_bytes};
use crate::context::NodeContext;
use crate::faults::Fault;
use crate::role::{Role, group};
use crate::rpc::wire::{PayloadCount, counters};
use crate::rpc::{self, Reply, Wire};

/// What a node agent reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's name.
    pub node: String,
    /// Its process id.
    pub pid: u32,
    /// Roles it hosts with their instance counts.
    pub roles: BTreeMap<String, usize>,
    /// Peers with a ready session.
    pub peers: Vec<String>,
    /// Bytes over the links this node dialled (see [`crate::cluster::bytes`]).
    pub link_bytes: u64,
    /// Payloads sent and received, by type.
    pub payloads: BTreeMap<String, PayloadCount>,
}

/// Messages of a node agent.
#[derive(RactorClusterMessage)]
pub enum NodeAgentMsg {
    /// What runs here and what crossed.
    #[rpc]
    Info {
        /// The answer.
        reply: RpcReplyPort<Reply<NodeInfo>>,
    },
    /// Bytes over the links this node dialled so far, with the node's name and process id
    /// (a restarted node counts from zero again).
    #[rpc]
    LinkBytes {
        /// `(node, pid, bytes)`.
        reply: RpcReplyPort<Reply<(String, u32, u64)>>,
    },
    /// Arms a fault on this node (fault-injection tests and plans).
    #[rpc]
    InjectFault {
        /// The fault.
        fault: Wire<Fault>,
        /// Acknowledged once armed.
        reply: RpcReplyPort<Reply<()>>,
    },
    /// Host `count` instances of `role` on this node from now on (0: none): how a swap moves a
    /// role's inference instances, and how recovery puts moved instances back after a restart.
    /// Already hosting `count`: nothing changes.
    #[rpc]
    Host {
        /// The role (planner or executor).
        role: Wire<Role>,
        /// Instances wanted here.
        count: u32,
        /// Acknowledged once they started (or stopped).
        reply: RpcReplyPort<Reply<()>>,
    },
    /// The run is over (sent by the coordinator's node): stop this node.
    Shutdown {
        /// Why.
        reason: Wire<String>,
    },
}

/// How a node starts and stops role instances on demand (its supervision tree implements it).
pub trait Hosting: Send + Sync {
    /// Stops this node's instances of `role`, then starts `count` new ones.
    fn host(&self, role: Role, count: usize) -> BoxFuture<'_, Result<(), String>>;
}

/// Arguments of a node agent.
pub struct NodeAgentArgs {
    /// Shared context.
    pub ctx: Arc<NodeContext>,
    /// This node's name.
    pub node: String,
    /// Its roles.
    pub roles: BTreeMap<String, usize>,
    /// Ready peers, if in a cluster.
    pub peers: Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
    /// Where a shutdown request goes.
    pub shutdown: Option<UnboundedSender<String>>,
    /// How it hosts instances on demand.
    pub hosting: Option<Arc<dyn Hosting>>,
}

/// The node agent.
pub struct NodeAgent;

impl Actor for NodeAgent {
    type Msg = NodeAgentMsg;
    type State = NodeAgentArgs;
    type Arguments = NodeAgentArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<NodeAgentMsg>,
        args: NodeAgentArgs,
    ) -> Result<NodeAgentArgs, ActorProcessingErr> {
        rpc::join(&args.ctx, group::NODE_AGENT, myself.get_cell());
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<NodeAgentMsg>,
        message: NodeAgentMsg,
        state: &mut NodeAgentArgs,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NodeAgentMsg::Info { reply } => {
                let info = NodeInfo {
                    node: state.node.clone(),
                    pid: std::process::id(),
                    roles: state.roles.clone(),
                    peers: state.peers.as_ref().map(|p| p()).unwrap_or_default(),
                    link_bytes: link_bytes(),
                    payloads: counters(),
                };
                let _ = reply.send(Wire(Ok(info)));
            }
            NodeAgentMsg::LinkBytes { reply } => {
                let _ = reply.send(Wire(Ok((
                    state.node.clone(),
                    std::process::id(),
                    link_bytes(),
                ))));
            }
            NodeAgentMsg::InjectFault {
                fault: Wire(fault),
                reply,
            } => {
                let _ = reply.send(Wire(state.ctx.faults.arm(fault)));
            }
            NodeAgentMsg::Host {
                role: Wire(role),
                count,
                reply,
            } => {
                let have = state.roles.get(role.name()).copied().unwrap_or(0);
                let r = match &state.hosting {
                    _ if have == count as usize => Ok(()),
                    None => Err(format!("node {} cannot host roles on demand", state.node)),
                    Some(h) => h.host(role, count as usize).await,
                };
                if r.is_ok() {
                    tracing::info!(role = role.name(), from = have, to = count, "hosting");
                    if count == 0 {
                        state.roles.remove(role.name());
                    } else {
                        state.roles.insert(role.name().to_string(), count as usize);
                    }
                }
                let _ = reply.send(Wire(r));
            }
            NodeAgentMsg::Shutdown { reason: Wire(r) } => {
                tracing::info!(reason = %r, "shutdown requested");
                if let Some(tx) = &state.shutdown {
                    let _ = tx.send(r);
                }
            }
        }
        Ok(())
    }
}

/// Asks every node agent for its info (nodes that do not answer in `timeout` are left out),
/// sorted by node name.
pub async fn node_infos(ctx: &NodeContext, timeout: Duration) -> Vec<NodeInfo> {
    let mut out = rpc::call_each(
        ctx,
        group::NODE_AGENT,
        |reply| NodeAgentMsg::Info { reply },
        timeout,
    )
    .await;
    out.sort_by(|a: &NodeInfo, b| a.node.cmp(&b.node));
    out
}

/// Every node's link-byte counter now (each link is counted by the node that dialled it).
pub async fn link_counters(ctx: &NodeContext) -> LinkCounters {
    rpc::call_each(
        ctx,
        group::NODE_AGENT,
        |reply| NodeAgentMsg::LinkBytes { reply },
        Duration::from_secs(5),
    )
    .await
    .into_iter()
    .map(|(node, pid, bytes)| (node, (pid, bytes)))
    .collect()
}

/// Asks every node agent to stop its node (the run is over).
pub fn shutdown_all(ctx: &NodeContext, reason: &str) {
    rpc::broadcast(ctx, group::NODE_AGENT, || NodeAgentMsg::Shutdown {
        reason: Wire(reason.to_string()),
    });
}

/// The agent of node `node`, if it answers within `timeout`.
pub async fn agent_of(
    ctx: &NodeContext,
    node: &str,
    timeout: Duration,
) -> Option<ActorRef<NodeAgentMsg>> {
    for a in rpc::members::<NodeAgentMsg>(ctx, group::NODE_AGENT) {
        let info = rpc::call_member(&a, |reply| NodeAgentMsg::Info { reply }, Some(timeout)).await;
        if info.is_ok_and(|i| i.node == node) {
            return Some(a);
        }
    }
    None
}

/// Has node `node` host `count` instances of `role` (see [`NodeAgentMsg::Host`]).
pub async fn host(
    ctx: &NodeContext,
    node: &str,
    role: Role,
    count: usize,
    timeout: Duration,
) -> Result<(), String> {
    let agent = agent_of(ctx, node, timeout)
        .await
        .ok_or_else(|| format!("node {node} is not present"))?;
    rpc::call_member(
        &agent,
        |reply| NodeAgentMsg::Host {
            role: Wire(role),
            count: count as u32,
            reply,
        },
        Some(timeout),
    )
    .await
    .map_err(|e| format!("node {node}: {e}"))
}
