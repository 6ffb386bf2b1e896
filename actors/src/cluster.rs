//! Joining a cluster over `ractor_cluster`: this node's `NodeServer`, the links to its peers
//! (dialled with retry/backoff, re-dialled when lost), the link byte counter, and the node
//! agent every node runs.
//!
//! Links: node `i` of `[[cluster.nodes]]` dials every node listed before it and accepts the
//! ones listed after, so each pair has exactly one TCP session (ractor_cluster would refuse a
//! second one anyway). A restarted node dials again; a node whose dialled peer dies keeps
//! re-dialling it until it is back.
//!
//! Bytes: every session this node dialled runs through a counting stream, both directions,
//! so the sum over nodes of [`link_bytes`] is every byte that crossed between nodes (frames,
//! handshakes, group sync), with each link counted once.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{
    BoxRead, BoxWrite, ClusterBidiStream, IncomingEncryptionMode, NodeEventSubscription,
    NodeServer, NodeServerMessage, RactorClusterMessage, node::NodeServerSessionInformation,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::Config;
use crate::context::NodeContext;
use crate::groups;
use crate::tls::TlsSettings;
use crate::wire::{PayloadCount, Reply, Wire};

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

static LINK_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes that crossed this node's dialled links so far, both directions.
pub fn link_bytes() -> u64 {
    LINK_BYTES.load(Ordering::Relaxed)
}

struct CountingRead(BoxRead);
struct CountingWrite(BoxWrite);

impl AsyncRead for CountingRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.0).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            LINK_BYTES.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for CountingWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.0).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            LINK_BYTES.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A dialled connection (plain or TLS) whose bytes are counted.
struct DialledStream {
    read: BoxRead,
    write: BoxWrite,
    peer: String,
}

impl ClusterBidiStream for DialledStream {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        (
            Box::new(CountingRead(self.read)),
            Box::new(CountingWrite(self.write)),
        )
    }
    fn peer_label(&self) -> Option<String> {
        Some(self.peer.clone())
    }
}

/// What this node knows of its sessions.
#[derive(Debug, Default)]
struct Sessions {
    /// Session id → (peer address, peer name once known, authenticated).
    open: BTreeMap<String, (String, Option<String>, bool)>,
    /// Peers with a ready session.
    ready: BTreeMap<String, String>,
}

/// The node server's event subscription: keeps [`Sessions`] and logs joins, losses, refusals.
struct Watcher {
    sessions: Arc<Mutex<Sessions>>,
    known: Vec<String>,
}

fn session_key(ses: &NodeServerSessionInformation) -> String {
    format!("{:?}", ses.node_id)
}

/// The peer's node name as in `cluster.toml` (ractor_cluster names it `NAME@HOSTNAME`).
fn peer_name(ses: &NodeServerSessionInformation) -> Option<String> {
    ses.peer_name
        .as_ref()
        .map(|n| n.name.split('@').next().unwrap_or(&n.name).to_string())
}

impl NodeEventSubscription for Watcher {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        if let Ok(mut s) = self.sessions.lock() {
            s.open.insert(
                session_key(&ses),
                (ses.peer_addr.clone(), peer_name(&ses), false),
            );
        }
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        if let Ok(mut s) = self.sessions.lock()
            && let Some(e) = s.open.get_mut(&session_key(&ses))
        {
            e.1 = peer_name(&ses);
            e.2 = true;
        }
    }

    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        let name = peer_name(&ses).unwrap_or_else(|| ses.peer_addr.clone());
        if self.known.contains(&name) {
            tracing::info!(peer = %name, addr = %ses.peer_addr, "peer joined");
        } else {
            tracing::debug!(peer = %name, addr = %ses.peer_addr, "client joined");
        }
        if let Ok(mut s) = self.sessions.lock() {
            s.ready.insert(name, session_key(&ses));
        }
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let key = session_key(&ses);
        let Ok(mut s) = self.sessions.lock() else {
            return;
        };
        let (addr, name, authenticated) =
            s.open
                .remove(&key)
                .unwrap_or((ses.peer_addr.clone(), peer_name(&ses), false));
        let name = name.or_else(|| peer_name(&ses));
        if !authenticated {
            tracing::warn!(
                %addr,
                peer = name.as_deref().unwrap_or("?"),
                "connection refused: authentication failed (wrong cookie, TLS mismatch, or not an mgrpo node)"
            );
            return;
        }
        let name = name.unwrap_or(addr);
        if s.ready.get(&name) == Some(&key) {
            s.ready.remove(&name);
            if self.known.contains(&name) {
                tracing::warn!(peer = %name, "lost peer; waiting for it to come back");
            } else {
                tracing::debug!(peer = %name, "client left");
            }
        }
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
    let server = NodeServer::new(
        listen.port(),
        cookie,
        name.to_string(),
        hostname(),
        encryption,
        Some(ractor_cluster::node::NodeConnectionMode::Isolated),
    )
    .with_listen_addr(listen.ip())
    .with_max_inbound_frame_size(c.max_frame_bytes);
    // A port already taken fails here (the listener binds in the server's pre_start).
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
    let dialers = dial
        .into_iter()
        .map(|(peer, addr)| {
            let (server, sessions, tls) = (server.clone(), sessions.clone(), tls.clone());
            tokio::spawn(keep_dialled(server, sessions, tls, peer, addr))
        })
        .collect();
    Ok(ClusterLink {
        server,
        name: name.to_string(),
        sessions,
        dialers,
    })
}

/// Keeps one dialled link up: dial, wait while it is ready, dial again when it is lost.
async fn keep_dialled(
    server: ActorRef<NodeServerMessage>,
    sessions: Arc<Mutex<Sessions>>,
    tls: Option<TlsSettings>,
    peer: String,
    addr: String,
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
        match dial_once(&server, tls.as_ref(), &peer, &addr).await {
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
) -> Result<(), String> {
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (read, write): (BoxRead, BoxWrite) = match tls {
        Some(t) => {
            let s = t
                .connector
                .connect(t.server_name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            let (r, w) = tokio::io::split(s);
            (Box::new(r), Box::new(w))
        }
        None => {
            let (r, w) = tcp.into_split();
            (Box::new(r), Box::new(w))
        }
    };
    ractor_cluster::client_connect_external(
        server,
        Box::new(DialledStream {
            read,
            write,
            peer: format!("{peer}@{addr}"),
        }),
    )
    .await
    .map_err(|e| e.to_string())
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
}

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
    /// Bytes over the links this node dialled (see the module docs).
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
    /// The run is over (sent by the coordinator's node): stop this node.
    Shutdown {
        /// Why.
        reason: Wire<String>,
    },
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
}

/// The node agent: one per node, in the `node/agent` group.
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
        groups::join(&args.ctx, groups::NODE_AGENT, myself.get_cell());
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
                    payloads: crate::wire::counters(),
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

/// Asks every node agent for its info (nodes that do not answer in `timeout` are left out).
pub async fn node_infos(ctx: &NodeContext, timeout: Duration) -> Vec<NodeInfo> {
    let agents = groups::members::<NodeAgentMsg>(ctx, groups::NODE_AGENT);
    let calls = agents.iter().map(|a| async move {
        match a
            .call(|reply| NodeAgentMsg::Info { reply }, Some(timeout))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(Wire(Ok(i)))) => Some(i),
            _ => None,
        }
    });
    let mut out: Vec<NodeInfo> = futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// Each node's link-byte counter: node name → `(pid, bytes)`.
pub type LinkCounters = BTreeMap<String, (u32, u64)>;

/// Every node's link-byte counter now (each link is counted by the node that dialled it).
pub async fn link_counters(ctx: &NodeContext) -> LinkCounters {
    let agents = groups::members::<NodeAgentMsg>(ctx, groups::NODE_AGENT);
    let calls = agents.iter().map(|a| async move {
        match a
            .call(
                |reply| NodeAgentMsg::LinkBytes { reply },
                Some(Duration::from_secs(5)),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(Wire(Ok((node, pid, bytes))))) => {
                Some((node, (pid, bytes)))
            }
            _ => None,
        }
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Bytes that crossed between nodes from `before` to `after`: per node, the growth of its
/// counter, or the whole counter of a node that restarted in between (new pid).
pub fn crossed(before: &LinkCounters, after: &LinkCounters) -> u64 {
    after
        .iter()
        .map(|(node, (pid, bytes))| match before.get(node) {
            Some((p, b)) if p == pid => bytes.saturating_sub(*b),
            _ => *bytes,
        })
        .sum()
}

/// Asks every node agent to stop its node (the run is over).
pub fn shutdown_all(ctx: &NodeContext, reason: &str) {
    for a in groups::members::<NodeAgentMsg>(ctx, groups::NODE_AGENT) {
        let _ = a.cast(NodeAgentMsg::Shutdown {
            reason: Wire(reason.to_string()),
        });
    }
}
