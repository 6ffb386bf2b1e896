//! [`Learner`]: a policy on an autodiff device plus its AdamW state.
//!
//! One call is one optimiser update on one batch; μ epochs over a batch are the caller's loop.
//! The batch's rows are ordered by length and split into chunks, each padded only to its own
//! longest trained position (a causal model's log-prob at `t` never sees what follows, so the
//! cut is exact); `shards` chunks run their forward and backward at once on rayon's pool (each
//! on a fork of the model: its own autodiff graph) and their gradients are summed in chunk
//! order. The loss normalisation is global (see [`crate::loss`]), so the update equals the
//! full-batch one; the chunking depends only on the batch and the settings, never on the
//! machine, so a run's numbers do not depend on where it runs. `micro_batch_rows` bounds the
//! rows of a chunk (activation memory).
//!
//! Identical rows (same tokens, π_old and advantages — trajectory alignment's duplicated
//! sub-agent calls, or K rollouts that came out the same) are computed once with their loss
//! weights summed, which is the same loss: `Σ_r w_r·ℓ = (Σ_r w_r)·ℓ` when every `ℓ` is equal.
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Bytes, Device, Tensor};
use mgrpo_algo::TrainBatch;
use serde::{Deserialize, Serialize};

use crate::config::PolicyConfig;
use crate::error::{ModelError, Result};
use crate::lora::LoraSettings;
use crate::loss::{
    Averaging, RatioStats, SurrogateConfig, SurrogateInputs, loss_weights, ratio_stats, sft_loss,
    surrogate_loss,
};
use crate::policy::{Policy, selected_logprobs};
use crate::tensors::{check_batch, float_tensor, read_f32};
use crate::transformer::PolicyModel;

/// Optimiser settings (ALGORITHM.md: Adam β = (0.9, 0.98), weight decay 0.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LearnerConfig {
    /// Learning rate.
    pub lr: f64,
    /// Adam β₁.
    pub beta1: f32,
    /// Adam β₂.
    pub beta2: f32,
    /// Adam ε.
    pub epsilon: f32,
    /// Decoupled (AdamW) weight decay.
    pub weight_decay: f32,
    /// Clip the global gradient L2 norm to this value (`None`: no clipping).
    pub grad_clip_norm: Option<f32>,
    /// Most rows per chunk; 0: no bound beyond `shards`.
    pub micro_batch_rows: usize,
    /// Chunks whose forward and backward run in parallel (both cores busy on a 2-core host:
    /// the flex backend runs element-wise ops on the calling thread). A setting, not the
    /// machine's core count, so results do not depend on the machine.
    pub shards: usize,
    /// Train low-rank adapters of the projections instead of every weight (`None`: full
    /// fine-tuning).
    pub lora: Option<LoraSettings>,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.98,
            epsilon: 1e-8,
            weight_decay: 0.1,
            grad_clip_norm: Some(1.0),
            micro_batch_rows: 0,
            shards: 2,
            lora: None,
        }
    }
}

/// Diagnostics of one surrogate update, measured before the update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// The loss value.
    pub loss: f32,
    /// Fraction of trained tokens whose clip was active.
    pub clip_fraction: f32,
    /// Mean k3 estimate of KL(π_old ‖ π_θ) over trained tokens.
    pub approx_kl: f32,
    /// Mean k3 estimate of KL(π_θ ‖ π_ref) to the KL anchor over trained tokens (0 without
    /// one), before the update.
    pub ref_kl: f32,
    /// Number of trained tokens (mask > 0 in rows of weight > 0).
    pub tokens: usize,
    /// Global gradient L2 norm before clipping.
    pub grad_norm: f32,
}

/// `Σ exp(δ) − δ − 1` over `δ = ref − current` (the k3 terms of the KL anchor).
fn k3_sum(reference: &[f32], current: &[f32]) -> f64 {
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let d = f64::from(r - c).clamp(-20.0, 20.0);
            d.exp() - d - 1.0
        })
        .sum()
}

/// A trainable policy: model on an autodiff device + AdamW state.
pub struct Learner {
    config: PolicyConfig,
    model: PolicyModel,
    optimizer: ModuleOptimizer,
    settings: LearnerConfig,
    device: Device,
    reference: Option<Policy>,
    updates: u64,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("config", &self.config)
            .field("settings", &self.settings)
            .field("updates", &self.updates)
            .finish_non_exhaustive()
    }
}

impl Learner {
    /// A learner over a freshly initialised model on `device` (autodiff is added here).
    pub fn new(config: PolicyConfig, device: &Device, settings: LearnerConfig) -> Result<Self> {
        let policy = Policy::new(config, device)?;
        Self::from_policy(policy, settings)
    }

    /// A learner that starts from `policy`'s weights (e.g. a warm-start checkpoint).
    pub fn from_policy(policy: Policy, settings: LearnerConfig) -> Result<Self> {
        if !(settings.lr.is_finite() && settings.lr > 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "learning rate {} must be positive",
                settings.lr
            )));
        }
        let (config, model, device) = policy.into_parts();
        let device = device.autodiff();
        let mut model = model.to_device(&device).train();
        if let Some(lora) = &settings.lora {
            model = lora.apply(model, &device)?;
        }
        Self::assemble(config, model, device, settings)
    }

    /// A LoRA learner restored from [`Learner::lora_state`] (base weights and adapter factors,
    /// unmerged), so that training continues exactly where it stopped.
    pub fn from_lora_state(
        config: PolicyConfig,
        state: &[u8],
        device: &Device,
        settings: LearnerConfig,
    ) -> Result<Self> {
        let lora = settings
            .lora
            .clone()
            .ok_or_else(|| ModelError::InvalidConfig("a LoRA state needs LoRA settings".into()))?;
        let device = device.clone().inner().autodiff();
        let skeleton = lora.apply(PolicyModel::init_zeros(&config, &device)?.train(), &device)?;
        let model = crate::checkpoint::load_record_bytes(skeleton, state)?;
        Self::assemble(config, model, device, settings)
    }

    /// The unmerged base weights and adapter factors of a LoRA learner (`None` without LoRA).
    pub fn lora_state(&self) -> Result<Option<Vec<u8>>> {
        if self.settings.lora.is_none() {
            return Ok(None);
        }
        Ok(Some(crate::checkpoint::record_bytes(&self.model)?.to_vec()))
    }

    fn assemble(
        config: PolicyConfig,
        model: PolicyModel,
        device: Device,
        settings: LearnerConfig,
    ) -> Result<Self> {
        let optimizer = AdamWConfig::new()
            .with_beta_1(settings.beta1)
            .with_beta_2(settings.beta2)
            .with_epsilon(settings.epsilon)
            .with_weight_decay(settings.weight_decay)
            .init();
        Ok(Self {
            config,
            model,
            optimizer,
            settings,
            device,
            reference: None,
            updates: 0,
        })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The optimiser settings.
    pub fn settings(&self) -> &LearnerConfig {
        &self.settings
    }

    /// Changes the learning rate of the following updates.
    pub fn set_lr(&mut self, lr: f64) {
        self.settings.lr = lr;
    }

    /// Number of optimiser updates taken.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// An inference snapshot of the current weights (no autodiff; cheap, shares nothing
    /// mutable with the learner).
    pub fn policy(&self) -> Policy {
        let device = self.device.clone().inner();
        if self.settings.lora.is_some() {
            // Adapters merged into plain weights: inference, checkpoints and exports see one
            // ordinary model.
            let merged = self.model.clone().materialize();
            return Policy::from_model(self.config.clone(), &merged, &device);
        }
        Policy::from_model(self.config.clone(), &self.model, &device)
    }

    /// Sets (or clears) the frozen reference policy of the KL penalty.
    pub fn set_reference(&mut self, reference: Option<Policy>) -> Result<()> {
        if let Some(reference) = &reference
            && reference.config().vocab_size != self.config.vocab_size
        {
            return Err(ModelError::InvalidInput(format!(
                "reference vocabulary {} differs from the learner's {}",
                reference.config().vocab_size,
                self.config.vocab_size
            )));
        }
        self.reference = reference;
        Ok(())
    }

    /// The AdamW state (moments and step counts, keyed by parameter id) as bytes, to resume
    /// training later from a checkpoint of the same weights.
    pub fn optimizer_state(&self) -> Result<Vec<u8>> {
        let bytes = self
            .optimizer
            .into_bytes()
            .map_err(|e| ModelError::Checkpoint(format!("encoding optimizer state: {e}")))?;
        Ok(bytes.to_vec())
    }

    /// Restores [`Learner::optimizer_state`] output; on error the current state is kept.
    pub fn load_optimizer_state(&mut self, bytes: &[u8]) -> Result<()> {
        let restored = self
            .optimizer
            .clone()
            .from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| ModelError::Checkpoint(format!("decoding optimizer state: {e}")))?;
        self.optimizer = restored;
        Ok(())
    }

    /// One SFT update (masked cross-entropy, mean over trained tokens); returns the loss
    /// before the update. A batch with no trained token returns 0 and changes nothing.
    pub fn sft_step(&mut self, batch: &TrainBatch) -> Result<f32> {
        check_batch(batch, self.config.vocab_size, self.config.max_seq_len)?;
        let weights = loss_weights(batch, Averaging::Token);
        let chunks = self.chunks(batch, &weights);
        let (grads, losses) = self.gradients(&chunks, |model, chunk| {
            let logprobs = chunk.logprobs(model, batch, 1.0, &self.device);
            let loss = sft_loss(logprobs, chunk.weights(&self.device));
            let value = read_f32(loss.clone())?[0];
            Ok((loss, value))
        })?;
        if let Some(grads) = grads {
            self.apply(grads)?;
        }
        Ok(losses.iter().sum())
    }

    /// The SFT loss of `batch` under the current weights, without updating.
    pub fn sft_loss(&self, batch: &TrainBatch) -> Result<f32> {
        let policy = self.policy();
        let logprobs = policy.score_batch(batch)?;
        let weights = loss_weights(batch, Averaging::Token);
        Ok(-logprobs
            .iter()
            .zip(&weights)
            .map(|(&lp, &w)| lp * w)
            .sum::<f32>())
    }

    /// One clipped-surrogate update on `batch` (advantages and π_old taken from it).
    pub fn surrogate_step(
        &mut self,
        batch: &TrainBatch,
        config: &SurrogateConfig,
    ) -> Result<StepStats> {
        check_batch(batch, self.config.vocab_size, self.config.max_seq_len)?;
        let ref_logprobs = if config.kl_coef > 0.0 {
            let reference = self.reference.as_ref().ok_or_else(|| {
                ModelError::InvalidInput(
                    "kl_coef > 0 needs a reference policy (Learner::set_reference)".into(),
                )
            })?;
            Some(reference.score_batch_at(batch, config.temperature)?)
        } else {
            None
        };
        let weights = loss_weights(batch, config.averaging);
        let chunks = self.chunks(batch, &weights);
        let (grads, parts) = self.gradients(&chunks, |model, chunk| {
            let logprobs = chunk.logprobs(model, batch, config.temperature, &self.device);
            let n = chunk.sources.len();
            let inputs = SurrogateInputs {
                old_logprobs: chunk.gather(&batch.old_logprobs, &self.device),
                advantages: chunk.gather(&batch.advantages, &self.device),
                mask: float_tensor(vec![1.0; n], [1, n], &self.device),
                weights: chunk.weights(&self.device),
                ref_logprobs: ref_logprobs.as_ref().map(|r| chunk.gather(r, &self.device)),
            };
            let loss = surrogate_loss(logprobs.clone(), inputs, config);
            // Diagnostics over every trained token, a merged row counted as often as it occurs.
            let values = chunk.expand(&read_f32(logprobs.detach())?);
            let (c, k) = ratio_stats(
                &values,
                &chunk.expand(&chunk.host(&batch.old_logprobs)),
                &chunk.expand(&chunk.host(&batch.advantages)),
                config,
            );
            // The anchor's k3 estimate of KL(π_θ ‖ π_ref), as the loss penalises it.
            let anchored = ref_logprobs
                .as_ref()
                .map_or(0.0, |r| k3_sum(&chunk.expand(&chunk.host(r)), &values));
            let value = read_f32(loss.clone())?[0];
            Ok((loss, (value, values.len(), c, k, anchored)))
        })?;
        let Some(grads) = grads else {
            return Ok(StepStats::default());
        };
        let (mut loss_total, mut tokens, mut clipped, mut kl) = (0.0f32, 0usize, 0f64, 0f64);
        let mut ref_kl = 0f64;
        for (value, n, c, k, r) in parts {
            loss_total += value;
            tokens += n;
            clipped += c;
            kl += k;
            ref_kl += r;
        }
        let grad_norm = self.apply(grads)?;
        let stats = RatioStats::from_sums(tokens, clipped, kl);
        Ok(StepStats {
            loss: loss_total,
            clip_fraction: stats.clip_fraction,
            approx_kl: stats.approx_kl,
            ref_kl: (ref_kl / tokens.max(1) as f64) as f32,
            tokens: stats.tokens,
            grad_norm,
        })
    }

    /// The chunks of a batch: rows with a weighted position, longest first, `shards` chunks
    /// of about equal rows (at most `micro_batch_rows` each), each cut to its longest row.
    fn chunks(&self, batch: &TrainBatch, weights: &[f32]) -> Vec<Chunk> {
        let seq = batch.seq_len;
        if seq < 2 {
            return Vec::new();
        }
        // Identical rows merge into their first occurrence: weights summed, occurrences counted.
        let mut weights = weights.to_vec();
        let mut count = vec![1u32; batch.rows];
        let mut first: std::collections::HashMap<Vec<u32>, usize> = Default::default();
        for r in 0..batch.rows {
            let span = r * seq..(r + 1) * seq;
            if weights[span.clone()].iter().all(|&w| w <= 0.0) {
                continue;
            }
            let key: Vec<u32> = batch.tokens[span.clone()]
                .iter()
                .copied()
                .chain(batch.old_logprobs[span.clone()].iter().map(|x| x.to_bits()))
                .chain(batch.advantages[span.clone()].iter().map(|x| x.to_bits()))
                .collect();
            match first.get(&key) {
                Some(&f) => {
                    for t in 0..seq {
                        weights[f * seq + t] += weights[r * seq + t];
                        weights[r * seq + t] = 0.0;
                    }
                    count[f] += 1;
                }
                None => {
                    first.insert(key, r);
                }
            }
        }
        // Each row's length as training sees it: up to its last weighted position.
        let mut rows: Vec<(usize, usize)> = (0..batch.rows)
            .filter_map(|r| {
                let row = &weights[r * seq..(r + 1) * seq];
                let last = (1..seq).rev().find(|&t| row[t] > 0.0)?;
                Some((r, last + 1))
            })
            .collect();
        if rows.is_empty() {
            return Vec::new();
        }
        rows.sort_by_key(|&(r, len)| (std::cmp::Reverse(len), r));
        let mut size = rows.len().div_ceil(self.settings.shards.max(1));
        if self.settings.micro_batch_rows > 0 {
            size = size.min(self.settings.micro_batch_rows);
        }
        rows.chunks(size)
            .map(|part| {
                let len = part[0].1;
                let (mut positions, mut sources) = (Vec::new(), Vec::new());
                let (mut merged, mut counts) = (Vec::new(), Vec::new());
                for (k, &(r, _)) in part.iter().enumerate() {
                    for t in 1..len {
                        if weights[r * seq + t] > 0.0 {
                            positions.push(k * len + t);
                            sources.push(r * seq + t);
                            merged.push(weights[r * seq + t]);
                            counts.push(count[r]);
                        }
                    }
                }
                Chunk {
                    rows: part.iter().map(|&(r, _)| r).collect(),
                    len,
                    positions,
                    sources,
                    merged,
                    counts,
                }
            })
            .collect()
    }

    /// Runs `work` (a chunk's loss and what the caller keeps of it) on every chunk, `shards`
    /// at a time on rayon's pool, each on a fork of the model (its own autodiff graph), and
    /// sums the gradients in chunk order (deterministic, whatever finishes first). `None`:
    /// no chunk.
    fn gradients<T: Send>(
        &self,
        chunks: &[Chunk],
        work: impl Fn(&PolicyModel, &Chunk) -> Result<(Tensor<1>, T)> + Sync,
    ) -> Result<(Option<GradientsParams>, Vec<T>)> {
        use rayon::prelude::*;
        let mut accumulator = GradientsAccumulator::<PolicyModel>::new();
        let mut kept = Vec::with_capacity(chunks.len());
        let one = |chunk: &Chunk| -> Result<(GradientsParams, T)> {
            let model = self.model.clone().fork(&self.device);
            let (loss, value) = work(&model, chunk)?;
            Ok((GradientsParams::from_grads(loss.backward(), &model), value))
        };
        for group in chunks.chunks(self.settings.shards.max(1)) {
            let done: Vec<Result<(GradientsParams, T)>> = if group.len() == 1 {
                vec![one(&group[0])]
            } else {
                group.par_iter().map(one).collect()
            };
            for result in done {
                let (grads, value) = result?;
                accumulator.accumulate(&self.model, grads);
                kept.push(value);
            }
        }
        Ok(((!chunks.is_empty()).then(|| accumulator.grads()), kept))
    }

    /// Clips to the global norm (if configured) and takes one AdamW step; returns the norm.
    fn apply(&mut self, mut grads: GradientsParams) -> Result<f32> {
        let mut norm = SquaredNorm {
            grads: &grads,
            total: None,
        };
        self.model.visit(&mut norm);
        let grad_norm = match norm.total {
            Some(total) => read_f32(total)?[0].sqrt(),
            None => 0.0,
        };
        if !grad_norm.is_finite() {
            return Err(ModelError::Backend(format!(
                "non-finite gradient norm {grad_norm}; update skipped"
            )));
        }
        if let Some(max_norm) = self.settings.grad_clip_norm
            && grad_norm > max_norm
        {
            let mut scale = ScaleGrads {
                grads: &mut grads,
                scale: max_norm / grad_norm,
            };
            self.model.visit(&mut scale);
        }
        self.model = self
            .optimizer
            .step(self.settings.lr, self.model.clone(), grads);
        self.updates += 1;
        Ok(grad_norm)
    }
}

/// One chunk: batch rows (longest first), the length they are cut to, and their weighted
/// positions.
struct Chunk {
    /// Batch row indices.
    rows: Vec<usize>,
    /// Tokens kept of each row: up to the chunk's last weighted position.
    len: usize,
    /// Weighted positions, flat in the chunk's `rows.len() · len` layout.
    positions: Vec<usize>,
    /// The same positions, flat in the batch's `rows · seq_len` layout.
    sources: Vec<usize>,
    /// Loss weight at each position (summed over the rows merged into it).
    merged: Vec<f32>,
    /// How many batch rows each position stands for.
    counts: Vec<u32>,
}

impl Chunk {
    /// Current log-probs at the chunk's positions, `[1, N]`, on the learner's device.
    /// The chunk's log-probs under `softmax(logits / temperature)`.
    fn logprobs(
        &self,
        model: &PolicyModel,
        batch: &TrainBatch,
        temperature: f32,
        device: &Device,
    ) -> Tensor<2> {
        let seq = batch.seq_len;
        let tokens: Vec<u32> = self
            .rows
            .iter()
            .flat_map(|&r| batch.tokens[r * seq..r * seq + self.len].iter().copied())
            .collect();
        selected_logprobs(
            model,
            &tokens,
            self.rows.len(),
            self.len,
            &self.positions,
            temperature,
            device,
        )
    }

    /// `values` (a batch-wide `rows · seq_len` array) at the chunk's positions, on the host.
    fn host(&self, values: &[f32]) -> Vec<f32> {
        self.sources.iter().map(|&i| values[i]).collect()
    }

    /// The loss weights at the chunk's positions as a `[1, N]` tensor.
    fn weights(&self, device: &Device) -> Tensor<2> {
        float_tensor(self.merged.clone(), [1, self.merged.len()], device)
    }

    /// Per-position values repeated as often as their row occurs in the batch.
    fn expand(&self, values: &[f32]) -> Vec<f32> {
        values
            .iter()
            .zip(&self.counts)
            .flat_map(|(&v, &c)| std::iter::repeat_n(v, c as usize))
            .collect()
    }

    /// `values` at the chunk's positions as a `[1, N]` tensor.
    fn gather(&self, values: &[f32], device: &Device) -> Tensor<2> {
        let n = self.sources.len();
        float_tensor(self.host(values), [1, n], device)
    }
}

/// Sums the squared entries of every parameter's gradient (stays on the device).
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

/// Multiplies every parameter's gradient by `scale`.
struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    scale: f32,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad.mul_scalar(self.scale));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::SampleOptions;
    use crate::test_support::{batch_from_rows, test_device, tiny_config};

    /// Copy task rows: `[1, a, b, c, 2, a, b, c]`; the copy after the separator is trained.
    fn copy_batch(n: usize, offset: u32) -> TrainBatch {
        let rows: Vec<Vec<u32>> = (0..n as u32)
            .map(|i| {
                let payload = [
                    3 + (i + offset) % 30,
                    3 + (i * 7 + offset) % 30,
                    3 + (i * 13 + 5) % 30,
                ];
                let mut row = vec![1];
                row.extend(payload);
                row.push(2);
                row.extend(payload);
                row
            })
            .collect();
        batch_from_rows(&rows, &vec![5; n], &vec![0.0; n])
    }

    fn learner(settings: LearnerConfig) -> Learner {
        Learner::new(tiny_config(), &test_device(), settings).unwrap()
    }

    #[test]
    fn sft_learns_a_copy_task() {
        let mut learner = learner(LearnerConfig {
            lr: 3e-3,
            ..LearnerConfig::default()
        });
        let eval = copy_batch(16, 100);
        let before = learner.sft_loss(&eval).unwrap();
        assert!((before - (40f32).ln()).abs() < 0.3, "initial loss {before}");
        let mut last = 0.0;
        for step in 0..60 {
            last = learner.sft_step(&copy_batch(16, step)).unwrap();
        }
        let after = learner.sft_loss(&eval).unwrap();
        assert!(
            after < 0.5 * before,
            "loss {before} -> {after} (last train {last})"
        );
        assert_eq!(learner.updates(), 60);
    }

    /// Rollouts sampled at a temperature other than 1 (with top-p) record the log-probs of the
    /// distribution they came from, and the surrogate at that temperature recomputes exactly
    /// those: π_θ = π_old before the first update (ratio 1, KL 0). At temperature 1 the same
    /// tokens give another distribution's log-probs (the mismatch the surrogate used to have).
    #[test]
    fn the_surrogate_computes_the_log_probs_the_rollouts_were_sampled_with() {
        let mut learner = learner(LearnerConfig::default());
        let policy = learner.policy();
        let prompts = vec![vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9]];
        let t = 0.7;
        let opts = SampleOptions {
            max_new_tokens: 8,
            temperature: t,
            top_p: 0.9,
            ..SampleOptions::default()
        };
        let sampled = policy.sample(&prompts, &opts, &[3, 4, 5]).unwrap();
        let rows: Vec<Vec<u32>> = prompts
            .iter()
            .zip(&sampled)
            .map(|(p, s)| p.iter().chain(&s.tokens).copied().collect())
            .collect();
        let mut batch = batch_from_rows(&rows, &[3, 2, 4], &[1.0, -1.0, 0.5]);
        // The recorded log-probs, at the sampled positions.
        let seq = batch.seq_len;
        batch.old_logprobs = vec![0.0; batch.rows * seq];
        for (r, (p, s)) in prompts.iter().zip(&sampled).enumerate() {
            for (i, lp) in s.logprobs.iter().enumerate() {
                batch.old_logprobs[r * seq + p.len() + i] = *lp;
            }
        }
        let scored = policy.score_batch_at(&batch, t).unwrap();
        let untempered = policy.score_batch(&batch).unwrap();
        let (mut worst, mut apart) = (0f32, 0f32);
        for i in 0..batch.rows * seq {
            if batch.loss_mask[i] > 0.0 {
                worst = worst.max((scored[i] - batch.old_logprobs[i]).abs());
                apart = apart.max((untempered[i] - batch.old_logprobs[i]).abs());
            }
        }
        assert!(
            worst < 1e-5,
            "tempered log-probs differ from the recorded ones by {worst}"
        );
        assert!(
            apart > 1e-2,
            "temperature 1 is another distribution ({apart})"
        );
        let at = |temperature| SurrogateConfig {
            temperature,
            ..SurrogateConfig::default()
        };
        let first = learner.surrogate_step(&batch, &at(t)).unwrap();
        assert!(first.approx_kl.abs() < 1e-6, "{}", first.approx_kl);
        assert_eq!(first.clip_fraction, 0.0);
        let mut untempered_learner = self::learner(LearnerConfig::default());
        let off = untempered_learner.surrogate_step(&batch, &at(1.0)).unwrap();
        assert!(off.approx_kl > 1e-3, "{}", off.approx_kl);
    }

    #[test]
    fn surrogate_pushes_up_positive_and_down_negative_trajectories() {
        let mut learner = learner(LearnerConfig {
            lr: 1e-3,
            ..LearnerConfig::default()
        });
        let policy = learner.policy();
        let prompts = vec![vec![1, 2, 3], vec![4, 5]];
        let opts = SampleOptions {
            max_new_tokens: 6,
            ..SampleOptions::default()
        };
        let sampled = policy.sample(&prompts, &opts, &[1, 2]).unwrap();
        let rows: Vec<Vec<u32>> = prompts
            .iter()
            .zip(&sampled)
            .map(|(p, s)| p.iter().chain(&s.tokens).copied().collect())
            .collect();
        let mut batch = batch_from_rows(&rows, &[3, 2], &[1.0, -1.0]);
        batch.old_logprobs = policy.score_batch(&batch).unwrap();
        let config = SurrogateConfig::default();
        let first = learner.surrogate_step(&batch, &config).unwrap();
        // π_θ = π_old at the first epoch: ratio 1, nothing clipped, KL 0, loss = −mean A = 0.
        assert_eq!(first.tokens, 12);
        assert_eq!(first.clip_fraction, 0.0);
        assert!(first.approx_kl.abs() < 1e-6);
        assert!(first.loss.abs() < 1e-5, "{}", first.loss);
        assert!(first.grad_norm > 0.0);
        for _ in 0..5 {
            learner.surrogate_step(&batch, &config).unwrap();
        }
        let after = learner.policy().score_batch(&batch).unwrap();
        let seq = batch.seq_len;
        let row_sum = |v: &[f32], r: usize| v[r * seq..(r + 1) * seq].iter().sum::<f32>();
        assert!(row_sum(&after, 0) > row_sum(&batch.old_logprobs, 0));
        assert!(row_sum(&after, 1) < row_sum(&batch.old_logprobs, 1));
        let later = learner.surrogate_step(&batch, &config).unwrap();
        assert!(later.approx_kl > 0.0);
    }

    #[test]
    fn micro_batches_and_padding_rows_do_not_change_the_update() {
        let mut batch = copy_batch(4, 0);
        // Row 1 trains only its first positions: its chunk is cut shorter.
        let seq = batch.seq_len;
        for t in seq / 2..seq {
            batch.loss_mask[seq + t] = 0.0;
        }
        batch.advantages = batch
            .loss_mask
            .iter()
            .enumerate()
            .map(|(i, m)| m * if i < 16 { 1.0 } else { -0.5 })
            .collect();
        batch.old_logprobs = learner(LearnerConfig::default())
            .policy()
            .score_batch(&batch)
            .unwrap();
        let config = SurrogateConfig::default();
        let mut whole = learner(LearnerConfig::default());
        let whole_stats = whole.surrogate_step(&batch, &config).unwrap();
        let mut micro = learner(LearnerConfig {
            micro_batch_rows: 1,
            ..LearnerConfig::default()
        });
        let micro_stats = micro.surrogate_step(&batch, &config).unwrap();
        let mut one_shard = learner(LearnerConfig {
            shards: 1,
            ..LearnerConfig::default()
        });
        let one_stats = one_shard.surrogate_step(&batch, &config).unwrap();
        assert_eq!(whole_stats.tokens, one_stats.tokens);
        assert!((whole_stats.loss - one_stats.loss).abs() < 1e-5);
        // The same batch plus a zero-weight padding row with garbage advantages.
        let mut padded = batch.clone();
        padded.rows += 1;
        padded.tokens.extend([7; 8]);
        padded.loss_mask.extend([1.0; 8]);
        padded.advantages.extend([100.0; 8]);
        padded.old_logprobs.extend([-3.0; 8]);
        padded.row_weights.push(0.0);
        let mut with_padding = learner(LearnerConfig::default());
        let padded_stats = with_padding.surrogate_step(&padded, &config).unwrap();
        assert_eq!(whole_stats.tokens, micro_stats.tokens);
        assert_eq!(whole_stats.tokens, padded_stats.tokens);
        assert!((whole_stats.loss - micro_stats.loss).abs() < 1e-5);
        assert!((whole_stats.grad_norm - micro_stats.grad_norm).abs() < 1e-4);
        assert!((whole_stats.grad_norm - padded_stats.grad_norm).abs() < 1e-4);
        let a = whole.policy().score_batch(&batch).unwrap();
        let b = micro.policy().score_batch(&batch).unwrap();
        let c = with_padding.policy().score_batch(&batch).unwrap();
        let d = one_shard.policy().score_batch(&batch).unwrap();
        for (((x, y), z), w) in a.iter().zip(&b).zip(&c).zip(&d) {
            assert!(
                (x - y).abs() < 1e-4 && (x - z).abs() < 1e-4 && (x - w).abs() < 1e-4,
                "{x} {y} {z} {w}"
            );
        }
    }

    /// Identical rows are computed once with their weights summed: the update and the
    /// diagnostics equal those of the same rows kept apart (a bit-level difference in a
    /// position no loss weight reads keeps them apart).
    #[test]
    fn duplicate_rows_merge_into_the_same_update() {
        let mut batch = copy_batch(3, 0);
        let seq = batch.seq_len;
        for t in 0..seq {
            batch.advantages[t] = batch.loss_mask[t];
            batch.advantages[seq + t] = -0.5 * batch.loss_mask[seq + t];
        }
        batch.old_logprobs = learner(LearnerConfig::default())
            .policy()
            .score_batch(&batch)
            .unwrap();
        // Row 0 twice more: once exactly, once with -0.0 where its advantage is +0.0 and its
        // mask 0 (position 0: never trained).
        let mut dup = batch.clone();
        for copy in 0..2 {
            dup.rows += 1;
            dup.tokens.extend_from_within(0..seq);
            dup.loss_mask.extend_from_within(0..seq);
            dup.old_logprobs.extend_from_within(0..seq);
            let mut adv = batch.advantages[0..seq].to_vec();
            if copy == 1 {
                assert_eq!(adv[0], 0.0);
                adv[0] = -0.0;
            }
            dup.advantages.extend(adv);
            dup.row_weights.push(batch.row_weights[0]);
        }
        let config = SurrogateConfig::default();
        let mut merged = learner(LearnerConfig::default());
        let a = merged.surrogate_step(&dup, &config).unwrap();
        // The reference: no two rows identical.
        let mut apart = dup.clone();
        assert_eq!(
            (apart.advantages[3 * seq + 1], apart.loss_mask[3 * seq + 1]),
            (0.0, 0.0)
        );
        apart.advantages[3 * seq + 1] = -0.0;
        let mut separate = learner(LearnerConfig::default());
        let b = separate.surrogate_step(&apart, &config).unwrap();
        assert_eq!(a.tokens, b.tokens);
        assert!((a.loss - b.loss).abs() < 1e-6, "{} vs {}", a.loss, b.loss);
        assert!((a.grad_norm - b.grad_norm).abs() < 1e-5);
        assert_eq!(a.clip_fraction, b.clip_fraction);
        let x = merged.policy().score_batch(&batch).unwrap();
        let y = separate.policy().score_batch(&batch).unwrap();
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() < 1e-5, "{p} vs {q}");
        }
    }

    #[test]
    fn kl_needs_a_reference_and_a_policy_snapshot_is_frozen() {
        let mut learner = learner(LearnerConfig::default());
        let batch = copy_batch(2, 0);
        let config = SurrogateConfig {
            kl_coef: 0.1,
            ..SurrogateConfig::default()
        };
        assert!(matches!(
            learner.surrogate_step(&batch, &config),
            Err(ModelError::InvalidInput(_))
        ));
        let snapshot = learner.policy();
        learner.set_reference(Some(snapshot.clone())).unwrap();
        let before = snapshot.score_batch(&batch).unwrap();
        learner.sft_step(&batch).unwrap();
        // KL against the reference, which the SFT step did not touch.
        let mut kl_batch = batch.clone();
        kl_batch.old_logprobs = learner.policy().score_batch(&batch).unwrap();
        let stats = learner.surrogate_step(&kl_batch, &config).unwrap();
        assert!(
            stats.loss > 0.0,
            "KL term of a moved policy is positive: {}",
            stats.loss
        );
        assert_eq!(snapshot.score_batch(&batch).unwrap(), before);
        let bad = Policy::new(PolicyConfig::preset("tiny", 41).unwrap(), &test_device()).unwrap();
        assert!(learner.set_reference(Some(bad)).is_err());
    }

    #[test]
    fn optimizer_state_resumes_training_exactly() {
        let batch = copy_batch(4, 0);
        let mut original = learner(LearnerConfig::default());
        original.sft_step(&batch).unwrap();
        original.sft_step(&batch).unwrap();
        let weights = original.policy().to_bytes().unwrap();
        let state = original.optimizer_state().unwrap();
        let restore = |with_state: bool| {
            let policy = Policy::from_bytes(&weights, &test_device()).unwrap();
            let mut learner = Learner::from_policy(policy, LearnerConfig::default()).unwrap();
            if with_state {
                learner.load_optimizer_state(&state).unwrap();
            }
            learner.sft_step(&batch).unwrap();
            learner.policy().score_batch(&batch).unwrap()
        };
        original.sft_step(&batch).unwrap();
        let expected = original.policy().score_batch(&batch).unwrap();
        let resumed = restore(true);
        for (a, b) in expected.iter().zip(&resumed) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let fresh_moments = restore(false);
        assert!(
            expected
                .iter()
                .zip(&fresh_moments)
                .any(|(a, b)| (a - b).abs() > 1e-4)
        );
        assert!(original.load_optimizer_state(b"junk").is_err());
    }

    #[test]
    fn bad_batches_and_settings_are_errors() {
        let mut learner = learner(LearnerConfig::default());
        let mut batch = copy_batch(2, 0);
        batch.advantages.pop();
        assert!(matches!(
            learner.sft_step(&batch),
            Err(ModelError::InvalidInput(_))
        ));
        let mut batch = copy_batch(2, 0);
        batch.tokens[0] = 999;
        assert!(
            learner
                .surrogate_step(&batch, &SurrogateConfig::default())
                .is_err()
        );
        let mut batch = copy_batch(2, 0);
        batch.old_logprobs[3] = f32::NAN;
        assert!(
            learner
                .surrogate_step(&batch, &SurrogateConfig::default())
                .is_err()
        );
        // Nothing trained: no update.
        let mut batch = copy_batch(2, 0);
        batch.row_weights = vec![0.0, 0.0];
        assert_eq!(learner.sft_step(&batch).unwrap(), 0.0);
        assert_eq!(learner.updates(), 0);
        assert!(
            Learner::new(
                tiny_config(),
                &test_device(),
                LearnerConfig {
                    lr: 0.0,
                    ..LearnerConfig::default()
                }
            )
            .is_err()
        );
    }
}
