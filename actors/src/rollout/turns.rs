//! Where an episode's turns come from: a policy model sampling a batch of prompts, or the
//! world's scripted experts acting on each episode through the same protocol text. The driver
//! asks a [`TurnSource`] for the next turn of every active episode at once.
use std::collections::BTreeMap;

use mgrpo_env::{
    MainEpisode, MainExpert, SingleEpisode, SingleExpert, SubEpisode, SubExpert, World,
};
use mgrpo_models::{ModelError, Policy, SampleOptions, Sampled};

use crate::config::SamplingConfig;
use crate::faults::{FaultPoint, Faults};
use crate::role::Role;
use crate::role_codec::RoleCodec;
use crate::rollout::episode::{Lockstep, TurnKey};
use crate::rollout::facts::Facts;
use crate::rollout::keys::Mode;
use crate::rollout::trace::Trace;

/// One active episode asking for its next turn.
pub struct TurnRequest<'a, E: Lockstep> {
    /// Its coordinates.
    pub key: &'a E::Key,
    /// Its state.
    pub episode: &'a E,
    /// What its policy has seen and sampled so far.
    pub trace: &'a Trace,
    /// The seed of this turn.
    pub seed: u64,
}

/// Produces the next turn of a batch of episodes.
pub trait TurnSource<E: Lockstep> {
    /// Longest context (prompt + turn) it accepts; an episode with less room left ends.
    fn room(&self) -> usize;
    /// The next turn of each row (blocking: call from a blocking context).
    fn turns(&mut self, rows: &[TurnRequest<'_, E>]) -> Result<Vec<Sampled>, ModelError>;
}

/// What an inference actor runs a role's turns with: its policy, or the world's scripted
/// expert for the role (a swap to `expert`).
#[derive(Clone, Copy)]
pub enum Serve<'a> {
    /// Sample from the policy.
    Policy(&'a Policy),
    /// Sample from the policy at a temperature so high that its output is garbage tokens (an
    /// injected [`FaultPoint::Output`]: malformed model output). Log-probs stay those at the
    /// configured temperature (what the learner computes), so the turns are still valid to
    /// train on.
    Garbled(&'a Policy),
    /// Let the scripted expert act.
    Expert,
}

/// A policy sampling with KV cache: temperature and top-p in training, greedy in evaluation.
pub struct PolicyTurns<'a> {
    policy: &'a Policy,
    options: SampleOptions,
}

/// The temperature of [`Serve::Garbled`] turns: near-uniform over the vocabulary.
const GARBLED_TEMPERATURE: f32 = 1e4;

impl<'a> Serve<'a> {
    /// This source for a request of `role`, garbled if a [`FaultPoint::Output`] fault strikes
    /// it now.
    pub fn under_faults(self, faults: &Faults, role: Role) -> Self {
        if faults.strike_now(FaultPoint::Output(role)).is_err() {
            self.garbled()
        } else {
            self
        }
    }

    /// The same source, its policy's output garbled (the expert stays the expert).
    pub fn garbled(self) -> Self {
        match self {
            Serve::Policy(p) | Serve::Garbled(p) => Serve::Garbled(p),
            Serve::Expert => Serve::Expert,
        }
    }
}

impl<'a> PolicyTurns<'a> {
    /// The same turns, garbled (see [`Serve::Garbled`]).
    pub fn garbled(mut self) -> Self {
        self.options.logprob_temperature = Some(self.options.temperature);
        self.options.temperature = GARBLED_TEMPERATURE;
        self.options.top_p = 1.0;
        self
    }

    /// Turns of `policy` under `sampling` in `mode`, its batches decoded in `shards` parts.
    pub fn new(
        policy: &'a Policy,
        codec: &RoleCodec,
        sampling: &SamplingConfig,
        mode: Mode,
        shards: usize,
    ) -> Self {
        let options = SampleOptions {
            max_new_tokens: sampling.max_turn_tokens,
            temperature: if mode == Mode::Eval {
                0.0
            } else {
                sampling.temperature
            },
            top_p: sampling.top_p,
            logprob_temperature: None,
            stop_tokens: codec.stop_ids().to_vec(),
            use_kv_cache: true,
            shards,
        };
        Self { policy, options }
    }
}

impl<E: Lockstep> TurnSource<E> for PolicyTurns<'_> {
    fn room(&self) -> usize {
        // A turn may take `max_new_tokens`; the context must leave that much room.
        self.policy
            .config()
            .max_seq_len
            .saturating_sub(self.options.max_new_tokens)
    }

    fn turns(&mut self, rows: &[TurnRequest<'_, E>]) -> Result<Vec<Sampled>, ModelError> {
        let prompts: Vec<Vec<u32>> = rows.iter().map(|r| r.trace.tokens().to_vec()).collect();
        let seeds: Vec<u64> = rows.iter().map(|r| r.seed).collect();
        self.policy.sample(&prompts, &self.options, &seeds)
    }
}

/// A scripted expert that can act on episodes of type `E`.
pub trait Expert<E> {
    /// The next turn's text.
    fn act(&mut self, world: &World, episode: &E) -> String;
}

impl Expert<SubEpisode> for SubExpert {
    fn act(&mut self, world: &World, episode: &SubEpisode) -> String {
        SubExpert::act(self, world, episode)
    }
}

impl Expert<MainEpisode> for MainExpert {
    fn act(&mut self, world: &World, episode: &MainEpisode) -> String {
        MainExpert::act(self, world, episode)
    }
}

impl Expert<SingleEpisode> for SingleExpert {
    fn act(&mut self, world: &World, episode: &SingleEpisode) -> String {
        SingleExpert::act(self, world, episode)
    }
}

/// Scripted experts as a turn source: one expert per episode, made by `make` from the
/// episode's key and first state (so its mistakes are seeded by the episode's coordinates),
/// its text tokenized as if sampled (log-prob 0: expert turns are never trained on).
pub struct ExpertTurns<'a, E: Lockstep, X, F> {
    facts: Facts<'a>,
    codec: &'a RoleCodec,
    make: F,
    experts: BTreeMap<E::Key, X>,
}

impl<'a, E: Lockstep, X: Expert<E>, F: Fn(&E::Key, &E) -> X> ExpertTurns<'a, E, X, F> {
    /// Experts made by `make`, each acting in the world its episode is asked in (`facts`).
    pub fn new(facts: Facts<'a>, codec: &'a RoleCodec, make: F) -> Self {
        Self {
            facts,
            codec,
            make,
            experts: BTreeMap::new(),
        }
    }
}

impl<E: Lockstep, X: Expert<E>, F: Fn(&E::Key, &E) -> X> TurnSource<E>
    for ExpertTurns<'_, E, X, F>
{
    fn room(&self) -> usize {
        usize::MAX
    }

    fn turns(&mut self, rows: &[TurnRequest<'_, E>]) -> Result<Vec<Sampled>, ModelError> {
        rows.iter()
            .map(|r| {
                let expert = self
                    .experts
                    .entry(*r.key)
                    .or_insert_with(|| (self.make)(r.key, r.episode));
                let world = self
                    .facts
                    .task(&r.key.rollout_key())
                    .world()
                    .ok_or_else(|| {
                        ModelError::InvalidInput(
                            "this task has no scripted expert (only the generated world has one)"
                                .into(),
                        )
                    })?;
                self.codec.scripted_turn(&expert.act(world, r.episode))
            })
            .collect()
    }
}
