//! Fault plans: what `mgrpo chaos --plan FILE` reads (docs/faults.md). A plan names the cluster
//! config to run, how many steps, and a list of faults, each with a kind, a target and a
//! trigger. Random triggers are drawn from (plan seed, run seed, fault index), so a run's
//! schedule is reproduced by its seed alone.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mgrpo_actors::faults::FaultPoint;
use mgrpo_actors::role::Role;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// A plan file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Its name (in reports).
    #[serde(default)]
    pub name: String,
    /// The cluster config to run, relative to the plan file.
    pub config: PathBuf,
    /// Training steps of each run (overrides the config's).
    pub steps: u64,
    /// Run the config in one `mgrpo train` process (node `local`) instead of its nodes.
    #[serde(default)]
    pub one_process: bool,
    /// Run under this schedule (`sync` or `async`; overrides the config's `algo.schedule`).
    #[serde(default)]
    pub schedule: Option<mgrpo_actors::config::Schedule>,
    /// The plan's seed: random triggers are drawn from it and the run's seed.
    #[serde(default)]
    pub seed: u64,
    /// Training must finish within this many seconds after the last fault healed.
    #[serde(default = "default_bound")]
    pub recovery_bound_s: f64,
    /// The faults.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// `count` random copies of a template fault (soak plans).
    #[serde(default)]
    pub repeat: Vec<Repeat>,
}

fn default_bound() -> f64 {
    120.0
}

/// A template fault injected `count` times, each with a trigger drawn at random. (Unknown keys
/// are refused by the flattened [`FaultKind`].)
#[derive(Debug, Clone, Deserialize)]
pub struct Repeat {
    /// How many.
    pub count: usize,
    /// Triggers are drawn among these steps, `[first, last]` …
    #[serde(default)]
    pub steps: Option<[u64; 2]>,
    /// … or among these times, `[from_s, to_s]` after the start (kills in quick succession:
    /// a node killed again while the cluster is still recovering).
    #[serde(default)]
    pub seconds: Option<[f64; 2]>,
    /// The fault (its trigger is ignored).
    #[serde(flatten)]
    pub fault: FaultKind,
    /// Node names to draw the target from, for `kill_node` (default: every node).
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// One fault of a plan. (Unknown keys are refused by the flattened [`FaultKind`].)
#[derive(Debug, Clone, Deserialize)]
pub struct FaultSpec {
    /// What.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// When it strikes once step `N` is under way (step `N-1` committed).
    #[serde(default)]
    pub at_step: Option<u64>,
    /// When it strikes, in seconds after training started.
    #[serde(default)]
    pub after_s: Option<f64>,
    /// A step drawn in `[first, last]` from the plan and run seeds.
    #[serde(default)]
    pub random: Option<[u64; 2]>,
}

/// The kinds of fault (`kind = "..."` with its fields).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// A role's actor panics in its next request; its supervisor restarts it.
    KillActor {
        /// planner, executor, judge, learner-main, learner-sub, store, coordinator.
        role: String,
    },
    /// A role's actor stops answering for `ms` in its next request.
    StallActor {
        /// The role.
        role: String,
        /// Milliseconds.
        ms: u64,
    },
    /// SIGKILL a node process; start it again after `down_s`.
    KillNode {
        /// The node (`*`: drawn at random).
        node: String,
        /// Seconds down.
        #[serde(default = "one_second")]
        down_s: f64,
    },
    /// Stop forwarding on a link (`a-b`), one direction (`a>b`) or both, for `down_s`.
    CutLink {
        /// `a-b` (both directions) or `a>b` (bytes from a to b only).
        link: String,
        /// Seconds.
        down_s: f64,
    },
    /// Hold every frame on a link `ms ± jitter_ms` for `for_s`.
    DelayLink {
        /// `a-b` or `a>b`.
        link: String,
        /// Milliseconds.
        ms: u64,
        /// Milliseconds of uniform jitter.
        #[serde(default)]
        jitter_ms: u64,
        /// Seconds.
        for_s: f64,
    },
    /// Corrupt the next frame on a link (its length header becomes garbage).
    CorruptLink {
        /// `a-b` or `a>b`.
        link: String,
    },
    /// Close a link half-way through its next frame.
    CloseLink {
        /// `a-b` or `a>b`.
        link: String,
    },
    /// A fail point inside the code fails once: `store_commit`, `checkpoint_write`,
    /// `publish_main`, `publish_sub`, `swap_apply`.
    FailPoint {
        /// The point.
        point: String,
    },
    /// A role's model emits garbage tokens for its next `requests` requests (planner or
    /// executor). This changes the samples, so the store is not compared with the reference;
    /// the garbled turns must instead be stored with format reward 0, and nothing may crash.
    GarbageOutput {
        /// planner or executor.
        role: String,
        /// How many requests.
        #[serde(default = "one")]
        requests: u32,
    },
    /// A client connects to a node and never says anything, for `for_s`.
    StallHandshake {
        /// The node.
        node: String,
        /// Seconds.
        for_s: f64,
    },
    /// A client sends random bytes to a node.
    GarbageFrames {
        /// The node.
        node: String,
    },
    /// A client announces a frame larger than the node accepts.
    OversizedFrame {
        /// The node.
        node: String,
    },
    /// SIGKILL the process of a `[[task.tools]]` server on the executors' node. A call in
    /// flight reads `server failed`; the next call starts a fresh server. The transcripts may
    /// change from that step on, so the store is compared with the reference up to it.
    KillToolServer {
        /// The server's `name`.
        server: String,
    },
    /// SIGSTOP a tool server for `for_s` (SIGCONT after, if it still exists): calls in that
    /// time hang past `timeout_ms`, read `timed out`, and the client kills and replaces it.
    /// Compared as [`FaultKind::KillToolServer`].
    StallToolServer {
        /// The server's `name`.
        server: String,
        /// Seconds.
        for_s: f64,
    },
    /// SIGKILL the scorer command (`reward`: `task.reward`, `expert`: `task.expert`) on the
    /// judge's node: the scoring in flight is asked again of a fresh process, so nothing
    /// changes in the store.
    KillScorer {
        /// `reward` or `expert`.
        scorer: String,
    },
    /// SIGSTOP the scorer command for `for_s` (SIGCONT after, if it still exists): a request
    /// in that time times out, the process is killed and the request asked again.
    StallScorer {
        /// `reward` or `expert`.
        scorer: String,
        /// Seconds.
        for_s: f64,
    },
}

fn one_second() -> f64 {
    1.0
}

fn one() -> u32 {
    1
}

impl FaultKind {
    /// The kind's name, as in plans and reports.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::KillActor { .. } => "kill_actor",
            FaultKind::StallActor { .. } => "stall_actor",
            FaultKind::KillNode { .. } => "kill_node",
            FaultKind::CutLink { .. } => "cut_link",
            FaultKind::DelayLink { .. } => "delay_link",
            FaultKind::CorruptLink { .. } => "corrupt_link",
            FaultKind::CloseLink { .. } => "close_link",
            FaultKind::FailPoint { .. } => "fail_point",
            FaultKind::GarbageOutput { .. } => "garbage_output",
            FaultKind::StallHandshake { .. } => "stall_handshake",
            FaultKind::GarbageFrames { .. } => "garbage_frames",
            FaultKind::OversizedFrame { .. } => "oversized_frame",
            FaultKind::KillToolServer { .. } => "kill_tool_server",
            FaultKind::StallToolServer { .. } => "stall_tool_server",
            FaultKind::KillScorer { .. } => "kill_scorer",
            FaultKind::StallScorer { .. } => "stall_scorer",
        }
    }

    /// Whether the fault is armed inside a node (needs a build with the `faults` feature).
    pub fn in_node(&self) -> bool {
        matches!(
            self,
            FaultKind::KillActor { .. }
                | FaultKind::StallActor { .. }
                | FaultKind::FailPoint { .. }
                | FaultKind::GarbageOutput { .. }
        )
    }

    /// How long the fault lasts once injected (0: at once).
    pub fn duration_s(&self) -> f64 {
        match self {
            FaultKind::StallActor { ms, .. } => *ms as f64 / 1000.0,
            FaultKind::KillNode { down_s, .. } | FaultKind::CutLink { down_s, .. } => *down_s,
            FaultKind::DelayLink { for_s, .. }
            | FaultKind::StallHandshake { for_s, .. }
            | FaultKind::StallToolServer { for_s, .. }
            | FaultKind::StallScorer { for_s, .. } => *for_s,
            _ => 0.0,
        }
    }
}

/// A role named in a plan.
pub fn parse_role(name: &str) -> Result<Role> {
    Role::ALL
        .into_iter()
        .find(|r| r.name() == name)
        .with_context(|| {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            format!("unknown role {name:?} (known: {})", known.join(", "))
        })
}

/// A fail point named in a plan, with the role whose node it strikes on.
pub fn parse_point(name: &str) -> Result<(FaultPoint, Role)> {
    Ok(match name {
        "store_commit" => (FaultPoint::StoreCommit, Role::Store),
        "checkpoint_write" => (FaultPoint::CheckpointWrite, Role::LearnerSub),
        "checkpoint_write_main" => (FaultPoint::CheckpointWrite, Role::LearnerMain),
        "publish_main" => (FaultPoint::Publish(Role::LearnerMain), Role::LearnerMain),
        "publish_sub" => (FaultPoint::Publish(Role::LearnerSub), Role::LearnerSub),
        "swap_apply" => (FaultPoint::SwapApply, Role::LearnerSub),
        other => bail!(
            "unknown fail point {other:?} (known: store_commit, checkpoint_write, checkpoint_write_main, publish_main, publish_sub, swap_apply)"
        ),
    })
}

/// A link named in a plan: its two nodes and which directions are affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// One end.
    pub a: String,
    /// The other.
    pub b: String,
    /// Only bytes from `a` to `b` (else both directions).
    pub one_way: bool,
}

/// Parses `a-b` or `a>b`.
pub fn parse_link(s: &str) -> Result<LinkSpec> {
    let (a, b, one_way) = if let Some((a, b)) = s.split_once('>') {
        (a, b, true)
    } else if let Some((a, b)) = s.split_once('-') {
        (a, b, false)
    } else {
        bail!("a link is `a-b` (both directions) or `a>b` (from a to b), not {s:?}");
    };
    Ok(LinkSpec {
        a: a.trim().into(),
        b: b.trim().into(),
        one_way,
    })
}

/// When a fault of one run strikes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// Once this step is under way.
    Step(u64),
    /// This long after training started.
    Seconds(f64),
}

/// A fault of one run: its kind with concrete targets and its trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// Index in the run's schedule.
    pub index: usize,
    /// What.
    pub kind: FaultKind,
    /// When.
    pub trigger: Trigger,
}

impl Plan {
    /// Reads and checks a plan file.
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut plan: Plan = toml::from_str(&text)
            .with_context(|| format!("{}: not a fault plan", path.display()))?;
        if plan.name.is_empty() {
            plan.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        let config = path.parent().unwrap_or(Path::new(".")).join(&plan.config);
        for (i, f) in plan.faults.iter().enumerate() {
            let n = [f.at_step.is_some(), f.after_s.is_some(), f.random.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if n != 1 {
                bail!(
                    "{}: fault {} ({}) needs exactly one of at_step, after_s, random",
                    path.display(),
                    i + 1,
                    f.kind.name()
                );
            }
        }
        for (i, r) in plan.repeat.iter().enumerate() {
            if r.steps.is_some() == r.seconds.is_some() {
                bail!(
                    "{}: repeat {} ({}) needs exactly one of steps, seconds",
                    path.display(),
                    i + 1,
                    r.fault.name()
                );
            }
        }
        plan.check_steps(path)?;
        Ok((plan, config))
    }

    /// Every step trigger falls inside the run: a fault at a step the plan's `steps` never
    /// reach would never fire, and the run would pass without testing it.
    fn check_steps(&self, path: &Path) -> Result<()> {
        let late = |last: u64| last >= self.steps;
        for (i, f) in self.faults.iter().enumerate() {
            let last = f.at_step.or(f.random.map(|[lo, hi]| lo.max(hi)));
            if let Some(last) = last.filter(|s| late(*s)) {
                bail!(
                    "{}: fault {} ({}) is triggered at step {last}, but the plan runs steps 0..{} \
                     (`steps = {}`): it would never fire",
                    path.display(),
                    i + 1,
                    f.kind.name(),
                    self.steps,
                    self.steps
                );
            }
        }
        for (i, r) in self.repeat.iter().enumerate() {
            if let Some([lo, hi]) = r.steps.filter(|[lo, hi]| late(*lo.max(hi))) {
                bail!(
                    "{}: repeat {} ({}) draws steps in [{lo}, {hi}], but the plan runs steps \
                     0..{} (`steps = {}`)",
                    path.display(),
                    i + 1,
                    r.fault.name(),
                    self.steps,
                    self.steps
                );
            }
        }
        Ok(())
    }

    /// The schedule of the run with seed `run_seed`: every fault with its trigger, random ones
    /// drawn, `kill_node` targets `*` drawn from `nodes`; sorted by trigger.
    pub fn schedule(&self, run_seed: u64, nodes: &[String]) -> Vec<Scheduled> {
        let mut rng =
            ChaCha8Rng::seed_from_u64(mgrpo_algo::derive_seed(self.seed, &[run_seed, 0xC4A05]));
        let mut out = Vec::new();
        let pick_node = |kind: &FaultKind, from: &[String], rng: &mut ChaCha8Rng| match kind {
            FaultKind::KillNode { node, down_s } if node == "*" => {
                let pool = if from.is_empty() { nodes } else { from };
                FaultKind::KillNode {
                    node: pool[rng.random_range(0..pool.len())].clone(),
                    down_s: *down_s,
                }
            }
            k => k.clone(),
        };
        for f in &self.faults {
            let trigger = match (f.at_step, f.after_s, f.random) {
                (Some(s), _, _) => Trigger::Step(s),
                (_, Some(t), _) => Trigger::Seconds(t),
                (_, _, Some([lo, hi])) => Trigger::Step(rng.random_range(lo..=hi.max(lo))),
                _ => Trigger::Step(0),
            };
            let kind = pick_node(&f.kind, &[], &mut rng);
            out.push((kind, trigger));
        }
        for r in &self.repeat {
            for _ in 0..r.count {
                let trigger = match (r.steps, r.seconds) {
                    (_, Some([lo, hi])) => Trigger::Seconds(if hi > lo {
                        rng.random_range(lo..hi)
                    } else {
                        lo
                    }),
                    (Some([lo, hi]), None) => Trigger::Step(rng.random_range(lo..=hi.max(lo))),
                    (None, None) => Trigger::Step(0),
                };
                let kind = pick_node(&r.fault, &r.nodes, &mut rng);
                out.push((kind, trigger));
            }
        }
        let key = |t: &Trigger| match t {
            Trigger::Step(s) => (*s as f64, 0.0),
            Trigger::Seconds(x) => (0.0, *x),
        };
        out.sort_by(|a, b| {
            key(&a.1)
                .partial_cmp(&key(&b.1))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        out.into_iter()
            .enumerate()
            .map(|(index, (kind, trigger))| Scheduled {
                index,
                kind,
                trigger,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
config = "cluster.toml"
steps = 10
seed = 5
[[faults]]
kind = "kill_node"
node = "*"
random = [2, 8]
[[faults]]
kind = "cut_link"
link = "sub>hub"
down_s = 2.0
at_step = 3
[[repeat]]
kind = "kill_node"
node = "*"
count = 4
steps = [1, 9]
"#;

    #[test]
    fn a_plan_parses_and_its_schedule_is_a_function_of_the_seed() {
        let plan: Plan = toml::from_str(PLAN).unwrap();
        let nodes: Vec<String> = ["hub", "main", "sub"].map(String::from).to_vec();
        let a = plan.schedule(1, &nodes);
        assert_eq!(a.len(), 6);
        assert_eq!(a, plan.schedule(1, &nodes), "same seed, same schedule");
        assert!(
            (0..20).any(|s| plan.schedule(s, &nodes) != a),
            "other seeds draw other schedules"
        );
        for s in &a {
            match (&s.kind, s.trigger) {
                (FaultKind::KillNode { node, .. }, Trigger::Step(t)) => {
                    assert!(nodes.contains(node) && (1..=9).contains(&t));
                }
                (FaultKind::CutLink { .. }, t) => assert_eq!(t, Trigger::Step(3)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn bad_plans_are_named() {
        let e = toml::from_str::<Plan>("config = \"c\"\nsteps = 1\n[[faults]]\nkind = \"melt\"\n")
            .expect_err("an unknown fault kind")
            .to_string();
        assert!(
            e.contains("unknown variant `melt`") && e.contains("kill_node"),
            "{e}"
        );
        assert_eq!(
            parse_link("sub>hub").unwrap(),
            LinkSpec {
                a: "sub".into(),
                b: "hub".into(),
                one_way: true
            }
        );
        let e = parse_link("subhub").unwrap_err().to_string();
        assert!(
            e.contains("a link is `a-b`") && e.contains("\"subhub\""),
            "{e}"
        );
        assert!(parse_role("planner").is_ok());
        let e = parse_role("chef").unwrap_err().to_string();
        assert!(e.contains("unknown role \"chef\""), "{e}");
        assert!(parse_point("store_commit").is_ok());
        let e = parse_point("x").unwrap_err().to_string();
        assert!(e.contains("unknown fail point \"x\""), "{e}");
    }

    #[test]
    fn every_shipped_plan_loads_and_fires_inside_its_steps() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/chaos");
        let mut plans = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            // cluster-tiny.toml and lighthouses-tiny.toml are configs the plans run, not plans.
            let config_file = ["cluster-tiny.toml", "lighthouses-tiny.toml"];
            if path
                .file_name()
                .is_some_and(|n| !config_file.iter().any(|c| n == *c))
            {
                let (_, config) = Plan::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
                assert!(config.is_file(), "{}: {}", path.display(), config.display());
                plans += 1;
            }
        }
        assert!(plans >= 7, "{plans} plans in {}", dir.display());
    }

    #[test]
    fn a_trigger_past_the_plans_last_step_is_a_plan_error() {
        let plan: Plan = toml::from_str(PLAN).unwrap();
        assert!(plan.check_steps(Path::new("p.toml")).is_ok());
        for (field, fixed) in [
            ("at_step = 3", "at_step = 10"),
            ("random = [2, 8]", "random = [2, 12]"),
            ("steps = [1, 9]", "steps = [1, 10]"),
        ] {
            let late: Plan = toml::from_str(&PLAN.replace(field, fixed)).unwrap();
            let e = late
                .check_steps(Path::new("p.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("p.toml: ") && e.contains("steps 0..10"),
                "{fixed}: {e}"
            );
        }
    }
}
