//! The judge: scores main rollouts (format, correctness) and sub-agent calls (`r_expert`)
//! against the task world's ground truth. Pluggable: any actor in the judge group that answers
//! these messages can replace it.
use std::sync::Arc;

use mgrpo_algo::MainParts;
use mgrpo_env::judge::{expert_score, main_parts};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::role::{Role, group};
use crate::rpc::{self, Reply, Wire};

/// One call to score: the sub-task, what the call returned, and its format.
pub type CallToScore = (String, String, bool);

/// One main rollout to score: question id, format, final answer.
pub type RolloutToScore = (String, bool, Option<String>);

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

/// `r_expert` of one call (0 for a call with a format error).
pub fn score_call(ctx: &NodeContext, (task, result, format): &CallToScore) -> f32 {
    if *format {
        expert_score(&ctx.world.knowledge, task, result)
    } else {
        0.0
    }
}

/// Reward parts of one main rollout.
pub fn score_rollout(
    ctx: &NodeContext,
    (qid, format, answer): &RolloutToScore,
) -> Result<MainParts, String> {
    let q = ctx
        .world
        .question(qid)
        .ok_or_else(|| format!("unknown question {qid}"))?;
    Ok(main_parts(*format, answer.as_deref(), &q.answer))
}

/// The judge actor.
pub struct Judge;

impl Actor for Judge {
    type Msg = JudgeMsg;
    type State = Arc<NodeContext>;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<JudgeMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<Arc<NodeContext>, ActorProcessingErr> {
        rpc::join(&ctx, group::JUDGE, myself.get_cell());
        Ok(ctx)
    }

    async fn handle(
        &self,
        _myself: ActorRef<JudgeMsg>,
        message: JudgeMsg,
        ctx: &mut Arc<NodeContext>,
    ) -> Result<(), ActorProcessingErr> {
        ctx.faults.strike(FaultPoint::Reply(Role::Judge)).await?;
        match message {
            JudgeMsg::ScoreCalls {
                items: Wire(items),
                reply,
            } => {
                let scores = items.iter().map(|c| score_call(ctx, c)).collect();
                let _ = reply.send(Wire(Ok(scores)));
            }
            JudgeMsg::ScoreMain {
                items: Wire(items),
                reply,
            } => {
                let parts = items.iter().map(|r| score_rollout(ctx, r)).collect();
                let _ = reply.send(Wire(parts));
            }
        }
        Ok(())
    }
}
