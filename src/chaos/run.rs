//! One chaos run: derive the cluster config (free loopback ports, a fault proxy on every link),
//! start the node processes with the reference's warm start, inject the schedule as the steps
//! go by, heal, wait for the end, and check the result.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mgrpo_actors::Config;
use mgrpo_actors::cluster::agent::{NodeAgentMsg, agent_of};
use mgrpo_actors::config::cluster::Secret;
use mgrpo_actors::control::client::{Client, Target, connect};
use mgrpo_actors::faults::{Fault, FaultAction, FaultPoint};
use mgrpo_actors::role::Role;
use mgrpo_actors::rpc::{self, Wire};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::chaos::check::{StoreVerdict, check_store};
use crate::chaos::history::{History, Injection};
use crate::chaos::nodes::Nodes;
use crate::chaos::plan::{
    FaultKind, LinkSpec, Plan, Scheduled, Trigger, parse_link, parse_point, parse_role,
};
use crate::chaos::proxy::{self, Dir, Proxy};

/// What every run of a plan shares.
pub struct Setup {
    /// The plan.
    pub plan: Plan,
    /// The plan file (for the reproduce command).
    pub plan_path: PathBuf,
    /// The cluster config with the plan's steps.
    pub config: Config,
    /// The fault-free reference run directory.
    pub reference: PathBuf,
    /// Where runs go.
    pub out: PathBuf,
    /// Keep the run directories of runs that passed.
    pub keep: bool,
    /// How long a run may take before it is stopped (reference time × 4 + faults + bound).
    pub deadline: Duration,
}

/// The result of one run.
pub struct Outcome {
    /// What happened.
    pub history: History,
    /// The store against the reference.
    pub verdict: StoreVerdict,
    /// Every broken invariant (the verdict's included).
    pub problems: Vec<String>,
    /// Its directory.
    pub dir: PathBuf,
}

impl Outcome {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The proxies of a run, by `(dialler, listener)`.
struct Links {
    proxies: BTreeMap<(String, String), Proxy>,
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

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Copies the reference's warm start (every role's version 0) into `run`.
fn copy_warm_start(reference: &Path, run: &Path) -> Result<()> {
    let ck = reference.join("checkpoints");
    for role in std::fs::read_dir(&ck).with_context(|| format!("reading {}", ck.display()))? {
        let role = role?;
        let from = role.path().join("0");
        if !from.is_dir() {
            continue;
        }
        let to = run.join("checkpoints").join(role.file_name()).join("0");
        std::fs::create_dir_all(&to)?;
        for f in std::fs::read_dir(&from)? {
            let f = f?;
            std::fs::copy(f.path(), to.join(f.file_name()))?;
        }
    }
    Ok(())
}

/// The node hosting `role` first in the placement.
fn host_of(config: &Config, role: Role) -> Result<String> {
    config
        .placement()
        .into_iter()
        .find(|p| p.roles.contains_key(&role))
        .map(|p| p.node)
        .with_context(|| format!("no node hosts {}", role.name()))
}

/// Checks that every target a plan names exists in the config.
pub fn validate(plan: &Plan, config: &Config) -> Result<()> {
    let nodes: Vec<String> = config
        .cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let node_ok = |n: &str| n == "*" || nodes.iter().any(|x| x == n);
    let kinds = plan
        .faults
        .iter()
        .map(|f| &f.kind)
        .chain(plan.repeat.iter().map(|r| &r.fault));
    for k in kinds {
        match k {
            FaultKind::KillActor { role } | FaultKind::StallActor { role, .. } => {
                host_of(config, parse_role(role)?)?;
            }
            FaultKind::FailPoint { point } => {
                host_of(config, parse_point(point)?.1)?;
            }
            FaultKind::GarbageOutput { role, .. } => {
                let r = parse_role(role)?;
                if !matches!(r, Role::Planner | Role::Executor) {
                    bail!("garbage_output strikes a planner or an executor, not {role}");
                }
                host_of(config, r)?;
            }
            FaultKind::KillNode { node, .. }
            | FaultKind::StallHandshake { node, .. }
            | FaultKind::GarbageFrames { node }
            | FaultKind::OversizedFrame { node } => {
                if !node_ok(node) {
                    bail!(
                        "the plan names node {node:?}; the config has {}",
                        nodes.join(", ")
                    );
                }
            }
            FaultKind::CutLink { link, .. }
            | FaultKind::DelayLink { link, .. }
            | FaultKind::CorruptLink { link }
            | FaultKind::CloseLink { link } => {
                let l = parse_link(link)?;
                if !node_ok(&l.a) || !node_ok(&l.b) || l.a == l.b {
                    bail!(
                        "the plan names link {link:?}; the config has nodes {}",
                        nodes.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}

/// A fault waiting to heal.
struct Healing {
    at: Instant,
    injection: usize,
    action: Heal,
}

enum Heal {
    Restart(String),
    Uncut(Arc<proxy::LinkFaults>, Vec<Dir>),
    Undelay(Arc<proxy::LinkFaults>, Vec<Dir>),
    Nothing,
}

/// A node-side fault whose strike is read from the node's log.
struct Watch {
    injection: usize,
    node: String,
    from: usize,
    point: FaultPoint,
    /// How long it lasts once struck (a stall), seconds.
    lasts_s: f64,
    /// When it struck and healed, seconds after the start.
    struck: Option<f64>,
}

/// Whether `log` says, after byte `from`, that a fault struck at `point`.
fn struck_in_log(log: &str, from: usize, point: FaultPoint) -> bool {
    let needle = format!("point={point:?}");
    log.get(from..)
        .unwrap_or("")
        .lines()
        .any(|l| l.contains("fault strikes") && l.contains(&needle))
}

/// A one-shot link fault whose strike the proxy records.
struct LinkWatch {
    injection: usize,
    faults: Arc<proxy::LinkFaults>,
    before: usize,
}

/// Runs the plan once with `seed`.
pub async fn run_once(setup: &Setup, seed: u64, on_step: &(dyn Fn(u64) + Sync)) -> Result<Outcome> {
    let dir = setup.out.join(format!("seed-{seed}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let run = dir.join("run");
    std::fs::create_dir_all(&run)?;
    copy_warm_start(&setup.reference, &run)?;

    // The derived config: fresh ports, and every dialled link through a fault proxy.
    let mut config = setup.config.clone();
    for n in &mut config.cluster.nodes {
        n.listen = format!("127.0.0.1:{}", free_port()?);
        n.advertise = None;
        n.dial.clear();
    }
    let mut links = Links {
        proxies: BTreeMap::new(),
    };
    let names: Vec<String> = config
        .cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    for j in 0..config.cluster.nodes.len() {
        for i in 0..j {
            let upstream = config.cluster.nodes[i].listen.clone();
            let p = proxy::start(upstream, config.cluster.max_frame_bytes).await?;
            config.cluster.nodes[j]
                .dial
                .insert(names[i].clone(), p.addr.to_string());
            links
                .proxies
                .insert((names[j].clone(), names[i].clone()), p);
        }
    }
    config.cluster.cookie = None;
    config.cluster.cookie_file = None;
    config.cluster.cookie_env = Some("MGRPO_COOKIE".into());
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config.to_toml())?;
    let cookie: String = {
        let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);
        (0..32)
            .map(|_| format!("{:x}", r.random_range(0..16u8)))
            .collect()
    };
    // The control client that arms faults holds the cookie itself (never in the file).
    let mut client_config = config.clone();
    client_config.cluster.cookie = Some(Secret(cookie.clone()));
    client_config.cluster.cookie_env = None;
    let coordinator = host_of(&config, Role::Coordinator)?;
    let mut nodes = Nodes::new(
        &config_path,
        &run,
        &dir.join("logs"),
        &names,
        cookie.clone(),
    )?;
    for n in &names {
        nodes.start(n)?;
    }
    let t0 = Instant::now();
    let secs = |t: Instant| t.duration_since(t0).as_secs_f64();
    let schedule = setup.plan.schedule(seed, &names);
    let mut history = History {
        seed,
        ..History::default()
    };
    let mut pending: Vec<Scheduled> = schedule;
    let mut healing: Vec<Healing> = Vec::new();
    let mut watches: Vec<Watch> = Vec::new();
    let mut link_watches: Vec<LinkWatch> = Vec::new();
    let mut client: Option<Client> = None;
    // Roles whose output was garbled, with the step under way then.
    let mut garbled: Vec<(Role, u64)> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut seen_lines = 0usize;
    let mut finished_at: Option<Instant> = None;
    let metrics_path = run.join("metrics.jsonl");

    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = Instant::now();
        // Commits seen so far.
        if let Ok(lines) = mgrpo_actors::run_dir::read_json_lines(&metrics_path) {
            for l in lines.iter().skip(seen_lines) {
                if let Some(s) = l["step"].as_u64() {
                    history.commits.push((s, secs(now)));
                    on_step(s);
                }
            }
            seen_lines = seen_lines.max(lines.len());
        }
        let under_way = history
            .commits
            .iter()
            .map(|(s, _)| s + 1)
            .max()
            .unwrap_or(0);
        // Nodes that ended by themselves.
        for e in nodes.reap() {
            if e.status.success() && e.node == coordinator {
                history.finished_s = Some(secs(now));
                finished_at = Some(now);
            } else if !e.status.success() {
                history
                    .crashes
                    .push((e.node.clone(), e.status.to_string(), secs(now)));
                problems.push(format!(
                    "node {} exited with {} at {:.1}s (see {})",
                    e.node,
                    e.status,
                    secs(now),
                    dir.join("logs").join(format!("{}.log", e.node)).display()
                ));
            }
        }
        // Heals due.
        let (due, rest): (Vec<Healing>, Vec<Healing>) =
            healing.into_iter().partition(|h| h.at <= now);
        healing = rest;
        for h in due {
            match h.action {
                Heal::Restart(node) => {
                    if finished_at.is_none() {
                        nodes.start(&node)?;
                    }
                }
                Heal::Uncut(f, dirs) => f.cut(&dirs, false),
                Heal::Undelay(f, dirs) => f.delay(&dirs, None),
                Heal::Nothing => {}
            }
            history.injections[h.injection].healed_s = Some(secs(now));
        }
        // Faults due (none once training finished).
        if finished_at.is_none() {
            let (due, rest): (Vec<Scheduled>, Vec<Scheduled>) =
                pending.into_iter().partition(|f| match f.trigger {
                    Trigger::Step(s) => under_way >= s,
                    Trigger::Seconds(t) => secs(now) >= t,
                });
            pending = rest;
            for f in due {
                // A node that is down (its restart pending) is killed once it is back.
                if let FaultKind::KillNode { node, .. } = &f.kind
                    && !nodes.running(node)
                {
                    pending.push(f);
                    continue;
                }
                let index = history.injections.len();
                let mut inj = Injection {
                    index: f.index,
                    kind: f.kind.name(),
                    target: String::new(),
                    at_s: secs(now),
                    step: under_way,
                    healed_s: None,
                    fired: true,
                    recovery_s: None,
                    note: String::new(),
                };
                let heal_at = now + Duration::from_secs_f64(f.kind.duration_s());
                match &f.kind {
                    FaultKind::KillNode { node, .. } => {
                        inj.target = node.clone();
                        inj.fired = nodes.kill(node);
                        if !inj.fired {
                            inj.note = "the node was down already".into();
                        }
                        healing.push(Healing {
                            at: heal_at,
                            injection: index,
                            action: Heal::Restart(node.clone()),
                        });
                    }
                    FaultKind::CutLink { link, .. } => {
                        let (p, dirs) = links.find(&parse_link(link)?)?;
                        inj.target = link.clone();
                        p.faults.cut(&dirs, true);
                        healing.push(Healing {
                            at: heal_at,
                            injection: index,
                            action: Heal::Uncut(p.faults.clone(), dirs),
                        });
                    }
                    FaultKind::DelayLink {
                        link,
                        ms,
                        jitter_ms,
                        ..
                    } => {
                        let (p, dirs) = links.find(&parse_link(link)?)?;
                        inj.target = link.clone();
                        p.faults.delay(&dirs, Some((*ms, *jitter_ms)));
                        healing.push(Healing {
                            at: heal_at,
                            injection: index,
                            action: Heal::Undelay(p.faults.clone(), dirs),
                        });
                    }
                    FaultKind::CorruptLink { link } | FaultKind::CloseLink { link } => {
                        let (p, dirs) = links.find(&parse_link(link)?)?;
                        inj.target = link.clone();
                        let before = p.faults.fired().len();
                        if matches!(f.kind, FaultKind::CorruptLink { .. }) {
                            p.faults.corrupt_next(dirs[0]);
                        } else {
                            p.faults.close_next(dirs[0]);
                        }
                        link_watches.push(LinkWatch {
                            injection: index,
                            faults: p.faults.clone(),
                            before,
                        });
                    }
                    FaultKind::KillActor { role } | FaultKind::StallActor { role, .. } => {
                        let role = parse_role(role)?;
                        let node = host_of(&config, role)?;
                        let action = match &f.kind {
                            FaultKind::StallActor { ms, .. } => FaultAction::Stall { ms: *ms },
                            _ => FaultAction::Panic,
                        };
                        inj.target = format!("{} on {node}", role.name());
                        let point = FaultPoint::Reply(role);
                        arm(
                            &mut client,
                            &client_config,
                            &mut nodes,
                            &node,
                            point,
                            action,
                            &mut inj,
                            &mut watches,
                            index,
                        )
                        .await;
                    }
                    FaultKind::FailPoint { point } => {
                        let (p, role) = parse_point(point)?;
                        let node = host_of(&config, role)?;
                        inj.target = format!("{point} on {node}");
                        arm(
                            &mut client,
                            &client_config,
                            &mut nodes,
                            &node,
                            p,
                            FaultAction::Fail,
                            &mut inj,
                            &mut watches,
                            index,
                        )
                        .await;
                    }
                    FaultKind::GarbageOutput { role, requests } => {
                        let role = parse_role(role)?;
                        let node = host_of(&config, role)?;
                        inj.target = format!("{} on {node}", role.name());
                        garbled.push((role, under_way));
                        let point = FaultPoint::Output(role);
                        arm_n(
                            &mut client,
                            &client_config,
                            &mut nodes,
                            &node,
                            point,
                            FaultAction::Fail,
                            *requests,
                            &mut inj,
                            &mut watches,
                            index,
                        )
                        .await;
                    }
                    FaultKind::StallHandshake { node, for_s } => {
                        inj.target = node.clone();
                        let addr = listen_of(&config, node)?;
                        let hold = Duration::from_secs_f64(*for_s);
                        tokio::spawn(async move {
                            if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
                                let mut b = [0u8; 1];
                                let _ = tokio::time::timeout(hold, s.read(&mut b)).await;
                            }
                        });
                        healing.push(Healing {
                            at: heal_at,
                            injection: index,
                            action: Heal::Nothing,
                        });
                    }
                    FaultKind::GarbageFrames { node } | FaultKind::OversizedFrame { node } => {
                        inj.target = node.clone();
                        let addr = listen_of(&config, node)?;
                        let bytes = if matches!(f.kind, FaultKind::GarbageFrames { .. }) {
                            let mut r = ChaCha8Rng::seed_from_u64(seed ^ f.index as u64);
                            (0..4096).map(|_| r.random::<u8>()).collect::<Vec<u8>>()
                        } else {
                            let mut b = (config.cluster.max_frame_bytes + 1).to_be_bytes().to_vec();
                            b.extend_from_slice(&[0u8; 1024]);
                            b
                        };
                        inj.note = bad_client(&addr, &bytes).await;
                    }
                }
                history.injections.push(inj);
            }
        }
        // One-shot faults that struck: recovery counts from the strike.
        link_watches.retain(|w| {
            let fired = w.faults.fired();
            let struck = fired.get(w.before).map(|(_, at)| secs(*at));
            if let Some(t) = struck {
                let i = &mut history.injections[w.injection];
                i.fired = true;
                i.healed_s = Some(t);
            }
            struck.is_none()
        });
        for w in &mut watches {
            if w.struck.is_none() && struck_in_log(&nodes.log(&w.node), w.from, w.point) {
                let t = secs(now) + w.lasts_s;
                w.struck = Some(t);
                history.injections[w.injection].healed_s = Some(t);
            }
        }
        if nodes.all_down() {
            break;
        }
        if let Some(f) = finished_at
            && now.duration_since(f) > Duration::from_secs(30)
        {
            // A node restarted after the end never hears the shutdown: stop it.
            nodes.kill_all();
            break;
        }
        if now.duration_since(t0) > setup.deadline {
            problems.push(format!(
                "training did not finish within {:.0}s (last commit: step {})",
                setup.deadline.as_secs_f64(),
                under_way as i64 - 1
            ));
            nodes.kill_all();
            break;
        }
    }
    drop(client);
    drop(links);

    // Faults that never took effect.
    for w in &link_watches {
        history.injections[w.injection].fired = false;
        history.injections[w.injection].note = "no frame passed after it".into();
    }
    for w in &watches {
        if w.struck.is_none() && !struck_in_log(&nodes.log(&w.node), w.from, w.point) {
            let i = &mut history.injections[w.injection];
            i.fired = false;
            if i.note.is_empty() {
                i.note = format!("armed on {} but never struck", w.node);
            }
        }
    }
    for i in &history.injections {
        if !i.fired {
            problems.push(format!(
                "fault {} ({} {}) did not fire: {}",
                i.index, i.kind, i.target, i.note
            ));
        }
    }
    for p in &pending {
        problems.push(format!(
            "fault {} ({}) was never injected: training ended first ({:?})",
            p.index,
            p.kind.name(),
            p.trigger
        ));
    }
    history.settle();
    if let Some(end) = history.finished_s {
        let after = end - history.last_heal();
        if after > setup.plan.recovery_bound_s {
            problems.push(format!(
                "training finished {after:.1}s after the last fault healed (bound {}s)",
                setup.plan.recovery_bound_s
            ));
        }
    } else if problems.is_empty() {
        problems.push("the coordinator's node never finished cleanly".into());
    }
    let verdict = check_store(
        &run,
        &setup.reference,
        setup.plan.steps,
        config.algo.std,
        config.algo.eps,
        garbled.iter().map(|(_, s)| *s).min().unwrap_or(u64::MAX),
    )
    .unwrap_or_else(|e| StoreVerdict {
        lost: setup.plan.steps,
        problems: vec![format!("could not read the store: {e:#}")],
        ..StoreVerdict::default()
    });
    problems.extend(verdict.problems.iter().cloned());
    for (role, step) in &garbled {
        match malformed_stored(&run, *role, *step) {
            Ok(true) => {}
            Ok(false) => problems.push(format!(
                "{}'s garbage output from step {step} on is not stored with format reward 0",
                role.name()
            )),
            Err(e) => problems.push(format!("reading the store: {e:#}")),
        }
    }
    history.write(&dir.join("history.jsonl"))?;
    let outcome = Outcome {
        history,
        verdict,
        problems,
        dir: dir.clone(),
    };
    if outcome.passed() && !setup.keep {
        let _ = std::fs::remove_dir_all(&run);
    }
    Ok(outcome)
}

fn listen_of(config: &Config, node: &str) -> Result<String> {
    config
        .cluster
        .node(node)
        .map(|n| n.listen.clone())
        .with_context(|| format!("no node {node}"))
}

/// Whether the store holds, from `step` on, a turn of `role` with format reward 0 (a main
/// rollout for the planner, a sub call for the executor).
fn malformed_stored(run: &Path, role: Role, step: u64) -> Result<bool> {
    let store = mgrpo_store::Store::open(run.join("store"))?;
    for s in store.steps()?.iter().filter(|s| s.step >= step) {
        for g in store.groups(s.step)? {
            let bad = match role {
                Role::Planner => g.main.iter().any(|m| !m.format),
                _ => g.calls.iter().any(|c| !c.format),
            };
            if bad {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Arms a fault that strikes once on `node` (see [`arm_n`]).
#[allow(clippy::too_many_arguments)]
async fn arm(
    client: &mut Option<Client>,
    config: &Config,
    nodes: &mut Nodes,
    node: &str,
    point: FaultPoint,
    action: FaultAction,
    inj: &mut Injection,
    watches: &mut Vec<Watch>,
    index: usize,
) {
    arm_n(
        client, config, nodes, node, point, action, 1, inj, watches, index,
    )
    .await
}

/// Arms a fault striking `times` times on `node` through the control client (connected on
/// first use).
#[allow(clippy::too_many_arguments)]
async fn arm_n(
    client: &mut Option<Client>,
    config: &Config,
    nodes: &mut Nodes,
    node: &str,
    point: FaultPoint,
    action: FaultAction,
    times: u32,
    inj: &mut Injection,
    watches: &mut Vec<Watch>,
    index: usize,
) {
    if client.is_none() {
        match connect(
            &Target::cluster(config.clone()),
            Duration::from_secs(60),
            false,
        )
        .await
        {
            Ok(c) => *client = Some(c),
            Err(e) => {
                inj.fired = false;
                inj.note = format!("could not connect a control client: {e}");
                return;
            }
        }
    }
    let Some(c) = client.as_ref() else { return };
    let from = nodes.log_len(node);
    let fault = Fault {
        point,
        action,
        times,
    };
    let r = match agent_of(&c.ctx, node, Duration::from_secs(5)).await {
        None => Err(format!("node {node} did not answer")),
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
        Ok(()) => watches.push(Watch {
            injection: index,
            node: node.to_string(),
            from,
            point,
            lasts_s: match action {
                FaultAction::Stall { ms } => ms as f64 / 1000.0,
                _ => 0.0,
            },
            struck: None,
        }),
        Err(e) => {
            inj.fired = false;
            inj.note = format!("could not arm it: {e}");
        }
    }
}

/// Sends `bytes` to `addr` as a misbehaving client; says how the node answered.
async fn bad_client(addr: &str, bytes: &[u8]) -> String {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return "could not connect".into();
    };
    let _ = s.write_all(bytes).await;
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
    match closed {
        Ok(()) => format!(
            "the node closed the connection after {} ms",
            t.elapsed().as_millis()
        ),
        Err(_) => "the node kept the connection open for 20 s".into(),
    }
}
