//! Evaluating a run's trained policies without starting actors (`mgrpo eval --policy run:DIR`):
//! the same rollout drivers, greedy, in one process.
use std::path::Path;

use mgrpo_algo::Algo;
use mgrpo_env::judge::{answers_match, expert_score};
use mgrpo_env::{EvalReport, Question, Split};
use mgrpo_models::{Policy, load_checkpoint};

use crate::config::Config;
use crate::context::NodeContext;
use crate::rollout::{Mode, RolloutKey, SubOutcome, run_main_jobs, run_single_jobs, run_sub_jobs};
use crate::run_dir::RunDir;

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

fn load(
    ctx: &NodeContext,
    role: &str,
    version: Option<u64>,
    settings: &crate::config::RoleModelConfig,
) -> Result<(Policy, u64), EvalError> {
    let v = match version {
        Some(v) => v,
        None => ctx.run_dir.latest_checkpoint(role).ok_or_else(|| {
            EvalError::Run(format!(
                "{} has no {role} checkpoint",
                ctx.run_dir.root().display()
            ))
        })?,
    };
    let device = ctx
        .device(settings)
        .map_err(|e| EvalError::Run(e.to_string()))?;
    let ck = load_checkpoint(&ctx.run_dir.checkpoint_path(role, v), &device, None)?;
    Ok((ck.policy, v))
}

/// Greedy accuracy of a run's policies (latest, or `version`) on a split.
pub async fn eval_run(
    dir: &Path,
    version: Option<u64>,
    split: Split,
    limit: Option<usize>,
) -> Result<(EvalReport, u64), EvalError> {
    let run_dir = RunDir::new(dir);
    let config = Config::load(&run_dir.config_path()).map_err(|e| EvalError::Run(e.to_string()))?;
    let ctx = NodeContext::new(config, run_dir, "eval".into())
        .map_err(|e| EvalError::Run(e.to_string()))?;
    let cfg = &ctx.config;
    let (main, v) = load(&ctx, "main", version, &cfg.models.main)?;
    let variant = cfg.algo.variant;
    let sub = match variant {
        Algo::Single => None,
        Algo::Shared => Some(main.clone()),
        Algo::Mgrpo | Algo::FrozenSub => {
            // The frozen sub-agent keeps version 0; otherwise take the version that matches.
            let sv = if variant == Algo::FrozenSub {
                Some(0)
            } else {
                version
            };
            Some(load(&ctx, "sub", sv, &cfg.models.sub)?.0)
        }
    };
    let qs: Vec<&Question> = ctx
        .world
        .questions(split)
        .iter()
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let jobs: Vec<(RolloutKey, &Question)> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| {
            (
                RolloutKey {
                    step: u64::MAX / 2,
                    query: i as u32,
                    rollout: 0,
                },
                *q,
            )
        })
        .collect();
    let seed = cfg.run.seed;
    let outcomes = match &sub {
        None => tokio::task::block_in_place(|| {
            run_single_jobs(
                &main,
                &ctx.codec,
                &ctx.world,
                &cfg.sampling,
                seed,
                Mode::Eval,
                &jobs,
            )
        })?,
        Some(sub) => {
            run_main_jobs(
                &main,
                &ctx.codec,
                &ctx.world,
                &cfg.sampling,
                seed,
                Mode::Eval,
                &jobs,
                |subs| {
                    let r = tokio::task::block_in_place(|| {
                        run_sub_jobs(
                            sub,
                            &ctx.codec,
                            &ctx.world,
                            &cfg.sampling,
                            seed,
                            Mode::Eval,
                            &subs,
                        )
                    })
                    .map(|v| {
                        v.into_iter()
                            .map(|(mut o, _)| {
                                o.expert = expert_score(&ctx.world.knowledge, &o.task, &o.result);
                                o
                            })
                            .collect::<Vec<SubOutcome>>()
                    });
                    async move { r }
                },
            )
            .await?
        }
    };
    let report = EvalReport::from_outcomes(outcomes.iter().zip(&qs).map(|((o, _), q)| {
        (
            *q,
            o.format
                && o.answer
                    .as_deref()
                    .is_some_and(|a| answers_match(a, &q.answer)),
        )
    }));
    Ok((report, v))
}
