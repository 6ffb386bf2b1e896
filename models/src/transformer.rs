//! The policy network: one of two architectures behind one interface.
//!
//! - [`GptModel`]: the GPT presets (`tiny`/`small`/`base`) — learned positions, LayerNorm,
//!   GELU MLP.
//! - [`HfModel`]: Llama / Qwen2 / Qwen3 as in Hugging Face transformers — RoPE, RMSNorm,
//!   grouped-query attention, SwiGLU — loaded from and saved to HF folders ([`crate::hf`]).
//!
//! Two ways in: [`PolicyModel::forward`] for whole right-padded rows (training, scoring), and
//! the crate-private `forward_positions` for sampling, where rows are left-padded, carry their
//! own position ids and may reuse a [`KvCache`]. The sampler, the losses and the learner only
//! see this enum, so a role does not know which architecture it runs.
mod attend;
mod block;
mod gpt;
pub(crate) mod init;
pub(crate) mod kv_cache;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

pub(crate) use attend::{Visibility, attend};
pub use block::Block;
pub use gpt::GptModel;
use init::ParamInit;
use kv_cache::KvCache;

use crate::config::PolicyConfig;
use crate::error::Result;
pub use crate::hf::HfModel;

/// The policy network (see the module docs).
#[derive(Module, Debug)]
pub enum PolicyModel {
    /// A GPT preset.
    Gpt(GptModel),
    /// A Llama / Qwen2 / Qwen3 network.
    Hf(HfModel),
}

impl PolicyModel {
    /// Builds a model with weights drawn from `config.init_seed` (same weights on every
    /// backend and thread).
    pub fn init(config: &PolicyConfig, device: &Device) -> Result<Self> {
        Self::init_with(config, &mut ParamInit::new(config.init_seed), device)
    }

    /// Builds a model whose weights are all zero, to be overwritten by a load (drawing a large
    /// model's weights only to replace them costs seconds).
    pub(crate) fn init_zeros(config: &PolicyConfig, device: &Device) -> Result<Self> {
        Self::init_with(config, &mut ParamInit::zeros(), device)
    }

    fn init_with(config: &PolicyConfig, init: &mut ParamInit, device: &Device) -> Result<Self> {
        config.validate()?;
        Ok(match &config.hf {
            None => Self::Gpt(GptModel::init(config, init, device)),
            Some(arch) => Self::Hf(HfModel::init(config, arch, init, device)),
        })
    }

    /// Next-token logits for whole rows.
    ///
    /// # Shapes
    /// - tokens: `[B, T]` (right-padded; `T ≤ max_seq_len`)
    /// - output: `[B, T, V]`, where `[b, t]` scores the token at `t + 1` given `tokens[b, ..=t]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.logits(self.hidden(tokens))
    }

    /// Hidden states of whole rows, before the final norm (see [`Self::forward`]).
    ///
    /// # Shapes
    /// - tokens: `[B, T]` → `[B, T, d_model]`
    pub(crate) fn hidden(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        match self {
            Self::Gpt(m) => m.hidden(tokens),
            Self::Hf(m) => m.hidden(tokens),
        }
    }

    /// Hidden states for rows with explicit position ids and an additive attention bias,
    /// optionally extending a KV cache.
    ///
    /// # Shapes
    /// - tokens, positions: `[B, T]`
    /// - bias: `[B, 1, T, S + T]` where `S` is the cached length
    /// - output: `[B, T, d_model]` (before the final norm; see [`Self::logits`])
    pub(crate) fn forward_positions(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        bias: Tensor<4>,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        match self {
            Self::Gpt(m) => m.forward_positions(tokens, positions, bias, cache),
            Self::Hf(m) => m.forward_positions(tokens, positions, bias, cache),
        }
    }

    /// Final norm and output head.
    ///
    /// # Shapes
    /// - hidden: `[..., d_model]` → `[..., V]`
    pub(crate) fn logits<const D: usize>(&self, hidden: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gpt(m) => m.logits(hidden),
            Self::Hf(m) => m.logits(hidden),
        }
    }

    /// Width of the residual stream.
    pub(crate) fn d_model(&self) -> usize {
        match self {
            Self::Gpt(m) => m.d_model(),
            Self::Hf(m) => m.d_model(),
        }
    }

    /// An empty KV cache sized for this model, with room for `capacity` positions.
    pub(crate) fn new_cache(&self, capacity: usize) -> KvCache {
        let layers = match self {
            Self::Gpt(m) => m.n_layers(),
            Self::Hf(m) => m.n_layers(),
        };
        KvCache::new(layers, capacity)
    }
}
