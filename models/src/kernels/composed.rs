//! burn's own ops composing each fused op: the default of every backend without a kernel of
//! ours (libtorch), and flex's answer for dtypes and shapes its kernels do not take.
use burn::backend::tensor::{FloatTensor, IndexingUpdateOp, IntTensor};
use burn::backend::{Backend, Shape, TensorData, TensorMetadata};

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

/// burn's ops for [`Kernels::fused_causal_attention_forward`]: scores, an additive causal mask,
/// softmax, product.
pub(super) fn causal_attention_forward<B: Backend>(
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

/// burn's ops for [`Kernels::fused_causal_attention_backward`].
pub(super) fn causal_attention_backward<B: Backend>(
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
