//! Training through the real actors and the real sled store on a tiny configuration.
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mgrpo_actors::cluster::agent::NodeAgentMsg;
use mgrpo_actors::faults::{Fault, FaultAction, FaultPoint};
use mgrpo_actors::node::NodeEvent;
use mgrpo_actors::role::{Role, group};
use mgrpo_actors::rpc;
use mgrpo_actors::{Config, RunDir, prepare, run_steps, start_node};
use mgrpo_algo::{MainRolloutStat, SubCallStat, SubSettings, group_advantages, sub_advantages};
use mgrpo_store::{GroupRecord, Store};

fn tiny(steps: u64) -> Config {
    let text = include_str!("../../examples/tiny.toml");
    let mut c = Config::parse(text, Path::new("examples/tiny.toml")).unwrap();
    c.train.steps = steps;
    c
}

/// Trains `config` in `dir` to its step count; `fault` is armed on the started node first,
/// through its node agent (as a fault plan would). Returns the node events seen.
async fn train(config: Config, dir: &Path, resume: bool, fault: Option<Fault>) -> Vec<NodeEvent> {
    println!("run seed {} in {}", config.run.seed, dir.display());
    let (ctx, store, _) = prepare(config, RunDir::new(dir), resume, |_, _, _, _| {}).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let node = start_node(
        ctx.clone(),
        &store,
        tx,
        Arc::new(AtomicBool::new(false)),
        Some(ev_tx),
    )
    .await
    .unwrap();
    if let Some(fault) = fault {
        println!(
            "seed {}: arming {fault:?} before step 0",
            ctx.config.run.seed
        );
        let agents = rpc::members::<NodeAgentMsg>(&ctx, group::NODE_AGENT);
        rpc::call_member(
            &agents[0],
            |reply| NodeAgentMsg::InjectFault {
                fault: rpc::Wire(fault),
                reply,
            },
            None,
        )
        .await
        .unwrap();
    }
    run_steps(&node).await.unwrap();
    // Every event was sent before the supervisor stopped: wait for that, not for a while.
    node.supervisor
        .stop_and_wait(None, Some(Duration::from_secs(60)))
        .await
        .expect("the node supervisor stops");
    drop(store);
    // The run is over once its store can be opened again (sled lets go of its lock when the
    // last handle and its flusher are gone).
    drop(open_store(dir));
    let mut events = Vec::new();
    while let Ok(e) = ev_rx.try_recv() {
        events.push(e);
    }
    events
}

/// Copies run `from`'s warm start into the fresh run directory `to`: a later run of the same
/// config then skips the identical warm start.
fn reuse_warm_start(from: &Path, to: &Path) {
    RunDir::new(to)
        .adopt_warm_start(&RunDir::new(from))
        .unwrap();
}

/// A tiny config warmed up long enough that the main agent delegates: rollouts make calls,
/// rewards differ within a group, advantages are not all 0 and alignment holds real calls —
/// so records compared between two runs have something in them that could differ.
fn delegating(steps: u64) -> Config {
    let mut c = tiny(steps);
    c.warmup.steps = 150;
    c.warmup.batch_size = 16;
    c.warmup.lr = 3e-3;
    // In the world only: a micro warm start spread over nine worlds' names learns too little
    // for rewards to differ.
    c.warmup.copies = 0;
    c
}

/// `delegating`'s warm start, made once for the whole test binary (every test here uses the
/// same seed, world and warm-start settings) and copied into `dir`.
fn delegating_warm_start(dir: &Path) {
    static WARM: OnceLock<tempfile::TempDir> = OnceLock::new();
    let warm = WARM.get_or_init(|| {
        let warm = tempfile::tempdir().unwrap();
        let (ctx, store, report) = prepare(
            delegating(0),
            RunDir::new(warm.path()),
            false,
            |_, _, _, _| {},
        )
        .unwrap();
        assert!(!report.is_empty(), "the shared warm start trained");
        drop((ctx, store));
        warm
    });
    reuse_warm_start(warm.path(), dir);
}

/// Asserts the groups of a run have what a comparison needs to mean something: some group's
/// rewards differ (so advantages are not all 0) and some rollout delegated (so alignment holds
/// calls and the sub-agents' advantages are not all padding).
fn assert_informative(groups: &[GroupRecord]) {
    assert!(
        groups
            .iter()
            .any(|g| g.main.windows(2).any(|w| w[0].reward != w[1].reward)),
        "some group's rewards differ"
    );
    assert!(
        groups
            .iter()
            .any(|g| g.main.iter().any(|r| r.advantage != 0.0)),
        "some main advantage is not 0"
    );
    assert!(
        groups.iter().any(|g| g
            .alignment
            .iter()
            .flatten()
            .any(|s| matches!(s, mgrpo_store::SubSlot::Call(_)))),
        "some aligned slot holds a real call"
    );
    assert!(
        groups
            .iter()
            .any(|g| g.sub_advantages.iter().flatten().any(|a| *a != 0.0)),
        "some sub advantage is not 0"
    );
}

/// The files of role `role`'s checkpoint `version` in run `dir` (weights, optimizer state…),
/// by name.
fn checkpoint_files(dir: &Path, role: &str, version: u64) -> Vec<(String, Vec<u8>)> {
    let path = RunDir::new(dir).checkpoint_path(role, version);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|f| {
            let f = f.unwrap();
            (
                f.file_name().to_string_lossy().into_owned(),
                std::fs::read(f.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", path.display());
    files
}

/// Opens run `dir`'s store, waiting (up to a minute) for a finished run to let go of it.
fn open_store(dir: &Path) -> Store {
    let start = std::time::Instant::now();
    loop {
        match Store::open(dir.join("store")) {
            Ok(s) => return s,
            Err(e) if start.elapsed() < Duration::from_secs(60) => {
                assert!(e.to_string().contains("lock"), "{e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("the store of {} stayed locked: {e}", dir.display()),
        }
    }
}

fn groups_of(dir: &Path) -> Vec<GroupRecord> {
    let store = open_store(dir);
    let steps = store.steps().unwrap();
    steps
        .iter()
        .flat_map(|s| store.groups(s.step).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trains_and_store_matches_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let config = delegating(3);
    delegating_warm_start(dir.path());
    train(config.clone(), dir.path(), false, None).await;
    assert_informative(&groups_of(dir.path()));
    let store = open_store(dir.path());
    let steps = store.steps().unwrap();
    assert_eq!(
        steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "exactly the steps run"
    );
    assert_eq!(steps[2].role_versions["main"], 3);
    assert_eq!(steps[2].role_versions["sub"], 3);
    assert_eq!(store.role_version("main").unwrap().unwrap().version, 3);
    // Every dev evaluation, the one before the first step included, is in eval.jsonl, and
    // best.json names the first version with the highest of them, checkpointed for both roles.
    let evals: Vec<(u64, f64)> = std::fs::read_to_string(dir.path().join("eval.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["report"]["accuracy"].as_f64().unwrap(),
            )
        })
        .collect();
    let eval_steps: Vec<u64> = evals.iter().map(|e| e.0).collect();
    assert_eq!(eval_steps, vec![0, 2, 3]);
    let best = RunDir::new(dir.path()).best().expect("best.json");
    let top = evals.iter().map(|e| e.1).fold(f64::MIN, f64::max);
    let first_top = evals.iter().find(|e| e.1 == top).unwrap();
    assert_eq!((best.step, best.dev_accuracy), *first_top);
    assert_eq!(best.version, best.step);
    for role in ["main", "sub"] {
        assert!(
            RunDir::new(dir.path())
                .checkpoint_path(role, best.version)
                .join("model.bpk")
                .exists()
        );
    }
    let a = &config.algo;
    for s in &steps {
        let groups = store.groups(s.step).unwrap();
        assert_eq!(groups.len(), a.queries_per_step);
        for g in &groups {
            assert_eq!(g.main.len(), a.group_size);
            // Main advantages = recomputation from the stored rewards.
            let rewards: Vec<f32> = g.main.iter().map(|r| r.reward).collect();
            let (adv, stats) = group_advantages(&rewards, a.std, a.eps);
            for (r, x) in g.main.iter().zip(&adv) {
                assert!((r.advantage - x).abs() < 1e-6, "main advantage");
            }
            assert!((g.main_mean - stats.mean).abs() < 1e-6);
            // Sub alignment and advantages = recomputation from the stored call records.
            let main: Vec<MainRolloutStat> = g
                .main
                .iter()
                .map(|r| MainRolloutStat {
                    version: 1,
                    step: s.step,
                    query: g.query,
                    rollout: r.rollout,
                    reward: r.reward,
                    format: r.format,
                    correct: r.correct,
                    calls: r.calls,
                })
                .collect();
            let calls: Vec<SubCallStat> = g
                .calls
                .iter()
                .map(|c| SubCallStat {
                    version: 1,
                    step: s.step,
                    query: g.query,
                    rollout: c.rollout,
                    call: c.call,
                    format: c.format,
                    expert: c.expert,
                })
                .collect();
            let settings = SubSettings {
                d_max: a.d_max,
                run_seed: config.run.seed,
                weights: a.weights,
                std: a.std,
                eps: a.eps,
            };
            let sub = sub_advantages(&main, &calls, &settings).unwrap();
            assert_eq!(g.alignment.len(), a.group_size);
            for (k, al) in sub.alignment.iter().enumerate() {
                assert_eq!(g.alignment[k].len(), a.d_max);
                for (j, slot) in al.slots.iter().enumerate() {
                    assert_eq!(mgrpo_algo::Slot::from(g.alignment[k][j]), *slot);
                    assert!((g.sub_advantages[k][j] - sub.slot_advantages[k][j]).abs() < 1e-6);
                }
            }
        }
        assert_eq!(
            s.metrics["main_rows"] as usize,
            a.queries_per_step * a.group_size
        );
        assert_eq!(
            s.metrics["sub_rows"] as usize,
            a.queries_per_step * a.group_size * a.d_max
        );
    }
    assert!(dir.path().join("metrics.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_run_equals_uninterrupted() {
    let whole = tempfile::tempdir().unwrap();
    delegating_warm_start(whole.path());
    train(delegating(4), whole.path(), false, None).await;
    let parts = tempfile::tempdir().unwrap();
    delegating_warm_start(parts.path());
    train(delegating(2), parts.path(), false, None).await;
    train(delegating(4), parts.path(), true, None).await;
    let (a, b) = (groups_of(whole.path()), groups_of(parts.path()));
    assert_eq!(a.len(), 4 * 2);
    // Steps 2 and 3 ran after the resume: what they sampled and how they were scored depends
    // on the weights, optimizer state and seeds the resume restored.
    assert_informative(&a[4..]);
    assert_eq!(
        a, b,
        "rewards, alignment and advantages identical after resume"
    );
    // Steps 2 and 3 updated through the restored optimizer state (Adam's moments): the final
    // checkpoints are equal byte for byte — weights and progress. `optimizer.bin` is keyed by
    // parameter ids, which are drawn anew whenever a model is loaded, so its bytes differ
    // between processes; what it holds shows in the weights it produced.
    for role in ["main", "sub"] {
        let (a, b) = (
            checkpoint_files(whole.path(), role, 4),
            checkpoint_files(parts.path(), role, 4),
        );
        let names = |f: &[(String, Vec<u8>)]| f.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b), "{role}: the same files");
        assert!(
            names(&a).contains(&"model.bpk".to_string()),
            "{:?}",
            names(&a)
        );
        for ((name, x), (_, y)) in a.iter().zip(&b).filter(|(f, _)| f.0 != "optimizer.bin") {
            assert!(
                x == y,
                "{role}'s {name} after step 4 differs between the resumed and the whole run{}",
                if name.ends_with(".json") {
                    format!(
                        ": {} vs {}",
                        String::from_utf8_lossy(x),
                        String::from_utf8_lossy(y)
                    )
                } else {
                    String::new()
                }
            );
        }
    }
}

/// What checkpoint `version` of `role` in run `dir` says of one row: its log-probabilities (the
/// files hold parameter ids drawn at each load, so their bytes differ between runs).
fn score(dir: &Path, role: &str, version: u64) -> Vec<Vec<f32>> {
    let device = mgrpo_models::DeviceSpec::flex_cpu().to_device().unwrap();
    let row = vec![1, 7, 9, 30, 2, 11, 5, 40, 3];
    let path = RunDir::new(dir).checkpoint_path(role, version);
    let ck = mgrpo_models::load_checkpoint(&path, &device, None).unwrap();
    ck.policy.score(std::slice::from_ref(&row)).unwrap()
}

/// Whether checkpoint `version` of `role` in run `dir` holds `file`.
fn checkpoint_has(dir: &Path, role: &str, version: u64, file: &str) -> bool {
    let path = RunDir::new(dir).checkpoint_path(role, version);
    path.join(file).is_file()
}

/// LoRA roles (`models.ROLE.lora_rank > 0`): the warm start trains every weight, as without
/// LoRA, and RL trains adapters attached to it (checkpoints after version 0 carry them);
/// `warmup.lora = true` trains adapters in the warm start too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lora_roles_warm_start_every_weight_unless_told() {
    let lora = |warm_lora: bool| {
        let mut c = tiny(1);
        c.models.main.lora_rank = 4;
        c.models.sub.lora_rank = 4;
        c.warmup.lora = warm_lora;
        c
    };
    let (plain, full, adapted) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    train(tiny(1), plain.path(), false, None).await;
    train(lora(false), full.path(), false, None).await;
    train(lora(true), adapted.path(), false, None).await;
    let adapters =
        |dir: &Path, role: &str, version: u64| checkpoint_has(dir, role, version, "lora.bpk");
    for role in ["main", "sub"] {
        assert_eq!(
            score(full.path(), role, 0),
            score(plain.path(), role, 0),
            "{role}: the warm start of a LoRA role is the full one"
        );
        assert!(!adapters(full.path(), role, 0), "{role}: no adapters yet");
        assert!(adapters(full.path(), role, 1), "{role}: RL trains adapters");
        assert!(
            adapters(adapted.path(), role, 0),
            "{role}: warmup.lora trains them in the warm start"
        );
        assert_ne!(
            score(adapted.path(), role, 0),
            score(plain.path(), role, 0),
            "{role}: a warm start through adapters is another one"
        );
    }
}

/// `warmup.keep_optimizer`: the warm start saves each model's AdamW state beside the same
/// weights, and RL's first update continues that state instead of a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_warm_start_optimizer_carries_into_rl() {
    let fresh = tempfile::tempdir().unwrap();
    train(tiny(1), fresh.path(), false, None).await;
    let kept = tempfile::tempdir().unwrap();
    let mut config = tiny(1);
    config.warmup.keep_optimizer = true;
    train(config, kept.path(), false, None).await;
    let has_state = |dir: &Path, role: &str| checkpoint_has(dir, role, 0, "optimizer.bin");
    for role in ["main", "sub"] {
        assert!(
            !has_state(fresh.path(), role),
            "{role}: a fresh state by default"
        );
        assert!(
            has_state(kept.path(), role),
            "{role}: the warm start's state saved"
        );
        assert_eq!(
            score(fresh.path(), role, 0),
            score(kept.path(), role, 0),
            "{role}: the same warm-start weights either way"
        );
    }
    // The same rollouts (same weights, same seeds) trained through two AdamW states. (The
    // tiny warm start's main agent does not delegate yet, so the sub-agents train on padding
    // alone; both learners load their state through the same code.)
    assert_ne!(
        score(fresh.path(), "main", 1),
        score(kept.path(), "main", 1),
        "RL's first update continued the warm start's AdamW state"
    );
}

/// A committed step whose `metrics.jsonl` line was lost (the process died between the store's
/// commit and the line) gets its line back from the store when the run goes on: every step
/// once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_step_without_its_metrics_line_gets_it_back() {
    let dir = tempfile::tempdir().unwrap();
    delegating_warm_start(dir.path());
    let mut config = delegating(3);
    config.train.eval_every = 0;
    train(config.clone(), dir.path(), false, None).await;
    let path = dir.path().join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    let lost: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    // As if the process died after committing step 2 and before writing its line.
    std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    config.train.steps = 4;
    train(config, dir.path(), true, None).await;
    let got: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<u64> = got.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 1, 2, 3], "each step once, in order");
    assert_eq!(got[2]["restored"], true, "{}", got[2]);
    // The restored line says what the lost one said (from the store's step record).
    let mut restored = got[2].clone();
    restored.as_object_mut().unwrap().remove("restored");
    assert_eq!(restored, lost);
}

/// Trains `config` in `dir` with the first executor request panicking after its trajectories
/// went to the learner and before its reply; checks the executor was restarted.
async fn train_with_executor_panic(config: Config, dir: &Path) {
    let fault = Fault {
        point: FaultPoint::Reply(Role::Executor),
        action: FaultAction::Panic,
        times: 1,
    };
    let events = train(config, dir, false, Some(fault)).await;
    assert!(
        events.iter().any(
            |e| matches!(e, NodeEvent::ChildRestarting { name, .. } if name.starts_with("executor"))
        ),
        "an executor was restarted: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_panic_mid_step_is_counted_once() {
    // No dev evaluation, so that the first executor request of the run is step 0's.
    let mut config = delegating(2);
    config.train.eval_every = 0;
    let clean = tempfile::tempdir().unwrap();
    delegating_warm_start(clean.path());
    train(config.clone(), clean.path(), false, None).await;
    let faulty = tempfile::tempdir().unwrap();
    delegating_warm_start(faulty.path());
    // The first executor request of step 0 panics after its trajectories went to the learner
    // and before its reply: the worst moment for double counting.
    train_with_executor_panic(config, faulty.path()).await;
    let (a, b) = (groups_of(clean.path()), groups_of(faulty.path()));
    assert!(
        a.iter().map(|g| g.calls.len()).sum::<usize>() > 0,
        "the warmed-up main agent delegates"
    );
    for g in &b {
        let d: u32 = g.main.iter().map(|r| r.calls).sum();
        assert_eq!(g.calls.len() as u32, d, "each call counted once");
    }
    assert_eq!(a, b, "the faulty run's steps equal the clean run's");
}

/// Every stored rollout and call records the version of the policy that produced it: version
/// `s` at step `s` (each step's updates publish the next), generation 0 (no swap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rollout_and_call_records_the_version_that_produced_it() {
    let dir = tempfile::tempdir().unwrap();
    delegating_warm_start(dir.path());
    train(delegating(3), dir.path(), false, None).await;
    let groups = groups_of(dir.path());
    let calls: usize = groups.iter().map(|g| g.calls.len()).sum();
    assert!(calls > 0, "the warmed-up main agent delegates");
    for g in &groups {
        for r in &g.main {
            assert_eq!(
                (r.role_version, r.role_generation),
                (g.step, 0),
                "main, step {}",
                g.step
            );
        }
        for c in &g.calls {
            assert_eq!(
                (c.role_version, c.role_generation),
                (g.step, 0),
                "sub, step {}",
                g.step
            );
        }
    }
    assert!(
        groups
            .iter()
            .any(|g| g.step >= 1 && g.calls.iter().any(|c| c.role_version >= 1)),
        "sub calls after step 0 record a trained version"
    );
}

/// A config on the asynchronous schedule (one version behind).
fn asynchronous(mut c: Config) -> Config {
    c.algo.schedule = mgrpo_actors::config::Schedule::Async;
    c.algo.max_staleness = 1;
    c
}

/// Under the asynchronous schedule step `s` is sampled with version `s − 1` (step 0 with the
/// warm start): every stored rollout and call says so, and each step is committed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_steps_are_sampled_one_version_behind() {
    let dir = tempfile::tempdir().unwrap();
    delegating_warm_start(dir.path());
    train(asynchronous(delegating(4)), dir.path(), false, None).await;
    let groups = groups_of(dir.path());
    assert_eq!(groups.len(), 4 * 2, "4 steps of 2 groups, each once");
    assert!(groups.iter().map(|g| g.calls.len()).sum::<usize>() > 0);
    for g in &groups {
        let sampled = g.step.saturating_sub(1);
        for r in &g.main {
            assert_eq!(r.role_version, sampled, "main, step {}", g.step);
        }
        for c in &g.calls {
            assert_eq!(c.role_version, sampled, "sub, step {}", g.step);
        }
    }
    let lines = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["main_staleness"], 0);
    for l in &lines[1..] {
        assert_eq!(
            (&l["main_staleness"], &l["sub_staleness"]),
            (&1.into(), &1.into()),
            "{l}"
        );
        // The learners trained on step s from version s: the update is one version ahead of
        // the rollouts it trains on.
        assert_eq!(l["main_version"], l["step"].as_u64().unwrap() + 1, "{l}");
    }
}

/// The asynchronous schedule keeps the synchronous promises: a run stopped and resumed, and a
/// run whose executor panics mid-step (its trajectories sent, its reply lost), both commit
/// exactly the records of the uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_resume_and_crash_equal_uninterrupted() {
    let mut config = asynchronous(delegating(4));
    config.train.eval_every = 0;
    let whole = tempfile::tempdir().unwrap();
    delegating_warm_start(whole.path());
    train(config.clone(), whole.path(), false, None).await;
    let a = groups_of(whole.path());
    assert_informative(&a);
    assert_eq!(a.len(), 4 * 2);

    let parts = tempfile::tempdir().unwrap();
    reuse_warm_start(whole.path(), parts.path());
    let mut first = config.clone();
    first.train.steps = 2;
    train(first, parts.path(), false, None).await;
    train(config.clone(), parts.path(), true, None).await;
    assert_eq!(a, groups_of(parts.path()), "resumed at step 2");

    let faulty = tempfile::tempdir().unwrap();
    reuse_warm_start(whole.path(), faulty.path());
    train_with_executor_panic(config, faulty.path()).await;
    assert_eq!(a, groups_of(faulty.path()), "executor panic mid-step");
}

/// `algo.kl_coef > 0` trains, anchored to the warm start (checkpoint 0): the anchor's KL is 0
/// while the policy still is the warm start (step 0's update starts from it) and grows once
/// the updates move away from it; each step's line reports it, with the clip fraction, the
/// KL to π_old and the gradient norm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kl_anchor_to_the_warm_start_trains() {
    let dir = tempfile::tempdir().unwrap();
    delegating_warm_start(dir.path());
    let mut config = delegating(3);
    config.train.eval_every = 0;
    config.algo.kl_coef = 0.05;
    train(config, dir.path(), false, None).await;
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "every step trained");
    for role in ["main", "sub"] {
        let kl = |s: usize| lines[s][format!("{role}_ref_kl")].as_f64().unwrap();
        assert!(
            kl(0) < 1e-6,
            "{role}: the first update starts at the anchor: {}",
            kl(0)
        );
        assert!(
            kl(2) > 1e-9,
            "{role}: two updates later it moved: {}",
            kl(2)
        );
        for key in ["clip_fraction", "approx_kl", "grad_norm"] {
            assert!(
                lines[2][format!("{role}_{key}")].is_number(),
                "{role}_{key}"
            );
        }
    }
}

/// RL in year variants (`train.year_variants`) through the real actors: both roles swapped to
/// the noise-free scripted experts before step 0, so every answer and every call is right in
/// the facts its query was asked in — which the planner, the executors, the experts' tools and
/// the judge must agree on. In the world's own facts a third of the answers differ
/// (`rollout::facts`'s test), so a part that asked or scored in the wrong world shows here as a
/// wrong answer or a call below 1.
/// With `train.variant_names` the variants rename the subjects too, so a planner that asked the
/// world's text would delegate names the variant does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experts_asked_in_year_variants_are_right_in_them() {
    for names in [false, true] {
        experts_in_variants(names).await;
    }
}

async fn experts_in_variants(names: bool) {
    use mgrpo_actors::role::LearnerRole;
    use mgrpo_actors::swap::queue::{Pending, SwapRequest};
    use mgrpo_actors::swap::target::SwapTarget;
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny(3);
    config.train.year_variants = 2;
    config.train.variant_names = names;
    config.train.eval_every = 0;
    println!("run seed {} in {}", config.run.seed, dir.path().display());
    let (ctx, store, _) = prepare(config, RunDir::new(dir.path()), false, |_, _, _, _| {}).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let node = start_node(
        ctx.clone(),
        &store,
        tx,
        Arc::new(AtomicBool::new(false)),
        None,
    )
    .await
    .unwrap();
    let mut answers = Vec::new();
    for role in [LearnerRole::Main, LearnerRole::Sub] {
        let (reply, rx) = ractor::concurrency::oneshot();
        ctx.swaps.offer(Pending {
            request: SwapRequest {
                role,
                target: SwapTarget::Expert,
                at_step: Some(0),
                wait_s: 60,
                node: None,
            },
            reply: reply.into(),
            received: std::time::Instant::now(),
        });
        answers.push(rx);
    }
    run_steps(&node).await.unwrap();
    for rx in answers {
        let outcome = rx
            .await
            .unwrap()
            .0
            .expect("the swap to the expert took effect");
        assert_eq!(outcome.step, 0, "{outcome:?}");
    }
    node.supervisor
        .stop_and_wait(None, Some(Duration::from_secs(60)))
        .await
        .expect("the node supervisor stops");
    drop(store);
    let groups = groups_of(dir.path());
    assert_eq!(groups.len(), 3 * ctx.config.algo.queries_per_step);
    let calls: usize = groups.iter().map(|g| g.calls.len()).sum();
    assert!(calls >= groups.len(), "the main expert delegates");
    for g in &groups {
        for r in &g.main {
            assert!(
                r.format && r.correct,
                "step {} {}: {r:?}",
                g.step,
                g.question_id
            );
        }
        for c in &g.calls {
            assert_eq!(c.expert, 1.0, "step {} {}: {c:?}", g.step, g.question_id);
        }
    }
}
