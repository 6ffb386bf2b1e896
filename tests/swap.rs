//! Hot-swapping roles with the real binary: `mgrpo swap` against a one-process `mgrpo train`
//! (through RUN/control.json) and against three `mgrpo node` processes — every target, a role
//! moved to another node and kept there across a restart, a swap while a node is down, and the
//! hub killed with SIGKILL between recording a swap and putting it into effect.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{
    NodeProc, assert_each_step_once, free_ports, metrics, mgrpo, store_records, succeed,
    write_config,
};
use serde_json::Value;

/// Runs share the machine's two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds every step's rollouts back by 150 ms (and the first by 3 s), so that swap requests
/// sent while the run trains reach their boundary in time even on a loaded machine.
const PACED: &str = r#"{"point":{"Request":"planner"},"action":{"Stall":{"ms":3000}},"times":1},
 {"point":{"Request":"planner"},"action":{"Stall":{"ms":150}},"times":100000}"#;

/// `MGRPO_FAULTS`: [`PACED`] and `extra` (one fault as a JSON object).
fn paced(extra: Option<&str>) -> String {
    match extra {
        Some(e) => format!("[{PACED}, {e}]"),
        None => format!("[{PACED}]"),
    }
}

/// A warm start of the tiny cluster config, made once and copied into each run.
struct Warm {
    dir: tempfile::TempDir,
    run: PathBuf,
}

fn warm() -> &'static Warm {
    static WARM: OnceLock<Warm> = OnceLock::new();
    WARM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &free_ports(), 1, 0);
        let run = dir.path().join("warm");
        succeed(
            mgrpo()
                .args(["warmup", "--config"])
                .arg(&config)
                .arg("--run")
                .arg(&run),
        );
        Warm { dir, run }
    })
}

/// A fresh run directory holding the warm start, and a config of `steps` steps.
fn run_dir(steps: u64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let w = warm();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &free_ports(), steps, 0);
    let run = dir.path().join("run");
    for role in ["main", "sub"] {
        copy_dir(
            &w.run.join("checkpoints").join(role).join("0"),
            &run.join("checkpoints").join(role).join("0"),
        );
    }
    let _ = &w.dir;
    (dir, config, run)
}

/// Adds `line` at the top of the config's (only) `table`.
fn add_setting(config: &Path, table: &str, line: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let header = format!("{table}\n");
    assert_eq!(text.matches(&header).count(), 1, "{table} once in {text}");
    std::fs::write(config, text.replace(&header, &format!("{header}{line}\n"))).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

/// A one-process `mgrpo train` (with info logs, paced by [`PACED`]).
struct Train {
    child: Child,
    log: PathBuf,
}

impl Train {
    fn start(config: &Path, run: &Path, dir: &Path) -> Self {
        Self::start_with_faults(config, run, dir, None)
    }

    /// Started with `extra` faults (JSON objects) armed besides [`PACED`].
    fn start_with_faults(config: &Path, run: &Path, dir: &Path, extra: Option<&str>) -> Self {
        let log = dir.join("train.log");
        let child = mgrpo()
            .env("MGRPO_FAULTS", paced(extra))
            .args(["-v", "train", "--config"])
            .arg(config)
            .arg("--run")
            .arg(run)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t = Self { child, log };
        let start = Instant::now();
        while !run.join("control.json").exists() {
            assert!(start.elapsed() < Duration::from_secs(120), "{}", t.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        t
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` `n` times.
    fn wait_log(&self, needle: &str, n: usize) {
        let start = Instant::now();
        while self.log().matches(needle).count() < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "never logged {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_success(&mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{}", self.log());
    }
}

impl Drop for Train {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mgrpo swap` against `--run DIR` or `--config FILE`: the JSON outcome, or the error text.
fn swap(target: &[&str], to: &str, at_step: Option<u64>) -> Result<Value, String> {
    let mut cmd = mgrpo();
    cmd.arg("swap")
        .args(target)
        .args(["--role", "sub", "--to", to, "--json", "--wait", "120"]);
    if let Some(s) = at_step {
        cmd.args(["--at-step", &s.to_string()]);
    }
    let out = cmd.output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn status(run: &Path) -> Value {
    serde_json::from_str(&succeed(
        mgrpo().args(["status", "--json", "--run"]).arg(run),
    ))
    .unwrap()
}

fn sub_generation(run: &Path) -> u64 {
    let s = status(run);
    let roles = s["roles"].as_array().unwrap();
    roles.iter().find(|r| r["role"] == "sub").unwrap()["generation"]
        .as_u64()
        .unwrap()
}

/// Every `(type, value)` of the store dump.
fn dump(run: &Path) -> Vec<Value> {
    succeed(mgrpo().args(["store", "dump", "--json", "--run"]).arg(run))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One step's sub calls: the step, their distinct (generation, version) pairs, their mean
/// expert score, how many.
type StepCalls = (u64, Vec<(u64, u64)>, f64, usize);

/// Per step: the sub calls' distinct (generation, version) pairs, and their mean expert score.
fn calls_by_step(dump: &[Value]) -> Vec<StepCalls> {
    let mut out: Vec<StepCalls> = Vec::new();
    for g in dump.iter().filter(|v| v["type"] == "group") {
        let step = g["step"].as_u64().unwrap();
        if out.last().is_none_or(|l| l.0 != step) {
            out.push((step, Vec::new(), 0.0, 0));
        }
        let e = out.last_mut().unwrap();
        for c in g["calls"].as_array().unwrap() {
            let id = (
                c["role_generation"].as_u64().unwrap(),
                c["role_version"].as_u64().unwrap(),
            );
            if !e.1.contains(&id) {
                e.1.push(id);
            }
            e.2 += c["expert"].as_f64().unwrap();
            e.3 += 1;
        }
    }
    for e in &mut out {
        e.2 /= e.3.max(1) as f64;
    }
    out
}

/// The generation in effect at `step`: the number of swaps recorded up to it (one role swapped).
fn in_effect(recorded: &[&Value], step: u64) -> u64 {
    recorded
        .iter()
        .filter(|r| r["step"].as_u64().unwrap() <= step)
        .count() as u64
}

/// No step mixes two sub policies, and its calls record the generation in effect.
fn assert_one_generation_per_step(by_step: &[StepCalls], recorded: &[&Value]) {
    for (step, ids, _, n) in by_step {
        assert!(ids.len() <= 1, "step {step} mixes sub policies {ids:?}");
        if *n > 0 {
            assert_eq!(
                ids[0].0,
                in_effect(recorded, *step),
                "step {step}: calls record the generation in effect"
            );
        }
    }
}

#[test]
fn a_swap_that_fails_after_its_record_takes_effect_once_at_the_next_boundary() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const STEPS: u64 = 8;
    let (dir, config, run) = run_dir(STEPS);
    // The learner fails half-way through applying the swap (recorded, not yet switched).
    let mut train = Train::start_with_faults(
        &config,
        &run,
        dir.path(),
        Some(r#"{"point":"SwapApply","action":"Fail","times":1}"#),
    );
    let err = swap(&["--run", run.to_str().unwrap()], "frozen", Some(3)).unwrap_err();
    assert!(
        err.contains("recorded but putting it into effect failed") && err.contains("SwapApply"),
        "{err}"
    );
    train.wait_success();
    assert!(train.log().contains("fault strikes"), "{}", train.log());
    let d = dump(&run);
    let recorded: Vec<&Value> = d.iter().filter(|v| v["type"] == "swap").collect();
    assert_eq!(recorded.len(), 1, "recorded once: {recorded:?}");
    assert_eq!(recorded[0]["step"], 3);
    assert_eq!(recorded[0]["generation"], 1);
    assert_each_step_once(&run, STEPS);
    // Applied by the replay at the same boundary: from step 3 on, one frozen generation.
    assert_one_generation_per_step(&calls_by_step(&d), &recorded);
    for line in metrics(&run) {
        let step = line["step"].as_u64().unwrap();
        assert_eq!(line["sub_generation"], u64::from(step >= 3), "{line}");
    }
}

#[test]
fn one_process_swaps_sub_to_expert_back_to_checkpoints_frozen_and_training_again() {
    // …and to a checkpoint directory and a Hugging Face folder (`model:PATH`).
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const STEPS: u64 = 44;
    let (dir, config, run) = run_dir(STEPS);
    // RL in the world itself: the tiny planner, barely warmed, delegates names it memorised,
    // which the default world variants (new names) do not have, so no sub-agent (the expert
    // included) could answer them and the expert's edge below would not show.
    add_setting(&config, "[train]", "year_variants = 0");
    let mut train = Train::start(&config, &run, dir.path());
    let target = ["--run", run.to_str().unwrap()];
    let meta = std::fs::metadata(run.join("control.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    // Each swap lands at its boundary (or the next one if the run got there first).
    // A checkpoint directory with the run's tokenizer (another preset would do as well).
    let model = dir.path().join("model");
    copy_dir(&run.join("checkpoints/sub/0"), &model);
    let model = format!("model:{}", model.display());
    // A Hugging Face folder (a Qwen3 over the run's world tokenizer).
    let hf = dir.path().join("hf-qwen3");
    succeed(
        mgrpo()
            .args(["hf", "init", "--config"])
            .arg(&config)
            .args([
                "--family",
                "qwen3",
                "--like",
                "tiny",
                "--kv-heads",
                "2",
                "--out",
            ])
            .arg(&hf),
    );
    let hf = format!("model:{}", hf.display());
    let mut at = 4;
    let mut swaps = Vec::new();
    for to in [
        "expert",
        "previous",
        "checkpoint:0",
        "frozen",
        "train",
        &model,
        &hf,
    ] {
        let o = swap(&target, to, Some(at))
            .unwrap_or_else(|e| panic!("swap to {to}: {e}\n{}", train.log()));
        let step = o["step"].as_u64().unwrap();
        assert!(step >= at, "{o}");
        assert_eq!(
            o["generation"].as_u64().unwrap(),
            swaps.len() as u64 + 1,
            "{o}"
        );
        println!("swap to {to}: {o}");
        swaps.push((to, step));
        at = step + 3;
    }

    // Refused swaps change nothing: a missing checkpoint, a model with another tokenizer.
    let e = swap(&target, "checkpoint:999", None).unwrap_err();
    assert!(e.contains("no checkpoint version 999"), "{e}");
    let other = dir.path().join("other-tokenizer");
    copy_dir(&run.join("checkpoints/sub/0"), &other);
    let mut tok: Value =
        serde_json::from_slice(&std::fs::read(other.join("tokenizer.json")).unwrap()).unwrap();
    tok["model"]["vocab"]["unheard-of"] = 100_000.into();
    std::fs::write(other.join("tokenizer.json"), tok.to_string()).unwrap();
    let e = swap(&target, &format!("model:{}", other.display()), None).unwrap_err();
    assert!(e.contains("another tokenizer"), "{e}");
    assert_eq!(sub_generation(&run), 7, "a refused swap changes nothing");

    // Two concurrent swaps of one role: the second is refused at once.
    let queued = train.log().matches("swap request queued").count();
    let mut first = mgrpo()
        .args([
            "swap",
            "--run",
            run.to_str().unwrap(),
            "--role",
            "sub",
            "--to",
            "expert",
            "--json",
        ])
        .args(["--at-step", &(STEPS - 4).to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    train.wait_log("swap request queued", queued + 1);
    let e = swap(&target, "frozen", None).unwrap_err();
    assert!(e.contains("another swap of the sub role is pending"), "{e}");
    assert!(first.wait().unwrap().success());
    train.wait_success();
    assert!(
        !run.join("control.json").exists(),
        "removed when the run ends"
    );

    let d = dump(&run);
    let recorded: Vec<&Value> = d.iter().filter(|v| v["type"] == "swap").collect();
    assert_eq!(recorded.len(), 8, "{recorded:?}");
    assert_eq!(
        recorded[1]["weights"],
        format!("checkpoint:{}", recorded[0]["from_version"])
    );
    let by_step = calls_by_step(&d);
    assert_eq!(by_step.len() as u64, STEPS);
    assert_one_generation_per_step(&by_step, &recorded);
    let in_effect = |step: u64| in_effect(&recorded, step);
    // Sub rewards move to the expert's level while the expert serves the sub-agents.
    let mean = |from: u64, to: u64| {
        let xs: Vec<f64> = by_step
            .iter()
            .filter(|s| s.0 >= from && s.0 < to && s.3 > 0)
            .map(|s| s.2)
            .collect();
        xs.iter().sum::<f64>() / xs.len().max(1) as f64
    };
    let (expert_from, expert_to) = (swaps[0].1, swaps[1].1);
    println!(
        "sub expert score: learner {:.3}, expert {:.3}",
        mean(0, expert_from),
        mean(expert_from, expert_to)
    );
    // (Not 1.0: the tiny planner also delegates malformed sub-tasks that nobody can answer.)
    assert!(
        mean(expert_from, expert_to) > mean(0, expert_from) + 0.2,
        "the scripted expert answers the sub-tasks the learner could not"
    );
    // Frozen: one version, no sub update; training again: the versions move on.
    let lines = metrics(&run);
    let (frozen_from, train_from) = (swaps[3].1, swaps[4].1);
    for l in &lines {
        let step = l["step"].as_u64().unwrap();
        let trained = l.get("sub_loss").is_some();
        let sub_serving_trains = !(expert_from..expert_to).contains(&step)
            && !(frozen_from..train_from).contains(&step)
            && step < STEPS - 4;
        assert_eq!(trained, sub_serving_trains, "step {step}: {l}");
        assert_eq!(l["sub_generation"].as_u64(), Some(in_effect(step)), "{l}");
        assert_eq!(l["main_generation"].as_u64(), Some(0), "{l}");
    }
    let versions: Vec<u64> = by_step
        .iter()
        .filter(|s| s.0 >= frozen_from && s.0 < train_from)
        .flat_map(|s| s.1.iter().map(|i| i.1))
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] == w[1]),
        "frozen: one version {versions:?}"
    );
}

#[test]
fn the_hub_killed_right_after_recording_a_swap_applies_it_exactly_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const STEPS: u64 = 12;
    const AT: u64 = 4;
    // The reference: one process, the same swap at the same step, no crash.
    let (rdir, rconfig, rrun) = run_dir(STEPS);
    let mut reference = Train::start(&rconfig, &rrun, rdir.path());
    let o = swap(&["--run", rrun.to_str().unwrap()], "expert", Some(AT)).unwrap();
    assert_eq!(o["step"], AT);
    reference.wait_success();

    let (dir, config, run) = run_dir(STEPS);
    let stall_after_record = paced(Some(
        r#"{"point":"SwapRecorded","action":{"Stall":{"ms":600000}},"times":1}"#,
    ));
    // The hub holds the first step (so the request is in time) and stalls once the swap is in
    // the store, before it takes effect: the moment the SIGKILL lands.
    let mut hub = NodeProc::start_with_faults(
        &config,
        "hub",
        &run,
        dir.path(),
        "",
        Some(&stall_after_record),
    );
    let mut main = NodeProc::start(&config, "main", &run, dir.path(), "");
    let mut sub = NodeProc::start(&config, "sub", &run, dir.path(), "");
    hub.wait_log("fault armed", Duration::from_secs(60));
    let target = ["--config", config.to_str().unwrap()];
    let mut client = mgrpo()
        .args([
            "swap",
            "--role",
            "sub",
            "--to",
            "expert",
            "--at-step",
            &AT.to_string(),
        ])
        .args(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    hub.wait_log("swap recorded", Duration::from_secs(120));
    let committed = metrics(&run).len();
    hub.sigkill();
    println!(
        "seed 3: SIGKILL of the hub after the swap to expert was recorded at step {AT} ({committed} steps committed)"
    );
    assert!(
        !client.wait().unwrap().success(),
        "the caller hears of the crash"
    );
    let mut hub2 = NodeProc::start_with_faults(
        &config,
        "hub",
        &run,
        dir.path(),
        "-restarted",
        Some(&paced(None)),
    );

    // A swap while a node is down waits for the role, then fails clearly, changing nothing.
    let start = Instant::now();
    while metrics(&run).len() < AT as usize + 3 {
        assert!(start.elapsed() < Duration::from_secs(120), "{}", hub2.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    sub.sigkill();
    hub2.wait_log("lost peer", Duration::from_secs(30));
    let e = mgrpo()
        .args(["swap", "--role", "sub", "--to", "frozen", "--wait", "3"])
        .args(target)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&e.stderr);
    assert!(e.contains("nothing changed"), "{e}");
    println!("a swap while node sub is down: {}", e.trim());
    let mut sub2 = NodeProc::start(&config, "sub", &run, dir.path(), "-restarted");
    hub2.wait_success(Duration::from_secs(300));
    main.wait_success(Duration::from_secs(30));
    sub2.wait_success(Duration::from_secs(30));
    assert!(
        hub2.log()
            .contains("replaying a swap recorded before a crash"),
        "{}",
        hub2.log()
    );

    assert_each_step_once(&run, STEPS);
    let swaps = |run: &Path| -> Vec<Value> {
        dump(run)
            .into_iter()
            .filter(|v| v["type"] == "swap")
            .map(|mut v| {
                v.as_object_mut().unwrap().remove("duration_ms");
                v
            })
            .collect()
    };
    assert_eq!(
        swaps(&run),
        swaps(&rrun),
        "the swap took effect once, as in the run without the crash"
    );
    assert_eq!(
        store_records(&run),
        store_records(&rrun),
        "the store equals the run without the crash"
    );
}

/// What the status says each node hosts: `node → role → count`.
fn hosted(config: &Path) -> std::collections::BTreeMap<String, Value> {
    let out = succeed(mgrpo().args(["status", "--json", "--config"]).arg(config));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_string(),
                n["info"]["roles"].clone(),
            )
        })
        .collect()
}

#[test]
fn three_processes_move_a_role_take_every_target_and_keep_the_move_across_a_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const STEPS: u64 = 28;
    let (dir, config, run) = run_dir(STEPS);
    let mut hub =
        NodeProc::start_with_faults(&config, "hub", &run, dir.path(), "", Some(&paced(None)));
    let mut main = NodeProc::start(&config, "main", &run, dir.path(), "");
    let mut sub = NodeProc::start(&config, "sub", &run, dir.path(), "");
    let target = ["--config", config.to_str().unwrap()];
    let mut cmd = mgrpo();
    cmd.args([
        "swap",
        "--role",
        "sub",
        "--node",
        "main",
        "--json",
        "--at-step",
        "3",
    ])
    .args(target);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        hub.log()
    );
    let o: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("moved the executors: {o}");
    let moved_at = o["step"].as_u64().unwrap();
    let h = hosted(&config);
    assert_eq!(h["main"]["executor"], 2, "{h:?}");
    assert!(h["sub"].get("executor").is_none(), "{h:?}");

    // The targets over three processes, through the hub.
    let mut at = moved_at + 3;
    let mut last = moved_at;
    for to in ["expert", "previous", "checkpoint:0", "frozen", "train"] {
        let o = swap(&target, to, Some(at)).unwrap_or_else(|e| panic!("{to}: {e}\n{}", hub.log()));
        println!("swap to {to} over three processes: {o}");
        last = o["step"].as_u64().unwrap();
        at = last + 3;
    }

    // The new host dies and comes back with the config's placement: the coordinator puts the
    // executors back on it.
    let start = Instant::now();
    while metrics(&run).len() < last as usize + 2 {
        assert!(start.elapsed() < Duration::from_secs(120), "{}", hub.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    main.sigkill();
    hub.wait_log("lost peer", Duration::from_secs(30));
    let mut main2 = NodeProc::start(&config, "main", &run, dir.path(), "-restarted");
    hub.wait_log("putting moved instances back", Duration::from_secs(120));
    hub.wait_success(Duration::from_secs(300));
    main2.wait_success(Duration::from_secs(30));
    sub.wait_success(Duration::from_secs(30));

    assert_each_step_once(&run, STEPS);
    let d = dump(&run);
    let recorded: Vec<&Value> = d.iter().filter(|v| v["type"] == "swap").collect();
    assert_eq!(recorded.len(), 6, "{recorded:?}");
    assert_eq!(recorded[0]["node"], "main");
    let by_step = calls_by_step(&d);
    assert_one_generation_per_step(&by_step, &recorded);
    // Trained again after `train`, across the restart: the version grows every step.
    let versions: Vec<u64> = by_step
        .iter()
        .filter(|s| s.0 >= last && !s.1.is_empty())
        .map(|s| s.1[0].1)
        .collect();
    assert!(versions.len() >= 3, "sub calls after `train`: {by_step:?}");
    assert!(versions.windows(2).all(|w| w[1] > w[0]), "{versions:?}");
}

/// Under the asynchronous schedule a swap still lands at a step boundary and no step mixes
/// generations: the coordinator stops rolling ahead while the swap waits, and the steps
/// right after it are sampled with the swapped policy itself (not one from before it).
#[test]
fn asynchronous_swaps_land_between_steps_and_no_step_mixes_generations() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const STEPS: u64 = 16;
    let (dir, config, run) = run_dir(STEPS);
    add_setting(&config, "[algo]", "schedule = \"async\"");
    let mut train = Train::start(&config, &run, dir.path());
    let target = ["--run", run.to_str().unwrap()];
    let mut at = 3;
    let mut swaps = Vec::new();
    for to in ["expert", "train"] {
        let o = swap(&target, to, Some(at))
            .unwrap_or_else(|e| panic!("swap to {to}: {e}\n{}", train.log()));
        let step = o["step"].as_u64().unwrap();
        assert!(step >= at, "{o}");
        println!("swap to {to}: {o}");
        swaps.push(step);
        at = step + 4;
    }
    train.wait_success();
    let d = dump(&run);
    let recorded: Vec<&Value> = d.iter().filter(|v| v["type"] == "swap").collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let by_step = calls_by_step(&d);
    assert_eq!(by_step.len() as u64, STEPS);
    assert_one_generation_per_step(&by_step, &recorded);
    for l in &metrics(&run) {
        let step = l["step"].as_u64().unwrap();
        assert_eq!(
            l["sub_generation"].as_u64(),
            Some(in_effect(&recorded, step)),
            "{l}"
        );
        // A step is one version behind, except where it would reach back before the swap
        // (or before the run): then it is sampled with the swapped (or first) policy.
        let behind = if step == 0 || swaps.contains(&step) {
            0
        } else {
            1
        };
        assert_eq!(
            l["main_staleness"].as_u64(),
            Some(if step == 0 { 0 } else { 1 }),
            "{l}"
        );
        assert_eq!(l["sub_staleness"].as_u64(), Some(behind), "{l}");
    }
    // Training again after the expert: the first step back is sampled with the version the
    // swap restored, the next ones one version behind the learner.
    let back = swaps[1];
    let version_at = |s: u64| {
        by_step
            .iter()
            .find(|c| c.0 == s)
            .and_then(|c| c.1.first())
            .map(|i| i.1)
    };
    let restored = recorded[1]["version"]
        .as_u64()
        .expect("the swap back records the version it published");
    if let Some(v0) = version_at(back) {
        assert_eq!(v0, restored, "step {back}: {by_step:?}");
    }
    // From the second step back on, one version behind the learner, which took one update a
    // step since: step s is sampled with `restored + s − back − 1`. The comparison must run.
    let after: Vec<(u64, u64)> = (back + 1..STEPS)
        .filter_map(|s| version_at(s).map(|v| (s, v)))
        .collect();
    assert!(
        after.iter().any(|(s, _)| *s >= back + 2),
        "sub calls two or more steps after the swap back: {by_step:?}"
    );
    for (s, v) in after {
        assert_eq!(v, restored + s - back - 1, "step {s}: {by_step:?}");
    }
}
