//! `mgrpo node` and `mgrpo status`: a cluster node's lifetime, and a short-lived client that
//! reports on the cluster.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mgrpo_actors::cluster::{self, agent, bytes};
use mgrpo_actors::node::NodeEvent;
use mgrpo_actors::role::Role;
use mgrpo_actors::rpc::wire;
use mgrpo_actors::{NodeSpec, Progress, RunDir};

use crate::cli::{NodeArgs, StatusArgs};

/// `mgrpo node`.
pub fn node(args: &NodeArgs) -> Result<()> {
    let config = super::load_config(&args.config.config)?;
    let c = &config.cluster;
    if !c.is_distributed() {
        bail!(
            "{} lists no [[cluster.nodes]]: use `mgrpo train` for one process, or see examples/cluster-3node.toml",
            args.config.config.display()
        );
    }
    let me = c.node(&args.node).cloned().with_context(|| {
        let known: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
        format!(
            "no node named {:?} in [[cluster.nodes]] (known: {})",
            args.node,
            known.join(", ")
        )
    })?;
    let listen: SocketAddr = me.listen.parse().context("listen address")?;
    let position = c.nodes.iter().position(|n| n.name == me.name).unwrap_or(0);
    // Each pair of nodes has one link, dialled by the node listed later.
    let dial: Vec<(String, String)> = c.nodes[..position]
        .iter()
        .map(|n| (n.name.clone(), me.dials(n).to_string()))
        .collect();
    let roles = config
        .placement()
        .into_iter()
        .find(|p| p.node == me.name)
        .map(|p| p.roles)
        .unwrap_or_default();
    // Fail early on the cookie, before the warm start.
    check_cookie(c, &args.config.config)?;
    let dashboard_cookie = match args.dashboard {
        Some(a) if !a.ip().is_loopback() => c.resolve_cookie().ok(),
        _ => None,
    };
    let run_dir = RunDir::new(
        args.run
            .clone()
            .unwrap_or_else(|| config.run.root.join(&config.cluster.name)),
    );
    let role_names: Vec<String> = roles
        .iter()
        .map(|(r, n)| format!("{}×{n}", r.name()))
        .collect();
    eprintln!(
        "node {} on {} hosting {}; run directory {}",
        me.name,
        me.listen,
        role_names.join(", "),
        run_dir.root().display()
    );
    let (ctx, store, report) =
        mgrpo_actors::prepare_node(config, run_dir, &roles, |role, step, steps, loss| {
            if step == steps {
                eprintln!("warm start {role}: {steps} steps, loss {loss:.3}");
            }
        })?;
    for r in &report {
        eprintln!("warm start {r}");
    }
    ctx.faults.arm_from_env().map_err(anyhow::Error::msg)?;
    let hosts_coordinator = roles.contains_key(&Role::Coordinator);
    if args.dashboard.is_some() && !hosts_coordinator {
        bail!(
            "--dashboard: node {} does not host the coordinator; serve the dashboard from the hub, or run `mgrpo dashboard --config` anywhere",
            me.name
        );
    }
    let dashboard_store = store.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        wire::quiet_decode_panics();
        let link = cluster::join(&ctx.config, &me.name, listen, dial).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (shutdown_tx, mut shutdown_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let node = mgrpo_actors::start_placed_node(
            ctx.clone(),
            NodeSpec {
                name: me.name.clone(),
                roles,
                store,
                progress: progress_tx,
                stop: stop.clone(),
                events: Some(events_tx),
                peers: Some(link.peers_fn()),
                shutdown: Some(shutdown_tx.clone()),
            },
        )
        .await?;
        let dashboard = match args.dashboard {
            Some(addr) => Some(
                crate::dashboard::serve_in_process(
                    addr,
                    ctx.clone(),
                    dashboard_store,
                    dashboard_cookie,
                )
                .await?,
            ),
            None => None,
        };
        let (s, tx) = (stop.clone(), shutdown_tx.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                if hosts_coordinator {
                    eprintln!("stopping after the current step (Ctrl-C again to abort)");
                    s.store(true, Ordering::SeqCst);
                } else {
                    let _ = tx.send("Ctrl-C".into());
                }
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let tx = shutdown_tx.clone();
        tokio::spawn(async move {
            while let Some(e) = events_rx.recv().await {
                eprintln!("node: {e:?}");
                if let NodeEvent::Meltdown { name, reason } = e {
                    let _ = tx.send(format!("meltdown of {name}: {reason}"));
                }
            }
        });
        tokio::spawn(async move {
            while let Some(p) = progress_rx.recv().await {
                match p {
                    Progress::Step(m) => eprintln!(
                        "step {} reward {:.3} acc {:.3} {:.2}s cross-node {} B (trajectories {} B)",
                        m["step"],
                        m["reward"].as_f64().unwrap_or(0.0),
                        m["accuracy"].as_f64().unwrap_or(0.0),
                        m["step_time_s"].as_f64().unwrap_or(0.0),
                        m["cross_node_bytes"],
                        m["trajectory_bytes"],
                    ),
                    Progress::Eval { step, report } => {
                        eprintln!("dev accuracy after {step} steps: {:.3}", report.accuracy)
                    }
                    Progress::Finished { .. } | Progress::Failed(_) => {}
                }
            }
        });
        let outcome = if hosts_coordinator {
            let r = mgrpo_actors::run_steps(&node).await;
            match &r {
                Ok(done) if !stop.load(Ordering::SeqCst) => {
                    eprintln!("trained {done} steps; stopping every node");
                    agent::shutdown_all(&ctx, "training finished");
                    // Let the shutdown casts leave before the links close.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Ok(done) => eprintln!("stopped after {done} steps"),
                Err(e) => eprintln!("training failed: {e}"),
            }
            r.map(|_| ()).map_err(anyhow::Error::from)
        } else {
            let reason = shutdown_rx.recv().await.unwrap_or_default();
            eprintln!("node {} stopping: {reason}", me.name);
            if reason.starts_with("meltdown") {
                Err(anyhow::anyhow!(reason))
            } else {
                Ok(())
            }
        };
        if let Some(d) = dashboard {
            d.finish();
        }
        node.supervisor.stop(Some("node stopping".into()));
        link.stop();
        print_payloads(&me.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
        outcome
    })
}

/// What this node sent to and received from other nodes, by payload type, largest first.
fn print_payloads(node: &str) {
    let mut rows: Vec<_> = wire::counters().into_iter().collect();
    rows.sort_by_key(|(_, c)| std::cmp::Reverse(c.sent_bytes + c.received_bytes));
    eprintln!(
        "node {node}: link bytes {} (links it dialled); payloads sent / received:",
        bytes::link_bytes()
    );
    for (kind, c) in rows {
        eprintln!(
            "  {kind:<60} {:>6} × {:>9} B sent  {:>6} × {:>9} B received{}",
            c.sent,
            c.sent_bytes,
            c.received,
            c.received_bytes,
            if c.rejected > 0 {
                format!("  {} rejected", c.rejected)
            } else {
                String::new()
            }
        );
    }
}

/// The run a control command talks to: a one-process run's directory, or a cluster's config.
pub fn control_target(
    run: Option<&std::path::Path>,
    config: &std::path::Path,
) -> Result<mgrpo_actors::control::Target> {
    if let Some(run) = run {
        return Ok(mgrpo_actors::control::Target::run(run)?);
    }
    let config_ = super::load_config(config)?;
    if !config_.cluster.is_distributed() {
        bail!(
            "{} lists no [[cluster.nodes]]; for a one-process run pass --run DIR",
            config.display()
        );
    }
    check_cookie(&config_.cluster, config)?;
    Ok(mgrpo_actors::control::Target::cluster(config_))
}

/// The cluster's cookie can be read; an error names the config file and its key.
fn check_cookie(
    c: &mgrpo_actors::config::cluster::ClusterConfig,
    path: &std::path::Path,
) -> Result<()> {
    c.resolve_cookie()
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `mgrpo status`.
pub fn status(args: &StatusArgs) -> Result<()> {
    if let Some(run) = &args.run
        && !run.join("control.json").exists()
    {
        // No process serves the run: say what it did, from disk.
        return print_run_summary(run, args.json);
    }
    let target = control_target(args.run.as_deref(), &args.config.config)?;
    let timeout = Duration::from_secs_f64(args.timeout.max(0.1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        wire::quiet_decode_panics();
        mgrpo_actors::control::status(&target, timeout).await
    });
    let report = match (report, &args.run) {
        (Err(e), Some(run)) => {
            // A control.json left by a process that is gone (killed, crashed).
            eprintln!("{e}; reading the run from disk");
            return print_run_summary(run, args.json);
        }
        (Ok(r), Some(run)) if !r.nodes.iter().any(|n| n.up) => {
            eprintln!(
                "{}/control.json names a process that does not answer (killed or crashed?); reading the run from disk",
                run.display()
            );
            return print_run_summary(run, args.json);
        }
        (r, _) => r?,
    };
    let report = serde_json::to_value(&report)?;
    if args.json {
        println!("{report}");
    } else {
        print_status(&report);
    }
    let down: Vec<&str> = report["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["up"].as_bool() != Some(true))
        .filter_map(|n| n["node"].as_str())
        .collect();
    if !down.is_empty() {
        // Scripts and health checks read the exit status: a placed node down is a failure.
        bail!(
            "node{} down: {} (status exits 1 until every placed node answers)",
            if down.len() > 1 { "s" } else { "" },
            down.join(", ")
        );
    }
    Ok(())
}

fn print_run_summary(run: &std::path::Path, json: bool) -> Result<()> {
    let summary = super::run_summary::summarise(run)?;
    if json {
        println!("{summary}");
    } else {
        println!("{}", super::run_summary::format(&summary));
    }
    Ok(())
}

fn print_status(r: &serde_json::Value) {
    println!("cluster {}", r["cluster"].as_str().unwrap_or("?"));
    for n in r["nodes"].as_array().into_iter().flatten() {
        let info = &n["info"];
        if n["up"].as_bool() != Some(true) {
            println!("  {:<8} DOWN", n["node"].as_str().unwrap_or("?"));
            continue;
        }
        let roles: Vec<String> = info["roles"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        println!(
            "  {:<8} up  pid {:<7} roles {:<40} link bytes {}",
            n["node"].as_str().unwrap_or("?"),
            info["pid"],
            roles.join(", "),
            info["link_bytes"]
        );
    }
    for (name, s) in r["learners"].as_object().into_iter().flatten() {
        println!(
            "  {name}: version {} (next step {})",
            s["version"], s["next_step"]
        );
    }
    for role in r["roles"].as_array().into_iter().flatten() {
        let last = &role["last_swap"];
        let swap = if last.is_null() {
            "never swapped".to_string()
        } else {
            format!(
                "last swap at step {}: {} → {} ({})",
                last["step"],
                last["from_serving"].as_str().unwrap_or("?"),
                last["to_serving"].as_str().unwrap_or("?"),
                last["request"].as_str().unwrap_or("?")
            )
        };
        println!(
            "  role {:<4} generation {} version {} source {:<10} {swap}",
            role["role"].as_str().unwrap_or("?"),
            role["generation"],
            role["version"],
            role["source"].as_str().unwrap_or("?"),
        );
    }
    let p = &r["progress"];
    if p.is_null() {
        println!("  store: not reachable");
    } else {
        println!("  committed steps: {}", p["committed_steps"]);
        if let Some(m) = p["last"]["metrics"].as_object() {
            let keys = [
                "reward",
                "accuracy",
                "step_time_s",
                "cross_node_bytes",
                "dev_accuracy",
            ];
            let line: Vec<String> = keys
                .iter()
                .filter_map(|k| m.get(*k).map(|v| format!("{k} {v}")))
                .collect();
            println!("  last step: {}", line.join(", "));
        }
    }
}
