//! A run whose sub-agents call an MCP tool (issue 25, done-when (b)): the lighthouses example
//! task (examples/tasks/lighthouses), warm-started on its demonstrations, trains with
//! `calc-mcp` as a real server process — in one process, and on the 3-node cluster with the
//! server on the executors' node — and the store keeps each call with the server's answer.
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{NodeProc, free_ports, mgrpo, succeed};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tasks/lighthouses")
}

/// The example's task.toml, its files named absolutely, trained on its questions that need a
/// tool (`reach`: convert km to m; `age`: subtract from 2000) for `steps` steps without dev
/// evaluations after step 0. `calc-mcp` is started through `sh`, which appends its parent's
/// pid — the node that started the server — to `pids` before it becomes the server.
fn write_task(dir: &Path, steps: u64) -> PathBuf {
    let root = example();
    let questions: String = std::fs::read_to_string(root.join("questions.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""kind": "reach""#) || l.contains(r#""kind": "age""#))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        questions.lines().count(),
        50,
        "25 reach and 25 age questions"
    );
    std::fs::write(dir.join("questions.jsonl"), questions).unwrap();
    let file = |name: &str| root.join(name).display().to_string();
    let calc = env!("CARGO_BIN_EXE_calc-mcp");
    let pids = dir.join("pids").display().to_string();
    let server = format!(
        r#"mcp = {{ command = "sh", args = ["-c", "echo $PPID >> {pids}; exec \"$0\"", "{calc}"] }}"#
    );
    let original = std::fs::read_to_string(root.join("task.toml")).unwrap();
    let mut text = original.clone();
    for (from, to) in [
        (
            r#"questions = "questions.jsonl""#.to_string(),
            format!(r#"questions = "{}""#, dir.join("questions.jsonl").display()),
        ),
        (
            r#"corpus = "docs""#.into(),
            format!(r#"corpus = "{}""#, file("docs")),
        ),
        (
            r#"demonstrations = "demonstrations.jsonl""#.into(),
            format!(r#"demonstrations = "{}""#, file("demonstrations.jsonl")),
        ),
        (r#""score.py""#.into(), format!(r#""{}""#, file("score.py"))),
        (r#"mcp = { command = "calc-mcp" }"#.into(), server),
        ("steps = 3\n".into(), format!("steps = {steps}\n")),
        ("eval_every = 2".into(), "eval_every = 1000".into()),
    ] {
        assert_eq!(text.matches(&from).count(), 1, "{from:?} in task.toml");
        text = text.replace(&from, &to);
    }
    let path = dir.join("task.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What calc-mcp answers to the call's words (the two tools the example's questions need).
fn calc_answer(call: &str) -> String {
    let words: Vec<&str> = call.split_whitespace().collect();
    let n = |i: usize| words[i].parse::<i64>().unwrap();
    match words[..] {
        ["convert", _, "km", "m"] => (n(1) * 1000).to_string(),
        ["subtract", _, _] => (n(1) - n(2)).to_string(),
        _ => panic!("an unexpected call: {call}"),
    }
}

/// The run's stored tool calls, each checked against the server's arithmetic: how many.
fn assert_real_tool_calls(run: &Path, steps: u64) -> usize {
    let out = succeed(mgrpo().args(["store", "dump", "--json", "--run"]).arg(run));
    let mut ok = 0;
    let mut seen_steps = std::collections::BTreeSet::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] != "tool_calls" {
            continue;
        }
        seen_steps.insert(v["step"].as_u64().unwrap());
        for c in v["calls"].as_array().unwrap() {
            let text = c["text"].as_str().unwrap();
            if c["status"] == "ok" {
                let want = format!("<output> {} </output>", calc_answer(text));
                assert_eq!(c["observation"], want.as_str(), "{c}");
                assert_eq!(c["tool"], text.split(' ').next().unwrap(), "{c}");
                ok += 1;
            } else {
                let obs = c["observation"].as_str().unwrap();
                assert!(obs.starts_with("<output> error : "), "{c}");
            }
        }
    }
    assert!(ok > 0, "no stored tool call answered by the server:\n{out}");
    assert_eq!(
        seen_steps,
        (0..steps).collect(),
        "every step's sub-agents called the tool"
    );
    ok
}

/// The pids `sh` recorded: the processes that started a calc-mcp server.
fn server_parents(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[test]
fn one_process_trains_the_example_task_and_stores_its_sub_agents_tool_calls() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_task(dir.path(), 2);
    let run = dir.path().join("run");
    let started = std::time::Instant::now();
    let child = mgrpo()
        .args(["train", "--no-test", "--config"])
        .arg(&config)
        .arg("--run")
        .arg(&run)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("trained in {:.1} s", started.elapsed().as_secs_f64());
    let calls = assert_real_tool_calls(&run, 2);
    eprintln!("{calls} tool calls answered by calc-mcp");
    assert_eq!(
        server_parents(dir.path()),
        [pid],
        "the training process started one server and never restarted it"
    );
    let metrics = common::metrics(&run);
    assert!(
        metrics
            .iter()
            .all(|m| m["tool_calls_per_sub_call"].as_f64() > Some(0.0)),
        "{metrics:?}"
    );
}

#[test]
fn on_the_3_node_cluster_the_executors_node_runs_the_server_and_the_store_keeps_the_calls() {
    let dir = tempfile::tempdir().unwrap();
    let task = write_task(dir.path(), 2);
    let mut cluster = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster-3node.toml"),
    )
    .unwrap();
    for (i, p) in free_ports().iter().enumerate() {
        cluster = cluster.replace(
            &format!("127.0.0.1:710{}", i + 1),
            &format!("127.0.0.1:{p}"),
        );
    }
    let config = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&task).unwrap();
    std::fs::write(&config, format!("{text}\n{cluster}")).unwrap();
    let run = dir.path().join("run");
    let started = std::time::Instant::now();
    let mut nodes: Vec<NodeProc> = ["hub", "main", "sub"]
        .into_iter()
        .map(|n| NodeProc::start(&config, n, &run, dir.path(), ""))
        .collect();
    nodes[0].wait_success(Duration::from_secs(300));
    for n in &mut nodes[1..] {
        n.wait_success(Duration::from_secs(30));
    }
    eprintln!("trained in {:.1} s", started.elapsed().as_secs_f64());
    let calls = assert_real_tool_calls(&run, 2);
    eprintln!("{calls} tool calls answered by calc-mcp");
    assert_eq!(
        server_parents(dir.path()),
        [nodes[2].child.id()],
        "only the executors' node (sub) started a server"
    );
    common::assert_each_step_once(&run, 2);
}

/// The example's demonstrations are what `demonstrations.py` writes from the task's files, and
/// each tool call in them reads what the real `calc-mcp` answers to it.
#[tokio::test]
async fn the_example_demonstrations_are_the_scripts_and_their_calls_read_what_calc_mcp_answers() {
    use mgrpo_actors::mcp::{CallStatus, McpTools, ToolServerConfig};
    use mgrpo_env::protocol::CallForm;
    let root = example();
    let written = std::process::Command::new("python3")
        .arg(root.join("demonstrations.py"))
        .output()
        .unwrap();
    assert!(written.status.success());
    let committed = std::fs::read_to_string(root.join("demonstrations.jsonl")).unwrap();
    assert!(
        String::from_utf8(written.stdout).unwrap() == committed,
        "demonstrations.jsonl is stale: run `python3 demonstrations.py > demonstrations.jsonl`"
    );
    let calc = ToolServerConfig::new("calc", env!("CARGO_BIN_EXE_calc-mcp"), &[]);
    let tools = McpTools::start(&[calc]).await.unwrap();
    let mut calls = 0;
    for line in committed.lines() {
        let demo: mgrpo_env::Demo = serde_json::from_str(line).unwrap();
        for pair in demo.segments.windows(2) {
            let Some(call) = pair[0].text.strip_prefix("<call> ") else {
                continue;
            };
            let call = call.strip_suffix(" </call>").unwrap();
            let used = tools.run(call, CallForm::Words).await;
            assert_eq!(used.status, CallStatus::Ok, "{call}");
            assert_eq!(used.observation, pair[1].text, "{call}");
            calls += 1;
        }
    }
    assert_eq!(
        calls, 37,
        "one call in each train question's sub-agent demonstration of reach or age"
    );
    tools.shutdown().await;
}
