//! Throughput benchmarks of the policy models, behind `mgrpo bench models`.
//!
//! Measures, per preset and on the selected backend: sampling tokens/s with and without the KV
//! cache at several batch sizes, and the wall time of one SFT and one clipped-surrogate update.
//! `bench/torch_reference.py` runs the same shapes in eager PyTorch and prints the same rows, so
//! the two outputs can be joined on `(preset, measure, batch)` to compute ratios.
use std::time::Instant;

use mgrpo_algo::TrainBatch;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::PolicyConfig;
use crate::device::DeviceSpec;
use crate::error::Result;
use crate::learner::{Learner, LearnerConfig};
use crate::loss::SurrogateConfig;
use crate::policy::Policy;
use crate::sampling::SampleOptions;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchOptions {
    /// Presets to measure (`tiny`, `small`, `base`).
    pub presets: Vec<String>,
    /// Vocabulary size of the benchmark models.
    pub vocab_size: usize,
    /// Where to run.
    pub device: DeviceSpec,
    /// Sampling batch sizes.
    pub batch_sizes: Vec<usize>,
    /// Prompt length of every sampled row.
    pub prompt_len: usize,
    /// Tokens generated per row (no stop tokens, so every row generates them all).
    pub new_tokens: usize,
    /// Also measure sampling without the KV cache.
    pub no_cache: bool,
    /// Rows of the training batches.
    pub train_rows: usize,
    /// Sequence length of the training batches (the first quarter is context).
    pub train_seq_len: usize,
    /// Timed repetitions per measurement (after one warm-up); the median is reported.
    pub repeats: usize,
    /// Measure sampling.
    pub sampling: bool,
    /// Measure the SFT and surrogate updates.
    pub updates: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            presets: vec!["tiny".into(), "small".into()],
            vocab_size: 1024,
            device: DeviceSpec::flex_cpu(),
            batch_sizes: vec![1, 8, 32],
            prompt_len: 32,
            new_tokens: 32,
            no_cache: true,
            train_rows: 16,
            train_seq_len: 128,
            repeats: 3,
            sampling: true,
            updates: true,
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// Model preset.
    pub preset: String,
    /// Parameter count of the model.
    pub params: usize,
    /// Backend and device, e.g. `flex:cpu`.
    pub device: String,
    /// `sample_cache`, `sample_nocache`, `sft_step` or `surrogate_step`.
    pub measure: String,
    /// Rows per call.
    pub batch: usize,
    /// Median wall time of one call, in milliseconds.
    pub ms: f64,
    /// Generated tokens per second (sampling rows only).
    pub tokens_per_s: Option<f64>,
}

/// Runs every measurement of `options`; one row per (preset, measure, batch).
pub fn run_bench(options: &BenchOptions) -> Result<Vec<BenchRow>> {
    let device = options.device.to_device()?;
    let mut rows = Vec::new();
    for preset in &options.presets {
        let max_seq_len = (options.prompt_len + options.new_tokens).max(options.train_seq_len);
        let config =
            PolicyConfig::preset(preset, options.vocab_size)?.with_max_seq_len(max_seq_len);
        let policy = Policy::new(config.clone(), &device)?;
        let params = policy.num_params();
        let row = |measure: &str, batch: usize, ms: f64, tokens: Option<usize>| BenchRow {
            preset: preset.clone(),
            params,
            device: options.device.to_string(),
            measure: measure.to_string(),
            batch,
            ms,
            tokens_per_s: tokens.map(|t| t as f64 / (ms / 1000.0)),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0xBE_4C);
        let modes: &[bool] = if options.no_cache {
            &[true, false]
        } else {
            &[true]
        };
        let sampled_batches: &[usize] = if options.sampling {
            &options.batch_sizes
        } else {
            &[]
        };
        for &batch in sampled_batches {
            let prompts: Vec<Vec<u32>> = (0..batch)
                .map(|_| random_tokens(&mut rng, options.prompt_len, options.vocab_size))
                .collect();
            let seeds: Vec<u64> = (0..batch as u64).collect();
            for &use_kv_cache in modes {
                let opts = SampleOptions {
                    max_new_tokens: options.new_tokens,
                    use_kv_cache,
                    ..SampleOptions::default()
                };
                let ms = median_ms(options.repeats, || {
                    policy.sample(&prompts, &opts, &seeds).map(|_| ())
                })?;
                let measure = if use_kv_cache {
                    "sample_cache"
                } else {
                    "sample_nocache"
                };
                rows.push(row(measure, batch, ms, Some(batch * options.new_tokens)));
            }
        }
        if !options.updates {
            continue;
        }
        let batch = train_batch(&mut rng, options, &policy)?;
        let mut learner = Learner::from_policy(policy, LearnerConfig::default())?;
        let ms = median_ms(options.repeats, || learner.sft_step(&batch).map(|_| ()))?;
        rows.push(row("sft_step", options.train_rows, ms, None));
        let surrogate = SurrogateConfig::default();
        let ms = median_ms(options.repeats, || {
            learner.surrogate_step(&batch, &surrogate).map(|_| ())
        })?;
        rows.push(row("surrogate_step", options.train_rows, ms, None));
    }
    Ok(rows)
}

/// Formats rows as an aligned text table (the same columns `torch_reference.py` prints).
pub fn format_table(rows: &[BenchRow]) -> String {
    let mut out = format!(
        "{:<7} {:>9} {:<10} {:<15} {:>5} {:>10} {:>10}\n",
        "preset", "params", "device", "measure", "batch", "ms", "tok/s"
    );
    for r in rows {
        let tps = r
            .tokens_per_s
            .map_or_else(|| "-".to_string(), |t| format!("{t:.0}"));
        out.push_str(&format!(
            "{:<7} {:>9} {:<10} {:<15} {:>5} {:>10.2} {:>10}\n",
            r.preset, r.params, r.device, r.measure, r.batch, r.ms, tps
        ));
    }
    out
}

fn random_tokens(rng: &mut ChaCha8Rng, len: usize, vocab: usize) -> Vec<u32> {
    (0..len)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect()
}

/// A training batch of random rows: the first quarter of each row is context, the rest is
/// trained with a random advantage; π_old from the policy itself.
pub(crate) fn train_batch(
    rng: &mut ChaCha8Rng,
    options: &BenchOptions,
    policy: &Policy,
) -> Result<TrainBatch> {
    let (rows, seq) = (options.train_rows, options.train_seq_len);
    let mut batch = TrainBatch::empty(0);
    batch.rows = rows;
    batch.seq_len = seq;
    for _ in 0..rows {
        let advantage: f32 = rng.random_range(-1.0..1.0);
        batch
            .tokens
            .extend(random_tokens(rng, seq, options.vocab_size));
        for t in 0..seq {
            let trained = t >= seq / 4;
            batch.loss_mask.push(if trained { 1.0 } else { 0.0 });
            batch.advantages.push(if trained { advantage } else { 0.0 });
        }
        batch.row_weights.push(1.0);
    }
    batch.old_logprobs = vec![0.0; rows * seq];
    batch.old_logprobs = policy.score_batch(&batch)?;
    Ok(batch)
}

/// One warm-up call, then the median of `repeats` timed calls, in milliseconds.
fn median_ms(repeats: usize, mut call: impl FnMut() -> Result<()>) -> Result<f64> {
    call()?;
    let mut times = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        call()?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_runs_and_reports_every_row() {
        let options = BenchOptions {
            presets: vec!["tiny".into()],
            vocab_size: 64,
            device: DeviceSpec::from_env().unwrap(),
            batch_sizes: vec![1, 2],
            prompt_len: 4,
            new_tokens: 3,
            train_rows: 2,
            train_seq_len: 8,
            repeats: 1,
            ..BenchOptions::default()
        };
        let rows = run_bench(&options).unwrap();
        let measures: Vec<(&str, usize)> =
            rows.iter().map(|r| (r.measure.as_str(), r.batch)).collect();
        assert_eq!(
            measures,
            vec![
                ("sample_cache", 1),
                ("sample_nocache", 1),
                ("sample_cache", 2),
                ("sample_nocache", 2),
                ("sft_step", 2),
                ("surrogate_step", 2),
            ]
        );
        assert!(rows.iter().all(|r| r.ms > 0.0 && r.params > 0));
        assert!(rows[0].tokens_per_s.unwrap() > 0.0);
        let table = format_table(&rows);
        assert_eq!(table.lines().count(), 7);
        assert!(table.contains("surrogate_step"));
    }
}
