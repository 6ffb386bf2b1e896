//! Putting a run's faults into effect and taking them back: the injector holds what a fault
//! needs (the node processes, the link proxies, a control client to the node agents) and what
//! it must watch afterwards (a fail point's strike in a node's log, a proxy's one-shot fault).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mgrpo_actors::Config;
use mgrpo_actors::cluster::agent::{NodeAgentMsg, agent_of};
use mgrpo_actors::context::NodeContext;
use mgrpo_actors::control::client::{Client, Target, connect};
use mgrpo_actors::control::control_file::ControlFile;
use mgrpo_actors::faults::{Fault, FaultAction, FaultPoint};
use mgrpo_actors::role::Role;
use mgrpo_actors::rpc::{self, Wire};
use ractor::ActorRef;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::chaos::children::{self, Helper};
use crate::chaos::history::Injection;
use crate::chaos::nodes::Nodes;
use crate::chaos::plan::{FaultKind, LinkSpec, Scheduled, parse_link, parse_point, parse_role};
use crate::chaos::proxy::{Dir, LinkFaults, Proxy};

/// The proxies of a run, by `(dialler, listener)`.
pub struct Links {
    /// The proxies.
    pub proxies: BTreeMap<(String, String), Proxy>,
}

impl Links {
    /// The proxy of link `spec` and the directions it names.
    fn find(&self, spec: &LinkSpec) -> Result<(&Proxy, Vec<Dir>)> {
        for ((dialler, listener), p) in &self.proxies {
            let (fwd, back) = if (&spec.a, &spec.b) == (dialler, listener) {
                (Dir::Up, Dir::Down)
            } else if (&spec.a, &spec.b) == (listener, dialler) {
                (Dir::Down, Dir::Up)
            } else {
                continue;
            };
            let dirs = if spec.one_way {
                vec![fwd]
            } else {
                vec![fwd, back]
            };
            return Ok((p, dirs));
        }
        bail!("no link between {} and {}", spec.a, spec.b)
    }
}

/// The node hosting `role` first in the placement.
pub fn host_of(config: &Config, role: Role) -> Result<String> {
    config
        .placement()
        .into_iter()
        .find(|p| p.roles.contains_key(&role))
        .map(|p| p.node)
        .with_context(|| format!("no node hosts {}", role.name()))
}

/// How a fault heals.
enum Heal {
    Restart(String),
    Uncut(Arc<LinkFaults>, Vec<Dir>),
    Undelay(Arc<LinkFaults>, Vec<Dir>),
    /// SIGCONT to stopped helper processes (those still alive: a client may have killed them).
    Continue(Vec<u32>),
    Nothing,
}

/// A fault waiting to heal.
struct Healing {
    at: Instant,
    injection: usize,
    action: Heal,
}

/// A fault armed in a node, whose strike is read from the node's log.
struct Watch {
    injection: usize,
    node: String,
    from: u64,
    point: FaultPoint,
    /// How long it lasts once struck (a stall), seconds.
    lasts_s: f64,
    struck: bool,
    /// When it was armed.
    armed: Instant,
}

/// How long a SIGKILL of a node waits for a fault armed there to strike first (its arming
/// lives in the process the SIGKILL ends).
const ARMED_GRACE: Duration = Duration::from_secs(30);

/// A one-shot link fault, whose strike the proxy records.
struct LinkWatch {
    injection: usize,
    faults: Arc<LinkFaults>,
    before: usize,
}

/// Whether `log` says that a fault struck at `point`.
fn struck_in_log(log: &str, point: FaultPoint) -> bool {
    let needle = format!("point={point:?}");
    log.lines()
        .any(|l| l.contains("fault strikes") && l.contains(&needle))
}

/// A fault to arm in a node.
struct Arming {
    node: String,
    point: FaultPoint,
    action: FaultAction,
    times: u32,
}

/// Injects a run's faults.
pub struct Injector {
    /// The node processes.
    pub nodes: Nodes,
    links: Links,
    /// The derived config, with the cookie (for the control client).
    config: Config,
    run: PathBuf,
    seed: u64,
    client: Option<Client>,
    healing: Vec<Healing>,
    watches: Vec<Watch>,
    link_watches: Vec<LinkWatch>,
    /// Roles whose output was garbled, with the step under way then.
    pub garbled: Vec<(Role, u64)>,
    /// Steps under way when a fault struck that may change the transcripts from there on (a
    /// killed or stopped tool server: a call reads an error instead of its output).
    pub diverged: Vec<u64>,
}

impl Injector {
    /// An injector over started nodes; `config` holds the cookie itself.
    pub fn new(nodes: Nodes, links: Links, config: Config, run: &Path, seed: u64) -> Self {
        Self {
            nodes,
            links,
            config,
            run: run.to_path_buf(),
            seed,
            client: None,
            healing: Vec::new(),
            watches: Vec::new(),
            link_watches: Vec::new(),
            garbled: Vec::new(),
            diverged: Vec::new(),
        }
    }

    /// Whether `f` must wait (a node to kill is down, its restart pending).
    /// Whether fault `f` must wait: a SIGKILL of a node that is down, or in which a fault armed
    /// less than [`ARMED_GRACE`] ago has not struck yet (on a loaded machine the arming can land
    /// just before a due SIGKILL, which would take the armed fault with it).
    pub fn must_wait(&self, f: &Scheduled) -> bool {
        matches!(&f.kind, FaultKind::KillNode { node, .. }
        if !self.nodes.running(node)
            || self.watches.iter().any(|w| {
                &w.node == node && !w.struck && w.armed.elapsed() < ARMED_GRACE
            }))
    }

    /// Injects `f` now, as injection number `index`, filling `inj` in.
    pub async fn inject(&mut self, f: &Scheduled, index: usize, inj: &mut Injection) -> Result<()> {
        let now = Instant::now();
        let heal_at = now + Duration::from_secs_f64(f.kind.duration_s());
        let heal = |action| Healing {
            at: heal_at,
            injection: index,
            action,
        };
        match &f.kind {
            FaultKind::KillNode { node, .. } => {
                inj.target = node.clone();
                inj.fired = self.nodes.kill(node);
                if !inj.fired {
                    inj.note = "the node was not running when the SIGKILL was due".into();
                }
                self.healing.push(heal(Heal::Restart(node.clone())));
            }
            FaultKind::CutLink { link, .. } => {
                let (p, dirs) = self.links.find(&parse_link(link)?)?;
                inj.target = link.clone();
                p.faults.cut(&dirs, true);
                // In effect from now: the proxy drops every frame until it heals.
                inj.fired = true;
                let faults = p.faults.clone();
                self.healing.push(heal(Heal::Uncut(faults, dirs)));
            }
            FaultKind::DelayLink {
                link,
                ms,
                jitter_ms,
                ..
            } => {
                let (p, dirs) = self.links.find(&parse_link(link)?)?;
                inj.target = link.clone();
                p.faults.delay(&dirs, Some((*ms, *jitter_ms)));
                inj.fired = true;
                let faults = p.faults.clone();
                self.healing.push(heal(Heal::Undelay(faults, dirs)));
            }
            FaultKind::CorruptLink { link } | FaultKind::CloseLink { link } => {
                let (p, dirs) = self.links.find(&parse_link(link)?)?;
                inj.target = link.clone();
                let before = p.faults.fired().len();
                if matches!(f.kind, FaultKind::CorruptLink { .. }) {
                    p.faults.corrupt_next(dirs[0]);
                } else {
                    p.faults.close_next(dirs[0]);
                }
                self.link_watches.push(LinkWatch {
                    injection: index,
                    faults: p.faults.clone(),
                    before,
                });
            }
            FaultKind::KillActor { role } | FaultKind::StallActor { role, .. } => {
                let role = parse_role(role)?;
                let node = host_of(&self.config, role)?;
                inj.target = format!("{} on {node}", role.name());
                let action = match &f.kind {
                    FaultKind::StallActor { ms, .. } => FaultAction::Stall { ms: *ms },
                    _ => FaultAction::Panic,
                };
                let a = Arming {
                    node,
                    point: FaultPoint::Reply(role),
                    action,
                    times: 1,
                };
                self.arm(a, index, inj).await;
            }
            FaultKind::FailPoint { point } => {
                let (p, role) = parse_point(point)?;
                let node = host_of(&self.config, role)?;
                inj.target = format!("{point} on {node}");
                let a = Arming {
                    node,
                    point: p,
                    action: FaultAction::Fail,
                    times: 1,
                };
                self.arm(a, index, inj).await;
            }
            FaultKind::GarbageOutput { role, requests } => {
                let role = parse_role(role)?;
                let node = host_of(&self.config, role)?;
                inj.target = format!("{} on {node}", role.name());
                self.garbled.push((role, inj.step));
                let a = Arming {
                    node,
                    point: FaultPoint::Output(role),
                    action: FaultAction::Fail,
                    times: *requests,
                };
                self.arm(a, index, inj).await;
            }
            FaultKind::StallHandshake { node, for_s } => {
                inj.target = node.clone();
                let addr = self.listen_of(node)?;
                let hold = Duration::from_secs_f64(*for_s);
                // Struck only if the connection that never speaks was accepted.
                match tokio::net::TcpStream::connect(&addr).await {
                    Ok(mut s) => {
                        inj.fired = true;
                        tokio::spawn(async move {
                            let mut b = [0u8; 1];
                            let _ = tokio::time::timeout(hold, s.read(&mut b)).await;
                        });
                    }
                    Err(e) => inj.note = format!("could not connect to {addr}: {e}"),
                }
                self.healing.push(heal(Heal::Nothing));
            }
            FaultKind::GarbageFrames { node } | FaultKind::OversizedFrame { node } => {
                inj.target = node.clone();
                let addr = self.listen_of(node)?;
                let bytes = if matches!(f.kind, FaultKind::GarbageFrames { .. }) {
                    let mut r = ChaCha8Rng::seed_from_u64(self.seed ^ f.index as u64);
                    (0..4096).map(|_| r.random::<u8>()).collect::<Vec<u8>>()
                } else {
                    let limit = self.config.cluster.max_frame_bytes;
                    let mut b = (limit + 1).to_be_bytes().to_vec();
                    b.extend_from_slice(&[0u8; 1024]);
                    b
                };
                (inj.fired, inj.note) = bad_client(&addr, &bytes).await;
            }
            FaultKind::KillToolServer { server } | FaultKind::StallToolServer { server, .. } => {
                let node = host_of(&self.config, Role::Executor)?;
                inj.target = format!("{server} on {node}");
                let helper = Helper::tool_server(&self.config, server)?;
                let stopped = self.signal_helper(&node, &helper, &f.kind, inj);
                if inj.fired {
                    self.diverged.push(inj.step);
                }
                self.healing.push(heal(stopped));
            }
            FaultKind::KillScorer { scorer } | FaultKind::StallScorer { scorer, .. } => {
                let node = host_of(&self.config, Role::Judge)?;
                inj.target = format!("{scorer} scorer on {node}");
                let helper = Helper::scorer(&self.config, scorer)?;
                let stopped = self.signal_helper(&node, &helper, &f.kind, inj);
                self.healing.push(heal(stopped));
            }
        }
        Ok(())
    }

    /// SIGKILLs (a `kill_*` fault) or SIGSTOPs (a `stall_*` one) every process of `helper`
    /// that `node` started; fired if one took the signal. Returns how the fault heals.
    fn signal_helper(
        &self,
        node: &str,
        helper: &Helper,
        kind: &FaultKind,
        inj: &mut Injection,
    ) -> Heal {
        let stall = matches!(
            kind,
            FaultKind::StallToolServer { .. } | FaultKind::StallScorer { .. }
        );
        let Some(parent) = self.nodes.pid(node) else {
            inj.note = format!("node {node} is not running");
            return Heal::Nothing;
        };
        let found = children::find(parent, helper);
        let sig = if stall { "STOP" } else { "KILL" };
        let struck: Vec<u32> = found
            .into_iter()
            .filter(|&p| children::signal(p, sig))
            .collect();
        inj.fired = !struck.is_empty();
        if inj.fired {
            inj.note = format!("SIG{sig} to pid {struck:?}");
        } else {
            inj.note = format!("no process `{}` started by node {node}", helper.program);
        }
        if stall {
            Heal::Continue(struck)
        } else {
            Heal::Nothing
        }
    }

    /// Heals what is due (restarts nodes unless training finished); returns the injections
    /// healed.
    pub fn heal_due(&mut self, finished: bool) -> Result<Vec<usize>> {
        let now = Instant::now();
        let (due, rest): (Vec<Healing>, Vec<Healing>) = std::mem::take(&mut self.healing)
            .into_iter()
            .partition(|h| h.at <= now);
        self.healing = rest;
        let mut healed = Vec::new();
        for h in due {
            match h.action {
                Heal::Restart(node) if !finished => self.nodes.start(&node)?,
                Heal::Uncut(f, dirs) => f.cut(&dirs, false),
                Heal::Undelay(f, dirs) => f.delay(&dirs, None),
                Heal::Continue(pids) => {
                    for p in pids {
                        children::signal(p, "CONT");
                    }
                }
                Heal::Restart(_) | Heal::Nothing => {}
            }
            healed.push(h.injection);
        }
        Ok(healed)
    }

    /// Whether a killed node waits for its restart.
    pub fn restarting(&self) -> bool {
        self.healing
            .iter()
            .any(|h| matches!(h.action, Heal::Restart(_)))
    }

    /// One-shot faults that struck since the last call: `(injection, when it struck and
    /// healed)`.
    pub fn strikes(&mut self) -> Vec<(usize, Instant)> {
        let mut out = Vec::new();
        self.link_watches
            .retain(|w| match w.faults.fired().get(w.before) {
                Some((_, at)) => {
                    out.push((w.injection, *at));
                    false
                }
                None => true,
            });
        for w in &mut self.watches {
            if !w.struck && struck_in_log(&self.nodes.log_since(&w.node, w.from), w.point) {
                w.struck = true;
                let at = Instant::now() + Duration::from_secs_f64(w.lasts_s);
                out.push((w.injection, at));
            }
        }
        out
    }

    /// Faults that never struck, with why.
    pub fn unfired(&self) -> Vec<(usize, String)> {
        let links = self
            .link_watches
            .iter()
            .map(|w| (w.injection, "no frame passed after it".to_string()));
        let nodes = self
            .watches
            .iter()
            .filter(|w| !w.struck)
            .map(|w| (w.injection, format!("armed on {} but never struck", w.node)));
        links.chain(nodes).collect()
    }

    /// Where node `node` accepts connections (a one-process run: its control endpoint).
    fn listen_of(&self, node: &str) -> Result<String> {
        if !self.config.cluster.is_distributed() {
            return Ok(ControlFile::read(&self.run)?.addr);
        }
        self.config
            .cluster
            .node(node)
            .map(|n| n.listen.clone())
            .with_context(|| format!("no node {node}"))
    }

    /// Arms a fault in a node through its agent (the control client connects on first use;
    /// to a one-process run, each time: a restarted `mgrpo train` has a new endpoint).
    async fn arm(&mut self, a: Arming, index: usize, inj: &mut Injection) {
        let one_process = !self.config.cluster.is_distributed();
        if one_process {
            self.client = None;
        }
        if self.client.is_none() {
            let target = if one_process {
                Target::run(&self.run).map_err(|e| e.to_string())
            } else {
                Ok(Target::cluster(self.config.clone()))
            };
            let connected = match target {
                Ok(t) if one_process => connect_retrying(&t).await,
                Ok(t) => connect(&t, Duration::from_secs(60), false)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match connected {
                Ok(c) => self.client = Some(c),
                Err(e) => {
                    inj.fired = false;
                    inj.note = format!("could not connect a control client: {e}");
                    return;
                }
            }
        }
        let Some(c) = self.client.as_ref() else {
            return;
        };
        let from = self.nodes.log_len(&a.node);
        let fault = Fault {
            point: a.point,
            action: a.action,
            times: a.times,
        };
        let r = match agent_polled(&c.ctx, &a.node).await {
            None => Err(format!("node {} did not answer", a.node)),
            Some(agent) => {
                rpc::call_member(
                    &agent,
                    |reply| NodeAgentMsg::InjectFault {
                        fault: Wire(fault),
                        reply,
                    },
                    Some(Duration::from_secs(5)),
                )
                .await
            }
        };
        match r {
            Ok(()) => self.watches.push(Watch {
                injection: index,
                node: a.node,
                from,
                point: a.point,
                lasts_s: match a.action {
                    FaultAction::Stall { ms } => ms as f64 / 1000.0,
                    _ => 0.0,
                },
                struck: false,
                armed: Instant::now(),
            }),
            Err(e) => {
                inj.fired = false;
                inj.note = format!("could not arm it: {e}");
            }
        }
    }
}

/// A control client of a one-process run whose node answered: up to three tries of 20 s each,
/// each with a fresh link (a handshake lost on a loaded machine is not waited on for a
/// minute while the run goes on without its fault).
async fn connect_retrying(target: &Target) -> std::result::Result<Client, String> {
    let mut last = String::new();
    for _ in 0..3 {
        match connect(target, Duration::from_secs(20), true).await {
            Ok(c) => return Ok(c),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Node `node`'s agent, asked again until 10 s have passed: group membership arrives with
/// the session, later than the session itself on a loaded machine.
async fn agent_polled(ctx: &NodeContext, node: &str) -> Option<ActorRef<NodeAgentMsg>> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(a) = agent_of(ctx, node, Duration::from_secs(5)).await {
            return Some(a);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `bytes` to `addr` as a misbehaving client; whether the bytes reached the node (it
/// accepted the connection and took them), and how it answered.
async fn bad_client(addr: &str, bytes: &[u8]) -> (bool, String) {
    let mut s = match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return (false, format!("could not connect to {addr}: {e}")),
    };
    if let Err(e) = s.write_all(bytes).await {
        return (false, format!("could not send the bytes: {e}"));
    }
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    let note = match closed {
        Ok(()) => format!(
            "the node closed the connection after {} ms",
            t.elapsed().as_millis()
        ),
        Err(_) => "the node kept the connection open for 20 s".into(),
    };
    (true, note)
}
