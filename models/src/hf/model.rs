//! The Llama/Qwen2/Qwen3 causal language model, laid out exactly like transformers'
//! `*ForCausalLM` so that a safetensors file's keys are this module's paths
//! (`model.embed_tokens`, `model.layers.N.…`, `model.norm`, `lm_head`) with no remapping.
use burn::module::Module;
use burn::nn::{Embedding, Linear, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Int, Tensor};

use super::arch::HfArch;
use super::attention::HfAttention;
use super::layer::{HfDecoderLayer, HfMlp};
use super::rope::{Rope, inv_freq};
use crate::config::PolicyConfig;
use crate::kernels::{linear, project};
use crate::transformer::Visibility;
use crate::transformer::init::ParamInit;
use crate::transformer::kv_cache::KvCache;

/// transformers' `*Model`: embeddings, decoder layers, final norm.
#[derive(Module, Debug)]
pub struct HfBody {
    pub(crate) embed_tokens: Embedding,
    pub(crate) layers: Vec<HfDecoderLayer>,
    pub(crate) norm: RmsNorm,
}

/// transformers' `*ForCausalLM`: the body and the head (`None` when tied to the embeddings).
#[derive(Module, Debug)]
pub struct HfModel {
    pub(crate) model: HfBody,
    pub(crate) lm_head: Option<Linear>,
    /// RoPE inverse frequencies (derived from the config; not a parameter).
    pub(crate) inv_freq: Vec<f32>,
}

fn rms(width: usize, arch: &HfArch, device: &Device) -> RmsNorm {
    RmsNormConfig::new(width)
        .with_epsilon(arch.rms_norm_eps)
        .init(device)
}

impl HfModel {
    /// A model of `config`'s architecture with weights from `init` (norms start at 1, biases
    /// at 0). `config.hf` must be set.
    pub(crate) fn init(
        config: &PolicyConfig,
        arch: &HfArch,
        init: &mut ParamInit,
        device: &Device,
    ) -> Self {
        let (d, std) = (config.d_model, config.init_std);
        let out_std = std / (2.0 * config.n_layers as f64).sqrt();
        let (q_width, kv_width) = (
            config.n_heads * arch.head_dim,
            arch.n_kv_heads * arch.head_dim,
        );
        let embed_tokens = init.embedding(config.vocab_size, d, std, device);
        let layers = (0..config.n_layers)
            .map(|_| {
                let mut proj = |d_in, d_out, std, bias: bool| {
                    let mut layer = init.linear(d_in, d_out, std, device);
                    if bias {
                        layer.bias = Some(init.zeros_param([d_out], device));
                    }
                    layer
                };
                let self_attn = HfAttention {
                    q_proj: proj(d, q_width, std, arch.qkv_bias),
                    k_proj: proj(d, kv_width, std, arch.qkv_bias),
                    v_proj: proj(d, kv_width, std, arch.qkv_bias),
                    o_proj: proj(q_width, d, out_std, arch.o_bias),
                    q_norm: arch.qk_norm.then(|| rms(arch.head_dim, arch, device)),
                    k_norm: arch.qk_norm.then(|| rms(arch.head_dim, arch, device)),
                    n_heads: config.n_heads,
                    n_kv_heads: arch.n_kv_heads,
                    head_dim: arch.head_dim,
                };
                let mlp = HfMlp {
                    gate_proj: proj(d, config.d_ff, std, false),
                    up_proj: proj(d, config.d_ff, std, false),
                    down_proj: proj(config.d_ff, d, out_std, false),
                };
                HfDecoderLayer {
                    self_attn,
                    mlp,
                    input_layernorm: rms(d, arch, device),
                    post_attention_layernorm: rms(d, arch, device),
                }
            })
            .collect();
        let lm_head =
            (!config.tie_embeddings).then(|| init.linear(d, config.vocab_size, std, device));
        Self {
            model: HfBody {
                embed_tokens,
                layers,
                norm: rms(d, arch, device),
            },
            lm_head,
            inv_freq: inv_freq(arch),
        }
    }

    /// Hidden states of whole right-padded rows (positions `0..T`), before the final norm.
    ///
    /// # Shapes
    /// - tokens: `[B, T]` → `[B, T, hidden]`
    pub(crate) fn hidden(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq] = tokens.dims();
        let device = tokens.device();
        let positions = Tensor::<1, Int>::arange(0..seq as i64, &device).unsqueeze::<2>();
        let rope = Rope::new(&self.inv_freq, positions);
        let mut x = self.model.embed_tokens.forward(tokens);
        for layer in &self.model.layers {
            x = layer.forward(x, &rope, Visibility::Causal);
        }
        x
    }

    /// Hidden states of rows with explicit position ids and an additive attention bias,
    /// optionally extending a KV cache (see `PolicyModel::forward_positions`).
    pub(crate) fn forward_positions(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        bias: Tensor<4>,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let rope = Rope::new(&self.inv_freq, positions);
        let mut x = self.model.embed_tokens.forward(tokens);
        for (index, layer) in self.model.layers.iter().enumerate() {
            let visibility = Visibility::biased(&bias, cache.as_deref_mut(), index);
            x = layer.forward(x, &rope, visibility);
        }
        x
    }

    /// Final norm and head: `[..., hidden]` → `[..., V]`.
    pub(crate) fn logits<const D: usize>(&self, hidden: Tensor<D>) -> Tensor<D> {
        let hidden = self.model.norm.forward(hidden);
        match &self.lm_head {
            Some(head) => linear(head, hidden),
            None => project(hidden, self.model.embed_tokens.weight.val().transpose()),
        }
    }

    /// Width of the residual stream.
    pub(crate) fn d_model(&self) -> usize {
        self.model.embed_tokens.weight.shape().dims::<2>()[1]
    }

    /// Number of decoder layers (KV cache slots).
    pub(crate) fn n_layers(&self) -> usize {
        self.model.layers.len()
    }
}
