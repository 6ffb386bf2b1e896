//! An executor: sub-agent inference with the real tools. A pool of them forms the
//! `role/executor` group; each request is a batch of delegated sub-tasks run in lockstep.
//!
//! Requests are idempotent: the same calls with the same seeds give the same tokens, and the
//! learner keys trajectories by call coordinates, so a retry after a crash cannot double-count.
use std::sync::Arc;

use mgrpo_algo::Trajectory;
use mgrpo_models::Policy;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;

use crate::context::NodeContext;
use crate::groups;
use crate::judge::JudgeMsg;
use crate::learner::LearnerMsg;
use crate::rollout::{CallKey, Mode, SubJob, SubOutcome, run_sub_jobs};

/// Messages of an executor.
#[derive(RactorMessage)]
pub enum ExecutorMsg {
    /// Run a batch of sub-agent calls; reply with their outcomes (judged).
    RunCalls {
        /// Sampling mode.
        mode: Mode,
        /// The calls.
        jobs: Vec<SubJob>,
        /// Outcomes in the same order.
        reply: RpcReplyPort<Result<Vec<SubOutcome>, String>>,
    },
    /// Use a new version of the sub policy.
    LoadPolicy {
        /// The version.
        version: u64,
        /// `Policy::to_bytes` output.
        bytes: Arc<Vec<u8>>,
        /// Acknowledged once loaded.
        reply: RpcReplyPort<Result<(), String>>,
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
        let (version, bytes) = groups::request(&args.ctx, args.owner, 0, |reply| {
            LearnerMsg::GetPolicy { reply }
        })
        .await?;
        let device = args.ctx.device(&args.ctx.config.models.sub)?;
        let policy = Policy::from_bytes(&bytes, &device)?;
        groups::join(&args.ctx, groups::EXECUTOR, myself.get_cell());
        Ok(ExecutorState {
            args,
            policy,
            version,
            panic_next: false,
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
                version,
                bytes,
                reply,
            } => {
                let device = state.args.ctx.device(&state.args.ctx.config.models.sub)?;
                match Policy::from_bytes(&bytes, &device) {
                    Ok(p) => {
                        state.policy = p;
                        state.version = version;
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            ExecutorMsg::PanicOnNextRequest => state.panic_next = true,
            ExecutorMsg::RunCalls { mode, jobs, reply } => {
                let result = run_calls(state, mode, &jobs).await;
                if state.panic_next {
                    panic!("injected executor fault");
                }
                let _ = reply.send(result);
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
        items: items.clone(),
        reply,
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut outcomes = Vec::with_capacity(ran.len());
    let mut trajectories: Vec<(CallKey, Trajectory)> = Vec::new();
    for ((mut o, t), s) in ran.into_iter().zip(scores) {
        o.expert = s;
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
                items: trajectories,
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(outcomes)
}
