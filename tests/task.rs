//! Your own task (`[task]`, docs/tasks.md) through the real binary: the world exported as a
//! task trains into the same store as the world itself; a reward command scores a run, and one
//! that crashes, hangs and answers garbage is restarted with no step lost or doubled; bad task
//! files are reported all at once, each with its file and line.
mod common;

use std::path::{Path, PathBuf};

use common::{assert_each_step_once, metrics, mgrpo, store_records, succeed};

/// examples/tiny.toml with a warm start that delegates, and `steps` steps.
fn tiny(dir: &Path, steps: u64) -> PathBuf {
    let path = dir.join("tiny.toml");
    // RL in the world itself (and the warm start: `delegating_tiny`'s is the world's): an
    // exported task has no copies of it (no years or names to redraw), so its run equals the
    // world's only there.
    let text = common::delegating_tiny().replace(
        "steps = 3\n",
        &format!("steps = {steps}\nyear_variants = 0\n"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn export(config: &Path, dir: &Path) -> PathBuf {
    let out = succeed(
        mgrpo()
            .args(["world", "--config"])
            .arg(config)
            .arg("--export")
            .arg(dir),
    );
    assert!(
        out.contains("questions") && out.contains("documents"),
        "{out}"
    );
    dir.join("task.toml")
}

fn train(config: &Path, run: &Path) -> std::process::Output {
    mgrpo()
        .args(["train", "--no-test", "--config"])
        .arg(config)
        .arg("--run")
        .arg(run)
        .output()
        .unwrap()
}

/// Test (a): the same tokenizer, demonstrations, rewards and so the same store, step for step.
#[test]
fn the_exported_world_trains_through_the_dataset_path_into_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny(dir.path(), 2);
    let task = export(&config, &dir.path().join("task"));
    let (world_run, task_run) = (dir.path().join("world"), dir.path().join("task-run"));
    for (c, run) in [(&config, &world_run), (&task, &task_run)] {
        let out = train(c, run);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tok = |run: &Path| std::fs::read(run.join("checkpoints/main/0/tokenizer.json")).unwrap();
    assert_eq!(
        tok(&world_run),
        tok(&task_run),
        "the task's tokenizer is the world's"
    );
    let (world_groups, world_steps) = store_records(&world_run);
    let (task_groups, task_steps) = store_records(&task_run);
    assert_eq!(world_groups.len(), 4, "2 steps of 2 groups");
    assert_eq!(task_groups, world_groups, "rewards, alignment, advantages");
    assert_eq!(task_steps, world_steps, "role versions");
    let m = |run: &Path| {
        metrics(run)
            .iter()
            .map(|l| (l["expert_rate"].clone(), l["calls_per_rollout"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(m(&task_run), m(&world_run));
    assert!(
        m(&world_run)
            .iter()
            .any(|(_, calls)| calls.as_f64() > Some(0.0)),
        "the runs delegate, so the expert command was asked"
    );
}

/// Test (c) and (d): a reward command scores a run (its scores drive r_correct: every answer
/// scored 1 makes accuracy the format rate), and one that crashes, then hangs, then answers
/// garbage (a failed score: the step is retried) costs no step; one that always crashes stops
/// the run with an error naming it, having committed nothing.
#[test]
fn a_reward_command_scores_a_run_and_a_failing_one_loses_no_step() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny(dir.path(), 2);
    let task = export(&config, &dir.path().join("task"));
    let scorer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scorers/reward.py");
    let with_reward = |mode: &str| {
        let log = dir.path().join(format!("{mode}.log"));
        // No evaluation: the scorer's first requests come from step 0, whose failed score
        // fails the step, which the coordinator retries.
        let text = std::fs::read_to_string(&task)
            .unwrap()
            .replace("eval_every = 2", "eval_every = 0")
            // A run that cannot be scored fails after one retry of its step.
            .replace("request_attempts = 4", "request_attempts = 1")
            .replace(
            "reward = \"em\"\n",
            &format!(
                "reward = {{ command = [\"python3\", {:?}, {:?}, \"{mode}\"], timeout_ms = 1000 }}\n",
                scorer.display().to_string(),
                log.display().to_string()
            ),
        );
        let path = dir.path().join(format!("task/{mode}.toml"));
        std::fs::write(&path, text).unwrap();
        (path, log)
    };

    let (flaky, log) = with_reward("flaky");
    let run = dir.path().join("flaky-run");
    let out = train(&flaky, &run);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_each_step_once(&run, 2);
    for line in metrics(&run) {
        assert!(line["format_rate"].as_f64().unwrap() > 0.0, "{line}");
        assert_eq!(
            line["accuracy"], line["format_rate"],
            "the command's scores are used"
        );
    }
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.matches("start").count() >= 4,
        "restarted after the crash, the hang and the garbage:\n{log}"
    );
    let request: serde_json::Value =
        serde_json::from_str(log.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    for key in ["id", "question", "answers", "answer", "transcript"] {
        assert!(!request[key].is_null(), "{key} in {request}");
    }
    assert!(
        request["transcript"]
            .as_str()
            .unwrap()
            .contains("<question>")
    );

    // Its first scores are the dev evaluation's before step 0, retried as a step is.
    let (crash, _) = with_reward("crash");
    let crash_text = std::fs::read_to_string(&crash)
        .unwrap()
        .replace("eval_every = 0", "eval_every = 2");
    std::fs::write(&crash, crash_text).unwrap();
    let run = dir.path().join("crash-run");
    let out = train(&crash, &run);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("task.reward")
            && err.contains("gave no score after 3 attempts")
            && err.contains("exited")
            && err.contains("the dev evaluation before step 0 failed 2 times"),
        "{err}"
    );
    assert!(metrics(&run).is_empty(), "no step committed");
}

/// Test (d): bad task files are all reported at once, with file and line.
#[test]
fn task_check_lists_every_bad_line_and_an_empty_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("q.jsonl"),
        "{\"question\": \"Where is Paris ?\", \"answer\": \"France\"}\n\
         {\"question\": \"broken\"\n\
         {\"question\": \"no answer\"}\n\
         {\"answer\": \"no question\"}\n\
         {\"question\": \"q\", \"answer\": \"a\", \"split\": \"validation\"}\n\
         {\"question\": \"q\", \"answer\": \"a\", \"anwser\": \"typo\"}\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("docs")).unwrap();
    std::fs::write(d.join("docs/notes.bin"), "not a document").unwrap();
    std::fs::write(
        d.join("task.toml"),
        "[task]\nquestions = \"q.jsonl\"\ncorpus = \"docs\"\n",
    )
    .unwrap();
    let out = mgrpo()
        .args(["task", "check", "--config"])
        .arg(d.join("task.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let q = d.join("q.jsonl").display().to_string();
    for needle in [
        format!("{q}:2: EOF while parsing"),
        format!("{q}:3: no answer"),
        format!("{q}:4: missing field `question`"),
        format!("{q}:5: unknown variant `validation`"),
        format!("{q}:6: unknown field `anwser`"),
        "the corpus has no documents".to_string(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in:\n{err}");
    }
    // Fixed, the same task checks and shows its counts, a search and the reward.
    std::fs::write(
        d.join("q.jsonl"),
        "{\"question\": \"Where is Paris ?\", \"answers\": [\"France\", \"in France\"], \"kind\": \"geo\"}\n",
    )
    .unwrap();
    std::fs::write(d.join("docs/paris.md"), "# Paris\nParis is in France.\n").unwrap();
    let out = succeed(
        mgrpo()
            .args(["task", "check", "--json", "--config"])
            .arg(d.join("task.toml")),
    );
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["documents"], 1);
    assert_eq!(report["splits"]["train"]["kinds"]["geo"], 1);
    assert_eq!(report["sample"]["top_hits"][0]["id"], "paris.md");
    assert_eq!(
        report["sample"]["top_hits"][0]["snippet"],
        "Paris is in France ."
    );
    assert_eq!(report["reward"]["score"], 1.0);
}

/// The example task that is not our world checks, and its reward command scores: the gold
/// answer 1, a wrong one 0, a list of every candidate 0.
#[test]
fn the_lighthouses_example_task_checks_and_its_reward_command_scores() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tasks/lighthouses");
    let out = succeed(
        mgrpo()
            .args(["task", "check", "--json", "--config"])
            .arg(root.join("task.toml")),
    );
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let n: u64 = ["train", "dev", "test"]
        .iter()
        .map(|s| report["splits"][s]["questions"].as_u64().unwrap())
        .sum();
    assert_eq!((n, report["documents"].as_u64()), (150, Some(30)));
    assert_eq!(report["reward"]["score"], 1.0, "{report}");
    // `hf init` on the task's config speaks the task's tokenizer, not the world's.
    let dir = tempfile::tempdir().unwrap();
    let said = succeed(
        mgrpo()
            .args(["hf", "init", "--config"])
            .arg(root.join("task.toml"))
            .args(["--family", "qwen3", "--like", "tiny", "--out"])
            .arg(dir.path().join("hf")),
    );
    assert!(
        said.contains(&format!(
            "the task's {}-token tokenizer",
            report["vocabulary"]
        )),
        "{said}"
    );
    let mut scorer = std::process::Command::new("python3")
        .arg(root.join("score.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = scorer.stdin.take().unwrap();
        for answer in [
            "Ina Varga .",
            "Peder Quist",
            "Ina Varga Peder Quist Ada Brennock Colm Ferris",
        ] {
            let line = serde_json::json!({"id": "x", "question": "q", "answers": ["Ina Varga"],
                "answer": answer, "transcript": ""});
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let out = scorer.wait_with_output().unwrap();
    let scores = common::scores(&out.stdout);
    assert_eq!(scores, [1.0, 0.0, 0.0]);
}

/// The lighthouses corpus, copied into `dir/docs`.
fn lighthouse_docs(dir: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tasks/lighthouses/docs");
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for f in std::fs::read_dir(&from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), docs.join(f.file_name())).unwrap();
    }
    docs
}

/// The search index is cached by the corpus's content: a second open reads it (and searches
/// exactly as a fresh index does), a changed corpus builds a new entry, an entry cut short is
/// built again and replaced; a run caches it in its directory and a resumed run reuses it.
#[test]
fn the_search_index_is_cached_by_the_corpus_content_and_a_changed_corpus_rebuilds() {
    use mgrpo_env::search::index_cache::IndexSource;
    use mgrpo_env::task::{Dataset, DatasetFiles};
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tasks/lighthouses");
    let docs = lighthouse_docs(dir.path());
    let cache = dir.path().join("cache");
    let limits = mgrpo_env::WorldConfig::default();
    let load = |cache: Option<&Path>| {
        let files = DatasetFiles {
            questions: &root.join("questions.jsonl"),
            corpus: &docs,
            demonstrations: None,
            splits: Default::default(),
            index_cache: cache,
            earlier_tool: false,
        };
        Dataset::load(&files, &limits).unwrap()
    };
    let entries = || -> Vec<PathBuf> {
        let mut e: Vec<PathBuf> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        e.sort();
        e
    };
    let hits = |d: &Dataset| -> Vec<String> {
        mgrpo_env::Split::ALL
            .iter()
            .flat_map(|s| d.questions(*s))
            .map(|q| d.tools.search_text(&q.text))
            .collect()
    };
    let fresh = load(None);
    let first = load(Some(&cache));
    assert_eq!(first.index, IndexSource::Built);
    assert_eq!(entries().len(), 1);
    let second = load(Some(&cache));
    assert_eq!(second.index, IndexSource::Reused, "a second open reads it");
    assert_eq!(
        hits(&second),
        hits(&fresh),
        "the same hits, in the same order"
    );
    assert_eq!(hits(&first), hits(&fresh));

    // One sentence changed: a new entry, built; the old one is kept for the old corpus.
    let bellmoor = docs.join("bellmoor.md");
    let text = std::fs::read_to_string(&bellmoor).unwrap();
    std::fs::write(
        &bellmoor,
        text.replace("dates from 1879", "dates from 1880"),
    )
    .unwrap();
    let changed = load(Some(&cache));
    assert_eq!(
        changed.index,
        IndexSource::Built,
        "a changed corpus rebuilds"
    );
    assert_eq!(entries().len(), 2);
    assert!(
        changed
            .tools
            .search_text("Bellmoor dates from")
            .contains("1880"),
        "the rebuilt index is the new corpus's"
    );
    assert_eq!(load(Some(&cache)).index, IndexSource::Reused);

    // Every file of the changed corpus's entry cut short: built again, and the entry replaced.
    let before = entries();
    for entry in &before {
        for f in std::fs::read_dir(entry).unwrap() {
            let f = f.unwrap().path();
            let bytes = std::fs::read(&f).unwrap();
            std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    assert_eq!(load(Some(&cache)).index, IndexSource::Built);
    assert_eq!(
        load(Some(&cache)).index,
        IndexSource::Reused,
        "the entry was replaced"
    );

    // A run caches the index in its directory; a resumed run reads it.
    std::fs::write(
        dir.path().join("task.toml"),
        format!(
            "[task]\nquestions = \"{}\"\ncorpus = \"docs\"\n\n[models.main]\npreset = \"tiny\"\n\n\
             [models.sub]\npreset = \"tiny\"\n\n[algo]\nqueries_per_step = 1\ngroup_size = 2\n\n\
             [train]\nsteps = 1\neval_every = 1000\neval_questions = 1\n",
            root.join("questions.jsonl").display()
        ),
    )
    .unwrap();
    let run = dir.path().join("run");
    let logged = |args: &[&str]| {
        let out = mgrpo()
            .env("MGRPO_LOG", "mgrpo_actors::context=info")
            .args(args)
            .arg("--run")
            .arg(&run)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    let config = dir.path().join("task.toml");
    let trained = logged(&["train", "--no-test", "--config", config.to_str().unwrap()]);
    assert!(trained.contains("search index index=Built"), "{trained}");
    assert_eq!(
        std::fs::read_dir(run.join("index-cache")).unwrap().count(),
        1
    );
    let resumed = logged(&["train", "--no-test", "--resume", "--steps", "2"]);
    assert!(resumed.contains("search index index=Reused"), "{resumed}");
    assert_each_step_once(&run, 2);
}
