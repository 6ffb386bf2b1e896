//! The fused ops under autodiff: the forward runs the inner backend's kernel, the backward its
//! fused gradient — one node in the graph where burn's composition records several.
use burn::backend::Autodiff;
use burn::backend::Backend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::{FloatTensor, IntTensor};

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

/// Attention's backward keeps its inputs and the attention weights `P`.
#[derive(Debug)]
struct CausalAttentionBackward;

impl<B: Backend + Kernels> Backward<B, 3> for CausalAttentionBackward {
    type State = [FloatTensor<B>; 4];

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q, k, v, p] = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (dq, dk, dv) = B::fused_causal_attention_backward(q, k, v, p, grad);
        for (parent, grad) in ops.parents.into_iter().zip([dq, dk, dv]) {
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

    fn fused_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [q.node(), k.node(), v.node()];
        match CausalAttentionBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let [q, k, v] = [q, k, v].map(|t| t.into_primitive());
                let (out, p) = B::fused_causal_attention_forward(q.clone(), k.clone(), v.clone());
                prep.finish([q, k, v, p], out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_causal_attention(
                q.into_primitive(),
                k.into_primitive(),
                v.into_primitive(),
            )),
        }
    }
}
