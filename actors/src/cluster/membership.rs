//! Who is in the cluster: the node server's session events (peers joining, lost, refused),
//! kept as the ready peers of this node, and waiting until every placed role is present.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor_cluster::NodeEventSubscription;
use ractor_cluster::node::NodeServerSessionInformation;

use crate::config::cluster::{NodePlacement, totals};
use crate::context::NodeContext;
use crate::rpc;

/// What this node knows of its sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    /// Session id → (peer address, peer name once known, authenticated).
    open: BTreeMap<String, (String, Option<String>, bool)>,
    /// Peers with a ready session.
    pub(crate) ready: BTreeMap<String, String>,
}

/// The node server's event subscription: keeps [`Sessions`] and logs joins, losses, refusals.
pub(crate) struct Watcher {
    pub(crate) sessions: Arc<Mutex<Sessions>>,
    pub(crate) known: Vec<String>,
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

/// The error of a wait cut short by a stop request.
pub const STOPPED: &str = "stopped while waiting for roles";

/// Waits until every role of the placement has all its instances present; logs what is
/// missing every few seconds. Returns what is still missing after `within`.
pub async fn wait_roles(
    ctx: &NodeContext,
    placement: &[NodePlacement],
    within: Duration,
    stop: &AtomicBool,
) -> Result<(), String> {
    let want = totals(placement);
    let start = std::time::Instant::now();
    // Say what is missing at once, then every few seconds.
    let mut last_log: Option<std::time::Instant> = None;
    loop {
        let have = rpc::present(ctx);
        let missing: Vec<String> = want
            .iter()
            .filter(|(r, n)| have.get(r).copied().unwrap_or(0) < **n)
            .map(|(r, n)| format!("{} {}/{n}", r.name(), have.get(r).copied().unwrap_or(0)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if stop.load(Ordering::SeqCst) {
            return Err(STOPPED.into());
        }
        if start.elapsed() > within {
            return Err(format!(
                "roles still missing after {within:?}: {}",
                missing.join(", ")
            ));
        }
        if last_log.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
            tracing::info!(missing = %missing.join(", "), "waiting for roles");
            last_log = Some(std::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
