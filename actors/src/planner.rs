//! A planner: main-agent inference. It runs the K rollouts of each query it is given in
//! lockstep, delegating each turn's sub-tasks to the executor pool as one batch, has the judge
//! score the rollouts, hands the trajectories to the main learner (they never leave this role's
//! node) and returns only the statistics.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mgrpo_algo::{MainParts, Trajectory};
use mgrpo_env::Question;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::context::NodeContext;
use crate::executor::ExecutorMsg;
use crate::faults::FaultPoint;
use crate::judge::JudgeMsg;
use crate::learner::LearnerMsg;
use crate::policy::chunks::{PolicyChunk, PolicyId};
use crate::policy::pins::Pins;
use crate::policy::replica::Replica;
use crate::policy::sink::PolicySink;
use crate::role::{LearnerRole, Role, group, sub_model};
use crate::rollout::dispatch::Rollouts;
use crate::rollout::facts::Facts;
use crate::rollout::keys::{MainOutcome, Mode, RolloutKey, SubOutcome};
use crate::rpc::{self, Reply, RequestError, Wire};
use crate::scoring::{RolloutToScore, Scoring};

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
    /// Its calls, in order (statistics only: no texts).
    pub calls: Vec<SubOutcome>,
    /// Tokens the main agent generated.
    pub generated_tokens: usize,
    /// The main policy that produced it.
    pub policy: PolicyId,
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
        /// The versions to sample with (the main model's here, the sub model's at the
        /// executors); unpinned models serve their newest.
        pins: Wire<Pins>,
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
    /// Serve the staged candidate of a swap from now on (`None`: drop it).
    #[rpc]
    Activate {
        /// The candidate, or `None`.
        id: Wire<Option<PolicyId>>,
        /// Acknowledged once served (an error if it was not staged here).
        reply: RpcReplyPort<Reply<()>>,
    },
}

impl PolicySink for PlannerMsg {
    fn load_policy(chunk: PolicyChunk, reply: RpcReplyPort<Reply<()>>) -> Self {
        PlannerMsg::LoadPolicy {
            chunk: Wire(chunk),
            reply,
        }
    }

    fn activate(id: Option<PolicyId>, reply: RpcReplyPort<Reply<()>>) -> Self {
        PlannerMsg::Activate {
            id: Wire(id),
            reply,
        }
    }
}

/// The planner actor.
pub struct Planner;

/// Its state.
pub struct PlannerState {
    ctx: Arc<NodeContext>,
    replica: Replica,
    next_executor: Arc<AtomicUsize>,
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
        let replica = Replica::start::<LearnerMsg>(&ctx, LearnerRole::Main).await?;
        rpc::join(&ctx, group::PLANNER, myself.get_cell());
        Ok(PlannerState {
            ctx,
            replica,
            next_executor: Arc::new(AtomicUsize::new(0)),
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
                let _ = reply.send(Wire(state.replica.receive(chunk)));
            }
            PlannerMsg::Activate {
                id: Wire(id),
                reply,
            } => {
                let _ = reply.send(Wire(state.replica.activate(id)));
            }
            PlannerMsg::RunGroups {
                step,
                groups,
                k,
                mode: Wire(mode),
                pins: Wire(pins),
                reply,
            } => {
                let r = run_groups(state, step, &groups.0, k, mode, &pins).await;
                state
                    .ctx
                    .faults
                    .strike(FaultPoint::Reply(Role::Planner))
                    .await?;
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
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    #[error("main policy: {0}")]
    Policy(String),
}

async fn run_groups(
    state: &mut PlannerState,
    step: u64,
    specs: &[GroupSpec],
    k: u32,
    mode: Mode,
    pins: &Pins,
) -> Result<Vec<GroupResult>, RolloutError> {
    let held = state
        .replica
        .select(pins.of(LearnerRole::Main))
        .map_err(RolloutError::Policy)?;
    let sub_pin = pins.of(sub_model(state.ctx.config.algo.variant));
    let ctx = &state.ctx;
    // Each query as the facts it is asked in write it (a variant with new names: its text).
    let facts = Facts::of(ctx, mode);
    let questions: Vec<&Question> = specs
        .iter()
        .map(|s| {
            let first = RolloutKey {
                step,
                query: s.query,
                rollout: 0,
            };
            facts
                .task(&first)
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
    let counter = state.next_executor.clone();
    let serve = held.serve().under_faults(&ctx.faults, Role::Planner);
    let ran: Vec<(MainOutcome, Trajectory)> = Rollouts::new(ctx, mode)?
        .of_variant(ctx.config.algo.variant, serve, &jobs, |subs| {
            let pick = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                rpc::request(ctx, group::EXECUTOR, pick, |reply| ExecutorMsg::RunCalls {
                    mode: Wire(mode),
                    policy: Wire(sub_pin),
                    jobs: Wire(subs.clone()),
                    reply,
                })
                .await
                .map_err(RolloutError::from)
            }
        })
        .await?;
    let transcripts = Scoring::wants_transcripts(&ctx.config);
    let items = ran
        .iter()
        .zip(&jobs)
        .map(|((o, _), (key, q))| RolloutToScore {
            facts: facts.index(key),
            question_id: q.id.clone(),
            format: o.format,
            answer: o.answer.clone(),
            transcript: if transcripts {
                o.transcript.clone()
            } else {
                String::new()
            },
        })
        .collect::<Vec<_>>();
    let parts = rpc::request(ctx, group::JUDGE, 0, |reply| JudgeMsg::ScoreMain {
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
            policy: held.id(),
        });
        if mode == Mode::Train && held.serving().trains() {
            trajectories.push((*key, t));
        }
    }
    if !trajectories.is_empty() {
        rpc::cast(
            ctx,
            group::MAIN_LEARNER,
            LearnerMsg::AddMain {
                items: Wire(trajectories),
            },
        )
        .await?;
    }
    Ok(results)
}
