//! The report of a plan over its seeds: a table by fault kind (times injected and fired, steps
//! lost and doubled and stores identical in the runs that had it, recovery time p50/max) and a
//! one-line JSON summary.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::chaos::run::Outcome;

/// The totals over every run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Runs.
    pub runs: usize,
    /// Faults injected.
    pub faults: usize,
    /// Steps lost, summed over runs.
    pub lost: u64,
    /// Steps doubled, summed over runs.
    pub doubled: u64,
    /// Runs whose store equals the reference.
    pub identical: usize,
    /// Node processes that exited with a failure.
    pub node_crashes: usize,
    /// Median recovery time, seconds.
    pub recovery_s_p50: f64,
    /// Longest recovery time, seconds.
    pub recovery_s_max: f64,
    /// Runs with a broken invariant.
    pub failed: usize,
}

/// One row of the table.
#[derive(Debug, Default)]
struct Row {
    injected: usize,
    fired: usize,
    runs: usize,
    lost: u64,
    doubled: u64,
    identical: usize,
    recovery: Vec<f64>,
}

fn p50(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The summary of `outcomes`.
pub fn summary(outcomes: &[Outcome]) -> Summary {
    let mut recovery: Vec<f64> = outcomes
        .iter()
        .flat_map(|o| o.history.injections.iter().filter_map(|i| i.recovery_s))
        .collect();
    let max = recovery.iter().copied().fold(0.0, f64::max);
    Summary {
        runs: outcomes.len(),
        faults: outcomes.iter().map(|o| o.history.injections.len()).sum(),
        lost: outcomes.iter().map(|o| o.verdict.lost).sum(),
        doubled: outcomes.iter().map(|o| o.verdict.doubled).sum(),
        identical: outcomes.iter().filter(|o| o.verdict.identical).count(),
        node_crashes: outcomes.iter().map(|o| o.history.crashes.len()).sum(),
        recovery_s_p50: round(p50(&mut recovery)),
        recovery_s_max: round(max),
        failed: outcomes.iter().filter(|o| !o.passed()).count(),
    }
}

/// The table by fault kind, as text.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    for o in outcomes {
        let mut kinds: Vec<&str> = Vec::new();
        for i in &o.history.injections {
            let r = rows.entry(i.kind).or_default();
            r.injected += 1;
            r.fired += usize::from(i.fired);
            r.recovery.extend(i.recovery_s);
            if !kinds.contains(&i.kind) {
                kinds.push(i.kind);
            }
        }
        for k in kinds {
            let r = rows.entry(k).or_default();
            r.runs += 1;
            r.lost += o.verdict.lost;
            r.doubled += o.verdict.doubled;
            r.identical += usize::from(o.verdict.identical);
        }
    }
    let mut out = format!(
        "{:<16} {:>8} {:>6} {:>5} {:>5} {:>8} {:>10} {:>8} {:>8}\n",
        "fault", "injected", "fired", "lost", "double", "runs", "identical", "rec p50", "rec max"
    );
    for (k, mut r) in rows {
        let max = r.recovery.iter().copied().fold(0.0, f64::max);
        out.push_str(&format!(
            "{:<16} {:>8} {:>6} {:>5} {:>5} {:>8} {:>10} {:>7.1}s {:>7.1}s\n",
            k,
            r.injected,
            r.fired,
            r.lost,
            r.doubled,
            r.runs,
            format!("{}/{}", r.identical, r.runs),
            p50(&mut r.recovery),
            max
        ));
    }
    out
}
