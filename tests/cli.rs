//! What a user sees at the command line when the command cannot do what was asked, or its
//! reader goes away: a closed pipe ends it quietly, and each error names the file and key at
//! fault and what to do.
mod common;

use std::path::Path;
use std::process::Stdio;

use common::{mgrpo, succeed};

fn tiny() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tiny.toml")
}

/// Runs `cmd`, which must fail; its stderr.
fn fail(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "succeeded: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_command_quietly_with_exit_0() {
    // 200 transcripts are ≈ 190 kB, past any pipe's buffer: the writer meets the closed pipe.
    let mut child = mgrpo()
        .args(["world", "--show", "200", "--config"])
        .arg(tiny())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
}

#[test]
fn every_json_output_is_one_line() {
    for args in [
        &["world", "--json"][..],
        &["eval", "--policy", "expert", "--limit", "4", "--json"],
    ] {
        let out = succeed(mgrpo().args(args).arg("--config").arg(tiny()));
        assert_eq!(out.lines().count(), 1, "{args:?}: {out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
    }
}

#[test]
fn config_errors_name_the_file_the_key_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    std::fs::write(
        &config,
        "[cluster]\ncookie_env = \"MGRPO_TEST_UNSET_COOKIE\"\n[[cluster.nodes]]\nname = \"hub\"\n\
         listen = \"127.0.0.1:7391\"\nroles = { coordinator = 1, store = 1, judge = 1, \
         learner-main = 1, learner-sub = 1, planner = 1, executor = 1 }\n",
    )
    .unwrap();
    let e = fail(
        mgrpo()
            .env_remove("MGRPO_TEST_UNSET_COOKIE")
            .args(["status", "--config"])
            .arg(&config),
    );
    assert!(
        e.contains("lab.toml: cluster.cookie_env = \"MGRPO_TEST_UNSET_COOKIE\"")
            && e.contains("is not set"),
        "{e}"
    );

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}dial = {{ nobody = \"10.0.0.1:1\" }}\n"),
    )
    .unwrap();
    let e = fail(mgrpo().args(["world", "--config"]).arg(&config));
    assert!(
        e.contains("lab.toml") && e.contains("cluster.nodes[0].dial.nobody: no node named"),
        "{e}"
    );

    // A `--set` naming no setting, or of the wrong type, says so and starts nothing.
    for (set, says) in [
        ("train.stepz=3", "unknown field `stepz`"),
        ("warmup.lr=fast", "invalid type: string \"fast\""),
    ] {
        let run = dir.path().join("never");
        let e = fail(
            mgrpo()
                .args(["train", "--set", set, "--run"])
                .arg(&run)
                .arg("--config")
                .arg(tiny()),
        );
        assert!(
            e.contains("tiny.toml with --set") && e.contains(says),
            "{set}: {e}"
        );
        assert!(!run.exists(), "{set}: nothing may start");
    }

    // From a directory without ./cluster.toml, the default says where it looked and what to do.
    let e = fail(mgrpo().arg("world").current_dir(dir.path()));
    assert!(
        e.contains("no config file cluster.toml in") && e.contains("pass --config PATH"),
        "{e}"
    );
}

/// The world's built-in `earlier` tool (on by default) travels with an export as
/// `builtin_tools = ["earlier"]`, which `mgrpo task check` lists; a world without it exports
/// none; a task cannot name an unknown built-in tool, nor mix one with MCP servers.
#[test]
fn an_exported_world_keeps_its_builtin_tool_and_a_task_names_only_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(tiny()).unwrap();
    assert!(
        !text.contains("compare_tool"),
        "tiny.toml keeps the default"
    );
    let export = |name: &str, text: &str| {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, text).unwrap();
        let out = dir.path().join(name);
        succeed(
            mgrpo()
                .args(["world", "--export"])
                .arg(&out)
                .arg("--config")
                .arg(&config),
        );
        (
            out.join("task.toml"),
            std::fs::read_to_string(out.join("task.toml")).unwrap(),
        )
    };
    let (task, written) = export("tool", &text);
    assert!(
        written.contains("builtin_tools = [\"earlier\"]"),
        "{written}"
    );
    let report: serde_json::Value = serde_json::from_str(&succeed(
        mgrpo()
            .args(["task", "check", "--json", "--config"])
            .arg(&task),
    ))
    .unwrap();
    let tools = report["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "{report}");
    assert_eq!(tools[0]["server"], "built-in");
    assert_eq!(tools[0]["tools"][0]["name"], "earlier");

    let (_, plain) = export(
        "plain",
        &text.replace("[world]\n", "[world]\ncompare_tool = false\n"),
    );
    assert!(!plain.contains("builtin_tools ="), "{plain}");

    for (name, line, said) in [
        (
            "unknown",
            "builtin_tools = [\"later\"]\n",
            "unknown variant `later`",
        ),
        (
            "mixed",
            "builtin_tools = [\"earlier\"]\n[[task.tools]]\nname = \"calc\"\nmcp = { command = \"calc-mcp\" }\n",
            "task.builtin_tools and [[task.tools]] together",
        ),
    ] {
        let bad = dir.path().join(format!("tool/{name}.toml"));
        let edited = written.replace("builtin_tools = [\"earlier\"]\n", "");
        // Before the table after [task] (the lines then belong to [task]).
        let task_at = edited.find("[task]\n").unwrap();
        let at = task_at + 1 + edited[task_at + 1..].find("\n[").unwrap() + 1;
        std::fs::write(&bad, format!("{}{line}{}", &edited[..at], &edited[at..])).unwrap();
        let e = fail(mgrpo().args(["task", "check", "--config"]).arg(&bad));
        assert!(e.contains(said), "{name}: {e}");
    }
}

#[test]
fn a_trained_run_names_its_versions_and_refuses_another_config() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // `--set` changes a setting as the file would: the run keeps it, and it is what ran.
    succeed(
        mgrpo()
            .args([
                "train",
                "--steps",
                "1",
                "--set",
                "warmup.steps=6",
                "--config",
            ])
            .arg(tiny())
            .arg("--run")
            .arg(&run),
    );
    let kept: toml::Table = std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(kept["warmup"]["steps"].as_integer(), Some(6), "{kept}");
    let warm_steps = std::fs::read_to_string(run.join("warmup.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"role\":\"main\""))
        .count();
    assert_eq!(warm_steps, 6, "the main agent's warm-start steps");
    let e = fail(
        mgrpo()
            .args(["train", "--resume", "--set", "train.steps=2", "--run"])
            .arg(&run),
    );
    assert!(e.contains("--set does not apply"), "{e}");
    let policy = format!("run:{}@999", run.display());
    let e = fail(mgrpo().args(["eval", "--policy", &policy]));
    assert!(
        e.contains("no main checkpoint 999; its versions are: 0, 1"),
        "{e}"
    );
    let e = fail(
        mgrpo()
            .args(["train", "--resume", "--config"])
            .arg(tiny())
            .arg("--run")
            .arg(&run),
    );
    assert!(
        e.contains("--resume uses the run's own config") && e.contains("drop --config"),
        "{e}"
    );

    // No process runs it: status summarises it from disk, rounded; --json in full.
    let out = succeed(mgrpo().args(["status", "--run"]).arg(&run));
    for needed in [
        "finished: 1 of 1 steps",
        "test accuracy (40 questions): warm (v0)",
        "role main version 1 generation 0 source learner",
        "swaps: none",
    ] {
        assert!(out.contains(needed), "{needed:?} missing from:\n{out}");
    }
    let json: serde_json::Value = serde_json::from_str(&succeed(
        mgrpo().args(["status", "--json", "--run"]).arg(&run),
    ))
    .unwrap();
    assert_eq!(json["steps"], 1);
    let reward = &json["last"]["reward"];
    assert_eq!(
        reward,
        &common::metrics(&run)[0]["reward"],
        "full precision"
    );
    // A control.json left by a process that is gone: the same summary, and a word about it.
    std::fs::write(
        run.join("control.json"),
        r#"{"node":"run-1","addr":"127.0.0.1:1","cookie":"x","scope":"s","pid":1}"#,
    )
    .unwrap();
    let out = mgrpo()
        .args(["status", "--timeout", "0.5", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("finished: 1 of 1 steps"), "{stdout}");
    assert!(stderr.contains("reading the run from disk"), "{stderr}");
}

#[test]
fn a_chaos_plan_with_a_fault_past_its_last_step_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("late.toml");
    std::fs::write(
        &plan,
        format!(
            "config = \"{}\"\nsteps = 5\n[[faults]]\nkind = \"kill_node\"\nnode = \"local\"\n\
             down_s = 1.0\nat_step = 5\n",
            tiny().display()
        ),
    )
    .unwrap();
    let e = fail(
        mgrpo()
            .args(["chaos", "--plan"])
            .arg(&plan)
            .arg("--out")
            .arg(dir.path().join("out")),
    );
    assert!(
        e.contains("late.toml: fault 1 (kill_node)") && e.contains("never fire"),
        "{e}"
    );
    assert!(!dir.path().join("out").exists(), "nothing ran");
}
