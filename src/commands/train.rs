//! `mgrpo warmup` and `mgrpo train`: the main job, with progress bars and clean Ctrl-C.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mgrpo_actors::control::control_file;
use mgrpo_actors::{Config, Progress, RunDir};

use crate::cli::{TrainArgs, WarmupArgs};

fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb
}

fn run_dir_for(config: &Config, run: Option<&std::path::Path>) -> RunDir {
    match run {
        Some(p) => RunDir::new(p),
        None => RunDir::fresh_under(&config.run.root, config.algo.variant.name()),
    }
}

/// The warm start's bar: the roles warm at the same time, so it shows each one's step and
/// loss, and their total progress.
fn warm_bar() -> (ProgressBar, impl FnMut(&str, usize, usize, f32)) {
    let pb = bar(0, "warm-up [{bar:30}] {msg}");
    let p = pb.clone();
    let mut roles: std::collections::BTreeMap<String, (usize, usize, f32)> = Default::default();
    let on_step = move |role: &str, step: usize, steps: usize, loss: f32| {
        roles.insert(role.to_string(), (step, steps, loss));
        p.set_length(roles.values().map(|r| r.1 as u64).sum());
        p.set_position(roles.values().map(|r| r.0 as u64).sum());
        let parts: Vec<String> = roles
            .iter()
            .map(|(name, (step, steps, loss))| format!("{name} {step}/{steps} loss {loss:.3}"))
            .collect();
        p.set_message(parts.join(" · "));
    };
    (pb, on_step)
}

/// `mgrpo warmup`.
pub fn warmup(args: &WarmupArgs) -> Result<()> {
    let config = super::load_config_with(&args.config.config, &args.set)?;
    let run_dir = run_dir_for(&config, args.run.as_deref());
    let (pb, on_step) = warm_bar();
    let (_ctx, _store, report) = mgrpo_actors::prepare(config, run_dir.clone(), true, on_step)?;
    pb.finish_and_clear();
    if report.is_empty() {
        println!("{} already has warm checkpoints", run_dir.root().display());
    }
    for r in &report {
        println!("{r}");
    }
    println!("run directory: {}", run_dir.root().display());
    Ok(())
}

/// `mgrpo train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let mut config = if args.resume {
        let dir = args.run.as_ref().context("--resume needs --run DIR")?;
        super::refuse_config_for_run(&args.config.config, dir, "--resume")?;
        if !args.set.sets.is_empty() {
            anyhow::bail!(
                "--resume continues with the run's own config ({}): --set does not apply; \
                 edit that file if a setting must change",
                RunDir::new(dir).config_path().display()
            );
        }
        super::load_config(&RunDir::new(dir).config_path())?
    } else {
        super::load_config_with(&args.config.config, &args.set)?
    };
    if let Some(steps) = args.steps {
        config.train.steps = steps;
    }
    if let Some(algo) = &args.algo {
        config.algo.variant = algo.parse().map_err(anyhow::Error::msg)?;
    }
    if let Some(seed) = args.seed {
        config.run.seed = seed;
    }
    if let Some(schedule) = args.schedule {
        config.algo.schedule = schedule.into();
        let problems = config.problems();
        if !problems.is_empty() {
            anyhow::bail!("--schedule: {}", problems.join("; "));
        }
    }
    let run_dir = run_dir_for(&config, args.run.as_deref());
    println!("run directory: {}", run_dir.root().display());
    let (pb, on_step) = warm_bar();
    let (ctx, store, report) = mgrpo_actors::prepare(config, run_dir, args.resume, on_step)?;
    pb.finish_and_clear();
    for r in &report {
        println!("warm start {r}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let no_test = args.no_test;
    let args_tensorboard = args.tensorboard.clone();
    let dashboard_addr = args.dashboard;
    let cookie = match dashboard_addr {
        Some(a) if !a.ip().is_loopback() => {
            Some(ctx.config.cluster.resolve_cookie().map_err(|e| {
                anyhow::anyhow!(
                    "--dashboard on a non-loopback address needs the cluster cookie: {e}"
                )
            })?)
        }
        _ => None,
    };
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
        ctx.faults.arm_from_env().map_err(anyhow::Error::msg)?;
        let node =
            mgrpo_actors::start_node(ctx.clone(), &store, tx, stop.clone(), Some(ev_tx)).await?;
        // Control clients (`mgrpo swap --run`, `mgrpo status --run`) reach the run here.
        let (control, _) = control_file::listen(&ctx).await?;
        let s = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nstopping after the current step (Ctrl-C again to abort)");
                s.store(true, Ordering::SeqCst);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        tokio::spawn(async move {
            while let Some(e) = ev_rx.recv().await {
                eprintln!("node: {e:?}");
            }
        });
        let mut tensorboard = match &args_tensorboard {
            Some(dir) => {
                let logger = crate::tensorboard::Logger::create(dir)?;
                println!("TensorBoard events: {}", logger.path().display());
                Some(logger)
            }
            None => None,
        };
        let dashboard = match dashboard_addr {
            Some(addr) => Some(
                crate::dashboard::serve_in_process(addr, ctx.clone(), Some(store.clone()), cookie)
                    .await?,
            ),
            None => None,
        };
        let steps = ctx.config.train.steps;
        let pb = bar(steps, "train [{bar:30}] step {pos}/{len} {msg}");
        let p = pb.clone();
        let printer = tokio::spawn(async move {
            let mut last_dev = None;
            while let Some(ev) = rx.recv().await {
                match ev {
                    Progress::Step(m) => {
                        if let Some(tb) = tensorboard.as_mut()
                            && let Some(s) = crate::tensorboard::step_scalars(&m)
                            && let Err(e) = tb.write(s)
                        {
                            tracing::warn!("TensorBoard: {e:#}");
                        }
                        p.set_position(m["step"].as_u64().unwrap_or(0) + 1);
                        p.set_message(format!(
                            "reward {:.3} acc {:.3} calls {:.2} {:.0} tok/s{}",
                            m["reward"].as_f64().unwrap_or(0.0),
                            m["accuracy"].as_f64().unwrap_or(0.0),
                            m["calls_per_rollout"].as_f64().unwrap_or(0.0),
                            m["tokens_per_s"].as_f64().unwrap_or(0.0),
                            last_dev
                                .map(|d: f64| format!(" dev {d:.3}"))
                                .unwrap_or_default()
                        ));
                    }
                    Progress::Eval { step, report } => {
                        last_dev = Some(report.accuracy);
                        if let Some(tb) = tensorboard.as_mut() {
                            let line = serde_json::json!({"split": "dev", "step": step, "report": &report});
                            if let Some(s) = crate::tensorboard::eval_scalars(&line)
                                && let Err(e) = tb.write(s)
                            {
                                tracing::warn!("TensorBoard: {e:#}");
                            }
                        }
                        let line = format!(
                            "dev accuracy after {step} steps: {:.3} ({} questions)",
                            report.accuracy, report.n
                        );
                        // A hidden bar (output not a terminal) drops println: keep the line.
                        if p.is_hidden() {
                            eprintln!("{line}");
                        } else {
                            p.println(line);
                        }
                    }
                    Progress::Finished { .. } | Progress::Failed(_) => break,
                }
            }
            tensorboard
        });
        let result = mgrpo_actors::run_steps(&node).await;
        let mut tensorboard = printer.await.ok().flatten();
        pb.finish();
        control_file::remove(ctx.run_dir.root());
        control.stop();
        node.supervisor.stop(None);
        if let Some(d) = dashboard {
            d.finish();
        }
        let done = result?;
        println!(
            "trained {done} steps; metrics in {}",
            ctx.run_dir.metrics_path().display()
        );
        if !no_test && !stop.load(Ordering::SeqCst) {
            eprintln!("evaluating the warm start, the dev-selected and the final checkpoint on the test split…");
            let summary = super::test_summary::summarise(ctx.run_dir.root()).await?;
            println!("{}", super::test_summary::format(&summary));
            if let Some(tb) = tensorboard.as_mut() {
                let value = serde_json::to_value(&summary)?;
                for (step, tag, v) in crate::tensorboard::test_scalars(&value) {
                    tb.write((step, vec![(tag, v)]))?;
                }
            }
        }
        anyhow::Ok(())
    })
}
