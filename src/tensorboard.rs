//! TensorBoard event files of a run's scalars, so runs open in the tool RL users already
//! watch: live with `mgrpo train --tensorboard DIR`, or afterwards with `mgrpo export
//! tensorboard --run DIR`. Both write the same tags from the same records — a step's metrics
//! line (`metrics.jsonl`), an evaluation (`eval.jsonl`), the test summary (`test.json`) — so
//! a live and an exported file of one run hold the same scalars.
pub mod event_file;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::Value;

pub use event_file::EventWriter;

/// Roles whose metrics carry a `ROLE_` prefix; their scalars go under `ROLE/`.
const ROLES: [&str; 4] = ["main", "sub", "shared", "single"];

/// TensorBoard's tag of a metrics key: `main_loss` → `main/loss`, `reward` → `train/reward`
/// (one section per role, the step's own figures under `train`).
pub fn tag(key: &str) -> String {
    for role in ROLES {
        if let Some(rest) = key.strip_prefix(role).and_then(|r| r.strip_prefix('_')) {
            return format!("{role}/{rest}");
        }
    }
    format!("train/{key}")
}

/// The scalars of one metrics line: `(step, [(tag, value)])`.
pub fn step_scalars(line: &Value) -> Option<(u64, Vec<(String, f64)>)> {
    let m = line.as_object()?;
    let step = m.get("step")?.as_u64()?;
    let scalars = m
        .iter()
        .filter(|(k, _)| k.as_str() != "step")
        .filter_map(|(k, v)| Some((tag(k), v.as_f64()?)))
        .collect();
    Some((step, scalars))
}

/// The scalars of one evaluation line (`{"split", "step", "report": {accuracy, by_kind}}`):
/// `SPLIT/accuracy` and `SPLIT/accuracy_KIND`.
pub fn eval_scalars(line: &Value) -> Option<(u64, Vec<(String, f64)>)> {
    let split = line["split"].as_str()?;
    let step = line["step"].as_u64()?;
    let report = &line["report"];
    let mut out = vec![(format!("{split}/accuracy"), report["accuracy"].as_f64()?)];
    for (kind, s) in report["by_kind"].as_object().into_iter().flatten() {
        if let Some(a) = s["accuracy"].as_f64() {
            out.push((format!("{split}/accuracy_{kind}"), a));
        }
    }
    Some((step, out))
}

/// The scalars of `test.json`: `test/accuracy_LABEL` (warm, best, final) at the checkpoint's
/// version (a version is the number of steps its learner took), and `test/sub_right_LABEL`, the
/// share of the sub-agents' returns the judge scored right, where the summary measured it.
pub fn test_scalars(summary: &Value) -> Vec<(u64, String, f64)> {
    let mut out = Vec::new();
    for c in summary["checkpoints"].as_array().into_iter().flatten() {
        let (Some(version), Some(label)) = (c["version"].as_u64(), c["label"].as_str()) else {
            continue;
        };
        if let Some(a) = c["accuracy"].as_f64() {
            out.push((version, format!("test/accuracy_{label}"), a));
        }
        if let Some(share) =
            crate::commands::test_summary::sub_report(c).and_then(|s| s.right_share())
        {
            out.push((version, format!("test/sub_right_{label}"), share));
        }
    }
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes scalars as they come (the live logger of `mgrpo train --tensorboard`).
pub struct Logger {
    writer: EventWriter,
}

impl Logger {
    /// A new event file in `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        let writer = EventWriter::create(dir, now())
            .with_context(|| format!("creating an event file in {}", dir.display()))?;
        Ok(Self { writer })
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        self.writer.path()
    }

    /// Writes `(step, scalars)` and flushes.
    pub fn write(&mut self, (step, scalars): (u64, Vec<(String, f64)>)) -> Result<()> {
        let t = now();
        for (tag, v) in scalars {
            self.writer.scalar(&tag, step, v, t)?;
        }
        self.writer.flush()?;
        Ok(())
    }
}

/// The lines of a run's JSON-lines file (none when it is missing).
fn json_lines(path: &Path) -> Result<Vec<Value>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(mgrpo_actors::run_dir::read_json_lines(path)?)
}

/// `mgrpo export tensorboard`: one event file in `out` with every scalar of the run in `run`
/// (its metrics, evaluations and test summary). Returns the file and the number of scalars.
pub fn export(run: &Path, out: &Path) -> Result<(std::path::PathBuf, usize)> {
    let metrics = run.join("metrics.jsonl");
    anyhow::ensure!(
        metrics.exists(),
        "{} has no metrics.jsonl (is it a run directory?)",
        run.display()
    );
    let mut logger = Logger::create(out)?;
    let mut n = 0;
    for line in json_lines(&metrics)? {
        if let Some(s) = step_scalars(&line) {
            n += s.1.len();
            logger.write(s)?;
        }
    }
    for line in json_lines(&run.join("eval.jsonl"))? {
        if let Some(s) = eval_scalars(&line) {
            n += s.1.len();
            logger.write(s)?;
        }
    }
    let test = run.join("test.json");
    if test.exists() {
        let summary: Value = serde_json::from_str(&std::fs::read_to_string(&test)?)
            .with_context(|| format!("reading {}", test.display()))?;
        for (step, tag, v) in test_scalars(&summary) {
            n += 1;
            logger.write((step, vec![(tag, v)]))?;
        }
    }
    Ok((logger.path().to_path_buf(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_group_by_role() {
        assert_eq!(tag("main_loss"), "main/loss");
        assert_eq!(tag("sub_format_rate"), "sub/format_rate");
        assert_eq!(tag("reward"), "train/reward");
        assert_eq!(tag("subtle"), "train/subtle");
        let (step, s) =
            step_scalars(&serde_json::json!({"step": 4, "reward": 0.5, "main_loss": 1.0})).unwrap();
        assert_eq!(step, 4);
        assert_eq!(
            s,
            vec![("main/loss".into(), 1.0), ("train/reward".into(), 0.5)]
        );
        let (step, s) = eval_scalars(&serde_json::json!({"split": "dev", "step": 10,
            "report": {"accuracy": 0.5, "by_kind": {"hop1": {"accuracy": 0.25}}}}))
        .unwrap();
        assert_eq!(step, 10);
        assert_eq!(
            s,
            vec![
                ("dev/accuracy".into(), 0.5),
                ("dev/accuracy_hop1".into(), 0.25)
            ]
        );
        let test = serde_json::json!({"questions": 4, "checkpoints": [
            {"label": "warm", "version": 0, "accuracy": 0.5,
             "sub": {"calls": 8, "right": 6, "expert": 0.75, "wrong": 2, "wrong_after_miss": 1}},
            {"label": "final", "version": 3, "accuracy": 0.75,
             "sub": {"calls": 0, "right": 0, "expert": 0.0, "wrong": 1, "wrong_after_miss": 0}}]});
        assert_eq!(
            test_scalars(&test),
            vec![
                (0, "test/accuracy_warm".into(), 0.5),
                (0, "test/sub_right_warm".into(), 0.75),
                (3, "test/accuracy_final".into(), 0.75)
            ]
        );
    }
}
