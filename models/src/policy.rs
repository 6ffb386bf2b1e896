//! [`Policy`]: an inference copy of the model on a plain (non-autodiff) device — batched
//! sampling with a KV cache, and per-token scoring.
//!
//! Sampling left-pads prompts of different lengths to a common length, gives every row its own
//! position ids (so padding never shifts a row's positions), and masks padded keys with an
//! additive bias. A row's result therefore matches sampling it alone, up to float rounding in
//! reductions whose length depends on the padding (~1e-7, far below anything that changes a
//! draw in practice). Each decode step reads back only the last position's `[B, V]` logits: one
//! device sync per step; rows that finish are dropped from the cache.
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use mgrpo_algo::TrainBatch;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::PolicyConfig;
use crate::error::{ModelError, Result};
use crate::sampling::{MIN_SHARD_ROWS, SampleOptions, Sampled, draw};
use crate::tensors::{NEG_BIAS, check_batch, check_tokens, float_tensor, int_tensor, read_f32};
use crate::transformer::PolicyModel;
use crate::transformer::kv_cache::KvCache;

/// A policy ready for inference: config + weights on a device without autodiff.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
    model: PolicyModel,
    device: Device,
}

impl Policy {
    /// A freshly initialised policy (weights from `config.init_seed`).
    pub fn new(config: PolicyConfig, device: &Device) -> Result<Self> {
        let device = device.clone().inner();
        let model = PolicyModel::init(&config, &device)?;
        Ok(Self {
            config,
            model,
            device,
        })
    }

    /// Wraps an existing model; it is switched to inference mode on `device` without autodiff.
    pub fn from_model(config: PolicyConfig, model: &PolicyModel, device: &Device) -> Self {
        let device = device.clone().inner();
        Self {
            config,
            model: model.valid().to_device(&device),
            device,
        }
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The network.
    pub fn model(&self) -> &PolicyModel {
        &self.model
    }

    pub(crate) fn into_parts(self) -> (PolicyConfig, PolicyModel, Device) {
        (self.config, self.model, self.device)
    }

    pub(crate) fn from_parts(config: PolicyConfig, model: PolicyModel, device: Device) -> Self {
        Self {
            config,
            model,
            device,
        }
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.model.num_params()
    }

    /// Samples a continuation of every prompt.
    ///
    /// `seeds[row]` seeds row `row`'s own ChaCha8 stream, so a row's tokens depend only on its
    /// prompt, its seed and the weights. Prompts may differ in length; each must be non-empty,
    /// shorter than `max_seq_len`, and made of in-vocabulary ids. Generation of a row stops on a
    /// stop token (kept), after `max_new_tokens`, or when the row reaches `max_seq_len`.
    /// Log-probs are under the distribution sampled, at the options' temperature (see
    /// [`crate::sampling`]).
    pub fn sample(
        &self,
        prompts: &[Vec<u32>],
        opts: &SampleOptions,
        seeds: &[u64],
    ) -> Result<Vec<Sampled>> {
        opts.validate()?;
        if prompts.len() != seeds.len() {
            return Err(ModelError::InvalidInput(format!(
                "{} prompts but {} seeds",
                prompts.len(),
                seeds.len()
            )));
        }
        for (row, prompt) in prompts.iter().enumerate() {
            if prompt.is_empty() || prompt.len() >= self.config.max_seq_len {
                return Err(ModelError::InvalidInput(format!(
                    "prompt {row} has {} tokens; it needs 1..{} (max_seq_len {})",
                    prompt.len(),
                    self.config.max_seq_len,
                    self.config.max_seq_len
                )));
            }
            check_tokens(prompt, self.config.vocab_size)?;
        }
        let shards = opts
            .shards
            .clamp(1, (prompts.len() / MIN_SHARD_ROWS).max(1));
        if shards > 1 {
            return self.sample_sharded(prompts, opts, seeds, shards);
        }
        self.decode_rows(prompts, opts, seeds)
    }

    /// [`Self::sample`] over `shards` groups of rows of similar prompt length (less left
    /// padding), decoded in parallel; outputs in the callers' row order.
    fn sample_sharded(
        &self,
        prompts: &[Vec<u32>],
        opts: &SampleOptions,
        seeds: &[u64],
        shards: usize,
    ) -> Result<Vec<Sampled>> {
        use rayon::prelude::*;
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by_key(|&i| (prompts[i].len(), i));
        let size = order.len().div_ceil(shards);
        let groups: Vec<&[usize]> = order.chunks(size).collect();
        let done: Vec<Result<Vec<Sampled>>> = groups
            .par_iter()
            .map(|rows| {
                let p: Vec<Vec<u32>> = rows.iter().map(|&i| prompts[i].clone()).collect();
                let s: Vec<u64> = rows.iter().map(|&i| seeds[i]).collect();
                self.decode_rows(&p, opts, &s)
            })
            .collect();
        let mut out: Vec<Option<Sampled>> = vec![None; prompts.len()];
        for (rows, sampled) in groups.iter().zip(done) {
            for (&i, s) in rows.iter().zip(sampled?) {
                out[i] = Some(s);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Decodes validated rows as one batch.
    fn decode_rows(
        &self,
        prompts: &[Vec<u32>],
        opts: &SampleOptions,
        seeds: &[u64],
    ) -> Result<Vec<Sampled>> {
        let mut decode = Decode::new(prompts, opts, seeds, self.config.max_seq_len);
        if decode.active.is_empty() {
            return Ok(decode.outputs);
        }
        if opts.use_kv_cache {
            self.decode_cached(&mut decode)?;
        } else {
            self.decode_recompute(&mut decode)?;
        }
        Ok(decode.outputs)
    }

    /// KV-cache decoding: one prefill over the left-padded prompts, then one token per step.
    fn decode_cached(&self, decode: &mut Decode<'_>) -> Result<()> {
        let rows = decode.active.clone();
        let (tokens, positions, bias, width) = decode.padded_inputs(&rows);
        let batch = rows.len();
        // Room for the prompts and the most tokens any row may produce (the last one is never
        // fed back).
        let most = rows.iter().map(|&r| decode.caps[r]).max().unwrap_or(0);
        let mut cache = self.model.new_cache(width + most.saturating_sub(1));
        let hidden = self.model.forward_positions(
            int_tensor(tokens, [batch, width], &self.device),
            int_tensor(positions, [batch, width], &self.device),
            float_tensor(bias, [batch, 1, width, width], &self.device),
            Some(&mut cache),
        );
        let mut logits = self.last_logits(hidden)?;
        let mut cache_len = width;
        loop {
            let survivors = decode.step(&logits);
            if decode.active.is_empty() {
                return Ok(());
            }
            if survivors.len() < logits.len() / self.config.vocab_size {
                let keep: Vec<i64> = survivors.iter().map(|&i| i as i64).collect();
                let n = keep.len();
                cache.keep_rows(int_tensor(keep, [n], &self.device));
            }
            let (tokens, positions, bias) = decode.step_inputs(cache_len);
            let batch = decode.active.len();
            cache_len += 1;
            let hidden = self.model.forward_positions(
                int_tensor(tokens, [batch, 1], &self.device),
                int_tensor(positions, [batch, 1], &self.device),
                float_tensor(bias, [batch, 1, 1, cache_len], &self.device),
                Some(&mut cache),
            );
            logits = self.last_logits(hidden)?;
        }
    }

    /// Reference decoding without a cache: the whole (prompt + generated) prefix every step.
    fn decode_recompute(&self, decode: &mut Decode<'_>) -> Result<()> {
        loop {
            let rows = decode.active.clone();
            let (tokens, positions, bias, width) = decode.padded_inputs(&rows);
            let batch = rows.len();
            let hidden = self.model.forward_positions(
                int_tensor(tokens, [batch, width], &self.device),
                int_tensor(positions, [batch, width], &self.device),
                float_tensor(bias, [batch, 1, width, width], &self.device),
                None::<&mut KvCache>,
            );
            let logits = self.last_logits(hidden)?;
            decode.step(&logits);
            if decode.active.is_empty() {
                return Ok(());
            }
        }
    }

    /// The last position's logits `[B, V]`, read back to the host.
    fn last_logits(&self, hidden: Tensor<3>) -> Result<Vec<f32>> {
        let [batch, seq, d_model] = hidden.dims();
        let last = hidden.slice([0..batch, seq - 1..seq, 0..d_model]);
        read_f32(self.model.logits(last))
    }

    /// Per-token log-probs of whole sequences: `out[r][t] = log π(rows[r][t] | rows[r][..t])`,
    /// with `out[r][0] = 0` (the first token has no prefix). One full forward pass.
    pub fn score(&self, rows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let seq_len = rows.iter().map(Vec::len).max().unwrap_or(0);
        if seq_len > self.config.max_seq_len {
            return Err(ModelError::InvalidInput(format!(
                "sequence of {seq_len} tokens exceeds max_seq_len {}",
                self.config.max_seq_len
            )));
        }
        for row in rows {
            check_tokens(row, self.config.vocab_size)?;
        }
        if seq_len < 2 {
            return Ok(rows.iter().map(|r| vec![0.0; r.len()]).collect());
        }
        let mut tokens = Vec::with_capacity(rows.len() * seq_len);
        for row in rows {
            tokens.extend(row.iter().map(|&t| t as i64));
            tokens.extend(std::iter::repeat_n(0, seq_len - row.len()));
        }
        let tokens = int_tensor(tokens, [rows.len(), seq_len], &self.device);
        let logprobs = read_f32(token_logprobs(&self.model, tokens))?;
        Ok(rows
            .iter()
            .enumerate()
            .map(|(r, row)| logprobs[r * seq_len..r * seq_len + row.len()].to_vec())
            .collect())
    }

    /// Per-token log-probs of a [`TrainBatch`]'s rows, `rows · seq_len` values with 0 where
    /// `loss_mask` is 0 (and at `t = 0`) — the layout of `TrainBatch::old_logprobs`. The
    /// output head runs only at the masked-in positions.
    pub fn score_batch(&self, batch: &TrainBatch) -> Result<Vec<f32>> {
        self.score_batch_at(batch, 1.0)
    }

    /// [`Policy::score_batch`] under `softmax(logits / temperature)`: the log-probs of the
    /// distribution a rollout at that temperature was sampled from (see [`crate::sampling`]).
    pub fn score_batch_at(&self, batch: &TrainBatch, temperature: f32) -> Result<Vec<f32>> {
        check_batch(batch, self.config.vocab_size, self.config.max_seq_len)?;
        let mut out = vec![0.0; batch.rows * batch.seq_len];
        let positions = trained_positions(&batch.loss_mask, batch.seq_len);
        if positions.is_empty() {
            return Ok(out);
        }
        let logprobs = selected_logprobs(
            &self.model,
            &batch.tokens,
            batch.rows,
            batch.seq_len,
            &positions,
            temperature,
            &self.device,
        );
        for (&i, lp) in positions.iter().zip(read_f32(logprobs)?) {
            out[i] = lp;
        }
        Ok(out)
    }
}

/// Flat indices `r·T + t` with `t ≥ 1` and `weights[r·T + t] > 0`: the positions a loss needs
/// (position 0 has no prefix and is never trained).
pub(crate) fn trained_positions(weights: &[f32], seq_len: usize) -> Vec<usize> {
    weights
        .iter()
        .enumerate()
        .filter(|&(i, &w)| w > 0.0 && i % seq_len != 0)
        .map(|(i, _)| i)
        .collect()
}

/// Log-probs of the tokens at `positions` (flat indices `r·T + t`, `t ≥ 1`) of right-padded
/// rows; the head and softmax run only there, which is where training time goes when much of a
/// row is context.
///
/// # Shapes
/// - tokens: `rows · seq_len` host ids; output: `[1, N]` with `N = positions.len()`
pub(crate) fn selected_logprobs(
    model: &PolicyModel,
    tokens: &[u32],
    rows: usize,
    seq_len: usize,
    positions: &[usize],
    temperature: f32,
    device: &Device,
) -> Tensor<2> {
    let n = positions.len();
    let d_model = model.d_model();
    // The last position predicts nothing inside a row: run the blocks on T − 1 positions.
    let inputs: Vec<i64> = (0..rows)
        .flat_map(|r| {
            tokens[r * seq_len..(r + 1) * seq_len - 1]
                .iter()
                .map(|&t| t as i64)
        })
        .collect();
    let hidden = model.hidden(int_tensor(inputs, [rows, seq_len - 1], device));
    let rows_of = positions
        .iter()
        .map(|&i| ((i / seq_len) * (seq_len - 1) + i % seq_len - 1) as i64)
        .collect();
    let hidden = hidden
        .reshape([rows * (seq_len - 1), d_model])
        .select(0, int_tensor(rows_of, [n], device)); // [N, D]
    let targets = positions.iter().map(|&i| tokens[i] as i64).collect();
    let logits = model.logits(hidden);
    let logits = if temperature == 1.0 {
        logits
    } else {
        logits.div_scalar(temperature)
    };
    crate::kernels::logprobs(logits, int_tensor(targets, [n], device)).reshape([1, n])
}

/// Per-token log-probs of right-padded rows.
///
/// # Shapes
/// - tokens: `[B, T]` with `T ≥ 2`
/// - output: `[B, T]`; `[b, t] = log π(tokens[b, t] | tokens[b, ..t])`, column 0 is 0
pub(crate) fn token_logprobs(model: &PolicyModel, tokens: Tensor<2, Int>) -> Tensor<2> {
    let [batch, seq] = tokens.dims();
    let device = tokens.device();
    // The last position predicts nothing inside the row: skip it.
    let logits = model.forward(tokens.clone().slice([0..batch, 0..seq - 1]));
    let vocab = logits.dims()[2];
    let targets = tokens
        .slice([0..batch, 1..seq])
        .reshape([batch * (seq - 1)]);
    let picked = crate::kernels::logprobs(logits.reshape([batch * (seq - 1), vocab]), targets)
        .reshape([batch, seq - 1]);
    Tensor::cat(vec![Tensor::zeros([batch, 1], &device), picked], 1)
}

/// Host-side state of one batched decode: which rows are live, what they produced.
struct Decode<'a> {
    prompts: &'a [Vec<u32>],
    opts: &'a SampleOptions,
    rngs: Vec<ChaCha8Rng>,
    /// Per row: most tokens it may still produce in total.
    caps: Vec<usize>,
    /// Original indices of the rows still generating, in batch order.
    active: Vec<usize>,
    /// Common left-padded prompt length.
    prompt_width: usize,
    outputs: Vec<Sampled>,
}

impl<'a> Decode<'a> {
    fn new(
        prompts: &'a [Vec<u32>],
        opts: &'a SampleOptions,
        seeds: &[u64],
        max_seq_len: usize,
    ) -> Self {
        let caps: Vec<usize> = prompts
            .iter()
            .map(|p| opts.max_new_tokens.min(max_seq_len - p.len()))
            .collect();
        Self {
            prompts,
            opts,
            rngs: seeds
                .iter()
                .map(|&s| ChaCha8Rng::seed_from_u64(s))
                .collect(),
            active: (0..prompts.len()).filter(|&r| caps[r] > 0).collect(),
            caps,
            prompt_width: prompts.iter().map(Vec::len).max().unwrap_or(0),
            outputs: vec![Sampled::default(); prompts.len()],
        }
    }

    /// Left padding of row `row` (its prompt sits at the right end of `prompt_width`).
    fn pad(&self, row: usize) -> usize {
        self.prompt_width - self.prompts[row].len()
    }

    /// Left-padded `prompt + generated` rows with positions and a causal + padding bias
    /// `[B, 1, W, W]`. All live rows have generated the same number of tokens.
    fn padded_inputs(&self, rows: &[usize]) -> (Vec<i64>, Vec<i64>, Vec<f32>, usize) {
        let generated = self.outputs[rows[0]].tokens.len();
        let width = self.prompt_width + generated;
        let mut tokens = Vec::with_capacity(rows.len() * width);
        let mut positions = Vec::with_capacity(rows.len() * width);
        let mut bias = Vec::with_capacity(rows.len() * width * width);
        for &row in rows {
            let pad = self.pad(row);
            tokens.extend(std::iter::repeat_n(0, pad));
            tokens.extend(self.prompts[row].iter().map(|&t| t as i64));
            tokens.extend(self.outputs[row].tokens.iter().map(|&t| t as i64));
            positions.extend((0..width).map(|t| t.saturating_sub(pad) as i64));
            for query in 0..width {
                bias.extend((0..width).map(|key| {
                    if key <= query && key >= pad {
                        0.0
                    } else {
                        NEG_BIAS
                    }
                }));
            }
        }
        (tokens, positions, bias, width)
    }

    /// Inputs of one cached decode step: the last token of every live row, its position, and
    /// the padding bias over `cache_len + 1` keys.
    fn step_inputs(&self, cache_len: usize) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
        let mut tokens = Vec::with_capacity(self.active.len());
        let mut positions = Vec::with_capacity(self.active.len());
        let mut bias = Vec::with_capacity(self.active.len() * (cache_len + 1));
        for &row in &self.active {
            let out = &self.outputs[row].tokens;
            tokens.push(out.last().copied().unwrap_or(0) as i64);
            positions.push((self.prompts[row].len() + out.len() - 1) as i64);
            let pad = self.pad(row);
            bias.extend((0..=cache_len).map(|key| if key >= pad { 0.0 } else { NEG_BIAS }));
        }
        (tokens, positions, bias)
    }

    /// Draws one token for every live row from `logits` (`[B_live, V]`, batch order) and
    /// returns the batch positions of the rows that go on; `active` is updated to match.
    fn step(&mut self, logits: &[f32]) -> Vec<usize> {
        let vocab = logits.len() / self.active.len();
        let mut survivors = Vec::with_capacity(self.active.len());
        let mut next_active = Vec::with_capacity(self.active.len());
        for (position, &row) in self.active.iter().enumerate() {
            let row_logits = &logits[position * vocab..(position + 1) * vocab];
            let (token, logprob) = draw(
                row_logits,
                (self.opts.temperature, self.opts.top_p),
                self.opts
                    .logprob_temperature
                    .unwrap_or(self.opts.temperature),
                &mut self.rngs[row],
            );
            let out = &mut self.outputs[row];
            out.tokens.push(token);
            out.logprobs.push(logprob);
            if self.opts.stop_tokens.contains(&token) {
                out.stopped = true;
            } else if out.tokens.len() < self.caps[row] {
                survivors.push(position);
                next_active.push(row);
            }
        }
        self.active = next_active;
        survivors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{test_device, tiny_config};

    fn policy() -> Policy {
        Policy::new(tiny_config(), &test_device()).unwrap()
    }

    fn prompts() -> Vec<Vec<u32>> {
        vec![
            vec![1, 2, 3],
            vec![5],
            vec![7, 8, 9, 10, 11, 12, 13],
            vec![3, 3],
        ]
    }

    fn opts(max_new_tokens: usize, use_kv_cache: bool) -> SampleOptions {
        SampleOptions {
            max_new_tokens,
            use_kv_cache,
            ..SampleOptions::default()
        }
    }

    #[test]
    fn forward_shapes_and_param_count() {
        let policy = policy();
        let config = policy.config();
        let d = config.d_model;
        let expected = (config.vocab_size + config.max_seq_len) * d
            + config.n_layers * (4 * d * d + 2 * d * config.d_ff + 4 * d)
            + 2 * d;
        assert_eq!(policy.num_params(), expected);
        let tokens = int_tensor(vec![1, 2, 3, 4, 5, 6], [2, 3], policy.device());
        assert_eq!(policy.model().forward(tokens).dims(), [2, 3, 40]);
    }

    #[test]
    fn cache_and_recompute_give_the_same_tokens() {
        let policy = policy();
        let seeds = [1, 2, 3, 4];
        let cached = policy.sample(&prompts(), &opts(12, true), &seeds).unwrap();
        let full = policy.sample(&prompts(), &opts(12, false), &seeds).unwrap();
        for (a, b) in cached.iter().zip(&full) {
            assert_eq!(a.tokens, b.tokens);
            assert_eq!(a.tokens.len(), 12);
            for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn a_row_samples_the_same_alone_or_in_a_batch() {
        let policy = policy();
        let seeds = [10, 20, 30, 40];
        let batched = policy.sample(&prompts(), &opts(10, true), &seeds).unwrap();
        for (row, prompt) in prompts().into_iter().enumerate() {
            let alone = policy
                .sample(&[prompt], &opts(10, true), &[seeds[row]])
                .unwrap();
            assert_eq!(alone[0].tokens, batched[row].tokens, "row {row}");
            for (a, b) in alone[0].logprobs.iter().zip(&batched[row].logprobs) {
                assert!((a - b).abs() < 1e-5, "row {row}: {a} vs {b}");
            }
        }
        // Seeds matter; equal seeds repeat.
        let again = policy.sample(&prompts(), &opts(10, true), &seeds).unwrap();
        assert_eq!(again, batched);
        let other = policy
            .sample(&prompts(), &opts(10, true), &[11, 21, 31, 41])
            .unwrap();
        assert_ne!(other, batched);
    }

    /// A batch split into shards (rows grouped by prompt length, decoded in parallel) samples
    /// what the whole batch samples, in the callers' row order.
    #[test]
    fn sharded_sampling_equals_one_batch() {
        let policy = policy();
        let prompts: Vec<Vec<u32>> = (0..13u32)
            .map(|i| (0..1 + (i * 7) % 9).map(|t| (t * 3 + i) % 50 + 1).collect())
            .collect();
        let seeds: Vec<u64> = (0..13).map(|i| 100 + i).collect();
        let whole = SampleOptions {
            shards: 1,
            ..opts(9, true)
        };
        let one = policy.sample(&prompts, &whole, &seeds).unwrap();
        for shards in [2, 3] {
            let split = SampleOptions {
                shards,
                ..whole.clone()
            };
            let many = policy.sample(&prompts, &split, &seeds).unwrap();
            for (row, (a, b)) in one.iter().zip(&many).enumerate() {
                assert_eq!(a.tokens, b.tokens, "{shards} shards, row {row}");
                assert_eq!(a.stopped, b.stopped);
                for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
                    assert!(
                        (x - y).abs() < 1e-5,
                        "{shards} shards, row {row}: {x} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn scoring_matches_sampling_logprobs() {
        let policy = policy();
        let prompts = prompts();
        let sampled = policy
            .sample(&prompts, &opts(9, true), &[5, 6, 7, 8])
            .unwrap();
        let rows: Vec<Vec<u32>> = prompts
            .iter()
            .zip(&sampled)
            .map(|(p, s)| p.iter().chain(&s.tokens).copied().collect())
            .collect();
        let scored = policy.score(&rows).unwrap();
        for ((prompt, s), lp) in prompts.iter().zip(&sampled).zip(&scored) {
            assert_eq!(lp[0], 0.0);
            for (i, &sample_lp) in s.logprobs.iter().enumerate() {
                let score_lp = lp[prompt.len() + i];
                assert!(
                    (score_lp - sample_lp).abs() < 1e-4,
                    "token {i}: score {score_lp} vs sample {sample_lp}"
                );
            }
        }
    }

    #[test]
    fn stop_tokens_and_length_caps() {
        let policy = policy();
        let all_stop = SampleOptions {
            stop_tokens: (0..40).collect(),
            ..opts(10, true)
        };
        let out = policy.sample(&prompts(), &all_stop, &[1, 2, 3, 4]).unwrap();
        assert!(out.iter().all(|s| s.stopped && s.tokens.len() == 1));
        // max_seq_len 48: a 46-token prompt has room for 2 tokens.
        let long = vec![vec![4u32; 46], vec![1]];
        let out = policy.sample(&long, &opts(5, true), &[1, 2]).unwrap();
        assert_eq!(out[0].tokens.len(), 2);
        assert_eq!(out[1].tokens.len(), 5);
        assert!(!out[0].stopped && !out[1].stopped);
        let none = policy.sample(&long, &opts(0, true), &[1, 2]).unwrap();
        assert!(none.iter().all(|s| s.tokens.is_empty()));
        assert!(policy.sample(&[], &opts(3, true), &[]).unwrap().is_empty());
    }

    #[test]
    fn greedy_ignores_the_seed() {
        let policy = policy();
        let greedy = SampleOptions {
            temperature: 0.0,
            ..opts(6, true)
        };
        let a = policy.sample(&prompts(), &greedy, &[1, 2, 3, 4]).unwrap();
        let b = policy.sample(&prompts(), &greedy, &[9, 9, 9, 9]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let policy = policy();
        let o = opts(3, true);
        assert!(matches!(
            policy.sample(&[vec![1]], &o, &[]),
            Err(ModelError::InvalidInput(_))
        ));
        assert!(policy.sample(&[vec![]], &o, &[1]).is_err());
        assert!(policy.sample(&[vec![40]], &o, &[1]).is_err());
        assert!(policy.sample(&[vec![1; 48]], &o, &[1]).is_err());
        assert!(policy.score(&[vec![1; 49]]).is_err());
        assert!(policy.score(&[vec![99, 1]]).is_err());
        assert_eq!(policy.score(&[vec![3]]).unwrap(), vec![vec![0.0]]);
    }
}
