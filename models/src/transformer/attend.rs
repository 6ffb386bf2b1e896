//! Scaled dot-product attention as both architectures call it: what each query sees
//! ([`Visibility`]: whole causal rows, an additive bias, or a KV cache being extended) and one
//! function that attends heads and returns them merged, `[B, T, H·d]`, the output projection's
//! layout.
use burn::tensor::Tensor;
use burn::tensor::module::attention;

use super::kv_cache::KvCache;
use crate::kernels::causal_self_attention;

/// What the queries of one layer see.
pub(crate) enum Visibility<'a> {
    /// Whole right-padded rows (training, scoring): plain causal masking, padding sitting after
    /// every real token.
    Causal,
    /// Left-padded rows with their own position ids: the additive bias `[B, 1, T, T]` (0 or
    /// [`crate::tensors::NEG_BIAS`]) encodes causality and padding.
    Bias(Tensor<4>),
    /// Decoding: the new positions' keys and values go into `cache`'s slot `layer`, and the
    /// queries attend over the `S` cached positions and the `T` new ones with the additive bias
    /// `[B, 1, T, S + T]`.
    Cached {
        bias: Tensor<4>,
        cache: &'a mut KvCache,
        layer: usize,
    },
}

impl<'a> Visibility<'a> {
    /// For layer `layer` of a pass with an additive bias, extending `cache` if there is one.
    pub(crate) fn biased(bias: &Tensor<4>, cache: Option<&'a mut KvCache>, layer: usize) -> Self {
        match cache {
            Some(cache) => Self::Cached {
                bias: bias.clone(),
                cache,
                layer,
            },
            None => Self::Bias(bias.clone()),
        }
    }
}

/// Attention of `[B, H, T, d]` queries over `[B, H_kv, S, d]` keys and values (`H` a multiple
/// of `H_kv`; each key/value head serves `H / H_kv` consecutive query heads, as transformers'
/// `repeat_kv`) → `[B, T, H·d]`, scale `1/√d`.
///
/// Never a boolean mask and never `is_causal` with `T ≠ S`: burn-tch hands both to torch's
/// SDPA with the opposite mask polarity and a top-left causal alignment (docs/models.md,
/// "Attention on libtorch").
pub(crate) fn attend(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    visibility: Visibility<'_>,
) -> Tensor<3> {
    let [batch, heads, seq, d_head] = query.dims();
    let bias = match visibility {
        Visibility::Cached { bias, cache, layer } => {
            return cache.attend(layer, query, key, value, bias);
        }
        Visibility::Bias(bias) => Some(bias),
        Visibility::Causal => None,
    };
    let (key, value) = (repeat_kv(key, heads), repeat_kv(value, heads));
    let context = match bias {
        // Whole rows: the fused causal kernel, on the heads packed as a QKV projection writes
        // them (one copy; the GPT block calls the kernel on its projection directly).
        None => {
            let qkv = Tensor::cat(vec![query, key, value], 1)
                .swap_dims(1, 2)
                .reshape([batch, seq, 3 * heads * d_head]);
            return causal_self_attention(qkv, heads);
        }
        Some(bias) => attention(query, key, value, None, Some(bias), Default::default()),
    };
    context
        .swap_dims(1, 2)
        .reshape([batch, seq, heads * d_head])
}

/// `[B, H_kv, S, d]` → `[B, heads, S, d]`, each key/value head repeated for `heads / H_kv`
/// consecutive query heads.
fn repeat_kv(x: Tensor<4>, heads: usize) -> Tensor<4> {
    let [batch, kv_heads, seq, dim] = x.dims();
    let groups = heads / kv_heads;
    if groups == 1 {
        return x;
    }
    x.unsqueeze_dim::<5>(2)
        .expand([batch, kv_heads, groups, seq, dim])
        .reshape([batch, kv_heads * groups, seq, dim])
}
