//! The one lockstep driver: every active episode samples its next turn in one batch, the
//! episodes apply their turns (running tools), and the delegations of the turn go to the
//! sub-agents as one batch whose results come back in the same order.
//!
//! Episodes that have no room left for another turn end with a format error; an episode's
//! seeds depend only on its own key and turn, never on its batch.
use std::future::Future;

use mgrpo_algo::Trajectory;
use mgrpo_env::protocol::CallForm;
use mgrpo_env::tool_call::observation;
use mgrpo_models::ModelError;

use crate::mcp::{CallStatus, McpTools, ToolUse};
use crate::role_codec::RoleCodec;
use crate::rollout::episode::{Lockstep, Turn, TurnKey};
use crate::rollout::facts::Facts;
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
    /// The tool calls it made, in order.
    pub tool_uses: Vec<ToolUse>,
    /// Tokens it generated.
    pub generated_tokens: usize,
}

/// What the driver needs besides the episodes.
pub struct Drive<'a, T> {
    /// Where turns come from.
    pub turns: &'a mut T,
    /// The role's codec.
    pub codec: &'a RoleCodec,
    /// The facts each episode is asked in: their corpus tools (`search`, `open`).
    pub facts: Facts<'a>,
    /// The run seed.
    pub run_seed: u64,
    /// Turn limit of these episodes.
    pub max_turns: usize,
    /// The task's tool servers, where the episodes may call tools.
    pub tools: Option<&'a McpTools>,
}

/// Runs one turn's tool calls: on the tool box, or — on a node without one — each an error
/// observation.
async fn run_tools(tools: Option<&McpTools>, calls: &[(String, CallForm)]) -> Vec<ToolUse> {
    match tools {
        Some(t) => t.run_turn(calls).await,
        None => calls
            .iter()
            .map(|(call, form)| ToolUse {
                call: call.clone(),
                tool: None,
                status: CallStatus::ServerFailed,
                observation: observation(*form, Err("no tool servers on this node"), 64),
            })
            .collect(),
    }
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
        // Each episode's corpus: the one of the facts it is asked in.
        let corpora: Vec<_> = keys
            .iter()
            .map(|k| self.facts.task(&k.rollout_key()).tools())
            .collect();
        let mut traces: Vec<Trace> = eps
            .iter()
            .map(|e| {
                let mut t = Trace::default();
                t.sync(e.segments());
                t
            })
            .collect();
        let mut calls: Vec<Vec<SubOutcome>> = vec![Vec::new(); eps.len()];
        let mut tool_uses: Vec<Vec<ToolUse>> = vec![Vec::new(); eps.len()];
        let mut generated = vec![0usize; eps.len()];
        let room = self.turns.room();
        for turn in 0..self.max_turns as u64 {
            // What arrived since the last turn becomes one message before the room check.
            for (t, e) in traces.iter_mut().zip(&eps) {
                if !e.is_done() {
                    t.flush(self.codec)?;
                }
            }
            let active: Vec<usize> = (0..eps.len())
                .filter(|&i| !eps[i].is_done() && traces[i].tokens().len() < room)
                .collect();
            for (i, ep) in eps.iter_mut().enumerate() {
                if !ep.is_done() && !active.contains(&i) {
                    ep.play("", corpora[i]);
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
            let mut tool_calls = Vec::new();
            for (&i, s) in active.iter().zip(&out) {
                traces[i].sampled(self.codec, s)?;
                generated[i] += s.tokens.len();
                let next = eps[i].play(&self.codec.turn_text(&s.tokens), corpora[i]);
                traces[i].sync(eps[i].segments());
                match next {
                    Turn::Delegate(task) => {
                        if let Some(key) = keys[i].call(calls[i].len() as u32) {
                            jobs.push(SubJob { key, task });
                            waiting.push(i);
                        }
                    }
                    Turn::Call(call, form) => tool_calls.push((i, call, form)),
                    Turn::Next => {}
                }
            }
            // One at a time, in the episodes' order: a server's state (and so every
            // observation) then depends on the seeds alone, not on which call came first.
            let (who, turn_calls): (Vec<usize>, Vec<(String, CallForm)>) =
                tool_calls.into_iter().map(|(i, c, f)| (i, (c, f))).unzip();
            for (i, used) in who
                .into_iter()
                .zip(run_tools(self.tools, &turn_calls).await)
            {
                eps[i].deliver_output(&used.observation);
                traces[i].sync(eps[i].segments());
                tool_uses[i].push(used);
            }
            if !jobs.is_empty() {
                let results = delegate(jobs).await?;
                for (i, r) in waiting.into_iter().zip(results) {
                    eps[i].deliver(&r.result);
                    traces[i].sync(eps[i].segments());
                    calls[i].push(r);
                }
            }
        }
        eps.into_iter()
            .zip(traces)
            .zip(calls)
            .zip(tool_uses)
            .zip(generated)
            .map(|((((episode, t), calls), tool_uses), generated_tokens)| {
                Ok(Driven {
                    episode,
                    trajectory: t.into_trajectory(self.codec)?,
                    calls,
                    tool_uses,
                    generated_tokens,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mgrpo_env::{Split, SubEpisode, SubExpert, Task, TextCodec, World, run_expert_episode};
    use mgrpo_models::hf::ChatMessage;

    use super::*;
    use crate::config::Config;
    use crate::role_codec::tests::chat_codec;
    use crate::rollout::keys::{CallKey, RolloutKey};
    use crate::rollout::turns::ExpertTurns;

    fn tiny_task() -> Task {
        let config = Config::parse(
            include_str!("../../../examples/tiny.toml"),
            Path::new("tiny.toml"),
        )
        .unwrap();
        Task::World(Box::new(World::generate(&config.world).unwrap()))
    }

    /// The sub-agent expert's calls on the first `n` train questions when it runs alone, and the
    /// same calls driven in lockstep through `codec` (its text tokenized as a turn and decoded
    /// back like a policy's); each driven call must act exactly as it did alone.
    async fn expert_alone_and_driven(
        task: &Task,
        codec: &RoleCodec,
        n: usize,
    ) -> Vec<Driven<SubEpisode>> {
        let world = task.world().unwrap();
        let alone: Vec<SubEpisode> = world
            .questions(Split::Train)
            .iter()
            .take(n)
            .enumerate()
            .flat_map(|(i, q)| run_expert_episode(world, q, 0.0, 0.0, i as u64).calls)
            .collect();
        assert!(alone.len() >= n, "the main expert delegates");
        let max_turns = world.config.max_sub_turns;
        let episodes: Vec<(CallKey, SubEpisode)> = alone
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let rollout = RolloutKey {
                    step: 0,
                    query: 0,
                    rollout: i as u32,
                };
                let key = CallKey { rollout, call: 0 };
                (key, SubEpisode::new(e.task(), max_turns))
            })
            .collect();
        let mut turns =
            ExpertTurns::new(Facts::only(task), codec, |_: &CallKey, _: &SubEpisode| {
                SubExpert::new(0.0, 0)
            });
        let driven = Drive {
            turns: &mut turns,
            codec,
            facts: Facts::only(task),
            run_seed: 3,
            max_turns,
            tools: None,
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
        driven
    }

    /// Through the world's word-level tokenizer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_expert_through_the_driver_acts_as_it_does_alone() {
        let task = tiny_task();
        let codec = RoleCodec::world(TextCodec::build(task.world().unwrap()).unwrap()).unwrap();
        expert_alone_and_driven(&task, &codec, 12).await;
    }

    /// Through a byte-level BPE tokenizer and a ChatML template (turns closed with
    /// `<|im_end|>`): the same acts, and each trajectory is the template's rendering of the
    /// episode's conversation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_expert_through_a_chat_codec_acts_as_it_does_alone() {
        let task = tiny_task();
        let (codec, tokenizer) = chat_codec();
        for d in expert_alone_and_driven(&task, &codec, 8).await {
            let mut convo: Vec<ChatMessage> = Vec::new();
            for s in d.episode.segments() {
                let role = if s.generated { "assistant" } else { "user" };
                match convo.last_mut() {
                    Some(m) if m.role == role => m.content = format!("{} {}", m.content, s.text),
                    _ => convo.push(ChatMessage::new(role, s.text.clone())),
                }
            }
            let ends_with_turn = convo.last().is_some_and(|m| m.role == "assistant");
            let mut text = tokenizer.render_chat(&convo, !ends_with_turn).unwrap();
            if ends_with_turn {
                // The last turn's `<|im_end|>` ends the trace; the template adds a newline.
                text = text.strip_suffix('\n').unwrap().to_string();
            }
            assert_eq!(d.trajectory.tokens, tokenizer.encode(&text).unwrap());
        }
    }
}
