//! What a training run did, on the test split: the accuracy of its warm start, of the
//! dev-selected checkpoint and of the final one, overall and by question kind — printed when
//! `mgrpo train` ends and kept as `RUN/test.json`, so a user needs no further command to see it
//! (and a study reads it instead of evaluating again).
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use mgrpo_actors::RunDir;
use mgrpo_env::{EvalReport, Split, SubReport};
use serde::{Deserialize, Serialize};

/// One evaluated checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluated {
    /// `warm`, `best` or `final`.
    pub label: String,
    /// Its version (the steps trained, for a run without swaps).
    pub version: u64,
    /// Test accuracy.
    pub accuracy: f64,
    /// By question kind.
    pub by_kind: BTreeMap<String, f64>,
    /// The sub-agents' returns as the judge scored them, and the wrong answers that followed
    /// a wrong one (absent: a single agent, or a dataset without an expert scorer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<SubReport>,
}

/// `RUN/test.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSummary {
    /// Questions in the test split.
    pub questions: usize,
    /// Warm start, dev-selected, final — in that order.
    pub checkpoints: Vec<Evaluated>,
}

/// A `test.json` checkpoint's `sub` (read as JSON by the study's report and TensorBoard's
/// export), where it has one.
pub fn sub_report(checkpoint: &serde_json::Value) -> Option<SubReport> {
    serde_json::from_value(checkpoint.get("sub")?.clone()).ok()
}

/// Evaluates run `dir`'s warm start, dev-selected and final checkpoints on the test split
/// (a version is evaluated once, however many labels it has) and writes `test.json`. The
/// final checkpoint is each role's latest (after a swap the roles' versions differ); a
/// dev-selected version that some role has no checkpoint of (it was frozen or an expert then)
/// is left out with a warning.
pub async fn summarise(dir: &Path) -> Result<TestSummary> {
    let run = RunDir::new(dir);
    let last = run
        .latest_checkpoint("main")
        .with_context(|| format!("{} has no checkpoint", dir.display()))?;
    let best = run.best().map_or(last, |b| b.version);
    let mut done: BTreeMap<u64, EvalReport> = BTreeMap::new();
    let mut checkpoints = Vec::new();
    let mut questions = 0;
    for (label, version) in [("warm", Some(0)), ("best", Some(best)), ("final", None)] {
        let key = version.unwrap_or(last);
        if let std::collections::btree_map::Entry::Vacant(slot) = done.entry(key) {
            let evaluated = mgrpo_actors::eval::eval_run(dir, version, Split::Test, None).await;
            match evaluated {
                Ok((report, _)) => {
                    slot.insert(report);
                }
                Err(e) if label == "best" => {
                    eprintln!("warning: the dev-selected version {key} is not evaluated: {e}");
                    continue;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("evaluating the {label} checkpoint on the test split")
                    });
                }
            }
        }
        let (version, report) = (key, &done[&key]);
        questions = report.n;
        checkpoints.push(Evaluated {
            label: label.into(),
            version,
            accuracy: report.accuracy,
            by_kind: report
                .by_kind
                .iter()
                .map(|(k, s)| (k.clone(), s.accuracy))
                .collect(),
            sub: report.sub,
        });
    }
    let summary = TestSummary {
        questions,
        checkpoints,
    };
    let path = dir.join("test.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(summary)
}

/// The summary for people: one line overall, one by kind.
pub fn format(s: &TestSummary) -> String {
    let cell = |e: &Evaluated| format!("{} (v{}) {:.3}", e.label, e.version, e.accuracy);
    let overall: Vec<String> = s.checkpoints.iter().map(cell).collect();
    let kinds: Vec<String> = s
        .checkpoints
        .first()
        .map(|e| e.by_kind.keys().cloned().collect())
        .unwrap_or_default();
    let by_kind: Vec<String> = kinds
        .iter()
        .map(|k| {
            let values: Vec<String> = s
                .checkpoints
                .iter()
                .map(|e| format!("{:.2}", e.by_kind.get(k).copied().unwrap_or(0.0)))
                .collect();
            format!("{k} {}", values.join(" → "))
        })
        .collect();
    let mut out = format!(
        "test accuracy ({} questions): {}\n  by kind (warm → best → final): {}",
        s.questions,
        overall.join(" · "),
        by_kind.join(" · ")
    );
    let subs: Vec<SubReport> = s.checkpoints.iter().filter_map(|e| e.sub).collect();
    if subs.len() == s.checkpoints.len() && !subs.is_empty() {
        let right: Vec<String> = subs
            .iter()
            .map(|r| match r.right_share() {
                None => "no call".to_string(),
                Some(share) => format!("{:.1} %", 100.0 * share),
            })
            .collect();
        let owed: Vec<String> = subs
            .iter()
            .map(|r| format!("{}/{}", r.wrong_after_miss, r.wrong))
            .collect();
        out += &format!(
            "\n  sub-agent returns right: {} · wrong answers after a wrong return: {}",
            right.join(" → "),
            owed.join(" → ")
        );
    }
    out
}
