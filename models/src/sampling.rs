//! Sampling options, results, and the host-side draw of one token from one row of logits.
//!
//! Draws happen on the host from one ChaCha8 stream per row, so a row's tokens depend only on its
//! prompt, its seed and the parameters — never on which other rows share the batch or on a
//! backend's RNG. The log-prob recorded for each token is under the distribution it was drawn
//! from at the sampling temperature `T` — `log softmax(logits / T)`, before top-p truncation —
//! which is what the learner computes for the surrogate at the same temperature
//! ([`crate::loss::SurrogateConfig::temperature`]), so π_old and π_θ are log-probs of one
//! distribution and the ratio is 1 on an update's first epoch. Greedy decoding (`T = 0`, for
//! evaluation) records the model's own (temperature-1) log-prob.
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// How to sample continuations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SampleOptions {
    /// Most tokens generated per row (also capped by the model's `max_seq_len`).
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy (arg-max).
    pub temperature: f32,
    /// Nucleus mass in (0, 1]; 1 disables top-p.
    pub top_p: f32,
    /// The temperature whose log-probs are recorded, when not the sampling one: a sampler
    /// that draws from another distribution on purpose (garbled output in fault tests) still
    /// records the log-probs the learner will compute.
    pub logprob_temperature: Option<f32>,
    /// Generation of a row stops after it produces one of these (it is kept in the output).
    pub stop_tokens: Vec<u32>,
    /// Decode with the KV cache (the fast path); `false` recomputes the whole prefix each step
    /// (for benchmarks and cross-checks).
    pub use_kv_cache: bool,
    /// Split a batch of at least `2 · MIN_SHARD_ROWS` rows into this many groups of similar
    /// prompt length, decoded at once on rayon's pool: a decode step's matrices are too small
    /// for the backend to parallelise, so one batch would keep one core busy. Each row's tokens
    /// depend only on its prompt, seed and the model, never on its group.
    pub shards: usize,
}

/// Fewest rows per sampling shard (smaller groups cost more in per-step overhead than they
/// gain).
pub const MIN_SHARD_ROWS: usize = 4;

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 1.0,
            top_p: 1.0,
            logprob_temperature: None,
            stop_tokens: Vec::new(),
            use_kv_cache: true,
            shards: 2,
        }
    }
}

impl SampleOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(ModelError::InvalidInput(format!(
                "temperature {} must be finite and >= 0",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::InvalidInput(format!(
                "top_p {} must be in (0, 1]",
                self.top_p
            )));
        }
        Ok(())
    }
}

/// One row's continuation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampled {
    /// Generated tokens (not the prompt), including the stop token if one was produced.
    pub tokens: Vec<u32>,
    /// `logprobs[i]` = log π_T(tokens[i] | prompt, tokens[..i]) at the sampling temperature `T`
    /// (the model's own distribution for `T` = 0 or 1).
    pub logprobs: Vec<f32>,
    /// Whether generation ended on a stop token (false: hit `max_new_tokens` or `max_seq_len`).
    pub stopped: bool,
}

/// Draws one token from `logits` (one row, length V) at `temperature` and `top_p`, and returns
/// it with its log-prob under `softmax(logits / recorded)` (`softmax(logits)` for 0 or 1).
pub(crate) fn draw(
    logits: &[f32],
    (temperature, top_p): (f32, f32),
    recorded: f32,
    rng: &mut ChaCha8Rng,
) -> (u32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_norm = max
        + logits
            .iter()
            .map(|&l| (l as f64 - max).exp())
            .sum::<f64>()
            .ln();
    let token = if temperature == 0.0 {
        argmax(logits)
    } else if temperature == 1.0 && top_p >= 1.0 {
        let u: f64 = rng.random();
        pick(logits.iter().map(|&l| (l as f64 - log_norm).exp()), u, 1.0)
    } else {
        let inv_t = 1.0 / temperature as f64;
        let weights: Vec<f64> = logits
            .iter()
            .map(|&l| ((l as f64 - max) * inv_t).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let u: f64 = rng.random();
        if top_p >= 1.0 {
            pick(weights.iter().copied(), u, total)
        } else {
            nucleus_pick(&weights, total, top_p as f64, u)
        }
    };
    if recorded == 0.0 || recorded == 1.0 {
        return (token, (logits[token as usize] as f64 - log_norm) as f32);
    }
    let inv_t = 1.0 / recorded as f64;
    let tempered_norm = logits
        .iter()
        .map(|&l| ((l as f64 - max) * inv_t).exp())
        .sum::<f64>()
        .ln();
    let lp = (logits[token as usize] as f64 - max) * inv_t - tempered_norm;
    (token, lp as f32)
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Inverse-CDF pick: the first index whose cumulative weight exceeds `u · total`.
fn pick(weights: impl Iterator<Item = f64>, u: f64, total: f64) -> u32 {
    let target = u * total;
    let mut acc = 0.0;
    let mut last_positive = 0;
    for (i, w) in weights.enumerate() {
        if w > 0.0 {
            last_positive = i;
        }
        acc += w;
        if acc > target {
            return i as u32;
        }
    }
    // Rounding left `target` above the accumulated sum: take the last token with mass.
    last_positive as u32
}

/// Top-p: keep the most probable tokens until their mass reaches `top_p`, renormalise, pick.
fn nucleus_pick(weights: &[f64], total: f64, top_p: f64, u: f64) -> u32 {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Descending weight, ties by index, so the nucleus is deterministic.
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut kept = 0.0;
    let mut cut = order.len();
    for (rank, &i) in order.iter().enumerate() {
        kept += weights[i];
        if kept >= top_p * total {
            cut = rank + 1;
            break;
        }
    }
    let nucleus = &order[..cut];
    let index = pick(nucleus.iter().map(|&i| weights[i]), u, kept.min(total));
    nucleus[index as usize] as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn greedy_and_logprob_are_exact() {
        let logits = [1.0f32, 3.0, 2.0];
        let (token, lp) = draw(&logits, (0.0, 1.0), 0.0, &mut rng(0));
        assert_eq!(token, 1);
        let expected = 3.0 - (1f64.exp() + 3f64.exp() + 2f64.exp()).ln();
        assert!((lp as f64 - expected).abs() < 1e-6);
    }

    #[test]
    fn frequencies_follow_the_distribution() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = (0.25, 0.75)
        let mut r = rng(1);
        let ones = (0..4000)
            .filter(|_| draw(&logits, (1.0, 1.0), 1.0, &mut r).0 == 1)
            .count();
        assert!((ones as f64 / 4000.0 - 0.75).abs() < 0.03, "{ones}");
    }

    #[test]
    fn top_p_keeps_only_the_nucleus_and_logprob_is_the_tempered_one() {
        // p ≈ (0.6, 0.3, 0.1): top_p 0.5 keeps only token 0.
        let logits = [0.6f32.ln(), 0.3f32.ln(), 0.1f32.ln()];
        // At T = 0.7 the distribution drawn from is p^(1/0.7), renormalised (top-p truncation
        // is not part of the recorded log-prob).
        let tempered: Vec<f64> = [0.6f64, 0.3, 0.1]
            .iter()
            .map(|p| p.powf(1.0 / 0.7))
            .collect();
        let expected = (tempered[0] / tempered.iter().sum::<f64>()).ln();
        let mut r = rng(2);
        for _ in 0..200 {
            let (token, lp) = draw(&logits, (0.7, 0.5), 0.7, &mut r);
            assert_eq!(token, 0);
            assert!((lp as f64 - expected).abs() < 1e-5, "{lp} vs {expected}");
        }
        // top_p 0.85 keeps tokens 0 and 1, never 2.
        let seen: std::collections::BTreeSet<u32> = (0..500)
            .map(|_| draw(&logits, (1.0, 0.85), 1.0, &mut r).0)
            .collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn low_temperature_sharpens() {
        let logits = [0.0f32, 1.0];
        let mut r = rng(3);
        let ones = (0..1000)
            .filter(|_| draw(&logits, (0.1, 1.0), 0.1, &mut r).0 == 1)
            .count();
        assert!(ones > 990, "{ones}");
    }

    #[test]
    fn options_are_validated() {
        let mut opts = SampleOptions::default();
        opts.validate().unwrap();
        opts.top_p = 0.0;
        assert!(opts.validate().is_err());
        opts.top_p = 1.0;
        opts.temperature = f32::NAN;
        assert!(opts.validate().is_err());
    }
}
