//! An executor: sub-agent inference with the real tools. A pool of them forms the
//! `role/executor` group; each request is a batch of delegated sub-tasks run in lockstep.
//!
//! Requests are idempotent: the same calls with the same seeds give the same tokens, and the
//! learner keys trajectories by call coordinates, so a retry after a crash cannot double-count.
use std::sync::Arc;

use mgrpo_algo::Trajectory;
use mgrpo_models::Policy;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::context::NodeContext;
use crate::groups;
use crate::judge::JudgeMsg;
use crate::learner::{LearnerMsg, fetch_policy};
use crate::policy_transfer::{Assembler, PolicyChunk};
use crate::rollout::{CallKey, Mode, SubJob, SubOutcome, run_sub_jobs};
use crate::wire::{Reply, Wire};

/// Messages of an executor.
#[derive(RactorClusterMessage)]
pub enum ExecutorMsg {
    /// Run a batch of sub-agent calls; reply with their outcomes (judged).
    #[rpc]
    RunCalls {
        /// Sampling mode.
        mode: Wire<Mode>,
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
    /// Fault injection: panic while handling the next `RunCalls`, after its trajectories went
    /// to the learner and before replying (the worst moment for double counting).
    PanicOnNextRequest,
}

/// Arguments of an executor.
pub struct ExecutorArgs {
    /// Shared node context.
    pub ctx: Arc<NodeContext>,
    /// The learner group that owns the sub policy (sub learner, or the shared learner).
    pub owner: &'static str,
    /// Whether calls are trained on (send trajectories to the owner).
    pub trained: bool,
}

/// The executor actor.
pub struct Executor;

/// Its state.
pub struct ExecutorState {
    args: ExecutorArgs,
    policy: Policy,
    version: u64,
    panic_next: bool,
    incoming: Assembler,
}

impl Actor for Executor {
    type Msg = ExecutorMsg;
    type State = ExecutorState;
    type Arguments = ExecutorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ExecutorMsg>,
        args: ExecutorArgs,
    ) -> Result<ExecutorState, ActorProcessingErr> {
        // Whatever version the owner holds now is the one to serve (also after a restart).
        let (version, bytes) = fetch_policy(&args.ctx, args.owner).await?;
        let device = args.ctx.device(&args.ctx.config.models.sub)?;
        let policy = Policy::from_bytes(&bytes, &device)?;
        groups::join(&args.ctx, groups::EXECUTOR, myself.get_cell());
        Ok(ExecutorState {
            args,
            policy,
            version,
            panic_next: false,
            incoming: Assembler::default(),
        })
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
                let r = match state.incoming.push(chunk) {
                    Ok(Some((version, bytes))) => {
                        let device = state.args.ctx.device(&state.args.ctx.config.models.sub)?;
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
            ExecutorMsg::PanicOnNextRequest => state.panic_next = true,
            ExecutorMsg::RunCalls {
                mode: Wire(mode),
                jobs: Wire(jobs),
                reply,
            } => {
                let result = run_calls(state, mode, &jobs).await;
                if state.panic_next {
                    panic!("injected executor fault");
                }
                let _ = reply.send(Wire(result));
            }
        }
        Ok(())
    }
}

async fn run_calls(
    state: &ExecutorState,
    mode: Mode,
    jobs: &[SubJob],
) -> Result<Vec<SubOutcome>, String> {
    let ctx = &state.args.ctx;
    let ran = tokio::task::block_in_place(|| {
        run_sub_jobs(
            &state.policy,
            &ctx.codec,
            &ctx.world,
            &ctx.config.sampling,
            ctx.config.run.seed,
            mode,
            jobs,
        )
    })
    .map_err(|e| e.to_string())?;
    let items: Vec<(String, String, bool)> = ran
        .iter()
        .map(|(o, _)| (o.task.clone(), o.result.clone(), o.format))
        .collect();
    let scores = groups::request(ctx, groups::JUDGE, 0, |reply| JudgeMsg::ScoreCalls {
        items: Wire(items.clone()),
        reply,
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut outcomes = Vec::with_capacity(ran.len());
    let mut trajectories: Vec<(CallKey, Trajectory)> = Vec::new();
    for ((mut o, t), s) in ran.into_iter().zip(scores) {
        o.expert = s;
        // The caller knows the sub-task it sent: only the result goes back.
        o.task.clear();
        if mode == Mode::Train && state.args.trained {
            trajectories.push((o.key, t));
        }
        outcomes.push(o);
    }
    if !trajectories.is_empty() {
        let owner = groups::wait_member::<LearnerMsg>(
            ctx,
            state.args.owner,
            std::time::Duration::from_secs(30),
        )
        .await
        .map_err(|e| e.to_string())?;
        owner[0]
            .cast(LearnerMsg::AddSub {
                items: Wire(trajectories),
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(outcomes)
}
