//! The training run's entry points, the library side of `mgrpo train` / `mgrpo node` (and of
//! the integration tests): prepare a run directory (store, resolved config, warm start),
//! start a node's supervision tree, and drive the coordinator to the end.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use mgrpo_store::{CheckpointEntry, RoleVersion, Store};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::Config;
use crate::config::cluster::{LOCAL_NODE, totals};
use crate::context::{ContextError, NodeContext};
use crate::coordinator::{CoordinatorMsg, Progress};
use crate::node::supervisor::NodeEvent;
use crate::node::tree::{Node, NodeSpec, TreeError, start_placed_node};
use crate::role::{LearnerRole, Role, group, models};
use crate::rpc;
use crate::run_dir::RunDir;
use crate::warmup::{WarmupRole, warmup_roles};

/// Why a run could not train.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Preparing the node failed.
    #[error(transparent)]
    Context(#[from] ContextError),
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

impl From<TreeError> for TrainError {
    fn from(e: TreeError) -> Self {
        TrainError::Actors(e.to_string())
    }
}

/// The models of the run that have no checkpoint yet, among `hosted`.
fn cold(ctx: &NodeContext, hosted: impl Fn(LearnerRole) -> bool) -> Vec<LearnerRole> {
    models(ctx.config.algo.variant)
        .into_iter()
        .filter(|m| hosted(*m) && ctx.run_dir.latest_checkpoint(m.name()).is_none())
        .collect()
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
    let mut report = Vec::new();
    // All models are warmed together, or none (a run with some checkpoints keeps them).
    if !cold(&ctx, |_| true).is_empty() {
        let all = models(ctx.config.algo.variant);
        report = warmup_roles(&ctx, &all, on_warmup).map_err(TrainError::Warmup)?;
        for model in all {
            store.set_role_version(&RoleVersion {
                role: model.name().into(),
                version: 0,
                step: 0,
                source: "warmup".into(),
            })?;
            store.add_checkpoint(&CheckpointEntry {
                role: model.name().into(),
                version: 0,
                step: 0,
                path: RunDir::checkpoint_rel(model.name(), 0),
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
/// warm start of the learners it hosts.
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
    let cold = cold(&ctx, |m| roles.contains_key(&m.role()));
    let report = if cold.is_empty() {
        Vec::new()
    } else {
        warmup_roles(&ctx, &cold, on_warmup).map_err(TrainError::Warmup)?
    };
    Ok((ctx, store, report))
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
    let roles = totals(&ctx.config.placement());
    Ok(start_placed_node(
        ctx,
        NodeSpec {
            name: LOCAL_NODE.into(),
            roles,
            store: Some(store.clone()),
            progress,
            stop,
            events,
            peers: None,
            shutdown: None,
        },
    )
    .await?)
}

/// Runs training steps on a started node that hosts the coordinator, from the last committed
/// step until `config.train.steps` (or a stop).
/// A coordinator that dies mid-run is restarted by its supervisor; it is then asked to run
/// again (it recovers from the store), up to this many times.
const COORDINATOR_RESTARTS: u32 = 10;

/// Runs training steps on a started node that hosts the coordinator, from the last committed
/// step until `config.train.steps` (or a stop). Returns the steps committed by this call.
pub async fn run_steps(node: &Node) -> Result<u64, TrainError> {
    let ctx = &node.ctx;
    let to = ctx.config.train.steps;
    for restart in 0..=COORDINATOR_RESTARTS {
        let coord =
            rpc::wait_member::<CoordinatorMsg>(ctx, group::COORDINATOR, Duration::from_secs(60))
                .await
                .map_err(|e| TrainError::Actors(e.to_string()))?
                .remove(0);
        match rpc::call_member(&coord, |reply| CoordinatorMsg::Run { to, reply }, None).await {
            // Stopped before replying: the coordinator crashed; wait for its restart.
            Err(e) if e == rpc::STOPPED_BEFORE_REPLY => {
                tracing::warn!(
                    restart,
                    "the coordinator stopped mid-run; running again once it is back"
                );
                // The dead actor may still be listed in its group for a moment.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            r => return r.map_err(TrainError::Training),
        }
    }
    Err(TrainError::Training(format!(
        "the coordinator stopped {} times mid-run",
        COORDINATOR_RESTARTS + 1
    )))
}
