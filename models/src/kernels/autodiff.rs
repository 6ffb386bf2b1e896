//! The fused ops under autodiff: the forward runs the inner backend's kernel, the backward its
//! fused gradient — one node in the graph where burn's composition records several.
use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{AutodiffBackend, Backend};

use super::Kernels;

/// GELU's backward keeps the input: the gradient is a function of it.
#[derive(Debug)]
struct GeluBackward;

impl<B: Backend + Kernels> Backward<B, 1> for GeluBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let input = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_gelu_backward(input, grad)
        });
    }
}

/// The log-probs' backward keeps the logits and the targets (the targets carry no gradient).
#[derive(Debug)]
struct LogprobsBackward;

impl<B: Backend + Kernels> Backward<B, 1> for LogprobsBackward {
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, targets) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_logprobs_backward(logits, targets, grad)
        });
    }
}

/// Attention's backward keeps the projection's output, the attention weights `P` and the
/// number of heads.
#[derive(Debug)]
struct SelfAttentionBackward;

impl<B: Backend + Kernels> Backward<B, 1> for SelfAttentionBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (qkv, p, heads) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_self_attention_backward(qkv, p, grad, heads)
        });
    }
}

/// A linear product's backward keeps the input and the weight (each the other's gradient
/// needs).
#[derive(Debug)]
struct LinearBackward;

impl<B: Backend + Kernels> Backward<B, 2> for LinearBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, weight) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let [node_x, node_weight] = ops.parents;
        if let Some(node) = node_weight {
            let dw = B::fused_linear_backward_weight(x, grad.clone());
            grads.register::<B>(node.id, dw);
        }
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::fused_linear_backward_x(weight, grad));
        }
    }
}

/// Layer norm's backward keeps the input, `γ` and `ε`.
#[derive(Debug)]
struct LayerNormBackward;

impl<B: Backend + Kernels> Backward<B, 3> for LayerNormBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, gamma, eps) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (dx, dgamma, dbeta) = B::fused_layer_norm_backward(x, gamma, grad, eps);
        for (parent, grad) in ops.parents.into_iter().zip([dx, dgamma, dbeta]) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: Backend + Kernels, C: CheckpointStrategy> Kernels for Autodiff<B, C> {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = x.into_primitive();
                prep.finish(input.clone(), B::fused_gelu(input))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_gelu(x.into_primitive())),
        }
    }

    fn fused_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        match LogprobsBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = logits.into_primitive();
                let output = B::fused_logprobs(input.clone(), targets.clone());
                prep.finish((input, targets), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fused_logprobs(logits.into_primitive(), targets))
            }
        }
    }

    fn fused_self_attention(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        match SelfAttentionBackward
            .prepare::<C>([qkv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let qkv = qkv.into_primitive();
                let (out, p) = B::fused_self_attention_forward(qkv.clone(), heads);
                prep.finish((qkv, p, heads), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fused_self_attention(qkv.into_primitive(), heads))
            }
        }
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        match LayerNormBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let [x, gamma, beta] = [x, gamma, beta].map(|t| t.into_primitive());
                let out = B::fused_layer_norm(x.clone(), gamma.clone(), beta, eps);
                prep.finish((x, gamma, eps), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                eps,
            )),
        }
    }

    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        match LinearBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let out = B::fused_linear(x.clone(), weight.clone());
                prep.finish((x, weight), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fused_linear(x.into_primitive(), weight.into_primitive()))
            }
        }
    }

    fn fused_cached_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        cache_key: FloatTensor<Self>,
        cache_value: FloatTensor<Self>,
        len: usize,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Decoding records nothing: the inner backend's kernel on untracked tensors.
        let (out, cache_key, cache_value) = B::fused_cached_attention(
            query.into_primitive(),
            key.into_primitive(),
            value.into_primitive(),
            cache_key.into_primitive(),
            cache_value.into_primitive(),
            len,
            bias.into_primitive(),
        );
        (
            Self::from_inner(out),
            Self::from_inner(cache_key),
            Self::from_inner(cache_value),
        )
    }
}
