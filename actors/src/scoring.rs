//! The task's scorers: what the judge (and offline evaluation) score with. The generated world
//! scores against its ground truth (normalised exact match; `r_expert` from its facts); a
//! dataset scores final answers with `task.reward` (a built-in metric or a command) and
//! sub-agent results with `task.expert` (a command, or nothing: its weight moves to
//! `beta_main_correct`, see `TaskConfig::reward_weights`).
//!
//! `r_correct` stays 0/1 as ALGORITHM.md defines it (the store, the group statistics and the
//! sub-agents' `r_main_correct` are built on it): a graded score (F1, a command's) counts as
//! correct from `task.correct_at` on.
use mgrpo_algo::MainParts;
use mgrpo_env::Task;
use mgrpo_env::judge::{expert_score, main_parts};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::task::RewardSpec;
use crate::context::NodeContext;
use crate::rollout::facts::task_in;
use crate::scorer::CommandScorer;

/// One call to score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallToScore {
    /// The sub-task.
    pub task: String,
    /// What the call returned.
    pub result: String,
    /// Its `r_format`.
    pub format: bool,
    /// The facts it was asked in ([`crate::rollout::facts`]; 0: the task's own).
    pub facts: u32,
}

/// One main rollout to score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutToScore {
    /// The question's id.
    pub question_id: String,
    /// Every main-agent turn parsed.
    pub format: bool,
    /// The final answer, if any.
    pub answer: Option<String>,
    /// The main agent's transcript (only filled where a reward command reads it).
    pub transcript: String,
    /// The facts it was asked in ([`crate::rollout::facts`]; 0: the task's own).
    pub facts: u32,
}

/// The scorers of one judge (their processes live as long as it does).
#[derive(Debug, Default)]
pub struct Scoring {
    reward: Option<CommandScorer>,
    expert: Option<CommandScorer>,
}

impl Scoring {
    /// The scorers `config` names (commands start on first use).
    pub fn new(config: &Config) -> Self {
        let Some(task) = &config.task else {
            return Self::default();
        };
        Self {
            reward: match &task.reward {
                RewardSpec::Command(c) => Some(CommandScorer::new("task.reward", c)),
                RewardSpec::Metric(_) => None,
            },
            expert: task
                .expert
                .as_ref()
                .map(|c| CommandScorer::new("task.expert", c)),
        }
    }

    /// Whether the reward command reads transcripts (so rollouts carry them to the judge).
    pub fn wants_transcripts(config: &Config) -> bool {
        config
            .task
            .as_ref()
            .is_some_and(|t| matches!(t.reward, RewardSpec::Command(_)))
    }

    /// Reward parts of one main rollout.
    pub async fn rollout(
        &mut self,
        ctx: &NodeContext,
        r: &RolloutToScore,
    ) -> Result<MainParts, String> {
        let q = task_in(ctx, r.facts)
            .question(&r.question_id)
            .ok_or_else(|| format!("unknown question {}", r.question_id))?;
        let (Task::Dataset(_), Some(task)) = (&ctx.task, &ctx.config.task) else {
            return Ok(main_parts(r.format, r.answer.as_deref(), &q.answer));
        };
        let Some(answer) = r.answer.as_deref().filter(|_| r.format) else {
            // A format error zeroes R_M whatever the answer: nothing to ask a scorer.
            return Ok(MainParts {
                format: r.format,
                correct: false,
            });
        };
        let score = match (&task.reward, &mut self.reward) {
            (_, Some(command)) => {
                command
                    .score(&serde_json::json!({
                        "id": q.id,
                        "question": q.text,
                        "answers": q.answers().collect::<Vec<_>>(),
                        "answer": answer,
                        "transcript": r.transcript,
                    }))
                    .await?
            }
            (RewardSpec::Metric(m), None) => m.score(answer, q.answers()),
            (RewardSpec::Command(_), None) => unreachable!("Scoring::new starts every command"),
        };
        Ok(MainParts {
            format: true,
            correct: score >= task.correct_at,
        })
    }

    /// Whether calls are judged: the world's facts, or a dataset's `task.expert` command (without
    /// one, [`Self::call`] scores every call 0 and β_expert's weight is elsewhere).
    pub fn judges_calls(&self, ctx: &NodeContext) -> bool {
        ctx.task.world().is_some() || self.expert.is_some()
    }

    /// `r_expert` of one call (0 for a call with a format error).
    pub async fn call(
        &mut self,
        ctx: &NodeContext,
        CallToScore {
            task,
            result,
            format,
            facts,
        }: &CallToScore,
    ) -> Result<f32, String> {
        if !*format {
            return Ok(0.0);
        }
        if let Some(world) = task_in(ctx, *facts).world() {
            return Ok(expert_score(
                &world.knowledge,
                task,
                result,
                ctx.config.algo.unknown_credit,
            ));
        }
        match &mut self.expert {
            Some(command) => {
                command
                    .score(&serde_json::json!({"task": task, "result": result}))
                    .await
            }
            // No expert: β_expert's weight is elsewhere (TaskConfig::reward_weights).
            None => Ok(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::run_dir::RunDir;

    /// The judge scores a call with the config's `algo.unknown_credit`: `unknown` on a sub-task
    /// naming no fact earns 1 with it and 0 without; a fact's value earns 1 either way.
    #[tokio::test]
    async fn the_judge_credits_unknown_only_when_the_config_asks() {
        let mut scores = Vec::new();
        for credit in [false, true] {
            let mut config = Config::parse(
                include_str!("../../examples/tiny.toml"),
                Path::new("tiny.toml"),
            )
            .unwrap();
            config.algo.unknown_credit = credit;
            let ctx =
                NodeContext::new(config.clone(), RunDir::new("unused"), "scoring".into()).unwrap();
            let mut scoring = Scoring::new(&config);
            let q = ctx.task.world().unwrap().questions(mgrpo_env::Split::Dev)[0].clone();
            let sub = &q.subs[0];
            let mut got = Vec::new();
            for (task, result, format) in [
                ("birthplace of nobody", "unknown", true),
                ("birthplace of nobody", "unknown", false),
                (sub.text.as_str(), sub.answer.as_str(), true),
            ] {
                let call = CallToScore {
                    task: task.to_string(),
                    result: result.to_string(),
                    format,
                    facts: 0,
                };
                got.push(scoring.call(&ctx, &call).await.unwrap());
            }
            scores.push(got);
        }
        assert_eq!(scores, [[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]);
    }
}
