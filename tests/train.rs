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
    // RL's rate on a schedule: one warm-up step, then linear decay to a tenth at the last step.
    let text = common::delegating_tiny().replace(
        "lr_warmup_steps = 0     # a few steps: the peak rate throughout\nlr_decay = \"constant\"",
        "lr_warmup_steps = 1\nlr_decay = \"linear\"\nlr_min_ratio = 0.1",
    );
    assert!(
        text.contains("lr_decay = \"linear\""),
        "examples/tiny.toml's [train] changed"
    );
    std::fs::write(&config, text).unwrap();
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
    assert!(out.contains("sub-agent returns right: "), "{out}");
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
    // Each update trained at the schedule's rate of its step (both roles' peak is 3e-4).
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for role in ["main", "sub"] {
        let rates: Vec<f64> = metrics
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()[format!("{role}_lr")]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        assert_eq!(rates.len(), 3);
        for (got, want) in rates.iter().zip([3e-4, 3e-4, 3e-5]) {
            assert!((got - want).abs() < 1e-12, "{role}: {rates:?}");
        }
    }
    let mut seen = Vec::new();
    for c in checkpoints {
        let v = c["version"].as_u64().unwrap();
        let answers = dir.path().join(format!("answers-{v}.jsonl"));
        let eval = succeed(
            mgrpo()
                .args(["eval", "--split", "test", "--json", "--policy"])
                .arg(format!("run:{}@{v}", run.display()))
                .arg("--transcripts")
                .arg(&answers),
        );
        let report: serde_json::Value = serde_json::from_str(eval.lines().last().unwrap()).unwrap();
        assert_eq!(c["accuracy"], report["accuracy"], "{} (v{v})", c["label"]);
        // `--transcripts`: one line a question, judged as the report counted it.
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&answers)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 40);
        let correct = lines.iter().filter(|l| l["correct"] == true).count();
        assert_eq!(correct as f64 / 40.0, report["accuracy"].as_f64().unwrap());
        assert!(
            lines
                .iter()
                .all(|l| l["transcript"].as_str().unwrap().starts_with("<question> ")),
            "{:?}",
            lines[0]
        );
        // The sub-agents' share: every call in the transcripts, each return's `r_expert` as the
        // world's judge scores it (the same judge `mgrpo world --judge` serves), summed the
        // same way in the report and in test.json.
        let calls: Vec<&serde_json::Value> = lines
            .iter()
            .flat_map(|l| l["calls"].as_array().unwrap())
            .collect();
        // Each question's calls are its own: the delegations and results of its transcript.
        for l in &lines {
            let transcript = l["transcript"].as_str().unwrap();
            let pairs: Vec<(String, String)> = transcript
                .split("<delegate>")
                .skip(1)
                .filter_map(|part| {
                    let (task, rest) = part.split_once("</delegate>")?;
                    let result = rest.split_once("<result>")?.1.split_once("</result>")?.0;
                    Some((task.trim().to_string(), result.trim().to_string()))
                })
                .collect();
            let made: Vec<(String, String)> = l["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let text = |k: &str| c[k].as_str().unwrap().trim().to_string();
                    (text("task"), text("result"))
                })
                .collect();
            assert_eq!(made, pairs, "{transcript}");
        }
        let sub = &report["sub"];
        assert_eq!(c["sub"], *sub, "test.json and eval agree ({})", c["label"]);
        assert_eq!(sub["calls"].as_u64().unwrap() as usize, calls.len());
        assert!(
            calls.len() >= 40,
            "a delegating policy calls: {}",
            calls.len()
        );
        let judged = judge(&config, &calls);
        let right = judged.iter().filter(|&&s| s >= 1.0).count();
        assert_eq!(sub["right"].as_u64().unwrap() as usize, right);
        let owed = lines
            .iter()
            .filter(|l| {
                l["correct"] == false
                    && l["calls"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["expert"].as_f64().unwrap() < 1.0)
            })
            .count();
        assert_eq!(sub["wrong"].as_u64().unwrap() as usize, 40 - correct);
        assert_eq!(sub["wrong_after_miss"].as_u64().unwrap() as usize, owed);
        for (call, score) in calls.iter().zip(&judged) {
            assert_eq!(call["expert"].as_f64().unwrap(), *score, "{call}");
        }
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

/// `[warmup] holdout`: RL's queries come only from the train questions held out of the warm
/// start (every other one at 0.5), through the real coordinator and store.
#[test]
fn a_holdout_gives_rl_only_the_questions_the_warm_start_did_not_see() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tiny = std::fs::read_to_string(root.join("examples/tiny.toml")).unwrap();
    // And numbers as digits, the default tiny.toml turns off: a run speaks that tokenizer.
    let text = tiny
        .replace("episodes = 60\n", "episodes = 60\nholdout = 0.5\n")
        .replace("split_digits = false", "split_digits = true");
    assert!(
        text.contains("holdout = 0.5") && text.contains("split_digits = true"),
        "examples/tiny.toml's [warmup] or [world] changed"
    );
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, text).unwrap();
    let run = dir.path().join("run");
    succeed(
        mgrpo()
            .args(["train", "--config"])
            .arg(&config)
            .arg("--run")
            .arg(&run),
    );
    let tokenizer = std::fs::read_to_string(run.join("checkpoints/main/3/tokenizer.json")).unwrap();
    let tokenizer: serde_json::Value = serde_json::from_str(&tokenizer).unwrap();
    assert_eq!(tokenizer["model"]["type"], "WordPiece");
    assert!(tokenizer["model"]["vocab"].get("##7").is_some());
    let (groups, _) = common::store_records(&run);
    assert!(groups.len() >= 3, "{groups:?}");
    for g in &groups {
        let g: serde_json::Value = serde_json::from_str(g).unwrap();
        let id = g["question_id"].as_str().unwrap();
        let index: usize = id.strip_prefix("train-").unwrap().parse().unwrap();
        assert_eq!(index % 2, 1, "{id} was the warm start's");
    }
}

/// Scores sub-agent calls (`task`, `result` of `--transcripts`' `calls`) with the world's judge
/// served by `mgrpo world --judge` on `config`'s world: an independent path to `r_expert`.
fn judge(config: &Path, calls: &[&serde_json::Value]) -> Vec<f64> {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mgrpo"))
        .args(["world", "--judge", "--config"])
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for c in calls {
        input += &serde_json::json!({"task": c["task"], "result": c["result"]}).to_string();
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    common::scores(&out.stdout)
}
