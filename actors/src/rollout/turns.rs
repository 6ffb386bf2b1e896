//! Where an episode's turns come from: a policy model sampling a batch of prompts. The driver
//! asks a [`TurnSource`] for the next turn of every active episode at once.
use mgrpo_env::TextCodec;
use mgrpo_models::{ModelError, Policy, SampleOptions, Sampled};

use crate::config::SamplingConfig;
use crate::rollout::keys::Mode;
use crate::rollout::trace::Trace;

/// Produces the next turn of a batch of episodes.
pub trait TurnSource {
    /// Longest context (prompt + turn) it accepts; an episode with less room left ends.
    fn room(&self) -> usize;
    /// The next turn of each trace, seeded per row (blocking: call from a blocking context).
    fn turns(&self, traces: &[&Trace], seeds: &[u64]) -> Result<Vec<Sampled>, ModelError>;
}

/// A policy sampling with KV cache: temperature and top-p in training, greedy in evaluation.
pub struct PolicyTurns<'a> {
    policy: &'a Policy,
    options: SampleOptions,
}

impl<'a> PolicyTurns<'a> {
    /// Turns of `policy` under `sampling` in `mode`.
    pub fn new(
        policy: &'a Policy,
        codec: &TextCodec,
        sampling: &SamplingConfig,
        mode: Mode,
    ) -> Self {
        let options = SampleOptions {
            max_new_tokens: sampling.max_turn_tokens,
            temperature: if mode == Mode::Eval {
                0.0
            } else {
                sampling.temperature
            },
            top_p: sampling.top_p,
            stop_tokens: codec.stop_ids().to_vec(),
            use_kv_cache: true,
        };
        Self { policy, options }
    }
}

impl TurnSource for PolicyTurns<'_> {
    fn room(&self) -> usize {
        // A turn may take `max_new_tokens`; the context must leave that much room.
        self.policy
            .config()
            .max_seq_len
            .saturating_sub(self.options.max_new_tokens)
    }

    fn turns(&self, traces: &[&Trace], seeds: &[u64]) -> Result<Vec<Sampled>, ModelError> {
        let prompts: Vec<Vec<u32>> = traces.iter().map(|t| t.tokens().to_vec()).collect();
        self.policy.sample(&prompts, &self.options, seeds)
    }
}
