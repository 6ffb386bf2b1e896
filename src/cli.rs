//! Argument definitions (clap derive). Each subcommand's doc comment is its `--help` text.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mgrpo_models::hf::StoreDtype;

/// Train multi-agent LLM systems (a planner that delegates to tool-using sub-agents) with
/// M-GRPO, on an offline, procedurally generated deep-research world.
#[derive(Debug, Parser)]
#[command(name = "mgrpo", version, about, long_about = None)]
pub struct Cli {
    /// More logging (-v info, -vv debug); `MGRPO_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// `--config`'s default: `cluster.toml` in the current directory.
pub const DEFAULT_CONFIG: &str = "cluster.toml";

/// Where the config comes from.
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// The cluster/run configuration file (relative to the current directory; the paths inside
    /// it are relative to the file).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// Settings changed on the command line instead of in the file.
#[derive(Debug, Args, Clone, Default)]
pub struct SetArgs {
    /// Change one setting of the config file, as if written in it: `--set KEY=VALUE` with a
    /// dotted key and a TOML value (`--set warmup.lr=2e-3 --set train.steps=300`; a bare word
    /// is a string). Repeatable; kept in the run's config.toml. The fast recipe: README.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    pub sets: Vec<(String, toml::Value)>,
}

fn parse_set(text: &str) -> Result<(String, toml::Value), String> {
    mgrpo_actors::config::overrides::parse_assignment(text)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the task world from the config's seed and inspect it: sizes, question mix, and
    /// with `--show N` N questions with the scripted experts' full transcripts, hop by hop.
    World(WorldArgs),
    /// Run a policy on a split and print accuracy overall, by question kind and by hop count.
    /// `--policy expert` runs the scripted experts; `--policy run:DIR[@VERSION|@best]` the trained
    /// main and sub policies of a run (latest version unless given).
    Eval(EvalArgs),
    /// Inspect the M-GRPO maths on your own numbers: read groups of reward parts (JSON, see
    /// docs/algorithm.md) and print rewards, alignment and advantages as JSON.
    Algo(AlgoArgs),
    /// Warm-start the policies by supervised fine-tuning on the (noisy) scripted experts'
    /// demonstrations; saves version-0 checkpoints in the run directory.
    Warmup(WarmupArgs),
    /// Train with M-GRPO (or a baseline) on one node: warms up if needed, then runs the steps
    /// with a progress bar, writing metrics.jsonl, checkpoints and the store under the run
    /// directory. Ctrl-C stops cleanly after the current step; `--resume` continues.
    Train(TrainArgs),
    /// Start one node of a cluster (`[[cluster.nodes]]` in the config): its node server, links
    /// to its peers (retried until they are up), and the roles placed on it. The coordinator's
    /// node trains once every placed role is present, then stops every node. A node restarted
    /// with the same command rejoins and the run continues. Ctrl-C stops the node cleanly.
    Node(NodeArgs),
    /// Join a cluster (`--config`) or a one-process run (`--run DIR`) as a short-lived client and
    /// print its nodes, which roles run where, each role's generation, version and source and
    /// its last swap, the current step and the last metrics.
    Status(StatusArgs),
    /// Hot-swap a role of a running run at a step boundary: to a saved version
    /// (`checkpoint:V`), back to the policy before its last swap (`previous`), to the scripted
    /// expert (`expert`), frozen (`frozen`; `train` resumes learning), or to another checkpoint
    /// directory or Hugging Face folder (`model:PATH`); `--node NAME` moves its inference
    /// instances to another node. Answers once the swap took effect, with the step it did.
    Swap(SwapArgs),
    /// Run a fault plan against a live cluster (real `mgrpo node` processes on loopback, a
    /// fault proxy on every link) over one or more seeds, and check that no step was lost or
    /// doubled and that the store equals the fault-free run of the same config and seed
    /// (docs/faults.md).
    Chaos(ChaosArgs),
    /// Read a run's store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Draw reward and dev-accuracy curves of one or several runs into one PNG.
    Plot(PlotArgs),
    /// Serve a live web dashboard (curves, roles, nodes, swaps and faults, one group's
    /// transcripts) of runs (`--run DIR…`, finished or live), a cluster (`--config`) or a study
    /// (`--study DIR`); loopback by default, nothing loaded from outside the server.
    Dashboard(DashboardArgs),
    /// Convert a run's records for other tools.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Run a study: variants × seeds × config overrides from a plan file, one warm start per
    /// seed shared by the variants that can use it, `parallel` runs at a time, resumable; then
    /// report each run's test accuracy (warm start, dev-selected, final), per-variant means
    /// with 95 % intervals (`table.md`, `summary.json`) and a dev-accuracy plot (`dev.png`).
    Experiment(ExperimentArgs),
    /// Hugging Face models (Llama, Qwen2, Qwen3 folders): per-token log-probs, tokenization,
    /// export of a folder or a run's trained role back to an HF folder, and a fresh folder of an
    /// HF architecture sized like a preset over the world's tokenizer.
    Hf {
        #[command(subcommand)]
        command: HfCommand,
    },
    /// Your own task (`[task]`: questions, corpus, reward; docs/tasks.md).
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Benchmarks that print figures (not tests).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Run directories (finished ones are read from disk; a live one-process run is followed
    /// through its control endpoint).
    #[arg(long, num_args = 1..)]
    pub run: Vec<PathBuf>,
    /// A cluster's config: follow its hub's run live (and its nodes).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A study's directory (`mgrpo experiment`): its runs, grouped by variant.
    #[arg(long)]
    pub study: Option<PathBuf>,
    /// Where to listen. Loopback by default; any other address needs `--cookie` (the cluster's
    /// cookie, asked for by the page as `?cookie=…`).
    #[arg(long, default_value = "127.0.0.1:8265")]
    pub listen: std::net::SocketAddr,
    /// The secret a non-loopback dashboard asks for (default: the config's cluster cookie).
    #[arg(long)]
    pub cookie: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// TensorBoard event files of a run's scalars: each step's metrics (per role under
    /// `main/`, `sub/`…, the rest under `train/`), dev evaluations and the test summary.
    Tensorboard {
        /// The run directory.
        #[arg(long)]
        run: PathBuf,
        /// The directory to write into (default: RUN/tensorboard).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// The plan (TOML; see docs/experiments.md).
    #[arg(long)]
    pub plan: PathBuf,
    /// The study's directory (default: `runs/experiments/NAME`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Runs at a time (overrides the plan's `parallel`).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Only write the report, from the runs that finished (the table says how many did not).
    #[arg(long)]
    pub report_only: bool,
    /// Pool another study's finished runs into the report: its `summary.json` or its
    /// directory (the same plan on other seeds, run earlier or elsewhere). They join
    /// summary.json and table.md; a run this study has too is an error. Repeatable.
    #[arg(long, value_name = "SUMMARY")]
    pub with: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WorldArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print N questions of the split with the experts' transcripts.
    #[arg(long, default_value_t = 0)]
    pub show: usize,
    /// Which split `--show` draws from.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    /// Write the tokenizer.json of the world to this path.
    #[arg(long)]
    pub tokenizer_out: Option<PathBuf>,
    /// Print the summary as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Write the world as a task to this directory (questions.jsonl, corpus.jsonl,
    /// demonstrations.jsonl from the noisy experts with the config's run seed, task.toml): the
    /// reference example of the task format (docs/tasks.md).
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// Serve the world's judge as a scorer command: read `{"task", "result"}` JSON lines on
    /// stdin, write `{"score": r_expert}` lines (what an exported task.toml's `expert` runs).
    #[arg(long)]
    pub judge: bool,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Validate the config's `[task]` (every file:line problem at once) and show what a run
    /// would use: questions per split and kind, documents, index size, a sample question with
    /// its top search hits, and the scorer's answer on one example.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Train,
    Dev,
    Test,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// `expert`, or `run:DIR` / `run:DIR@VERSION` / `run:DIR@best` (the dev-selected checkpoint)
    /// for a trained run's policies, which run with the run's own config (no `--config`).
    #[arg(long, default_value = "expert")]
    pub policy: String,
    /// The split to evaluate on.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Evaluate only the first N questions of the split.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Expert noise for `--policy expert`: the probability of each expert mistake (default 0,
    /// perfect experts; the config's `world.main_noise`/`sub_noise` shape only the warm
    /// start's demonstrations).
    #[arg(long)]
    pub noise: Option<f64>,
    /// With `--policy run:DIR`: also write every question's answer and the main agent's
    /// transcript to FILE, one JSON object a line (`id`, `kind`, `question`, `answers`,
    /// `answer`, `format`, `correct`, `transcript`, and `calls`: each sub-agent call's `task`,
    /// `result`, `format` and the judge's `expert` score), to read the policy's mistakes and
    /// which role made them.
    #[arg(long, value_name = "FILE")]
    pub transcripts: Option<std::path::PathBuf>,
    /// Print one machine-readable JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AlgoArgs {
    /// Groups of reward parts as JSON (see docs/examples/groups.json).
    #[arg(long)]
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct WarmupArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub set: SetArgs,
    /// Run directory (default: a new directory under the config's run root).
    #[arg(long)]
    pub run: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub set: SetArgs,
    /// Run directory (default: a new directory under the config's run root).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Number of training steps (overrides the config).
    #[arg(long)]
    pub steps: Option<u64>,
    /// The algorithm variant (overrides the config).
    #[arg(long)]
    pub algo: Option<String>,
    /// The run seed (overrides the config).
    #[arg(long)]
    pub seed: Option<u64>,
    /// `sync` or `async` (overrides the config's `algo.schedule`; async rolls the next step
    /// out during this step's updates, `algo.max_staleness` versions behind).
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// Continue a stopped run from its last checkpoint and the store, with the run's own
    /// config.toml (no `--config`; `--steps`, `--seed`, `--algo`, `--schedule` still apply).
    #[arg(long)]
    pub resume: bool,
    /// Skip the test-split evaluation of the warm start, the dev-selected and the final
    /// checkpoint that ends a run (printed, and kept as `RUN/test.json`).
    #[arg(long)]
    pub no_test: bool,
    /// Also write TensorBoard event files of the run's scalars (per step, per evaluation, the
    /// test summary) into this directory, as the steps come.
    #[arg(long)]
    pub tensorboard: Option<PathBuf>,
    /// Serve the live dashboard of this run at ADDR (e.g. 127.0.0.1:8265) while it trains;
    /// a non-loopback address needs the config's cluster cookie (docs/operations.md).
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<std::net::SocketAddr>,
}

/// `algo.schedule` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// Roll out, then update.
    Sync,
    /// The next step's rollouts during this step's updates.
    Async,
}

impl From<ScheduleArg> for mgrpo_actors::config::Schedule {
    fn from(s: ScheduleArg) -> Self {
        match s {
            ScheduleArg::Sync => Self::Sync,
            ScheduleArg::Async => Self::Async,
        }
    }
}

/// Which schedules `mgrpo bench train` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchSchedule {
    /// The synchronous schedule only.
    Sync,
    /// The asynchronous schedule only.
    Async,
    /// Both, the second from the first's warm start.
    Both,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// This node's name in `[[cluster.nodes]]`.
    #[arg(long)]
    pub node: String,
    /// Run directory on this host (default: `<run.root>/<cluster.name>`).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Serve the cluster's live dashboard at ADDR from this node (the hub only: the node that
    /// hosts the coordinator); a non-loopback address needs the cluster's cookie in the URL.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A one-process run's directory (reached through its control.json) instead of a cluster.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Print one JSON object (for scripts).
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the nodes to answer, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct SwapArgs {
    /// The cluster's config (its hub hosts the coordinator).
    #[command(flatten)]
    pub config: ConfigArg,
    /// A one-process run's directory (reached through its control.json) instead of a cluster.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// The role to swap: `main` (the planner's model; the single agent's; the shared model) or
    /// `sub` (the sub-agents' model).
    #[arg(long)]
    pub role: String,
    /// checkpoint:V | previous | expert | frozen | train | model:PATH | keep (default with --node)
    #[arg(long)]
    pub to: Option<String>,
    /// Take effect at the boundary before this step (not earlier); default: the next one.
    #[arg(long)]
    pub at_step: Option<u64>,
    /// Move the role's inference instances (planners for main, executors for sub) to this node
    /// of the cluster; they fetch the current weights in chunks.
    #[arg(long)]
    pub node: Option<String>,
    /// How long the swap may wait for its step boundary and for the role to be present, in
    /// seconds; past it the swap fails and changes nothing.
    #[arg(long, default_value_t = 600)]
    pub wait: u64,
    /// How long to wait for the run's nodes to answer, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Print one JSON object (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// The fault plan (TOML; see examples/chaos/ and docs/faults.md).
    #[arg(long)]
    pub plan: PathBuf,
    /// Run the plan with seeds 0..N (random triggers drawn per seed).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Run only this seed (what a failing run prints to reproduce it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where runs, logs and histories go (default: runs/chaos/<plan name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the run directories of runs that passed (failing ones are always kept).
    #[arg(long)]
    pub keep: bool,
    /// Print the summary as one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Print the store's contents, one JSON object per line (config, steps, groups with their
    /// rewards, alignment and advantages, role versions, checkpoints, events).
    Dump {
        /// The run directory.
        #[arg(long)]
        run: PathBuf,
        /// JSON lines output (the only format).
        #[arg(long, default_value_t = true)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Run directories to compare (each needs a metrics.jsonl).
    #[arg(long = "run", required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "runs/compare.png")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The corpus tools at scale: indexing documents/s of a generated corpus and `search`
    /// latency p50 / p99 (docs/tasks.md).
    Index {
        /// Documents in the generated corpus.
        #[arg(long, default_value_t = 100_000)]
        docs: usize,
        /// Searches timed.
        #[arg(long, default_value_t = 2_000)]
        queries: usize,
        /// One JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Model figures: sampling tokens/s with and without the KV cache, train-step times.
    Models {
        #[command(flatten)]
        config: ConfigArg,
        /// Presets to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = vec!["tiny".to_string(), "small".to_string()])]
        presets: Vec<String>,
        /// Backend: flex or tch.
        #[arg(long, default_value = "flex")]
        backend: String,
        /// Device: cpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Also run `bench/torch_reference.py` (eager PyTorch, same shapes and thread count) in
        /// the same run and print both tables and the ratios.
        #[arg(long)]
        compare_torch: bool,
        /// The Python with torch for `--compare-torch` (default: `$MGRPO_TORCH_PYTHON`, else
        /// `bench/tch-env.sh`'s venv `./.venv-torch/bin/python`, else the CI's venv
        /// `~/.cache/mgrpo/venv-torch/bin/python` if present, else `python3`).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Threads for both sides (flex's rayon pool and torch's intra-op pool; default: all
        /// cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Timed repetitions per figure (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Print one JSON object (rows of both sides and the ratios) instead of tables.
        #[arg(long)]
        json: bool,
        /// Only these figures: `sampling` or `updates` (default: both).
        #[arg(long)]
        only: Option<String>,
        /// Sampling batch sizes.
        #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 8, 32])]
        batch_sizes: Vec<usize>,
        /// Skip sampling without the KV cache (slow, and not what rollouts use).
        #[arg(long)]
        cache_only: bool,
        /// With `--compare-torch`: measure both sides this many times, alternating ours and
        /// torch's, and summarise each ratio over the rounds (median, range, rounds at or
        /// beyond parity) — on a machine whose speed drifts, one round is one sample.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        rounds: u64,
        /// Instead of timing: check that `bench/torch_reference.py`'s model is ours — each
        /// preset's initial weights loaded there give the same log-probs, SFT and surrogate
        /// losses and the same loss after one update of each (within 1e-4), or exit 1.
        #[arg(long, conflicts_with_all = ["compare_torch", "rounds"])]
        parity: bool,
    },
    /// Whole training steps of a config (default: `cluster.toml`, the default run): the warm
    /// start, then each step's rollout, each learner's update, publishing and the rest
    /// (staging, commit), as medians over the steps and totals.
    Train {
        #[command(flatten)]
        config: ConfigArg,
        /// Steps to run (after the warm start).
        #[arg(long, default_value_t = 10)]
        steps: u64,
        /// Run directory (default: a new `bench-train-*` directory under the run root); with
        /// `--schedule both`, its `sync/` and `async/` subdirectories.
        #[arg(long)]
        run: Option<PathBuf>,
        /// Which schedules to time: `both` runs the synchronous one, then the asynchronous one
        /// from the same warm start, and prints their ratio.
        #[arg(long, value_enum, default_value_t = BenchSchedule::Both)]
        schedule: BenchSchedule,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// An MCP tool call's cost: a server's start and the round trip of calls made as the
    /// sub-agents make them (bind, call over stdio, observation), as p50 / p99.
    Tools {
        /// The server to start, as a command and its arguments (default: `calc-mcp`, built
        /// beside `mgrpo`).
        #[arg(long, num_args = 1.., allow_hyphen_values = true)]
        server: Vec<String>,
        /// The call, as a sub-agent writes it between `<call>` and `</call>`.
        #[arg(long, default_value = "add 2 3")]
        call: String,
        /// Timed calls.
        #[arg(long, default_value_t = 2000)]
        calls: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum HfCommand {
    /// Log-prob of each id given the ones before it (n − 1 values) under an HF folder's model.
    Logprobs(HfLogprobsArgs),
    /// Token ids of a text under an HF folder's tokenizer (`--chat`: the text is a user message
    /// rendered through the folder's chat template with a generation prompt).
    Tokenize(HfTokenizeArgs),
    /// Write a policy as an HF folder that transformers' `from_pretrained` loads: `hf:DIR` (a
    /// folder, e.g. to convert it to one bf16 file) or `run:DIR[@VERSION]` (a trained role).
    Export(HfExportArgs),
    /// Write a new HF folder: an architecture sized like a GPT preset, random weights, the
    /// config's world tokenizer — the starting point of `[models.ROLE] hf = "DIR"`.
    Init(HfInitArgs),
}

/// Backend and device of a model command.
#[derive(Debug, Args, Clone)]
pub struct BackendArgs {
    /// flex (pure-Rust CPU) or tch (libtorch; needs the `tch` feature).
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Debug, Args)]
pub struct HfLogprobsArgs {
    /// The HF folder (config.json + safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Comma-separated token ids (at least two).
    #[arg(long, value_delimiter = ',', required_unless_present = "text")]
    pub ids: Vec<u32>,
    /// A text, tokenized with the folder's tokenizer, instead of `--ids`.
    #[arg(long, conflicts_with = "ids")]
    pub text: Option<String>,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Print `{"ids": [...], "logprobs": [...]}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HfTokenizeArgs {
    /// The HF folder (needs tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// The text.
    #[arg(long)]
    pub text: String,
    /// Render the text as a user message through the chat template first.
    #[arg(long)]
    pub chat: bool,
    /// Print `{"ids": [...]}` (and `"text"`, the rendered chat, with `--chat`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HfExportArgs {
    /// `hf:DIR` or `run:DIR[@VERSION]` (latest version unless given).
    #[arg(long)]
    pub policy: String,
    /// Which role of a run: main or sub.
    #[arg(long, default_value = "main")]
    pub role: String,
    /// The folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// The dtype to store the weights in: f32, bf16 or f16 (default: a run role's
    /// `[models.ROLE] dtype`, else f32).
    #[arg(long, value_parser = parse_dtype, conflicts_with = "bf16")]
    pub dtype: Option<StoreDtype>,
    /// Store the weights as bf16 (`--dtype bf16`).
    #[arg(long)]
    pub bf16: bool,
}

fn parse_dtype(s: &str) -> Result<StoreDtype, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub struct HfInitArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// llama, qwen2 or qwen3.
    #[arg(long, default_value = "qwen3")]
    pub family: String,
    /// The preset whose sizes it takes: tiny, small or base.
    #[arg(long, default_value = "small")]
    pub like: String,
    /// Key/value heads (fewer than the preset's heads: grouped-query attention).
    #[arg(long)]
    pub kv_heads: Option<usize>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Take the tokenizer files (and chat template) of this HF folder instead of the world's
    /// tokenizer; the vocabulary is sized to that tokenizer.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Take the architecture from this `config.json` (e.g. a released model's: every size,
    /// its vocabulary, rope and norm settings) instead of `--family`/`--like`/`--kv-heads`;
    /// random weights of that shape (what `bench/gpu_check.sh` trains on a GPU host).
    #[arg(long, conflicts_with_all = ["like", "kv_heads"])]
    pub arch: Option<PathBuf>,
    /// The folder to write.
    #[arg(long)]
    pub out: PathBuf,
}
