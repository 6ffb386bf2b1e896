//! One pre-norm causal transformer block: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::module::attention;
use burn::tensor::{Device, Tensor};

use super::init::ParamInit;
use super::kv_cache::KvCache;
use crate::config::PolicyConfig;
use crate::kernels::{LAYER_NORM_EPS, causal_self_attention, gelu, layer_norm};

/// Scaled dot-product attention of both architectures, `[B, H, T, d]` queries over
/// `[B, H, S, d]` keys and values: causal when `bias` is `None` (whole rows, `T = S`), else
/// the additive `bias` `[B, 1, T, S]` alone. Never a boolean mask and never `is_causal` with
/// `T ≠ S`: burn-tch hands both to torch's SDPA with the opposite mask polarity and a
/// top-left causal alignment (docs/models.md, "Attention on libtorch").
pub(crate) fn attend(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    bias: Option<Tensor<4>>,
) -> Tensor<4> {
    let Some(bias) = bias else {
        // Whole rows (training, scoring): the fused causal kernel, on the heads packed as a
        // QKV projection writes them (one copy; the GPT block calls the kernel directly).
        let [batch, heads, seq, d_head] = query.dims();
        let qkv = Tensor::cat(vec![query, key, value], 1)
            .swap_dims(1, 2)
            .reshape([batch, seq, 3 * heads * d_head]);
        return causal_self_attention(qkv, heads)
            .reshape([batch, seq, heads, d_head])
            .swap_dims(1, 2);
    };
    attention(query, key, value, None, Some(bias), Default::default())
}

/// A pre-norm block with fused QKV projection and a GELU MLP (no biases in the projections).
#[derive(Module, Debug)]
pub struct Block {
    attn_norm: LayerNorm,
    qkv: Linear,
    attn_out: Linear,
    mlp_norm: LayerNorm,
    mlp_in: Linear,
    mlp_out: Linear,
    n_heads: usize,
}

impl Block {
    pub(crate) fn init(config: &PolicyConfig, init: &mut ParamInit, device: &Device) -> Self {
        let d = config.d_model;
        let std = config.init_std;
        // GPT-2: residual-output projections scaled by 1/sqrt(2·n_layers) keep the residual
        // stream's variance flat with depth.
        let out_std = std / (2.0 * config.n_layers as f64).sqrt();
        let norm = LayerNormConfig::new(d).with_epsilon(LAYER_NORM_EPS);
        Self {
            attn_norm: norm.init(device),
            qkv: init.linear(d, 3 * d, std, device),
            attn_out: init.linear(d, d, out_std, device),
            mlp_norm: norm.init(device),
            mlp_in: init.linear(d, config.d_ff, std, device),
            mlp_out: init.linear(config.d_ff, d, out_std, device),
            n_heads: config.n_heads,
        }
    }

    /// # Shapes
    /// - x: `[B, T, d_model]` → `[B, T, d_model]`
    ///
    /// `bias`: `None` is plain causal masking (right-padded training rows, where padding sits
    /// after every real token); `Some([B, 1, T_q, T_k])` is an additive bias (0 or a large
    /// negative number) encoding causality and left padding (sampling).
    /// With a cache, `x` holds only the new positions and attention covers cached + new keys.
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        bias: Option<Tensor<4>>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        let d_head = d_model / self.n_heads;
        let qkv = self.qkv.forward(layer_norm(&self.attn_norm, x.clone()));
        if bias.is_none() && cache.is_none() {
            // Whole rows (training, scoring): the fused kernel reads the heads in place.
            let context = causal_self_attention(qkv, self.n_heads);
            return self.mlp(x + self.attn_out.forward(context));
        }
        let qkv = qkv
            .reshape([batch, seq, 3 * self.n_heads, d_head])
            .swap_dims(1, 2); // [B, 3H, T, d_head]
        let heads = self.n_heads;
        let query = qkv.clone().narrow(1, 0, heads);
        let key = qkv.clone().narrow(1, heads, heads);
        let value = qkv.narrow(1, 2 * heads, heads);
        let (key, value) = match cache {
            Some((cache, layer)) => cache.append(layer, key, value),
            None => (key, value),
        };
        let context = attend(query, key, value, bias)
            .swap_dims(1, 2)
            .reshape([batch, seq, d_model]);
        self.mlp(x + self.attn_out.forward(context))
    }

    /// `x + mlp(norm(x))`.
    fn mlp(&self, x: Tensor<3>) -> Tensor<3> {
        let hidden = gelu(self.mlp_in.forward(layer_norm(&self.mlp_norm, x.clone())));
        x + self.mlp_out.forward(hidden)
    }
}
