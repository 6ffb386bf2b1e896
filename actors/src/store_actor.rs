//! The store actor: owns the run's sled store; every write goes through it. During a step it
//! also holds the step's published statistics (ALGORITHM.md's decoupled statistics) for the
//! learners to read, until the step is committed atomically.
use std::collections::BTreeMap;
use std::sync::Arc;

use mgrpo_algo::{MainRolloutStat, SubCallStat};
use mgrpo_store::{CommitOutcome, StepCommit, Store};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;

use crate::context::NodeContext;
use crate::groups;

/// One step's published statistics: per group, the main rollouts and the sub calls.
pub type StepStatistics = (Vec<Vec<MainRolloutStat>>, Vec<Vec<SubCallStat>>);

/// Messages of the store actor.
#[derive(RactorMessage)]
pub enum StoreMsg {
    /// Publish a step's statistics (idempotent: a repeat replaces identical data).
    Stage {
        /// The step.
        step: u64,
        /// The statistics.
        stats: StepStatistics,
        /// Size of the statistics in bytes (JSON), for the bytes-exchanged metric.
        reply: RpcReplyPort<Result<usize, String>>,
    },
    /// Read a step's published statistics.
    Statistics {
        /// The step.
        step: u64,
        /// The statistics.
        reply: RpcReplyPort<Result<StepStatistics, String>>,
    },
    /// Commit a step atomically; drops its staged statistics.
    Commit {
        /// The step's records.
        commit: Box<StepCommit>,
        /// Whether it was written (false: identical step already there).
        reply: RpcReplyPort<Result<bool, String>>,
    },
}

/// The store actor.
pub struct StoreActor;

/// Its state.
pub struct StoreState {
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
        groups::join(&ctx, groups::STORE, myself.get_cell());
        Ok(StoreState {
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
            StoreMsg::Stage { step, stats, reply } => {
                let bytes = serde_json::to_vec(&stats).map(|b| b.len()).unwrap_or(0);
                state.staged.insert(step, Arc::new(stats));
                let _ = reply.send(Ok(bytes));
            }
            StoreMsg::Statistics { step, reply } => {
                let r = state
                    .staged
                    .get(&step)
                    .map(|s| (**s).clone())
                    .ok_or_else(|| format!("no statistics staged for step {step}"));
                let _ = reply.send(r);
            }
            StoreMsg::Commit { commit, reply } => {
                let step = commit.record.step;
                let r = tokio::task::block_in_place(|| state.store.commit_step(&commit))
                    .map(|o| o == CommitOutcome::Written)
                    .map_err(|e| e.to_string());
                if r.is_ok() {
                    state.staged.remove(&step);
                }
                let _ = reply.send(r);
            }
        }
        Ok(())
    }
}
