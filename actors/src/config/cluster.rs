//! `[cluster]` of `cluster.toml`: the cluster's name and cookie, its nodes and which roles run
//! where. With no `[[cluster.nodes]]` the whole system is one process (the embedded default).
//!
//! Validation names every problem at once: unknown node or role, a role placed nowhere, two
//! learners for one role, two nodes on one port, no cookie for a real cluster.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use mgrpo_algo::Algo;
use serde::{Deserialize, Serialize};

use crate::role::Role;

/// A secret that is never printed or written back (Debug shows `***`, serialising skips it).
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The cluster's name: the `ractor::pg` scope of its roles.
    pub name: String,
    /// The cookie itself (prefer `cookie_file` or `cookie_env`; it is never printed or saved).
    #[serde(skip_serializing)]
    pub cookie: Option<Secret>,
    /// A file holding the cookie (surrounding whitespace ignored).
    pub cookie_file: Option<PathBuf>,
    /// An environment variable holding the cookie.
    pub cookie_env: Option<String>,
    /// Largest frame a node accepts, in bytes; weights are sent in chunks under it.
    pub max_frame_bytes: u64,
    /// How long the coordinator waits for every placed role (at start and after a lost peer).
    pub wait_roles_s: u64,
    /// A link on which nothing arrived for this long is dropped and dialled again (peers ping
    /// every 1–5 s, so only a cut or hung link stays silent); also how long a TLS handshake
    /// may take.
    pub link_timeout_s: u64,
    /// TLS on every link (ractor_cluster's TLS mode); absent: plain TCP.
    pub tls: Option<TlsConfig>,
    /// The nodes; none: one process with every role.
    pub nodes: Vec<NodeConfig>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            name: "mgrpo".into(),
            cookie: None,
            cookie_file: None,
            cookie_env: None,
            max_frame_bytes: 16 << 20,
            wait_roles_s: 600,
            link_timeout_s: 15,
            tls: None,
            nodes: Vec::new(),
        }
    }
}

/// `[cluster.tls]`: PEM files. Every node presents `cert`/`key` and trusts peers signed by `ca`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// This node's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA that signed every node's certificate (PEM).
    pub ca: PathBuf,
    /// The name the certificates are issued for (checked by the dialing side).
    pub server_name: String,
}

/// `[[cluster.nodes]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name (`mgrpo node --node NAME`).
    pub name: String,
    /// Where it listens, `IP:PORT`.
    pub listen: String,
    /// Where peers dial it, `HOST:PORT` (default: `listen`), for NAT or a wildcard `listen`.
    #[serde(default)]
    pub advertise: Option<String>,
    /// Roles it hosts and how many instances of each: `{ planner = 2, learner-main = 1 }`.
    #[serde(default)]
    pub roles: BTreeMap<String, usize>,
    /// Where this node dials particular peers, overriding their `advertise`/`listen`:
    /// `{ hub = "10.0.0.9:7101" }` (a split network, or `mgrpo chaos`'s fault proxies).
    #[serde(default)]
    pub dial: BTreeMap<String, String>,
}

impl NodeConfig {
    /// The address peers dial.
    pub fn dial_address(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }

    /// The address this node dials `peer` at: its own `dial` entry for it, or the peer's.
    pub fn dials<'a>(&'a self, peer: &'a NodeConfig) -> &'a str {
        self.dial
            .get(&peer.name)
            .map_or_else(|| peer.dial_address(), String::as_str)
    }
}

/// One node's resolved roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlacement {
    /// The node.
    pub node: String,
    /// Its roles with their instance counts.
    pub roles: BTreeMap<Role, usize>,
}

/// The name of the single node of the embedded default.
pub const LOCAL_NODE: &str = "local";

impl ClusterConfig {
    /// Whether this is a real cluster (nodes listed) rather than the one-process default.
    pub fn is_distributed(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// The cookie from `cookie`, `cookie_file` or `cookie_env`.
    pub fn resolve_cookie(&self) -> Result<String, String> {
        let cookie = if let Some(c) = &self.cookie {
            c.0.clone()
        } else if let Some(p) = &self.cookie_file {
            std::fs::read_to_string(p)
                .map_err(|e| format!("cluster.cookie_file {}: {e}", p.display()))?
                .trim()
                .to_string()
        } else if let Some(v) = &self.cookie_env {
            std::env::var(v).map_err(|_| {
                format!(
                    "cluster.cookie_env = {v:?}: ${v} is not set (export it with the cluster's \
                     cookie, the same on every node)"
                )
            })?
        } else {
            return Err("no cookie: set cluster.cookie_file or cluster.cookie_env".into());
        };
        if cookie.is_empty() {
            return Err("the cluster cookie is empty".into());
        }
        Ok(cookie)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The largest policy chunk that fits a frame (room left for the message envelope).
    pub fn max_chunk_bytes(&self) -> usize {
        (self.max_frame_bytes.saturating_sub(64 << 10)).max(4096) as usize
    }

    /// Every problem of `[cluster]` under `variant`, each naming its key.
    pub fn problems(&self, variant: Algo) -> Vec<String> {
        let mut p = Vec::new();
        if self.name.is_empty() {
            p.push("cluster.name is empty".into());
        }
        if self.max_frame_bytes < (256 << 10) {
            p.push(format!(
                "cluster.max_frame_bytes = {}: must be at least 262144",
                self.max_frame_bytes
            ));
        }
        if !self.is_distributed() {
            return p;
        }
        let sources = [
            self.cookie.is_some(),
            self.cookie_file.is_some(),
            self.cookie_env.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => p.push(
                "cluster: a cluster with nodes needs a cookie (cookie_file, cookie_env or cookie)"
                    .into(),
            ),
            1 => {}
            _ => p.push("cluster: give only one of cookie, cookie_file, cookie_env".into()),
        }
        let mut names = BTreeMap::new();
        let mut addrs: BTreeMap<u16, Vec<(String, SocketAddr)>> = BTreeMap::new();
        let mut placed: BTreeMap<Role, Vec<(String, usize)>> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let key = format!("cluster.nodes[{i}]");
            if n.name.is_empty() || n.name.contains(char::is_whitespace) {
                p.push(format!(
                    "{key}.name = {:?}: must be a non-empty word",
                    n.name
                ));
            }
            if let Some(first) = names.insert(n.name.clone(), i) {
                p.push(format!(
                    "{key}.name = {:?}: already used by cluster.nodes[{first}]",
                    n.name
                ));
            }
            match n.listen.parse::<SocketAddr>() {
                Ok(a) => {
                    if a.port() == 0 {
                        p.push(format!("{key}.listen = {:?}: needs a fixed port", n.listen));
                    }
                    let same = addrs.entry(a.port()).or_default();
                    for (other, oa) in same.iter() {
                        if oa.ip() == a.ip() || oa.ip().is_unspecified() || a.ip().is_unspecified()
                        {
                            p.push(format!(
                                "{key}.listen = {:?}: port {} clashes with node {other:?}",
                                n.listen,
                                a.port()
                            ));
                        }
                    }
                    same.push((n.name.clone(), a));
                }
                Err(_) => p.push(format!(
                    "{key}.listen = {:?}: expected IP:PORT (e.g. \"0.0.0.0:7101\")",
                    n.listen
                )),
            }
            if let Some(a) = &n.advertise
                && a.rsplit_once(':')
                    .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            {
                p.push(format!("{key}.advertise = {a:?}: expected HOST:PORT"));
            }
            for (role, count) in &n.roles {
                match Role::parse(role) {
                    None => p.push(format!(
                        "{key}.roles.{role}: unknown role (expected one of {})",
                        Role::ALL.map(Role::name).join(", ")
                    )),
                    Some(r) if !r.used_by(variant) => p.push(format!(
                        "{key}.roles.{role}: the {variant:?} variant has no {role}"
                    )),
                    Some(_) if *count == 0 => {
                        p.push(format!("{key}.roles.{role} = 0: must be at least 1"))
                    }
                    Some(r) => placed.entry(r).or_default().push((n.name.clone(), *count)),
                }
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for peer in n.dial.keys().filter(|peer| !names.contains_key(*peer)) {
                let known: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                p.push(format!(
                    "cluster.nodes[{i}].dial.{peer}: no node named {peer:?} (known: {})",
                    known.join(", ")
                ));
            }
        }
        for r in Role::ALL.into_iter().filter(|r| r.used_by(variant)) {
            let at = placed.get(&r).cloned().unwrap_or_default();
            let total: usize = at.iter().map(|(_, c)| c).sum();
            if total == 0 {
                p.push(format!("cluster: role {} is placed on no node", r.name()));
            } else if r.singleton() && total > 1 {
                let wheres: Vec<String> = at.iter().map(|(n, c)| format!("{n} ×{c}")).collect();
                p.push(format!(
                    "cluster: role {} must run once, but is placed {total} times ({})",
                    r.name(),
                    wheres.join(", ")
                ));
            }
        }
        let node_of = |r: Role| {
            placed
                .get(&r)
                .and_then(|v| v.first())
                .map(|(n, _)| n.clone())
        };
        if let (Some(a), Some(b)) = (node_of(Role::Coordinator), node_of(Role::Store))
            && a != b
        {
            p.push(format!(
                "cluster: store (on {b}) must be on the coordinator's node ({a}): the coordinator writes the run's metrics next to it"
            ));
        }
        p
    }

    /// The resolved placement: the listed nodes, or one node with every role (counts from
    /// `[actors]`) when none are listed.
    pub fn placement(
        &self,
        variant: Algo,
        planners: usize,
        executors: usize,
    ) -> Vec<NodePlacement> {
        if !self.is_distributed() {
            let roles = Role::ALL
                .into_iter()
                .filter(|r| r.used_by(variant))
                .map(|r| {
                    let n = match r {
                        Role::Planner => planners,
                        Role::Executor => executors,
                        _ => 1,
                    };
                    (r, n)
                })
                .collect();
            return vec![NodePlacement {
                node: LOCAL_NODE.into(),
                roles,
            }];
        }
        self.nodes
            .iter()
            .map(|n| NodePlacement {
                node: n.name.clone(),
                roles: n
                    .roles
                    .iter()
                    .filter_map(|(r, c)| Role::parse(r).map(|r| (r, *c)))
                    .collect(),
            })
            .collect()
    }
}

/// Instances of each role over the whole cluster.
pub fn totals(placement: &[NodePlacement]) -> BTreeMap<Role, usize> {
    let mut t = BTreeMap::new();
    for n in placement {
        for (r, c) in &n.roles {
            *t.entry(*r).or_default() += c;
        }
    }
    t
}
