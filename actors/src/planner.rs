//! A planner: main-agent inference. It runs the K rollouts of each query it is given in
//! lockstep, delegating each turn's sub-tasks to the executor pool as one batch, has the judge
//! score the rollouts, hands the trajectories to the main learner (they never leave this role's
//! node) and returns only the statistics.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mgrpo_algo::{Algo, MainParts, Trajectory};
use mgrpo_env::Question;
use mgrpo_models::Policy;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::context::NodeContext;
use crate::executor::ExecutorMsg;
use crate::groups::{self, RequestError};
use crate::judge::JudgeMsg;
use crate::learner::{LearnerMsg, fetch_policy};
use crate::policy_transfer::{Assembler, PolicyChunk};
use crate::rollout::{MainOutcome, Mode, RolloutKey, SubOutcome, run_main_jobs, run_single_jobs};
use crate::wire::{Reply, Wire};

/// One query group to roll out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Query index in the step's batch.
    pub query: u32,
    /// The question.
    pub question_id: String,
}

/// What one rollout produced, as statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutResult {
    /// Rollout `k`.
    pub rollout: u32,
    /// Reward parts.
    pub parts: MainParts,
    /// Its calls, in order.
    pub calls: Vec<SubOutcome>,
    /// Tokens the main agent generated.
    pub generated_tokens: usize,
    /// Main policy version that produced it.
    pub version: u64,
}

/// One group's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupResult {
    /// The group.
    pub spec: GroupSpec,
    /// Its K rollouts in order.
    pub rollouts: Vec<RolloutResult>,
}

/// Messages of a planner.
#[derive(RactorClusterMessage)]
pub enum PlannerMsg {
    /// Roll out `k` rollouts of each group.
    #[rpc]
    RunGroups {
        /// Step (or evaluation pseudo-step) the rollouts belong to.
        step: u64,
        /// The groups.
        groups: Wire<Vec<GroupSpec>>,
        /// Rollouts per group.
        k: u32,
        /// Train (sample, send trajectories) or eval (greedy, nothing kept).
        mode: Wire<Mode>,
        /// The groups' results, in order.
        reply: RpcReplyPort<Reply<Vec<GroupResult>>>,
    },
    /// A chunk of a new version of the main policy; loaded once every chunk is in.
    #[rpc]
    LoadPolicy {
        /// The chunk.
        chunk: Wire<PolicyChunk>,
        /// Acknowledged once stored (and, for the last chunk, loaded).
        reply: RpcReplyPort<Reply<()>>,
    },
}

/// The planner actor.
pub struct Planner;

/// Its state.
pub struct PlannerState {
    ctx: Arc<NodeContext>,
    policy: Policy,
    version: u64,
    next_executor: Arc<AtomicUsize>,
    incoming: Assembler,
}

impl Actor for Planner {
    type Msg = PlannerMsg;
    type State = PlannerState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<PlannerMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<PlannerState, ActorProcessingErr> {
        let (version, bytes) = fetch_policy(&ctx, groups::MAIN_LEARNER).await?;
        let device = ctx.device(&ctx.config.models.main)?;
        let policy = Policy::from_bytes(&bytes, &device)?;
        groups::join(&ctx, groups::PLANNER, myself.get_cell());
        Ok(PlannerState {
            ctx,
            policy,
            version,
            next_executor: Arc::new(AtomicUsize::new(0)),
            incoming: Assembler::default(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<PlannerMsg>,
        message: PlannerMsg,
        state: &mut PlannerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PlannerMsg::LoadPolicy {
                chunk: Wire(chunk),
                reply,
            } => {
                let r = match state.incoming.push(chunk) {
                    Ok(Some((version, bytes))) => {
                        let device = state.ctx.device(&state.ctx.config.models.main)?;
                        Policy::from_bytes(&bytes, &device)
                            .map(|p| {
                                state.policy = p;
                                state.version = version;
                            })
                            .map_err(|e| e.to_string())
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                let _ = reply.send(Wire(r));
            }
            PlannerMsg::RunGroups {
                step,
                groups: Wire(groups),
                k,
                mode: Wire(mode),
                reply,
            } => {
                let r = run_groups(state, step, &groups, k, mode).await;
                let _ = reply.send(Wire(r.map_err(|e| e.to_string())));
            }
        }
        Ok(())
    }
}

/// Errors of a rollout request.
#[derive(Debug, thiserror::Error)]
enum RolloutError {
    #[error(transparent)]
    Model(#[from] mgrpo_models::ModelError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("unknown question {0}")]
    Question(String),
    #[error("main learner unavailable: {0}")]
    Learner(String),
}

async fn run_groups(
    state: &PlannerState,
    step: u64,
    specs: &[GroupSpec],
    k: u32,
    mode: Mode,
) -> Result<Vec<GroupResult>, RolloutError> {
    let ctx = &state.ctx;
    let questions: Vec<&Question> = specs
        .iter()
        .map(|s| {
            ctx.world
                .question(&s.question_id)
                .ok_or_else(|| RolloutError::Question(s.question_id.clone()))
        })
        .collect::<Result<_, _>>()?;
    let jobs: Vec<(RolloutKey, &Question)> = specs
        .iter()
        .zip(&questions)
        .flat_map(|(s, q)| {
            (0..k).map(move |r| {
                (
                    RolloutKey {
                        step,
                        query: s.query,
                        rollout: r,
                    },
                    *q,
                )
            })
        })
        .collect();
    let seed = ctx.config.run.seed;
    let sampling = &ctx.config.sampling;
    let ran: Vec<(MainOutcome, Trajectory)> = if ctx.config.algo.variant == Algo::Single {
        tokio::task::block_in_place(|| {
            run_single_jobs(
                &state.policy,
                &ctx.codec,
                &ctx.world,
                sampling,
                seed,
                mode,
                &jobs,
            )
        })?
    } else {
        let counter = state.next_executor.clone();
        run_main_jobs(
            &state.policy,
            &ctx.codec,
            &ctx.world,
            sampling,
            seed,
            mode,
            &jobs,
            |subs| {
                let pick = counter.fetch_add(1, Ordering::Relaxed);
                async move {
                    groups::request(ctx, groups::EXECUTOR, pick, |reply| ExecutorMsg::RunCalls {
                        mode: Wire(mode),
                        jobs: Wire(subs.clone()),
                        reply,
                    })
                    .await
                    .map_err(RolloutError::from)
                }
            },
        )
        .await?
    };
    let items = ran
        .iter()
        .zip(&jobs)
        .map(|((o, _), (_, q))| (q.id.clone(), o.format, o.answer.clone()))
        .collect::<Vec<_>>();
    let parts = groups::request(ctx, groups::JUDGE, 0, |reply| JudgeMsg::ScoreMain {
        items: Wire(items.clone()),
        reply,
    })
    .await?;
    let mut results: Vec<GroupResult> = specs
        .iter()
        .map(|s| GroupResult {
            spec: s.clone(),
            rollouts: Vec::new(),
        })
        .collect();
    let mut trajectories = Vec::new();
    for (((o, t), p), (key, _)) in ran.into_iter().zip(parts).zip(&jobs) {
        let g = results
            .iter_mut()
            .find(|g| g.spec.query == key.query)
            .expect("group of a job");
        g.rollouts.push(RolloutResult {
            rollout: key.rollout,
            parts: p,
            // The coordinator needs each call's statistics, not its texts.
            calls: o
                .calls
                .into_iter()
                .map(|c| SubOutcome {
                    task: String::new(),
                    result: String::new(),
                    ..c
                })
                .collect(),
            generated_tokens: o.generated_tokens,
            version: state.version,
        });
        if mode == Mode::Train {
            trajectories.push((*key, t));
        }
    }
    if !trajectories.is_empty() {
        let learner = groups::wait_member::<LearnerMsg>(
            ctx,
            groups::MAIN_LEARNER,
            std::time::Duration::from_secs(30),
        )
        .await?;
        learner[0]
            .cast(LearnerMsg::AddMain {
                items: Wire(trajectories),
            })
            .map_err(|e| RolloutError::Learner(e.to_string()))?;
    }
    Ok(results)
}
