//! One Llama/Qwen decoder layer: `x + attn(rms(x))`, then `x + mlp(rms(x))` with a SwiGLU MLP.
use burn::module::Module;
use burn::nn::{Linear, RmsNorm};
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use super::attention::HfAttention;
use super::rope::Rope;
use crate::kernels::linear;
use crate::transformer::Visibility;

/// `down_proj(silu(gate_proj(x)) * up_proj(x))`.
#[derive(Module, Debug)]
pub struct HfMlp {
    pub(crate) gate_proj: Linear,
    pub(crate) up_proj: Linear,
    pub(crate) down_proj: Linear,
}

impl HfMlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(linear(&self.gate_proj, x.clone()));
        linear(&self.down_proj, gate * linear(&self.up_proj, x))
    }
}

/// A pre-norm decoder layer with HF's parameter names.
#[derive(Module, Debug)]
pub struct HfDecoderLayer {
    pub(crate) self_attn: HfAttention,
    pub(crate) mlp: HfMlp,
    pub(crate) input_layernorm: RmsNorm,
    pub(crate) post_attention_layernorm: RmsNorm,
}

impl HfDecoderLayer {
    /// # Shapes
    /// - x: `[B, T, hidden]` → `[B, T, hidden]` (see [`Visibility`])
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        visibility: Visibility<'_>,
    ) -> Tensor<3> {
        let attended =
            self.self_attn
                .forward(self.input_layernorm.forward(x.clone()), rope, visibility);
        let x = x + attended;
        let out = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        x + out
    }
}
