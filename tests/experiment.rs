//! `mgrpo experiment` through the real binary on the tiny config: a plan of three variants ×
//! two seeds runs with shared warm starts, reports every run, and a second invocation redoes
//! nothing; a study killed from outside takes its run processes with it.
mod common;

use std::path::Path;

use common::{mgrpo, succeed};

/// `dir/plan.toml`: `body` on examples/tiny.toml.
fn tiny_plan(dir: &Path, body: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan = dir.join("plan.toml");
    let config = root.join("examples/tiny.toml").display().to_string();
    std::fs::write(&plan, format!("config = {config:?}\n{body}")).unwrap();
    plan
}

#[test]
fn a_study_runs_shares_warm_starts_reports_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let plan = tiny_plan(
        dir.path(),
        "name = \"tiny-study\"\nvariants = [\"mgrpo\", \"frozen-sub\", \"single\"]\nseeds = [1, 2]\nsteps = 2\nparallel = 2\n[overrides]\n\"algo.epochs\" = [1]\n",
    );
    let study = dir.path().join("study");
    let out = succeed(
        mgrpo()
            .args(["experiment", "--plan"])
            .arg(&plan)
            .arg("--dir")
            .arg(&study),
    );
    assert!(out.contains("study tiny-study: 6 runs"), "{out}");
    // mgrpo and frozen-sub warm the same two models: one warm start per seed for both, and one
    // per seed for single.
    let warm: Vec<String> = std::fs::read_dir(study.join("warm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(warm.len(), 4, "{warm:?}");
    assert_eq!(
        warm.iter().filter(|w| w.starts_with("main-sub-")).count(),
        2
    );
    let read_summary = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(study.join("summary.json")).unwrap()).unwrap()
    };
    let summary = read_summary();
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for r in runs {
        for key in ["test_warm", "test_best", "test_final", "wall_s"] {
            assert!(r[key].is_number(), "{key} in {r}");
        }
        // The CPU it ran on (a seed's arithmetic differs between CPU kinds).
        assert!(!r["cpu"].as_str().unwrap_or_default().is_empty(), "{r}");
        assert_eq!(r["overrides"]["algo.epochs"], 1, "{r}");
        assert!(r["by_kind"]["compare"]["final"].is_number(), "{r}");
        let run = study.join("runs").join(format!(
            "{}-s{}-algo.epochs=1",
            r["variant"].as_str().unwrap(),
            r["seed"]
        ));
        let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 2, "{}", run.display());
        // The sub-agents' returns judged right: test.json's counts, for agents that delegate.
        let test: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("test.json")).unwrap()).unwrap();
        let last = test["checkpoints"].as_array().unwrap().last().unwrap();
        if r["variant"] == "single" {
            assert!(
                r.get("sub_right").is_none() && last.get("sub").is_none(),
                "{r}"
            );
        } else {
            let calls = last["sub"]["calls"].as_f64().unwrap();
            let want = (calls > 0.0).then(|| last["sub"]["right"].as_f64().unwrap() / calls);
            assert_eq!(r["sub_right"]["final"].as_f64(), want, "{r}");
        }
    }
    // Runs of one seed and kind share the warm start they were copied from.
    let weights = |run: &str| {
        std::fs::read(
            study
                .join("runs")
                .join(run)
                .join("checkpoints/main/0/model.bpk"),
        )
        .unwrap()
    };
    assert_eq!(
        weights("mgrpo-s1-algo.epochs=1"),
        weights("frozen-sub-s1-algo.epochs=1")
    );
    assert_ne!(
        weights("mgrpo-s1-algo.epochs=1"),
        weights("mgrpo-s2-algo.epochs=1")
    );
    let table = std::fs::read_to_string(study.join("table.md")).unwrap();
    assert_eq!(
        table.matches("| frozen-sub | algo.epochs=1 | 2 |").count(),
        1,
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "\nCPUs: {} (6 runs).\n",
            runs[0]["cpu"].as_str().unwrap()
        )),
        "{table}"
    );
    assert!(study.join("dev.png").is_file());
    // Again: every run is done, nothing is started.
    let started = std::fs::metadata(study.join("runs/mgrpo-s1-algo.epochs=1/test.json"))
        .unwrap()
        .modified()
        .unwrap();
    let again = succeed(
        mgrpo()
            .args(["experiment", "--plan"])
            .arg(&plan)
            .arg("--dir")
            .arg(&study),
    );
    assert!(again.contains("study tiny-study: 6 runs"), "{again}");
    let after = std::fs::metadata(study.join("runs/mgrpo-s1-algo.epochs=1/test.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(started, after, "a finished run is not redone");
    // Two more seeds run elsewhere (this study's runs as seeds 11 and 12, a tenth lower):
    // pooled into the report, they count as seeds of the same groups, and each pairs with
    // the mgrpo run of its own seed.
    let mut other = summary.clone();
    for r in other["runs"].as_array_mut().unwrap() {
        r["seed"] = serde_json::json!(r["seed"].as_u64().unwrap() + 10);
        r["test_final"] = serde_json::json!(r["test_final"].as_f64().unwrap() - 0.1);
    }
    let other_file = dir.path().join("other-summary.json");
    std::fs::write(&other_file, other.to_string()).unwrap();
    // The study's report with another summary pooled in (`--with`).
    let report_with = |summary: &Path| {
        let mut c = mgrpo();
        c.args(["experiment", "--report-only", "--plan"])
            .arg(&plan)
            .arg("--dir")
            .arg(&study)
            .arg("--with")
            .arg(summary);
        c
    };
    let pooled = succeed(&mut report_with(&other_file));
    assert!(
        pooled.contains("| frozen-sub | algo.epochs=1 | 4 |"),
        "{pooled}"
    );
    assert!(pooled.contains("6 runs pooled from"), "{pooled}");
    assert_eq!(read_summary()["runs"].as_array().unwrap().len(), 12);
    let paired = |table: &str, variant: &str| -> String {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {variant} |")))
            .unwrap_or_else(|| panic!("{table}"));
        row.rsplit('|').nth(1).unwrap().trim().to_string()
    };
    // The pooled seeds' differences from their own mgrpo run are the originals'.
    let mean = |cell: String| cell.split(" ± ").next().unwrap().to_string();
    assert_eq!(
        mean(paired(&table, "single")),
        mean(paired(&pooled, "single")),
        "{table}\n{pooled}"
    );
    // A summary holding a run the study has (its own): an error naming it, nothing written.
    let out = report_with(&study.join("summary.json")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("which this study has already"), "{err}");
    assert_eq!(read_summary()["runs"].as_array().unwrap().len(), 12);
    // Runs of a study on other defaults (the built-in comparison tool the other way): pooled,
    // they name the setting as an override of theirs and form their own rows, pairing with
    // their own mgrpo run, not as seeds of this study's groups.
    let ours = read_summary();
    let tool = ours["config"]["world.compare_tool"]
        .as_bool()
        .expect("the summary keeps the study's settings");
    let mut older = other.clone();
    older["config"] = ours["config"].clone();
    older["config"]["world.compare_tool"] = serde_json::json!(!tool);
    for r in older["runs"].as_array_mut().unwrap() {
        r["seed"] = serde_json::json!(r["seed"].as_u64().unwrap() + 10);
    }
    let older_file = dir.path().join("older-summary.json");
    std::fs::write(&older_file, older.to_string()).unwrap();
    let rebased = succeed(&mut report_with(&older_file));
    let label = format!("algo.epochs=1,world.compare_tool={}", !tool);
    assert!(
        rebased.contains("| frozen-sub | algo.epochs=1 | 2 |")
            && rebased.contains(&format!("| frozen-sub | {label} | 2 |")),
        "{rebased}"
    );
    assert!(
        rebased.contains(&format!("they ran with world.compare_tool={}", !tool)),
        "{rebased}"
    );
    assert_eq!(
        mean(paired(&table, "single")),
        mean(paired(&rebased, "single")),
        "{table}\n{rebased}"
    );
}

/// The parent of `pid` if it is alive (from `/proc/PID/stat`, whose second field may hold
/// spaces); `None` once it exited, reaped or not.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.next()?.parse().ok()
}

/// The ids of `parent`'s living children, read from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// A study killed from outside (SIGKILL: no destructor runs) takes its run processes with it,
/// so a rerun does not meet an orphan holding the run directory's lock.
#[test]
#[cfg(target_os = "linux")]
fn a_killed_study_leaves_no_run_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    // A warm start far longer than the test: its process is alive when the study is killed.
    let plan = tiny_plan(
        dir.path(),
        "name = \"killed\"\nvariants = [\"mgrpo\"]\nseeds = [1]\nsteps = 2\nparallel = 1\n[overrides]\n\"warmup.steps\" = [100000]\n",
    );
    let mut study = mgrpo()
        .args(["experiment", "--plan"])
        .arg(&plan)
        .arg("--dir")
        .arg(dir.path().join("study"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let child = loop {
        if let Some(&pid) = children_of(study.id()).first() {
            break pid;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the study started no run process"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    println!(
        "killing the study {} (SIGKILL) at {:.2} s, its warm start {child} running",
        study.id(),
        start.elapsed().as_secs_f64()
    );
    study.kill().unwrap();
    study.wait().unwrap();
    let killed = std::time::Instant::now();
    let alive = |pid: u32| parent_of(pid).is_some();
    while alive(child) && killed.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let orphan = alive(child);
    if orphan {
        let _ = std::process::Command::new("kill")
            .args(["-9", &child.to_string()])
            .status();
    }
    assert!(!orphan, "run process {child} outlived its study by 10 s");
}
