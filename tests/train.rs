//! `mgrpo train` through the real binary: a run ends by printing (and keeping as `test.json`)
//! the test accuracy of its warm start, its dev-selected and its final checkpoint — the same
//! numbers `mgrpo eval` gives for those versions.
mod common;

use std::path::Path;

use common::{mgrpo, succeed};

#[test]
fn train_ends_with_the_test_accuracy_of_warm_best_and_final() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A warm start that delegates (accuracy above 0, so the numbers compared below can differ).
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, common::delegating_tiny()).unwrap();
    let run = dir.path().join("run");
    let out = succeed(
        mgrpo()
            .args(["train", "--config"])
            .arg(&config)
            .arg("--run")
            .arg(&run),
    );
    assert!(
        out.contains("test accuracy (40 questions): warm (v0) "),
        "{out}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("test.json")).unwrap()).unwrap();
    let checkpoints = summary["checkpoints"].as_array().unwrap();
    let labels: Vec<&str> = checkpoints
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["warm", "best", "final"]);
    let best: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("best.json")).unwrap()).unwrap();
    assert_eq!(checkpoints[1]["version"], best["version"]);
    assert_eq!(
        checkpoints[2]["version"], 3,
        "the final checkpoint after 3 steps"
    );
    let mut seen = Vec::new();
    for c in checkpoints {
        let v = c["version"].as_u64().unwrap();
        let eval = succeed(
            mgrpo()
                .args(["eval", "--split", "test", "--json", "--policy"])
                .arg(format!("run:{}@{v}", run.display())),
        );
        let report: serde_json::Value = serde_json::from_str(eval.lines().last().unwrap()).unwrap();
        assert_eq!(c["accuracy"], report["accuracy"], "{} (v{v})", c["label"]);
        for (kind, stats) in report["by_kind"].as_object().unwrap() {
            assert_eq!(
                c["by_kind"][kind], stats["accuracy"],
                "{kind} of {}",
                c["label"]
            );
        }
        seen.push(c["accuracy"].as_f64().unwrap());
    }
    assert!(
        seen.iter().any(|a| *a > 0.0),
        "a delegating warm start answers some: {seen:?}"
    );
    // `--no-test` skips it.
    let quick = dir.path().join("quick");
    let out = succeed(
        mgrpo()
            .args(["train", "--no-test", "--steps", "1", "--config"])
            .arg(root.join("examples/tiny.toml"))
            .arg("--run")
            .arg(&quick),
    );
    assert!(!out.contains("test accuracy") && !quick.join("test.json").exists());
}
