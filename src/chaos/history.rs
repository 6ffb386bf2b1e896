//! What happened in one chaos run, in order: each injection (when, where, the step under way,
//! when it healed, whether it fired), each step's commit time, and how each node process ended.
//! Written as `history.jsonl` beside the run; the checker and the report read it.
use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// One injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct Injection {
    /// Its index in the run's schedule.
    pub index: usize,
    /// The fault kind (`kill_node`, …).
    pub kind: &'static str,
    /// What it struck (node, role, link, point).
    pub target: String,
    /// Seconds after the nodes started.
    pub at_s: f64,
    /// The step under way when it struck (one past the last committed).
    pub step: u64,
    /// When it healed (the node restarted, the link healed), seconds after start.
    pub healed_s: Option<f64>,
    /// Whether it took effect (a fail point struck, a frame was corrupted, …).
    pub fired: bool,
    /// From healed to the next commit, seconds.
    pub recovery_s: Option<f64>,
    /// Anything worth knowing (why it did not fire, how a node answered bad input).
    pub note: String,
}

/// A run's history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    /// The run's seed.
    pub seed: u64,
    /// Injections in order.
    pub injections: Vec<Injection>,
    /// `(step, seconds after start)` of each commit seen (a `metrics.jsonl` line).
    pub commits: Vec<(u64, f64)>,
    /// Nodes that exited by themselves with a failure: `(node, status, seconds)`.
    pub crashes: Vec<(String, String, f64)>,
    /// When training finished (the coordinator's node exited cleanly), seconds.
    pub finished_s: Option<f64>,
}

impl History {
    /// Fills each injection's recovery time: from its heal (or strike) to the next commit.
    pub fn settle(&mut self) {
        let commits = self.commits.clone();
        for i in &mut self.injections {
            let from = i.healed_s.unwrap_or(i.at_s);
            i.recovery_s = commits
                .iter()
                .map(|(_, c)| *c)
                .find(|c| *c >= from)
                .map(|c| c - from);
        }
    }

    /// When the last fault healed, seconds.
    pub fn last_heal(&self) -> f64 {
        self.injections
            .iter()
            .map(|i| i.healed_s.unwrap_or(i.at_s))
            .fold(0.0, f64::max)
    }

    /// Writes `history.jsonl`: one line per injection, commit and crash, then a summary line.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        for i in &self.injections {
            writeln!(
                f,
                "{}",
                serde_json::json!({"type": "injection", "injection": i})
            )?;
        }
        for (step, t) in &self.commits {
            writeln!(
                f,
                "{}",
                serde_json::json!({"type": "commit", "step": step, "t": t})
            )?;
        }
        for (node, status, t) in &self.crashes {
            writeln!(
                f,
                "{}",
                serde_json::json!({"type": "crash", "node": node, "status": status, "t": t})
            )?;
        }
        writeln!(
            f,
            "{}",
            serde_json::json!({"type": "end", "seed": self.seed, "finished_s": self.finished_s})
        )?;
        f.flush()
    }
}
