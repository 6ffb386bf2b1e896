//! The GPT presets against `bench/torch_reference.py`'s "same model", numerically: the bench
//! compares our speed with eager PyTorch on a model it calls the same, and this checks that it
//! is. A case holds a preset's initial weights in PyTorch's layout (`weights.safetensors`), a
//! batch with its loss weights and π_old (`case.json`), and our numbers on them: the per-token
//! log-probs, the SFT and the clipped-surrogate loss at those weights, and the SFT loss after
//! one AdamW update of each (the backward pass, gradient clipping and the optimizer). The
//! Python side loads the same weights and computes the same numbers (`--parity DIR`);
//! `mgrpo bench models --parity` runs both and fails beyond 1e-4.
use std::path::Path;

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use mgrpo_algo::TrainBatch;

use crate::bench::{BenchOptions, train_batch};
use crate::config::PolicyConfig;
use crate::error::{ModelError, Result};
use crate::learner::{Learner, LearnerConfig};
use crate::loss::{Averaging, SurrogateConfig, loss_weights};
use crate::policy::Policy;
use crate::transformer::PolicyModel;

/// The numbers both sides compute on a case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseNumbers {
    /// Per-token log-probs at the trained positions (row-major), at the initial weights.
    pub logprobs: Vec<f32>,
    /// SFT loss `−Σ W·log π` at the initial weights.
    pub sft_loss: f32,
    /// The SFT loss after one SFT update from the initial weights.
    pub sft_loss_after_sft_step: f32,
    /// Clipped-surrogate loss at the initial weights (π_old from the batch).
    pub surrogate_loss: f32,
    /// The SFT loss after one surrogate update from the initial weights.
    pub sft_loss_after_surrogate_step: f32,
}

/// A case: the batch, the settings of both updates (as our learner and surrogate take them),
/// our numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceCase {
    /// The GPT preset.
    pub preset: String,
    /// Its vocabulary and context length.
    pub vocab_size: usize,
    /// See `vocab_size`.
    pub max_seq_len: usize,
    /// The batch: tokens, which positions are trained (where log-probs are compared),
    /// advantages and π_old.
    pub batch: TrainBatch,
    /// Loss weights of the SFT update (token averaging) and of the surrogate (its averaging).
    pub sft_weights: Vec<f32>,
    /// See `sft_weights`.
    pub surrogate_weights: Vec<f32>,
    /// AdamW and clipping.
    pub learner: LearnerConfig,
    /// The surrogate's clip range and temperature.
    pub surrogate: SurrogateConfig,
    /// Our numbers.
    pub ours: CaseNumbers,
}

/// Writes the case of `preset` (the bench's vocabulary, batch shape and seed) into `dir`.
pub fn write_reference_case(
    preset: &str,
    options: &BenchOptions,
    dir: &Path,
) -> Result<ReferenceCase> {
    let device = options.device.to_device()?;
    let config =
        PolicyConfig::preset(preset, options.vocab_size)?.with_max_seq_len(options.train_seq_len);
    let policy = Policy::new(config.clone(), &device)?;
    let PolicyModel::Gpt(model) = policy.model() else {
        return Err(ModelError::InvalidConfig(format!(
            "{preset} is not a GPT preset"
        )));
    };
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join("weights.safetensors");
    let mut store = SafetensorsStore::from_file(&path)
        .overwrite(true)
        .with_to_adapter(BurnToPyTorchAdapter);
    model
        .save_into(&mut store)
        .map_err(|e| ModelError::Checkpoint(format!("{}: {e}", path.display())))?;

    let mut rng = ChaCha8Rng::seed_from_u64(0x9A_7177);
    let batch = train_batch(&mut rng, options, &policy)?;
    let settings = LearnerConfig::default();
    let surrogate = SurrogateConfig::default();
    let fresh = || Learner::from_policy(Policy::new(config.clone(), &device)?, settings.clone());

    let scored = policy.score_batch(&batch)?;
    let logprobs: Vec<f32> = scored
        .iter()
        .zip(&batch.loss_mask)
        .filter(|(_, m)| **m > 0.0)
        .map(|(lp, _)| *lp)
        .collect();
    let mut sft = fresh()?;
    let sft_loss = sft.sft_loss(&batch)?;
    sft.sft_step(&batch)?;
    let mut sur = fresh()?;
    let surrogate_loss = sur.surrogate_step(&batch, &surrogate)?.loss;
    let ours = CaseNumbers {
        logprobs,
        sft_loss,
        sft_loss_after_sft_step: sft.sft_loss(&batch)?,
        surrogate_loss,
        sft_loss_after_surrogate_step: sur.sft_loss(&batch)?,
    };
    let case = ReferenceCase {
        preset: preset.into(),
        vocab_size: config.vocab_size,
        max_seq_len: config.max_seq_len,
        sft_weights: loss_weights(&batch, Averaging::Token),
        surrogate_weights: loss_weights(&batch, surrogate.averaging),
        batch,
        learner: settings,
        surrogate,
        ours,
    };
    let json = dir.join("case.json");
    std::fs::write(&json, serde_json::to_vec(&case)?)
        .map_err(|source| ModelError::Io { path: json, source })?;
    Ok(case)
}

/// `(what, ours, theirs, |Δ|)` of every number of a case (log-probs: the largest difference).
pub fn compare(ours: &CaseNumbers, theirs: &CaseNumbers) -> Vec<(&'static str, f64, f64, f64)> {
    let worst = if ours.logprobs.len() == theirs.logprobs.len() {
        ours.logprobs
            .iter()
            .zip(&theirs.logprobs)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
            .fold(0.0, f64::max)
    } else {
        f64::INFINITY
    };
    let row = |what, a: f32, b: f32| {
        (
            what,
            f64::from(a),
            f64::from(b),
            (f64::from(a) - f64::from(b)).abs(),
        )
    };
    vec![
        ("log-probs (max |Δ|)", 0.0, 0.0, worst),
        row("sft loss", ours.sft_loss, theirs.sft_loss),
        row(
            "sft loss after an sft step",
            ours.sft_loss_after_sft_step,
            theirs.sft_loss_after_sft_step,
        ),
        row("surrogate loss", ours.surrogate_loss, theirs.surrogate_loss),
        row(
            "sft loss after a surrogate step",
            ours.sft_loss_after_surrogate_step,
            theirs.sft_loss_after_surrogate_step,
        ),
    ]
}
