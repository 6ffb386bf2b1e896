//! One run as the page shows it, assembled on the server from the run's files, the live poll
//! (when a process answers) or the store (when none does): downsampled curves, evaluations,
//! the role table, nodes, the step-time split, bytes, and the timeline of swaps, events and the
//! node outages the dashboard itself saw.
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::live::LiveView;
use super::run_files::{RunFiles, StoreFacts};
use super::series::{downsample, smooth};

/// Something the timeline shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    /// The step it happened at (or before).
    pub step: u64,
    /// `swap`, `resume`, `restart`, `node_down`, `node_up`…
    pub kind: String,
    /// What happened, for people.
    pub detail: String,
}

/// Whether a process runs the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// A process answers.
    Live,
    /// No process answers; the run reached its planned steps.
    Finished,
    /// No process answers; the run stopped before its planned steps (resumable).
    Stopped,
}

/// The state of a run no process answers for: finished once it reached its planned steps.
pub fn idle_state(files: &RunFiles, planned: Option<u64>) -> RunState {
    if planned.is_some_and(|p| files.steps().len() as u64 >= p) {
        RunState::Finished
    } else {
        RunState::Stopped
    }
}

/// Metrics shown as "the last few steps" (means over this many).
const RECENT: usize = 20;

fn recent_mean(steps: &BTreeMap<u64, serde_json::Map<String, Value>>, key: &str) -> Option<f64> {
    let vals: Vec<f64> = steps
        .values()
        .rev()
        .take(RECENT)
        .filter_map(|m| m.get(key)?.as_f64())
        .collect();
    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
}

fn last(steps: &BTreeMap<u64, serde_json::Map<String, Value>>, key: &str) -> Option<f64> {
    steps.values().rev().find_map(|m| m.get(key)?.as_f64())
}

/// The curves: every numeric metric downsampled to `points`, and the reward and accuracy
/// smoothed beside their raw series.
pub fn curves(files: &RunFiles, points: usize) -> Value {
    let table = files.table();
    let mut series = serde_json::Map::new();
    let mut x = Vec::new();
    for (key, col) in &table.columns {
        let pts: Vec<(f64, Option<f64>)> =
            table.x.iter().copied().zip(col.iter().copied()).collect();
        if matches!(key.as_str(), "reward" | "accuracy") {
            // Smoothed on every step, then downsampled: the curve a person reads.
            let sm = smooth(col, 0.9);
            let sm_pts: Vec<(f64, Option<f64>)> = table.x.iter().copied().zip(sm).collect();
            series.insert(
                format!("{key}_smooth"),
                json!(downsample(&sm_pts, points).y),
            );
        }
        let d = downsample(&pts, points);
        x = d.x;
        series.insert(key.clone(), json!(d.y));
    }
    json!({"x": x, "series": series, "steps": table.rows.len()})
}

/// The evaluations: `{step, split, accuracy, by_kind: {kind: accuracy}}`, at most `points`
/// of them (evenly spaced, the last one kept: a run evaluating every few steps stays light).
pub fn evals(files: &RunFiles, points: usize) -> Vec<Value> {
    let all = files.evals();
    let n = all.len();
    let keep = points.max(2).min(n);
    (0..keep)
        .map(|i| {
            if keep < 2 {
                i
            } else {
                i * (n - 1) / (keep - 1)
            }
        })
        .map(|i| &all[i])
        .map(|e| {
            let by_kind: BTreeMap<String, f64> = e["report"]["by_kind"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v["accuracy"].as_f64()?)))
                .collect();
            json!({"step": e["step"], "split": e["split"], "accuracy": e["report"]["accuracy"],
                   "n": e["report"]["n"], "by_kind": by_kind})
        })
        .collect()
}

/// The role table: version, generation and source from the live learners (or the store),
/// the last step's loss, clip fraction, KL and format rate from the metrics.
pub fn roles(files: &RunFiles, live: Option<&LiveView>, facts: Option<&StoreFacts>) -> Vec<Value> {
    let steps = files.steps();
    let swaps = live
        .map(|l| l.swaps.as_slice())
        .or(facts.map(|f| f.swaps.as_slice()))
        .unwrap_or_default();
    // Every role the run has shown: in its metrics, the store, the live learners or a swap.
    let known = |r: &str| {
        steps
            .values()
            .any(|m| m.contains_key(&format!("{r}_version")))
            || facts.is_some_and(|f| f.roles.iter().any(|v| v.role == r))
            || live.is_some_and(|l| l.status.roles.iter().any(|v| v.role == r))
            || swaps.iter().any(|s| s.role == r)
    };
    let names: Vec<String> = ["main", "sub", "shared", "single"]
        .iter()
        .filter(|r| known(r))
        .map(|r| r.to_string())
        .collect();
    names
        .iter()
        .map(|role| {
            let live_role = live.and_then(|l| l.status.roles.iter().find(|r| &r.role == role));
            let stored = facts.and_then(|f| f.roles.iter().find(|r| &r.role == role));
            let last_swap = swaps.iter().rfind(|s| &s.role == role);
            let metric = |k: &str| last(steps, &format!("{role}_{k}"));
            let version = live_role
                .map(|r| r.version as f64)
                .or(stored.map(|r| r.version as f64))
                .or(metric("version"));
            let generation = live_role
                .map(|r| r.generation as f64)
                .or(last_swap.map(|s| s.generation as f64))
                .or(metric("generation"));
            let source = live_role
                .map(|r| r.source.clone())
                .or(last_swap.map(|s| s.to_serving.clone()))
                .or(stored.map(|r| r.source.clone()))
                .unwrap_or_else(|| "learner".into());
            let format_rate = if role == "main" || role == "single" || role == "shared" {
                last(steps, "format_rate")
            } else {
                metric("format_rate")
            };
            json!({
                "role": role, "version": version, "generation": generation, "source": source,
                "loss": metric("loss"), "clip_fraction": metric("clip_fraction"),
                "approx_kl": metric("approx_kl"), "ref_kl": metric("ref_kl"),
                "grad_norm": metric("grad_norm"), "format_rate": format_rate,
                "last_swap": last_swap.map(|s| format!("step {}: {} → {} ({})", s.step,
                    s.from_label(), s.to_label(), s.request)),
            })
        })
        .collect()
}

/// Where a step's time goes (means over the last steps): rollout, each role's update,
/// publish + save, and the rest (commit, alignment, waiting).
pub fn step_split(files: &RunFiles) -> Value {
    let steps = files.steps();
    let mut parts = serde_json::Map::new();
    let total = recent_mean(steps, "step_time_s");
    let mut accounted = 0.0;
    let mut put = |name: String, v: Option<f64>| {
        if let Some(v) = v {
            accounted += v;
            parts.insert(name, json!(v));
        }
    };
    put("rollout".into(), recent_mean(steps, "rollout_time_s"));
    for role in ["main", "sub", "shared", "single"] {
        put(
            format!("{role} update"),
            recent_mean(steps, &format!("{role}_update_time_s")),
        );
        let publish = recent_mean(steps, &format!("{role}_publish_time_s"));
        let save = recent_mean(steps, &format!("{role}_save_time_s"));
        if publish.is_some() || save.is_some() {
            put(
                format!("{role} publish + save"),
                Some(publish.unwrap_or(0.0) + save.unwrap_or(0.0)),
            );
        }
    }
    let rest = total.map(|t| (t - accounted).max(0.0));
    parts.insert("commit + other".into(), json!(rest));
    json!({
        "step_time_s": total,
        "parts": parts,
        "tokens_per_s": recent_mean(steps, "tokens_per_s"),
        "calls_per_rollout": recent_mean(steps, "calls_per_rollout"),
        "cross_node_bytes": recent_mean(steps, "cross_node_bytes"),
        "trajectory_bytes": recent_mean(steps, "trajectory_bytes"),
        "stats_bytes": recent_mean(steps, "stats_bytes"),
    })
}

/// The timeline: swaps and the store's events, with the outages the dashboard saw.
pub fn timeline(
    live: Option<&LiveView>,
    facts: Option<&StoreFacts>,
    observed: &[Moment],
) -> Vec<Moment> {
    let (swaps, events) = match (live, facts) {
        (Some(l), _) => (l.swaps.as_slice(), l.events.as_slice()),
        (None, Some(f)) => (f.swaps.as_slice(), f.events.as_slice()),
        (None, None) => (&[][..], &[][..]),
    };
    let mut out: Vec<Moment> = swaps
        .iter()
        .map(|s| Moment {
            step: s.step,
            kind: "swap".into(),
            detail: format!(
                "{}: {} → {} ({}, generation {}, {} ms)",
                s.role,
                s.from_label(),
                s.to_label(),
                s.request,
                s.generation,
                s.duration_ms
            ),
        })
        .chain(events.iter().map(|e| Moment {
            step: e.step,
            kind: e.kind.clone(),
            detail: e.detail.clone(),
        }))
        .chain(observed.iter().cloned())
        .collect();
    out.sort_by_key(|m| m.step);
    out
}

/// The nodes: from the live poll, with when each was last seen up (seconds ago).
pub fn nodes(live: Option<&LiveView>, last_seen: &BTreeMap<String, std::time::Instant>) -> Value {
    let Some(l) = live else {
        return json!([]);
    };
    l.status
        .nodes
        .iter()
        .map(|n| {
            json!({
                "node": n.node, "up": n.up,
                "pid": n.info.as_ref().map(|i| i.pid),
                "roles": n.info.as_ref().map(|i| &i.roles),
                "link_bytes": n.info.as_ref().map(|i| i.link_bytes),
                "last_seen_s": last_seen.get(&n.node).map(|t| t.elapsed().as_secs_f64()),
            })
        })
        .collect()
}
