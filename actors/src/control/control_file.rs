//! `RUN/control.json`: how control clients reach a one-process run. `mgrpo train` starts a
//! node server on a free loopback port with a random cookie and writes both here, readable by
//! its owner only (mode 0600); the cookie is never printed. The file is removed when the run
//! ends; a stale one (the process was killed) names a port nobody answers on.
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cluster::link::{ClusterError, ClusterLink, join};
use crate::config::Config;
use crate::config::cluster::{NodeConfig, Secret};
use crate::context::NodeContext;

/// The file's name in a run directory.
pub const CONTROL_FILE: &str = "control.json";

/// What a client needs to reach a one-process run.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlFile {
    /// The run's node name.
    pub node: String,
    /// Where it listens (loopback).
    pub addr: String,
    /// The cookie.
    pub cookie: String,
    /// The `ractor::pg` scope of its roles.
    pub scope: String,
    /// Its process id.
    pub pid: u32,
}

impl std::fmt::Debug for ControlFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlFile")
            .field("node", &self.node)
            .field("addr", &self.addr)
            .field("cookie", &"***")
            .field("pid", &self.pid)
            .finish()
    }
}

/// Why the control endpoint could not be read or started.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No control file (not a one-process run, or not running).
    #[error("{0}: {1} (is a one-process `mgrpo train` running on this run directory?)")]
    Missing(String, std::io::Error),
    /// The file does not parse.
    #[error("{0}: {1}")]
    Malformed(String, serde_json::Error),
    /// Writing it failed.
    #[error("writing {0}: {1}")]
    Write(String, std::io::Error),
    /// The node server did not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl ControlFile {
    /// Reads `RUN/control.json`.
    pub fn read(run: &Path) -> Result<Self, ControlError> {
        let path = run.join(CONTROL_FILE);
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|e| ControlError::Missing(name.clone(), e))?;
        serde_json::from_slice(&bytes).map_err(|e| ControlError::Malformed(name, e))
    }

    /// Writes it to `RUN/control.json` with mode 0600 (replacing a stale one).
    pub fn write(&self, run: &Path) -> Result<(), ControlError> {
        let path = run.join(CONTROL_FILE);
        let err = |e| ControlError::Write(path.display().to_string(), e);
        let _ = std::fs::remove_file(&path);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&path).map_err(err)?;
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        f.write_all(&body).map_err(err)
    }

    /// A config whose one node is this run, with its cookie (how a client joins it).
    pub fn client_config(&self, base: &Config) -> Config {
        let mut config = base.clone();
        config.cluster.cookie = Some(Secret(self.cookie.clone()));
        config.cluster.cookie_file = None;
        config.cluster.cookie_env = None;
        config.cluster.tls = None;
        config.cluster.nodes = vec![NodeConfig {
            name: self.node.clone(),
            listen: self.addr.clone(),
            advertise: None,
            roles: Default::default(),
            dial: Default::default(),
        }];
        config
    }
}

fn random_cookie() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts the control endpoint of a one-process run: a node server on a free loopback port
/// with a random cookie, described in `RUN/control.json`. Keep the link for the run's life.
pub async fn listen(ctx: &NodeContext) -> Result<(ClusterLink, ControlFile), ControlError> {
    let node = format!("run-{}", std::process::id());
    let mut last = None;
    // The port is free when probed; another process may take it before the server binds.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| ControlError::Write("a loopback port".into(), e))?
            .port();
        let file = ControlFile {
            node: node.clone(),
            addr: format!("127.0.0.1:{port}"),
            cookie: random_cookie(),
            scope: ctx.scope.clone(),
            pid: std::process::id(),
        };
        let config = file.client_config(&ctx.config);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match join(&config, &node, addr, Vec::new()).await {
            Ok(link) => {
                file.write(ctx.run_dir.root())?;
                tracing::info!(addr = %file.addr, "control endpoint listening (cookie in control.json)");
                return Ok((link, file));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || {
            ControlError::Write(
                "control endpoint".into(),
                std::io::ErrorKind::AddrInUse.into(),
            )
        },
        ControlError::Cluster,
    ))
}

/// Removes `RUN/control.json` (the run ended).
pub fn remove(run: &Path) {
    let _ = std::fs::remove_file(run.join(CONTROL_FILE));
}
