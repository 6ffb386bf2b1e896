//! This node's own accept loop. ractor_cluster's listener runs the TLS handshake inline in its
//! accept loop, so one client that connects and never finishes its handshake blocks every other
//! peer from connecting to that node. Here each accepted connection gets its own task: the
//! TLS handshake (if any) must finish within `cluster.link_timeout_s`, and the session is
//! handed to the node server (`ConnectionOpenedExternal`) with its read half watched
//! ([`crate::cluster::watchdog`]). Cookie authentication and frame limits stay ractor_cluster's.
use std::net::SocketAddr;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{BoxRead, BoxWrite, ClusterBidiStream, NodeServerMessage};
use tokio::net::TcpListener;

use crate::cluster::tls::{TlsSettings, tcp_halves, tls_halves};
use crate::cluster::watchdog::WatchedRead;

/// An accepted connection (plain or TLS).
struct AcceptedStream {
    read: BoxRead,
    write: BoxWrite,
    peer: String,
    timeout: Duration,
}

impl ClusterBidiStream for AcceptedStream {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let label = format!("accepted {}", self.peer);
        (
            Box::new(WatchedRead::new(self.read, self.timeout, label)),
            self.write,
        )
    }
    fn peer_label(&self) -> Option<String> {
        Some(self.peer.clone())
    }
}

/// Accepts connections on `listener` for `server` until aborted.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    server: ActorRef<NodeServerMessage>,
    tls: Option<TlsSettings>,
    timeout: Duration,
) {
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (server, tls) = (server.clone(), tls.clone());
        tokio::spawn(async move {
            if let Err(e) = open(tcp, addr, server, tls, timeout).await {
                tracing::warn!(peer = %addr, error = %e, "connection dropped before its session");
            }
        });
    }
}

async fn open(
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    server: ActorRef<NodeServerMessage>,
    tls: Option<TlsSettings>,
    timeout: Duration,
) -> Result<(), String> {
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (read, write) = match tls {
        Some(t) => tls_halves(t.acceptor.accept(tcp), timeout).await?,
        None => tcp_halves(tcp),
    };
    server
        .cast(NodeServerMessage::ConnectionOpenedExternal {
            stream: Box::new(AcceptedStream {
                read,
                write,
                peer: addr.to_string(),
                timeout,
            }),
            is_server: true,
        })
        .map_err(|e| e.to_string())
}
