//! Store behaviour: atomic step commits, idempotent retries, reopen, dump, and a crash test that
//! SIGKILLs a child process mid-commit and checks that only whole steps survive.
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use mgrpo_store::{
    CheckpointEntry, CommitOutcome, Event, GroupRecord, GroupToolCalls, MainRolloutEntry,
    RoleVersion, StepCommit, StepRecord, Store, StoreError, SubCallEntry, SubSlot, SwapRecord,
    ToolCallEntry,
};

fn group(step: u64, query: u32, k: u32) -> GroupRecord {
    GroupRecord {
        step,
        query,
        question_id: format!("q{query}"),
        main: (0..k)
            .map(|r| MainRolloutEntry {
                rollout: r,
                format: true,
                correct: r % 2 == 0,
                reward: if r % 2 == 0 { 1.0 } else { 0.1 },
                advantage: if r % 2 == 0 { 1.0 } else { -1.0 },
                calls: 1,
                role_version: step,
                role_generation: 0,
            })
            .collect(),
        calls: (0..k)
            .map(|r| SubCallEntry {
                rollout: r,
                call: 0,
                format: true,
                expert: 1.0,
                reward: 0.9,
                role_version: step,
                role_generation: 0,
            })
            .collect(),
        alignment: (0..k)
            .map(|_| vec![SubSlot::Call(0), SubSlot::Call(0)])
            .collect(),
        sub_advantages: (0..k).map(|_| vec![0.0, 0.0]).collect(),
        main_mean: 0.55,
        main_std: 0.45,
        sub_mean: 0.9,
        sub_std: 0.0,
        sub_count: 2 * k,
    }
}

fn commit(step: u64, groups: u32) -> StepCommit {
    let mut metrics = BTreeMap::new();
    metrics.insert("reward".to_string(), 0.5 + step as f64);
    StepCommit {
        record: StepRecord {
            step,
            metrics,
            role_versions: BTreeMap::from([("main".to_string(), step + 1)]),
        },
        groups: (0..groups).map(|q| group(step, q, 4)).collect(),
        roles: vec![RoleVersion {
            role: "main".into(),
            version: step + 1,
            step,
            source: "learner".into(),
        }],
        checkpoints: vec![CheckpointEntry {
            role: "main".into(),
            version: step + 1,
            step,
            path: format!("checkpoints/main/{}", step + 1),
        }],
        tool_calls: vec![],
    }
}

#[test]
fn commits_read_back_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_config("seed = 1\n").unwrap();
        for s in 0..3 {
            assert_eq!(
                store.commit_step(&commit(s, 2)).unwrap(),
                CommitOutcome::Written
            );
        }
        store
            .record_event(&Event {
                step: 2,
                kind: "resume".into(),
                detail: "test".into(),
            })
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.config().unwrap().as_deref(), Some("seed = 1\n"));
    assert_eq!(store.last_step().unwrap(), Some(2));
    assert_eq!(store.steps().unwrap().len(), 3);
    assert_eq!(
        store.groups(1).unwrap(),
        vec![group(1, 0, 4), group(1, 1, 4)]
    );
    assert_eq!(store.role_version("main").unwrap().unwrap().version, 3);
    assert_eq!(store.checkpoints("main").unwrap().len(), 3);
    assert_eq!(store.events().unwrap().len(), 1);
    let dump = store.dump().unwrap();
    let kinds: Vec<&str> = dump.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "group").count(), 6);
    assert_eq!(kinds[0], "config");
    let g = dump.iter().find(|v| v["type"] == "group").unwrap();
    assert_eq!(g["alignment"][0][0]["call"], 0);
    assert_eq!(g["main"][0]["advantage"], 1.0);
}

#[test]
fn retries_are_idempotent_and_conflicts_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.commit_step(&commit(0, 2)).unwrap();
    assert_eq!(
        store.commit_step(&commit(0, 2)).unwrap(),
        CommitOutcome::AlreadyCommitted
    );
    // A replay of the step with other timings is the same step.
    let mut replay = commit(0, 2);
    replay.record.metrics.insert("step_time_s".into(), 99.0);
    assert_eq!(
        store.commit_step(&replay).unwrap(),
        CommitOutcome::AlreadyCommitted
    );
    let mut changed = commit(0, 2);
    changed.groups[1].main[0].reward = 0.0;
    assert!(matches!(
        store.commit_step(&changed),
        Err(StoreError::Conflict(0))
    ));
    assert!(matches!(
        store.commit_step(&commit(0, 3)),
        Err(StoreError::Conflict(0))
    ));
    assert!(matches!(
        store.commit_step(&commit(5, 1)),
        Err(StoreError::OutOfOrder {
            got: 5,
            last: Some(0)
        })
    ));
    assert_eq!(store.steps().unwrap().len(), 1);
}

/// Child half of the crash test: commits steps as fast as it can until killed, printing each
/// commit. Ignored: it runs only when re-executed by `crash_mid_commit_leaves_whole_steps`
/// (`--ignored`), so it never shows as a test that passed without doing anything.
#[test]
#[ignore = "the child process of crash_mid_commit_leaves_whole_steps"]
fn crash_child_commits_until_killed() {
    let dir = std::env::var("MGRPO_STORE_CRASH_DIR")
        .expect("run by crash_mid_commit_leaves_whole_steps, which sets MGRPO_STORE_CRASH_DIR");
    let store = Store::open(&dir).unwrap();
    let start = store.last_step().unwrap().map_or(0, |s| s + 1);
    for s in start.. {
        store.commit_step(&commit(s, 16)).unwrap();
        println!("committed {s}");
    }
}

#[test]
fn crash_mid_commit_leaves_whole_steps() {
    use std::io::BufRead;
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut before = 0usize;
    // Several kills at different moments after the child's first commit (deterministic
    // delays, printed for reproduction).
    for (round, delay_ms) in [0u64, 37, 83].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_commits_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env("MGRPO_STORE_CRASH_DIR", dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("committed ") && tx.send(line).is_err() {
                    return;
                }
            }
        });
        // The child is committing: its first commit of this round was printed.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("round {round}: the child never committed a step"));
        std::thread::sleep(Duration::from_millis(delay_ms));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round}: the child was still committing when killed"
        );
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let steps = store.steps().unwrap();
        for (i, s) in steps.iter().enumerate() {
            assert_eq!(
                s.step, i as u64,
                "round {round} delay {delay_ms}ms: steps contiguous"
            );
            assert_eq!(
                store.groups(s.step).unwrap().len(),
                16,
                "round {round} delay {delay_ms}ms: step {} is whole",
                s.step
            );
        }
        assert!(
            steps.len() > before,
            "round {round}: the child's commits ({first}, …) are in the store: {} steps, {before} before",
            steps.len()
        );
        eprintln!(
            "round {round}: killed {delay_ms} ms after {first} → {} whole steps",
            steps.len()
        );
        before = steps.len();
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(
        store.last_step().unwrap().is_some(),
        "the child committed something"
    );
}

fn swap(step: u64, generation: u64, to: &str, duration_ms: u64) -> SwapRecord {
    SwapRecord {
        step,
        role: "sub".into(),
        request: to.into(),
        from_serving: "learner".into(),
        from_version: 4,
        to_serving: to.into(),
        weights: "keep".into(),
        generation,
        version: 5,
        node: None,
        duration_ms,
    }
}

#[test]
fn a_swap_is_recorded_once_replayed_as_a_no_op_and_dumped_with_from_and_to() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.record_swap(&swap(3, 1, "expert", 40)).unwrap(),
        CommitOutcome::Written
    );
    // The replay after a crash measures another duration: still the same swap.
    assert_eq!(
        store.record_swap(&swap(3, 1, "expert", 7)).unwrap(),
        CommitOutcome::AlreadyCommitted
    );
    assert!(matches!(
        store.record_swap(&swap(3, 1, "frozen", 7)),
        Err(StoreError::SwapConflict { generation: 1, .. })
    ));
    let mut first = swap(1, 0, "frozen", 1);
    first.role = "main".into();
    store.record_swap(&first).unwrap();
    let swaps = store.swaps().unwrap();
    assert_eq!(swaps.len(), 2);
    assert_eq!((swaps[0].step, swaps[1].step), (1, 3));
    assert_eq!(swaps[1].duration_ms, 40);
    let dump = store.dump().unwrap();
    let s = dump
        .iter()
        .find(|v| v["type"] == "swap" && v["step"] == 3)
        .unwrap();
    assert_eq!(s["from"], "learner v4");
    assert_eq!(s["to"], "expert v5");
    assert_eq!(s["generation"], 1);
}

#[test]
fn tool_calls_are_stored_beside_their_groups_only_when_there_are_some() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let entry = |index: u32, observation: &str| ToolCallEntry {
        rollout: 1,
        call: 0,
        index,
        text: "add 2 3".into(),
        tool: Some("add".into()),
        status: "ok".into(),
        observation: observation.into(),
    };
    let mut c = commit(0, 2);
    c.tool_calls = vec![
        GroupToolCalls {
            step: 0,
            query: 0,
            calls: vec![],
        },
        GroupToolCalls {
            step: 0,
            query: 1,
            calls: vec![
                entry(0, "<output> 5 </output>"),
                entry(1, "<output> 5 </output>"),
            ],
        },
    ];
    store.commit_step(&c).unwrap();
    let stored = store.tool_calls(0).unwrap();
    assert_eq!(stored.len(), 1, "a group without tool calls writes no key");
    assert_eq!(stored[0], c.tool_calls[1]);
    // A retry whose tool output differed (a timeout this time) is still the same step.
    let mut retry = c.clone();
    retry.tool_calls[1].calls[1].observation =
        "<output> error : timed out after 10 ms </output>".into();
    assert_eq!(
        store.commit_step(&retry).unwrap(),
        CommitOutcome::AlreadyCommitted
    );
    assert_eq!(
        store.tool_calls(0).unwrap()[0],
        c.tool_calls[1],
        "the first stays"
    );
    store.commit_step(&commit(1, 2)).unwrap();
    assert!(store.tool_calls(1).unwrap().is_empty());
    let dump = store.dump().unwrap();
    let kinds: Vec<&str> = dump.iter().map(|v| v["type"].as_str().unwrap()).collect();
    let at = kinds.iter().position(|k| *k == "tool_calls").unwrap();
    assert_eq!(kinds[at - 1], "group", "dumped after its step's groups");
    assert_eq!(dump[at]["calls"][0]["observation"], "<output> 5 </output>");
    assert_eq!(kinds.iter().filter(|k| **k == "tool_calls").count(), 1);
}
