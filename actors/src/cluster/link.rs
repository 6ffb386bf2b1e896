//! This node's `NodeServer` and its links to its peers, dialled with retry/backoff and
//! re-dialled when lost.
//!
//! Links: node `i` of `[[cluster.nodes]]` dials every node listed before it and accepts the
//! ones listed after, so each pair has exactly one TCP session (ractor_cluster would refuse a
//! second one anyway). A restarted node dials again; a node whose dialled peer dies keeps
//! re-dialling it until it is back.
//! Every dialled session runs through [`crate::cluster::bytes`]'s counting streams; every
//! session, dialled or accepted ([`crate::cluster::accept`]), reads through a watchdog
//! ([`crate::cluster::watchdog`]) that drops a link silent for `cluster.link_timeout_s`.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorRef};
use ractor_cluster::{
    BoxRead, BoxWrite, ClusterBidiStream, IncomingEncryptionMode, NodeServer, NodeServerMessage,
};

use crate::cluster::accept::accept_loop;
use crate::cluster::bytes::{CountingRead, CountingWrite};
use crate::cluster::membership::{Sessions, Watcher};
use crate::cluster::tls::{TlsSettings, tcp_halves, tls_halves};
use crate::cluster::watchdog::WatchedRead;
use crate::config::Config;

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The config names no such node.
    #[error("no node named {0:?} in [[cluster.nodes]] (known: {1})")]
    UnknownNode(String, String),
    /// No usable cookie.
    #[error("{0}")]
    Cookie(String),
    /// A listen address does not parse.
    #[error("{0}")]
    Address(String),
    /// TLS files could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The node server did not start (port taken?).
    #[error("could not start the node server on {addr}: {message}")]
    Server {
        /// Where.
        addr: String,
        /// Why.
        message: String,
    },
}

/// A dialled connection (plain or TLS) whose bytes are counted.
struct DialledStream {
    read: BoxRead,
    write: BoxWrite,
    peer: String,
    timeout: Duration,
}

impl ClusterBidiStream for DialledStream {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let label = format!("dialled {}", self.peer);
        (
            Box::new(WatchedRead::new(
                Box::new(CountingRead(self.read)),
                self.timeout,
                label,
            )),
            Box::new(CountingWrite(self.write)),
        )
    }
    fn peer_label(&self) -> Option<String> {
        Some(self.peer.clone())
    }
}

/// This process's membership in a cluster.
pub struct ClusterLink {
    /// The node server.
    pub server: ActorRef<NodeServerMessage>,
    /// This node's name in the cluster.
    pub name: String,
    sessions: Arc<Mutex<Sessions>>,
    dialers: Vec<tokio::task::JoinHandle<()>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl ClusterLink {
    /// Peers with a ready session now.
    pub fn ready_peers(&self) -> Vec<String> {
        self.sessions
            .lock()
            .map(|s| s.ready.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A function giving the ready peers (for the node agent).
    pub fn peers_fn(&self) -> Arc<dyn Fn() -> Vec<String> + Send + Sync> {
        let s = self.sessions.clone();
        Arc::new(move || {
            s.lock()
                .map(|s| s.ready.keys().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Waits until every peer in `names` is ready, up to `within`; returns the missing ones.
    pub async fn wait_peers(&self, names: &[String], within: Duration) -> Vec<String> {
        let start = std::time::Instant::now();
        loop {
            let ready = self.ready_peers();
            let missing: Vec<String> = names
                .iter()
                .filter(|n| !ready.contains(n))
                .cloned()
                .collect();
            if missing.is_empty() || start.elapsed() > within {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops dialling and the node server.
    pub fn stop(&self) {
        for d in &self.dialers {
            d.abort();
        }
        self.acceptor.abort();
        self.server.stop(Some("leaving the cluster".into()));
    }
}

/// Starts a node server named `name` listening on `listen` and keeps links to `dial`
/// (`(peer name, address)`), re-dialling with backoff whenever one is down.
pub async fn join(
    config: &Config,
    name: &str,
    listen: SocketAddr,
    dial: Vec<(String, String)>,
) -> Result<ClusterLink, ClusterError> {
    let c = &config.cluster;
    let cookie = c.resolve_cookie().map_err(ClusterError::Cookie)?;
    let tls = match &c.tls {
        Some(t) => Some(TlsSettings::load(t).map_err(ClusterError::Tls)?),
        None => None,
    };
    let encryption = tls
        .as_ref()
        .map(|t| IncomingEncryptionMode::Tls(t.acceptor.clone()));
    // Peers connect to our own accept loop on `listen`; the node server's listener (which
    // would handshake inline) only gets a loopback port nobody is told about.
    let listener =
        tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| ClusterError::Server {
                addr: listen.to_string(),
                message: e.to_string(),
            })?;
    let server = NodeServer::new(
        0,
        cookie,
        name.to_string(),
        hostname(),
        encryption,
        Some(ractor_cluster::node::NodeConnectionMode::Isolated),
    )
    .with_listen_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    .with_max_inbound_frame_size(c.max_frame_bytes);
    let (server, _) = Actor::spawn(None, server, ())
        .await
        .map_err(|e| ClusterError::Server {
            addr: listen.to_string(),
            message: e.to_string(),
        })?;
    let sessions = Arc::new(Mutex::new(Sessions::default()));
    server
        .cast(NodeServerMessage::SubscribeToEvents {
            id: "mgrpo".into(),
            subscription: Box::new(Watcher {
                sessions: sessions.clone(),
                known: c.nodes.iter().map(|n| n.name.clone()).collect(),
            }),
        })
        .map_err(|e| ClusterError::Server {
            addr: listen.to_string(),
            message: e.to_string(),
        })?;
    let timeout = Duration::from_secs(c.link_timeout_s.max(1));
    let acceptor = tokio::spawn(accept_loop(listener, server.clone(), tls.clone(), timeout));
    let dialers = dial
        .into_iter()
        .map(|(peer, addr)| {
            let (server, sessions, tls) = (server.clone(), sessions.clone(), tls.clone());
            tokio::spawn(keep_dialled(server, sessions, tls, peer, addr, timeout))
        })
        .collect();
    Ok(ClusterLink {
        server,
        name: name.to_string(),
        sessions,
        dialers,
        acceptor,
    })
}

/// Keeps one dialled link up: dial, wait while it is ready, dial again when it is lost.
async fn keep_dialled(
    server: ActorRef<NodeServerMessage>,
    sessions: Arc<Mutex<Sessions>>,
    tls: Option<TlsSettings>,
    peer: String,
    addr: String,
    timeout: Duration,
) {
    let is_ready = || sessions.lock().is_ok_and(|s| s.ready.contains_key(&peer));
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        if is_ready() {
            backoff = Duration::from_millis(100);
            attempts = 0;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        attempts += 1;
        match dial_once(&server, tls.as_ref(), &peer, &addr, timeout).await {
            Ok(()) => {
                // Give the handshake time to finish before judging the attempt.
                let start = std::time::Instant::now();
                while !is_ready() && start.elapsed() < Duration::from_secs(5) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if is_ready() {
                    continue;
                }
            }
            Err(e) => {
                if attempts == 1 || attempts.is_multiple_of(20) {
                    tracing::info!(%peer, %addr, error = %e, "peer not reachable yet; retrying");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn dial_once(
    server: &ActorRef<NodeServerMessage>,
    tls: Option<&TlsSettings>,
    peer: &str,
    addr: &str,
    timeout: Duration,
) -> Result<(), String> {
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (read, write) = match tls {
        Some(t) => tls_halves(t.connector.connect(t.server_name.clone(), tcp), timeout).await?,
        None => tcp_halves(tcp),
    };
    ractor_cluster::client_connect_external(
        server,
        Box::new(DialledStream {
            read,
            write,
            peer: format!("{peer}@{addr}"),
            timeout,
        }),
    )
    .await
    .map_err(|e| e.to_string())
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
}
