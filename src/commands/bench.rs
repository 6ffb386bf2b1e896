//! `mgrpo bench models [--compare-torch]`: our model figures, and optionally eager PyTorch's on
//! the same shapes and thread count in the same run (`bench/torch_reference.py`), joined on
//! (preset, measure, batch) with the ratios. Speed is compared in one run on one machine, never
//! against figures from elsewhere.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use mgrpo_models::bench::{BenchOptions, BenchRow, format_table, run_bench};
use mgrpo_models::reference_case::{CaseNumbers, compare, write_reference_case};
use serde::Serialize;

use crate::cli::{BenchCommand, BenchSchedule, ConfigArg, ScheduleArg, TrainArgs};

/// One row of both sides: time ratio (ours / torch; below 1 is faster) for updates, throughput
/// ratio (ours / torch; above 1 is faster) for sampling.
#[derive(Debug, Clone, Serialize)]
struct Ratio {
    preset: String,
    measure: String,
    batch: usize,
    ours_ms: f64,
    torch_ms: f64,
    /// ours / torch wall time.
    time_ratio: f64,
    /// ours / torch tokens per second (sampling rows).
    throughput_ratio: Option<f64>,
}

/// Runs `mgrpo bench models`.
pub fn models(command: &BenchCommand) -> Result<()> {
    let BenchCommand::Models {
        presets,
        backend,
        device,
        compare_torch,
        python,
        threads,
        repeats,
        json,
        only,
        batch_sizes,
        cache_only,
        rounds,
        parity,
        ..
    } = command
    else {
        bail!("not a `bench models` command");
    };
    let (sampling, updates) = match only.as_deref() {
        None => (true, true),
        Some("sampling") => (true, false),
        Some("updates") => (false, true),
        Some(other) => bail!("--only takes sampling or updates, got {other:?}"),
    };
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    // flex parallelises through rayon's global pool; size it like torch's intra-op pool.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("sizing the rayon pool")?;
    let options = BenchOptions {
        presets: presets.clone(),
        device: mgrpo_models::DeviceSpec::parse(backend, device)?,
        repeats: *repeats,
        sampling,
        updates,
        batch_sizes: batch_sizes.clone(),
        no_cache: !cache_only,
        ..BenchOptions::default()
    };
    if *parity {
        let python = python.clone().unwrap_or_else(default_python);
        return check_parity(&python, &options, *json);
    }
    eprintln!(
        "measuring {presets:?} on {backend}/{device}, {threads} threads (medians of {repeats}; takes a minute)"
    );
    let ours = run_bench(&options)?;
    if !compare_torch {
        if *json {
            println!("{}", serde_json::json!({ "ours": ours }));
        } else {
            print!("{}", format_table(&ours));
        }
        return Ok(());
    }
    let python = python.clone().unwrap_or_else(default_python);
    eprintln!("measuring eager PyTorch with {}", python.display());
    let torch = torch_rows(&python, &options, threads)?;
    let ratios = join(&ours, &torch);
    if *rounds > 1 {
        let mut all = vec![ratios];
        for round in 2..=*rounds {
            eprintln!("round {round} of {rounds}");
            let ours = run_bench(&options)?;
            let torch = torch_rows(&python, &options, threads)?;
            all.push(join(&ours, &torch));
        }
        let summary = summarise(&all);
        if *json {
            println!(
                "{}",
                serde_json::json!({ "threads": threads, "rounds": all, "summary": summary })
            );
        } else {
            print!("{}", format_summary(&summary, threads));
        }
        return Ok(());
    }
    if *json {
        println!(
            "{}",
            serde_json::json!({ "threads": threads, "ours": ours, "torch": torch, "ratios": ratios })
        );
        return Ok(());
    }
    print!("{}", format_table(&ours));
    println!();
    print!("{}", format_table(&torch));
    println!();
    println!(
        "{:<7} {:<15} {:>5} {:>10} {:>10} {:>11} {:>11}",
        "preset", "measure", "batch", "ours ms", "torch ms", "time ×", "tok/s ×"
    );
    for r in &ratios {
        println!(
            "{:<7} {:<15} {:>5} {:>10.2} {:>10.2} {:>11.2} {:>11}",
            r.preset,
            r.measure,
            r.batch,
            r.ours_ms,
            r.torch_ms,
            r.time_ratio,
            r.throughput_ratio
                .map_or_else(|| "-".to_string(), |x| format!("{x:.2}"))
        );
    }
    println!(
        "time × = ours / torch (below 1: faster); tok/s × = ours / torch (above 1: faster); {threads} threads each"
    );
    Ok(())
}

/// `$MGRPO_TORCH_PYTHON`, else the venv `bench/tch-env.sh` makes (`./.venv-torch`), else the
/// one `.ci/run` installs torch into, else `python3`.
fn default_python() -> PathBuf {
    if let Some(p) = std::env::var_os("MGRPO_TORCH_PYTHON") {
        return PathBuf::from(p);
    }
    let local = Path::new(".venv-torch/bin/python");
    if local.is_file() {
        return local.to_path_buf();
    }
    if let Some(home) = std::env::var_os("HOME") {
        let venv = Path::new(&home).join(".cache/mgrpo/venv-torch/bin/python");
        if venv.is_file() {
            return venv;
        }
    }
    PathBuf::from("python3")
}

/// Runs the reference script with our shapes and parses its table.
/// The largest difference `--parity` accepts between our numbers and torch's.
const PARITY_TOLERANCE: f64 = 1e-4;

/// `bench models --parity`: each preset's reference case through `torch_reference.py`.
fn check_parity(python: &Path, options: &BenchOptions, json: bool) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/torch_reference.py");
    let mut failed = Vec::new();
    let mut report = Vec::new();
    for preset in &options.presets {
        let dir = tempfile::tempdir().context("a scratch directory")?;
        let case = write_reference_case(preset, options, dir.path())?;
        let mut cmd = Command::new(python);
        cmd.arg(&script).arg("--parity").arg(dir.path());
        let stdout = torch_reference(cmd, python)?;
        let line = stdout.lines().last().unwrap_or_default();
        let theirs: CaseNumbers = serde_json::from_str(line)
            .with_context(|| format!("{} --parity printed {line:?}", script.display()))?;
        for (what, ours, torch, diff) in compare(&case.ours, &theirs) {
            let ok = diff <= PARITY_TOLERANCE;
            if !ok {
                failed.push(format!("{preset} {what}: |Δ| = {diff:.2e}"));
            }
            if !json {
                let values = if what.starts_with("log-probs") {
                    format!("{:>37}", "")
                } else {
                    format!("ours {ours:>12.6} torch {torch:>12.6}")
                };
                println!(
                    "{preset:<6} {what:<34} {values} |Δ| {diff:.2e} {}",
                    if ok { "ok" } else { "FAIL" }
                );
            }
            report.push(serde_json::json!({
                "preset": preset, "what": what, "ours": ours, "torch": torch, "diff": diff, "ok": ok
            }));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "tolerance": PARITY_TOLERANCE, "checks": report })
        );
    }
    if !failed.is_empty() {
        bail!(
            "torch_reference.py's model differs from ours beyond {PARITY_TOLERANCE}: {}",
            failed.join("; ")
        );
    }
    Ok(())
}

fn torch_rows(python: &Path, options: &BenchOptions, threads: usize) -> Result<Vec<BenchRow>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/torch_reference.py");
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .args(["--threads", &threads.to_string()])
        .args(["--presets", &options.presets.join(",")])
        .args(["--vocab", &options.vocab_size.to_string()])
        .args(["--batch-sizes", &list(&options.batch_sizes)])
        .args(["--prompt-len", &options.prompt_len.to_string()])
        .args(["--new-tokens", &options.new_tokens.to_string()])
        .args(["--train-rows", &options.train_rows.to_string()])
        .args(["--train-seq-len", &options.train_seq_len.to_string()])
        .args(["--repeats", &options.repeats.to_string()]);
    if !options.no_cache {
        cmd.arg("--no-nocache");
    }
    if !options.sampling {
        cmd.args(["--batch-sizes", ""]);
    }
    if !options.updates {
        cmd.arg("--no-updates");
    }
    parse_table(&torch_reference(cmd, python)?)
}

/// Runs `cmd` (`python bench/torch_reference.py …`); its stdout, or an error with its stderr.
fn torch_reference(mut cmd: Command, python: &Path) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("running {what} ({})", python.display()))?;
    if !out.status.success() {
        bail!(
            "{what} failed (is torch installed there? --python / MGRPO_TORCH_PYTHON): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses a table printed by `format_table` (or the reference script).
fn parse_table(text: &str) -> Result<Vec<BenchRow>> {
    text.lines()
        .skip_while(|l| !l.starts_with("preset"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 7 {
                bail!("unexpected line from the reference: {line:?}");
            }
            let ms: f64 = f[5].parse().with_context(|| format!("ms in {line:?}"))?;
            Ok(BenchRow {
                preset: f[0].into(),
                params: f[1]
                    .parse()
                    .with_context(|| format!("params in {line:?}"))?,
                device: f[2].into(),
                measure: f[3].into(),
                batch: f[4].parse().with_context(|| format!("batch in {line:?}"))?,
                ms,
                tokens_per_s: f[6].parse().ok(),
            })
        })
        .collect()
}

/// Our rows joined with the reference's on (preset, measure, batch).
fn join(ours: &[BenchRow], torch: &[BenchRow]) -> Vec<Ratio> {
    ours.iter()
        .filter_map(|o| {
            let t = torch
                .iter()
                .find(|t| (&t.preset, &t.measure, t.batch) == (&o.preset, &o.measure, o.batch))?;
            Some(Ratio {
                preset: o.preset.clone(),
                measure: o.measure.clone(),
                batch: o.batch,
                ours_ms: o.ms,
                torch_ms: t.ms,
                time_ratio: o.ms / t.ms,
                throughput_ratio: o.tokens_per_s.zip(t.tokens_per_s).map(|(a, b)| a / b),
            })
        })
        .collect()
}

/// One figure's ratio over several rounds of both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Summary {
    preset: String,
    measure: String,
    batch: usize,
    /// Ours / torch wall time (sampling: the inverse of the throughput ratio), each round.
    time_ratios: Vec<f64>,
    /// Median of `time_ratios`.
    median: f64,
    /// Rounds where ours was at least as fast as torch (time ratio ≤ 1).
    at_parity: usize,
    /// Median of our and of torch's milliseconds.
    ours_ms: f64,
    torch_ms: f64,
}

/// Each figure's time ratios over the rounds (figures missing from a round are skipped there).
fn summarise(rounds: &[Vec<Ratio>]) -> Vec<Summary> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|r| {
            let key = (&r.preset, &r.measure, r.batch);
            let same: Vec<&Ratio> = rounds
                .iter()
                .filter_map(|round| {
                    round
                        .iter()
                        .find(|x| (&x.preset, &x.measure, x.batch) == key)
                })
                .collect();
            let pick =
                |f: fn(&Ratio) -> f64| median(&same.iter().map(|x| f(x)).collect::<Vec<_>>());
            let time_ratios: Vec<f64> = same.iter().map(|x| x.time_ratio).collect();
            Summary {
                preset: r.preset.clone(),
                measure: r.measure.clone(),
                batch: r.batch,
                median: median(&time_ratios),
                at_parity: time_ratios.iter().filter(|&&x| x <= 1.0).count(),
                time_ratios,
                ours_ms: pick(|x| x.ours_ms),
                torch_ms: pick(|x| x.torch_ms),
            }
        })
        .collect()
}

/// The rounds' summary as a table.
fn format_summary(summary: &[Summary], threads: usize) -> String {
    let mut out = format!(
        "{:<7} {:<15} {:>5} {:>10} {:>10} {:>8} {:>15} {:>9}  per round\n",
        "preset", "measure", "batch", "ours ms", "torch ms", "time ×", "range", "≤ 1.0×"
    );
    for s in summary {
        let lo = s.time_ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = s
            .time_ratios
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let each: Vec<String> = s.time_ratios.iter().map(|x| format!("{x:.2}")).collect();
        out.push_str(&format!(
            "{:<7} {:<15} {:>5} {:>10.2} {:>10.2} {:>8.2} {:>15} {:>9}  {}\n",
            s.preset,
            s.measure,
            s.batch,
            s.ours_ms,
            s.torch_ms,
            s.median,
            format!("{lo:.2}–{hi:.2}"),
            format!("{}/{}", s.at_parity, s.time_ratios.len()),
            each.join(" "),
        ));
    }
    out.push_str(&format!(
        "time × = ours / torch wall time, median over rounds (below 1: faster; for sampling the \
         inverse of the tokens/s ratio); ms = medians; rounds alternate ours and torch; {threads} \
         threads each\n"
    ));
    out
}

/// Runs `mgrpo bench train`: `mgrpo train` for `steps` steps under each schedule asked for,
/// timed, then the phases of its steps from `metrics.jsonl`. With both schedules the
/// asynchronous run starts from the synchronous run's warm start (copied), so the two differ
/// only in the schedule, and the ratio of their step times is printed.
pub fn train(
    config: &Path,
    steps: u64,
    run: Option<PathBuf>,
    schedule: BenchSchedule,
    json: bool,
) -> Result<()> {
    let loaded = super::load_config(config)?;
    let root = run.unwrap_or_else(|| {
        mgrpo_actors::RunDir::fresh_under(&loaded.run.root, "bench-train")
            .root()
            .to_path_buf()
    });
    let runs: Vec<(ScheduleArg, PathBuf)> = match schedule {
        BenchSchedule::Sync => vec![(ScheduleArg::Sync, root.clone())],
        BenchSchedule::Async => vec![(ScheduleArg::Async, root.clone())],
        BenchSchedule::Both => vec![
            (ScheduleArg::Sync, root.join("sync")),
            (ScheduleArg::Async, root.join("async")),
        ],
    };
    let mut timed = Vec::new();
    for (i, (schedule, run)) in runs.iter().enumerate() {
        if i > 0 {
            mgrpo_actors::RunDir::new(run)
                .adopt_warm_start(&mgrpo_actors::RunDir::new(&runs[0].1))
                .with_context(|| format!("copying the warm start of {}", runs[0].1.display()))?;
        }
        timed.push(time_run(config, steps, run, *schedule)?);
    }
    if json {
        let mut out = serde_json::json!({});
        for t in &timed {
            out[t.schedule_name()] = t.json();
        }
        // One schedule: its report at the top level too.
        if let [t] = timed.as_slice() {
            out = t.json();
        }
        if let [a, b] = timed.as_slice() {
            out["async_speedup"] = (a.steps_s / b.steps_s).into();
        }
        println!("{out}");
        return Ok(());
    }
    for t in &timed {
        t.print();
    }
    if let [a, b] = timed.as_slice() {
        println!(
            "async vs sync, time in steps: {:.1} s vs {:.1} s ({:.2}× faster), mean step {:.3} s vs {:.3} s",
            b.steps_s,
            a.steps_s,
            a.steps_s / b.steps_s,
            b.steps_s / b.steps as f64,
            a.steps_s / a.steps as f64,
        );
    }
    Ok(())
}

/// One timed run.
struct Timed {
    schedule: ScheduleArg,
    run: PathBuf,
    steps: usize,
    total_s: f64,
    steps_s: f64,
    phases: Vec<(String, Vec<f64>)>,
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[mid],
        _ => (v[mid - 1] + v[mid]) / 2.0,
    }
}

impl Timed {
    fn schedule_name(&self) -> &'static str {
        match self.schedule {
            ScheduleArg::Sync => "sync",
            ScheduleArg::Async => "async",
        }
    }

    fn json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .phases
            .iter()
            .map(|(name, v)| serde_json::json!({"phase": name.trim(), "median_s": median(v), "total_s": v.iter().sum::<f64>()}))
            .collect();
        serde_json::json!({"schedule": self.schedule_name(), "run": self.run, "steps": self.steps, "total_s": self.total_s, "steps_s": self.steps_s, "phases": rows})
    }

    fn print(&self) {
        println!(
            "{}: {} steps in {:.1} s; warm start and setup {:.1} s; total {:.1} s ({})",
            self.schedule_name(),
            self.steps,
            self.steps_s,
            self.total_s - self.steps_s,
            self.total_s,
            self.run.display()
        );
        println!("{:<24} {:>10} {:>10}", "phase", "median s", "total s");
        for (name, v) in &self.phases {
            println!(
                "{:<24} {:>10.3} {:>10.1}",
                name,
                median(v),
                v.iter().sum::<f64>()
            );
        }
    }
}

fn time_run(config: &Path, steps: u64, run: &Path, schedule: ScheduleArg) -> Result<Timed> {
    let t0 = std::time::Instant::now();
    super::train::train(&TrainArgs {
        config: ConfigArg {
            config: config.to_path_buf(),
        },
        set: Default::default(),
        run: Some(run.to_path_buf()),
        steps: Some(steps),
        algo: None,
        seed: None,
        schedule: Some(schedule),
        resume: false,
        no_test: true,
        tensorboard: None,
        dashboard: None,
    })?;
    let total_s = t0.elapsed().as_secs_f64();
    let path = run.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if lines.is_empty() {
        bail!("{} has no steps", path.display());
    }
    let series = |key: &str| -> Vec<f64> { lines.iter().filter_map(|l| l[key].as_f64()).collect() };
    let steps_s: f64 = series("step_time_s").iter().sum();
    // A step's rollouts run during the step before (beside its updates under the
    // asynchronous schedule, beside its saves under the synchronous one): "step" is the wall
    // time from one commit to the next, the phases below it overlap.
    let mut phases: Vec<(String, Vec<f64>)> = vec![
        ("step".into(), series("step_time_s")),
        ("rollout".into(), series("rollout_time_s")),
        ("train (all learners)".into(), series("train_time_s")),
    ];
    for role in ["main", "sub"] {
        for (what, key) in [
            ("update", "update_time_s"),
            ("publish", "publish_time_s"),
            ("save", "save_time_s"),
        ] {
            let values = series(&format!("{role}_{key}"));
            if !values.is_empty() {
                phases.push((format!("  {role} {what}"), values));
            }
        }
    }
    Ok(Timed {
        schedule,
        run: run.to_path_buf(),
        steps: lines.len(),
        total_s,
        steps_s,
        phases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own table parses back to the same rows, and joining two tables gives the ratios.
    #[test]
    fn tables_parse_back_and_join_into_ratios() {
        let row = |measure: &str, ms: f64, tps: Option<f64>| BenchRow {
            preset: "small".into(),
            params: 1_420_000,
            device: "flex:cpu".into(),
            measure: measure.into(),
            batch: 8,
            ms,
            tokens_per_s: tps,
        };
        let ours = vec![
            row("sample_cache", 50.0, Some(5120.0)),
            row("sft_step", 200.0, None),
        ];
        let parsed = parse_table(&format!("noise\n{}", format_table(&ours))).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].measure, "sft_step");
        assert_eq!(parsed[1].tokens_per_s, None);
        assert_eq!(parsed[0].tokens_per_s, Some(5120.0));
        let torch = vec![
            row("sample_cache", 100.0, Some(2560.0)),
            row("sft_step", 100.0, None),
        ];
        let ratios = join(&parsed, &torch);
        assert_eq!(ratios[0].throughput_ratio, Some(2.0));
        assert_eq!(ratios[1].time_ratio, 2.0);
        assert!(parse_table("preset x\nsmall 1 2").is_err());
    }

    /// Rounds summarise into each figure's median ratio and the rounds at parity; a figure
    /// missing from a round is skipped there.
    #[test]
    fn rounds_summarise_into_medians() {
        let ratio = |measure: &str, ours: f64, torch: f64| Ratio {
            preset: "small".into(),
            measure: measure.into(),
            batch: 16,
            ours_ms: ours,
            torch_ms: torch,
            time_ratio: ours / torch,
            throughput_ratio: None,
        };
        let rounds = vec![
            vec![
                ratio("sft_step", 90.0, 100.0),
                ratio("surrogate_step", 120.0, 100.0),
            ],
            vec![ratio("sft_step", 110.0, 100.0)],
            vec![
                ratio("sft_step", 80.0, 100.0),
                ratio("surrogate_step", 60.0, 100.0),
            ],
        ];
        let summary = summarise(&rounds);
        assert_eq!(summary.len(), 2);
        assert_eq!(summary[0].time_ratios, vec![0.9, 1.1, 0.8]);
        assert_eq!(summary[0].median, 0.9);
        assert_eq!(summary[0].at_parity, 2);
        assert_eq!(summary[0].ours_ms, 90.0);
        assert_eq!(summary[1].time_ratios.len(), 2);
        assert!((summary[1].median - 0.9).abs() < 1e-12);
        assert_eq!(summary[1].at_parity, 1);
        let table = format_summary(&summary, 2);
        assert!(
            table.contains("0.80–1.10") && table.contains("2/3"),
            "{table}"
        );
        assert_eq!(median(&[]), 0.0);
    }
}
