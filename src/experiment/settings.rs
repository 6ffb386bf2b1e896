//! The settings a study's runs share before their overrides — its config resolved with the
//! binary's defaults, flattened to dotted keys — written into `summary.json` as `config`, so a
//! study that pools another's runs (`--with`) can tell when the two ran on different defaults.
//!
//! Why: a summary entry names only its plan's overrides. When a default changes between two
//! studies (the built-in comparison tool turned on, say), the earlier study's "defaults" runs
//! are not this one's, yet both say `overrides = {}` and would pair as twins. Pooled entries
//! are therefore *rebased*: every setting their study ran with that differs from this study's
//! becomes an explicit override of theirs (`world.compare_tool = false`), and an override of
//! theirs to this study's value of such a setting is dropped, so the table groups and pairs
//! them as what they are. Keys only one side has (a setting newer than the other study) are
//! taken to be at their default (a summary from before a setting whose default then changed
//! must record what it ran with: docs/experiments.md); a summary without `config` (from before this file) is pooled
//! as it says.
//!
//! Not compared: `run.*` (seed and run root), `algo.variant` (the entry names it),
//! `actors.*` and `cluster.*` (where and how many processes, which do not change results:
//! docs/semantics.md's placement invariance), and paths (a file may sit elsewhere on
//! another machine).
use anyhow::Result;
use serde_json::{Map, Value};

use crate::experiment::plan::Plan;

/// A study's base settings: dotted key → value.
pub type Settings = Map<String, Value>;

/// A plan's base settings: those its runs start from ([`Plan::base_table`]: its config's, with
/// the plan's own `steps` — every run of it ran those, whatever its config says; a plan may pin
/// the steps of a default since changed).
pub fn of_plan(plan: &Plan) -> Result<Settings> {
    Ok(of_table(plan.base_table()?))
}

fn of_table(table: toml::Table) -> Settings {
    let mut out = Settings::new();
    flatten("", &toml::Value::Table(table), &mut out);
    out
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Settings) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        v if compared(prefix, v) => {
            out.insert(
                prefix.to_string(),
                serde_json::to_value(v).unwrap_or(Value::Null),
            );
        }
        _ => {}
    }
}

/// Whether the setting `key = value` takes part in the comparison (see the module doc).
fn compared(key: &str, value: &toml::Value) -> bool {
    let skipped = ["run.", "actors.", "cluster."]
        .iter()
        .any(|p| key.starts_with(p))
        || key == "algo.variant";
    let path = value.as_str().is_some_and(|s| s.contains('/'));
    !skipped && !path
}

/// The settings `theirs` ran with that differ from `ours`, among the keys both have.
pub fn differences(theirs: &Settings, ours: &Settings) -> Settings {
    theirs
        .iter()
        .filter(|(k, v)| ours.get(*k).is_some_and(|o| !same(o, v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether override `key = value` sets what `base` has already (a no-op: the run ran at the
/// study's default, e.g. a pooled study's override of a setting that became the default since).
pub fn at_base(base: &Settings, key: &str, value: &Value) -> bool {
    base.get(key).is_some_and(|b| same(b, value))
}

/// Equal settings: numbers by value (`1e-4` and `0.0001`), anything else as JSON.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Rebases a pooled summary entry onto a study on `ours`, its own study's settings differing
/// from them by `differ` ([`differences`]): each differing setting its overrides do not already
/// name joins them, and an override of a differing setting to `ours`'s value leaves them (a
/// setting that became the default since is no override here; an override of a setting both
/// studies share stays, as this study's own do).
pub fn rebase(entry: &mut Value, differ: &Settings, ours: &Settings) {
    let Some(overrides) = entry["overrides"].as_object_mut() else {
        return;
    };
    for (k, v) in differ {
        overrides.entry(k.clone()).or_insert_with(|| v.clone());
    }
    overrides.retain(|k, v| !(differ.contains_key(k) && ours.get(k).is_some_and(|o| same(o, v))));
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn settings(text: &str) -> Settings {
        let config = mgrpo_actors::Config::parse(text, Path::new("x.toml")).unwrap();
        of_table(toml::from_str(&config.to_toml()).unwrap())
    }

    /// A changed default shows as a difference and a pooled entry gains it as an override (its
    /// own overrides kept); run, placement and path settings are not compared; a key the other
    /// study lacks is no difference.
    #[test]
    fn a_pooled_run_on_other_defaults_gains_them_as_overrides() {
        let ours = settings("[run]\nseed = 3\n");
        let mut theirs = settings(
            "[run]\nseed = 9\nroot = \"/elsewhere/runs\"\n[world]\ncompare_tool = false\n\
             [actors]\nexecutors = 5\n[models.sub]\nlr = 3e-4\n",
        );
        assert!(
            !ours
                .keys()
                .any(|k| k.starts_with("run.") || k.starts_with("actors."))
        );
        assert_eq!(
            differences(&theirs, &ours),
            Settings::from_iter([
                ("models.sub.lr".to_string(), json!(3e-4)),
                ("world.compare_tool".to_string(), json!(false)),
            ])
        );
        theirs.remove("train.year_variants");
        theirs.insert("warmup.steps".into(), json!(1000.0));
        let mut entry =
            json!({"variant": "mgrpo", "seed": 1, "overrides": {"models.sub.lr": 1e-3}});
        rebase(&mut entry, &differences(&theirs, &ours), &ours);
        assert_eq!(
            entry["overrides"],
            json!({"models.sub.lr": 1e-3, "world.compare_tool": false})
        );
        assert!(differences(&ours, &ours).is_empty());
        // An override that is this study's default since is dropped: the entry pairs with
        // this study's defaults runs.
        let mut entry = json!({"variant": "mgrpo", "seed": 1,
            "overrides": {"world.compare_tool": true, "algo.epochs": 1}});
        rebase(&mut entry, &differences(&theirs, &ours), &ours);
        assert_eq!(
            entry["overrides"],
            json!({"models.sub.lr": 3e-4, "algo.epochs": 1}),
            "the default epochs both share stay named, as this study's own runs name them"
        );
    }

    /// A plan's `steps` is what its runs ran, so its base settings (its summary's `config`, what
    /// pooled entries rebase onto) say so; without `steps`, its config's.
    #[test]
    fn a_plans_own_steps_are_its_base_settings() {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster.toml");
        let plan = |steps: &str| -> Plan {
            toml::from_str(&format!(
                "name = \"x\"\nconfig = {:?}\nvariants = [\"mgrpo\"]\nseeds = [1]\n{steps}",
                config.display().to_string()
            ))
            .unwrap()
        };
        let configured = json!(mgrpo_actors::Config::load(&config).unwrap().train.steps);
        assert_ne!(configured, json!(1000));
        assert_eq!(
            of_plan(&plan("steps = 1000\n")).unwrap()["train.steps"],
            json!(1000)
        );
        assert_eq!(of_plan(&plan("")).unwrap()["train.steps"], configured);
    }
}
