//! Tools over MCP against real server processes: our `calc-mcp` (rmcp's server side) and
//! `tests/mcp/bad_server.py`, which crashes, hangs or answers garbage on demand. Every failure
//! must reach the agent as an error observation, never as an error of the step or a panic.
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{mgrpo, succeed};
use mgrpo_actors::Config;
use mgrpo_actors::mcp::{CallStatus, McpTools, ToolServerConfig, list_tools};
use mgrpo_actors::role_codec::RoleCodec;
use mgrpo_actors::rollout::facts::Facts;
use mgrpo_actors::rollout::lockstep::Drive;
use mgrpo_actors::rollout::turns::{Expert, ExpertTurns};
use mgrpo_actors::rollout::{CallKey, RolloutKey};
use mgrpo_env::protocol::CallForm;
use mgrpo_env::{SubEpisode, Task, TextCodec, World};

fn calc() -> ToolServerConfig {
    ToolServerConfig::new("calc", env!("CARGO_BIN_EXE_calc-mcp"), &[])
}

fn bad(args: &[&str]) -> ToolServerConfig {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/bad_server.py");
    let mut all = vec![script.to_str().unwrap()];
    all.extend(args);
    ToolServerConfig::new("bad", "python3", &all)
}

#[tokio::test]
async fn calc_lists_its_tools_with_their_schemas() {
    let listed = list_tools(&[calc()]).await.unwrap();
    assert_eq!(listed.len(), 1);
    let (server, tools) = &listed[0];
    assert_eq!(server, "calc");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["add", "convert", "divide", "multiply", "subtract"]);
    let add = tools.iter().find(|t| t.name == "add").unwrap();
    assert_eq!(add.description, "Add two numbers: a + b");
    assert_eq!(
        mgrpo_env::tool_call::usage(add),
        "<call> add a:number b:number </call> : Add two numbers: a + b"
    );
    let convert = tools.iter().find(|t| t.name == "convert").unwrap();
    assert!(
        mgrpo_env::tool_call::usage(convert)
            .starts_with("<call> convert value:number from:string to:string </call>"),
        "{}",
        mgrpo_env::tool_call::usage(convert)
    );
    assert_eq!(
        add.input_schema["required"],
        serde_json::json!(["a", "b"]),
        "{:?}",
        add.input_schema
    );

    let mut only = calc();
    only.expose = Some(vec!["add".into()]);
    let tools = McpTools::start(&[only]).await.unwrap();
    assert_eq!(
        tools.specs().len(),
        1,
        "expose keeps only the tools it names"
    );
    let mut wrong = calc();
    wrong.expose = Some(vec!["sqrt".into()]);
    let err = McpTools::start(&[wrong]).await.unwrap_err().to_string();
    assert!(
        err.contains("\"sqrt\"") && err.contains("it offers: add"),
        "{err}"
    );
}

#[tokio::test]
async fn calls_answer_and_every_failure_is_an_error_observation() {
    let tools = McpTools::start(&[calc()]).await.unwrap();
    let run = |call: &'static str, form| {
        let tools = &tools;
        async move { tools.run(call, form).await }
    };

    let ok = run("add 2 3", CallForm::Words).await;
    assert_eq!(
        (ok.status, ok.tool.as_deref(), ok.observation.as_str()),
        (CallStatus::Ok, Some("add"), "<output> 5 </output>")
    );
    let ok = run(
        r#"{"name": "convert", "arguments": {"value": 10, "from": "km", "to": "m"}}"#,
        CallForm::Json,
    )
    .await;
    assert_eq!(ok.observation, "<tool_response> 10000 </tool_response>");

    let cases = [
        (
            "divide 1 0",
            CallStatus::ToolError,
            "<output> error : division by zero </output>",
        ),
        (
            "sqrt 2",
            CallStatus::Malformed,
            "<output> error : unknown tool sqrt ( tools : add convert divide multiply subtract ) </output>",
        ),
        (
            "add 2 x",
            CallStatus::Malformed,
            "<output> error : bad arguments for add : b : number wanted , got x </output>",
        ),
        (
            r#"add {"a": 1,"#,
            CallStatus::Malformed,
            "<output> error : bad arguments for add : invalid JSON",
        ),
        // Binds (JSON passes through) but the server rejects the arguments.
        (
            r#"add {"a": "two", "b": 3}"#,
            CallStatus::ToolError,
            "<output> error :",
        ),
        (
            "convert 3 kg km",
            CallStatus::ToolError,
            "<output> error : cannot convert mass to length </output>",
        ),
    ];
    for (call, status, observation) in cases {
        let u = run(call, CallForm::Words).await;
        assert_eq!(u.status, status, "{call}: {u:?}");
        assert!(
            u.observation
                .starts_with(observation.trim_end_matches(" </output>"))
                && u.observation.ends_with("</output>"),
            "{call}: {}",
            u.observation
        );
        assert_eq!(u.call, call);
    }
    assert_eq!(
        tools.restarts().await["calc"],
        0,
        "no failure above kills the server"
    );
}

#[tokio::test]
async fn a_server_that_exits_mid_call_fails_that_call_and_restarts_at_the_next() {
    let tools = McpTools::start(&[bad(&["exit-on-call", "2"])])
        .await
        .unwrap();
    let first = tools.run("echo a", CallForm::Words).await;
    assert_eq!(first.observation, "<output> call 1 : a </output>");
    let crashed = tools.run("echo b", CallForm::Words).await;
    assert_eq!(crashed.status, CallStatus::ServerFailed, "{crashed:?}");
    assert!(
        crashed
            .observation
            .starts_with("<output> error : server failed"),
        "{crashed:?}"
    );
    let again = tools.run("echo c", CallForm::Words).await;
    assert_eq!(
        again.observation, "<output> call 1 : c </output>",
        "a fresh process (its call count starts over)"
    );
    assert_eq!(tools.restarts().await["bad"], 1);
}

#[tokio::test]
async fn a_hung_call_times_out_and_the_server_is_replaced() {
    let mut config = bad(&["hang"]);
    config.timeout_ms = 300;
    let tools = McpTools::start(&[config]).await.unwrap();
    for round in 0..2 {
        let t = Instant::now();
        let u = tools.run("echo x", CallForm::Words).await;
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(u.status, CallStatus::Timeout);
        assert_eq!(
            u.observation,
            "<output> error : timed out after 300 ms </output>"
        );
        assert_eq!(
            tools.restarts().await["bad"],
            round,
            "restarted before the next call"
        );
    }
}

/// A turn of calls in the words form.
fn words_turn(calls: &[&str]) -> Vec<(String, CallForm)> {
    calls
        .iter()
        .map(|c| (c.to_string(), CallForm::Words))
        .collect()
}

/// `work`'s output, asserting it took less than `limit`.
async fn within<T>(limit: Duration, work: impl std::future::Future<Output = T>) -> T {
    let t = Instant::now();
    let out = work.await;
    assert!(t.elapsed() < limit, "took {:?}", t.elapsed());
    out
}

/// A turn's calls to a server that hangs on every call cost one deadline, not one each: the
/// calls after the first timeout fail fast, and the next turn restarts the server.
#[tokio::test]
async fn a_hung_server_costs_a_turn_one_deadline() {
    let mut config = bad(&["hang"]);
    config.timeout_ms = 300;
    let tools = McpTools::start(&[config, calc()]).await.unwrap();
    let turn = words_turn(&["echo a", "add 1 2", "echo b", "echo c"]);
    let used = within(Duration::from_millis(1500), tools.run_turn(&turn)).await;
    let statuses: Vec<CallStatus> = used.iter().map(|u| u.status).collect();
    assert_eq!(
        statuses,
        [
            CallStatus::Timeout,
            CallStatus::Ok,
            CallStatus::ServerFailed,
            CallStatus::ServerFailed
        ],
        "the other server is still called"
    );
    assert_eq!(
        used[2].observation,
        "<output> error : server failed : it failed earlier in this turn </output>"
    );
    assert_eq!(tools.restarts().await["bad"], 0);
    let next = tools.run_turn(&turn[..1]).await;
    assert_eq!(
        next[0].status,
        CallStatus::Timeout,
        "a fresh process, called"
    );
    assert_eq!(tools.restarts().await["bad"], 1);
}

/// A server that exits and then hangs at every restart: the crashed call fails, the turn's next
/// call waits one start deadline, and the turn's later calls fail at once.
#[tokio::test]
async fn a_server_that_cannot_restart_costs_a_turn_one_start_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/bad_server.py");
    let first_run_only = format!(
        "if [ -e started ]; then exec sleep 30; fi; touch started; exec python3 {} exit-on-call 1",
        script.display()
    );
    let mut config = ToolServerConfig::new("flaky", "sh", &["-c", &first_run_only]);
    config.mcp.cwd = Some(dir.path().to_path_buf());
    // Room for a loaded machine's first start (python3 takes ~0.2 s there), yet one start
    // deadline, not three, within the bound below.
    config.start_timeout_ms = 1000;
    let tools = McpTools::start(&[config]).await.unwrap();
    let turn = words_turn(&["echo a", "echo b", "echo c", "echo d"]);
    let used = within(Duration::from_millis(2500), tools.run_turn(&turn)).await;
    let observations: Vec<&str> = used.iter().map(|u| u.observation.as_str()).collect();
    assert!(
        observations[0].starts_with("<output> error : server failed"),
        "{observations:?}"
    );
    assert!(
        observations[1].starts_with("<output> error : server failed : cannot restart : tool server flaky: no handshake within 1000 ms"),
        "{observations:?}"
    );
    for o in &observations[2..] {
        assert_eq!(
            *o,
            "<output> error : server failed : it failed earlier in this turn </output>"
        );
    }
    assert!(used.iter().all(|u| u.status == CallStatus::ServerFailed));
}

#[tokio::test]
async fn garbage_on_stdout_is_an_error_not_a_panic() {
    let mut config = bad(&["garbage"]);
    config.timeout_ms = 300;
    let tools = McpTools::start(&[config]).await.unwrap();
    let u = tools.run("echo x", CallForm::Words).await;
    assert_eq!(u.status, CallStatus::Timeout, "{u:?}");

    let mut config = bad(&["garbage-start"]);
    config.start_timeout_ms = 500;
    let err = McpTools::start(&[config]).await.unwrap_err().to_string();
    assert!(
        err.contains("tool server bad") && err.contains("MCP server speaking stdio"),
        "{err}"
    );
    let missing = ToolServerConfig::new("gone", "/nonexistent/mcp-server", &[]);
    let err = McpTools::start(&[missing]).await.unwrap_err().to_string();
    assert!(
        err.contains("tool server gone: cannot start \"/nonexistent/mcp-server\""),
        "{err}"
    );
}

#[tokio::test]
async fn two_servers_form_one_tool_box_and_a_duplicate_name_is_refused() {
    let mut echo = bad(&["ok"]);
    echo.max_result_words = 4;
    let tools = McpTools::start(&[calc(), echo]).await.unwrap();
    assert_eq!(tools.specs().len(), 6);
    assert_eq!(
        tools
            .run("echo hi <doc> there", CallForm::Words)
            .await
            .observation,
        "<output> call 1 : hi </output>",
        "tags dropped, bounded to the server's max_result_words"
    );
    assert_eq!(
        tools.run("subtract 2 5", CallForm::Words).await.observation,
        "<output> -3 </output>"
    );
    let mut twin = calc();
    twin.name = "calc2".into();
    let err = McpTools::start(&[calc(), twin])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("offered by both calc and calc2"), "{err}");
}

#[test]
fn task_tools_are_read_from_the_config_with_paths_from_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lab.toml");
    std::fs::write(
        &file,
        "[task]\nquestions = \"q.jsonl\"\ncorpus = \"docs\"\n\n\
         [[task.tools]]\nname = \"calc\"\nmcp = { command = \"./bin/calc-mcp\" }\n\
         timeout_ms = 2000\nexpose = [\"add\"]\n\n\
         [[task.tools]]\nname = \"py\"\nmcp = { command = \"python3\", args = [\"s.py\"], \
         env = { LOG = \"1\" } }\n",
    )
    .unwrap();
    let config = Config::load(&file).unwrap();
    let tools = &config.task.as_ref().unwrap().tools;
    assert_eq!(tools.len(), 2);
    let base = std::path::absolute(dir.path()).unwrap();
    assert_eq!(
        PathBuf::from(&tools[0].mcp.command),
        base.join("./bin/calc-mcp")
    );
    assert_eq!(tools[0].mcp.cwd.as_deref(), Some(base.as_path()));
    assert_eq!((tools[0].timeout_ms, tools[1].timeout_ms), (2000, 10_000));
    assert_eq!(tools[1].mcp.command, "python3");
    let again = Config::parse(&config.to_toml(), &file).unwrap();
    assert_eq!(
        again.task, config.task,
        "the resolved config writes itself back"
    );

    std::fs::write(
        &file,
        "[task]\nquestions = \"q\"\ncorpus = \"d\"\n[[task.tools]]\nname = \"c\"\n\
         mcp = { command = \"\" }\nmax_result_words = 0\n",
    )
    .unwrap();
    let err = Config::load(&file).unwrap_err().to_string();
    for needle in [
        "task.tools[0].mcp.command is empty",
        "task.tools[0].max_result_words = 0",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

/// A scripted sub-agent that makes one tool call, then returns what the tool said.
struct OneCall(String);

impl Expert<SubEpisode> for OneCall {
    fn act(&mut self, _world: &World, episode: &SubEpisode) -> String {
        match episode.segments().last() {
            Some(s) if s.text.starts_with("<output>") => {
                let out = s.text["<output>".len()..s.text.len() - "</output>".len()].trim();
                format!("<return> {out} </return>")
            }
            _ => format!("<call> {} </call>", self.0),
        }
    }
}

/// The lockstep driver runs the sub-agents' calls on a real server between two sampling
/// batches: each observation lands in its episode's transcript (as context, token-counted in
/// the trajectory) and in the episode's tool uses, failures included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_runs_tool_calls_and_records_them_in_the_transcripts() {
    let config = Config::parse(
        include_str!("../examples/tiny.toml"),
        std::path::Path::new("tiny.toml"),
    )
    .unwrap();
    // No built-in tool: with it, the world's tools would answer every call in process.
    let task = Task::World(Box::new(
        World::generate(&mgrpo_env::WorldConfig {
            compare_tool: false,
            ..config.world
        })
        .unwrap(),
    ));
    let world = task.world().unwrap();
    let words: Vec<String> = [
        "add", "divide", "sqrt", "0", "error", "division", "by", "zero",
    ]
    .map(String::from)
    .to_vec();
    let text = TextCodec::build_with_tools(world, Some(&words)).unwrap();
    let codec = RoleCodec::world(text.clone()).unwrap();
    let tools = McpTools::start(&[calc()]).await.unwrap();
    // A year the world's vocabulary has, so the scripted call survives tokenization.
    let year = mgrpo_env::Split::ALL
        .iter()
        .flat_map(|s| world.questions(*s))
        .map(|q| q.answer.clone())
        .find(|a| a.len() == 4 && a.parse::<u32>().is_ok())
        .unwrap();
    let calls = [
        format!("add {year} 0"),
        format!("divide {year} 0"),
        format!("sqrt {year}"),
    ];
    let episodes: Vec<(CallKey, SubEpisode)> = (0..calls.len())
        .map(|i| {
            let rollout = RolloutKey {
                step: 0,
                query: 0,
                rollout: i as u32,
            };
            let key = CallKey { rollout, call: 0 };
            (key, SubEpisode::new("a sum", 4).with_tool_calls())
        })
        .collect();
    let mut turns = ExpertTurns::new(Facts::only(&task), &codec, |k: &CallKey, _: &SubEpisode| {
        OneCall(calls[k.rollout.rollout as usize].clone())
    });
    let driven = Drive {
        turns: &mut turns,
        codec: &codec,
        facts: Facts::only(&task),
        run_seed: 1,
        max_turns: 4,
        tools: Some(&tools),
    }
    .run(episodes, |_| async {
        Ok::<_, mgrpo_models::ModelError>(Vec::new())
    })
    .await
    .unwrap();
    let ok = format!("<output> {year} </output>");
    let expected = [
        (CallStatus::Ok, ok.as_str()),
        (
            CallStatus::ToolError,
            "<output> error : division by zero </output>",
        ),
        (
            CallStatus::Malformed,
            "<output> error : unknown tool sqrt ( tools : add convert divide multiply subtract ) </output>",
        ),
    ];
    for (d, (status, observation)) in driven.iter().zip(expected) {
        assert_eq!(d.tool_uses.len(), 1);
        assert_eq!(d.tool_uses[0].status, status, "{:?}", d.tool_uses);
        assert_eq!(d.tool_uses[0].observation, observation);
        let segments = d.episode.segments();
        assert_eq!(segments.len(), 4, "task, call, output, return");
        assert_eq!(segments[2].text, observation);
        assert!(!segments[2].generated, "an observation is context");
        assert!(
            d.episode.format_ok(),
            "a failed call is an observation, not an error"
        );
        // The trajectory holds every segment's tokens, the observation as context.
        let context: Vec<u32> = segments
            .iter()
            .filter(|s| !s.generated)
            .flat_map(|s| text.encode(&s.text))
            .collect();
        let not_generated = d.trajectory.generated.iter().filter(|g| !**g).count();
        assert_eq!(not_generated, context.len());
        assert_eq!(
            d.trajectory.tokens.len(),
            text.encode(&d.episode.context()).len()
        );
    }
    assert_eq!(driven[0].episode.result(), year);

    // A node without tool servers (a misplaced executor): the call is an error observation too.
    let key = CallKey {
        rollout: RolloutKey {
            step: 0,
            query: 0,
            rollout: 0,
        },
        call: 0,
    };
    let lone = Drive {
        turns: &mut turns,
        codec: &codec,
        facts: Facts::only(&task),
        run_seed: 1,
        max_turns: 4,
        tools: None,
    }
    .run(
        vec![(key, SubEpisode::new("a sum", 4).with_tool_calls())],
        |_| async { Ok::<_, mgrpo_models::ModelError>(Vec::new()) },
    )
    .await
    .unwrap();
    assert_eq!(lone[0].tool_uses[0].status, CallStatus::ServerFailed);
    assert_eq!(
        lone[0].episode.segments()[2].text,
        "<output> error : no tool servers on this node </output>"
    );
}

/// `mgrpo bench tools` through the binary: it finds `calc-mcp` beside itself and reports the
/// round trip's quantiles (printed, not asserted: speed lives in the benchmarks).
#[test]
fn bench_tools_reports_the_round_trip() {
    let line = succeed(mgrpo().args(["bench", "tools", "--calls", "50", "--json"]));
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    eprintln!("{v}");
    assert_eq!(v["observation"], "<output> 5 </output>");
    assert_eq!(v["calls"], 50);
    let (p50, p99) = (v["p50_us"].as_f64().unwrap(), v["p99_us"].as_f64().unwrap());
    assert!(p50 > 0.0 && p99 >= p50, "{v}");
    let out = mgrpo()
        .args(["bench", "tools", "--calls", "5", "--call", "divide 1 0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("division by zero"), "{err}");
}
