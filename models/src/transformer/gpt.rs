//! The GPT preset network: token + learned position embeddings, `n_layers` pre-norm causal
//! [`Block`]s, a final layer norm and an output head tied to the token embedding (or a separate
//! matrix).
use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};

use crate::kernels::{LAYER_NORM_EPS, layer_norm, linear, project};
use burn::tensor::{Device, Int, Tensor};

use super::attend::Visibility;
use super::block::Block;
use super::init::ParamInit;
use super::kv_cache::KvCache;
use crate::config::PolicyConfig;

/// The GPT preset network (see the module docs).
#[derive(Module, Debug)]
pub struct GptModel {
    token_embedding: Embedding,
    position_embedding: Embedding,
    blocks: Vec<Block>,
    final_norm: LayerNorm,
    /// `None` when the head is tied to `token_embedding`.
    head: Option<Linear>,
}

impl GptModel {
    /// A model of `config`'s shape with weights drawn from `init`.
    pub(crate) fn init(config: &PolicyConfig, init: &mut ParamInit, device: &Device) -> Self {
        let std = config.init_std;
        let token_embedding = init.embedding(config.vocab_size, config.d_model, std, device);
        let position_embedding = init.embedding(config.max_seq_len, config.d_model, std, device);
        let blocks = (0..config.n_layers)
            .map(|_| Block::init(config, init, device))
            .collect();
        let head = (!config.tie_embeddings)
            .then(|| init.linear(config.d_model, config.vocab_size, std, device));
        Self {
            token_embedding,
            position_embedding,
            blocks,
            final_norm: LayerNormConfig::new(config.d_model)
                .with_epsilon(LAYER_NORM_EPS)
                .init(device),
            head,
        }
    }

    /// Hidden states of whole rows, before the final norm (see `PolicyModel::forward`).
    ///
    /// # Shapes
    /// - tokens: `[B, T]` → `[B, T, d_model]`
    pub(crate) fn hidden(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq] = tokens.dims();
        let positions = self
            .position_embedding
            .weight
            .val()
            .narrow(0, 0, seq)
            .unsqueeze::<3>(); // [1, T, D]
        let mut x = self.token_embedding.forward(tokens) + positions;
        for block in &self.blocks {
            x = block.forward(x, Visibility::Causal);
        }
        x
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
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let mut x =
            self.token_embedding.forward(tokens) + self.position_embedding.forward(positions);
        for (layer, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, Visibility::biased(&bias, cache.as_deref_mut(), layer));
        }
        x
    }

    /// Final norm and output head.
    ///
    /// # Shapes
    /// - hidden: `[..., d_model]` → `[..., V]`
    pub(crate) fn logits<const D: usize>(&self, hidden: Tensor<D>) -> Tensor<D> {
        let hidden = layer_norm(&self.final_norm, hidden);
        match &self.head {
            Some(head) => linear(head, hidden),
            None => project(hidden, self.token_embedding.weight.val().transpose()),
        }
    }

    /// Width of the residual stream.
    pub(crate) fn d_model(&self) -> usize {
        self.token_embedding.weight.shape().dims::<2>()[1]
    }

    /// Number of blocks (KV cache slots).
    pub(crate) fn n_layers(&self) -> usize {
        self.blocks.len()
    }
}
