//! One chaos run: derive the config (free loopback ports, a fault proxy on every link), start
//! the node processes with the reference's warm start, inject the schedule as the steps go by
//! ([`crate::chaos::inject`]), heal, wait for the end, and check the result.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mgrpo_actors::config::cluster::Secret;
use mgrpo_actors::role::Role;
use mgrpo_actors::{Config, RunDir};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::chaos::check::{StoreVerdict, check_store};
use crate::chaos::children::Helper;
use crate::chaos::history::{History, Injection};
use crate::chaos::inject::{Injector, Links, host_of};
use crate::chaos::nodes::Nodes;
use crate::chaos::plan::{
    FaultKind, Plan, Scheduled, Trigger, parse_link, parse_point, parse_role,
};
use crate::chaos::proxy;

/// What every run of a plan shares.
pub struct Setup {
    /// The plan.
    pub plan: Plan,
    /// The plan file (for the reproduce command).
    pub plan_path: PathBuf,
    /// The config with the plan's steps.
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

fn free_port() -> Result<u16> {
    Ok(mgrpo_actors::cluster::ports::loopback_ports(1)?[0])
}

/// The node names of a config (`local` for one process).
pub fn node_names(config: &Config) -> Vec<String> {
    config.placement().into_iter().map(|p| p.node).collect()
}

/// Checks that every target a plan names exists in the config.
pub fn validate(plan: &Plan, config: &Config) -> Result<()> {
    let nodes = node_names(config);
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
            FaultKind::KillToolServer { server } | FaultKind::StallToolServer { server, .. } => {
                Helper::tool_server(config, server)?;
                host_of(config, Role::Executor)?;
            }
            FaultKind::KillScorer { scorer } | FaultKind::StallScorer { scorer, .. } => {
                Helper::scorer(config, scorer)?;
                host_of(config, Role::Judge)?;
            }
            FaultKind::CutLink { link, .. }
            | FaultKind::DelayLink { link, .. }
            | FaultKind::CorruptLink { link }
            | FaultKind::CloseLink { link } => {
                if !config.cluster.is_distributed() {
                    bail!("link {link:?}: a one-process run has no links");
                }
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

/// The run's config: free ports, every dialled link through a new proxy, the cookie from the
/// environment (the node processes get it there).
async fn derive(base: &Config) -> Result<(Config, Links)> {
    let mut config = base.clone();
    for n in &mut config.cluster.nodes {
        n.listen = format!("127.0.0.1:{}", free_port()?);
        n.advertise = None;
        n.dial.clear();
    }
    let mut links = Links {
        proxies: BTreeMap::new(),
    };
    let names = node_names(&config);
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
    config.cluster.cookie_env = config
        .cluster
        .is_distributed()
        .then(|| "MGRPO_COOKIE".into());
    Ok((config, links))
}

/// Runs the plan once with `seed`.
pub async fn run_once(setup: &Setup, seed: u64, on_step: &(dyn Fn(u64) + Sync)) -> Result<Outcome> {
    let dir = setup.out.join(format!("seed-{seed}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let run = dir.join("run");
    std::fs::create_dir_all(&run)?;
    RunDir::new(&run)
        .adopt_warm_start(&RunDir::new(&setup.reference))
        .with_context(|| format!("copying the warm start of {}", setup.reference.display()))?;
    let (config, links) = derive(&setup.config).await?;
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config.to_toml())?;
    let cookie: String = {
        let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);
        (0..32)
            .map(|_| format!("{:x}", r.random_range(0..16u8)))
            .collect()
    };
    let names = node_names(&config);
    let coordinator = host_of(&config, Role::Coordinator)?;
    let one_process = !config.cluster.is_distributed();
    let mut nodes = Nodes::new(
        &config_path,
        &run,
        &dir.join("logs"),
        &names,
        cookie.clone(),
        one_process,
    )?;
    for n in &names {
        nodes.start(n)?;
    }
    // The control client that arms faults holds the cookie itself (never in a file).
    let mut client_config = config.clone();
    client_config.cluster.cookie = Some(Secret(cookie));
    client_config.cluster.cookie_env = None;
    let mut inj = Injector::new(nodes, links, client_config, &run, seed);

    let t0 = Instant::now();
    let secs = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
    let mut history = History {
        seed,
        ..History::default()
    };
    let mut pending: Vec<Scheduled> = setup.plan.schedule(seed, &names);
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
        for e in inj.nodes.reap() {
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
        for i in inj.heal_due(finished_at.is_some())? {
            history.injections[i].healed_s = Some(secs(now));
        }
        for (i, at) in inj.strikes() {
            history.injections[i].fired = true;
            history.injections[i].healed_s = Some(secs(at));
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
                if inj.must_wait(&f) {
                    pending.push(f);
                    continue;
                }
                let index = history.injections.len();
                let mut record = Injection {
                    index: f.index,
                    kind: f.kind.name(),
                    target: String::new(),
                    at_s: secs(now),
                    step: under_way,
                    healed_s: None,
                    // Set where the fault observably struck: a node that was running got the
                    // SIGKILL, a proxy took the fault, a connection was accepted, an armed
                    // fault point logged its strike (`strikes`).
                    fired: false,
                    recovery_s: None,
                    note: String::new(),
                };
                inj.inject(&f, index, &mut record).await?;
                history.injections.push(record);
            }
        }
        if inj.nodes.all_down() && (finished_at.is_some() || !inj.restarting()) {
            break;
        }
        if let Some(f) = finished_at
            && now.duration_since(f) > Duration::from_secs(30)
        {
            // A node restarted after the end never hears the shutdown: stop it.
            inj.nodes.kill_all();
            break;
        }
        if now.duration_since(t0) > setup.deadline {
            problems.push(format!(
                "training did not finish within {:.0}s (last commit: step {})",
                setup.deadline.as_secs_f64(),
                under_way as i64 - 1
            ));
            inj.nodes.kill_all();
            break;
        }
    }
    // Strikes logged since the last look.
    for (i, at) in inj.strikes() {
        history.injections[i].fired = true;
        history.injections[i].healed_s = Some(secs(at));
    }
    for (i, why) in inj.unfired() {
        if history.injections[i].note.is_empty() {
            history.injections[i].note = why;
        }
    }
    let garbled = inj.garbled.clone();
    let diverged = inj.diverged.iter().copied().min();
    drop(inj);
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
        config.algo.variant,
        (config.algo.std, config.algo.eps),
        garbled
            .iter()
            .map(|(_, s)| *s)
            .chain(diverged)
            .min()
            .unwrap_or(u64::MAX),
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
