//! The training losses: masked cross-entropy (SFT) and the clipped surrogate of M-GRPO.
//!
//! Every loss is `Σ_{r,t} W[r,t] · ℓ[r,t]` where the per-token weights `W` are computed once on
//! the host ([`loss_weights`]) and encode padding, context masking, zero-weight alignment rows and
//! the averaging scheme. Keeping the normalisation in `W` means a batch split into micro-batches
//! sums to exactly the full-batch loss, and that the loss functions below can be tested on tiny
//! hand-written tensors.
//!
//! Surrogate (ALGORITHM.md): `ρ = exp(log πθ − log πold)`,
//! `ℓ = −min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A) + β_KL·k3(πθ‖πref)` with
//! `k3 = exp(log πref − log πθ) − (log πref − log πθ) − 1`.
use burn::tensor::Tensor;
use mgrpo_algo::TrainBatch;
use serde::{Deserialize, Serialize};

/// Log-ratios are clamped to ±this before `exp`, so a stale π_old cannot overflow to `inf`
/// (and `inf · 0` to NaN on masked tokens). `e^20 ≈ 5e8` is far outside any clip band.
const MAX_LOG_RATIO: f32 = 20.0;

/// How per-token terms are averaged into one loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Averaging {
    /// Mean over each trajectory's trained tokens, then mean over rows with weight > 0
    /// (M-GRPO's default: every trajectory counts the same whatever its length).
    #[default]
    Sequence,
    /// One mean over all trained tokens of the batch.
    Token,
}

/// Hyperparameters of the clipped surrogate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SurrogateConfig {
    /// Lower clip: ρ below `1 − eps_low` stops pushing down (for A < 0).
    pub eps_low: f32,
    /// Upper clip: ρ above `1 + eps_high` stops pushing up (for A > 0).
    pub eps_high: f32,
    /// Sequence- or token-level averaging.
    pub averaging: Averaging,
    /// β_KL: weight of the k3 KL penalty to the frozen reference policy (0 disables it).
    pub kl_coef: f32,
    /// The temperature the rollouts were sampled at: π_θ (and the reference) are computed as
    /// `softmax(logits / temperature)`, the distribution the tokens and their π_old came from.
    pub temperature: f32,
}

impl Default for SurrogateConfig {
    fn default() -> Self {
        Self {
            eps_low: 0.2,
            eps_high: 0.28,
            averaging: Averaging::Sequence,
            kl_coef: 0.0,
            temperature: 1.0,
        }
    }
}

/// Per-token loss weights `W` (`rows · seq_len`, row-major) such that the loss is `Σ W·ℓ`.
///
/// - Token averaging: `W = w_r·m_rt / Σ w·m`.
/// - Sequence averaging: `W = (w_r / Σ_{r'} w_{r'}) · (m_rt / Σ_t m_rt)` over rows that have at
///   least one trained token.
///
/// `m` is `loss_mask` with position 0 dropped (it has no prefix to predict it from), `w` is
/// `row_weights`. All zeros when nothing is trained.
pub fn loss_weights(batch: &TrainBatch, averaging: Averaging) -> Vec<f32> {
    let seq = batch.seq_len;
    let mask: Vec<f32> = batch
        .loss_mask
        .iter()
        .enumerate()
        .map(|(i, &m)| if seq > 0 && i % seq == 0 { 0.0 } else { m })
        .collect();
    let mut weights = vec![0.0f32; batch.rows * seq];
    if seq == 0 {
        return weights;
    }
    match averaging {
        Averaging::Token => {
            let total: f64 = (0..batch.rows)
                .map(|r| {
                    batch.row_weights[r] as f64
                        * mask[r * seq..(r + 1) * seq]
                            .iter()
                            .map(|&m| m as f64)
                            .sum::<f64>()
                })
                .sum();
            if total > 0.0 {
                for r in 0..batch.rows {
                    for t in 0..seq {
                        let i = r * seq + t;
                        weights[i] = (batch.row_weights[r] as f64 * mask[i] as f64 / total) as f32;
                    }
                }
            }
        }
        Averaging::Sequence => {
            let row_mass: Vec<f64> = (0..batch.rows)
                .map(|r| mask[r * seq..(r + 1) * seq].iter().map(|&m| m as f64).sum())
                .collect();
            let total_rows: f64 = (0..batch.rows)
                .filter(|&r| row_mass[r] > 0.0)
                .map(|r| batch.row_weights[r] as f64)
                .sum();
            if total_rows > 0.0 {
                for r in (0..batch.rows).filter(|&r| row_mass[r] > 0.0) {
                    let row_share = batch.row_weights[r] as f64 / total_rows;
                    for t in 0..seq {
                        let i = r * seq + t;
                        weights[i] = (row_share * mask[i] as f64 / row_mass[r]) as f32;
                    }
                }
            }
        }
    }
    weights
}

/// SFT loss: weighted negative log-likelihood `−Σ W·log π`.
///
/// # Shapes
/// - logprobs, weights: `[B, T]` → `[1]`
pub fn sft_loss(logprobs: Tensor<2>, weights: Tensor<2>) -> Tensor<1> {
    (logprobs * weights).sum().neg()
}

/// The inputs of the surrogate besides the current log-probs, all `[B, T]`.
#[derive(Debug, Clone)]
pub struct SurrogateInputs {
    /// Sampling-time log-probs π_old.
    pub old_logprobs: Tensor<2>,
    /// Per-token advantages.
    pub advantages: Tensor<2>,
    /// 1 where a token is trained, 0 elsewhere (keeps masked log-ratios at 0).
    pub mask: Tensor<2>,
    /// Loss weights from [`loss_weights`].
    pub weights: Tensor<2>,
    /// Reference-policy log-probs, required when `kl_coef > 0`.
    pub ref_logprobs: Option<Tensor<2>>,
}

/// Clipped-surrogate loss (plus the optional k3 KL penalty) of `logprobs` (`[B, T]`, π_θ).
///
/// The gradient w.r.t. `logprobs[t]` is `−W·A·ρ` inside the clip band and 0 where the clip is
/// active (A > 0 with ρ > 1+ε_high, or A < 0 with ρ < 1−ε_low).
///
/// # Shapes
/// - logprobs and every input: `[B, T]` → `[1]`
pub fn surrogate_loss(
    logprobs: Tensor<2>,
    inputs: SurrogateInputs,
    config: &SurrogateConfig,
) -> Tensor<1> {
    let log_ratio = ((logprobs.clone() - inputs.old_logprobs) * inputs.mask.clone())
        .clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO);
    let ratio = log_ratio.exp();
    let unclipped = ratio.clone() * inputs.advantages.clone();
    let clipped = ratio.clamp(1.0 - config.eps_low, 1.0 + config.eps_high) * inputs.advantages;
    let objective = unclipped.min_pair(clipped);
    let mut loss = (objective * inputs.weights.clone()).sum().neg();
    if config.kl_coef > 0.0
        && let Some(ref_logprobs) = inputs.ref_logprobs
    {
        let delta = ((ref_logprobs - logprobs) * inputs.mask).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO);
        let k3 = delta.clone().exp() - delta - 1.0;
        loss = loss + (k3 * inputs.weights).sum().mul_scalar(config.kl_coef);
    }
    loss
}

/// Host-side diagnostics of a surrogate step, over trained tokens (mask > 0, row weight > 0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RatioStats {
    /// Fraction of trained tokens whose clip is active.
    pub(crate) clip_fraction: f32,
    /// Mean k3 estimate of KL(π_old ‖ π_θ): `(ρ − 1) − ln ρ`.
    pub(crate) approx_kl: f32,
    /// Number of trained tokens.
    pub(crate) tokens: usize,
}

/// Sums over trained tokens: `(clipped count, Σ k3)`, from host copies of the current
/// log-probs, π_old and advantages at the same positions.
pub(crate) fn ratio_stats(
    logprobs: &[f32],
    old_logprobs: &[f32],
    advantages: &[f32],
    config: &SurrogateConfig,
) -> (f64, f64) {
    let (mut clipped, mut kl) = (0f64, 0f64);
    for ((&lp, &old), &adv) in logprobs.iter().zip(old_logprobs).zip(advantages) {
        let log_ratio = ((lp - old) as f64).clamp(-(MAX_LOG_RATIO as f64), MAX_LOG_RATIO as f64);
        let ratio = log_ratio.exp();
        let adv = adv as f64;
        if (adv > 0.0 && ratio > 1.0 + config.eps_high as f64)
            || (adv < 0.0 && ratio < 1.0 - config.eps_low as f64)
        {
            clipped += 1.0;
        }
        kl += (ratio - 1.0) - log_ratio;
    }
    (clipped, kl)
}

impl RatioStats {
    pub(crate) fn from_sums(tokens: usize, clipped: f64, kl: f64) -> Self {
        let n = tokens.max(1) as f64;
        Self {
            clip_fraction: (clipped / n) as f32,
            approx_kl: (kl / n) as f32,
            tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSpec;
    use crate::tensors::{float_tensor, read_f32};
    use burn::tensor::Device;

    fn device() -> Device {
        DeviceSpec::from_env()
            .unwrap()
            .to_device()
            .unwrap()
            .autodiff()
    }

    fn batch(rows: usize, seq: usize, mask: Vec<f32>, row_weights: Vec<f32>) -> TrainBatch {
        TrainBatch {
            rows,
            seq_len: seq,
            pad_id: 0,
            tokens: vec![1; rows * seq],
            loss_mask: mask,
            advantages: vec![0.0; rows * seq],
            old_logprobs: vec![0.0; rows * seq],
            row_weights,
        }
    }

    #[test]
    fn sequence_and_token_weights() {
        // Row 0: 1 trained token, row 1: 3 trained tokens, row 2: padding row (weight 0).
        let b = batch(
            3,
            4,
            vec![0., 1., 0., 0., 0., 1., 1., 1., 0., 1., 1., 0.],
            vec![1.0, 1.0, 0.0],
        );
        let seq = loss_weights(&b, Averaging::Sequence);
        assert_eq!(seq[1], 0.5);
        for w in &seq[5..8] {
            assert!((w - 1.0 / 6.0).abs() < 1e-7);
        }
        assert!(seq[8..].iter().all(|&w| w == 0.0));
        assert!((seq.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // Position 0 has no prefix: a mask there is ignored.
        let mut first = b.clone();
        first.loss_mask[0] = 1.0;
        assert_eq!(loss_weights(&first, Averaging::Sequence), seq);
        let tok = loss_weights(&b, Averaging::Token);
        assert!(
            tok.iter()
                .zip(&b.loss_mask)
                .all(|(&w, &m)| w == if m > 0.0 && w > 0.0 { 0.25 } else { 0.0 })
        );
        assert!((tok.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // Nothing trained: all zeros, no NaN.
        let empty = batch(1, 2, vec![0.0, 0.0], vec![1.0]);
        assert_eq!(loss_weights(&empty, Averaging::Sequence), vec![0.0, 0.0]);
        assert_eq!(loss_weights(&empty, Averaging::Token), vec![0.0, 0.0]);
    }

    /// Runs the surrogate on one row of hand-picked values; returns (loss, d loss / d logprobs).
    fn surrogate_case(
        new: &[f32],
        old: &[f32],
        adv: &[f32],
        weights: &[f32],
        config: &SurrogateConfig,
        reference: Option<&[f32]>,
    ) -> (f32, Vec<f32>) {
        let d = device();
        let n = new.len();
        let logprobs = float_tensor(new.to_vec(), [1, n], &d).require_grad();
        let inputs = SurrogateInputs {
            old_logprobs: float_tensor(old.to_vec(), [1, n], &d),
            advantages: float_tensor(adv.to_vec(), [1, n], &d),
            mask: float_tensor(
                weights
                    .iter()
                    .map(|&w| if w > 0.0 { 1.0 } else { 0.0 })
                    .collect(),
                [1, n],
                &d,
            ),
            weights: float_tensor(weights.to_vec(), [1, n], &d),
            ref_logprobs: reference.map(|r| float_tensor(r.to_vec(), [1, n], &d)),
        };
        let loss = surrogate_loss(logprobs.clone(), inputs, config);
        let grads = loss.backward();
        let grad = read_f32(logprobs.grad(&grads).unwrap()).unwrap();
        (read_f32(loss.inner()).unwrap()[0], grad)
    }

    #[test]
    fn surrogate_value_and_gradient_match_hand_computation() {
        let config = SurrogateConfig::default();
        let ln = |x: f32| x.ln();
        // Token 0: A>0, ρ=1.1 (inside)   → ℓ = −1.1·2,      dℓ = −2·1.1
        // Token 1: A>0, ρ=1.5 (clipped)  → ℓ = −1.28·2,     dℓ = 0
        // Token 2: A<0, ρ=0.5 (clipped)  → ℓ = −(0.8·−1),   dℓ = 0
        // Token 3: A<0, ρ=0.9 (inside)   → ℓ = −(0.9·−1),   dℓ = +1·0.9
        // Token 4: A<0, ρ=1.5 (unclipped side wins: min(−1.5, −1.28) = −1.5) → dℓ = 1.5
        // Token 5: masked (weight 0), huge ratio: no contribution, no NaN.
        let new = [ln(1.1), ln(1.5), ln(0.5), ln(0.9), ln(1.5), 0.0];
        let old = [0.0, 0.0, 0.0, 0.0, 0.0, -200.0];
        let adv = [2.0, 2.0, -1.0, -1.0, -1.0, 5.0];
        let w = [0.2, 0.2, 0.2, 0.2, 0.2, 0.0];
        let (loss, grad) = surrogate_case(&new, &old, &adv, &w, &config, None);
        let expected_loss = 0.2 * (-2.2 - 2.56 + 0.8 + 0.9 + 1.5);
        assert!(
            (loss - expected_loss).abs() < 1e-5,
            "{loss} vs {expected_loss}"
        );
        let expected_grad = [0.2 * -2.0 * 1.1, 0.0, 0.0, 0.2 * 0.9, 0.2 * 1.5, 0.0];
        for (g, e) in grad.iter().zip(expected_grad) {
            assert!((g - e).abs() < 1e-5, "{grad:?} vs {expected_grad:?}");
        }
    }

    #[test]
    fn kl_penalty_is_k3_with_its_gradient() {
        let config = SurrogateConfig {
            kl_coef: 0.5,
            ..SurrogateConfig::default()
        };
        // A = 0, so only the KL term acts. δ = ref − new = 0.3.
        let (loss, grad) = surrogate_case(&[-1.0], &[-1.0], &[0.0], &[1.0], &config, Some(&[-0.7]));
        let delta = 0.3f32;
        assert!((loss - 0.5 * (delta.exp() - delta - 1.0)).abs() < 1e-6);
        // d/dnew [e^δ − δ − 1] = −e^δ + 1.
        assert!((grad[0] - 0.5 * (1.0 - delta.exp())).abs() < 1e-6);
    }

    #[test]
    fn sft_loss_is_weighted_nll() {
        let d = device();
        let lp = float_tensor(vec![-1.0, -2.0, -3.0, -4.0], [2, 2], &d).require_grad();
        let w = float_tensor(vec![0.0, 0.5, 0.5, 0.0], [2, 2], &d);
        let loss = sft_loss(lp.clone(), w);
        let grads = loss.backward();
        assert!((read_f32(loss.inner()).unwrap()[0] - 2.5).abs() < 1e-6);
        assert_eq!(
            read_f32(lp.grad(&grads).unwrap()).unwrap(),
            vec![0.0, -0.5, -0.5, 0.0]
        );
    }

    #[test]
    fn ratio_stats_count_clips_and_kl() {
        let new = [0.5f32.ln(), 0.5f32.ln()];
        let (clipped, kl) =
            ratio_stats(&new, &[0.0, 0.0], &[1.0, -1.0], &SurrogateConfig::default());
        assert_eq!(clipped, 1.0); // token 1: A<0, ρ=0.5 < 0.8; token 0: A>0, ρ<1 is not clipped
        let per = (0.5 - 1.0) - 0.5f64.ln();
        assert!((kl - 2.0 * per).abs() < 1e-6);
        let stats = RatioStats::from_sums(2, clipped, kl);
        assert_eq!(stats.clip_fraction, 0.5);
    }
}
