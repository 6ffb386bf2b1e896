//! The one lockstep driver: every active episode samples its next turn in one batch, the
//! episodes apply their turns (running tools), and the delegations of the turn go to the
//! sub-agents as one batch whose results come back in the same order.
//!
//! Episodes that have no room left for another turn end with a format error; an episode's
//! seeds depend only on its own key and turn, never on its batch.
use std::future::Future;

use mgrpo_algo::Trajectory;
use mgrpo_env::{TextCodec, World};
use mgrpo_models::ModelError;

use crate::rollout::episode::{Lockstep, Turn, TurnKey};
use crate::rollout::keys::{SubJob, SubOutcome};
use crate::rollout::trace::Trace;
use crate::rollout::turns::{TurnRequest, TurnSource};

/// One finished episode.
pub struct Driven<E> {
    /// The episode in its final state.
    pub episode: E,
    /// What its policy saw and sampled.
    pub trajectory: Trajectory,
    /// The calls it delegated, in call order.
    pub calls: Vec<SubOutcome>,
    /// Tokens it generated.
    pub generated_tokens: usize,
}

/// What the driver needs besides the episodes.
pub struct Drive<'a, T> {
    /// Where turns come from.
    pub turns: &'a mut T,
    /// The tokenizer.
    pub codec: &'a TextCodec,
    /// The world (its tools).
    pub world: &'a World,
    /// The run seed.
    pub run_seed: u64,
    /// Turn limit of these episodes.
    pub max_turns: usize,
}

impl<T> Drive<'_, T> {
    /// Runs `episodes` (with their keys) to the end. `delegate` runs one turn's delegations
    /// (a request to the executors, or a local sub-agent driver); it is never called for
    /// episodes that cannot delegate.
    pub async fn run<E, F, Fut, Err>(
        self,
        episodes: Vec<(E::Key, E)>,
        mut delegate: F,
    ) -> Result<Vec<Driven<E>>, Err>
    where
        E: Lockstep,
        T: TurnSource<E>,
        F: FnMut(Vec<SubJob>) -> Fut,
        Fut: Future<Output = Result<Vec<SubOutcome>, Err>>,
        Err: From<ModelError>,
    {
        let (keys, mut eps): (Vec<E::Key>, Vec<E>) = episodes.into_iter().unzip();
        let mut traces: Vec<Trace> = eps
            .iter()
            .map(|e| {
                let mut t = Trace::default();
                t.sync(self.codec, e.segments());
                t
            })
            .collect();
        let mut calls: Vec<Vec<SubOutcome>> = vec![Vec::new(); eps.len()];
        let mut generated = vec![0usize; eps.len()];
        let room = self.turns.room();
        for turn in 0..self.max_turns as u64 {
            let active: Vec<usize> = (0..eps.len())
                .filter(|&i| !eps[i].is_done() && traces[i].tokens().len() < room)
                .collect();
            for (i, ep) in eps.iter_mut().enumerate() {
                if !ep.is_done() && !active.contains(&i) {
                    ep.play("", self.world);
                }
            }
            if active.is_empty() {
                break;
            }
            let rows: Vec<TurnRequest<'_, E>> = active
                .iter()
                .map(|&i| TurnRequest {
                    key: &keys[i],
                    episode: &eps[i],
                    trace: &traces[i],
                    seed: keys[i].turn_seed(self.run_seed, turn),
                })
                .collect();
            let out = tokio::task::block_in_place(|| self.turns.turns(&rows))?;
            drop(rows);
            let mut jobs = Vec::new();
            let mut waiting = Vec::new();
            for (&i, s) in active.iter().zip(&out) {
                traces[i].sampled(s);
                generated[i] += s.tokens.len();
                let next = eps[i].play(&self.codec.decode(&s.tokens), self.world);
                traces[i].sync(self.codec, eps[i].segments());
                if let Turn::Delegate(task) = next
                    && let Some(key) = keys[i].call(calls[i].len() as u32)
                {
                    jobs.push(SubJob { key, task });
                    waiting.push(i);
                }
            }
            if !jobs.is_empty() {
                let results = delegate(jobs).await?;
                for (i, r) in waiting.into_iter().zip(results) {
                    eps[i].deliver(&r.result);
                    traces[i].sync(self.codec, eps[i].segments());
                    calls[i].push(r);
                }
            }
        }
        Ok(eps
            .into_iter()
            .zip(traces)
            .zip(calls)
            .zip(generated)
            .map(|(((episode, t), calls), generated_tokens)| Driven {
                episode,
                trajectory: t.into_trajectory(),
                calls,
                generated_tokens,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mgrpo_env::{Split, SubEpisode, SubExpert, TextCodec, World, run_expert_episode};

    use super::*;
    use crate::config::Config;
    use crate::rollout::keys::{CallKey, RolloutKey};
    use crate::rollout::turns::ExpertTurns;

    /// The sub-agent expert driven in lockstep through the driver (its text tokenized and
    /// decoded like a policy's) returns exactly what it returns when it runs alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_expert_through_the_driver_acts_as_it_does_alone() {
        let config = Config::parse(
            include_str!("../../../examples/tiny.toml"),
            Path::new("tiny.toml"),
        )
        .unwrap();
        let world = World::generate(&config.world).unwrap();
        let codec = TextCodec::build(&world).unwrap();
        let alone: Vec<SubEpisode> = world
            .questions(Split::Train)
            .iter()
            .take(12)
            .enumerate()
            .flat_map(|(i, q)| run_expert_episode(&world, q, 0.0, 0.0, i as u64).calls)
            .collect();
        assert!(alone.len() >= 12, "the main expert delegates");
        let max_turns = world.config.max_sub_turns;
        let episodes: Vec<(CallKey, SubEpisode)> = alone
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let key = CallKey {
                    rollout: RolloutKey {
                        step: 0,
                        query: 0,
                        rollout: i as u32,
                    },
                    call: 0,
                };
                (key, SubEpisode::new(e.task(), max_turns))
            })
            .collect();
        let mut turns = ExpertTurns::new(&world, &codec, |_: &CallKey, _: &SubEpisode| {
            SubExpert::new(0.0, 0)
        });
        let driven = Drive {
            turns: &mut turns,
            codec: &codec,
            world: &world,
            run_seed: 3,
            max_turns,
        }
        .run(episodes, |_| async { Ok::<_, ModelError>(Vec::new()) })
        .await
        .unwrap();
        for (a, d) in alone.iter().zip(&driven) {
            assert_eq!(d.episode.result(), a.result(), "task {}", a.task());
            assert_eq!(d.episode.format_ok(), a.format_ok());
            assert_eq!(d.episode.segments().len(), a.segments().len());
            assert!(d.trajectory.logprobs.iter().all(|l| *l == 0.0));
        }
    }
}
