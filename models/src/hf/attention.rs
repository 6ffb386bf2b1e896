//! Grouped-query self-attention of the Llama/Qwen families, with HF's parameter names
//! (`q_proj`, `k_proj`, `v_proj`, `o_proj`, and Qwen3's `q_norm`/`k_norm`).
use burn::module::Module;
use burn::nn::{Linear, RmsNorm};
use burn::tensor::Tensor;

use super::rope::Rope;
use crate::transformer::attend;
use crate::transformer::kv_cache::KvCache;

/// Query, key, value and output projections (burn `Linear`s, so the store's PyTorch adapters
/// transpose them), optional per-head RMSNorms of queries and keys.
#[derive(Module, Debug)]
pub struct HfAttention {
    pub(crate) q_proj: Linear,
    pub(crate) k_proj: Linear,
    pub(crate) v_proj: Linear,
    pub(crate) o_proj: Linear,
    pub(crate) q_norm: Option<RmsNorm>,
    pub(crate) k_norm: Option<RmsNorm>,
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
}

impl HfAttention {
    /// # Shapes
    /// - x: `[B, T, hidden]` → `[B, T, hidden]`
    ///
    /// `bias` as in the GPT block: `None` is causal masking of whole right-padded rows,
    /// `Some([B, 1, T, S + T])` an additive bias for left-padded rows and cached decoding.
    /// The cache keeps the `n_kv_heads` keys and values (before they are repeated for the
    /// query heads), already rotated.
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        bias: Option<Tensor<4>>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor<3> {
        let [batch, seq, _] = x.dims();
        let split = |t: Tensor<3>, heads: usize, norm: &Option<RmsNorm>| {
            let t = t.reshape([batch, seq, heads, self.head_dim]);
            let t = match norm {
                Some(norm) => norm.forward(t),
                None => t,
            };
            t.swap_dims(1, 2) // [B, heads, T, head_dim]
        };
        let query = rope.apply(split(
            self.q_proj.forward(x.clone()),
            self.n_heads,
            &self.q_norm,
        ));
        let key = rope.apply(split(
            self.k_proj.forward(x.clone()),
            self.n_kv_heads,
            &self.k_norm,
        ));
        let value = split(self.v_proj.forward(x), self.n_kv_heads, &None);
        let (key, value) = match cache {
            Some((cache, layer)) => cache.append(layer, key, value),
            None => (key, value),
        };
        let context = attend(query, self.repeat_kv(key), self.repeat_kv(value), bias)
            .swap_dims(1, 2)
            .reshape([batch, seq, self.n_heads * self.head_dim]);
        self.o_proj.forward(context)
    }

    /// `[B, n_kv_heads, S, d]` → `[B, n_heads, S, d]`, each key/value head serving
    /// `n_heads / n_kv_heads` consecutive query heads (transformers' `repeat_kv`).
    fn repeat_kv(&self, x: Tensor<4>) -> Tensor<4> {
        let groups = self.n_heads / self.n_kv_heads;
        if groups == 1 {
            return x;
        }
        let [batch, kv_heads, seq, dim] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([batch, kv_heads, groups, seq, dim])
            .reshape([batch, kv_heads * groups, seq, dim])
    }
}
