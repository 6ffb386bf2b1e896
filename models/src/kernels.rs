//! Fused CPU kernels for the ops that burn 0.22's flex backend leaves slow, plugged in through
//! burn's backend-extension mechanism (`#[backend_extension]`): one trait, [`Kernels`],
//! implemented for flex with our kernels, for `Autodiff<B>` with hand-written backwards (one
//! graph node per op, calling the inner backend's fused gradient), and for libtorch with burn's
//! own composition (torch fuses these itself).
//!
//! Why: flex runs GELU one element at a time through `libm::erff`, composes `log_softmax` +
//! `gather`, attention and layer norm from separate tensor ops (a pass over memory and a backward
//! node each) and copies attention heads out of the QKV projection and back; together that was
//! about half of a small model's update after the learner's parallel shards (docs/results.md
//! "Performance"). The ops here: [`gelu`] (vectorised `Φ` and `exp`, see [`math`]),
//! [`logprobs`] (one row pass), [`causal_self_attention`] (heads read in place, `gemm` products,
//! one-pass softmax), [`layer_norm`], [`linear`] / [`project`] (the products into fresh buffers,
//! no zero-fill, no nested parallelism) and decoding's [`cached_attention`] (a cache written in
//! place, no concatenation). Each equals burn's op within 1e-5 (tests below; they run on libtorch
//! too); our own loops compute the same bits on every CPU (the `gemm` crate picks its kernel by
//! CPU, as flex's matmul does).
// burn-tch is deprecated upstream but is our GPU path for now (as in device.rs); the
// extension macro names it in code it generates here.
#![cfg_attr(feature = "tch", allow(deprecated))]

use burn::backend::ops::{ActivationOps, AttentionModuleOptions, ModuleOps};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Int, Tensor};

#[macro_use]
mod multiversion;
mod attention;
mod autodiff;
mod cached_attention;
mod composed;
mod flex;
mod gelu;
mod layer_norm;
mod linear;
mod logprobs;
pub(crate) mod math;
mod matrix;

/// The fused ops, per backend. The default bodies are burn's own ops: what every backend that
/// has no kernel of ours runs.
#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub(crate) trait Kernels: Backend {
    /// `x · Φ(x)` (GELU, erf form), element-wise.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu(x)
    }

    /// `grad · (Φ(x) + x · φ(x))`: the gradient of [`Kernels::fused_gelu`] at `x`.
    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu_backward(x, grad)
    }

    /// `[N, V]` logits and `N` target ids → `[N]`: `log softmax(logits[i])[targets[i]]`.
    fn fused_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        composed::logprobs::<Self>(logits, targets)
    }

    /// The gradient of [`Kernels::fused_logprobs`] with respect to the logits, `[N, V]`.
    fn fused_logprobs_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed::logprobs_backward::<Self>(logits, targets, grad)
    }

    /// Layer norm over the last dimension, `(x − μ) / √(σ² + eps) · γ + β`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::layer_norm(x, gamma, Some(beta), eps)
    }

    /// The gradients `(dx, dγ, dβ)` of [`Kernels::fused_layer_norm`] at `x` for the output's
    /// gradient.
    fn fused_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::layer_norm_backward::<Self>(x, gamma, grad, eps)
    }

    /// Causal self-attention `softmax(Q Kᵀ / √d + mask) V` of the fused QKV projection's
    /// output `[B, T, 3·heads·d]` (queries, keys, values, each heads side by side) → `[B, T,
    /// heads·d]`.
    fn fused_self_attention(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        let (q, k, v) = composed::split_heads::<Self>(qkv, heads);
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        composed::merge_heads::<Self>(<Self as ModuleOps<Self>>::attention(
            q, k, v, None, None, options,
        ))
    }

    /// [`Kernels::fused_self_attention`] and its attention weights `P`, `[B, heads, T, T]`: what
    /// the backward needs.
    fn fused_self_attention_forward(
        qkv: FloatTensor<Self>,
        heads: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed::self_attention_forward::<Self>(qkv, heads)
    }

    /// The gradient with respect to `qkv` of [`Kernels::fused_self_attention`], given `P` and
    /// the output's gradient.
    fn fused_self_attention_backward(
        qkv: FloatTensor<Self>,
        p: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        composed::self_attention_backward::<Self>(qkv, p, grad, heads)
    }

    /// `x W` over the last dimension of `x`: `[..., d_in]` × `[d_in, d_out]` → `[..., d_out]`
    /// (a linear layer without its bias).
    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::linear(x, weight, None)
    }

    /// The gradient of [`Kernels::fused_linear`] with respect to `x`: `dy Wᵀ`, `[..., d_in]`.
    fn fused_linear_backward_x(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::linear_x_backward(weight, grad)
    }

    /// The gradient of [`Kernels::fused_linear`] with respect to the weight: `xᵀ dy` summed
    /// over every leading dimension, `[d_in, d_out]`.
    fn fused_linear_backward_weight(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::linear_weight_backward(x, grad)
    }

    /// Attention of `T` new positions over a key/value cache, for decoding: writes `key` and
    /// `value` (`[B, Hkv, T, d]`) into `cache_key` and `cache_value` (`[B, Hkv, C, d]`) at
    /// positions `len..len + T` (`len + T ≤ C`), then attends `query` (`[B, H, T, d]`, `H` a
    /// multiple of `Hkv`) over the first `len + T` positions with the additive `bias` (`[B, 1,
    /// T, len + T]`): `softmax(Q Kᵀ / √d + bias) V` as `[B, T, H·d]`, and the two caches.
    /// Not differentiable: nothing trains through a decode.
    fn fused_cached_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        cache_key: FloatTensor<Self>,
        cache_value: FloatTensor<Self>,
        len: usize,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::cached_attention::<Self>(query, key, value, cache_key, cache_value, len, bias)
    }
}

#[cfg(feature = "tch")]
impl Kernels for burn::backend::LibTorch {}

/// GELU (the exact, erf form — what GPT-2's `gelu` and PyTorch's default compute), on whatever
/// backend `x` lives, differentiable when `x` is tracked.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::fused_gelu(x.into_dispatch()))
}

/// The epsilon of every layer norm of the GPT presets (burn's and PyTorch's default).
pub(crate) const LAYER_NORM_EPS: f64 = 1e-5;

/// `norm`'s layer norm of `x` (over the last dimension), differentiable in `x`, `γ` and `β`;
/// a norm without `β` goes to burn's op.
pub(crate) fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let Some(beta) = &norm.beta else {
        return norm.forward(x);
    };
    Tensor::from_dispatch(<Dispatch as Kernels>::fused_layer_norm(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        beta.val().into_dispatch(),
        LAYER_NORM_EPS,
    ))
}

/// Causal self-attention of a fused QKV projection's output `[B, T, 3·heads·d]` → `[B, T,
/// heads·d]` (scale `1/√d`), differentiable.
pub(crate) fn causal_self_attention(qkv: Tensor<3>, heads: usize) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as Kernels>::fused_self_attention(
        qkv.into_dispatch(),
        heads,
    ))
}

/// `x W` over the last dimension of `x` (`[..., d_in]` × `[d_in, d_out]`), differentiable in
/// both.
pub(crate) fn project<const D: usize>(x: Tensor<D>, weight: Tensor<2>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as Kernels>::fused_linear(
        x.into_dispatch(),
        weight.into_dispatch(),
    ))
}

/// `layer`'s `x W + b`: the product through [`project`], a bias added by burn.
pub(crate) fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let y = project(x, layer.weight.val());
    match &layer.bias {
        Some(bias) => y + bias.val().unsqueeze(),
        None => y,
    }
}

/// The new positions' keys and values, and the cache they are written into (see
/// [`cached_attention`]).
pub(crate) struct CacheWrite {
    /// This step's keys, `[B, Hkv, T, d]`.
    pub(crate) key: Tensor<4>,
    /// This step's values, `[B, Hkv, T, d]`.
    pub(crate) value: Tensor<4>,
    /// The cached keys, `[B, Hkv, C, d]`.
    pub(crate) cache_key: Tensor<4>,
    /// The cached values, `[B, Hkv, C, d]`.
    pub(crate) cache_value: Tensor<4>,
    /// Positions already cached.
    pub(crate) len: usize,
}

/// Writes `write`'s keys and values into its cache at `len..len + T` and attends `query`
/// (`[B, H, T, d]`) over the first `len + T` cached positions with the additive `bias` (`[B, 1,
/// T, len + T]`): the output `[B, T, H·d]` and the updated cache `(keys, values)`. In place on
/// flex when the cache tensors are not shared; never differentiable.
pub(crate) fn cached_attention(
    query: Tensor<4>,
    write: CacheWrite,
    bias: Tensor<4>,
) -> (Tensor<3>, Tensor<4>, Tensor<4>) {
    let (out, cache_key, cache_value) = <Dispatch as Kernels>::fused_cached_attention(
        query.into_dispatch(),
        write.key.into_dispatch(),
        write.value.into_dispatch(),
        write.cache_key.into_dispatch(),
        write.cache_value.into_dispatch(),
        write.len,
        bias.into_dispatch(),
    );
    (
        Tensor::from_dispatch(out),
        Tensor::from_dispatch(cache_key),
        Tensor::from_dispatch(cache_value),
    )
}

/// `log softmax(logits[i])[targets[i]]` for each row: `[N, V]` and `[N]` → `[N]`,
/// differentiable in the logits.
pub(crate) fn logprobs(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as Kernels>::fused_logprobs(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    use burn::backend::ops::AttentionModuleOptions;
    use burn::tensor::activation;
    use burn::tensor::{Distribution, Int, Tensor};

    use super::{Kernels, composed};

    use crate::test_support::max_diff;

    /// The kernels under test are flex's (libtorch runs burn's composition, which the fused
    /// calls would only compare with itself): these tests run on flex whatever
    /// `MGRPO_TEST_BACKEND` says.
    fn test_device() -> burn::tensor::Device {
        burn::tensor::Device::flex()
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// The fused GELU equals burn's own, forward and backward, on a tracked, non-contiguous input
    /// (a transposed view) large enough to be split over the pool.
    #[test]
    fn fused_gelu_equals_burns_forward_and_backward() {
        let device = test_device().autodiff();
        let base = Tensor::<2>::random([300, 200], Distribution::Normal(0.0, 3.0), &device);
        let upstream = Tensor::<2>::random([200, 300], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let x = base.clone().detach().require_grad();
            let view = x.clone().transpose();
            let y = if fused {
                super::gelu(view)
            } else {
                activation::gelu(view)
            };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let dx = x.grad(&grads).expect("x is tracked");
            (values(y), values(dx))
        };
        let (ours, our_grad) = run(true);
        let (theirs, their_grad) = run(false);
        assert!(
            max_diff(&ours, &theirs) <= 2e-6,
            "forward {}",
            max_diff(&ours, &theirs)
        );
        assert!(
            max_diff(&our_grad, &their_grad) <= 2e-6,
            "backward {}",
            max_diff(&our_grad, &their_grad)
        );
    }

    /// The fused log-probs equal `log_softmax` + `gather`, forward and backward, for a vocabulary
    /// that is not a multiple of the 8 lanes and rows with large, shifted logits.
    #[test]
    fn fused_logprobs_equal_log_softmax_and_gather() {
        let device = test_device().autodiff();
        let (rows, vocab) = (37, 1003);
        let base = Tensor::<2>::random([rows, vocab], Distribution::Normal(0.0, 4.0), &device)
            + Tensor::<2>::random([rows, 1], Distribution::Uniform(-50.0, 50.0), &device);
        let ids: Vec<i64> = (0..rows as i64)
            .map(|r| (r * 389 + 11) % vocab as i64)
            .collect();
        let targets = Tensor::<1, Int>::from_data(ids.as_slice(), &device);
        let upstream = Tensor::<1>::random([rows], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let logits = base.clone().detach().require_grad();
            let picked = if fused {
                super::logprobs(logits.clone(), targets.clone())
            } else {
                activation::log_softmax(logits.clone(), 1)
                    .gather(1, targets.clone().reshape([rows, 1]))
                    .reshape([rows])
            };
            let grads = (picked.clone() * upstream.clone()).sum().backward();
            (
                values(picked),
                values(logits.grad(&grads).expect("logits are tracked")),
            )
        };
        let (ours, our_grad) = run(true);
        let (theirs, their_grad) = run(false);
        // Both sides subtract a log-sum-exp near the largest logit (|x| up to ~70, one ulp
        // 7.6e-6) and sum the exponentials in a different order (lanes differ between CPU
        // kinds: 5.0e-6 apart on one CI machine): four ulps of it bound the forward, and
        // the gradient g · (δ − p), with p off by that much relatively and |g| ≲ 3, the same.
        // A wrong kernel (a missing −p term, a scale) is off by 1e-3 or more.
        let tolerance = 4.0 * 7.6e-6;
        assert!(
            max_diff(&ours, &theirs) <= tolerance,
            "forward {}",
            max_diff(&ours, &theirs)
        );
        assert!(
            max_diff(&our_grad, &their_grad) <= tolerance,
            "backward {}",
            max_diff(&our_grad, &their_grad)
        );
    }

    /// The fused self-attention equals burn's (`attention` with `is_causal` on the heads split
    /// out of the projection), output and gradient, with `T` and `d` off the 8 lanes.
    #[test]
    fn fused_self_attention_equals_burns() {
        let device = test_device().autodiff();
        let (b, h, t, d) = (3, 2, 13, 6);
        let qkv = Tensor::<3>::random([b, t, 3 * h * d], Distribution::Normal(0.0, 1.5), &device);
        let upstream = Tensor::<3>::random([b, t, h * d], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let qkv = qkv.clone().detach().require_grad();
            let out = if fused {
                super::causal_self_attention(qkv.clone(), h)
            } else {
                let heads = qkv.clone().reshape([b, t, 3 * h, d]).swap_dims(1, 2);
                let (q, k, v) = (
                    heads.clone().narrow(1, 0, h),
                    heads.clone().narrow(1, h, h),
                    heads.narrow(1, 2 * h, h),
                );
                let options = AttentionModuleOptions {
                    is_causal: true,
                    ..Default::default()
                };
                burn::tensor::module::attention(q, k, v, None, None, options)
                    .swap_dims(1, 2)
                    .reshape([b, t, h * d])
            };
            let grads = (out.clone() * upstream.clone()).sum().backward();
            (
                values(out),
                values(qkv.grad(&grads).expect("qkv is tracked")),
            )
        };
        let (ours, our_grad) = run(true);
        let (theirs, their_grad) = run(false);
        assert!(
            max_diff(&ours, &theirs) <= 1e-5,
            "output {}",
            max_diff(&ours, &theirs)
        );
        assert!(
            max_diff(&our_grad, &their_grad) <= 1e-5,
            "grad {}",
            max_diff(&our_grad, &their_grad)
        );
    }

    /// burn's composition (what libtorch runs) equals the flex kernel, forward and backward.
    #[test]
    fn composed_self_attention_equals_the_kernel() {
        use burn::backend::Flex;
        use burn::backend::flex::FlexTensor;

        let device = burn::tensor::Device::flex();
        let (b, h, t, d) = (2, 3, 9, 5);
        let draw = |shape: [usize; 3]| {
            let t = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            FlexTensor::from_data(t.into_data())
        };
        let (qkv, grad) = (draw([b, t, 3 * h * d]), draw([b, t, h * d]));
        let (out, p) = <Flex as Kernels>::fused_self_attention_forward(qkv.clone(), h);
        let (out2, p2) = composed::self_attention_forward::<Flex>(qkv.clone(), h);
        let dqkv = <Flex as Kernels>::fused_self_attention_backward(
            qkv.clone(),
            p.clone(),
            grad.clone(),
            h,
        );
        let dqkv2 = composed::self_attention_backward::<Flex>(qkv, p2.clone(), grad, h);
        let host = |t: FlexTensor| t.into_data().try_to_vec::<f32>().unwrap();
        for (ours, theirs) in [(out, out2), (p, p2), (dqkv, dqkv2)] {
            let (ours, theirs) = (host(ours), host(theirs));
            assert!(
                max_diff(&ours, &theirs) <= 1e-5,
                "{}",
                max_diff(&ours, &theirs)
            );
        }
    }

    /// The fused linear product equals burn's `linear`: output, the input's gradient and the
    /// weight's, on a 3-D input read through strides and a transposed weight (as a tied head
    /// uses it), with widths off the 8 lanes and more rows than one parallel threshold.
    #[test]
    fn fused_linear_equals_burns() {
        let device = test_device().autodiff();
        let (b, t, d_in, d_out) = (3, 70, 37, 53);
        let draw =
            |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let base = draw([t, b, d_in]);
        let weight = Tensor::<2>::random([d_out, d_in], Distribution::Normal(0.0, 0.3), &device);
        let upstream = draw([b, t, d_out]);
        let run = |fused: bool| {
            let x = base.clone().detach().require_grad();
            let w = weight.clone().detach().require_grad();
            let (view, w_t) = (x.clone().swap_dims(0, 1), w.clone().transpose());
            let y = if fused {
                super::project(view, w_t)
            } else {
                burn::tensor::module::linear(view, w_t, None)
            };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let dx = x.grad(&grads).expect("x is tracked");
            let dw = w.grad(&grads).expect("w is tracked");
            (values(y), values(dx), values(dw))
        };
        let (ours, theirs) = (run(true), run(false));
        // The weight's gradient sums 210 products per element (values ≈ 15): another order of
        // additions than burn's, so a few ulps apart.
        for (name, a, b, bound) in [
            ("output", &ours.0, &theirs.0, 1e-5),
            ("dx", &ours.1, &theirs.1, 1e-5),
            ("dw", &ours.2, &theirs.2, 5e-5),
        ] {
            assert!(max_diff(a, b) <= bound, "{name} {}", max_diff(a, b));
        }
    }

    /// The flex cached-attention kernel equals burn's composition (what libtorch runs): the
    /// output and both caches, for grouped-query heads, queries read through strides (heads
    /// swapped out of a wider projection), several new positions after cached ones, and a bias
    /// that masks padding and future positions.
    #[test]
    fn composed_cached_attention_equals_the_kernel() {
        use burn::backend::Flex;
        use burn::backend::flex::FlexTensor;

        let device = burn::tensor::Device::flex();
        let (b, h, kv, t, d, len, room) = (3, 4, 2, 3, 8, 5, 11);
        let draw =
            |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let flex = |t: Tensor<4>| FlexTensor::from_data(t.into_data());
        // Queries as a block's projection leaves them: [B, T, 2H, d] → heads first, a view.
        let query = flex(draw([b, t, 2 * h, d])).transpose(1, 2).narrow(1, h, h);
        assert!(!query.is_contiguous());
        let (key, value) = (flex(draw([b, kv, t, d])), flex(draw([b, kv, t, d])));
        let (cache_key, cache_value) = (flex(draw([b, kv, room, d])), flex(draw([b, kv, room, d])));
        let bias: Vec<f32> = (0..b * t * (len + t))
            .map(|i| {
                let (row, q, s) = (i / (t * (len + t)), i / (len + t) % t, i % (len + t));
                let visible = s >= row && s <= len + q;
                if visible {
                    0.0
                } else {
                    crate::tensors::NEG_BIAS
                }
            })
            .collect();
        let bias = FlexTensor::from_data(burn::tensor::TensorData::new(bias, [b, 1, t, len + t]));
        let ours = <Flex as Kernels>::fused_cached_attention(
            query.clone(),
            key.clone(),
            value.clone(),
            cache_key.clone(),
            cache_value.clone(),
            len,
            bias.clone(),
        );
        let theirs = composed::cached_attention::<Flex>(
            query,
            key,
            value,
            cache_key,
            cache_value,
            len,
            bias,
        );
        let host = |t: FlexTensor| t.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(host(ours.0.clone()).len(), b * t * h * d);
        for (ours, theirs) in [(ours.0, theirs.0), (ours.1, theirs.1), (ours.2, theirs.2)] {
            let (ours, theirs) = (host(ours), host(theirs));
            assert!(
                max_diff(&ours, &theirs) <= 1e-5,
                "{}",
                max_diff(&ours, &theirs)
            );
        }
    }

    /// The fused layer norm equals burn's `LayerNorm`, output and the gradients of the input, `γ`
    /// and `β`, over more rows than one task and a width off the 8 lanes.
    #[test]
    fn fused_layer_norm_equals_burns() {
        use burn::module::Param;
        use burn::nn::LayerNormConfig;

        let device = test_device().autodiff();
        let (rows, width) = (150, 37);
        let base = Tensor::<3>::random(
            [2, rows / 2, width],
            Distribution::Normal(1.0, 2.0),
            &device,
        );
        let upstream = Tensor::<3>::random(
            [2, rows / 2, width],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let mut norm = LayerNormConfig::new(width)
            .with_epsilon(super::LAYER_NORM_EPS)
            .init(&device);
        norm.gamma = Param::from_tensor(Tensor::random(
            [width],
            Distribution::Normal(1.0, 0.5),
            &device,
        ));
        norm.beta = Some(Param::from_tensor(Tensor::random(
            [width],
            Distribution::Normal(0.0, 0.5),
            &device,
        )));
        let run = |fused: bool| {
            let x = base.clone().detach().require_grad();
            let y = if fused {
                super::layer_norm(&norm, x.clone())
            } else {
                norm.forward(x.clone())
            };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let beta = norm.beta.as_ref().unwrap();
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(norm.gamma.val().grad(&grads).unwrap()),
                values(beta.val().grad(&grads).unwrap()),
            )
        };
        let ours = run(true);
        let theirs = run(false);
        // dγ and dβ are sums over 150 rows: another summation order, a few ulps of ≈ 10 apart.
        let checks = [
            ("y", &ours.0, &theirs.0, 1e-5),
            ("dx", &ours.1, &theirs.1, 1e-5),
            ("dγ", &ours.2, &theirs.2, 5e-5),
            ("dβ", &ours.3, &theirs.3, 5e-5),
        ];
        for (name, a, b, tolerance) in checks {
            assert!(max_diff(a, b) <= tolerance, "{name}: {}", max_diff(a, b));
        }
    }
}
