//! The invariant checker of a chaos run. Recovery in mgrpo is exact, so the strongest check is
//! available: after any fault plan, the store must equal the fault-free run of the same config
//! and seed, byte for byte (group records — rewards, alignment, advantages — and the role
//! versions of every step). Besides: every step committed exactly once and in order (store and
//! `metrics.jsonl`), advantages that recompute from the stored rewards, and role versions that
//! never go back within a generation.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use mgrpo_algo::advantages::normalise;
use mgrpo_algo::{Algo, StdKind, group_advantages, group_stats};
use mgrpo_store::{GroupRecord, Store, SubSlot, SwapRecord};
use serde_json::Value;

/// What the store and metrics of a run say against the reference.
#[derive(Debug, Clone, Default)]
pub struct StoreVerdict {
    /// Steps missing from the store or from `metrics.jsonl`.
    pub lost: u64,
    /// Steps with more than one `metrics.jsonl` line.
    pub doubled: u64,
    /// Whether group records and role versions equal the reference's, byte for byte.
    pub identical: bool,
    /// Every broken invariant, in words.
    pub problems: Vec<String>,
}

/// Which models took updates at each step: the variant's, then as the store's swap records
/// say (a role swapped to `frozen` or `expert` takes no update and stores no advantages; one
/// swapped back to `train` does again). Decided from how the role was served, never from the
/// stored advantages themselves, so a regression that zeroes them cannot pass as "not trained".
#[derive(Debug, Clone)]
pub struct Training {
    variant: Algo,
    swaps: Vec<SwapRecord>,
}

impl Training {
    /// The variant `variant` with the swaps recorded in `swaps`.
    pub fn new(variant: Algo, swaps: Vec<SwapRecord>) -> Self {
        Self { variant, swaps }
    }

    /// Whether model `model` (`main`, `sub`) was served by its learner at `step`.
    fn learner_serves(&self, model: &str, step: u64) -> bool {
        SwapRecord::in_effect(&self.swaps, model, step).is_none_or(|s| s.to_serving == "learner")
    }

    /// Whether the main agent's model trained at `step`.
    pub fn main(&self, step: u64) -> bool {
        self.learner_serves("main", step)
    }

    /// Whether the sub-agents' model trained at `step` (under `shared`, the one model).
    pub fn sub(&self, step: u64) -> bool {
        let model = if self.variant.shares_model() {
            "main"
        } else {
            "sub"
        };
        self.variant.sub_is_trained() && self.learner_serves(model, step)
    }
}

/// A store's group records (as JSON text) and each step's role versions.
fn records(run: &Path) -> Result<(Vec<String>, Vec<String>, Vec<GroupRecord>)> {
    let store = Store::open(run.join("store"))
        .with_context(|| format!("opening the store of {}", run.display()))?;
    let mut groups = Vec::new();
    let mut steps = Vec::new();
    for v in store.dump()? {
        match v["type"].as_str() {
            // A step's tool calls (words, status, observation) are compared as its groups are.
            Some("group") | Some("tool_calls") => groups.push(v.to_string()),
            Some("step") => steps.push(format!("{} {}", v["step"], v["role_versions"])),
            _ => {}
        }
    }
    let mut typed = Vec::new();
    for s in store.steps()? {
        typed.extend(store.groups(s.step)?);
    }
    Ok((groups, steps, typed))
}

/// Checks run `run` (which should have trained `steps` steps under `variant`) against
/// `reference`. Steps from `compare_until` on are not compared with the reference (a fault
/// changed the samples on purpose from there: garbage output, or a tool server killed or
/// stopped, whose calls may then read an error); they are still checked for the rest.
pub fn check_store(
    run: &Path,
    reference: &Path,
    steps: u64,
    variant: Algo,
    (std, eps): (StdKind, f32),
    compare_until: u64,
) -> Result<StoreVerdict> {
    let mut v = StoreVerdict::default();
    let (groups, step_lines, typed) = records(run)?;
    let swaps = Store::open(run.join("store"))
        .and_then(|s| s.swaps())
        .with_context(|| format!("reading the swaps of {}", run.display()))?;
    let training = Training::new(variant, swaps);
    let (ref_groups, ref_steps, _) = records(reference)?;

    // Every step once, in order: the store keys steps by number, so a step is there or not.
    let store_steps: Vec<u64> = step_lines
        .iter()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    let expected: Vec<u64> = (0..steps).collect();
    if store_steps != expected {
        let missing = expected.iter().filter(|s| !store_steps.contains(s)).count() as u64;
        v.lost += missing;
        v.problems.push(format!(
            "store steps are {} (expected 0..{steps})",
            ranges(&store_steps)
        ));
    }
    let metrics = mgrpo_actors::run_dir::read_json_lines(&run.join("metrics.jsonl"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let lines: Vec<u64> = metrics.iter().filter_map(|l| l["step"].as_u64()).collect();
    let mut count: BTreeMap<u64, u64> = BTreeMap::new();
    for s in &lines {
        *count.entry(*s).or_default() += 1;
    }
    let line_lost = expected.iter().filter(|s| !count.contains_key(s)).count() as u64;
    let doubled: u64 = count.values().map(|c| c.saturating_sub(1)).sum();
    if line_lost > 0 || doubled > 0 || lines.windows(2).any(|w| w[0] >= w[1]) {
        v.problems.push(format!(
            "metrics.jsonl has steps {} ({line_lost} lost, {doubled} doubled)",
            ranges(&lines)
        ));
    }
    v.lost = v.lost.max(line_lost);
    v.doubled = doubled;

    let prefix = |lines: &[String], key: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| step_of(l, key) < compare_until)
            .cloned()
            .collect()
    };
    let (groups, ref_groups) = (prefix(&groups, "group"), prefix(&ref_groups, "group"));
    let (step_lines, ref_steps) = (prefix(&step_lines, "step"), prefix(&ref_steps, "step"));
    v.identical = groups == ref_groups && step_lines == ref_steps;
    if !v.identical {
        let first = groups
            .iter()
            .zip(&ref_groups)
            .position(|(a, b)| a != b)
            .map_or_else(
                || {
                    format!(
                        "{} groups vs {} in the reference",
                        groups.len(),
                        ref_groups.len()
                    )
                },
                |i| format!("group record {i} differs"),
            );
        let steps_differ = step_lines
            .iter()
            .zip(&ref_steps)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("; step versions {a} vs reference {b}"))
            .unwrap_or_default();
        v.problems.push(format!(
            "store differs from the fault-free reference: {first}{steps_differ}"
        ));
    }

    for g in &typed {
        let trains = (training.main(g.step), training.sub(g.step));
        v.problems.extend(recompute(g, std, eps, trains));
    }
    // Recomputation checks nothing where every group's rewards are equal (all advantages 0):
    // a run that trained must have had something to check.
    let varied = |g: &GroupRecord| g.main.windows(2).any(|w| w[0].reward != w[1].reward);
    if typed.iter().any(|g| training.main(g.step)) && !typed.iter().any(varied) {
        v.problems.push(
            "no group's rewards differed: the stored advantages were never put to the test".into(),
        );
    }
    v.problems.extend(monotone_versions(&metrics));
    Ok(v)
}

/// The step of a group record (JSON) or of a step line (`"<step> <versions>"`).
fn step_of(line: &str, kind: &str) -> u64 {
    if kind == "step" {
        return line
            .split(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
    }
    serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

/// Recomputes a group's advantages from its stored rewards; a message per mismatch. `trains`
/// says whether the main and the sub model took updates at the group's step: a model that did
/// not stores advantages of 0.
pub fn recompute(
    g: &GroupRecord,
    std: StdKind,
    eps: f32,
    (main_trains, sub_trains): (bool, bool),
) -> Vec<String> {
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs()));
    let mut out = Vec::new();
    let rewards: Vec<f32> = g.main.iter().map(|m| m.reward).collect();
    let (adv, stats) = group_advantages(&rewards, std, eps);
    let stored: Vec<f32> = g.main.iter().map(|m| m.advantage).collect();
    // A role that did not train (frozen, expert) stores no advantages.
    let adv = if main_trains {
        adv
    } else {
        vec![0.0; stored.len()]
    };
    if adv.len() != stored.len()
        || !adv.iter().zip(&stored).all(|(a, b)| close(*a, *b))
        || !close(stats.mean, g.main_mean)
    {
        out.push(format!(
            "step {} query {}: main advantages {stored:?} do not recompute from rewards {rewards:?} ({adv:?})",
            g.step, g.query
        ));
    }
    let mut slot_rewards = Vec::new();
    for (k, slots) in g.alignment.iter().enumerate() {
        for s in slots {
            if let SubSlot::Call(i) = s
                && let Some(c) = g
                    .calls
                    .iter()
                    .find(|c| c.rollout as usize == k && c.call == *i)
            {
                slot_rewards.push(c.reward);
            }
        }
    }
    let stats = group_stats(&slot_rewards, std);
    let adv = normalise(&slot_rewards, &stats, eps);
    let stored: Vec<f32> = g
        .alignment
        .iter()
        .zip(&g.sub_advantages)
        .flat_map(|(slots, a)| {
            slots
                .iter()
                .zip(a)
                .filter(|(s, _)| matches!(s, SubSlot::Call(_)))
                .map(|(_, a)| *a)
        })
        .collect();
    let wrong = if sub_trains {
        stats.count != g.sub_count
            || adv.len() != stored.len()
            || !adv.iter().zip(&stored).all(|(a, b)| close(*a, *b))
    } else {
        stored.iter().any(|a| *a != 0.0)
    };
    if wrong {
        out.push(format!(
            "step {} query {}: sub advantages {stored:?} do not recompute from the aligned rewards {slot_rewards:?} ({adv:?})",
            g.step, g.query
        ));
    }
    out
}

/// Within a generation, a role's version never goes back from one step's line to the next.
pub fn monotone_versions(metrics: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for role in ["main", "sub"] {
        let mut last: Option<(u64, u64, u64)> = None;
        for l in metrics {
            let (Some(step), Some(ver)) =
                (l["step"].as_u64(), l[format!("{role}_version")].as_u64())
            else {
                continue;
            };
            let generation = l[format!("{role}_generation")].as_u64().unwrap_or(0);
            if let Some((s, g, v)) = last
                && g == generation
                && ver < v
            {
                out.push(format!(
                    "{role} version went back from v{v} (step {s}) to v{ver} (step {step}) in generation {g}"
                ));
            }
            last = Some((step, generation, ver));
        }
    }
    out
}

/// `0..12, 14, 15..20`-style summary of a list of steps.
fn ranges(steps: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        let mut j = i;
        while j + 1 < steps.len() && steps[j + 1] == steps[j] + 1 {
            j += 1;
        }
        out.push(if j > i {
            format!("{}..{}", steps[i], steps[j] + 1)
        } else {
            steps[i].to_string()
        });
        i = j + 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgrpo_store::{MainRolloutEntry, SubCallEntry};

    fn group(adv0: f32) -> GroupRecord {
        let main = [0.0f32, 1.0]
            .iter()
            .enumerate()
            .map(|(i, r)| MainRolloutEntry {
                rollout: i as u32,
                format: true,
                correct: *r > 0.5,
                reward: *r,
                advantage: if i == 0 { adv0 } else { 1.0 },
                calls: 1,
                role_version: 1,
                role_generation: 0,
            })
            .collect();
        let calls = (0..2)
            .map(|k| SubCallEntry {
                rollout: k,
                call: 0,
                format: true,
                expert: 0.0,
                reward: k as f32,
                role_version: 1,
                role_generation: 0,
            })
            .collect();
        GroupRecord {
            step: 0,
            query: 0,
            question_id: "q".into(),
            main,
            calls,
            alignment: vec![vec![SubSlot::Call(0)], vec![SubSlot::Call(0)]],
            sub_advantages: vec![vec![-1.0], vec![1.0]],
            main_mean: 0.5,
            main_std: 0.5,
            sub_mean: 0.5,
            sub_std: 0.5,
            sub_count: 2,
        }
    }

    #[test]
    fn stored_advantages_must_recompute_from_stored_rewards() {
        // Rewards 0 and 1, population std 0.5: advantages −1 and +1.
        let trains = (true, true);
        assert!(recompute(&group(-1.0), StdKind::Population, 0.0, trains).is_empty());
        let bad = recompute(&group(0.3), StdKind::Population, 0.0, trains);
        assert_eq!(bad.len(), 1, "{bad:?}");
        // Zeroed advantages of a role that trained are caught (they used to pass as "not
        // trained")…
        let mut zeroed = group(-1.0);
        zeroed.main.iter_mut().for_each(|m| m.advantage = 0.0);
        zeroed.sub_advantages = vec![vec![0.0], vec![0.0]];
        let bad = recompute(&zeroed, StdKind::Population, 0.0, trains);
        assert_eq!(bad.len(), 2, "{bad:?}");
        // …and a role that did not train must store none.
        assert!(recompute(&zeroed, StdKind::Population, 0.0, (false, false)).is_empty());
        let bad = recompute(&group(-1.0), StdKind::Population, 0.0, (false, true));
        assert_eq!(bad.len(), 1, "{bad:?}");
    }

    #[test]
    fn training_follows_the_variant_and_the_swaps() {
        let swap = |step, role: &str, to: &str, generation| SwapRecord {
            step,
            role: role.into(),
            request: to.into(),
            from_serving: "learner".into(),
            from_version: 0,
            to_serving: to.into(),
            weights: "keep".into(),
            generation,
            version: 0,
            node: None,
            duration_ms: 0,
        };
        let t = Training::new(
            Algo::Mgrpo,
            vec![swap(5, "sub", "expert", 1), swap(9, "sub", "learner", 2)],
        );
        assert!(t.main(0) && t.main(7) && t.sub(4) && t.sub(9));
        assert!(!t.sub(5) && !t.sub(8));
        let frozen = Training::new(Algo::FrozenSub, vec![]);
        assert!(frozen.main(3) && !frozen.sub(3));
        let shared = Training::new(Algo::Shared, vec![swap(2, "main", "frozen", 1)]);
        assert!(shared.sub(1) && !shared.sub(2) && !shared.main(2));
    }

    /// A run directory with a real sled store holding `steps` steps (one group each, the first
    /// reward of step 1 set to `reward`) and the given metrics lines.
    fn run_with(dir: &Path, steps: u64, reward: f32, lines: &[u64]) {
        std::fs::create_dir_all(dir).unwrap();
        let store = Store::open(dir.join("store")).unwrap();
        for step in 0..steps {
            let mut g = group(-1.0);
            g.step = step;
            if step == 1 {
                g.main[0].reward = reward;
            }
            let record = mgrpo_store::StepRecord {
                step,
                metrics: Default::default(),
                role_versions: [("main".to_string(), step + 1)].into(),
            };
            store
                .commit_step(&mgrpo_store::StepCommit {
                    record,
                    groups: vec![g],
                    roles: vec![],
                    checkpoints: vec![],
                    tool_calls: vec![],
                })
                .unwrap();
        }
        let text: String = lines
            .iter()
            .map(|s| format!("{{\"step\":{s},\"main_version\":{}}}\n", s + 1))
            .collect();
        std::fs::write(dir.join("metrics.jsonl"), text).unwrap();
    }

    #[test]
    fn the_checker_sees_a_changed_record_a_lost_step_and_a_doubled_line() {
        let tmp = tempfile::tempdir().unwrap();
        let (reference, same, changed, short) = (
            tmp.path().join("ref"),
            tmp.path().join("same"),
            tmp.path().join("changed"),
            tmp.path().join("short"),
        );
        run_with(&reference, 3, 0.0, &[0, 1, 2]);
        run_with(&same, 3, 0.0, &[0, 1, 2]);
        run_with(&changed, 3, 0.5, &[0, 1, 1, 2]);
        run_with(&short, 2, 0.0, &[0, 1]);
        let check = |run: &Path| {
            let algo = (StdKind::Population, 0.0);
            check_store(run, &reference, 3, Algo::Mgrpo, algo, u64::MAX).unwrap()
        };

        let v = check(&same);
        assert!(v.identical && v.problems.is_empty(), "{:?}", v.problems);
        let v = check(&changed);
        assert!(!v.identical);
        assert_eq!((v.lost, v.doubled), (0, 1));
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("group record 1 differs")),
            "{:?}",
            v.problems
        );
        // The changed reward no longer gives the stored advantages.
        assert!(
            v.problems.iter().any(|p| p.contains("do not recompute")),
            "{:?}",
            v.problems
        );
        let v = check(&short);
        assert_eq!(v.lost, 1);
        assert!(!v.identical);
    }

    #[test]
    fn versions_may_not_go_back_within_a_generation() {
        let m = |s: u64, v: u64, g: u64| serde_json::json!({"step": s, "main_version": v, "main_generation": g});
        assert!(monotone_versions(&[m(0, 1, 0), m(1, 2, 0), m(2, 0, 1)]).is_empty());
        assert_eq!(monotone_versions(&[m(0, 2, 0), m(1, 1, 0)]).len(), 1);
        assert_eq!(ranges(&[0, 1, 2, 4, 6, 7]), "0..3, 4, 6..8");
    }
}
