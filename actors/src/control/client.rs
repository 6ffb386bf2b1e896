//! A short-lived control client: joins a cluster's nodes (from its config file) or a
//! one-process run (from `RUN/control.json`) as an extra node, waits until the sessions are
//! ready and the roles' groups are synced, and gives a context to send requests with.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::link::{ClusterError, ClusterLink, join};
use crate::config::Config;
use crate::context::{ContextError, NodeContext};
use crate::control::control_file::{ControlError, ControlFile};
use crate::run::cluster_scope;
use crate::run_dir::RunDir;

/// What a client talks to.
#[derive(Debug, Clone)]
pub struct Target {
    /// A config whose nodes are the ones to join (for a one-process run: its control node).
    pub config: Config,
    /// The `ractor::pg` scope of the run's roles.
    pub scope: String,
}

/// Why a control client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Joining failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The context could not be built.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The run's control file.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The run's resolved config.
    #[error("{0}")]
    Config(String),
    /// Nobody answered.
    #[error(
        "no answer from {0} within {1:?} (is the run still going? a stale control.json names a port nobody listens on)"
    )]
    Unreachable(String, Duration),
}

impl Target {
    /// The cluster of `config` (its hub hosts the coordinator).
    pub fn cluster(config: Config) -> Self {
        let scope = cluster_scope(&config);
        Self { config, scope }
    }

    /// The one-process run in `run` (through its `control.json` and resolved config).
    pub fn run(run: &Path) -> Result<Self, ClientError> {
        let file = ControlFile::read(run)?;
        let path = RunDir::new(run).config_path();
        let config = Config::load(&path).map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(Self {
            config: file.client_config(&config),
            scope: file.scope,
        })
    }

    /// The node names to join.
    pub fn nodes(&self) -> Vec<String> {
        self.config
            .cluster
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }
}

/// A connected client.
pub struct Client {
    /// Its link (stopped on drop).
    pub link: ClusterLink,
    /// A context in the run's scope, for requests.
    pub ctx: Arc<NodeContext>,
    /// Nodes that did not answer in time.
    pub down: Vec<String>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.link.stop();
    }
}

/// Joins `target`, waiting up to `timeout` for its nodes; with `need_all`, a node that does
/// not answer is an error.
pub async fn connect(
    target: &Target,
    timeout: Duration,
    need_all: bool,
) -> Result<Client, ClientError> {
    let names = target.nodes();
    let dial = target
        .config
        .cluster
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.dial_address().to_string()))
        .collect();
    // A name of its own per client: a process that reconnects (`mgrpo chaos` arming faults in
    // a one-process run) must not be taken for its previous client, whose session the node
    // may not have closed yet.
    static CLIENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let me = format!("control-{}-{n}", std::process::id());
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let link = join(&target.config, &me, listen, dial).await?;
    let down = link.wait_peers(&names, timeout).await;
    if need_all && !down.is_empty() {
        link.stop();
        return Err(ClientError::Unreachable(down.join(", "), timeout));
    }
    // Group membership arrives with each session; give the last one a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ctx = NodeContext::new(
        target.config.clone(),
        RunDir::new("."),
        target.scope.clone(),
    )?;
    Ok(Client { link, ctx, down })
}
