//! A study's report: `summary.json` (every run's test accuracy at its warm start, its
//! dev-selected and its final checkpoint, overall and by question kind), `table.md` (per
//! variant and overrides: mean ± the 95 % t-interval's half-width over seeds, and the paired
//! difference of each variant's final accuracy from `mgrpo`'s on the same seeds) and
//! `dev.png` (dev accuracy over steps: each group's mean with its interval as a band).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mgrpo_actors::run_dir::read_json_lines;
use plotters::prelude::*;
use serde_json::{Value, json};

use crate::commands::plot::{draw_legend, register_bundled_font, step_chart};
use crate::experiment::plan;
use crate::experiment::runs::Prepared;
use crate::experiment::settings::{self, Settings};

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom.
pub fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => 1.96,
    }
}

/// Mean and the 95 % t-interval's half-width (NaN for fewer than two values).
pub fn mean_interval(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, t95(n - 1) * (var / n as f64).sqrt())
}

/// One run's entry of `summary.json`.
fn run_entry(r: &Prepared) -> Result<Value> {
    let read = |name: &str| -> Result<Value> {
        let path = r.dir.join(name);
        serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("{}", path.display()))?,
        )
        .with_context(|| format!("{}", path.display()))
    };
    let test = read("test.json")?;
    let at = |label: &str| -> &Value {
        test["checkpoints"]
            .as_array()
            .and_then(|c| c.iter().find(|e| e["label"] == label))
            .unwrap_or(&Value::Null)
    };
    let (warm, best, last) = (at("warm"), at("best"), at("final"));
    let mut by_kind = serde_json::Map::new();
    if let Some(kinds) = last["by_kind"].as_object() {
        for k in kinds.keys() {
            by_kind.insert(
                k.clone(),
                json!({"warm": warm["by_kind"][k], "best": best["by_kind"][k], "final": last["by_kind"][k]}),
            );
        }
    }
    // The sub-agents' returns judged right, where test.json measured them.
    let right = |e: &Value| {
        json!(crate::commands::test_summary::sub_report(e).and_then(|s| s.right_share()))
    };
    let sub_right = (!last["sub"].is_null())
        .then(|| json!({"warm": right(warm), "best": right(best), "final": right(last)}));
    let best_step = read("best.json").ok().and_then(|b| b["step"].as_u64());
    let wall_json = read("wall.json").ok();
    let wall = wall_json.as_ref().and_then(|w| w["wall_s"].as_f64());
    let cpu = wall_json
        .as_ref()
        .and_then(|w| w["cpu"].as_str().map(str::to_string));
    let overrides: serde_json::Map<String, Value> = r
        .spec
        .overrides
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect();
    let mut entry = json!({
        "variant": r.spec.variant.name(),
        "seed": r.spec.seed,
        "overrides": overrides,
        "test_warm": warm["accuracy"],
        "test_best": best["accuracy"],
        "test_final": last["accuracy"],
        "best_step": best_step,
        "wall_s": wall,
        "by_kind": by_kind,
    });
    if let Some(sub_right) = sub_right {
        entry["sub_right"] = sub_right;
    }
    if let Some(cpu) = cpu {
        entry["cpu"] = json!(cpu);
    }
    Ok(entry)
}

/// Writes `summary.json`, `table.md` and `dev.png` into `study` from the runs that finished
/// (an interrupted study reports what it has; the table says how many are missing) and the
/// `pooled` entries of other studies' `summary.json` (the same plan on more seeds, run
/// elsewhere or earlier: they join the summary and the table, not the plot, whose dev curves
/// live in their own run directories); returns the table.
/// `base` is this study's settings before overrides ([`settings`]): written as the summary's
/// `config`, and what pooled entries from a study on other settings are rebased onto.
pub fn write(
    study: &Path,
    runs: &[Prepared],
    pooled: &[Pooled],
    base: &Settings,
) -> Result<String> {
    let all = runs.len();
    let runs: Vec<Prepared> = runs
        .iter()
        .filter(|r| crate::experiment::runs::finished(&r.dir))
        .cloned()
        .collect();
    if runs.is_empty() {
        bail!("no run of the study has finished yet");
    }
    let runs = &runs[..];
    let mut entries = runs.iter().map(run_entry).collect::<Result<Vec<_>>>()?;
    let mut rebased = Vec::new();
    for p in pooled {
        let differ = p
            .config
            .as_ref()
            .map(|theirs| settings::differences(theirs, base))
            .unwrap_or_default();
        for e in &p.entries {
            let mut e = e.clone();
            settings::rebase(&mut e, &differ, base);
            if let Some(twin) = entries.iter().find(|x| same_run(x, &e)) {
                bail!(
                    "{} holds run {} seed {} {}, which this study has already",
                    p.source.display(),
                    twin["variant"],
                    twin["seed"],
                    overrides_label(&twin["overrides"])
                );
            }
            entries.push(e);
        }
        rebased.push(differ);
    }
    let summary = json!({ "config": base, "runs": entries });
    std::fs::write(
        study.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    let mut table = table(&entries, base);
    if runs.len() < all {
        table += &format!(
            "\n{} of {all} runs finished; rerun the study to finish the rest.\n",
            runs.len()
        );
    }
    table += &cpus(&entries);
    for (p, differ) in pooled.iter().zip(&rebased) {
        table += &format!(
            "\n{} runs pooled from {} (the plot shows this study's own runs only)",
            p.entries.len(),
            p.source.display()
        );
        table += &if differ.is_empty() {
            ".\n".to_string()
        } else {
            let keys: Vec<String> = differ.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "; they ran with {} where this study's config differs, so their rows name it as \
                 overrides.\n",
                keys.join(", ")
            )
        };
    }
    std::fs::write(study.join("table.md"), &table)?;
    plot(&study.join("dev.png"), runs)?;
    Ok(table)
}

/// Which CPUs the entries ran on (`cpu`, from their wall.json: [`crate::experiment::machine`]),
/// with how many runs each, in order of first appearance; empty when none recorded one. A
/// seed's runs on two CPU kinds do not share its arithmetic, so the reader must know.
fn cpus(entries: &[Value]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut unknown = 0;
    for e in entries {
        match e["cpu"].as_str() {
            Some(cpu) => match counts.iter_mut().find(|(c, _)| *c == cpu) {
                Some((_, n)) => *n += 1,
                None => counts.push((cpu, 1)),
            },
            None => unknown += 1,
        }
    }
    if counts.is_empty() {
        return String::new();
    }
    let runs = |n: usize| format!("{n} run{}", if n == 1 { "" } else { "s" });
    let mut parts: Vec<String> = counts
        .iter()
        .map(|(cpu, n)| format!("{cpu} ({})", runs(*n)))
        .collect();
    if unknown > 0 {
        parts.push(format!("not recorded ({})", runs(unknown)));
    }
    format!("\nCPUs: {}.\n", parts.join("; "))
}

/// Another study's finished runs, read from its `summary.json`.
#[derive(Debug, Clone)]
pub struct Pooled {
    /// The file they were read from.
    pub source: PathBuf,
    /// Its `runs` entries.
    pub entries: Vec<Value>,
    /// Its base settings (`config`; `None` in a summary written before they were).
    pub config: Option<Settings>,
}

impl Pooled {
    /// Reads a study's `summary.json` (or the study directory holding one); every entry must
    /// name its variant, seed and overrides and give the three test accuracies.
    pub fn load(path: &Path) -> Result<Self> {
        let source = if path.is_dir() {
            path.join("summary.json")
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&source).with_context(|| format!("{}", source.display()))?;
        let summary: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not JSON", source.display()))?;
        let Some(entries) = summary["runs"].as_array() else {
            bail!("{} has no \"runs\" list", source.display());
        };
        for (i, e) in entries.iter().enumerate() {
            let complete = e["variant"].is_string()
                && e["seed"].is_u64()
                && e["overrides"].is_object()
                && ["test_warm", "test_best", "test_final"]
                    .iter()
                    .all(|k| e[*k].is_number());
            if !complete {
                bail!(
                    "{} runs[{i}] needs variant, seed, overrides, test_warm, test_best and \
                     test_final",
                    source.display()
                );
            }
        }
        Ok(Self {
            source,
            entries: entries.clone(),
            config: summary["config"].as_object().cloned(),
        })
    }
}

/// Whether two summary entries ran the same seed with the same overrides (whatever variant).
fn same_setting(a: &Value, b: &Value) -> bool {
    a["seed"] == b["seed"] && a["overrides"] == b["overrides"]
}

/// Whether two summary entries are the same run (variant, seed and overrides).
fn same_run(a: &Value, b: &Value) -> bool {
    a["variant"] == b["variant"] && same_setting(a, b)
}

/// A summary entry's overrides as the plan labels them ([`plan::overrides_label`]); an entry
/// whose overrides are no TOML table (a `null` in them) is labelled by its JSON.
fn overrides_label(overrides: &Value) -> String {
    serde_json::from_value::<BTreeMap<String, toml::Value>>(overrides.clone())
        .map(|o| plan::overrides_label(&o))
        .unwrap_or_else(|_| overrides.to_string())
}

/// Groups of runs: `(variant, overrides)` → indices, in plan order.
fn groups(runs: &[Prepared]) -> Vec<((String, String), Vec<usize>)> {
    group_by(
        runs.iter()
            .map(|r| (r.spec.variant.name().to_string(), r.spec.overrides_label())),
    )
}

/// Indices grouped by key, groups in order of first appearance.
fn group_by(keys: impl Iterator<Item = (String, String)>) -> Vec<((String, String), Vec<usize>)> {
    let mut out: Vec<((String, String), Vec<usize>)> = Vec::new();
    for (i, key) in keys.enumerate() {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => out.push((key, vec![i])),
        }
    }
    out
}

fn cell(values: &[f64]) -> String {
    let (m, hw) = mean_interval(values);
    if hw.is_nan() {
        format!("{m:.3}")
    } else {
        format!("{m:.3} ± {hw:.3}")
    }
}

/// The table over summary entries: per (variant, overrides), mean ± interval over seeds, each
/// group's paired difference from its *base* — the same variant and seed without the group's
/// extra overrides (its overrides a strict subset of the group's, the largest such: a
/// `[[sets]]` entry against the plan's empty set, a setting against a pooled defaults study) —
/// and each variant's paired difference from the `mgrpo` entry of the same seed and overrides.
/// An override equal to `base` (the study's settings) is a no-op, so both pairings ignore it: a
/// pooled study's explicit `train.year_variants = 8` pairs as the defaults once 8 is the
/// default. Rows still name every override their plan gave.
fn table(entries: &[Value], base: &Settings) -> String {
    let get = |i: usize, k: &str| entries[i][k].as_f64().unwrap_or(f64::NAN);
    let mut out = String::from(
        "mean ± half-width of the 95 % t-interval over seeds; paired: the final test accuracy \
         minus that of the same variant and seed without this row's extra overrides (vs base: \
         the largest subset of them that ran), or of mgrpo on the same seed and overrides (vs \
         mgrpo)\n\n\
         | variant | overrides | seeds | test warm | test best | test final | final − warm | compare final | paired vs base | paired vs mgrpo |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    // Per-seed differences of `idx`'s final accuracies from each one's twin (the entry `twin`
    // ranks highest for it, the first of equals; `None`: not a twin); "—" when none has one.
    let paired = |idx: &[usize], twin: &dyn Fn(&Value, &Value) -> Option<usize>| {
        let diffs: Vec<f64> = idx
            .iter()
            .filter_map(|&i| {
                let (t, _) = entries
                    .iter()
                    .enumerate()
                    .filter_map(|(t, e)| Some((t, twin(e, &entries[i])?)))
                    .rev()
                    .max_by_key(|&(_, rank)| rank)?;
                Some(get(i, "test_final") - get(t, "test_final"))
            })
            .collect();
        if diffs.is_empty() {
            "—".to_string()
        } else {
            cell(&diffs)
        }
    };
    let all = group_by(entries.iter().map(|e| {
        (
            e["variant"].as_str().unwrap_or("?").to_string(),
            overrides_label(&e["overrides"]),
        )
    }));
    // A run's overrides without those at the study's settings (no-ops).
    let effective = |e: &Value| -> Option<Vec<(String, Value)>> {
        Some(
            e["overrides"]
                .as_object()?
                .iter()
                .filter(|(k, v)| !settings::at_base(base, k, v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    for ((variant, overrides), idx) in &all {
        let col = |k: &str| idx.iter().map(|&i| get(i, k)).collect::<Vec<f64>>();
        let gain: Vec<f64> = idx
            .iter()
            .map(|&i| get(i, "test_final") - get(i, "test_warm"))
            .collect();
        let compare: Vec<f64> = idx
            .iter()
            .filter_map(|&i| entries[i]["by_kind"]["compare"]["final"].as_f64())
            .collect();
        let vs_base = paired(idx, &|e, x| {
            let (theirs, mine) = (effective(e)?, effective(x)?);
            (e["variant"] == x["variant"]
                && e["seed"] == x["seed"]
                && theirs.len() < mine.len()
                && theirs.iter().all(|t| mine.contains(t)))
            .then_some(theirs.len())
        });
        let vs_mgrpo = if variant == "mgrpo" {
            "—".to_string()
        } else {
            paired(idx, &|e, x| {
                let (theirs, mine) = (effective(e)?, effective(x)?);
                (e["variant"] == "mgrpo"
                    && e["seed"] == x["seed"]
                    && theirs.len() == mine.len()
                    && theirs.iter().all(|t| mine.contains(t)))
                .then_some(0)
            })
        };
        out += &format!(
            "| {variant} | {} | {} | {} | {} | {} | {} | {} | {vs_base} | {vs_mgrpo} |\n",
            if overrides.is_empty() {
                "—"
            } else {
                overrides
            },
            idx.len(),
            cell(&col("test_warm")),
            cell(&col("test_best")),
            cell(&col("test_final")),
            cell(&gain),
            if compare.is_empty() {
                "—".into()
            } else {
                cell(&compare)
            },
        );
    }
    out
}

/// A run's dev evaluations: `(step, accuracy)` from `eval.jsonl`.
fn dev_curve(dir: &Path) -> Vec<(u64, f64)> {
    read_json_lines(&dir.join("eval.jsonl"))
        .unwrap_or_default()
        .iter()
        .filter(|v| v["split"] == "dev")
        .filter_map(|v| Some((v["step"].as_u64()?, v["report"]["accuracy"].as_f64()?)))
        .collect()
}

/// `(step, mean, half-width)` of a group's dev accuracy.
type BandPoint = (f64, f64, f64);

fn plot(out: &Path, runs: &[Prepared]) -> Result<()> {
    register_bundled_font()?;
    // Per group, per step: the dev accuracies of its seeds.
    let mut bands: Vec<(String, Vec<BandPoint>)> = Vec::new();
    let mut max_step = 1.0f64;
    for ((variant, overrides), idx) in groups(runs) {
        let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for &i in &idx {
            for (s, a) in dev_curve(&runs[i].dir) {
                at.entry(s).or_default().push(a);
            }
        }
        let points: Vec<(f64, f64, f64)> = at
            .into_iter()
            .filter(|(_, v)| v.len() == idx.len())
            .map(|(s, v)| {
                let (m, hw) = mean_interval(&v);
                let hw = if hw.is_nan() { 0.0 } else { hw };
                (s as f64, m, hw)
            })
            .collect();
        max_step = points.iter().map(|p| p.0).fold(max_step, f64::max);
        let label = if overrides.is_empty() {
            variant
        } else {
            format!("{variant} {overrides}")
        };
        bands.push((label, points));
    }
    if bands.iter().all(|b| b.1.is_empty()) {
        bail!("no dev evaluations in any run (train.eval_every = 0?)");
    }
    let root = BitMapBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = step_chart(
        &root,
        "dev accuracy: mean over seeds, 95 % interval",
        max_step,
    )?;
    for (i, (label, points)) in bands.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let upper = points.iter().map(|p| (p.0, (p.1 + p.2).min(1.0)));
        let lower = points.iter().rev().map(|p| (p.0, (p.1 - p.2).max(0.0)));
        chart.draw_series(std::iter::once(Polygon::new(
            upper.chain(lower).collect::<Vec<_>>(),
            color.mix(0.18).filled(),
        )))?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    draw_legend(&mut chart)?;
    root.present()
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_student_t() {
        // 1, 2, 3: mean 2, sd 1, half-width t(2) · 1/√3.
        let (m, hw) = mean_interval(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((hw - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{hw}");
        assert!(mean_interval(&[0.5]).1.is_nan());
        assert_eq!(t95(1000), 1.96);
    }

    fn entry(variant: &str, seed: u64, warm: f64, last: f64) -> Value {
        json!({"variant": variant, "seed": seed, "overrides": {"models.main.lr": 0.0003},
               "test_warm": warm, "test_best": last, "test_final": last,
               "by_kind": {"compare": {"final": 0.25}}})
    }

    #[test]
    fn the_table_pairs_each_run_with_mgrpo_of_its_seed_whatever_study_it_came_from() {
        // Seeds 1–2 from one study, 3 from another, in any order: the paired column is the
        // per-seed difference (−0.1, −0.2, −0.3: mean −0.2, sd 0.1).
        let entries = [
            entry("mgrpo", 1, 0.5, 0.7),
            entry("single", 1, 0.4, 0.6),
            entry("mgrpo", 2, 0.5, 0.8),
            entry("single", 3, 0.4, 0.5),
            entry("single", 2, 0.4, 0.6),
            entry("mgrpo", 3, 0.5, 0.8),
        ];
        let table = table(&entries, &Settings::new());
        let hw = t95(2) * 0.1 / 3f64.sqrt();
        let single = format!(
            "| single | models.main.lr=0.0003 | 3 | 0.400 ± 0.000 | 0.567 ± {0:.3} | 0.567 ± {0:.3} | 0.167 ± {0:.3} | 0.250 ± 0.000 | — | -0.200 ± {1:.3} |",
            t95(2) * (1.0f64 / 300.0).sqrt() / 3f64.sqrt(),
            hw
        );
        assert!(table.contains(&single), "{table}\n{single}");
        assert!(
            table.contains("| mgrpo | models.main.lr=0.0003 | 3 |"),
            "{table}"
        );
        assert_eq!(table.lines().filter(|l| l.starts_with("| ")).count(), 3);
    }

    #[test]
    fn an_override_at_the_studys_default_pairs_as_the_default() {
        // A pooled study ran its "defaults" with an explicit `train.year_variants = 8`, the
        // default since: its runs are the base of this study's setting (+0.1 on each seed).
        let at_default = |seed: u64| {
            let mut e = entry("mgrpo", seed, 0.5, 0.6);
            e["overrides"] = json!({"train.year_variants": 8});
            e
        };
        let entries = [
            at_default(1),
            at_default(2),
            entry("mgrpo", 1, 0.5, 0.7),
            entry("mgrpo", 2, 0.5, 0.7),
        ];
        let base: Settings = [("train.year_variants".to_string(), json!(8))]
            .into_iter()
            .collect();
        let row = |table: &str| {
            table
                .lines()
                .find(|l| l.starts_with("| mgrpo | models.main.lr=0.0003 |"))
                .map(|l| l.split(" | ").nth(8).unwrap_or_default().to_string())
                .unwrap_or_else(|| panic!("{table}"))
        };
        assert_eq!(row(&table(&entries, &base)), "0.100 ± 0.000");
        // At another default the explicit override is a setting of its own: no base.
        assert_eq!(row(&table(&entries, &Settings::new())), "—");
        assert!(table(&entries, &base).contains("| mgrpo | train.year_variants=8 | 2 |"));
        // And a baseline on the defaults pairs with that mgrpo (−0.2 on each seed).
        let mut with_single = entries.to_vec();
        for seed in [1, 2] {
            let mut e = entry("single", seed, 0.4, 0.4);
            e["overrides"] = json!({});
            with_single.push(e);
        }
        let single = table(&with_single, &base);
        let single = single
            .lines()
            .find(|l| l.starts_with("| single | — |"))
            .unwrap_or_else(|| panic!("{single}"));
        assert!(single.ends_with("| — | -0.200 ± 0.000 |"), "{single}");
    }

    #[test]
    fn a_setting_pairs_with_the_same_variant_and_seed_without_its_extra_overrides() {
        // mgrpo at lr 3e-4 against mgrpo on the defaults, seeds 1–3 (+0.1, +0.2, +0.3: mean
        // +0.2, sd 0.1); a single run on the defaults pairs with mgrpo on the defaults only, and
        // the defaults' own row has no base. A set on top of the lr (epochs 2) pairs with the
        // lr's runs, its largest base, not with the defaults.
        let defaults = |variant: &str, seed: u64, last: f64| {
            let mut e = entry(variant, seed, 0.5, last);
            e["overrides"] = json!({});
            e
        };
        let entries = [
            defaults("mgrpo", 1, 0.6),
            defaults("mgrpo", 2, 0.6),
            defaults("mgrpo", 3, 0.5),
            defaults("single", 1, 0.1),
            entry("mgrpo", 1, 0.5, 0.7),
            entry("mgrpo", 2, 0.5, 0.8),
            entry("mgrpo", 3, 0.5, 0.8),
        ];
        let table = table(&entries, &Settings::new());
        let row = |prefix: &str| {
            table
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix}\n{table}"))
                .to_string()
        };
        let cells = |l: String| l.split(" | ").map(str::to_string).collect::<Vec<_>>();
        let setting = cells(row("| mgrpo | models.main.lr=0.0003 |"));
        assert_eq!(
            setting[8],
            format!("0.200 ± {:.3}", t95(2) * 0.1 / 3f64.sqrt()),
            "{table}"
        );
        assert_eq!(setting[9], "— |", "{table}");
        assert_eq!(cells(row("| mgrpo | — |"))[8], "—", "{table}");
        let single = cells(row("| single | — |"));
        assert_eq!((single[8].as_str(), single[9].as_str()), ("—", "-0.500 |"));
        let mut stacked = entries.to_vec();
        for (seed, last) in [(1, 0.7), (2, 0.9), (3, 0.8)] {
            let mut e = entry("mgrpo", seed, 0.5, last);
            e["overrides"]["algo.epochs"] = json!(2);
            stacked.push(e);
        }
        let stacked = super::table(&stacked, &Settings::new());
        let epochs = stacked
            .lines()
            .find(|l| l.starts_with("| mgrpo | algo.epochs=2,models.main.lr=0.0003 |"))
            .unwrap_or_else(|| panic!("{stacked}"));
        // 0.0, +0.1, 0.0 against the lr's runs (against the defaults it would be +0.3 on average).
        assert_eq!(
            cells(epochs.to_string())[8],
            format!(
                "0.033 ± {:.3}",
                t95(2) * (1.0f64 / 300.0).sqrt() / 3f64.sqrt()
            ),
            "{stacked}"
        );
    }

    #[test]
    fn the_table_names_the_cpus_the_runs_ran_on() {
        let on = |cpu: Option<&str>| {
            let mut e = entry("mgrpo", 1, 0.5, 0.6);
            if let Some(cpu) = cpu {
                e["cpu"] = json!(cpu);
            }
            e
        };
        assert_eq!(cpus(&[on(None), on(None)]), "");
        let entries = [
            on(Some("AMD EPYC")),
            on(None),
            on(Some("Intel Xeon")),
            on(Some("AMD EPYC")),
        ];
        assert_eq!(
            cpus(&entries),
            "\nCPUs: AMD EPYC (2 runs); Intel Xeon (1 run); not recorded (1 run).\n"
        );
    }

    #[test]
    fn a_pooled_summary_must_name_its_runs_and_their_accuracies() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("summary.json");
        std::fs::write(
            &file,
            json!({"runs": [entry("mgrpo", 4, 0.5, 0.7)]}).to_string(),
        )
        .unwrap();
        let pooled = Pooled::load(dir.path()).unwrap();
        assert_eq!(pooled.source, file);
        assert_eq!(pooled.entries.len(), 1);
        std::fs::write(&file, r#"{"runs": [{"variant": "mgrpo", "seed": 4}]}"#).unwrap();
        let err = Pooled::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("runs[0] needs variant, seed, overrides"),
            "{err}"
        );
        std::fs::write(&file, "{\"runs\": 3}").unwrap();
        assert!(
            Pooled::load(&file)
                .unwrap_err()
                .to_string()
                .contains("no \"runs\" list")
        );
        std::fs::write(&file, "not json").unwrap();
        assert!(format!("{:#}", Pooled::load(&file).unwrap_err()).contains("is not JSON"));
    }
}
