//! Greedy evaluation on a split: the one path behind the coordinator's dev evaluations (through
//! the planners of a running node) and `mgrpo eval --policy run:DIR` (a run's saved policies in
//! this process, no actors). Both take the same questions, run the same rollout dispatch
//! ([`Rollouts`]) and score with the same judge functions. A run's evaluation also scores every
//! sub-agent return (`r_expert` against its sub-task), so its report says how many wrong
//! answers followed a wrong return: which role a wrong answer is owed to.
use std::path::Path;

use mgrpo_env::{EvalReport, Question, Split, SubReport};
use mgrpo_models::Policy;

use crate::config::Config;
use crate::context::NodeContext;
use crate::coordinator::step::roll_out;
use crate::planner::GroupSpec;
use crate::policy::checkpoints::load_policy;
use crate::policy::chunks::PolicyId;
use crate::policy::pins::Pins;
use crate::role::{LearnerRole, sub_model};
use crate::rollout::dispatch::Rollouts;
use crate::rollout::keys::{Mode, RolloutKey, SubJob, SubOutcome};
use crate::rollout::turns::Serve;
use crate::run_dir::RunDir;
use crate::scoring::{CallToScore, RolloutToScore, Scoring};

/// The pseudo-step of evaluation rollouts (their seeds never meet a training step's).
pub const EVAL_STEP: u64 = u64::MAX / 2;

/// Why a run could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The run directory lacks something.
    #[error("{0}")]
    Run(String),
    /// Model failure.
    #[error(transparent)]
    Model(#[from] mgrpo_models::ModelError),
}

/// The questions evaluated: the first `n` of the split.
fn questions(ctx: &NodeContext, split: Split, n: usize) -> Vec<&Question> {
    ctx.task.questions(split).iter().take(n).collect()
}

/// Greedy accuracy of the policies the planners serve now, on the first `n` questions of a
/// split (what the coordinator logs as dev accuracy).
pub async fn evaluate(ctx: &NodeContext, split: Split, n: usize) -> Result<EvalReport, String> {
    let qs = questions(ctx, split, n);
    let specs = qs
        .iter()
        .enumerate()
        .map(|(i, q)| GroupSpec {
            query: i as u32,
            question_id: q.id.clone(),
        })
        .collect();
    let results = roll_out(ctx, EVAL_STEP, specs, 1, Mode::Eval, &Pins::latest()).await?;
    Ok(EvalReport::from_outcomes(results.iter().zip(&qs).map(
        |(g, q)| (*q, g.rollouts.first().is_some_and(|r| r.parts.correct)),
    )))
}

/// One evaluated question: what `mgrpo eval --transcripts FILE` writes, a line each, for
/// reading a policy's mistakes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalAnswer {
    /// The question's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its text.
    pub question: String,
    /// Every accepted answer.
    pub answers: Vec<String>,
    /// The policy's final answer (`None`: none was given in format).
    pub answer: Option<String>,
    /// Whether the episode kept the protocol.
    pub format: bool,
    /// Whether the answer was judged correct.
    pub correct: bool,
    /// The main (or single) agent's transcript.
    pub transcript: String,
    /// Each sub-agent call, in order, with the judge's score of its return (empty for a
    /// single agent).
    pub calls: Vec<EvalCall>,
}

/// One sub-agent call of an evaluated question.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalCall {
    /// The delegated sub-task.
    pub task: String,
    /// What went back to the main agent.
    pub result: String,
    /// Whether the call kept the protocol.
    pub format: bool,
    /// The judge's `r_expert` of the return (`None`: a dataset without an expert scorer).
    pub expert: Option<f32>,
}

/// Greedy accuracy of a run's saved policies (latest, or `version`) on a split, in this
/// process. Returns the report and the main version evaluated.
pub async fn eval_run(
    dir: &Path,
    version: Option<u64>,
    split: Split,
    limit: Option<usize>,
) -> Result<(EvalReport, u64), EvalError> {
    let (report, v, _) = eval_run_answers(dir, version, split, limit).await?;
    Ok((report, v))
}

/// [`eval_run`], also returning every question's answer and transcript.
pub async fn eval_run_answers(
    dir: &Path,
    version: Option<u64>,
    split: Split,
    limit: Option<usize>,
) -> Result<(EvalReport, u64, Vec<EvalAnswer>), EvalError> {
    let run_dir = RunDir::new(dir);
    let config = Config::load(&run_dir.config_path()).map_err(|e| EvalError::Run(e.to_string()))?;
    let ctx = NodeContext::new(config, run_dir, "eval".into())
        .map_err(|e| EvalError::Run(e.to_string()))?;
    let variant = ctx.config.algo.variant;
    let (main, v) = load_policy(&ctx, LearnerRole::Main, version).map_err(EvalError::Run)?;
    let sub: Option<Policy> = if !variant.uses_sub_agents() {
        None
    } else if sub_model(variant) == LearnerRole::Main {
        Some(main.clone())
    } else {
        // A sub-agent that never trains keeps version 0; otherwise take the version that matches.
        let sv = if LearnerRole::Sub.trains(variant) {
            version
        } else {
            Some(0)
        };
        Some(
            load_policy(&ctx, LearnerRole::Sub, sv)
                .map_err(EvalError::Run)?
                .0,
        )
    };
    let qs = questions(&ctx, split, limit.unwrap_or(usize::MAX));
    let jobs: Vec<(RolloutKey, &Question)> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| {
            (
                RolloutKey {
                    step: EVAL_STEP,
                    query: i as u32,
                    rollout: 0,
                },
                *q,
            )
        })
        .collect();
    // Sub-agents run here: so do the task's tool servers.
    let tools = ctx
        .tools()
        .await
        .map_err(|e| EvalError::Run(e.to_string()))?;
    let rollouts = Rollouts::new(&ctx, Mode::Eval)
        .map_err(|e| EvalError::Run(e.to_string()))?
        .with_tools(tools);
    let sub = sub.as_ref();
    // Every call's outcome, kept to score the sub-agents' returns afterwards.
    let made = std::sync::Mutex::new(Vec::<SubOutcome>::new());
    let made_ref = &made;
    let outcomes = rollouts
        .of_variant(
            variant,
            Serve::Policy(&main),
            &jobs,
            |subs: Vec<SubJob>| async move {
                match sub {
                    Some(p) => {
                        let done: Vec<SubOutcome> = rollouts
                            .sub(Serve::Policy(p), PolicyId::default(), &subs)
                            .await?
                            .into_iter()
                            .map(|(o, _)| o)
                            .collect();
                        made_ref
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .extend(done.iter().cloned());
                        Ok::<_, EvalError>(done)
                    }
                    None => Ok::<_, EvalError>(Vec::new()),
                }
            },
        )
        .await?;
    let mut made = made
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    made.sort_by_key(|o| (o.key.rollout.query, o.key.call));
    let mut scored = Vec::with_capacity(qs.len());
    let mut answers = Vec::with_capacity(qs.len());
    let mut scoring = Scoring::new(&ctx.config);
    let judged = scoring.judges_calls(&ctx);
    let mut calls_of = made.into_iter().peekable();
    for (i, ((o, _), q)) in outcomes.iter().zip(&qs).enumerate() {
        let mut calls = Vec::new();
        while let Some(c) = calls_of.next_if(|c| c.key.rollout.query == i as u32) {
            let expert = if judged {
                Some(
                    scoring
                        .call(
                            &ctx,
                            &CallToScore {
                                task: c.task.clone(),
                                result: c.result.clone(),
                                format: c.format,
                                facts: 0,
                            },
                        )
                        .await
                        .map_err(EvalError::Run)?,
                )
            } else {
                None
            };
            calls.push(EvalCall {
                task: c.task,
                result: c.result,
                format: c.format,
                expert,
            });
        }
        let r = RolloutToScore {
            question_id: q.id.clone(),
            format: o.format,
            answer: o.answer.clone(),
            transcript: o.transcript.clone(),
            facts: 0,
        };
        let parts = scoring.rollout(&ctx, &r).await.map_err(EvalError::Run)?;
        scored.push((*q, parts.correct));
        answers.push(EvalAnswer {
            id: q.id.clone(),
            kind: q.kind.clone(),
            question: q.text.clone(),
            answers: q.answers().map(str::to_string).collect(),
            answer: r.answer,
            format: o.format,
            correct: parts.correct,
            transcript: r.transcript,
            calls,
        });
    }
    let mut report = EvalReport::from_outcomes(scored);
    if judged && variant.uses_sub_agents() {
        let scores: Vec<Vec<f32>> = answers
            .iter()
            .map(|a| a.calls.iter().filter_map(|c| c.expert).collect())
            .collect();
        report.sub = Some(SubReport::from_episodes(
            scores
                .iter()
                .zip(&answers)
                .map(|(s, a)| (s.as_slice(), a.correct)),
        ));
    }
    Ok((report, v, answers))
}
