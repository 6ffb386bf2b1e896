//! The judge: scores main rollouts (format, correctness) and sub-agent calls (`r_expert`) with
//! the task's scorers ([`Scoring`]: the world's ground truth, a metric, or scorer commands,
//! whose processes the judge owns). Pluggable: any actor in the judge group that answers these
//! messages can replace it.
use std::sync::Arc;

use mgrpo_algo::MainParts;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::role::{Role, group};
use crate::rpc::{self, Reply, Wire};
use crate::scoring::Scoring;
pub use crate::scoring::{CallToScore, RolloutToScore};

/// Messages of the judge.
#[derive(RactorClusterMessage)]
pub enum JudgeMsg {
    /// `r_expert` of each call (0 for a call with a format error).
    #[rpc]
    ScoreCalls {
        /// The calls.
        items: Wire<Vec<CallToScore>>,
        /// Scores in the same order.
        reply: RpcReplyPort<Reply<Vec<f32>>>,
    },
    /// Reward parts of each main rollout.
    #[rpc]
    ScoreMain {
        /// The rollouts.
        items: Wire<Vec<RolloutToScore>>,
        /// Parts in the same order.
        reply: RpcReplyPort<Reply<Vec<MainParts>>>,
    },
}

/// The judge's state: the node's context and the task's scorers.
pub struct JudgeState {
    ctx: Arc<NodeContext>,
    scoring: Scoring,
}

/// The judge actor.
pub struct Judge;

impl Actor for Judge {
    type Msg = JudgeMsg;
    type State = JudgeState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<JudgeMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<JudgeState, ActorProcessingErr> {
        rpc::join(&ctx, group::JUDGE, myself.get_cell());
        let scoring = Scoring::new(&ctx.config);
        Ok(JudgeState { ctx, scoring })
    }

    async fn handle(
        &self,
        _myself: ActorRef<JudgeMsg>,
        message: JudgeMsg,
        state: &mut JudgeState,
    ) -> Result<(), ActorProcessingErr> {
        let JudgeState { ctx, scoring } = state;
        ctx.faults.strike(FaultPoint::Reply(Role::Judge)).await?;
        match message {
            JudgeMsg::ScoreCalls {
                items: Wire(items),
                reply,
            } => {
                let scores = async {
                    let mut out = Vec::with_capacity(items.len());
                    for c in &items {
                        out.push(scoring.call(ctx, c).await?);
                    }
                    Ok(out)
                }
                .await;
                let _ = reply.send(Wire(scores));
            }
            JudgeMsg::ScoreMain {
                items: Wire(items),
                reply,
            } => {
                let parts = async {
                    let mut out = Vec::with_capacity(items.len());
                    for r in &items {
                        out.push(scoring.rollout(ctx, r).await?);
                    }
                    Ok(out)
                }
                .await;
                let _ = reply.send(Wire(parts));
            }
        }
        Ok(())
    }
}
