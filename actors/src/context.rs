//! What every actor of a node shares: the config, the task (the generated world or a dataset),
//! the roles' codecs, the
//! run directory, the process-group scope of this run, and the node's armed faults.
use std::path::Path;
use std::sync::{Arc, OnceLock};

use mgrpo_algo::{derive_seed, salt};
use mgrpo_env::task::{Dataset, DatasetFiles, Task};
use mgrpo_env::tool_call::{ToolSpec, chat_template_tools};
use mgrpo_env::{TextCodec, World};
use mgrpo_models::{DeviceSpec, HfFolder, LearnerConfig, LoraSettings, Policy, PolicyConfig};

use crate::config::task::BuiltinTool;
use crate::config::{Config, RoleModelConfig};
use crate::faults::Faults;
use crate::mcp::{McpTools, ToolBoxError, ToolServerConfig, list_tools};
use crate::policy::tokenizer_check::same_tokenizer;
use crate::role::LearnerRole;
use crate::role_codec::RoleCodec;
use crate::run_dir::RunDir;
use crate::swap::queue::SwapQueue;

/// The shared, immutable context of one node's actors.
pub struct NodeContext {
    /// The resolved config.
    pub config: Config,
    /// The task: the world generated from `[world]`, or `[task]`'s files (once per node).
    pub task: Task,
    /// The world's variants RL asks its queries in (`train.year_variants`; empty without, or
    /// for a dataset): which RL query is asked in which is `rollout::facts`'s to say.
    year_variants: Vec<Task>,
    /// The task's word-level tokenizer (what a preset role speaks).
    pub task_codec: TextCodec,
    /// Each role's codec, opened when first needed (an `hf` role's folder need only be on the
    /// nodes that serve or train it).
    codecs: [OnceLock<RoleCodec>; 2],
    /// The run directory.
    pub run_dir: RunDir,
    /// The `ractor::pg` scope of this run, so that two runs in one process never meet.
    pub scope: String,
    /// Faults armed on this node (none unless a test or a chaos plan arms some).
    pub faults: Faults,
    /// Swap requests waiting for a step boundary (used on the coordinator's node).
    pub swaps: SwapQueue,
    /// The task's MCP tool servers, started by the first executor of the node.
    mcp: tokio::sync::OnceCell<McpTools>,
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("run_dir", &self.run_dir)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Why a node could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The world could not be generated.
    #[error(transparent)]
    World(#[from] mgrpo_env::WorldError),
    /// The tokenizer could not be built.
    #[error(transparent)]
    Tokenizer(#[from] mgrpo_env::tokenizer::TokenizerError),
    /// A role's tokenizer or chat template cannot be used.
    #[error("the {role} model's tokenizer: {why}")]
    Codec {
        /// The model.
        role: &'static str,
        /// Why.
        why: String,
    },
    /// A model setting is invalid.
    #[error(transparent)]
    Model(#[from] mgrpo_models::ModelError),
    /// A role's Hugging Face folder does not fit this run.
    #[error("{0}")]
    HfFolder(String),
    /// The `[task]`'s files could not be used.
    #[error(transparent)]
    Task(#[from] mgrpo_env::task::TaskError),
    /// A tool server of `[[task.tools]]` did not start.
    #[error("[[task.tools]]: {0}")]
    Tools(#[from] ToolBoxError),
}

/// `[[task.tools]]` of a config (none without a `[task]`).
fn tool_configs(config: &Config) -> &[ToolServerConfig] {
    config.task.as_ref().map_or(&[], |t| &t.tools)
}

/// The tools answered in process: the world's `earlier` tool with `compare_tool`, or a task's
/// `builtin_tools`.
pub fn builtin_tools(config: &Config) -> &[BuiltinTool] {
    match &config.task {
        None if config.world.compare_tool => &[BuiltinTool::Earlier],
        None => &[],
        Some(t) => &t.builtin_tools,
    }
}

impl NodeContext {
    /// Generates the world, or loads `[task]`'s files, and builds the tokenizer for `config`.
    pub fn new(config: Config, run_dir: RunDir, scope: String) -> Result<Arc<Self>, ContextError> {
        let task = load_task(&config, Some(&run_dir.root().join("index-cache")))?;
        // With tools, the preset roles' vocabulary gains the call tags and the tools' names.
        let tool_names = (!tool_configs(&config).is_empty())
            .then(|| ToolServerConfig::exposed_names(tool_configs(&config)));
        let task_codec = task.codec(tool_names.as_deref())?;
        let year_variants = year_variants(
            &task,
            config.train.year_variants,
            config.train.variant_names,
        )?;
        let mut config = config;
        if let Some(t) = &config.task {
            config.algo.weights = t.reward_weights(config.algo.weights);
        }
        Ok(Arc::new(Self {
            config,
            task,
            year_variants,
            task_codec,
            codecs: Default::default(),
            run_dir,
            scope,
            faults: Faults::default(),
            swaps: SwapQueue::default(),
            mcp: tokio::sync::OnceCell::new(),
        }))
    }

    /// The world's variants RL asks its queries in (empty without `train.year_variants`).
    pub fn year_variants(&self) -> &[Task] {
        &self.year_variants
    }

    /// The task's tool servers on this node, started at the first call (an executor's start):
    /// `None` where the task configures none.
    pub async fn tools(&self) -> Result<Option<&McpTools>, ContextError> {
        let configs = tool_configs(&self.config);
        if configs.is_empty() {
            return Ok(None);
        }
        let tools = self
            .mcp
            .get_or_try_init(|| McpTools::start(configs))
            .await?;
        Ok(Some(tools))
    }

    /// The task's tools as a chat template's `tools` (none without `[[task.tools]]` or the
    /// built-in `earlier` tool, which is listed by its spec): from the servers this node
    /// started, or else listed by starting each server once and closing it (on a thread of its
    /// own, as this may run inside an actor) — the same list in the same order either way, so
    /// every node frames an HF sub-agent's prompt alike.
    fn tool_definitions(&self) -> Result<Option<serde_json::Value>, ContextError> {
        let configs = tool_configs(&self.config);
        if configs.is_empty() {
            let specs: Vec<ToolSpec> = builtin_tools(&self.config)
                .iter()
                .map(|b| b.spec())
                .collect();
            return Ok((!specs.is_empty()).then(|| chat_template_tools(&specs)));
        }
        let specs: Vec<ToolSpec> = match self.mcp.get() {
            Some(started) => started.specs().to_vec(),
            None => std::thread::scope(|s| {
                s.spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| ContextError::Codec {
                            role: LearnerRole::Sub.name(),
                            why: format!("a runtime to list the task's tools: {e}"),
                        })?;
                    let listed = rt
                        .block_on(list_tools(configs))
                        .map_err(|e| ContextError::Tools(e.into()))?;
                    Ok::<Vec<ToolSpec>, ContextError>(
                        listed.into_iter().flat_map(|(_, t)| t).collect(),
                    )
                })
                .join()
                .expect("listing the tools does not panic")
            })?,
        };
        Ok(Some(chat_template_tools(&specs)))
    }

    /// The tool servers, if this node started them.
    pub fn started_tools(&self) -> Option<&McpTools> {
        self.mcp.get()
    }

    /// The model config of a preset role's settings for this task's vocabulary (an `hf` role's
    /// is its folder's, see [`Self::hf_folder`]).
    pub fn policy_config(
        &self,
        role: &RoleModelConfig,
        init_seed: u64,
    ) -> Result<PolicyConfig, ContextError> {
        Ok(
            PolicyConfig::preset(&role.preset, self.task_codec.vocab_size())?
                .with_init_seed(init_seed),
        )
    }

    /// The codec of `role`'s model: its HF folder's tokenizer (and chat template), or the
    /// task's. Fixed for the run.
    pub fn codec(&self, role: LearnerRole) -> Result<&RoleCodec, ContextError> {
        let cell = &self.codecs[role as usize];
        if let Some(c) = cell.get() {
            return Ok(c);
        }
        let bad = |why: String| ContextError::Codec {
            role: role.name(),
            why,
        };
        let codec = match &self.config.models.of(role).hf {
            Some(dir) => {
                let folder = HfFolder::open(dir)?;
                // The sub-agents call the task's tools: their prompts list them.
                let tools = match role {
                    LearnerRole::Sub => self.tool_definitions()?,
                    LearnerRole::Main => None,
                };
                RoleCodec::hf_with_tools(dir, folder.config(), tools.as_ref()).map_err(bad)?
            }
            None => RoleCodec::world(self.task_codec.clone()).map_err(bad)?,
        };
        Ok(cell.get_or_init(|| codec))
    }

    /// The policy a role starts from before its warm start: its HF folder's weights, or a
    /// preset's seeded random ones.
    pub fn initial_policy(
        &self,
        role: LearnerRole,
        init_seed: u64,
    ) -> Result<Policy, ContextError> {
        let settings = self.config.models.of(role);
        let device = self.device(settings)?;
        match &settings.hf {
            Some(dir) => Ok(self.hf_folder(role, dir)?.load(&device)?),
            None => Ok(Policy::new(
                self.policy_config(settings, init_seed)?,
                &device,
            )?),
        }
    }

    /// Opens an HF folder for `role` and checks that its tokenizer is the role's (a role's
    /// tokenizer is fixed for the run: its trajectories and the protocol's token ids depend on
    /// it) and that its model covers the tokenizer's ids.
    pub fn hf_folder(&self, role: LearnerRole, dir: &Path) -> Result<HfFolder, ContextError> {
        let folder = HfFolder::open(dir)?;
        let what = format!("HF folder {}", dir.display());
        let codec = self.codec(role)?;
        let vocab = folder.config().vocab_size;
        if vocab < codec.vocab_size() {
            return Err(ContextError::HfFolder(format!(
                "{what}: vocab_size {vocab} is smaller than the {} model's {} tokens",
                role.name(),
                codec.vocab_size()
            )));
        }
        let path = dir.join("tokenizer.json");
        let tokenizer = std::fs::read(&path)
            .map_err(|e| ContextError::HfFolder(format!("{}: {e}", path.display())))?;
        same_tokenizer(&tokenizer, codec.tokenizer_json(), &what)
            .map_err(ContextError::HfFolder)?;
        Ok(folder)
    }

    /// The optimiser settings of a role's learner at learning rate `lr`, with its LoRA adapters
    /// (seeded from the run seed and the role) when `lora_rank > 0`.
    pub fn learner_config(&self, role: LearnerRole, lr: f64) -> LearnerConfig {
        let settings = self.config.models.of(role);
        LearnerConfig {
            lr,
            lora: (settings.lora_rank > 0).then(|| LoraSettings {
                rank: settings.lora_rank,
                alpha: settings.lora_alpha,
                seed: derive_seed(self.config.run.seed, &[salt::INIT, 3, role as u64]),
            }),
            shards: settings.shards,
            ..LearnerConfig::default()
        }
    }

    /// The burn device of a role's settings.
    pub fn device(&self, role: &RoleModelConfig) -> Result<burn::tensor::Device, ContextError> {
        Ok(DeviceSpec::parse(&role.backend, &role.device)?.to_device()?)
    }
}

/// The `n` variants of the generated world (`names`: with new subject names; none for a
/// dataset, whose files have no years or names to redraw). About 20 ms each for the default
/// world.
fn year_variants(task: &Task, n: u32, names: bool) -> Result<Vec<Task>, ContextError> {
    let Some(world) = task.world().filter(|_| n > 0) else {
        return Ok(Vec::new());
    };
    (1..=u64::from(n))
        .map(|i| Ok(Task::World(Box::new(world.variant(i, names)?))))
        .collect()
}

/// The task of `config`: `[task]`'s files when it has one, else the world of `[world]`. A
/// dataset's search index is cached in `task.index_cache`, else in `run_cache` (a run's
/// `index-cache/`), else built in memory only.
pub fn load_task(config: &Config, run_cache: Option<&Path>) -> Result<Task, ContextError> {
    Ok(match &config.task {
        None => Task::World(Box::new(World::generate(&config.world)?)),
        Some(t) => {
            config
                .world
                .validate()
                .map_err(mgrpo_env::WorldError::from)?;
            let files = DatasetFiles {
                questions: &t.questions,
                corpus: &t.corpus,
                demonstrations: t.demonstrations.as_deref(),
                splits: t.splits,
                index_cache: t.index_cache.as_deref().or(run_cache),
                earlier_tool: t.builtin_tools.contains(&BuiltinTool::Earlier),
            };
            let d = Dataset::load(&files, &config.world)?;
            if let Some(why) = &d.index_unsaved {
                tracing::warn!(%why, "the search index could not be cached; built in memory");
            }
            tracing::info!(index = ?d.index, docs = d.tools.docs().len(), "search index");
            Task::Dataset(Box::new(d))
        }
    })
}
