//! `mgrpo chaos --plan FILE [--seeds N] [--json]`: runs a fault plan over seeds with a progress
//! bar, prints the table and the failures (each with the command that reproduces it), and exits
//! non-zero if any invariant broke.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::chaos::plan::Plan;
use crate::chaos::reference::reference;
use crate::chaos::report::{summary, table};
use crate::chaos::run::{Setup, run_once, validate};
use crate::cli::ChaosArgs;
use crate::commands::load_config;

pub fn chaos(args: &ChaosArgs) -> Result<()> {
    let (plan, config_path) = Plan::load(&args.plan)?;
    let mut config = load_config(&config_path)?;
    config.train.steps = plan.steps;
    if let Some(schedule) = plan.schedule {
        config.algo.schedule = schedule;
    }
    if plan.one_process {
        config.cluster.nodes.clear();
    }
    validate(&plan, &config)?;
    let in_node = plan
        .faults
        .iter()
        .map(|f| &f.kind)
        .chain(plan.repeat.iter().map(|r| &r.fault))
        .find(|k| k.in_node());
    if let Some(k) = in_node
        && !mgrpo_actors::faults::ENABLED
    {
        bail!(
            "the plan has {} faults, which are armed inside the nodes: {}",
            k.name(),
            mgrpo_actors::faults::DISABLED
        );
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/chaos").join(&plan.name));
    std::fs::create_dir_all(&out)?;
    let root = out
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| out.clone());
    eprintln!(
        "fault-free reference of {} ({} steps)…",
        config_path.display(),
        plan.steps
    );
    let (reference_run, took) = reference(&config, &root)?;
    let faults_s: f64 = plan
        .faults
        .iter()
        .map(|f| f.kind.duration_s())
        .chain(
            plan.repeat
                .iter()
                .map(|r| r.fault.duration_s() * r.count as f64),
        )
        .sum();
    let deadline =
        Duration::from_secs_f64(took.as_secs_f64() * 4.0 + faults_s + plan.recovery_bound_s + 60.0);
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (0..args.seeds).collect(),
    };
    let setup = Setup {
        plan: plan.clone(),
        plan_path: args.plan.clone(),
        config,
        reference: reference_run,
        out: out.clone(),
        keep: args.keep,
        deadline,
    };
    let bar = ProgressBar::new(seeds.len() as u64 * plan.steps);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} steps {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut outcomes = Vec::new();
    for (i, seed) in seeds.iter().enumerate() {
        bar.set_message(format!("{} seed {seed}", plan.name));
        let base = i as u64 * plan.steps;
        let b = bar.clone();
        let on_step = move |s: u64| b.set_position(base + (s + 1).min(plan.steps));
        let o = rt.block_on(run_once(&setup, *seed, &on_step))?;
        bar.set_position(base + plan.steps);
        if !o.passed() {
            bar.suspend(|| {
                eprintln!("seed {seed} FAILED (kept in {}):", o.dir.display());
                for p in &o.problems {
                    eprintln!("  - {p}");
                }
                eprintln!(
                    "  reproduce: mgrpo chaos --plan {} --seed {seed}",
                    setup.plan_path.display()
                );
            });
        }
        outcomes.push(o);
    }
    bar.finish_and_clear();
    let s = summary(&outcomes);
    let report = format!(
        "plan {} · {} run(s) · {} fault(s)\n{}steps lost {} · doubled {} · stores identical {}/{} · node crashes {} · recovery p50 {:.1}s max {:.1}s",
        plan.name,
        s.runs,
        s.faults,
        table(&outcomes),
        s.lost,
        s.doubled,
        s.identical,
        s.runs,
        s.node_crashes,
        s.recovery_s_p50,
        s.recovery_s_max
    );
    if args.json {
        // stdout is the one JSON line; the table is for people, on stderr.
        eprintln!("{report}");
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!("{report}");
    }
    if s.failed > 0 {
        bail!("{} of {} run(s) broke an invariant", s.failed, s.runs);
    }
    Ok(())
}
