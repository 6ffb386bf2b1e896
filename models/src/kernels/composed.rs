//! burn's own ops composing each fused op: the default of every backend without a kernel of
//! ours (libtorch), and flex's answer for dtypes and shapes its kernels do not take.
use burn::backend::tensor::{FloatTensor, IndexingUpdateOp, IntTensor};
use burn::backend::{Backend, Shape, Slice, TensorData, TensorMetadata};

/// burn's composition of [`Kernels::fused_logprobs`]: `log_softmax`, then `gather`.
pub(super) fn logprobs<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
) -> FloatTensor<B> {
    let [rows, _] = logits.shape().dims::<2>();
    let targets = B::int_reshape(targets, Shape::new([rows, 1]));
    let picked = B::float_gather(1, B::log_softmax(logits, 1), targets);
    B::float_reshape(picked, Shape::new([rows]))
}

/// burn's composition of [`Kernels::fused_logprobs_backward`]: `g · (one_hot(t) − softmax)`.
pub(super) fn logprobs_backward<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let [rows, _] = logits.shape().dims::<2>();
    let grad = B::float_reshape(grad, Shape::new([rows, 1]));
    let softmax = B::float_exp(B::log_softmax(logits, 1));
    let minus = B::float_neg(B::float_mul(softmax, grad.clone()));
    let targets = B::int_reshape(targets, Shape::new([rows, 1]));
    B::float_scatter(1, minus, targets, grad, IndexingUpdateOp::Add)
}

/// Causal attention of `[B, H, T, d]` heads in burn's ops — scores, an additive causal mask,
/// softmax, product — and its weights `P`.
fn causal_attention_forward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let [.., t, d] = q.shape().dims::<4>();
    let device = q.device();
    let scale = 1.0 / (d as f64).sqrt();
    let scores = B::float_mul_scalar(
        B::float_matmul(q, B::float_swap_dims(k, 2, 3)),
        scale.into(),
    );
    let mask: Vec<f32> = (0..t * t)
        .map(|ij| if ij % t > ij / t { -1.0e9 } else { 0.0 })
        .collect();
    let mask = B::float_from_data(TensorData::new(mask, [1, 1, t, t]), &device);
    let p = B::softmax(B::float_add(scores, mask), 3);
    (B::float_matmul(p.clone(), v), p)
}

/// `(dQ, dK, dV)` of [`causal_attention_forward`] in burn's ops, from `P` and the output's
/// gradient.
fn causal_attention_backward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    p: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let d = q.shape().dims::<4>()[3];
    let scale = 1.0 / (d as f64).sqrt();
    let dv = B::float_matmul(B::float_swap_dims(p.clone(), 2, 3), grad.clone());
    let dp = B::float_matmul(grad, B::float_swap_dims(v, 2, 3));
    let rowsum = B::float_sum_dim(B::float_mul(p.clone(), dp.clone()), 3);
    let ds = B::float_mul(p, B::float_sub(dp, rowsum));
    let dq = B::float_mul_scalar(B::float_matmul(ds.clone(), k), scale.into());
    let dk = B::float_mul_scalar(
        B::float_matmul(B::float_swap_dims(ds, 2, 3), q),
        scale.into(),
    );
    (dq, dk, dv)
}

/// `[B, T, 3·H·d]` → queries, keys, values `[B, H, T, d]` (views).
pub(super) fn split_heads<B: Backend>(
    qkv: FloatTensor<B>,
    heads: usize,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [batch, t, width] = qkv.shape().dims::<3>();
    let d = width / (3 * heads);
    let all = B::float_swap_dims(
        B::float_reshape(qkv, Shape::new([batch, t, 3 * heads, d])),
        1,
        2,
    );
    let part = |i: usize| {
        let ranges = [0..batch, i * heads..(i + 1) * heads, 0..t, 0..d].map(Slice::from);
        B::float_slice(all.clone(), &ranges)
    };
    (part(0), part(1), part(2))
}

/// `[B, H, T, d]` → `[B, T, H·d]`.
pub(super) fn merge_heads<B: Backend>(heads: FloatTensor<B>) -> FloatTensor<B> {
    let [batch, h, t, d] = heads.shape().dims::<4>();
    B::float_reshape(
        B::float_swap_dims(heads, 1, 2),
        Shape::new([batch, t, h * d]),
    )
}

/// [`causal_attention_forward`] on a fused QKV projection's output.
pub(super) fn self_attention_forward<B: Backend>(
    qkv: FloatTensor<B>,
    heads: usize,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let (q, k, v) = split_heads::<B>(qkv, heads);
    let (out, p) = causal_attention_forward::<B>(q, k, v);
    (merge_heads::<B>(out), p)
}

/// [`causal_attention_backward`] on a fused QKV projection's output: the gradient `[B, T,
/// 3·H·d]`.
pub(super) fn self_attention_backward<B: Backend>(
    qkv: FloatTensor<B>,
    p: FloatTensor<B>,
    grad: FloatTensor<B>,
    heads: usize,
) -> FloatTensor<B> {
    let [batch, t, width] = qkv.shape().dims::<3>();
    let d = width / (3 * heads);
    let (q, k, v) = split_heads::<B>(qkv, heads);
    let grad = B::float_swap_dims(
        B::float_reshape(grad, Shape::new([batch, t, heads, d])),
        1,
        2,
    );
    let (dq, dk, dv) = causal_attention_backward::<B>(q, k, v, p, grad);
    let all = B::float_cat(vec![dq, dk, dv], 1); // [B, 3H, T, d]
    B::float_reshape(B::float_swap_dims(all, 1, 2), Shape::new([batch, t, width]))
}

/// burn's ops for [`Kernels::fused_layer_norm_backward`].
pub(super) fn layer_norm_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    grad: FloatTensor<B>,
    eps: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let width = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / width.max(1);
    let flat = |t: FloatTensor<B>| B::float_reshape(t, Shape::new([rows, width]));
    let (x, grad) = (flat(x), flat(grad));
    let centered = B::float_sub(x.clone(), B::float_mean_dim(x, 1));
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), 1);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, eps.into())));
    let normed = B::float_mul(centered, rstd.clone());
    let dnormed = B::float_mul(
        grad.clone(),
        B::float_reshape(gamma, Shape::new([1, width])),
    );
    let mean_d = B::float_mean_dim(dnormed.clone(), 1);
    let mean_dx = B::float_mean_dim(B::float_mul(dnormed.clone(), normed.clone()), 1);
    let inner = B::float_sub(
        B::float_sub(dnormed, mean_d),
        B::float_mul(normed.clone(), mean_dx),
    );
    let dx = B::float_reshape(B::float_mul(inner, rstd), shape);
    let column = |t: FloatTensor<B>| B::float_reshape(B::float_sum_dim(t, 0), Shape::new([width]));
    let dgamma = column(B::float_mul(grad.clone(), normed));
    (dx, dgamma, column(grad))
}

/// burn's ops for [`Kernels::fused_cached_attention`]: `slice_assign` into the caches, the
/// cached prefix sliced out and its heads repeated for grouped queries, burn's attention with
/// the additive bias.
pub(super) fn cached_attention<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    cache_key: FloatTensor<B>,
    cache_value: FloatTensor<B>,
    len: usize,
    bias: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [batch, heads, t, d] = query.shape().dims::<4>();
    let kv_heads = key.shape().dims::<4>()[1];
    let new = [0..batch, 0..kv_heads, len..len + t, 0..d].map(Slice::from);
    let cache_key = B::float_slice_assign(cache_key, &new, key);
    let cache_value = B::float_slice_assign(cache_value, &new, value);
    let seen = [0..batch, 0..kv_heads, 0..len + t, 0..d].map(Slice::from);
    let groups = heads / kv_heads;
    let heads_of = |cache: &FloatTensor<B>| {
        let x = B::float_slice(cache.clone(), &seen);
        if groups == 1 {
            return x;
        }
        let x = B::float_reshape(x, Shape::new([batch, kv_heads, 1, len + t, d]));
        let x = B::float_expand(x, Shape::new([batch, kv_heads, groups, len + t, d]));
        B::float_reshape(x, Shape::new([batch, heads, len + t, d]))
    };
    let out = B::attention(
        query,
        heads_of(&cache_key),
        heads_of(&cache_value),
        None,
        Some(bias),
        Default::default(),
    );
    (merge_heads::<B>(out), cache_key, cache_value)
}
