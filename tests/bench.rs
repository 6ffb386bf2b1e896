//! The benchmark commands through the real binary, on the tiny config and preset: `mgrpo bench
//! train` runs whole steps and reports every phase (each learner's update included), and `mgrpo
//! bench models` reports both updates. Figures are printed, never asserted: speed lives in the
//! benchmarks, not in tests.
mod common;

use std::path::Path;

use common::{mgrpo, succeed};

#[test]
fn bench_train_reports_every_phase_of_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tiny.toml");
    let run = dir.path().join("run");
    let out = succeed(
        mgrpo()
            .args(["bench", "train", "--steps", "2", "--json", "--config"])
            .arg(&config)
            .arg("--run")
            .arg(&run),
    );
    let line = out.lines().last().unwrap();
    let both: serde_json::Value = serde_json::from_str(line).unwrap();
    // Both schedules by default, the asynchronous one from the synchronous one's warm start.
    assert!(both["async_speedup"].as_f64().unwrap() > 0.0, "{both}");
    assert_eq!(both["async"]["steps"], 2, "{both}");
    assert!(run.join("sync/warmup.jsonl").exists());
    assert!(
        !run.join("async/warmup.jsonl").exists(),
        "the async run reused the warm start"
    );
    let report = &both["sync"];
    assert_eq!(report["steps"], 2, "{report}");
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    for phase in [
        "step",
        "rollout",
        "main update",
        "sub update",
        "sub publish",
        "sub save",
    ] {
        assert!(phases.contains(&phase), "{phase} missing from {phases:?}");
    }
    // Each phase's total is the sum of its per-step times in the run's metrics.jsonl (what the
    // bench reads), and the phases that always do work took some time.
    let sync_lines: Vec<serde_json::Value> =
        std::fs::read_to_string(run.join("sync/metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    for p in report["phases"].as_array().unwrap() {
        let name = p["phase"].as_str().unwrap().trim();
        let key = match name {
            "step" => "step_time_s".to_string(),
            "rollout" => "rollout_time_s".into(),
            "train (all learners)" => "train_time_s".into(),
            other => {
                let (role, what) = other.split_once(' ').unwrap();
                format!("{role}_{what}_time_s")
            }
        };
        let sum: f64 = sync_lines.iter().map(|l| l[&key].as_f64().unwrap()).sum();
        let total = p["total_s"].as_f64().unwrap();
        assert!(
            (total - sum).abs() <= 1e-9 * sum.max(1.0),
            "{name}: {total} vs Σ {key} = {sum}"
        );
        if ["step", "rollout", "main update", "sub update"].contains(&name) {
            assert!(total > 0.0, "{name} took no time: {p}");
        }
    }
    let step_total = report["phases"][0]["total_s"].as_f64().unwrap();
    assert!(
        step_total <= report["total_s"].as_f64().unwrap(),
        "the steps fit in the run's wall time: {report}"
    );
    let lines = std::fs::read_to_string(run.join("async/metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!(last["main_staleness"], 1, "{last}");
    assert_eq!(
        std::fs::read_to_string(run.join("sync/metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

#[test]
fn bench_models_reports_both_updates() {
    let out = succeed(mgrpo().args([
        "bench",
        "models",
        "--presets",
        "tiny",
        "--only",
        "updates",
        "--repeats",
        "1",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let measures: Vec<&str> = report["ours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["measure"].as_str().unwrap())
        .collect();
    assert_eq!(measures, ["sft_step", "surrogate_step"]);
    assert!(report["ours"][0]["ms"].as_f64().unwrap() > 0.0);
    // A bad selection is named.
    let bad = mgrpo()
        .args(["bench", "models", "--only", "everything"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--only takes sampling or updates"));
}

#[test]
fn bench_index_reports_indexing_speed_and_search_latency() {
    let out = succeed(mgrpo().args([
        "bench",
        "index",
        "--docs",
        "300",
        "--queries",
        "50",
        "--json",
    ]));
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (row["documents"].as_u64(), row["passages"].as_u64()),
        (Some(300), Some(1500))
    );
    let (p50, p99) = (
        row["search_p50_ms"].as_f64().unwrap(),
        row["search_p99_ms"].as_f64().unwrap(),
    );
    assert!(
        row["documents_per_s"].as_f64().unwrap() > 0.0 && 0.0 < p50 && p50 <= p99,
        "{row}"
    );
    // The cache was written, then read back (the bench fails if either open did not).
    assert!(row["build_and_save_s"].as_f64() > Some(0.0), "{row}");
    assert!(row["cached_open_s"].as_f64() > Some(0.0), "{row}");
}
