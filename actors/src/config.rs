//! The run/cluster configuration (`cluster.toml`): one typed tree, read with serde + toml.
//!
//! Every table rejects unknown keys, and [`Config::load`] names the file and the key of any
//! problem, so a typo is an error at start-up rather than a silently ignored setting.
//! `[cluster]` (nodes, placement, cookie, TLS) has its own file, [`cluster`].
pub mod cluster;
pub mod overrides;
mod paths;
pub mod task;

use std::path::{Path, PathBuf};

use mgrpo_models::hf::StoreDtype;
use mgrpo_models::{Decay, LrSchedule};
use serde::{Deserialize, Serialize};

use mgrpo_algo::{Algo, RewardWeights, StdKind};
use mgrpo_env::WorldConfig;

use crate::config::cluster::{ClusterConfig, NodePlacement};
use crate::config::task::TaskConfig;
use crate::role::LearnerRole;

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key, line and column.
        message: String,
    },
    /// The values parse but do not make sense together; every problem is listed.
    #[error("invalid config file {path}:\n  - {}", problems.join("\n  - "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One line per problem, each naming its key.
        problems: Vec<String>,
    },
    /// A `--set KEY=VALUE` override names no setting, has a value of the wrong type, or
    /// cannot be set ([`overrides`]).
    #[error("config file {path} with --set {overrides}: {message}")]
    Override {
        /// The file.
        path: PathBuf,
        /// Every override, `KEY=VALUE` each.
        overrides: String,
        /// What is wrong (toml's message names the key).
        message: String,
    },
}

/// The whole configuration of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where runs go and the run seed.
    pub run: RunConfig,
    /// The task world (the default task; under `[task]` it only bounds the tools and turns).
    pub world: WorldConfig,
    /// Your own task (questions, corpus, reward, tools); absent: the generated world.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskConfig>,
    /// The policy models of each role.
    pub models: ModelsConfig,
    /// The M-GRPO algorithm and its hyperparameters.
    pub algo: AlgoConfig,
    /// Rollout sampling.
    pub sampling: SamplingConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// The supervised warm start.
    pub warmup: WarmupConfig,
    /// Actor supervision and request handling.
    pub actors: ActorsConfig,
    /// Nodes, cookie and role placement (none listed: one process).
    pub cluster: ClusterConfig,
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Directory under which new runs are created.
    pub root: PathBuf,
    /// The run seed: every random draw derives from it.
    pub seed: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("runs"),
            seed: 42,
        }
    }
}

/// `[models]`: one table per role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// The main agent (planner); also the single agent and the shared model.
    pub main: RoleModelConfig,
    /// The sub-agents (executors).
    pub sub: RoleModelConfig,
}

impl ModelsConfig {
    /// The settings of a learner's model.
    pub fn of(&self, role: LearnerRole) -> &RoleModelConfig {
        match role {
            LearnerRole::Main => &self.main,
            LearnerRole::Sub => &self.sub,
        }
    }

    /// The settings of the role named `main` or `sub`.
    pub fn of_name(&self, role: &str) -> Option<&RoleModelConfig> {
        match role {
            "main" => Some(&self.main),
            "sub" => Some(&self.sub),
            _ => None,
        }
    }
}

/// `[models.<role>]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleModelConfig {
    /// Size preset: `tiny`, `small` or `base` (ignored when `hf` is set).
    pub preset: String,
    /// A Hugging Face folder (Llama / Qwen2 / Qwen3: config.json, safetensors, tokenizer.json)
    /// the role starts from instead of a preset; relative to the working directory. The role
    /// speaks its tokenizer and chat template (docs/models.md; `mgrpo hf init` makes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf: Option<std::path::PathBuf>,
    /// burn backend: `flex` (pure-Rust CPU, default) or `tch` (libtorch; needs the `tch` feature).
    pub backend: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Learning rate of the RL learner.
    pub lr: f64,
    /// Train rank-`lora_rank` adapters of the attention and MLP projections instead of every
    /// weight (0: full fine-tuning). Applies to the warm start and to RL.
    #[serde(skip_serializing_if = "is_zero")]
    pub lora_rank: usize,
    /// LoRA scale numerator: updates are scaled by `lora_alpha / lora_rank`.
    #[serde(skip_serializing_if = "is_default_alpha")]
    pub lora_alpha: f64,
    /// Parts of an update batch (and of a sampling batch) computed at once on the CPU thread
    /// pool. A setting rather than the core count, so that a run's numbers do not depend on
    /// the machine it runs on; 2 keeps 2 cores busy (docs/results.md, "Performance").
    #[serde(skip_serializing_if = "is_default_shards")]
    pub shards: usize,
    /// The dtype of the role's parameters as stored in the Hugging Face folders written from
    /// this run (`mgrpo hf export --policy run:DIR`): `f32`, `bf16` or `f16`. Training, the
    /// replicas and the run's own checkpoints stay f32 (burn 0.22 has no mixed precision; resume
    /// is exact); docs/models.md.
    #[serde(skip_serializing_if = "is_f32")]
    pub dtype: StoreDtype,
}

fn is_f32(d: &StoreDtype) -> bool {
    *d == StoreDtype::F32
}

const DEFAULT_SHARDS: usize = 2;

fn is_default_shards(n: &usize) -> bool {
    *n == DEFAULT_SHARDS
}

const DEFAULT_LORA_ALPHA: f64 = 16.0;

fn is_zero<N: Default + PartialEq>(n: &N) -> bool {
    *n == N::default()
}

fn is_default_alpha(alpha: &f64) -> bool {
    *alpha == DEFAULT_LORA_ALPHA
}

impl Default for RoleModelConfig {
    fn default() -> Self {
        Self {
            preset: "small".into(),
            hf: None,
            backend: "flex".into(),
            device: "cpu".into(),
            lr: 1e-4,
            lora_rank: 0,
            lora_alpha: DEFAULT_LORA_ALPHA,
            shards: DEFAULT_SHARDS,
            dtype: StoreDtype::F32,
        }
    }
}

/// `[algo]`: M-GRPO's constants (docs/algorithm.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlgoConfig {
    /// `mgrpo`, `frozen-sub`, `shared` or `single`.
    pub variant: Algo,
    /// Queries per step (B).
    pub queries_per_step: usize,
    /// Rollouts per query (K).
    pub group_size: usize,
    /// Aligned sub-trajectory slots per rollout (D_max).
    pub d_max: usize,
    /// `population` or `unbiased` std in the advantages.
    pub std: StdKind,
    /// ε added to the std.
    pub eps: f32,
    /// Lower clip ε_low of the surrogate.
    pub clip_low: f32,
    /// Upper clip ε_high of the surrogate.
    pub clip_high: f32,
    /// β_KL (0 = no KL term; k3 estimator otherwise), the weight of the KL anchor to the
    /// reference policy `kl_reference`.
    pub kl_coef: f32,
    /// The checkpoint version each learner's KL anchor is (default 0: the warm start); read
    /// from the role's checkpoints when `kl_coef > 0`.
    pub kl_reference: u64,
    /// Token-level instead of sequence-level loss averaging.
    pub token_level: bool,
    /// μ: optimisation epochs over each batch.
    pub epochs: usize,
    /// w ∈ [0, 1]: the weight of negative advantages in the loss (default 1: plain GRPO; 0:
    /// only the rollouts and calls above their group's mean are trained on, a filtered
    /// imitation of the policy's own better samples). The stored advantages stay `A`.
    pub negative_weight: f32,
    /// Reward weights α1, α2, β1, β2, β3.
    pub weights: RewardWeights,
    /// `r_expert = 1` for a sub-agent's `unknown` on a sub-task that names no fact of the
    /// generated world (default false: such a call scores 0 whatever it returns). A user
    /// task's expert command decides for itself.
    pub unknown_credit: bool,
    /// `sync` (default): each step is sampled with the policies its own update starts from.
    /// `async`: the rollouts of step t+1 run while the learners update on step t.
    pub schedule: Schedule,
    /// Under `async`, how many versions behind its update a step is sampled (≥ 1): step t is
    /// sampled with the versions after step t − `max_staleness`, always that one (not
    /// whichever is newest when the rollout starts), so an async run is reproducible.
    pub max_staleness: u64,
}

/// When rollouts run relative to the updates (`algo.schedule`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Roll out, then update, step after step.
    #[default]
    Sync,
    /// The next step's rollouts overlap this step's updates.
    Async,
}

impl AlgoConfig {
    /// How many versions behind its update each step is sampled: 0 under `sync`.
    pub fn lag(&self) -> u64 {
        match self.schedule {
            Schedule::Sync => 0,
            Schedule::Async => self.max_staleness,
        }
    }
}

impl Default for AlgoConfig {
    fn default() -> Self {
        Self {
            variant: Algo::Mgrpo,
            queries_per_step: 4,
            group_size: 8,
            d_max: 4,
            std: StdKind::Population,
            eps: 1e-6,
            clip_low: 0.2,
            clip_high: 0.28,
            kl_coef: 0.0,
            kl_reference: 0,
            token_level: false,
            epochs: 1,
            negative_weight: 1.0,
            weights: RewardWeights::default(),
            unknown_credit: false,
            schedule: Schedule::Sync,
            max_staleness: 1,
        }
    }
}

/// `[sampling]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Rollout temperature. The default is 0.7, not the paper's 1.0: the warm-started small
    /// models have long tails, and at 1.0 only ~16% of their sampled rollouts are correct
    /// (53% at 0.7), which leaves most groups without a positive sample. Log-probs (π_old and
    /// π_θ alike, and the KL anchor's) are those of `softmax(logits / temperature)`, the
    /// distribution sampled; see docs/semantics.md.
    pub temperature: f32,
    /// Nucleus (top-p) mass.
    pub top_p: f32,
    /// Longest single turn, in tokens.
    pub max_turn_tokens: usize,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 1.0,
            max_turn_tokens: 24,
        }
    }
}

/// The most world variants `train.year_variants` may ask for.
pub const MAX_YEAR_VARIANTS: u32 = 64;

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// RL steps of B·K rollouts each. Default 600 (200 before: 600 end 4.3 points higher on
    /// test, docs/results.md).
    pub steps: u64,
    /// Evaluate on the dev split every N steps (0 = never).
    pub eval_every: u64,
    /// Dev questions per evaluation.
    pub eval_questions: usize,
    /// Save checkpoints every N steps (and always at the end).
    pub checkpoint_every: u64,
    /// Also save each learner after every update and keep the last two such saves, so that a
    /// learner that dies (or a node killed mid-step) rolls back to exactly the last committed
    /// step. Off: a dead learner restarts from its last milestone and replays.
    pub recovery_checkpoints: bool,
    /// Also checkpoint whenever dev accuracy beats the best so far, recorded in `best.json`.
    pub keep_best: bool,
    /// Steps of linear learning-rate warm-up at the start of RL (each role's `lr` is the peak).
    pub lr_warmup_steps: u64,
    /// The learning rate's decay over the RL steps after the warm-up.
    pub lr_decay: Decay,
    /// The rate at the last step as a fraction of the peak (with a decay).
    pub lr_min_ratio: f64,
    /// Ask each RL query in one of this many variants of the world (every year redrawn by a
    /// seeded one-to-one map, `mgrpo_env::variants`), the variant drawn from (run seed, step,
    /// query) and shared by the query's K rollouts; evaluation always asks the world itself.
    /// 0: RL asks the world itself. Default 8. The generated world's: a task's files, with no
    /// years or names to redraw, ignore it.
    pub year_variants: u32,
    /// The variants also rename every subject (person, company, book) with a new combination
    /// of its kind's words: RL's queries are about names the models have not seen together, as
    /// the test split's are. Default on; nothing without `year_variants`.
    pub variant_names: bool,
}

impl TrainConfig {
    /// RL's learning rate over the steps for a role whose peak rate is `peak`.
    pub fn lr_schedule(&self, peak: f64) -> LrSchedule {
        LrSchedule {
            peak,
            warmup_steps: self.lr_warmup_steps,
            decay: self.lr_decay,
            min_ratio: self.lr_min_ratio,
            total: self.steps,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 600,
            eval_every: 25,
            eval_questions: 200,
            checkpoint_every: 50,
            recovery_checkpoints: true,
            keep_best: true,
            lr_warmup_steps: 10,
            lr_decay: Decay::Cosine,
            lr_min_ratio: 0.1,
            year_variants: 8,
            variant_names: true,
        }
    }
}

/// `[warmup]`: supervised fine-tuning on the noisy experts' demonstrations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarmupConfig {
    /// Optimiser steps per role.
    pub steps: usize,
    /// Trajectories per batch.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Expert episodes used as demonstrations (from the train split, in order, cycled).
    /// Default 1,000: half the built-in world's train questions, once each, so RL on every
    /// question has something to add (docs/results.md: few-demos-baselines). A task's
    /// demonstrations are its file's, every one.
    pub episodes: usize,
    /// The learning rate's decay over the warm-start steps.
    pub lr_decay: Decay,
    /// The rate at the last step as a fraction of `lr` (with a decay).
    pub lr_min_ratio: f64,
    /// The share of the train split kept out of the warm start's demonstrations and given to
    /// RL: with `h > 0` the warm start imitates the experts on the other questions only, and
    /// RL draws its queries from these only, so it trains on questions the warm start has not
    /// memorised (0: both use every train question). Built-in world only.
    pub holdout: f64,
    /// Renamed copies of the world the demonstrations are also drawn from (0: the world
    /// only): each episode asks its train question in the world or in one of its first
    /// `copies` copies with permuted years and new subject names — the copies RL asks in
    /// (`train.year_variants`, `variant_names`) — so the warm start does not memorise one
    /// partner for each word of a name or title. Default 8 (docs/results.md: warm-copies).
    /// The built-in world's: a `[task]`'s demonstrations come from its file, which has no
    /// names to redraw, and ignore it, as RL ignores `train.year_variants`. A run's recorded
    /// config from before this setting has none, and resuming it warms nothing.
    pub copies: u32,
    /// Save each model's AdamW state (its moments and step count) with the warm start, so RL
    /// continues it instead of starting a fresh one (default false: RL's first updates move
    /// every weight by about the rate, whatever its gradient's size).
    pub keep_optimizer: bool,
    /// Train the roles' LoRA adapters in the warm start too (`models.ROLE.lora_rank > 0`).
    /// Default false: the warm start trains every weight and RL then trains adapters on what
    /// it learnt, fresh ones attached to version 0 — the usual flow, as a frozen randomly
    /// initialised base learns little through adapters (docs/models.md). True for a base
    /// that is already trained, such as a released model's folder.
    pub lora: bool,
}

impl WarmupConfig {
    /// The warm start's learning rate over its steps.
    pub fn lr_schedule(&self) -> LrSchedule {
        LrSchedule {
            peak: self.lr,
            warmup_steps: 0,
            decay: self.lr_decay,
            min_ratio: self.lr_min_ratio,
            total: self.steps as u64,
        }
    }
}

impl Default for WarmupConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 32,
            lr: 1e-3,
            episodes: 1000,
            lr_decay: Decay::Cosine,
            lr_min_ratio: 0.05,
            holdout: 0.0,
            copies: 8,
            keep_optimizer: false,
            lora: false,
        }
    }
}

/// `[actors]`: supervision and request handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorsConfig {
    /// Planner instances.
    pub planners: usize,
    /// Executor instances (the sub-agent worker pool).
    pub executors: usize,
    /// Restarts of one child allowed within `restart_window_s` before the node gives up.
    pub max_restarts: u32,
    /// The restart-counting window, seconds.
    pub restart_window_s: u64,
    /// First restart backoff, milliseconds (doubles per restart within the window).
    pub restart_backoff_ms: u64,
    /// Timeout of one request between roles, seconds.
    pub request_timeout_s: u64,
    /// Attempts of one request before the step fails.
    pub request_attempts: u32,
}

impl Default for ActorsConfig {
    fn default() -> Self {
        Self {
            planners: 1,
            executors: 2,
            max_restarts: 5,
            restart_window_s: 60,
            restart_backoff_ms: 50,
            request_timeout_s: 300,
            request_attempts: 4,
        }
    }
}

const PRESETS: [&str; 3] = ["tiny", "small", "base"];

impl Config {
    /// Reads and validates a config file; its relative paths are resolved against the file's
    /// directory (module `paths`).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = Self::read(path)?;
        let mut config = Self::parse(&text, path)?;
        config.resolve_paths(&paths::base_of(path), paths::names_root(&text));
        Ok(config)
    }

    /// A config file's text.
    fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validated(path)
    }

    /// The config if its values make sense together, else every problem; `path` is only used
    /// in messages.
    fn validated(self, path: &Path) -> Result<Self, ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    /// The resolved config as TOML (what a run directory records).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Every problem of the values, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = self.world.validate() {
            p.push(format!("world: {e}"));
        }
        for (role, m) in [("main", &self.models.main), ("sub", &self.models.sub)] {
            // An `hf` folder is opened where the role's learner starts (other nodes of a
            // cluster need not have it), not here.
            if let Some(dir) = &m.hf {
                if dir.as_os_str().is_empty() {
                    p.push(format!(
                        "models.{role}.hf is empty: a Hugging Face folder's path"
                    ));
                }
            } else if !PRESETS.contains(&m.preset.as_str()) {
                p.push(format!(
                    "models.{role}.preset = {:?}: expected one of {PRESETS:?}",
                    m.preset
                ));
            }
            if !["flex", "tch"].contains(&m.backend.as_str()) {
                p.push(format!(
                    "models.{role}.backend = {:?}: expected \"flex\" or \"tch\"",
                    m.backend
                ));
            }
            if m.backend == "tch" && !cfg!(feature = "tch") {
                p.push(format!(
                    "models.{role}.backend = \"tch\": this build has no libtorch backend \
                     (build with `cargo build --release --features tch`, or use \"flex\")"
                ));
            }
            if m.lora_rank > 0 && !(m.lora_alpha > 0.0 && m.lora_alpha.is_finite()) {
                p.push(format!(
                    "models.{role}.lora_alpha = {}: must be > 0",
                    m.lora_alpha
                ));
            }
            if m.lora_rank > 0 && self.warmup.keep_optimizer && !self.warmup.lora {
                p.push(format!(
                    "warmup.keep_optimizer = true with models.{role}.lora_rank = {}: the warm \
                     start trains every weight (warmup.lora = false), RL trains adapters, and \
                     an optimiser state of the one is not one of the other",
                    m.lora_rank
                ));
            }
            if !(m.lr > 0.0 && m.lr.is_finite()) {
                p.push(format!("models.{role}.lr = {}: must be > 0", m.lr));
            }
            if m.shards == 0 {
                p.push(format!("models.{role}.shards = 0: must be ≥ 1"));
            }
            if m.dtype != StoreDtype::F32 && m.hf.is_none() {
                p.push(format!(
                    "models.{role}.dtype = {:?} applies to Hugging Face folders: the role needs \
                     hf = \"DIR\" (a preset has no HF format)",
                    m.dtype.name()
                ));
            }
        }
        let a = &self.algo;
        for (key, v) in [
            ("algo.queries_per_step", a.queries_per_step),
            ("algo.group_size", a.group_size),
            ("algo.d_max", a.d_max),
            ("algo.epochs", a.epochs),
            ("warmup.batch_size", self.warmup.batch_size),
            ("actors.planners", self.actors.planners),
            ("actors.executors", self.actors.executors),
            ("sampling.max_turn_tokens", self.sampling.max_turn_tokens),
        ] {
            if v == 0 {
                p.push(format!("{key} = 0: must be at least 1"));
            }
        }
        if !(0.0..1.0).contains(&a.clip_low) || a.clip_high < 0.0 {
            p.push("algo.clip_low must be in [0, 1) and algo.clip_high >= 0".into());
        }
        if a.eps.is_nan() || a.eps <= 0.0 {
            p.push(format!("algo.eps = {}: must be > 0", a.eps));
        }
        for (key, ratio) in [
            ("algo.negative_weight", f64::from(a.negative_weight)),
            ("train.lr_min_ratio", self.train.lr_min_ratio),
            ("warmup.lr_min_ratio", self.warmup.lr_min_ratio),
        ] {
            if !(0.0..=1.0).contains(&ratio) {
                p.push(format!("{key} = {ratio}: must be in [0, 1]"));
            }
        }
        let h = self.warmup.holdout;
        if !(0.0..1.0).contains(&h) {
            p.push(format!("warmup.holdout = {h}: must be in [0, 1)"));
        } else if h > 0.0 && self.task.is_some() {
            p.push(
                "warmup.holdout applies to the built-in world (a task's demonstrations come \
                 from its file)"
                    .into(),
            );
        }
        let copies = self.warmup.copies;
        if copies > MAX_YEAR_VARIANTS {
            p.push(format!(
                "warmup.copies = {copies}: at most {MAX_YEAR_VARIANTS} (each is a world in memory \
                 while the demonstrations are made)"
            ));
        }
        if self.train.year_variants > MAX_YEAR_VARIANTS {
            p.push(format!(
                "train.year_variants = {}: at most {MAX_YEAR_VARIANTS} (each is a world and a \
                 search index in every node's memory)",
                self.train.year_variants
            ));
        }
        if self.sampling.temperature.is_nan() || self.sampling.temperature <= 0.0 {
            p.push(format!(
                "sampling.temperature = {}: must be > 0",
                self.sampling.temperature
            ));
        }
        if !(self.sampling.top_p > 0.0 && self.sampling.top_p <= 1.0) {
            p.push(format!(
                "sampling.top_p = {}: must be in (0, 1]",
                self.sampling.top_p
            ));
        }
        if a.schedule == Schedule::Async {
            if a.max_staleness == 0 {
                p.push(
                    "algo.max_staleness = 0 with schedule = \"async\": must be at least 1 \
                     (0 is the synchronous schedule)"
                        .into(),
                );
            }
            if !self.train.recovery_checkpoints {
                p.push(
                    "algo.schedule = \"async\" needs train.recovery_checkpoints = true: after a \
                     crash the step being resumed is sampled with an earlier version, reloaded \
                     from its checkpoint"
                        .into(),
                );
            }
        }
        if self.actors.request_attempts == 0 {
            p.push("actors.request_attempts = 0: must be at least 1".into());
        }
        if let Some(task) = &self.task {
            p.extend(task.problems());
        }
        p.extend(self.cluster.problems(a.variant));
        p
    }

    /// Which roles run on which node (one node with every role when no nodes are listed).
    pub fn placement(&self) -> Vec<NodePlacement> {
        self.cluster.placement(
            self.algo.variant,
            self.actors.planners,
            self.actors.executors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` as a file named x.toml (a refusal panics).
    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("x.toml")).unwrap()
    }

    /// What refusing `text`, as a file named x.toml, says (parsing it panics).
    fn refusal(text: &str) -> String {
        Config::parse(text, Path::new("x.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn default_file_parses() {
        let text = include_str!("../../cluster.toml");
        let c = Config::parse(text, Path::new("cluster.toml")).unwrap();
        assert_eq!(c.algo.variant, Algo::Mgrpo);
        // RL's rate: the file and a config that leaves it out train at the same one.
        let default_lr = RoleModelConfig::default().lr;
        assert_eq!(
            (c.models.main.lr, c.models.sub.lr),
            (default_lr, default_lr)
        );
        // The world: the file writes out every default (the built-in tool included).
        assert_eq!(c.world, mgrpo_env::WorldConfig::default());
        assert!(c.world.compare_tool);
        // The warm start: the file's is the default, on 1,000 demonstrations.
        assert_eq!(c.warmup, WarmupConfig::default());
        assert_eq!(c.warmup.episodes, 1000);
    }

    #[test]
    fn no_task_table_is_the_world_and_writes_nothing_back() {
        assert_eq!(parse("").task, None);
        assert!(!Config::default().to_toml().contains("task"));
        let err = refusal("[task]\nquestions = \"\"\ncorpus = \"d\"\n");
        assert!(
            err.contains("x.toml") && err.contains("task.questions is empty"),
            "{err}"
        );
    }

    /// World variants are on by default (eight, with new names), a task's config takes the
    /// settings (its files ignore them), and more than the cap is refused with the key named.
    #[test]
    fn year_variants_default_on_and_capped() {
        let train = parse("").train;
        assert_eq!((train.year_variants, train.variant_names), (8, true));
        let train = parse("[train]\nyear_variants = 0\nvariant_names = false\n").train;
        assert_eq!((train.year_variants, train.variant_names), (0, false));
        let task = parse("[train]\nyear_variants = 2\n[task]\nquestions = \"q\"\ncorpus = \"d\"\n");
        assert_eq!(task.train.year_variants, 2);
        let err = refusal(&format!(
            "[train]\nyear_variants = {}\n",
            MAX_YEAR_VARIANTS + 1
        ));
        assert!(
            err.contains("train.year_variants = 65") && err.contains("at most 64"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_named_with_file() {
        let msg = refusal("[algo]\ngroup_sise = 8\n");
        assert!(
            msg.contains("x.toml") && msg.contains("group_sise"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_are_all_listed() {
        let err = Config::parse(
            "[algo]\ngroup_size = 0\n[models.main]\npreset = \"huge\"\n[models.sub]\nshards = 0\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("algo.group_size")
                && msg.contains("models.main.preset")
                && msg.contains("models.sub.shards"),
            "{msg}"
        );
    }

    #[test]
    fn warm_start_copies_default_to_eight_are_capped_and_written_back() {
        let c = Config::default();
        assert_eq!(c.warmup.copies, 8);
        assert!(c.to_toml().contains("copies = 8"));
        // Every value survives the run directory's recorded config, 0 (not the default) too.
        for n in [0, 4] {
            let c = parse(&format!("[warmup]\ncopies = {n}\n"));
            assert_eq!(c.warmup.copies, n);
            let again = Config::parse(&c.to_toml(), Path::new("config.toml")).unwrap();
            assert_eq!(again.warmup.copies, n);
        }
        // A task ignores it (its demonstrations are its file's), so the default is no error.
        let task = "[task]\nquestions = \"q\"\ncorpus = \"d\"\n";
        assert_eq!(parse(task).warmup.copies, 8);
        let err = refusal(&format!("[warmup]\ncopies = {}\n", MAX_YEAR_VARIANTS + 1));
        assert!(err.contains("warmup.copies"), "{err}");
    }

    #[test]
    fn a_holdout_must_leave_the_warm_start_questions_and_needs_the_world() {
        let c = parse("[warmup]\nholdout = 0.5\n");
        assert_eq!(c.warmup.holdout, 0.5);
        for bad in ["1.0", "-0.1"] {
            let err = refusal(&format!("[warmup]\nholdout = {bad}\n"));
            assert!(
                err.contains("warmup.holdout") && err.contains("[0, 1)"),
                "{err}"
            );
        }
        let err =
            refusal("[warmup]\nholdout = 0.5\n[task]\nquestions = \"q.jsonl\"\ncorpus = \"d\"\n");
        assert!(err.contains("applies to the built-in world"), "{err}");
    }

    #[test]
    fn the_negative_weight_is_a_fraction() {
        let c = parse("[algo]\nnegative_weight = 0.0\n");
        assert_eq!(
            (
                c.algo.negative_weight,
                Config::default().algo.negative_weight
            ),
            (0.0, 1.0)
        );
        for bad in ["1.5", "-0.1", "nan"] {
            let err = refusal(&format!("[algo]\nnegative_weight = {bad}\n"));
            assert!(
                err.contains("algo.negative_weight") && err.contains("[0, 1]"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_kept_warm_start_optimizer_needs_the_same_parameters_in_rl() {
        let lora = "[models.main]\nlora_rank = 4\n[warmup]\nkeep_optimizer = true\n";
        let err = refusal(lora);
        assert!(
            err.contains("warmup.keep_optimizer") && err.contains("models.main.lora_rank = 4"),
            "{err}"
        );
        // Adapters in the warm start too: the same parameters on both sides.
        let c = parse(&format!("{lora}lora = true\n"));
        assert!(c.warmup.lora && !Config::default().warmup.lora);
    }

    #[test]
    fn the_asynchronous_schedule_is_validated() {
        let c = parse("[algo]\nschedule = \"async\"\n");
        assert_eq!((c.algo.lag(), Config::default().algo.lag()), (1, 0));
        let err = refusal(
            "[algo]\nschedule = \"async\"\nmax_staleness = 0\n[train]\nrecovery_checkpoints = false\n",
        );
        assert!(err.contains("algo.max_staleness = 0"), "{err}");
        assert!(
            err.contains("needs train.recovery_checkpoints = true"),
            "{err}"
        );
        let err = refusal("[algo]\nschedule = \"later\"\n");
        assert!(err.contains("sync") && err.contains("async"), "{err}");
    }

    #[test]
    fn a_stored_dtype_needs_an_hf_role_and_a_known_name() {
        let ok = parse("[models.main]\nhf = \"m\"\ndtype = \"bf16\"\n");
        assert_eq!(ok.models.main.dtype, StoreDtype::Bf16);
        assert!(ok.to_toml().contains("dtype = \"bf16\""));
        assert!(!Config::default().to_toml().contains("dtype"));
        let err = refusal("[models.sub]\ndtype = \"f16\"\n");
        assert!(
            err.contains("models.sub.dtype = \"f16\" applies to Hugging Face"),
            "{err}"
        );
        let err = refusal("[models.sub]\ndtype = \"f8\"\n");
        assert!(err.contains("f8"), "{err}");
    }

    #[test]
    fn three_node_example_places_every_role() {
        let text = include_str!("../../examples/cluster-3node.toml");
        let c = Config::parse(text, Path::new("cluster-3node.toml")).unwrap();
        let p = c.placement();
        assert_eq!(
            p.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(),
            ["hub", "main", "sub"]
        );
        let t = crate::config::cluster::totals(&p);
        assert_eq!(t[&crate::role::Role::LearnerSub], 1);
        assert!(
            !c.to_toml().contains("cookie ="),
            "the cookie is never written back"
        );
    }

    #[test]
    fn cluster_problems_are_all_named() {
        let text = r#"
[cluster]
cookie = "a"
cookie_env = "B"
[[cluster.nodes]]
name = "a"
listen = "127.0.0.1:7000"
roles = { coordinator = 1, store = 1, judge = 1, learner-main = 1, planner = 1, wizard = 1 }
[[cluster.nodes]]
name = "b"
listen = "127.0.0.1:7000"
roles = { learner-main = 1, executor = 2 }
[[cluster.nodes]]
name = "b"
listen = "nowhere"
"#;
        let msg = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        for needle in [
            "only one of cookie",
            "roles.wizard: unknown role",
            "port 7000 clashes with node \"a\"",
            "learner-main must run once",
            "learner-sub is placed on no node",
            "already used by cluster.nodes[1]",
            "cluster.nodes[2].listen = \"nowhere\"",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
        }
    }

    #[test]
    fn embedded_default_is_one_node_with_every_role() {
        let c = Config::default();
        let p = c.placement();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].roles[&crate::role::Role::Executor], 2);
        assert!(c.cluster.problems(c.algo.variant).is_empty());
    }

    #[test]
    fn a_backend_the_build_lacks_is_a_config_error() {
        let r = Config::parse("[models.sub]\nbackend = \"tch\"\n", Path::new("c.toml"));
        if cfg!(feature = "tch") {
            assert!(r.is_ok(), "{r:?}");
        } else {
            let msg = r.unwrap_err().to_string();
            assert!(
                msg.contains("c.toml")
                    && msg.contains("models.sub.backend = \"tch\": this build has no libtorch")
                    && msg.contains("--features tch"),
                "{msg}"
            );
        }
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = Config::load(Path::new("/nonexistent/cluster.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cluster.toml"));
    }
}
