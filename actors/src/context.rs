//! What every actor of a node shares: the config, the generated world, the tokenizer, the run
//! directory, the process-group scope of this run, and the node's armed faults.
use std::path::Path;
use std::sync::Arc;

use mgrpo_algo::{derive_seed, salt};
use mgrpo_env::{TextCodec, World};
use mgrpo_models::{DeviceSpec, HfFolder, LearnerConfig, LoraSettings, Policy, PolicyConfig};

use crate::config::{Config, RoleModelConfig};
use crate::faults::Faults;
use crate::policy::tokenizer_check::same_tokenizer;
use crate::role::LearnerRole;
use crate::run_dir::RunDir;
use crate::swap::queue::SwapQueue;

/// The shared, immutable context of one node's actors.
pub struct NodeContext {
    /// The resolved config.
    pub config: Config,
    /// The task world (generated once per node from `[world]`).
    pub world: World,
    /// The world's tokenizer.
    pub codec: TextCodec,
    /// The tokenizer as `tokenizer.json` text (saved with every checkpoint).
    pub tokenizer_json: String,
    /// The run directory.
    pub run_dir: RunDir,
    /// The `ractor::pg` scope of this run, so that two runs in one process never meet.
    pub scope: String,
    /// Faults armed on this node (none unless a test or a chaos plan arms some).
    pub faults: Faults,
    /// Swap requests waiting for a step boundary (used on the coordinator's node).
    pub swaps: SwapQueue,
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
    /// A model setting is invalid.
    #[error(transparent)]
    Model(#[from] mgrpo_models::ModelError),
    /// A role's Hugging Face folder does not fit this run.
    #[error("{0}")]
    HfFolder(String),
}

impl NodeContext {
    /// Generates the world and tokenizer for `config`.
    pub fn new(config: Config, run_dir: RunDir, scope: String) -> Result<Arc<Self>, ContextError> {
        let world = World::generate(&config.world)?;
        let codec = TextCodec::build(&world)?;
        let tokenizer_json = codec.to_json()?;
        Ok(Arc::new(Self {
            config,
            world,
            codec,
            tokenizer_json,
            run_dir,
            scope,
            faults: Faults::default(),
            swaps: SwapQueue::default(),
        }))
    }

    /// The model config of a preset role's settings for this world's vocabulary (an `hf` role's
    /// is its folder's, see [`Self::hf_folder`]).
    pub fn policy_config(
        &self,
        role: &RoleModelConfig,
        init_seed: u64,
    ) -> Result<PolicyConfig, ContextError> {
        Ok(PolicyConfig::preset(&role.preset, self.codec.vocab_size())?.with_init_seed(init_seed))
    }

    /// The policy a role starts from before its warm start: its HF folder's weights, or a
    /// preset's seeded random ones.
    pub fn initial_policy(
        &self,
        role: &RoleModelConfig,
        init_seed: u64,
    ) -> Result<Policy, ContextError> {
        let device = self.device(role)?;
        match &role.hf {
            Some(dir) => Ok(self.hf_folder(dir)?.load(&device)?),
            None => Ok(Policy::new(self.policy_config(role, init_seed)?, &device)?),
        }
    }

    /// Opens a role's HF folder and checks that its model and tokenizer fit the world: the
    /// actors speak the world's tokens, so the folder's tokenizer must be the world's (a folder
    /// made by `mgrpo hf init`, or one trained from it).
    pub fn hf_folder(&self, dir: &Path) -> Result<HfFolder, ContextError> {
        let folder = HfFolder::open(dir)?;
        let what = format!("HF folder {}", dir.display());
        let vocab = folder.config().vocab_size;
        if vocab < self.codec.vocab_size() {
            return Err(ContextError::HfFolder(format!(
                "{what}: vocab_size {vocab} is smaller than the world's {} tokens",
                self.codec.vocab_size()
            )));
        }
        let path = dir.join("tokenizer.json");
        let tokenizer = std::fs::read(&path)
            .map_err(|e| ContextError::HfFolder(format!("{}: {e}", path.display())))?;
        same_tokenizer(&tokenizer, &self.tokenizer_json, &what).map_err(ContextError::HfFolder)?;
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
            ..LearnerConfig::default()
        }
    }

    /// The burn device of a role's settings.
    pub fn device(&self, role: &RoleModelConfig) -> Result<burn::tensor::Device, ContextError> {
        Ok(DeviceSpec::parse(&role.backend, &role.device)?.to_device()?)
    }
}
