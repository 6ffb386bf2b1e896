//! Starting a node's supervision tree for a run and driving it to the end: the library side of
//! `mgrpo train` (and of the integration tests).
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use mgrpo_algo::Algo;
use mgrpo_store::{CheckpointEntry, RoleVersion, Store};
use ractor::{Actor, ActorCell, ActorRef};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::Config;
use crate::context::NodeContext;
use crate::coordinator::{Coordinator, CoordinatorArgs, CoordinatorMsg, Progress};
use crate::executor::{Executor, ExecutorArgs};
use crate::groups;
use crate::judge::Judge;
use crate::learner::{LearnerActor, LearnerArgs, LearnerMsg, LearnerRole};
use crate::node::{ChildSpec, NodeArgs, NodeEvent, NodeMsg, NodeSupervisor, RestartPolicy};
use crate::planner::Planner;
use crate::run_dir::RunDir;
use crate::store_actor::StoreActor;
use crate::warmup::{WarmupRole, warm_roles, warmup};

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

/// The children of a single node holding every role, in start order.
fn children(
    ctx: &Arc<NodeContext>,
    store: &Store,
    progress: UnboundedSender<Progress>,
    stop: Arc<AtomicBool>,
) -> Vec<ChildSpec> {
    let variant = ctx.config.algo.variant;
    let mut out = Vec::new();
    let (c, s) = (ctx.clone(), store.clone());
    out.push(spec("store".into(), move || {
        (StoreActor, (c.clone(), s.clone()))
    }));
    let c = ctx.clone();
    out.push(spec("judge".into(), move || (Judge, c.clone())));
    let c = ctx.clone();
    out.push(spec("main-learner".into(), move || {
        (
            LearnerActor,
            LearnerArgs {
                ctx: c.clone(),
                role: LearnerRole::Main,
            },
        )
    }));
    let separate_sub = matches!(variant, Algo::Mgrpo | Algo::FrozenSub);
    if separate_sub {
        let c = ctx.clone();
        out.push(spec("sub-learner".into(), move || {
            (
                LearnerActor,
                LearnerArgs {
                    ctx: c.clone(),
                    role: LearnerRole::Sub,
                },
            )
        }));
    }
    if variant.uses_sub_agents() {
        for i in 0..ctx.config.actors.executors {
            let c = ctx.clone();
            out.push(spec(format!("executor-{i}"), move || {
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
            }));
        }
    }
    for i in 0..ctx.config.actors.planners {
        let c = ctx.clone();
        out.push(spec(format!("planner-{i}"), move || (Planner, c.clone())));
    }
    let c = ctx.clone();
    out.push(spec("coordinator".into(), move || {
        (
            Coordinator,
            CoordinatorArgs {
                ctx: c.clone(),
                progress: progress.clone(),
                stop: stop.clone(),
            },
        )
    }));
    out
}

/// A running node: its supervisor and coordinator.
pub struct Node {
    /// The supervisor.
    pub supervisor: ActorRef<NodeMsg>,
    /// The context.
    pub ctx: Arc<NodeContext>,
}

/// Starts the supervision tree of a node holding every role.
pub async fn start_node(
    ctx: Arc<NodeContext>,
    store: &Store,
    progress: UnboundedSender<Progress>,
    stop: Arc<AtomicBool>,
    events: Option<UnboundedSender<NodeEvent>>,
) -> Result<Node, TrainError> {
    let a = &ctx.config.actors;
    let args = NodeArgs {
        children: children(&ctx, store, progress, stop),
        policy: RestartPolicy {
            max_restarts: a.max_restarts,
            window: Duration::from_secs(a.restart_window_s),
            backoff: Duration::from_millis(a.restart_backoff_ms),
        },
        events,
    };
    let (supervisor, _) = Actor::spawn(None, NodeSupervisor, args)
        .await
        .map_err(|e| TrainError::Actors(e.to_string()))?;
    Ok(Node { supervisor, ctx })
}

/// Runs training steps on a started node until `config.train.steps` (or a stop).
pub async fn run_steps(node: &Node) -> Result<u64, TrainError> {
    let ctx = &node.ctx;
    let state = groups::request(ctx, groups::MAIN_LEARNER, 0, |reply| LearnerMsg::GetState {
        reply,
    })
    .await
    .map_err(|e| TrainError::Actors(e.to_string()))?;
    let from = state.next_step;
    let to = ctx.config.train.steps;
    if from >= to {
        return Ok(0);
    }
    let coord =
        groups::wait_member::<CoordinatorMsg>(ctx, groups::COORDINATOR, Duration::from_secs(60))
            .await
            .map_err(|e| TrainError::Actors(e.to_string()))?
            .remove(0);
    match coord
        .call(|reply| CoordinatorMsg::Run { from, to, reply }, None)
        .await
    {
        Ok(ractor::rpc::CallResult::Success(r)) => r.map_err(TrainError::Training),
        Ok(_) => Err(TrainError::Actors("the coordinator stopped".into())),
        Err(e) => Err(TrainError::Actors(e.to_string())),
    }
}
