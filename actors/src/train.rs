//! Starting a node's supervision tree for a run and driving it to the end: the library side of
//! `mgrpo train` (and of the integration tests).
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use mgrpo_algo::Algo;
use mgrpo_store::{CheckpointEntry, RoleVersion, Store};
use ractor::{Actor, ActorCell, ActorRef};
use tokio::sync::mpsc::UnboundedSender;

use crate::cluster::{NodeAgent, NodeAgentArgs};
use crate::config::Config;
use crate::context::NodeContext;
use crate::coordinator::{Coordinator, CoordinatorArgs, CoordinatorMsg, Progress};
use crate::executor::{Executor, ExecutorArgs};
use crate::groups;
use crate::judge::Judge;
use crate::learner::{LearnerActor, LearnerArgs, LearnerRole};
use crate::node::{ChildSpec, NodeArgs, NodeEvent, NodeMsg, NodeSupervisor, RestartPolicy};
use crate::placement::Role;
use crate::planner::Planner;
use crate::run_dir::RunDir;
use crate::store_actor::StoreActor;
use crate::warmup::{WarmupRole, warm_roles, warmup, warmup_roles};

/// Why a run could not train.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Preparing the node failed.
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mgrpo_store::StoreError),
    /// A file of the run directory could not be written.
    #[error("run directory: {0}")]
    Io(#[from] std::io::Error),
    /// The run already has steps and `--resume` was not given.
    #[error(
        "{dir} already has {steps} committed steps: pass --resume to continue it, or choose a new --run"
    )]
    NotResuming {
        /// The run directory.
        dir: String,
        /// Steps in its store.
        steps: u64,
    },
    /// The warm start failed.
    #[error("warm start: {0}")]
    Warmup(String),
    /// An actor could not start, or the node melted down.
    #[error("actors: {0}")]
    Actors(String),
    /// Training failed.
    #[error("training: {0}")]
    Training(String),
}

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue a stopped run.
    pub resume: bool,
}

/// Prepares the run directory: resolved config, store, warm start if no checkpoint exists.
/// Returns the node context, the store and the warm start's report (empty if reused).
pub fn prepare(
    config: Config,
    run_dir: RunDir,
    resume: bool,
    on_warmup: impl FnMut(&str, usize, usize, f32),
) -> Result<(Arc<NodeContext>, Store, Vec<WarmupRole>), TrainError> {
    run_dir.create()?;
    let toml = config.to_toml();
    let store = Store::open(run_dir.store_path())?;
    if let Some(last) = store.last_step()?
        && !resume
    {
        return Err(TrainError::NotResuming {
            dir: run_dir.root().display().to_string(),
            steps: last + 1,
        });
    }
    std::fs::write(run_dir.config_path(), &toml)?;
    store.put_config(&toml)?;
    let scope = format!("mgrpo/{}/{}", run_dir.root().display(), std::process::id());
    let ctx = NodeContext::new(config, run_dir, scope)?;
    let needs_warmup = warm_roles(ctx.config.algo.variant)
        .iter()
        .any(|(r, _)| ctx.run_dir.latest_checkpoint(r.name()).is_none());
    let mut report = Vec::new();
    if needs_warmup {
        report = warmup(&ctx, on_warmup).map_err(TrainError::Warmup)?;
        for (role, _) in warm_roles(ctx.config.algo.variant) {
            store.set_role_version(&RoleVersion {
                role: role.name().into(),
                version: 0,
                step: 0,
                source: "warmup".into(),
            })?;
            store.add_checkpoint(&CheckpointEntry {
                role: role.name().into(),
                version: 0,
                step: 0,
                path: RunDir::checkpoint_rel(role.name(), 0),
            })?;
        }
    }
    Ok((ctx, store, report))
}

/// The `ractor::pg` scope of a cluster's roles.
pub fn cluster_scope(config: &Config) -> String {
    format!("mgrpo/{}", config.cluster.name)
}

/// What [`prepare_node`] hands the node: its context, the store if it hosts one, and the
/// learners it must warm up first.
pub type PreparedNode = (Arc<NodeContext>, Option<Store>, Vec<WarmupRole>);

/// Prepares a cluster node (`mgrpo node`): the run directory and resolved config, the store
/// if the node hosts it, and the warm start of the learners it hosts that have no checkpoint
/// yet. A node always continues the run in its directory: restarting a node is how it rejoins.
pub fn prepare_node(
    config: Config,
    run_dir: RunDir,
    roles: &BTreeMap<Role, usize>,
    on_warmup: impl FnMut(&str, usize, usize, f32),
) -> Result<PreparedNode, TrainError> {
    run_dir.create()?;
    let toml = config.to_toml();
    std::fs::write(run_dir.config_path(), &toml)?;
    let store = if roles.contains_key(&Role::Store) {
        let store = Store::open(run_dir.store_path())?;
        store.put_config(&toml)?;
        Some(store)
    } else {
        None
    };
    let scope = cluster_scope(&config);
    let ctx = NodeContext::new(config, run_dir, scope)?;
    let cold: Vec<LearnerRole> = warm_roles(ctx.config.algo.variant)
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| {
            let role = match r {
                LearnerRole::Main => Role::LearnerMain,
                LearnerRole::Sub => Role::LearnerSub,
            };
            roles.contains_key(&role) && ctx.run_dir.latest_checkpoint(r.name()).is_none()
        })
        .collect();
    let report = if cold.is_empty() {
        Vec::new()
    } else {
        warmup_roles(&ctx, &cold, on_warmup).map_err(TrainError::Warmup)?
    };
    Ok((ctx, store, report))
}

type StartFn = Arc<dyn Fn(ActorCell) -> crate::node::StartFuture + Send + Sync>;

fn spec<A, F>(name: String, make: F) -> ChildSpec
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

/// The children of a node, in start order: its agent, then its roles.
fn children(ctx: &Arc<NodeContext>, spec_: &NodeSpec) -> Result<Vec<ChildSpec>, TrainError> {
    let variant = ctx.config.algo.variant;
    let separate_sub = matches!(variant, Algo::Mgrpo | Algo::FrozenSub);
    let mut out = Vec::new();
    let (c, node, peers, shutdown) = (
        ctx.clone(),
        spec_.name.clone(),
        spec_.peers.clone(),
        spec_.shutdown.clone(),
    );
    let roles: BTreeMap<String, usize> = spec_
        .roles
        .iter()
        .map(|(r, n)| (r.name().to_string(), *n))
        .collect();
    out.push(spec("agent".into(), move || {
        (
            NodeAgent,
            NodeAgentArgs {
                ctx: c.clone(),
                node: node.clone(),
                roles: roles.clone(),
                peers: peers.clone(),
                shutdown: shutdown.clone(),
            },
        )
    }));
    for role in Role::ALL {
        let n = spec_.roles.get(&role).copied().unwrap_or(0);
        for i in 0..n {
            let c = ctx.clone();
            let child = match role {
                Role::Store => {
                    let s = spec_.store.clone().ok_or_else(|| {
                        TrainError::Actors("the store role needs the store open".into())
                    })?;
                    spec("store".into(), move || (StoreActor, (c.clone(), s.clone())))
                }
                Role::Judge => spec(format!("judge-{i}"), move || (Judge, c.clone())),
                Role::LearnerMain | Role::LearnerSub => {
                    let r = if role == Role::LearnerMain {
                        LearnerRole::Main
                    } else {
                        LearnerRole::Sub
                    };
                    spec(format!("{}-learner", r.name()), move || {
                        (
                            LearnerActor,
                            LearnerArgs {
                                ctx: c.clone(),
                                role: r,
                            },
                        )
                    })
                }
                Role::Executor => spec(format!("executor-{i}"), move || {
                    (
                        Executor,
                        ExecutorArgs {
                            ctx: c.clone(),
                            owner: if separate_sub {
                                groups::SUB_LEARNER
                            } else {
                                groups::MAIN_LEARNER
                            },
                            trained: variant.sub_is_trained(),
                        },
                    )
                }),
                Role::Planner => spec(format!("planner-{i}"), move || (Planner, c.clone())),
                Role::Coordinator => {
                    let (progress, stop) = (spec_.progress.clone(), spec_.stop.clone());
                    spec("coordinator".into(), move || {
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
            };
            out.push(child);
        }
    }
    Ok(out)
}

/// A running node: its supervisor and coordinator.
pub struct Node {
    /// The supervisor.
    pub supervisor: ActorRef<NodeMsg>,
    /// The context.
    pub ctx: Arc<NodeContext>,
}

/// Starts the supervision tree of a node holding every role (the embedded default; with a
/// cluster config, every placed instance of every node).
pub async fn start_node(
    ctx: Arc<NodeContext>,
    store: &Store,
    progress: UnboundedSender<Progress>,
    stop: Arc<AtomicBool>,
    events: Option<UnboundedSender<NodeEvent>>,
) -> Result<Node, TrainError> {
    // A cluster config run in one process hosts every placed instance here.
    let roles = crate::placement::totals(&ctx.config.placement());
    start_placed_node(
        ctx,
        NodeSpec {
            name: crate::placement::LOCAL_NODE.into(),
            roles,
            store: Some(store.clone()),
            progress,
            stop,
            events,
            peers: None,
            shutdown: None,
        },
    )
    .await
}

/// Starts the supervision tree of a node hosting `spec.roles`.
pub async fn start_placed_node(ctx: Arc<NodeContext>, spec: NodeSpec) -> Result<Node, TrainError> {
    let a = &ctx.config.actors;
    let args = NodeArgs {
        children: children(&ctx, &spec)?,
        policy: RestartPolicy {
            max_restarts: a.max_restarts,
            window: Duration::from_secs(a.restart_window_s),
            backoff: Duration::from_millis(a.restart_backoff_ms),
        },
        events: spec.events,
    };
    let (supervisor, _) = Actor::spawn(None, NodeSupervisor, args)
        .await
        .map_err(|e| TrainError::Actors(e.to_string()))?;
    Ok(Node { supervisor, ctx })
}

/// Runs training steps on a started node that hosts the coordinator, from the last committed
/// step until `config.train.steps` (or a stop).
pub async fn run_steps(node: &Node) -> Result<u64, TrainError> {
    let ctx = &node.ctx;
    let to = ctx.config.train.steps;
    let coord =
        groups::wait_member::<CoordinatorMsg>(ctx, groups::COORDINATOR, Duration::from_secs(60))
            .await
            .map_err(|e| TrainError::Actors(e.to_string()))?
            .remove(0);
    match coord
        .call(|reply| CoordinatorMsg::Run { to, reply }, None)
        .await
    {
        Ok(ractor::rpc::CallResult::Success(r)) => r.map_err(TrainError::Training),
        Ok(_) => Err(TrainError::Actors("the coordinator stopped".into())),
        Err(e) => Err(TrainError::Actors(e.to_string())),
    }
}
