//! The children of a node, built from its placement: the node agent, then each placed role's
//! instances in [`Role::ALL`] order. This is also where each learner is told who receives its
//! versions (the [`PolicySinks`] of its model under the run's variant).
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use mgrpo_algo::Algo;
use mgrpo_store::Store;
use ractor::{Actor, ActorCell, ActorRef};
use tokio::sync::mpsc::UnboundedSender;

use crate::cluster::agent::{Hosting, NodeAgent, NodeAgentArgs};
use crate::context::NodeContext;
use crate::control::endpoint::ControlEndpoint;
use crate::coordinator::{Coordinator, CoordinatorArgs, Progress};
use crate::executor::{Executor, ExecutorMsg};
use crate::judge::Judge;
use crate::learner::{LearnerActor, LearnerArgs};
use crate::node::supervisor::{
    ChildSpec, NodeArgs, NodeEvent, NodeMsg, NodeSupervisor, RestartPolicy, StartFuture,
};
use crate::planner::{Planner, PlannerMsg};
use crate::policy::sink::PolicySinks;
use crate::role::{LearnerRole, Role};
use crate::store_actor::StoreActor;

/// Why a node's tree could not start.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The node hosts the store but was given none.
    #[error("the store role needs the store open")]
    NoStore,
    /// The supervisor could not start (a child failed in its `pre_start`).
    #[error("{0}")]
    Spawn(String),
}

type StartFn = Arc<dyn Fn(ActorCell) -> StartFuture + Send + Sync>;

/// A child started (and restarted) by `make`.
fn child<A, F>(name: String, make: F) -> ChildSpec
where
    A: Actor,
    F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let start: StartFn = Arc::new(move |sup: ActorCell| {
        let make = make.clone();
        Box::pin(async move {
            let (actor, args) = make();
            let (r, _) = Actor::spawn_linked(None, actor, args, sup).await?;
            Ok(r.get_cell())
        })
    });
    ChildSpec { name, start }
}

/// Who receives the versions of `model` under `variant`.
pub fn sinks(model: LearnerRole, variant: Algo) -> PolicySinks {
    model
        .served_by(variant)
        .into_iter()
        .fold(PolicySinks::default(), |s, role| match role {
            Role::Planner => s.with::<PlannerMsg>(role.group()),
            Role::Executor => s.with::<ExecutorMsg>(role.group()),
            _ => s,
        })
}

/// What one node hosts and how it reports.
pub struct NodeSpec {
    /// The node's name (`local` for the embedded default).
    pub name: String,
    /// The roles it hosts, with instance counts.
    pub roles: BTreeMap<Role, usize>,
    /// The store, when it hosts the store role.
    pub store: Option<Store>,
    /// Progress of the coordinator, when it hosts it.
    pub progress: UnboundedSender<Progress>,
    /// Set to stop after the current step.
    pub stop: Arc<AtomicBool>,
    /// Restarts and meltdowns.
    pub events: Option<UnboundedSender<NodeEvent>>,
    /// Ready peers (cluster nodes).
    pub peers: Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
    /// Where a shutdown request from the coordinator's node goes.
    pub shutdown: Option<UnboundedSender<String>>,
}

/// Instance `i` of an inference role (planner or executor).
fn instance(ctx: &Arc<NodeContext>, role: Role, i: usize) -> Option<ChildSpec> {
    let c = ctx.clone();
    match role {
        Role::Executor => Some(child(format!("executor-{i}"), move || {
            (Executor, c.clone())
        })),
        Role::Planner => Some(child(format!("planner-{i}"), move || (Planner, c.clone()))),
        _ => None,
    }
}

/// Starts and stops a node's inference instances on demand, through its supervisor (known
/// once it started).
struct TreeHosting {
    ctx: Arc<NodeContext>,
    supervisor: OnceLock<ActorRef<NodeMsg>>,
}

impl Hosting for TreeHosting {
    fn host(&self, role: Role, count: usize) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let sup = self.supervisor.get().ok_or("the node is still starting")?;
            let prefix = format!("{}-", role.name());
            ractor::call!(sup, |reply| NodeMsg::StopChildren { prefix, reply })
                .map_err(|e| e.to_string())?;
            for i in 0..count {
                let spec = instance(&self.ctx, role, i)
                    .ok_or_else(|| format!("{} cannot be moved between nodes", role.name()))?;
                ractor::call!(sup, |reply| NodeMsg::Add { spec, reply })
                    .map_err(|e| e.to_string())??;
            }
            Ok(())
        })
    }
}

/// The children of a node, in start order: its agent, then its roles.
fn children(
    ctx: &Arc<NodeContext>,
    spec: &NodeSpec,
    hosting: &Arc<TreeHosting>,
) -> Result<Vec<ChildSpec>, TreeError> {
    let variant = ctx.config.algo.variant;
    let (c, node, peers, shutdown) = (
        ctx.clone(),
        spec.name.clone(),
        spec.peers.clone(),
        spec.shutdown.clone(),
    );
    let roles: BTreeMap<String, usize> = spec
        .roles
        .iter()
        .map(|(r, n)| (r.name().to_string(), *n))
        .collect();
    let hosting: Arc<dyn Hosting> = hosting.clone();
    let mut out = vec![child("agent".into(), move || {
        (
            NodeAgent,
            NodeAgentArgs {
                ctx: c.clone(),
                node: node.clone(),
                roles: roles.clone(),
                peers: peers.clone(),
                shutdown: shutdown.clone(),
                hosting: Some(hosting.clone()),
            },
        )
    })];
    for role in Role::ALL {
        let n = spec.roles.get(&role).copied().unwrap_or(0);
        for i in 0..n {
            let c = ctx.clone();
            out.push(match role {
                Role::Store => {
                    let s = spec.store.clone().ok_or(TreeError::NoStore)?;
                    child("store".into(), move || (StoreActor, (c.clone(), s.clone())))
                }
                Role::Judge => child(format!("judge-{i}"), move || (Judge, c.clone())),
                Role::LearnerMain | Role::LearnerSub => {
                    let model = if role == Role::LearnerMain {
                        LearnerRole::Main
                    } else {
                        LearnerRole::Sub
                    };
                    let sinks = sinks(model, variant);
                    child(format!("{}-learner", model.name()), move || {
                        (
                            LearnerActor,
                            LearnerArgs {
                                ctx: c.clone(),
                                role: model,
                                sinks: sinks.clone(),
                            },
                        )
                    })
                }
                Role::Executor | Role::Planner => instance(&c, role, i)
                    .ok_or_else(|| TreeError::Spawn(format!("no instance of {}", role.name())))?,
                Role::Coordinator => {
                    let (progress, stop) = (spec.progress.clone(), spec.stop.clone());
                    child("coordinator".into(), move || {
                        (
                            Coordinator,
                            CoordinatorArgs {
                                ctx: c.clone(),
                                progress: progress.clone(),
                                stop: stop.clone(),
                            },
                        )
                    })
                }
            });
        }
    }
    if spec.roles.contains_key(&Role::Coordinator) {
        // The control endpoint lives next to the coordinator whose swap queue it fills.
        let c = ctx.clone();
        out.push(child("control".into(), move || {
            (ControlEndpoint, c.clone())
        }));
    }
    Ok(out)
}

/// A running node: its supervisor and context.
pub struct Node {
    /// The supervisor.
    pub supervisor: ActorRef<NodeMsg>,
    /// The context.
    pub ctx: Arc<NodeContext>,
}

/// Starts the supervision tree of a node hosting `spec.roles`.
pub async fn start_placed_node(ctx: Arc<NodeContext>, spec: NodeSpec) -> Result<Node, TreeError> {
    let a = &ctx.config.actors;
    let hosting = Arc::new(TreeHosting {
        ctx: ctx.clone(),
        supervisor: OnceLock::new(),
    });
    let args = NodeArgs {
        children: children(&ctx, &spec, &hosting)?,
        policy: RestartPolicy {
            max_restarts: a.max_restarts,
            window: Duration::from_secs(a.restart_window_s),
            backoff: Duration::from_millis(a.restart_backoff_ms),
        },
        events: spec.events,
    };
    let (supervisor, _) = Actor::spawn(None, NodeSupervisor, args)
        .await
        .map_err(|e| TreeError::Spawn(e.to_string()))?;
    let _ = hosting.supervisor.set(supervisor.clone());
    Ok(Node { supervisor, ctx })
}
