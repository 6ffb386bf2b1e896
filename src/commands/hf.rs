//! `mgrpo hf …`: Hugging Face folders from the command line — log-probs, tokenization, export
//! and a fresh folder sized like a preset.
use std::path::Path;

use anyhow::{Context, Result, bail};
use mgrpo_actors::role_codec::RoleCodec;
use mgrpo_models::hf::{
    HfFamily, HfFolder, HfTokenizer, SaveOptions, StoreDtype, read_config, save_hf, tokenizer_files,
};
use mgrpo_models::{DeviceSpec, Policy, PolicyConfig, load_checkpoint};

use super::load_config;
use crate::cli::{HfCommand, HfExportArgs, HfInitArgs, HfLogprobsArgs, HfTokenizeArgs};

/// Runs an `mgrpo hf` subcommand.
pub fn hf(command: HfCommand) -> Result<()> {
    match command {
        HfCommand::Logprobs(args) => logprobs(&args),
        HfCommand::Tokenize(args) => tokenize(&args),
        HfCommand::Export(args) => export(&args),
        HfCommand::Init(args) => init(&args),
    }
}

fn logprobs(args: &HfLogprobsArgs) -> Result<()> {
    let folder = HfFolder::open(&args.model)?;
    let ids = match &args.text {
        Some(text) => HfTokenizer::from_folder(&args.model)?.encode(text)?,
        None => args.ids.clone(),
    };
    if ids.len() < 2 {
        bail!(
            "need at least two ids (the first has no prefix to be scored on), got {}",
            ids.len()
        );
    }
    let device = DeviceSpec::parse(&args.backend.backend, &args.backend.device)?.to_device()?;
    let policy = folder.load(&device)?;
    let scored = policy.score(std::slice::from_ref(&ids))?.remove(0);
    let logprobs = &scored[1..];
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "ids": ids, "logprobs": logprobs })
        );
    } else {
        println!("{:>6} {:>10} {:>12}", "pos", "id", "logprob");
        for (i, (id, lp)) in ids[1..].iter().zip(logprobs).enumerate() {
            println!("{:>6} {:>10} {:>12.6}", i + 1, id, lp);
        }
        println!("sum {:.6}", logprobs.iter().map(|&x| x as f64).sum::<f64>());
    }
    Ok(())
}

fn tokenize(args: &HfTokenizeArgs) -> Result<()> {
    let tokenizer = HfTokenizer::from_folder(&args.model)?;
    let text = if args.chat {
        tokenizer.render_chat(
            &[mgrpo_models::hf::ChatMessage::new("user", &args.text)],
            true,
        )?
    } else {
        args.text.clone()
    };
    let ids = tokenizer.encode(&text)?;
    if args.json {
        let mut doc = serde_json::json!({ "ids": ids });
        if args.chat {
            doc["text"] = serde_json::json!(text);
        }
        println!("{doc}");
    } else {
        if args.chat {
            println!("{text}");
        }
        println!(
            "{}",
            ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        );
    }
    Ok(())
}

/// A policy to export, the tokenizer files to write beside it, and what it is (for messages).
struct Source {
    policy: Policy,
    files: Vec<(String, Vec<u8>)>,
    what: String,
    /// The dtype its weights are to be stored in unless told otherwise.
    dtype: StoreDtype,
}

/// A run's checkpoint of `role` at `spec`'s version (latest when none is given).
fn run_policy(spec: &str, role: &str) -> Result<Source> {
    if !["main", "sub"].contains(&role) {
        bail!("--role must be main or sub, got {role:?}");
    }
    let (dir, version) = match spec.rsplit_once('@') {
        Some((d, v)) => (
            d,
            Some(
                v.parse::<u64>()
                    .with_context(|| format!("bad version {v:?} in --policy"))?,
            ),
        ),
        None => (spec, None),
    };
    let run = mgrpo_actors::RunDir::new(dir);
    let version = match version {
        Some(v) => v,
        None => run
            .latest_checkpoint(role)
            .with_context(|| format!("{dir} has no checkpoint of role {role}"))?,
    };
    let path = run.checkpoint_path(role, version);
    let checkpoint = load_checkpoint(&path, &DeviceSpec::flex_cpu().to_device()?, None)
        .with_context(|| format!("loading {}", path.display()))?;
    let mut files = vec![("tokenizer.json".to_string(), checkpoint.tokenizer_json)];
    let settings = mgrpo_actors::Config::load(&run.config_path())
        .ok()
        .and_then(|c| c.models.of_name(role).cloned());
    // The role's own folder (when it started from one) holds the rest of its tokenizer files.
    if let Some(source) = settings.as_ref().and_then(|m| m.hf.as_ref()) {
        for (name, bytes) in tokenizer_files(source)? {
            if name != "tokenizer.json" {
                files.push((name, bytes));
            }
        }
    }
    Ok(Source {
        policy: checkpoint.policy,
        files,
        what: format!("{dir} role {role} version {version}"),
        dtype: settings.map_or(StoreDtype::F32, |m| m.dtype),
    })
}

fn export(args: &HfExportArgs) -> Result<()> {
    let Source {
        policy,
        files,
        what,
        dtype: stored_dtype,
    } = if let Some(dir) = args.policy.strip_prefix("hf:") {
        let folder = HfFolder::open(dir)?;
        Source {
            policy: folder.load(&DeviceSpec::flex_cpu().to_device()?)?,
            files: folder.tokenizer_files()?,
            what: dir.to_string(),
            dtype: StoreDtype::F32,
        }
    } else if let Some(spec) = args.policy.strip_prefix("run:") {
        run_policy(spec, &args.role)?
    } else {
        bail!(
            "--policy must be hf:DIR or run:DIR[@VERSION], got {:?}",
            args.policy
        );
    };
    if !mgrpo_models::hf::is_hf(&policy) {
        bail!(
            "{what} is a GPT preset; only Llama/Qwen2/Qwen3 policies export to HF folders \
             (start the role from one: [models.ROLE] hf = \"DIR\", see `mgrpo hf init`)"
        );
    }
    let dtype = match (args.dtype, args.bf16) {
        (Some(d), _) => d,
        (None, true) => StoreDtype::Bf16,
        (None, false) => stored_dtype,
    };
    save_hf(&policy, &args.out, &SaveOptions { dtype, files })?;
    println!(
        "exported {what} ({} parameters, {}) to {}",
        policy.num_params(),
        dtype.name(),
        args.out.display()
    );
    Ok(())
}

fn init(args: &HfInitArgs) -> Result<()> {
    let family = match args.family.as_str() {
        "llama" => HfFamily::Llama,
        "qwen2" => HfFamily::Qwen2,
        "qwen3" => HfFamily::Qwen3,
        other => bail!("--family must be llama, qwen2 or qwen3, got {other:?}"),
    };
    // The tokenizer: the task's (its close tags end turns), or another folder's (its chat
    // template's end-of-turn token ends them).
    let (vocab, eos, files, what) = match &args.tokenizer {
        None => {
            // A preset role's tokenizer: the world's, or a [task]'s (tools included), as the
            // run will build it.
            let config = load_config(&args.config.config)?;
            let task = mgrpo_actors::context::load_task(&config, None)?;
            let tools = config.task.as_ref().map_or(&[][..], |t| &t.tools);
            let names = (!tools.is_empty())
                .then(|| mgrpo_actors::mcp::ToolServerConfig::exposed_names(tools));
            let codec = task.codec(names.as_deref())?;
            let files = vec![("tokenizer.json".into(), codec.to_hf_json()?.into_bytes())];
            let what = format!("the task's {}-token tokenizer", codec.vocab_size());
            (codec.vocab_size(), codec.stop_ids().to_vec(), files, what)
        }
        Some(dir) => {
            let tokenizer = HfTokenizer::from_folder(dir)?;
            let eos = tokenizer
                .token_id(tokenizer.eos_token())
                .into_iter()
                .collect();
            let what = format!(
                "the {}-token tokenizer of {}{}",
                tokenizer.vocab_size(),
                dir.display(),
                if tokenizer.has_chat_template() {
                    " with its chat template"
                } else {
                    ""
                }
            );
            (tokenizer.vocab_size(), eos, tokenizer_files(dir)?, what)
        }
    };
    // The shape: a config.json as it is (its own end-of-turn ids), or a preset's sizes ending
    // turns where the tokenizer does.
    let policy_config = match &args.arch {
        Some(path) => {
            let config = read_config(path)?;
            anyhow::ensure!(
                config.vocab_size >= vocab,
                "{}: vocab_size {} is smaller than the tokenizer's {vocab} tokens",
                path.display(),
                config.vocab_size
            );
            config.with_init_seed(args.seed)
        }
        None => {
            let preset = PolicyConfig::preset(&args.like, vocab)?;
            let mut config = PolicyConfig::hf_preset(
                &args.like,
                family,
                vocab,
                args.kv_heads.unwrap_or(preset.n_heads),
            )?
            .with_init_seed(args.seed);
            if let Some(arch) = config.hf.as_mut() {
                arch.eos_token_ids = eos;
            }
            config
        }
    };
    let policy = Policy::new(policy_config, &DeviceSpec::flex_cpu().to_device()?)?;
    let own_config = files.iter().any(|(n, _)| n == "tokenizer_config.json");
    save_hf(
        &policy,
        &args.out,
        &SaveOptions {
            dtype: StoreDtype::F32,
            files,
        },
    )?;
    if !own_config {
        write_tokenizer_config(&args.out)?;
    }
    // The folder must be usable as a role: the same check a run makes.
    RoleCodec::hf(&args.out, policy.config())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the written folder cannot serve as a role")?;
    let shape = match &args.arch {
        Some(path) => format!("the shape of {}", path.display()),
        None => format!("{} {}", family.model_type(), args.like),
    };
    println!(
        "wrote {} ({shape}, {} parameters, {what})",
        args.out.display(),
        policy.num_params(),
    );
    Ok(())
}

/// A `tokenizer_config.json` so that transformers' `AutoTokenizer` loads the world tokenizer.
fn write_tokenizer_config(dir: &Path) -> Result<()> {
    let doc = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": mgrpo_env::tokenizer::PAD,
        "unk_token": mgrpo_env::tokenizer::UNK,
        "model_max_length": 1024,
    });
    let path = dir.join("tokenizer_config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))
}
