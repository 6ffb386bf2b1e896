//! The one dispatch from a variant to its episodes: the main agent with sub-agents behind a
//! delegation function (`mgrpo`, `frozen-sub`, `shared`), or the single agent (`single`). The
//! planner and offline evaluation both roll out through here, with turns from a policy or, for
//! a role swapped to `expert`, from the world's scripted expert.
use std::future::Future;

use std::collections::BTreeMap;

use mgrpo_algo::{Algo, Trajectory, derive_seed, salt};
use mgrpo_env::{
    MainEpisode, MainExpert, Question, SingleEpisode, SingleExpert, SubEpisode, SubExpert, Task,
};
use mgrpo_models::ModelError;

use crate::config::SamplingConfig;
use crate::context::{ContextError, NodeContext};
use crate::mcp::McpTools;
use crate::policy::chunks::PolicyId;
use crate::role::{LearnerRole, sub_model};
use crate::role_codec::RoleCodec;
use crate::rollout::episode::Lockstep;
use crate::rollout::facts::Facts;
use crate::rollout::keys::{CallKey, MainOutcome, Mode, RolloutKey, SubJob, SubOutcome};
use crate::rollout::lockstep::{Drive, Driven};
use crate::rollout::turns::{Expert, ExpertTurns, PolicyTurns, Serve, TurnSource};

/// The scripted experts that serve a swapped role make no mistakes: swapping a role to the
/// expert measures how much the other role gains from a perfect partner.
pub const EXPERT_NOISE: f64 = 0.0;

/// A model's side of its episodes: its codec and its sampling shards.
#[derive(Clone, Copy)]
struct Side<'a> {
    codec: &'a RoleCodec,
    shards: usize,
}

impl<'a> Side<'a> {
    fn of(ctx: &'a NodeContext, role: LearnerRole) -> Result<Self, ContextError> {
        Ok(Self {
            codec: ctx.codec(role)?,
            shards: ctx.config.models.of(role).shards,
        })
    }
}

/// What every rollout of a node shares: the roles' codecs, task, sampling settings, run seed,
/// mode.
#[derive(Clone, Copy)]
pub struct Rollouts<'a> {
    /// The model of main-agent (and single-agent) episodes.
    main: Side<'a>,
    /// The model of sub-agent episodes (the main model where the model is shared).
    sub: Side<'a>,
    task: &'a Task,
    /// The facts each rollout is asked in (the task's own, or a variant of the world in RL).
    facts: Facts<'a>,
    sampling: &'a SamplingConfig,
    run_seed: u64,
    mode: Mode,
    /// The task's tool servers (on the executors' node, where the task has tools).
    tools: Option<&'a McpTools>,
}

/// The outcomes of main-agent or single-agent episodes; `ending` gives an episode's format
/// and final answer.
fn outcomes<E: Lockstep>(
    jobs: &[(RolloutKey, &Question)],
    driven: Vec<Driven<E>>,
    ending: impl Fn(&E) -> (bool, Option<&str>),
) -> Vec<(MainOutcome, Trajectory)> {
    jobs.iter()
        .zip(driven)
        .map(|((key, _), d)| {
            let (format, answer) = ending(&d.episode);
            let answer = answer.map(str::to_string);
            let transcript = d
                .episode
                .segments()
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            (
                MainOutcome {
                    key: *key,
                    format,
                    answer,
                    calls: d.calls,
                    generated_tokens: d.generated_tokens,
                    transcript,
                },
                d.trajectory,
            )
        })
        .collect()
}

/// A no-op delegation for episodes that cannot delegate.
async fn no_delegation(_: Vec<SubJob>) -> Result<Vec<SubOutcome>, ModelError> {
    Ok(Vec::new())
}

impl<'a> Rollouts<'a> {
    /// Rollouts in `mode` with the node's task, the roles' codecs and settings.
    pub fn new(ctx: &'a NodeContext, mode: Mode) -> Result<Self, ContextError> {
        Ok(Self {
            main: Side::of(ctx, LearnerRole::Main)?,
            sub: Side::of(ctx, sub_model(ctx.config.algo.variant))?,
            task: &ctx.task,
            facts: Facts::of(ctx, mode),
            sampling: &ctx.config.sampling,
            run_seed: ctx.config.run.seed,
            mode,
            tools: None,
        })
    }

    /// The same rollouts with the task's tool servers: sub-agents may call their tools.
    pub fn with_tools(mut self, tools: Option<&'a McpTools>) -> Self {
        self.tools = tools;
        self
    }

    /// Runs `episodes` to the end with turns from `serve`: the policy, or the scripted
    /// experts `expert` makes for each episode.
    async fn run<E, X, M, F, Fut, Err>(
        &self,
        side: Side<'_>,
        serve: Serve<'_>,
        max_turns: usize,
        episodes: Vec<(E::Key, E)>,
        expert: M,
        delegate: F,
    ) -> Result<Vec<Driven<E>>, Err>
    where
        E: Lockstep,
        X: Expert<E>,
        M: Fn(&E::Key, &E) -> X,
        F: FnMut(Vec<SubJob>) -> Fut,
        Fut: Future<Output = Result<Vec<SubOutcome>, Err>>,
        Err: From<ModelError>,
    {
        match serve {
            Serve::Policy(policy) => {
                let mut turns =
                    PolicyTurns::new(policy, side.codec, self.sampling, self.mode, side.shards);
                self.drive(side.codec, &mut turns, max_turns, episodes, delegate)
                    .await
            }
            Serve::Garbled(policy) => {
                let mut turns =
                    PolicyTurns::new(policy, side.codec, self.sampling, self.mode, side.shards)
                        .garbled();
                self.drive(side.codec, &mut turns, max_turns, episodes, delegate)
                    .await
            }
            Serve::Expert => {
                // A swap to `expert` is refused for a task without one (swap::target): a
                // dataset reached by no swap gets the experts' error at their first turn.
                let mut turns = ExpertTurns::new(self.facts, side.codec, expert);
                self.drive(side.codec, &mut turns, max_turns, episodes, delegate)
                    .await
            }
        }
    }

    async fn drive<E, T, F, Fut, Err>(
        &self,
        codec: &RoleCodec,
        turns: &mut T,
        max_turns: usize,
        episodes: Vec<(E::Key, E)>,
        delegate: F,
    ) -> Result<Vec<Driven<E>>, Err>
    where
        E: Lockstep,
        T: TurnSource<E>,
        F: FnMut(Vec<SubJob>) -> Fut,
        Fut: Future<Output = Result<Vec<SubOutcome>, Err>>,
        Err: From<ModelError>,
    {
        Drive {
            turns,
            codec,
            facts: self.facts,
            run_seed: self.run_seed,
            max_turns,
            tools: self.tools,
        }
        .run(episodes, delegate)
        .await
    }

    /// The seed of the scripted expert acting for the episode at `path`.
    fn expert_seed(&self, path: &[u64]) -> u64 {
        let full: Vec<u64> = std::iter::once(salt::EXPERT)
            .chain(path.iter().copied())
            .collect();
        derive_seed(self.run_seed, &full)
    }

    /// Main-agent rollouts; each turn's delegations go to `run_subs` as one batch (an executor
    /// request, or a local sub-agent driver) and come back in the same order.
    pub async fn main<F, Fut, E>(
        &self,
        serve: Serve<'_>,
        jobs: &[(RolloutKey, &Question)],
        run_subs: F,
    ) -> Result<Vec<(MainOutcome, Trajectory)>, E>
    where
        F: FnMut(Vec<SubJob>) -> Fut,
        Fut: Future<Output = Result<Vec<SubOutcome>, E>>,
        E: From<ModelError>,
    {
        let max_turns = self.task.limits().max_main_turns;
        let episodes = jobs
            .iter()
            .map(|(k, q)| (*k, MainEpisode::new(&q.text, max_turns)))
            .collect();
        let questions: BTreeMap<RolloutKey, &str> =
            jobs.iter().map(|(k, q)| (*k, q.text.as_str())).collect();
        let expert = |k: &RolloutKey, _: &MainEpisode| {
            let seed = self.expert_seed(&[k.step, k.query as u64, k.rollout as u64]);
            MainExpert::new(questions.get(k).copied().unwrap_or(""), EXPERT_NOISE, seed)
        };
        let driven = self
            .run(self.main, serve, max_turns, episodes, expert, run_subs)
            .await?;
        Ok(outcomes(jobs, driven, |e| (e.format_ok(), e.answer())))
    }

    /// Single-agent rollouts (the `single` baseline).
    pub async fn single(
        &self,
        serve: Serve<'_>,
        jobs: &[(RolloutKey, &Question)],
    ) -> Result<Vec<(MainOutcome, Trajectory)>, ModelError> {
        let max_turns = self.task.limits().max_single_turns;
        let episodes = jobs
            .iter()
            .map(|(k, q)| (*k, SingleEpisode::new(&q.text, max_turns)))
            .collect();
        let questions: BTreeMap<RolloutKey, &str> =
            jobs.iter().map(|(k, q)| (*k, q.text.as_str())).collect();
        let expert = |k: &RolloutKey, _: &SingleEpisode| {
            let seed = self.expert_seed(&[k.step, k.query as u64, k.rollout as u64]);
            SingleExpert::new(questions.get(k).copied().unwrap_or(""), EXPERT_NOISE, seed)
        };
        let driven = self
            .run(self.main, serve, max_turns, episodes, expert, no_delegation)
            .await?;
        Ok(outcomes(jobs, driven, |e| (e.format_ok(), e.answer())))
    }

    /// Sub-agent calls; each outcome carries `policy` (the id of the version that ran it) and
    /// `r_expert` 0 until judged.
    pub async fn sub(
        &self,
        serve: Serve<'_>,
        id: PolicyId,
        jobs: &[SubJob],
    ) -> Result<Vec<(SubOutcome, Trajectory)>, ModelError> {
        let max_turns = self.task.limits().max_sub_turns;
        let episodes = jobs
            .iter()
            .map(|j| {
                let e = SubEpisode::new(&j.task, max_turns);
                let e = if self.tools.is_some() {
                    e.with_tool_calls()
                } else {
                    e
                };
                (j.key, e)
            })
            .collect();
        let expert = |k: &CallKey, _: &SubEpisode| {
            let r = k.rollout;
            let path = [r.step, r.query as u64, r.rollout as u64, k.call as u64];
            SubExpert::new(EXPERT_NOISE, self.expert_seed(&path))
        };
        let driven = self
            .run(self.sub, serve, max_turns, episodes, expert, no_delegation)
            .await?;
        Ok(jobs
            .iter()
            .zip(driven)
            .map(|(j, d)| {
                (
                    SubOutcome {
                        key: j.key,
                        task: d.episode.task().to_string(),
                        result: d.episode.result().to_string(),
                        format: d.episode.format_ok(),
                        expert: 0.0,
                        generated_tokens: d.generated_tokens,
                        policy: id,
                        tools: d.tool_uses,
                    },
                    d.trajectory,
                )
            })
            .collect())
    }

    /// The rollouts of `variant`: single-agent episodes for `single`, main-agent episodes with
    /// delegations to `run_subs` otherwise.
    pub async fn of_variant<F, Fut, E>(
        &self,
        variant: Algo,
        serve: Serve<'_>,
        jobs: &[(RolloutKey, &Question)],
        run_subs: F,
    ) -> Result<Vec<(MainOutcome, Trajectory)>, E>
    where
        F: FnMut(Vec<SubJob>) -> Fut,
        Fut: Future<Output = Result<Vec<SubOutcome>, E>>,
        E: From<ModelError>,
    {
        if variant.uses_sub_agents() {
            self.main(serve, jobs, run_subs).await
        } else {
            Ok(self.single(serve, jobs).await?)
        }
    }
}
