//! Rotary position embeddings in Hugging Face's rotate-half layout.
//!
//! burn's `RotaryEncoding` rotates interleaved pairs `(x0, x1), (x2, x3), …`; Llama and Qwen
//! checkpoints rotate `(x_i, x_{i + d/2})`. Using burn's would force a permutation of the q/k
//! weights on every load and its inverse on every save, so the rotation is written here. The
//! inverse frequencies are computed on the host exactly as transformers does (f32, with Llama-3
//! band scaling); the angles come from each row's own position ids, so left-padded rows and
//! KV-cache steps rotate by their true positions.
use burn::tensor::{Int, Tensor, TensorData};

use super::arch::HfArch;

/// `1 / theta^(2i / d)` for `i < d / 2`, with Llama-3 scaling applied.
pub(crate) fn inv_freq(arch: &HfArch) -> Vec<f32> {
    let dim = arch.head_dim;
    let base = arch.rope_theta as f32;
    let plain: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
        .collect();
    let Some(s) = &arch.rope_scaling else {
        return plain;
    };
    let (factor, low, high) = (
        s.factor as f32,
        s.low_freq_factor as f32,
        s.high_freq_factor as f32,
    );
    let old = s.original_max_position_embeddings as f32;
    let low_freq_wavelen = old / low;
    let high_freq_wavelen = old / high;
    plain
        .into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f32::consts::PI / f;
            if wavelen < high_freq_wavelen {
                f
            } else if wavelen > low_freq_wavelen {
                f / factor
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            }
        })
        .collect()
}

/// The cos/sin tables of one forward pass, `[B, 1, T, head_dim]`, shared by every layer.
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl Rope {
    /// Tables for position ids `[B, T]` (`B` may be 1 to broadcast over the batch).
    pub(crate) fn new(inv_freq: &[f32], positions: Tensor<2, Int>) -> Self {
        let device = positions.device();
        let half = inv_freq.len();
        let freqs: Tensor<3> =
            Tensor::from_data(TensorData::new(inv_freq.to_vec(), [1, 1, half]), &device);
        let angles = positions.float().unsqueeze_dim::<3>(2) * freqs; // [B, T, d/2]
        let angles = Tensor::cat(vec![angles.clone(), angles], 2).unsqueeze_dim::<4>(1);
        Self {
            cos: angles.clone().cos(),
            sin: angles.sin(),
        }
    }

    /// Rotates queries or keys `[B, H, T, head_dim]`.
    pub(crate) fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let half = x.dims()[3] / 2;
        let first = x.clone().narrow(3, 0, half);
        let second = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf::arch::{HfFamily, Llama3Scaling};

    fn arch(scaling: Option<Llama3Scaling>) -> HfArch {
        HfArch {
            family: HfFamily::Llama,
            n_kv_heads: 1,
            head_dim: 16,
            rms_norm_eps: 1e-5,
            rope_theta: 500.0,
            rope_scaling: scaling,
            qkv_bias: false,
            o_bias: false,
            qk_norm: false,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
        }
    }

    #[test]
    fn llama3_scaling_keeps_high_divides_low_and_blends_the_middle() {
        let plain = inv_freq(&arch(None));
        let scaled = inv_freq(&arch(Some(Llama3Scaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64,
        })));
        assert_eq!(plain.len(), 8);
        assert_eq!(plain[0], 1.0);
        let (mut kept, mut divided, mut blended) = (0, 0, 0);
        for (p, s) in plain.iter().zip(&scaled) {
            if p == s {
                kept += 1;
            } else if (p / 8.0 - s).abs() < 1e-9 {
                divided += 1;
            } else {
                assert!(s < p && *s > p / 8.0);
                blended += 1;
            }
        }
        assert!(
            kept > 0 && divided > 0 && blended > 0,
            "{plain:?} {scaled:?}"
        );
    }
}
