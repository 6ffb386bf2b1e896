//! Rollout drivers: a policy model acting in the task world's episodes, batched in lockstep.
//!
//! Each driver keeps, per episode, the token trace of its context (prompt and observations:
//! context tokens; sampled tokens: generated, with their sampling-time log-probs). Observations
//! are tokenized segment by segment, which the tokenizer guarantees equals tokenizing the whole
//! context. Every draw is seeded from `(run seed, step, query, rollout[, call], turn)`, so a
//! rollout's tokens do not depend on which other rollouts share its batch.
use std::future::Future;

use mgrpo_algo::{Trajectory, derive_seed, salt};
use mgrpo_env::{
    MainEpisode, MainStep, Question, SingleEpisode, SubEpisode, TextCodec, ToolStep, World,
};
use mgrpo_models::{Policy, SampleOptions, Sampled};
use serde::{Deserialize, Serialize};

use crate::config::SamplingConfig;

/// Identifies one main rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RolloutKey {
    /// Training step (or an evaluation's pseudo-step).
    pub step: u64,
    /// Query index in the step's batch.
    pub query: u32,
    /// Rollout `k`.
    pub rollout: u32,
}

/// Identifies one sub-agent call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallKey {
    /// The rollout that made it.
    pub rollout: RolloutKey,
    /// Call index `i` within the rollout.
    pub call: u32,
}

/// A delegated sub-task to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubJob {
    /// Its coordinates.
    pub key: CallKey,
    /// The sub-task text.
    pub task: String,
}

/// What a sub-agent call produced (without its trajectory, which stays with its learner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubOutcome {
    /// Its coordinates.
    pub key: CallKey,
    /// The sub-task.
    pub task: String,
    /// What went back to the main agent.
    pub result: String,
    /// The call's `r_format`.
    pub format: bool,
    /// The judge's `r_expert` (filled in by the executor after judging).
    pub expert: f32,
    /// Tokens the sub-agent generated.
    pub generated_tokens: usize,
}

/// What a main (or single-agent) rollout produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MainOutcome {
    /// Its coordinates.
    pub key: RolloutKey,
    /// `r_format`.
    pub format: bool,
    /// The final answer, if any.
    pub answer: Option<String>,
    /// Its calls, in call order.
    pub calls: Vec<SubOutcome>,
    /// Tokens the main agent generated.
    pub generated_tokens: usize,
}

/// How to sample: training (temperature, top-p) or evaluation (greedy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Sample with the config's temperature and top-p.
    Train,
    /// Greedy decoding.
    Eval,
}

/// A token trace under construction.
#[derive(Debug, Clone, Default)]
struct Trace {
    tokens: Vec<u32>,
    generated: Vec<bool>,
    logprobs: Vec<f32>,
}

impl Trace {
    fn context(&mut self, codec: &TextCodec, text: &str) {
        let ids = codec.encode(text);
        self.generated.extend(std::iter::repeat_n(false, ids.len()));
        self.logprobs.extend(std::iter::repeat_n(0.0, ids.len()));
        self.tokens.extend(ids);
    }

    fn sampled(&mut self, s: &Sampled) {
        self.tokens.extend(&s.tokens);
        self.generated
            .extend(std::iter::repeat_n(true, s.tokens.len()));
        self.logprobs.extend(&s.logprobs);
    }

    fn into_trajectory(self) -> Trajectory {
        Trajectory {
            tokens: self.tokens,
            generated: self.generated,
            logprobs: self.logprobs,
        }
    }
}

fn options(codec: &TextCodec, sampling: &SamplingConfig, mode: Mode) -> SampleOptions {
    SampleOptions {
        max_new_tokens: sampling.max_turn_tokens,
        temperature: if mode == Mode::Eval {
            0.0
        } else {
            sampling.temperature
        },
        top_p: sampling.top_p,
        stop_tokens: codec.stop_ids().to_vec(),
        use_kv_cache: true,
    }
}

/// Whether a trace still has room for one more turn.
fn fits(trace: &Trace, policy: &Policy, sampling: &SamplingConfig) -> bool {
    trace.tokens.len() + sampling.max_turn_tokens < policy.config().max_seq_len
}

/// Samples one turn for the given traces (blocking: call from a blocking context).
fn sample_turn(
    policy: &Policy,
    traces: &[&Trace],
    opts: &SampleOptions,
    seeds: &[u64],
) -> Result<Vec<Sampled>, mgrpo_models::ModelError> {
    let prompts: Vec<Vec<u32>> = traces.iter().map(|t| t.tokens.clone()).collect();
    policy.sample(&prompts, opts, seeds)
}

/// Runs sub-agent calls in lockstep; returns each call's outcome and trajectory.
pub fn run_sub_jobs(
    policy: &Policy,
    codec: &TextCodec,
    world: &World,
    sampling: &SamplingConfig,
    run_seed: u64,
    mode: Mode,
    jobs: &[SubJob],
) -> Result<Vec<(SubOutcome, Trajectory)>, mgrpo_models::ModelError> {
    let opts = options(codec, sampling, mode);
    let mut eps: Vec<SubEpisode> = jobs
        .iter()
        .map(|j| SubEpisode::new(&j.task, world.config.max_sub_turns))
        .collect();
    let mut traces: Vec<Trace> = eps
        .iter()
        .map(|e| {
            let mut t = Trace::default();
            t.context(codec, &e.context());
            t
        })
        .collect();
    let mut generated = vec![0usize; jobs.len()];
    for turn in 0..world.config.max_sub_turns as u64 {
        let active: Vec<usize> = (0..eps.len())
            .filter(|&i| !eps[i].is_done() && fits(&traces[i], policy, sampling))
            .collect();
        // Episodes out of room end with a format error.
        for (i, ep) in eps.iter_mut().enumerate() {
            if !ep.is_done() && !active.contains(&i) {
                ep.apply("", &world.tools);
            }
        }
        if active.is_empty() {
            break;
        }
        let seeds: Vec<u64> = active
            .iter()
            .map(|&i| {
                let k = jobs[i].key;
                derive_seed(
                    run_seed,
                    &[
                        salt::SUB,
                        k.rollout.step,
                        k.rollout.query as u64,
                        k.rollout.rollout as u64,
                        k.call as u64,
                        turn,
                    ],
                )
            })
            .collect();
        let refs: Vec<&Trace> = active.iter().map(|&i| &traces[i]).collect();
        let out = sample_turn(policy, &refs, &opts, &seeds)?;
        for (&i, s) in active.iter().zip(&out) {
            traces[i].sampled(s);
            generated[i] += s.tokens.len();
            let before = eps[i].segments().len();
            eps[i].apply(&codec.decode(&s.tokens), &world.tools);
            for seg in &eps[i].segments()[before + 1..] {
                traces[i].context(codec, &seg.text);
            }
        }
    }
    Ok(jobs
        .iter()
        .zip(eps)
        .zip(traces)
        .zip(generated)
        .map(|(((j, e), t), g)| {
            (
                SubOutcome {
                    key: j.key,
                    task: e.task().to_string(),
                    result: e.result().to_string(),
                    format: e.format_ok(),
                    expert: 0.0,
                    generated_tokens: g,
                },
                t.into_trajectory(),
            )
        })
        .collect())
}

/// Runs main-agent rollouts in lockstep; at each turn the delegations of all rollouts go to
/// `run_subs` as one batch (an executor call, or a local driver) and the results come back in
/// the same order.
#[allow(clippy::too_many_arguments)] // one driver's whole input; a struct would only rename it
pub async fn run_main_jobs<F, Fut, E>(
    policy: &Policy,
    codec: &TextCodec,
    world: &World,
    sampling: &SamplingConfig,
    run_seed: u64,
    mode: Mode,
    jobs: &[(RolloutKey, &Question)],
    mut run_subs: F,
) -> Result<Vec<(MainOutcome, Trajectory)>, E>
where
    F: FnMut(Vec<SubJob>) -> Fut,
    Fut: Future<Output = Result<Vec<SubOutcome>, E>>,
    E: From<mgrpo_models::ModelError>,
{
    let opts = options(codec, sampling, mode);
    let max_turns = world.config.max_main_turns;
    let mut eps: Vec<MainEpisode> = jobs
        .iter()
        .map(|(_, q)| MainEpisode::new(&q.text, max_turns))
        .collect();
    let mut traces: Vec<Trace> = eps
        .iter()
        .map(|e| {
            let mut t = Trace::default();
            t.context(codec, &e.context());
            t
        })
        .collect();
    let mut calls: Vec<Vec<SubOutcome>> = vec![Vec::new(); jobs.len()];
    let mut generated = vec![0usize; jobs.len()];
    for turn in 0..max_turns as u64 {
        let active: Vec<usize> = (0..eps.len())
            .filter(|&i| !eps[i].is_done() && fits(&traces[i], policy, sampling))
            .collect();
        for (i, ep) in eps.iter_mut().enumerate() {
            if !ep.is_done() && !active.contains(&i) {
                ep.apply("");
            }
        }
        if active.is_empty() {
            break;
        }
        let seeds: Vec<u64> = active
            .iter()
            .map(|&i| {
                let k = jobs[i].0;
                derive_seed(
                    run_seed,
                    &[salt::MAIN, k.step, k.query as u64, k.rollout as u64, turn],
                )
            })
            .collect();
        let refs: Vec<&Trace> = active.iter().map(|&i| &traces[i]).collect();
        let out = tokio::task::block_in_place(|| sample_turn(policy, &refs, &opts, &seeds))?;
        let mut subs = Vec::new();
        let mut waiting = Vec::new();
        for (&i, s) in active.iter().zip(&out) {
            traces[i].sampled(s);
            generated[i] += s.tokens.len();
            if let MainStep::Delegate(task) = eps[i].apply(&codec.decode(&s.tokens)) {
                subs.push(SubJob {
                    key: CallKey {
                        rollout: jobs[i].0,
                        call: calls[i].len() as u32,
                    },
                    task,
                });
                waiting.push(i);
            }
        }
        if !subs.is_empty() {
            let results = run_subs(subs).await?;
            for (i, r) in waiting.into_iter().zip(results) {
                eps[i].deliver_result(&r.result);
                let seg = eps[i]
                    .segments()
                    .last()
                    .map(|s| s.text.clone())
                    .unwrap_or_default();
                traces[i].context(codec, &seg);
                calls[i].push(r);
            }
        }
    }
    Ok(jobs
        .iter()
        .zip(eps)
        .zip(traces)
        .zip(calls)
        .zip(generated)
        .map(|((((j, e), t), c), g)| {
            (
                MainOutcome {
                    key: j.0,
                    format: e.format_ok(),
                    answer: e.answer().map(str::to_string),
                    calls: c,
                    generated_tokens: g,
                },
                t.into_trajectory(),
            )
        })
        .collect())
}

/// Runs single-agent rollouts (the `single` baseline) in lockstep.
pub fn run_single_jobs(
    policy: &Policy,
    codec: &TextCodec,
    world: &World,
    sampling: &SamplingConfig,
    run_seed: u64,
    mode: Mode,
    jobs: &[(RolloutKey, &Question)],
) -> Result<Vec<(MainOutcome, Trajectory)>, mgrpo_models::ModelError> {
    let opts = options(codec, sampling, mode);
    let max_turns = world.config.max_single_turns;
    let mut eps: Vec<SingleEpisode> = jobs
        .iter()
        .map(|(_, q)| SingleEpisode::new(&q.text, max_turns))
        .collect();
    let mut traces: Vec<Trace> = eps
        .iter()
        .map(|e| {
            let mut t = Trace::default();
            t.context(codec, &e.context());
            t
        })
        .collect();
    let mut generated = vec![0usize; jobs.len()];
    for turn in 0..max_turns as u64 {
        let active: Vec<usize> = (0..eps.len())
            .filter(|&i| !eps[i].is_done() && fits(&traces[i], policy, sampling))
            .collect();
        for (i, ep) in eps.iter_mut().enumerate() {
            if !ep.is_done() && !active.contains(&i) {
                ep.apply("", &world.tools);
            }
        }
        if active.is_empty() {
            break;
        }
        let seeds: Vec<u64> = active
            .iter()
            .map(|&i| {
                let k = jobs[i].0;
                derive_seed(
                    run_seed,
                    &[salt::MAIN, k.step, k.query as u64, k.rollout as u64, turn],
                )
            })
            .collect();
        let refs: Vec<&Trace> = active.iter().map(|&i| &traces[i]).collect();
        let out = sample_turn(policy, &refs, &opts, &seeds)?;
        for (&i, s) in active.iter().zip(&out) {
            traces[i].sampled(s);
            generated[i] += s.tokens.len();
            let before = eps[i].segments().len();
            if eps[i].apply(&codec.decode(&s.tokens), &world.tools) == ToolStep::Continue {
                for seg in &eps[i].segments()[before + 1..] {
                    traces[i].context(codec, &seg.text);
                }
            }
        }
    }
    Ok(jobs
        .iter()
        .zip(eps)
        .zip(traces)
        .zip(generated)
        .map(|(((j, e), t), g)| {
            (
                MainOutcome {
                    key: j.0,
                    format: e.format_ok(),
                    answer: e.answer().map(str::to_string),
                    calls: Vec::new(),
                    generated_tokens: g,
                },
                t.into_trajectory(),
            )
        })
        .collect())
}
