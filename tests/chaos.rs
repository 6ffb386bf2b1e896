//! `mgrpo chaos` end to end with the real binary: the shipped smoke plan (every fault family
//! once against three `mgrpo node` processes) passes with every fault fired and the store equal
//! to the fault-free run (up to the garbage output at its end, whose turns are stored with
//! format reward 0); a plan whose fault never fires fails, keeps its run and prints the
//! command that reproduces it.
mod common;

use std::path::Path;
use std::sync::Mutex;

use common::mgrpo;

/// Both tests share one reference (same config and steps): computed once, one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn root() -> &'static Path {
    static ROOT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// Runs a shipped plan (`examples/chaos/NAME.toml`) into `root()/NAME`; it must pass. Its
/// table (stderr under `--json`) and the JSON summary (stdout's one line).
fn run_shipped(name: &str) -> (String, serde_json::Value) {
    run_shipped_with(name, &[])
}

/// [`run_shipped`] with more `mgrpo chaos` arguments.
fn run_shipped_with(name: &str, more: &[&str]) -> (String, serde_json::Value) {
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/chaos/{name}.toml"));
    let out = mgrpo()
        .args(["chaos", "--json"])
        .args(more)
        .arg("--plan")
        .arg(&plan)
        .arg("--out")
        .arg(root().join(name))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("{stderr}\n{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "--json prints one line: {stdout}"
    );
    let last = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    (stderr, last)
}

/// A one-run plan's summary: `faults` injected, the store identical to the reference, no step
/// lost or doubled, the run not failed.
fn assert_passed(last: &serde_json::Value, faults: u64) {
    let got =
        ["runs", "faults", "identical", "lost", "doubled", "failed"].map(|k| last[k].as_u64());
    let want = [1, faults, 1, 0, 0, 0].map(Some);
    assert_eq!(got, want, "{last}");
}

#[test]
fn the_smoke_plan_passes_with_every_fault_fired_and_the_store_unchanged() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (stdout, last) = run_shipped("smoke");
    assert_eq!(last["runs"], 1);
    assert_eq!(
        last["faults"], 17,
        "every fault of the plan injected: {last}"
    );
    assert_eq!(last["lost"], 0);
    assert_eq!(last["doubled"], 0);
    assert_eq!(last["identical"], 1);
    assert_eq!(last["node_crashes"], 0);
    assert_eq!(last["failed"], 0);
    // The table has a row for each of the twelve kinds, each fired as often as injected.
    for kind in [
        "kill_actor",
        "stall_actor",
        "kill_node",
        "cut_link",
        "delay_link",
        "corrupt_link",
        "close_link",
        "fail_point",
        "stall_handshake",
        "garbage_frames",
        "oversized_frame",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("no row for {kind}:\n{stdout}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1], cols[2], "{kind}: injected = fired: {row}");
    }
    // The history names each injection with the step it landed in.
    let history = std::fs::read_to_string(root().join("smoke/seed-0/history.jsonl")).unwrap();
    let injections = history
        .lines()
        .filter(|l| l.contains("\"injection\""))
        .count();
    assert_eq!(injections, 17);
}

#[test]
fn a_fault_that_never_fires_fails_the_run_and_prints_how_to_reproduce_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = root().join("never");
    std::fs::create_dir_all(&dir).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/chaos");
    let plan = dir.join("never.toml");
    // No swap happens in this run, so the swap fail point is armed and never passed.
    std::fs::write(
        &plan,
        format!(
            "config = \"{}\"\nsteps = 40\nseed = 1\n[[faults]]\nkind = \"fail_point\"\npoint = \"swap_apply\"\nat_step = 2\n",
            examples.join("cluster-tiny.toml").display()
        ),
    )
    .unwrap();
    let out = mgrpo()
        .args(["chaos", "--plan"])
        .arg(&plan)
        .arg("--out")
        .arg(root().join("never-out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("did not fire"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "reproduce: mgrpo chaos --plan {} --seed 0",
            plan.display()
        )),
        "{stderr}"
    );
    // A failing run keeps its directory and logs.
    let kept = root().join("never-out/seed-0");
    assert!(kept.join("run/store").is_dir() && kept.join("logs/hub.log").is_file());
}

#[test]
fn a_full_disk_stops_the_run_with_a_clear_error_and_a_whole_store_that_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tiny = std::fs::read_to_string(root.join("examples/tiny.toml"))
        .unwrap()
        .replace("steps = 3\n", "steps = 4\n");
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, tiny).unwrap();
    let run = dir.path().join("run");
    // Every checkpoint save fails after the warm start, as on a full disk.
    let out = mgrpo()
        .env(
            "MGRPO_FAULTS",
            r#"[{"point":"CheckpointWrite","action":"Fail","times":1000}]"#,
        )
        .args(["train", "--config"])
        .arg(&config)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert!(stderr.contains("failed 5 times"), "{stderr}");
    // Nothing half-written: no step committed, the warm start's checkpoints whole, no staging
    // directory installed as a checkpoint.
    let (groups, steps) = common::store_records(&run);
    assert!(groups.is_empty() && steps.is_empty(), "{steps:?}");
    for role in ["main", "sub"] {
        let versions: Vec<String> = std::fs::read_dir(run.join("checkpoints").join(role))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(versions, ["0"], "{role}: only the warm start");
    }
    // Space is back: the run resumes (with its own config) and finishes every step once.
    common::succeed(mgrpo().args(["train", "--resume", "--run"]).arg(&run));
    common::assert_each_step_once(&run, 4);
}

#[test]
fn the_one_process_plan_kills_the_train_process_and_its_actors_and_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, last) = run_shipped("one-process");
    assert_passed(&last, 7);
    // Both SIGKILLs of `mgrpo train` were followed by a restart with --resume.
    let log = std::fs::read_to_string(root().join("one-process/seed-0/logs/local.log")).unwrap();
    assert!(log.contains("start 3 of node local"), "{log}");
}

#[test]
fn the_async_plan_loses_and_doubles_nothing_and_equals_the_fault_free_async_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, last) = run_shipped_with("async", &["--keep"]);
    assert_passed(&last, 5);
    // The run was asynchronous: after step 0 every step was sampled one version behind.
    let metrics = common::metrics(&root().join("async/seed-0/run"));
    assert!(metrics.len() >= 24, "{}", metrics.len());
    assert!(
        metrics
            .iter()
            .filter(|m| m["step"].as_u64() > Some(0))
            .all(|m| m["main_staleness"] == 1 && m["sub_staleness"] == 1),
        "{metrics:?}"
    );
}

#[test]
fn the_tools_plan_kills_and_stops_the_scorer_and_the_tool_server_and_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = std::time::Instant::now();
    let (table, last) = run_shipped("tools");
    eprintln!("tools plan: {:.1} s", started.elapsed().as_secs_f64());
    assert_passed(&last, 4);
    for kind in [
        "kill_scorer",
        "stall_scorer",
        "kill_tool_server",
        "stall_tool_server",
    ] {
        let row = table.lines().find(|l| l.starts_with(kind)).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            (cols[1], cols[2]),
            ("1", "1"),
            "{kind} injected and fired: {row}"
        );
    }
    // The signals reached the real processes, and the node recovered from each: the scorer
    // killed (its pipe broke) and stopped (no answer within its deadline) was restarted and
    // asked again; the tool server killed was started afresh at its next call.
    let log = std::fs::read_to_string(root().join("tools/seed-0/logs/local.log")).unwrap();
    let restarted_scorer: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("scorer failed; restarting it"))
        .collect();
    assert!(
        restarted_scorer.len() == 2
            && restarted_scorer[0].contains("Broken pipe")
            && restarted_scorer[1].contains("no answer within 2000 ms"),
        "{restarted_scorer:?}"
    );
    assert!(log.contains("restarting tool server"), "{log}");
}
