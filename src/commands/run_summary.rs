//! `mgrpo status --run DIR` on a run no process runs (finished, stopped, or crashed with a
//! stale `control.json`): a summary read from disk — steps, the last step's figures, the
//! dev-selected checkpoint, the test accuracy, each role's version, generation and source,
//! the swaps — instead of an error about a missing control file. Rounded for people;
//! `--json` keeps full precision.
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::dashboard::run_files::RunFiles;
use crate::dashboard::view;

/// The summary of the run in `dir`, as JSON.
pub fn summarise(dir: &Path) -> Result<Value> {
    if !dir.join("config.toml").exists() {
        bail!("{} is not a run directory (no config.toml)", dir.display());
    }
    let mut files = RunFiles::new(dir);
    files.refresh();
    let facts = files.store_facts();
    let steps = files.steps();
    let plan = files.plan();
    Ok(json!({
        "run": dir,
        "state": view::idle_state(&files, plan.steps),
        "variant": plan.variant,
        "seed": plan.seed,
        "steps": steps.len(),
        "planned_steps": plan.steps,
        "committed_steps": facts.as_ref().map(|f| f.committed_steps),
        "last": steps.values().next_back(),
        "best": files.best(),
        "test": files.test(),
        "roles": view::roles(&files, None, facts.as_ref()),
        "swaps": facts.as_ref().map(|f| &f.swaps),
        "events": facts.as_ref().map(|f| &f.events),
        "store": if facts.is_some() { "read" } else { "held by another process, or missing" },
    }))
}

/// Three significant digits, for people.
fn num(v: &Value) -> String {
    match v.as_f64() {
        None => "–".into(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e6) => format!("{x:.2e}"),
        Some(x) => {
            let digits = (2 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
            format!("{x:.digits$}")
        }
    }
}

/// The summary as the terminal shows it.
pub fn format(s: &Value) -> String {
    let mut out = vec![format!(
        "run {} — {}: {} of {} steps ({}, seed {}); no process runs it",
        s["run"].as_str().unwrap_or("?"),
        s["state"].as_str().unwrap_or("?"),
        s["steps"],
        num(&s["planned_steps"]),
        s["variant"].as_str().unwrap_or("?"),
        num(&s["seed"]),
    )];
    let last = &s["last"];
    if last.is_object() {
        out.push(format!(
            "  last step {}: reward {} · accuracy {} · {} calls per rollout · {} tok/s · {} s",
            last["step"],
            num(&last["reward"]),
            num(&last["accuracy"]),
            num(&last["calls_per_rollout"]),
            num(&last["tokens_per_s"]),
            num(&last["step_time_s"]),
        ));
    }
    if s["best"].is_object() {
        out.push(format!(
            "  best: dev accuracy {} at step {} (version {})",
            num(&s["best"]["dev_accuracy"]),
            s["best"]["step"],
            s["best"]["version"]
        ));
    }
    if let Some(cs) = s["test"]["checkpoints"].as_array() {
        let parts: Vec<String> = cs
            .iter()
            .map(|c| {
                format!(
                    "{} (v{}) {}",
                    c["label"].as_str().unwrap_or("?"),
                    c["version"],
                    num(&c["accuracy"])
                )
            })
            .collect();
        out.push(format!(
            "  test accuracy ({} questions): {}",
            s["test"]["questions"],
            parts.join(" · ")
        ));
    } else {
        out.push(
            "  test accuracy: not evaluated (the run stopped early or ran with --no-test)".into(),
        );
    }
    for r in s["roles"].as_array().into_iter().flatten() {
        out.push(format!(
            "  role {:<4} version {} generation {} source {} · loss {} · format {}",
            r["role"].as_str().unwrap_or("?"),
            num(&r["version"]),
            num(&r["generation"]),
            r["source"].as_str().unwrap_or("?"),
            num(&r["loss"]),
            num(&r["format_rate"]),
        ));
    }
    match s["swaps"].as_array() {
        Some(sw) if !sw.is_empty() => {
            out.push(format!("  swaps: {}", sw.len()));
            for w in sw {
                out.push(format!(
                    "    step {}: {} {} v{} → {} v{} ({})",
                    w["step"],
                    w["role"].as_str().unwrap_or("?"),
                    w["from_serving"].as_str().unwrap_or("?"),
                    w["from_version"],
                    w["to_serving"].as_str().unwrap_or("?"),
                    w["version"],
                    w["request"].as_str().unwrap_or("?"),
                ));
            }
        }
        Some(_) => out.push("  swaps: none".into()),
        None => out.push("  swaps: unknown (the store is held by another process)".into()),
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_for_people() {
        assert_eq!(num(&json!(0.545123)), "0.545");
        assert_eq!(num(&json!(2555.204)), "2555");
        assert_eq!(num(&json!(12.3456)), "12.3");
        assert_eq!(num(&json!(200)), "200");
        assert_eq!(num(&json!(1.7e-13)), "1.70e-13");
        assert_eq!(num(&Value::Null), "–");
    }
}
