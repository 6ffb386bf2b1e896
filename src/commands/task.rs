//! `mgrpo task check`, `mgrpo world --export DIR` and `mgrpo world --judge`: the task format's
//! checker (with the tools each `[[task.tools]]` server offers), its reference example (the world written as a task), and the world's judge served
//! as a scorer command (what the exported task's `expert` runs).
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mgrpo_actors::Config;
use mgrpo_actors::config::task::{BuiltinTool, RewardSpec, ScorerCommand, TaskConfig};
use mgrpo_actors::context::load_task;
use mgrpo_actors::mcp::{ToolServerConfig, list_tools};
use mgrpo_actors::scorer::CommandScorer;
use mgrpo_algo::{derive_seed, salt};
use mgrpo_env::judge::expert_score;
use mgrpo_env::task::SplitFractions;
use mgrpo_env::tool_call::usage;
use mgrpo_env::{Split, Task, World};

use super::load_config;
use crate::cli::TaskCommand;

/// Runs a `task` subcommand.
pub fn task(command: TaskCommand) -> Result<()> {
    match command {
        TaskCommand::Check { config, json } => check(&config.config, json),
    }
}

/// The file names an export writes.
const QUESTIONS: &str = "questions.jsonl";
const CORPUS: &str = "corpus.jsonl";
const DEMONSTRATIONS: &str = "demonstrations.jsonl";
const TASK_TOML: &str = "task.toml";

/// Writes the world of `config` to `dir` as a task: its questions (with splits and kinds), its
/// corpus, the warm-start demonstrations a run of `config` would make (its run seed and
/// `warmup.episodes`), and a `task.toml` that is `config` plus a `[task]` naming them — with the
/// world's judge as its `expert` command, so that a run of it scores as the world does.
pub fn export_world(config: &Config, dir: &Path) -> Result<()> {
    let world = World::generate(&config.world)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut questions = String::new();
    for split in Split::ALL {
        for q in world.questions(split) {
            let line = serde_json::json!({
                "id": q.id, "question": q.text, "answer": q.answer,
                "split": split.name(), "kind": q.kind,
            });
            questions += &format!("{line}\n");
        }
    }
    let mut corpus = String::new();
    for d in world.tools.docs() {
        let line = serde_json::json!({"id": d.id, "title": d.title, "text": d.text()});
        corpus += &format!("{line}\n");
    }
    let demos = Task::World(Box::new(world)).demonstrations(
        config.warmup.episodes,
        derive_seed(config.run.seed, &[salt::INIT, 0]),
    );
    let mut demonstrations = String::new();
    for d in &demos {
        demonstrations += &format!("{}\n", serde_json::to_string(d)?);
    }
    let exe = std::env::current_exe().context("the path of this mgrpo binary")?;
    let mut task_config = config.clone();
    task_config.task = Some(TaskConfig {
        questions: QUESTIONS.into(),
        corpus: CORPUS.into(),
        demonstrations: Some(DEMONSTRATIONS.into()),
        reward: RewardSpec::default(),
        expert: Some(ScorerCommand {
            command: vec![
                exe.display().to_string(),
                "world".into(),
                "--judge".into(),
                "--config".into(),
                TASK_TOML.into(),
            ],
            timeout_ms: 30_000,
            attempts: 3,
            dir: PathBuf::new(),
        }),
        correct_at: 0.5,
        splits: SplitFractions::default(),
        tools: Vec::new(),
        // The world's `earlier` tool runs in process in the task too.
        builtin_tools: if config.world.compare_tool {
            vec![BuiltinTool::Earlier]
        } else {
            Vec::new()
        },
        index_cache: None,
    });
    let toml = format!(
        "# The built-in world written as a task by `mgrpo world --export` (docs/tasks.md).\n\
         # [world] keeps the world's settings: under [task] only its tool and turn limits apply\n\
         # (and the judge command below regenerates the world from them); the world's built-in\n\
         # `earlier` tool (compare_tool) is [task] builtin_tools here.\n{}",
        task_config.to_toml()
    );
    for (name, text) in [
        (QUESTIONS, &questions),
        (CORPUS, &corpus),
        (DEMONSTRATIONS, &demonstrations),
        (TASK_TOML, &toml),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote {}: {} questions, {} documents, {} demonstrations, {TASK_TOML}",
        dir.display(),
        questions.lines().count(),
        corpus.lines().count(),
        demos.len()
    );
    Ok(())
}

/// The world's judge as a scorer command: `{"task", "result"}` in, `{"score"}` out, a line
/// each; a line it cannot read gets `{"error": …}` (which a caller takes as a failed score).
pub fn serve_world_judge(config: &Config) -> Result<()> {
    let world = World::generate(&config.world)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let answer = match (v["task"].as_str(), v["result"].as_str()) {
            (Some(task), Some(result)) => {
                serde_json::json!({"score": expert_score(&world.knowledge, task, result, config.algo.unknown_credit)})
            }
            _ => serde_json::json!({"error": "expected {\"task\": …, \"result\": …}"}),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}

/// `mgrpo task check`.
fn check(path: &Path, json: bool) -> Result<()> {
    let config = load_config(path)?;
    let Some(task_config) = &config.task else {
        bail!(
            "{} has no [task] table: runs use the built-in world (docs/tasks.md shows how to \
             bring your own)",
            path.display()
        );
    };
    let t0 = std::time::Instant::now();
    let task = load_task(&config, None)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let tool_names = (!task_config.tools.is_empty())
        .then(|| ToolServerConfig::exposed_names(&task_config.tools));
    let codec = task.codec(tool_names.as_deref())?;
    let mut splits = serde_json::Map::new();
    for s in Split::ALL {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for q in task.questions(s) {
            *kinds.entry(q.kind.as_str()).or_default() += 1;
        }
        splits.insert(
            s.name().into(),
            serde_json::json!({"questions": task.questions(s).len(), "kinds": kinds}),
        );
    }
    let docs = task.tools().docs();
    let passages: usize = docs.iter().map(|d| d.sentences.len()).sum();
    let words: usize = docs
        .iter()
        .map(|d| d.text().split_whitespace().count())
        .sum();
    let sample = task.questions(Split::Train).first();
    let hits: Vec<serde_json::Value> = sample
        .map(|q| task.tools().search(&q.text))
        .unwrap_or_default()
        .into_iter()
        .map(|h| serde_json::json!({"title": h.title, "id": h.doc_id, "snippet": h.snippet}))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (reward, expert) = match sample {
        Some(q) => runtime.block_on(sample_scores(task_config, q))?,
        None => (serde_json::Value::Null, serde_json::Value::Null),
    };
    let mut servers = runtime
        .block_on(list_tools(&task_config.tools))
        .map_err(|e| anyhow::anyhow!("a [[task.tools]] server: {e}"))?;
    // The tools answered in process, listed as one more server's.
    if !task_config.builtin_tools.is_empty() {
        let specs = task_config.builtin_tools.iter().map(|b| b.spec()).collect();
        servers.push(("built-in".into(), specs));
    }
    let tools: Vec<serde_json::Value> = servers
        .iter()
        .map(|(server, specs)| {
            let offered: Vec<serde_json::Value> = specs
                .iter()
                .map(|t| {
                    serde_json::json!({"name": t.name, "description": t.description, "usage": usage(t)})
                })
                .collect();
            serde_json::json!({"server": server, "tools": offered})
        })
        .collect();
    let report = serde_json::json!({
        "config": path.display().to_string(),
        "splits": splits,
        "documents": docs.len(),
        "passages": passages,
        "corpus_words": words,
        "vocabulary": codec.vocab_size(),
        "demonstrations": task.demonstrations(0, 0).len(),
        "load_ms": load_ms,
        "sample": sample.map(|q| serde_json::json!({
            "id": q.id, "question": q.text, "answers": q.answers().collect::<Vec<_>>(),
            "top_hits": hits,
        })),
        "reward": reward,
        "expert": expert,
        "tools": tools,
    });
    if json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "task of {}: valid (loaded and indexed in {load_ms:.0} ms)",
        path.display()
    );
    for s in Split::ALL {
        let v = &splits[s.name()];
        println!(
            "  {:<5} {:>6} questions  by kind {}",
            s.name(),
            v["questions"],
            v["kinds"]
        );
    }
    println!(
        "  corpus: {} documents, {passages} passages indexed, {words} words; vocabulary {} \
         words (preset roles); {} demonstrations",
        docs.len(),
        codec.vocab_size(),
        report["demonstrations"]
    );
    for (server, specs) in &servers {
        println!("  tools of {server}:");
        for t in specs {
            println!("    {}", usage(t));
        }
    }
    if let Some(q) = sample {
        println!("sample question {}: {}", q.id, q.text);
        println!("  answers: {:?}", q.answers().collect::<Vec<_>>());
        for h in &hits {
            println!(
                "  hit: {} : {}",
                h["title"].as_str().unwrap_or(""),
                h["snippet"].as_str().unwrap_or("")
            );
        }
        println!("  reward of the gold answer: {reward}");
        if !expert.is_null() {
            println!("  expert score of (question, gold answer): {expert}");
        }
    }
    Ok(())
}

/// The reward scorer's answer on the sample's gold answer, and the expert scorer's on (the
/// question as a sub-task, the gold answer): what a run would be told.
async fn sample_scores(
    task: &TaskConfig,
    q: &mgrpo_env::Question,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let answers: Vec<&str> = q.answers().collect();
    let reward = match &task.reward {
        RewardSpec::Metric(m) => {
            serde_json::json!({"metric": m.name(), "score": m.score(&q.answer, answers.iter().copied())})
        }
        RewardSpec::Command(c) => {
            let mut scorer = CommandScorer::new("task.reward", c);
            let score = scorer
                .score(&serde_json::json!({
                    "id": q.id, "question": q.text, "answers": answers,
                    "answer": q.answer, "transcript": "",
                }))
                .await
                .map_err(anyhow::Error::msg)?;
            scorer.stop().await;
            serde_json::json!({"command": c.command, "score": score})
        }
    };
    let expert = match &task.expert {
        Some(c) => {
            let mut scorer = CommandScorer::new("task.expert", c);
            let score = scorer
                .score(&serde_json::json!({"task": q.text, "result": q.answer}))
                .await
                .map_err(anyhow::Error::msg)?;
            scorer.stop().await;
            serde_json::json!({"command": c.command, "score": score})
        }
        None => serde_json::Value::Null,
    };
    Ok((reward, expert))
}
