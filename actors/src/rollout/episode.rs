//! The three kinds of episode the lockstep driver steps, behind one trait: the main agent
//! (which may delegate), the sub-agent and the single agent (which use the tools).
use mgrpo_algo::{derive_seed, salt};
use mgrpo_env::protocol::CallForm;
use mgrpo_env::{MainEpisode, MainStep, Segment, SingleEpisode, SubEpisode, ToolStep, Tools};

use crate::rollout::keys::{CallKey, RolloutKey};

/// What the driver must do after a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// Sample the next turn (or the episode is over: see [`Lockstep::is_done`]).
    Next,
    /// Run a sub-agent on this task and deliver its result before the next turn.
    Delegate(String),
    /// Run this tool call (its words, in their form) and deliver its observation before the
    /// next turn.
    Call(String, CallForm),
}

/// The coordinates an episode's draws are seeded from.
pub trait TurnKey: Copy + Ord {
    /// The seed of this episode's `turn`-th sampled turn.
    fn turn_seed(&self, run_seed: u64, turn: u64) -> u64;
    /// The key of call `call` made by this episode (`None`: it cannot delegate).
    fn call(&self, call: u32) -> Option<CallKey>;
    /// The rollout the episode belongs to (a call's: the rollout that made it).
    fn rollout_key(&self) -> RolloutKey;
}

impl TurnKey for RolloutKey {
    fn turn_seed(&self, run_seed: u64, turn: u64) -> u64 {
        derive_seed(
            run_seed,
            &[
                salt::MAIN,
                self.step,
                self.query as u64,
                self.rollout as u64,
                turn,
            ],
        )
    }

    fn call(&self, call: u32) -> Option<CallKey> {
        Some(CallKey {
            rollout: *self,
            call,
        })
    }

    fn rollout_key(&self) -> RolloutKey {
        *self
    }
}

impl TurnKey for CallKey {
    fn turn_seed(&self, run_seed: u64, turn: u64) -> u64 {
        let k = self.rollout;
        derive_seed(
            run_seed,
            &[
                salt::SUB,
                k.step,
                k.query as u64,
                k.rollout as u64,
                self.call as u64,
                turn,
            ],
        )
    }

    fn call(&self, _call: u32) -> Option<CallKey> {
        None
    }

    fn rollout_key(&self) -> RolloutKey {
        self.rollout
    }
}

/// An episode the lockstep driver can step.
pub trait Lockstep {
    /// Its coordinates.
    type Key: TurnKey;
    /// Whether it is over.
    fn is_done(&self) -> bool;
    /// Its transcript so far.
    fn segments(&self) -> &[Segment];
    /// Applies one generated turn (running any tool it asks for). An empty turn ends the
    /// episode with a format error: what happens to an episode out of context room.
    fn play(&mut self, output: &str, corpus: &Tools) -> Turn;
    /// Appends the result of the delegation the last turn asked for.
    fn deliver(&mut self, _result: &str) {}
    /// Appends the observation of the tool call the last turn made.
    fn deliver_output(&mut self, _observation: &str) {}
}

impl Lockstep for MainEpisode {
    type Key = RolloutKey;

    fn is_done(&self) -> bool {
        MainEpisode::is_done(self)
    }

    fn segments(&self) -> &[Segment] {
        MainEpisode::segments(self)
    }

    fn play(&mut self, output: &str, _corpus: &Tools) -> Turn {
        match self.apply(output) {
            MainStep::Delegate(task) => Turn::Delegate(task),
            MainStep::Done => Turn::Next,
        }
    }

    fn deliver(&mut self, result: &str) {
        self.deliver_result(result);
    }
}

impl Lockstep for SubEpisode {
    type Key = CallKey;

    fn is_done(&self) -> bool {
        SubEpisode::is_done(self)
    }

    fn segments(&self) -> &[Segment] {
        SubEpisode::segments(self)
    }

    fn play(&mut self, output: &str, corpus: &Tools) -> Turn {
        match self.apply(output, corpus) {
            ToolStep::Call(call, form) => Turn::Call(call, form),
            ToolStep::Continue | ToolStep::Done => Turn::Next,
        }
    }

    fn deliver_output(&mut self, observation: &str) {
        SubEpisode::deliver_output(self, observation);
    }
}

impl Lockstep for SingleEpisode {
    type Key = RolloutKey;

    fn is_done(&self) -> bool {
        SingleEpisode::is_done(self)
    }

    fn segments(&self) -> &[Segment] {
        SingleEpisode::segments(self)
    }

    fn play(&mut self, output: &str, corpus: &Tools) -> Turn {
        self.apply(output, corpus);
        Turn::Next
    }
}
