//! One pre-norm causal transformer block: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor};

use super::attend::{Visibility, attend};
use super::init::ParamInit;
use crate::config::PolicyConfig;
use crate::kernels::{LAYER_NORM_EPS, causal_self_attention, gelu, layer_norm, linear};

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
    /// With a cache ([`Visibility::Cached`]), `x` holds only the new positions and attention
    /// covers cached + new keys.
    pub(crate) fn forward(&self, x: Tensor<3>, visibility: Visibility<'_>) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        let d_head = d_model / self.n_heads;
        let qkv = linear(&self.qkv, layer_norm(&self.attn_norm, x.clone()));
        if let Visibility::Causal = visibility {
            // Whole rows (training, scoring): the fused kernel reads the heads in place.
            let context = causal_self_attention(qkv, self.n_heads);
            return self.mlp(x + linear(&self.attn_out, context));
        }
        let qkv = qkv
            .reshape([batch, seq, 3 * self.n_heads, d_head])
            .swap_dims(1, 2); // [B, 3H, T, d_head]
        let heads = self.n_heads;
        let query = qkv.clone().narrow(1, 0, heads);
        let key = qkv.clone().narrow(1, heads, heads);
        let value = qkv.narrow(1, 2 * heads, heads);
        let context = attend(query, key, value, visibility);
        self.mlp(x + linear(&self.attn_out, context))
    }

    /// `x + mlp(norm(x))`.
    fn mlp(&self, x: Tensor<3>) -> Tensor<3> {
        let hidden = gelu(linear(&self.mlp_in, layer_norm(&self.mlp_norm, x.clone())));
        x + linear(&self.mlp_out, hidden)
    }
}
