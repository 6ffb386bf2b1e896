//! One function per subcommand. Each loads what it needs and calls into the library crates.
mod bench;
mod bench_index;
mod bench_tools;
mod chaos;
mod cluster;
mod hf;
pub(crate) mod plot;
mod run_summary;
mod swap;
mod task;
pub mod test_summary;
mod train;

use std::path::Path;

use anyhow::{Context, Result, bail};
use mgrpo_actors::Config;
use mgrpo_env::{Split, TextCodec, World, eval_experts, render_transcript, run_expert_episode};

use crate::cli::{
    AlgoArgs, BenchCommand, Cli, Command, EvalArgs, ExportCommand, SplitArg, StoreCommand,
    WorldArgs,
};

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Self {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Dev => Split::Dev,
            SplitArg::Test => Split::Test,
        }
    }
}

/// Loads the config file, with the file named in any error. A missing default
/// (`./cluster.toml`, when the command runs outside the repository) says where it was looked for
/// and what to pass instead.
pub fn load_config(path: &Path) -> Result<Config> {
    if !path.exists() && path.is_relative() {
        let cwd = std::env::current_dir().unwrap_or_default();
        bail!(
            "no config file {} in {} (--config is relative to the current directory; its \
             default is ./cluster.toml): run from the repository's root, or pass \
             --config PATH (the repository's cluster.toml, or examples/tiny.toml for a quick run)",
            path.display(),
            cwd.display()
        );
    }
    Ok(Config::load(path)?)
}

/// [`load_config`] with `--set` overrides applied.
pub fn load_config_with(path: &Path, set: &crate::cli::SetArgs) -> Result<Config> {
    if set.sets.is_empty() {
        return load_config(path);
    }
    load_config(path)?;
    Ok(Config::load_with(path, &set.sets)?)
}

/// Refuses an explicit `--config` where a run's own `config.toml` is what counts (`train
/// --resume`, `eval --policy run:DIR`), rather than ignoring it silently.
pub fn refuse_config_for_run(config: &Path, run: &Path, what: &str) -> Result<()> {
    if config != Path::new(crate::cli::DEFAULT_CONFIG) {
        bail!(
            "{what} uses the run's own config ({}), not --config {}: drop --config",
            mgrpo_actors::RunDir::new(run).config_path().display(),
            config.display()
        );
    }
    Ok(())
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::World(args) => world(&args),
        Command::Eval(args) => eval(&args),
        Command::Algo(args) => algo(&args),
        Command::Warmup(args) => train::warmup(&args),
        Command::Train(args) => train::train(&args),
        Command::Node(args) => cluster::node(&args),
        Command::Status(args) => cluster::status(&args),
        Command::Swap(args) => swap::swap(&args),
        Command::Chaos(args) => chaos::chaos(&args),
        Command::Experiment(args) => crate::experiment::experiment(&args),
        Command::Store {
            command: StoreCommand::Dump { run, json: _ },
        } => store_dump(&run),
        Command::Plot(args) => {
            plot::plot(&args.runs, &args.out)?;
            println!("wrote {}", args.out.display());
            Ok(())
        }
        Command::Dashboard(args) => crate::dashboard::serve_command(&args),
        Command::Export {
            command: ExportCommand::Tensorboard { run, out },
        } => {
            let out = out.unwrap_or_else(|| run.join("tensorboard"));
            let (file, n) = crate::tensorboard::export(&run, &out)?;
            println!("wrote {n} scalars to {}", file.display());
            Ok(())
        }
        Command::Hf { command } => hf::hf(command),
        Command::Task { command } => task::task(command),
        Command::Bench { command } => match command {
            BenchCommand::Models { .. } => bench::models(&command),
            BenchCommand::Index {
                docs,
                queries,
                json,
            } => bench_index::index(docs, queries, json),
            BenchCommand::Train {
                config,
                steps,
                run,
                schedule,
                json,
            } => bench::train(&config.config, steps, run, schedule, json),
            BenchCommand::Tools {
                server,
                call,
                calls,
                json,
            } => bench_tools::tools(&server, &call, calls, json),
        },
    }
}

fn world(args: &WorldArgs) -> Result<()> {
    let config = load_config(&args.config.config)?;
    if args.judge {
        return task::serve_world_judge(&config);
    }
    if let Some(dir) = &args.export {
        return task::export_world(&config, dir);
    }
    let t = std::time::Instant::now();
    let world = World::generate(&config.world)?;
    let gen_ms = t.elapsed().as_secs_f64() * 1e3;
    let codec = TextCodec::build(&world)?;
    if let Some(path) = &args.tokenizer_out {
        std::fs::write(path, codec.to_json()?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let k = &world.knowledge;
    let words: usize = world
        .tools
        .docs()
        .iter()
        .map(|d| d.text().split_whitespace().count())
        .sum();
    let mut mix = serde_json::Map::new();
    for s in Split::ALL {
        let mut m = std::collections::BTreeMap::new();
        for q in world.questions(s) {
            *m.entry(q.kind.as_str()).or_insert(0usize) += 1;
        }
        mix.insert(s.name().into(), serde_json::to_value(m)?);
    }
    let summary = serde_json::json!({
        "seed": config.world.seed,
        "entities": k.entities.len(),
        "facts": k.facts.len(),
        "documents": world.tools.docs().len(),
        "corpus_words": words,
        "vocab": codec.vocab_size(),
        "questions": mix,
        "generate_ms": gen_ms,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "world seed {}: {} entities, {} facts, {} documents ({} words), vocabulary {} tokens, generated in {:.0} ms",
            config.world.seed,
            k.entities.len(),
            k.facts.len(),
            world.tools.docs().len(),
            words,
            codec.vocab_size(),
            gen_ms
        );
        println!("questions: {}", serde_json::Value::Object(mix));
    }
    let split: Split = args.split.into();
    for (i, q) in world.questions(split).iter().take(args.show).enumerate() {
        let t = run_expert_episode(&world, q, 0.0, 0.0, i as u64);
        println!("{}", render_transcript(&t));
    }
    Ok(())
}

fn eval(args: &EvalArgs) -> Result<()> {
    let split: Split = args.split.into();
    let report = if args.policy == "expert" {
        if args.transcripts.is_some() {
            bail!(
                "--transcripts needs --policy run:DIR (`mgrpo world --show N` prints the experts' transcripts)"
            );
        }
        let config = load_config(&args.config.config)?;
        if config.task.is_some() {
            bail!(
                "--policy expert runs the world's scripted experts, which a [task] does not have \
                 (docs/tasks.md)"
            );
        }
        let world = World::generate(&config.world)?;
        let noise = args.noise.unwrap_or(0.0);
        eval_experts(&world, split, noise, noise, config.run.seed, args.limit)
    } else if let Some(spec) = args.policy.strip_prefix("run:") {
        let (dir, version) = match spec.rsplit_once('@') {
            Some((d, "best")) => {
                let best = mgrpo_actors::RunDir::new(d).best().with_context(|| {
                    format!("{d} has no best.json (train with keep_best = true and eval_every > 0)")
                })?;
                (d, Some(best.version))
            }
            Some((d, v)) => (
                d,
                Some(v.parse::<u64>().with_context(|| {
                    format!("bad version {v:?} in --policy (a number or `best`)")
                })?),
            ),
            None => (spec, None),
        };
        refuse_config_for_run(&args.config.config, Path::new(dir), "--policy run:DIR")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let (report, v, answers) = rt.block_on(mgrpo_actors::eval::eval_run_answers(
            Path::new(dir),
            version,
            split,
            args.limit,
        ))?;
        if let Some(path) = &args.transcripts {
            let mut text = String::new();
            for a in &answers {
                text.push_str(&serde_json::to_string(a)?);
                text.push('\n');
            }
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        if !args.json {
            println!("{dir} version {v}");
        }
        report
    } else {
        bail!(
            "--policy must be `expert` or `run:DIR[@VERSION|@best]`, got {:?}",
            args.policy
        );
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

fn algo(args: &AlgoArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let out =
        mgrpo_algo::inspect::run(&text).with_context(|| format!("in {}", args.input.display()))?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn store_dump(run: &Path) -> Result<()> {
    let path = run.join("store");
    anyhow::ensure!(
        path.is_dir(),
        "{} has no store/ (is it a run directory?)",
        run.display()
    );
    let store = mgrpo_store::Store::open(&path)
        .with_context(|| format!("opening the store of {}", run.display()))?;
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for value in store.dump()? {
        writeln!(out, "{value}")?;
    }
    Ok(())
}
