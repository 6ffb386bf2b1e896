//! The store actor: owns the run's sled store; every write goes through it. During a step it
//! also holds the step's published statistics (the decoupled statistics of docs/algorithm.md) for the
//! learners to read, until the step is committed atomically.
use std::collections::BTreeMap;
use std::sync::Arc;

use mgrpo_algo::{MainRolloutStat, SubCallStat};
use mgrpo_store::{
    CommitOutcome, Event, GroupRecord, GroupToolCalls, RoleVersion, StepCommit, StepRecord, Store,
    SwapRecord,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::role::{Role, group};
use crate::rpc::{self, Reply, Wire};

/// One step's published statistics: per group (in query order), the main rollouts' and the
/// sub calls'. Shared, never copied, between the coordinator, the store actor and the learners
/// of one node; encoded once for a learner on another node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStatistics {
    /// Per group, `(R_M, r_format, r_correct, d_k)` of each rollout.
    pub main: Vec<Vec<MainRolloutStat>>,
    /// Per group, `(r_format, r_expert)` of each call, ordered by `(rollout, call)`.
    pub calls: Vec<Vec<SubCallStat>>,
}

/// Messages of the store actor.
#[derive(RactorClusterMessage)]
pub enum StoreMsg {
    /// Publish a step's statistics (idempotent: a repeat replaces identical data).
    #[rpc]
    Stage {
        /// The step.
        step: u64,
        /// The statistics.
        stats: Wire<Arc<StepStatistics>>,
        /// Size of the statistics in bytes (the wire codec's), for the bytes-exchanged metric.
        reply: RpcReplyPort<Reply<u64>>,
    },
    /// Read a step's published statistics.
    #[rpc]
    Statistics {
        /// The step.
        step: u64,
        /// The statistics.
        reply: RpcReplyPort<Reply<Arc<StepStatistics>>>,
    },
    /// Commit a step atomically; drops its staged statistics.
    #[rpc]
    Commit {
        /// The step's records.
        commit: Wire<Arc<StepCommit>>,
        /// Whether it was written (false: identical step already there).
        reply: RpcReplyPort<Reply<bool>>,
    },
    /// Record a swap before it takes effect (a replayed swap is a no-op).
    #[rpc]
    RecordSwap {
        /// The swap.
        swap: Wire<SwapRecord>,
        /// Whether it was written (false: the identical swap was already there).
        reply: RpcReplyPort<Reply<bool>>,
    },
    /// Every recorded swap, by step.
    #[rpc]
    Swaps {
        /// The swaps.
        reply: RpcReplyPort<Reply<Vec<SwapRecord>>>,
    },
    /// The number of committed steps (the next step to run) and the last step's record.
    #[rpc]
    Progress {
        /// `(committed steps, last record)`.
        reply: RpcReplyPort<Reply<(u64, Option<StepRecord>)>>,
    },
    /// The committed steps' records in `from..to`, in step order (the coordinator rebuilds
    /// the `metrics.jsonl` lines a crash lost from them).
    #[rpc]
    Steps {
        /// The first step.
        from: u64,
        /// One past the last.
        to: u64,
        /// The records there are.
        reply: RpcReplyPort<Reply<Vec<StepRecord>>>,
    },
    /// A committed step's groups and their tool calls (the dashboard inspects one on a live
    /// run).
    #[rpc]
    Groups {
        /// The step.
        step: u64,
        /// Its groups in query order (empty: not committed), and the tool calls of those that
        /// made some.
        reply: RpcReplyPort<Reply<(Vec<GroupRecord>, Vec<GroupToolCalls>)>>,
    },
    /// Record something that happened outside the step loop (a resume, a failed step, a
    /// recovery): the dashboard's timeline. Not part of what a replay must reproduce.
    #[rpc]
    RecordEvent {
        /// The event.
        event: Wire<Event>,
        /// Done.
        reply: RpcReplyPort<Reply<()>>,
    },
    /// The run's events (restarts, resumes…) and its roles' current versions.
    #[rpc]
    Events {
        /// `(events, role versions)`.
        reply: RpcReplyPort<Reply<(Vec<Event>, Vec<RoleVersion>)>>,
    },
}

/// The store actor.
pub struct StoreActor;

/// Its state.
pub struct StoreState {
    ctx: Arc<NodeContext>,
    store: Store,
    staged: BTreeMap<u64, Arc<StepStatistics>>,
}

impl Actor for StoreActor {
    type Msg = StoreMsg;
    type State = StoreState;
    type Arguments = (Arc<NodeContext>, Store);

    async fn pre_start(
        &self,
        myself: ActorRef<StoreMsg>,
        (ctx, store): (Arc<NodeContext>, Store),
    ) -> Result<StoreState, ActorProcessingErr> {
        rpc::join(&ctx, group::STORE, myself.get_cell());
        Ok(StoreState {
            ctx,
            store,
            staged: BTreeMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<StoreMsg>,
        message: StoreMsg,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StoreMsg::Stage {
                step,
                stats: Wire(stats),
                reply,
            } => {
                let bytes = mgrpo_store::codec::encode(&stats).map_or(0, |b| b.len() as u64);
                state.staged.insert(step, stats);
                let _ = reply.send(Wire(Ok(bytes)));
            }
            StoreMsg::Progress { reply } => {
                let r = tokio::task::block_in_place(|| {
                    let last = state.store.last_step()?;
                    let record = match last {
                        Some(s) => state.store.step(s)?,
                        None => None,
                    };
                    Ok::<_, mgrpo_store::StoreError>((last.map_or(0, |s| s + 1), record))
                });
                let _ = reply.send(Wire(r.map_err(|e| e.to_string())));
            }
            StoreMsg::RecordSwap {
                swap: Wire(swap),
                reply,
            } => {
                let r = tokio::task::block_in_place(|| state.store.record_swap(&swap))
                    .map(|o| o == CommitOutcome::Written)
                    .map_err(|e| e.to_string());
                let _ = reply.send(Wire(r));
            }
            StoreMsg::Steps { from, to, reply } => {
                let r = tokio::task::block_in_place(|| {
                    let mut out = Vec::new();
                    for s in from..to {
                        out.extend(state.store.step(s)?);
                    }
                    Ok::<_, mgrpo_store::StoreError>(out)
                });
                let _ = reply.send(Wire(r.map_err(|e| e.to_string())));
            }
            StoreMsg::Groups { step, reply } => {
                let r = tokio::task::block_in_place(|| {
                    Ok::<_, mgrpo_store::StoreError>((
                        state.store.groups(step)?,
                        state.store.tool_calls(step)?,
                    ))
                });
                let _ = reply.send(Wire(r.map_err(|e| e.to_string())));
            }
            StoreMsg::RecordEvent {
                event: Wire(event),
                reply,
            } => {
                let r = tokio::task::block_in_place(|| state.store.record_event(&event));
                let _ = reply.send(Wire(r.map_err(|e| e.to_string())));
            }
            StoreMsg::Events { reply } => {
                let r = tokio::task::block_in_place(|| {
                    Ok::<_, mgrpo_store::StoreError>((
                        state.store.events()?,
                        state.store.role_versions()?,
                    ))
                });
                let _ = reply.send(Wire(r.map_err(|e| e.to_string())));
            }
            StoreMsg::Swaps { reply } => {
                let r = tokio::task::block_in_place(|| state.store.swaps());
                let _ = reply.send(Wire(r.map_err(|e| e.to_string())));
            }
            StoreMsg::Statistics { step, reply } => {
                let r = state
                    .staged
                    .get(&step)
                    .cloned()
                    .ok_or_else(|| format!("no statistics staged for step {step}"));
                let _ = reply.send(Wire(r));
            }
            StoreMsg::Commit {
                commit: Wire(commit),
                reply,
            } => {
                let step = commit.record.step;
                // A commit error mid-write: the batch is never applied, so nothing of the
                // step is kept and the coordinator runs it again.
                let r = match state.ctx.faults.strike(FaultPoint::StoreCommit).await {
                    Err(e) => Err(format!("committing step {step}: {e}")),
                    Ok(()) => tokio::task::block_in_place(|| state.store.commit_step(&commit))
                        .map(|o| o == CommitOutcome::Written)
                        .map_err(|e| e.to_string()),
                };
                if r.is_ok() {
                    state.staged.remove(&step);
                }
                state
                    .ctx
                    .faults
                    .strike(FaultPoint::Reply(Role::Store))
                    .await?;
                let _ = reply.send(Wire(r));
            }
        }
        Ok(())
    }
}
