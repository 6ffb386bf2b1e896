//! Carrying a study out: one warm start per (seed, the models a variant warms, the settings a
//! warm start depends on), made by the first run that needs it and shared by every run that can
//! use it (a later run waits for it); the runs in plan order, `parallel` at a time, each a
//! `mgrpo train` process of its own (its log in `RUN/train.log`, its threads `cores /
//! parallel`). Resumable: a run with a `test.json` is done and not redone; one that stopped
//! part-way continues with `--resume`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mgrpo_actors::{Config, RunDir};
use mgrpo_algo::Algo;

use crate::experiment::child::Tied;
use crate::experiment::plan::{Plan, RunSpec, name_hash, set};

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

/// The `[warmup]` settings added after warm starts were first keyed, with the value each of
/// those had (`copies = 0`: the demonstrations in the world only; `keep_optimizer = false`;
/// `lora = false`, as no committed study trained adapters).
const WARMUP_SINCE: [(&str, toml::Value); 3] = [
    ("copies", toml::Value::Integer(0)),
    ("keep_optimizer", toml::Value::Boolean(false)),
    ("lora", toml::Value::Boolean(false)),
];

/// A stable key of what a warm start depends on: the world, the models, the warm-start
/// settings, the seed and the kind.
/// The models' RL learning rates (`models.ROLE.lr`) are left out: the warm start trains at
/// `warmup.lr`, so a study of RL's rates shares one warm start per seed. So are their LoRA
/// settings unless `warmup.lora = true`: without it the warm start trains every weight, and a
/// study of LoRA RL shares the full warm start.
fn warm_key(table: &toml::Table, kind: &str, seed: u64) -> String {
    let part = |k: &str| table.get(k).map(|v| v.to_string()).unwrap_or_default();
    let warm_lora = table
        .get("warmup")
        .and_then(|w| w.get("lora"))
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    let mut models = table
        .get("models")
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default()));
    if let toml::Value::Table(roles) = &mut models {
        for (_, role) in roles.iter_mut() {
            if let toml::Value::Table(settings) = role {
                settings.remove("lr");
                if !warm_lora {
                    settings.remove("lora_rank");
                    settings.remove("lora_alpha");
                }
            }
        }
    }
    // A warm-start setting added since, at the value every warm start had before it, hashes
    // as absent: those warm starts keep their keys.
    let mut warmup = table
        .get("warmup")
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default()));
    if let toml::Value::Table(settings) = &mut warmup {
        for (key, before) in WARMUP_SINCE {
            if settings.get(key) == Some(&before) {
                settings.remove(key);
            }
        }
    }
    let text = format!(
        "{kind}|{seed}|{}|{models}|{warmup}|{}",
        part("world"),
        part("task")
    );
    format!("{kind}-s{seed}-{:08x}", name_hash(&text))
}

/// Writes each run's config (`RUN/experiment.toml`) and the warm starts' (`warm/KEY/…`).
pub fn prepare(plan: &Plan, study: &Path) -> Result<Vec<Prepared>> {
    let base = plan.base_table()?;
    let mut out = Vec::new();
    for spec in plan.runs() {
        let mut t = base.clone();
        set(&mut t, "algo.variant", spec.variant.name().into())?;
        set(&mut t, "run.seed", toml::Value::Integer(spec.seed as i64))?;
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

/// One step of a run's job.
enum Step {
    /// Make the warm start in this directory (`mgrpo warmup`).
    Warm(PathBuf),
    /// Copy the run's warm start in, unless the run has checkpoints already.
    Adopt,
    /// `mgrpo train` (continuing with `--resume` if the run has committed steps).
    Train,
}

/// A run's job: its steps, in order; it may start once `needs` (a warm start another job
/// makes) is ready.
struct Job<'a> {
    run: &'a Prepared,
    steps: std::collections::VecDeque<Step>,
    needs: Option<PathBuf>,
}

/// A job whose current step is a child process.
struct Running<'a> {
    job: Job<'a>,
    /// Killed if the study stops while it runs (a failing run beside it).
    child: Tied,
    what: String,
    log: PathBuf,
    started: Instant,
    train: bool,
    /// The warm start this child makes, if it is a `mgrpo warmup`.
    making: Option<PathBuf>,
}

/// Whether every model in `dir` has its warm start (version 0).
fn warm_ready(dir: &Path) -> bool {
    let roles = std::fs::read_dir(dir.join("checkpoints"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    !roles.is_empty()
        && roles.iter().all(|r| {
            RunDir::new(dir)
                .checkpoint_path(&r.to_string_lossy(), 0)
                .is_dir()
        })
}

/// Carries out the unfinished runs, `parallel` processes at a time: each run makes its warm
/// start first if no earlier run makes it (else waits for it), copies it in, and trains.
pub fn carry_out(plan: &Plan, runs: &[Prepared]) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = (cores / plan.parallel).max(1);
    let mgrpo = std::env::current_exe().context("the mgrpo binary")?;
    // Recorded beside every finished run's wall time (docs/experiments.md: `cpu`).
    let cpu = crate::experiment::machine::cpu();
    let mut claimed: BTreeMap<PathBuf, ()> = BTreeMap::new();
    let mut queue: Vec<Job<'_>> = Vec::new();
    for r in runs.iter().filter(|r| !finished(&r.dir)) {
        let mut steps = std::collections::VecDeque::new();
        let mut needs = None;
        if steps_done(&r.dir) == 0 && RunDir::new(&r.dir).latest_checkpoint("main").is_none() {
            if !warm_ready(&r.warm) {
                if claimed.insert(r.warm.clone(), ()).is_none() {
                    steps.push_back(Step::Warm(r.warm.clone()));
                } else {
                    needs = Some(r.warm.clone());
                }
            }
            steps.push_back(Step::Adopt);
        }
        steps.push_back(Step::Train);
        queue.push(Job {
            run: r,
            steps,
            needs,
        });
    }
    let total: u64 = runs.iter().map(|r| r.steps).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("study [{bar:30}] {pos}/{len} steps {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let dirs: Vec<PathBuf> = runs.iter().map(|r| r.dir.clone()).collect();
    let mut running: Vec<Running<'_>> = Vec::new();
    loop {
        // Start what may start, in plan order.
        while running.len() < plan.parallel {
            // A warm start is ready once its maker exited and every model has its version 0.
            let ready =
                |w: &Path| warm_ready(w) && !running.iter().any(|r| r.making.as_deref() == Some(w));
            let Some(i) = queue
                .iter()
                .position(|j| j.needs.as_deref().is_none_or(ready))
            else {
                break;
            };
            let job = queue.remove(i);
            if let Some(r) = advance(&mgrpo, threads, job)? {
                running.push(r);
            }
        }
        if running.is_empty() {
            if let Some(j) = queue.first() {
                bail!(
                    "{} waits for a warm start nobody makes ({:?})",
                    name_of(&j.run.dir),
                    j.needs
                );
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut still = Vec::new();
        for mut r in running {
            match r.child.try_wait()? {
                None => still.push(r),
                Some(status) if status.success() => {
                    if r.train {
                        let wall = serde_json::json!({
                            "wall_s": r.started.elapsed().as_secs_f64(),
                            "cpu": cpu,
                        });
                        std::fs::write(r.job.run.dir.join("wall.json"), wall.to_string())?;
                    }
                    if let Some(next) = advance(&mgrpo, threads, r.job)? {
                        still.push(next);
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
        bar.set_position(dirs.iter().map(|d| steps_done(d)).sum());
        let names: Vec<&str> = running.iter().map(|r| r.what.as_str()).collect();
        bar.set_message(names.join(", "));
    }
    bar.finish();
    Ok(())
}

fn name_of(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Runs `job`'s steps up to its next child process and starts it (`None`: the job is done).
fn advance<'a>(mgrpo: &Path, threads: usize, mut job: Job<'a>) -> Result<Option<Running<'a>>> {
    let r = job.run;
    while let Some(step) = job.steps.pop_front() {
        let (what, args, log, train, making) = match step {
            Step::Adopt => {
                RunDir::new(&r.dir)
                    .adopt_warm_start(&RunDir::new(&r.warm))
                    .with_context(|| format!("copying {}'s warm start", name_of(&r.dir)))?;
                continue;
            }
            Step::Warm(w) => {
                let args = vec![
                    "warmup".to_string(),
                    "--config".into(),
                    w.join("experiment.toml").display().to_string(),
                    "--run".into(),
                    w.display().to_string(),
                ];
                let (what, log) = (format!("warm start {}", name_of(&w)), w.join("warmup.log"));
                (what, args, log, false, Some(w))
            }
            Step::Train => {
                let mut args = vec![
                    "train".to_string(),
                    "--run".into(),
                    r.dir.display().to_string(),
                ];
                if steps_done(&r.dir) > 0 {
                    args.push("--resume".into());
                } else {
                    args.extend([
                        "--config".into(),
                        r.dir.join("experiment.toml").display().to_string(),
                    ]);
                }
                (name_of(&r.dir), args, r.dir.join("train.log"), true, None)
            }
        };
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Tied::spawn(
            Command::new(mgrpo)
                .args(&args)
                .env("RAYON_NUM_THREADS", threads.to_string())
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file),
        )
        .with_context(|| format!("starting {what}"))?;
        tracing::info!(%what, "started");
        return Ok(Some(Running {
            job,
            child,
            what,
            log,
            started: Instant::now(),
            train,
            making,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_warm_key_ignores_rl_rates_but_not_warm_start_settings() {
        let base = table("[models.main]\npreset = \"small\"\nlr = 1e-4\n[warmup]\nsteps = 300\n");
        let rl_rate =
            table("[models.main]\npreset = \"small\"\nlr = 3e-4\n[warmup]\nsteps = 300\n");
        let preset = table("[models.main]\npreset = \"tiny\"\nlr = 1e-4\n[warmup]\nsteps = 300\n");
        let steps = table("[models.main]\npreset = \"small\"\nlr = 1e-4\n[warmup]\nsteps = 600\n");
        let key = |t: &toml::Table| warm_key(t, "main-sub", 1);
        assert_eq!(key(&base), key(&rl_rate));
        assert_ne!(key(&base), key(&preset));
        assert_ne!(key(&base), key(&steps));
        assert_ne!(key(&base), warm_key(&base, "main-sub", 2));
        assert_ne!(key(&base), warm_key(&base, "shared", 1));
        // A setting added since keys as absent at the value warm starts had before it.
        let with = |copies: u32| {
            table(&format!(
                "[models.main]\npreset = \"small\"\n[warmup]\nsteps = 300\ncopies = {copies}\n"
            ))
        };
        assert_eq!(key(&base), key(&with(0)));
        assert_ne!(key(&base), key(&with(8)));
        let keep = |kept: bool| {
            table(&format!(
                "[models.main]\npreset = \"small\"\n[warmup]\nsteps = 300\nkeep_optimizer = {kept}\n"
            ))
        };
        assert_eq!(key(&base), key(&keep(false)));
        assert_ne!(key(&base), key(&keep(true)));
        // LoRA is RL's unless the warm start trains adapters too.
        let lora = |rank: u32, warm: bool| {
            table(&format!(
                "[models.main]\npreset = \"small\"\nlora_rank = {rank}\nlora_alpha = 8.0\n\
                 [warmup]\nsteps = 300\nlora = {warm}\n"
            ))
        };
        assert_eq!(key(&base), key(&lora(4, false)));
        assert_ne!(key(&base), key(&lora(4, true)));
        assert_ne!(key(&lora(4, true)), key(&lora(8, true)));
    }

    /// The warm-start directory names of `plan`'s runs, by seed, prepared in a scratch study.
    fn warm_names(plan: &Path) -> BTreeMap<u64, Vec<String>> {
        let study = tempfile::tempdir().unwrap();
        let plan = Plan::load(plan).unwrap();
        let prepared =
            prepare(&plan, study.path()).unwrap_or_else(|e| panic!("{}: {e:#}", plan.name));
        let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for p in prepared {
            let name = p.warm.file_name().unwrap().to_string_lossy().into_owned();
            out.entry(p.spec.seed).or_default().push(name);
        }
        out
    }

    /// Every study under docs/experiments still runs with this binary's config (each override
    /// names a real key, every run's config is valid), and the RL-only studies that say they
    /// reuse the digits study's (or one another's) warm starts have its warm-start keys.
    #[test]
    fn the_committed_study_plans_prepare_and_the_rl_only_ones_share_digits_warm_starts() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/experiments");
        // Each study's warm-start names, by the study's directory name.
        let mut studies = BTreeMap::new();
        for entry in std::fs::read_dir(&root).unwrap() {
            let dir = entry.unwrap().path();
            let plan = dir.join("plan.toml");
            if plan.exists() {
                let name = dir.file_name().unwrap().to_string_lossy().into_owned();
                studies.insert(name, warm_names(&plan));
            }
        }
        assert!(studies.len() >= 8, "{:?}", studies.keys());
        // (study, the study whose warm starts it says it reuses)
        for (study, source) in [
            ("token-level", "digits"),
            ("epochs-2", "digits"),
            ("temperature-1", "digits"),
            ("temperature-0.5", "digits"),
            ("sub-weights", "digits"),
            ("no-format-reward", "digits"),
            ("unknown-credit", "digits"),
            ("rl-600", "digits"),
            ("rl-600-tool", "compare-tool"),
            ("rl-600-tool-seeds-4-5", "compare-tool-seeds-4-5"),
            ("sub-lr-3e-4", "compare-tool"),
            ("names-64", "digit-pairs"),
            ("lr-pairs", "digit-pairs"),
            ("large-world-short-warm-lr-1e-4", "large-world-short-warm"),
            (
                "large-world-short-warm-token-level",
                "large-world-short-warm",
            ),
            ("warm-copies-short-world", "warm-copies-short"),
            ("warm-copies-short-k16", "warm-copies-short"),
            ("warm-copies-short-b8", "warm-copies-short"),
            ("positive-only-short", "warm-copies-short"),
            ("positive-only-rates", "warm-copies-short"),
            ("rft-short", "warm-copies-short"),
            ("kl-anchor-short", "warm-copies-short"),
            ("kl-anchor-short-seeds", "warm-copies-short"),
            ("main-rate-short", "warm-copies-short"),
            ("lora-short", "warm-copies-short"),
            ("rl-settings", "warm-copies"),
            ("rl-world", "warm-copies"),
            // Its recipe copies shared's version 0 into the warm starts mgrpo's would be.
            ("shared-start", "few-demos-baselines"),
        ] {
            for (seed, names) in &studies[study] {
                let main_sub = studies[source][seed]
                    .iter()
                    .find(|n| n.starts_with("main-sub-"))
                    .unwrap();
                assert!(
                    names.iter().all(|n| n == main_sub),
                    "{study} seed {seed}: {names:?}, {source}'s {main_sub}"
                );
            }
        }
        // The studies from before `warmup.copies` pin it at 0 and keep the keys their warm
        // starts were made under (the 600-step defaults' seed 1, made for digit-pairs).
        assert!(studies["rl-600-pairs"][&1].contains(&"main-sub-s1-d3f5c4f7".to_string()));
        assert!(studies["rl-600-pairs"][&1].contains(&"single-s1-159529a3".to_string()));
        // The baselines of the warm start in copies: frozen-sub's from the mgrpo study's (on
        // the Intel's seeds 1–3, and on the AMD's 4–6); and those of half the warm start's batch.
        // (sorted, each once: two runs of a study may share a warm start)
        let main_sub = |names: &Vec<String>| -> Vec<String> {
            let mut found: Vec<String> = names
                .iter()
                .filter(|n| n.starts_with("main-sub-"))
                .cloned()
                .collect();
            found.sort();
            found.dedup();
            found
        };
        for (study, source) in [
            ("warm-copies-baselines", "warm-copies"),
            ("warm-copies-amd-baselines", "warm-copies-single"),
            ("half-batch-baselines", "fast-probe"),
        ] {
            for (seed, names) in &studies[study] {
                let made = main_sub(&studies[source][seed]);
                assert!(
                    !made.is_empty() && main_sub(names) == made,
                    "{study} seed {seed}"
                );
            }
        }
        // Studies that take every warm start, each variant's, from other studies: the
        // defaults study of RL at 1e-4 from the digits study (RL's rate is no part of a warm
        // start's key), the 600- and 1000-step studies and the two-epoch ones from the
        // digit-pairs ones (nor are train.steps and algo.epochs).
        let pairs = &["digit-pairs", "baselines-digit-pairs"][..];
        for (study, sources) in [
            ("lr-1e-4", &["digits"][..]),
            ("rl-600-pairs", pairs),
            ("rl-1000-pairs", pairs),
            ("epochs-2-pairs", pairs),
            ("epochs-2-1000", &["digit-pairs"][..]),
        ] {
            for (seed, names) in &studies[study] {
                let made: Vec<&String> = sources.iter().flat_map(|s| &studies[*s][seed]).collect();
                assert!(
                    names.iter().all(|n| made.contains(&n)),
                    "{study}: {names:?}"
                );
            }
        }
        // defaults-amd is few-demos-baselines on another CPU kind: the same warm starts' keys.
        for (seed, names) in &studies["defaults-amd"] {
            let made = &studies["few-demos-baselines"][seed];
            assert!(
                names.iter().all(|n| made.contains(n)),
                "defaults-amd seed {seed}: {names:?}, few-demos-baselines' {made:?}"
            );
        }
        // shared-start's recipe copies few-demos-baselines' shared warm start of each seed
        // into the directory of that seed's mgrpo warm start: `"SEED MGRPO-KEY SHARED-KEY"`.
        let recipe = std::fs::read_to_string(root.join("shared-start/plan.toml")).unwrap();
        for (seed, names) in &studies["few-demos-baselines"] {
            let key = |kind: &str| {
                let name = names.iter().find(|n| n.starts_with(kind)).unwrap();
                name.rsplit('-').next().unwrap().to_string()
            };
            let line = format!("\"{seed} {} {}\"", key("main-sub-"), key("shared-"));
            assert!(recipe.contains(&line), "shared-start's recipe lacks {line}");
        }
        // The defaults study of 1,000 demonstrations takes seed 1's warm start (mgrpo's and
        // frozen-sub's; and the mgrpo run) from its probe, whose other is the 500 episodes'.
        let probe = main_sub(&studies["few-demos"][&1]);
        let made = main_sub(&studies["few-demos-baselines"][&1]);
        assert!(
            probe.len() == 2 && !made.is_empty() && made.iter().all(|n| probe.contains(n)),
            "{probe:?} {made:?}"
        );
    }
}
