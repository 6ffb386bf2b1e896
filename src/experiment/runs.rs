//! Carrying a study out: one warm start per (seed, the models a variant warms, the settings a
//! warm start depends on), shared by every run that can use it; then the runs, `parallel` at a
//! time, each a `mgrpo train` process of its own (its log in `RUN/train.log`, its threads
//! `cores / parallel`). Resumable: a run with a `test.json` is done and not redone; one that
//! stopped part-way continues with `--resume`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mgrpo_actors::{Config, RunDir};
use mgrpo_algo::{Algo, derive_seed};

use crate::experiment::plan::{Plan, RunSpec, set};

/// A run, laid out: its directory and config.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What it runs.
    pub spec: RunSpec,
    /// `STUDY/runs/NAME`.
    pub dir: PathBuf,
    /// Its warm start's directory, `STUDY/warm/KEY`.
    pub warm: PathBuf,
    /// Steps it trains.
    pub steps: u64,
}

/// Which models a variant warms: runs of one kind (and one seed and warm-start settings)
/// share a warm start.
fn warm_kind(variant: Algo) -> &'static str {
    if variant.shares_model() {
        "shared"
    } else if !variant.uses_sub_agents() {
        "single"
    } else {
        "main-sub"
    }
}

/// A stable key of what a warm start depends on: the world, the models, the warm-start
/// settings, the seed and the kind.
fn warm_key(table: &toml::Table, kind: &str, seed: u64) -> String {
    let part = |k: &str| table.get(k).map(|v| v.to_string()).unwrap_or_default();
    let text = format!(
        "{kind}|{seed}|{}|{}|{}",
        part("world"),
        part("models"),
        part("warmup")
    );
    let hash = text
        .bytes()
        .fold(0u64, |h, b| derive_seed(h, &[u64::from(b)]));
    format!("{kind}-s{seed}-{:08x}", hash as u32)
}

/// Writes each run's config (`RUN/experiment.toml`) and the warm starts' (`warm/KEY/…`).
pub fn prepare(plan: &Plan, study: &Path) -> Result<Vec<Prepared>> {
    let base = Config::load(&plan.config)?;
    let base: toml::Table = toml::from_str(&base.to_toml()).context("the config as TOML")?;
    let mut out = Vec::new();
    for spec in plan.runs() {
        let mut t = base.clone();
        set(&mut t, "algo.variant", spec.variant.name().into())?;
        set(&mut t, "run.seed", toml::Value::Integer(spec.seed as i64))?;
        if let Some(steps) = plan.steps {
            set(&mut t, "train.steps", toml::Value::Integer(steps as i64))?;
        }
        for (k, v) in &spec.overrides {
            set(&mut t, k, v.clone())?;
        }
        let text = toml::to_string(&t)?;
        let dir = study.join("runs").join(spec.dir_name());
        let config = Config::parse(&text, &dir.join("experiment.toml"))
            .with_context(|| format!("the config of run {}", spec.dir_name()))?;
        let warm = study
            .join("warm")
            .join(warm_key(&t, warm_kind(spec.variant), spec.seed));
        for d in [&dir, &warm] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            let path = d.join("experiment.toml");
            if !path.exists() {
                std::fs::write(&path, &text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        out.push(Prepared {
            spec,
            dir,
            warm,
            steps: config.train.steps,
        });
    }
    Ok(out)
}

/// Whether run `dir` finished: trained, and its checkpoints evaluated (`test.json`).
pub fn finished(dir: &Path) -> bool {
    dir.join("test.json").exists()
}

/// Steps a run has committed so far (its `metrics.jsonl` lines).
fn steps_done(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|t| t.lines().count() as u64)
        .unwrap_or(0)
}

/// A started child, its log and what it is.
struct Running {
    child: Child,
    what: String,
    log: PathBuf,
    started: Instant,
    dir: PathBuf,
}

/// Runs the warm starts, then the runs, `parallel` processes at a time.
pub fn carry_out(plan: &Plan, runs: &[Prepared]) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = (cores / plan.parallel).max(1);
    let mgrpo = std::env::current_exe().context("the mgrpo binary")?;
    let mut warms: BTreeMap<PathBuf, ()> = BTreeMap::new();
    for r in runs.iter().filter(|r| !finished(&r.dir)) {
        if RunDir::new(&r.warm).latest_checkpoint("main").is_none() {
            warms.insert(r.warm.clone(), ());
        }
    }
    let warm_jobs: Vec<(String, Vec<String>, PathBuf)> = warms
        .into_keys()
        .map(|w| {
            let args = vec![
                "warmup".into(),
                "--config".into(),
                w.join("experiment.toml").display().to_string(),
                "--run".into(),
                w.display().to_string(),
            ];
            (format!("warm start {}", name_of(&w)), args, w)
        })
        .collect();
    run_pool(&mgrpo, threads, plan.parallel, warm_jobs, None)?;

    let todo: Vec<&Prepared> = runs.iter().filter(|r| !finished(&r.dir)).collect();
    let total: u64 = runs.iter().map(|r| r.steps).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("study [{bar:30}] {pos}/{len} steps {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut jobs = Vec::new();
    for r in &todo {
        let store_has_steps = steps_done(&r.dir) > 0;
        if !store_has_steps && RunDir::new(&r.dir).latest_checkpoint("main").is_none() {
            RunDir::new(&r.dir)
                .adopt_warm_start(&RunDir::new(&r.warm))
                .with_context(|| format!("copying {}'s warm start", name_of(&r.dir)))?;
        }
        let mut args = vec![
            "train".to_string(),
            "--run".into(),
            r.dir.display().to_string(),
        ];
        if store_has_steps {
            args.push("--resume".into());
        } else {
            args.extend([
                "--config".into(),
                r.dir.join("experiment.toml").display().to_string(),
            ]);
        }
        jobs.push((name_of(&r.dir), args, r.dir.clone()));
    }
    let progress = (
        bar.clone(),
        runs.iter().map(|r| r.dir.clone()).collect::<Vec<_>>(),
    );
    run_pool(&mgrpo, threads, plan.parallel, jobs, Some(&progress))?;
    bar.finish();
    Ok(())
}

fn name_of(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Runs `jobs` (`(what, mgrpo arguments, directory)`) `parallel` at a time; each job's output
/// goes to `DIR/train.log` (or `warmup.log`), its wall time to `DIR/wall.json`. Fails with
/// the log's tail when a job fails.
fn run_pool(
    mgrpo: &Path,
    threads: usize,
    parallel: usize,
    jobs: Vec<(String, Vec<String>, PathBuf)>,
    progress: Option<&(ProgressBar, Vec<PathBuf>)>,
) -> Result<()> {
    let mut queue = jobs.into_iter();
    let mut running: Vec<Running> = Vec::new();
    loop {
        while running.len() < parallel {
            let Some((what, args, dir)) = queue.next() else {
                break;
            };
            let log = dir.join(if args[0] == "warmup" {
                "warmup.log"
            } else {
                "train.log"
            });
            let file = std::fs::File::create(&log)
                .with_context(|| format!("creating {}", log.display()))?;
            let child = Command::new(mgrpo)
                .args(&args)
                .env("RAYON_NUM_THREADS", threads.to_string())
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file)
                .spawn()
                .with_context(|| format!("starting {what}"))?;
            tracing::info!(%what, "started");
            running.push(Running {
                child,
                what,
                log,
                started: Instant::now(),
                dir,
            });
        }
        if running.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut still = Vec::new();
        for mut r in running {
            match r.child.try_wait()? {
                None => still.push(r),
                Some(status) if status.success() => {
                    let wall = serde_json::json!({ "wall_s": r.started.elapsed().as_secs_f64() });
                    if !r.what.starts_with("warm start") {
                        std::fs::write(r.dir.join("wall.json"), wall.to_string())?;
                    }
                }
                Some(status) => {
                    let text = std::fs::read_to_string(&r.log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(12).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    bail!(
                        "{} failed ({status}); {}:\n{}\n(rerun the study to resume)",
                        r.what,
                        r.log.display(),
                        tail.join("\n")
                    );
                }
            }
        }
        running = still;
        if let Some((bar, dirs)) = progress {
            bar.set_position(dirs.iter().map(|d| steps_done(d)).sum());
            let names: Vec<&str> = running.iter().map(|r| r.what.as_str()).collect();
            bar.set_message(names.join(", "));
        }
    }
}
