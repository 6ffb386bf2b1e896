//! An executor: sub-agent inference with the real tools (search, open, and the task's MCP
//! tools, whose servers it starts on its node). A pool of them forms the
//! `role/executor` group; each request is a batch of delegated sub-tasks run in lockstep.
//!
//! Requests are idempotent: the same calls with the same seeds give the same tokens, and the
//! learner keys trajectories by call coordinates, so a retry after a crash cannot double-count.
use std::sync::Arc;

use mgrpo_algo::Trajectory;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::judge::JudgeMsg;
use crate::learner::LearnerMsg;
use crate::policy::chunks::{PolicyChunk, PolicyId};
use crate::policy::replica::Replica;
use crate::policy::sink::PolicySink;
use crate::role::{Role, group, sub_model};
use crate::rollout::dispatch::Rollouts;
use crate::rollout::facts::Facts;
use crate::rollout::keys::{CallKey, Mode, SubJob, SubOutcome};
use crate::rpc::{self, Reply, Wire};
use crate::scoring::CallToScore;

/// Messages of an executor.
#[derive(RactorClusterMessage)]
pub enum ExecutorMsg {
    /// Run a batch of sub-agent calls; reply with their outcomes (judged).
    #[rpc]
    RunCalls {
        /// Sampling mode.
        mode: Wire<Mode>,
        /// The version of the sub-agents' model to run them with (`None`: the newest held).
        policy: Wire<Option<PolicyId>>,
        /// The calls.
        jobs: Wire<Vec<SubJob>>,
        /// Outcomes in the same order.
        reply: RpcReplyPort<Reply<Vec<SubOutcome>>>,
    },
    /// A chunk of a new version of the sub policy; loaded once every chunk is in.
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

impl PolicySink for ExecutorMsg {
    fn load_policy(chunk: PolicyChunk, reply: RpcReplyPort<Reply<()>>) -> Self {
        ExecutorMsg::LoadPolicy {
            chunk: Wire(chunk),
            reply,
        }
    }

    fn activate(id: Option<PolicyId>, reply: RpcReplyPort<Reply<()>>) -> Self {
        ExecutorMsg::Activate {
            id: Wire(id),
            reply,
        }
    }
}

/// The executor actor.
pub struct Executor;

/// Its state.
pub struct ExecutorState {
    ctx: Arc<NodeContext>,
    replica: Replica,
}

impl Actor for Executor {
    type Msg = ExecutorMsg;
    type State = ExecutorState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<ExecutorMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<ExecutorState, ActorProcessingErr> {
        // Whatever version the owner holds now is the one to serve (also after a restart).
        let owner = sub_model(ctx.config.algo.variant);
        let replica = Replica::start::<LearnerMsg>(&ctx, owner).await?;
        // The task's tool servers run where the executors do (started once per node).
        ctx.tools().await?;
        rpc::join(&ctx, group::EXECUTOR, myself.get_cell());
        Ok(ExecutorState { ctx, replica })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ExecutorMsg>,
        message: ExecutorMsg,
        state: &mut ExecutorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ExecutorMsg::LoadPolicy {
                chunk: Wire(chunk),
                reply,
            } => {
                let _ = reply.send(Wire(state.replica.receive(chunk)));
            }
            ExecutorMsg::Activate {
                id: Wire(id),
                reply,
            } => {
                let _ = reply.send(Wire(state.replica.activate(id)));
            }
            ExecutorMsg::RunCalls {
                mode: Wire(mode),
                policy: Wire(policy),
                jobs: Wire(jobs),
                reply,
            } => {
                let result = run_calls(state, mode, policy, &jobs).await;
                // After the trajectories went to the learner, before the reply: the worst
                // moment for double counting.
                state
                    .ctx
                    .faults
                    .strike(FaultPoint::Reply(Role::Executor))
                    .await?;
                let _ = reply.send(Wire(result));
            }
        }
        Ok(())
    }
}

async fn run_calls(
    state: &mut ExecutorState,
    mode: Mode,
    policy: Option<PolicyId>,
    jobs: &[SubJob],
) -> Result<Vec<SubOutcome>, String> {
    let ctx = &state.ctx;
    let held = state
        .replica
        .select(policy)
        .map_err(|e| format!("sub policy: {e}"))?;
    let serve = held.serve().under_faults(&ctx.faults, Role::Executor);
    let ran = Rollouts::new(ctx, mode)
        .map_err(|e| e.to_string())?
        .with_tools(ctx.started_tools())
        .sub(serve, held.id(), jobs)
        .await
        .map_err(|e| e.to_string())?;
    let facts = Facts::of(ctx, mode);
    let items: Vec<CallToScore> = ran
        .iter()
        .map(|(o, _)| CallToScore {
            task: o.task.clone(),
            result: o.result.clone(),
            format: o.format,
            facts: facts.index(&o.key.rollout),
        })
        .collect();
    let scores = rpc::request(ctx, group::JUDGE, 0, |reply| JudgeMsg::ScoreCalls {
        items: Wire(items.clone()),
        reply,
    })
    .await
    .map_err(|e| e.to_string())?;
    // Only a role its learner trains keeps trajectories (not one swapped to frozen or expert).
    let trained =
        mode == Mode::Train && ctx.config.algo.variant.sub_is_trained() && held.serving().trains();
    let mut outcomes = Vec::with_capacity(ran.len());
    let mut trajectories: Vec<(CallKey, Trajectory)> = Vec::new();
    for ((mut o, t), s) in ran.into_iter().zip(scores) {
        o.expert = s;
        // The caller knows the sub-task it sent: only the result goes back.
        o.task.clear();
        if trained {
            trajectories.push((o.key, t));
        }
        outcomes.push(o);
    }
    if !trajectories.is_empty() {
        let owner = sub_model(ctx.config.algo.variant).group();
        rpc::cast(
            ctx,
            owner,
            LearnerMsg::AddSub {
                items: Wire(trajectories),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(outcomes)
}
