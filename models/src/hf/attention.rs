//! Grouped-query self-attention of the Llama/Qwen families, with HF's parameter names
//! (`q_proj`, `k_proj`, `v_proj`, `o_proj`, and Qwen3's `q_norm`/`k_norm`).
use burn::module::Module;
use burn::nn::{Linear, RmsNorm};
use burn::tensor::Tensor;

use super::rope::Rope;
use crate::kernels::linear;
use crate::transformer::{Visibility, attend};

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
    /// The cache ([`Visibility::Cached`]) keeps the `n_kv_heads` keys and values (before they
    /// are repeated for the query heads), already rotated.
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        visibility: Visibility<'_>,
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
            linear(&self.q_proj, x.clone()),
            self.n_heads,
            &self.q_norm,
        ));
        let key = rope.apply(split(
            linear(&self.k_proj, x.clone()),
            self.n_kv_heads,
            &self.k_norm,
        ));
        let value = split(linear(&self.v_proj, x), self.n_kv_heads, &None);
        linear(&self.o_proj, attend(query, key, value, visibility))
    }
}
