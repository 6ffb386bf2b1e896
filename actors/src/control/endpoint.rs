//! The control endpoint's actor, next to the coordinator (the hub of a cluster, the one
//! process of a default run), in the `control/endpoint` group: control clients (`mgrpo swap`)
//! reach it over the cluster link. It checks a request and queues it for the coordinator's next
//! boundary ([`crate::swap::queue`]); the caller's reply port travels with the request and is
//! answered once the swap took effect or failed.
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::context::NodeContext;
use crate::role::group;
use crate::rpc::{self, Reply, Wire};
use crate::swap::queue::{Pending, SwapOutcome, SwapRequest};
use crate::swap::target::check_role;

/// Messages of the control endpoint.
#[derive(RactorClusterMessage)]
pub enum ControlMsg {
    /// Swap a role at a step boundary; answered when it took effect (or failed).
    #[rpc]
    Swap {
        /// The request.
        request: Wire<SwapRequest>,
        /// What the swap did.
        reply: RpcReplyPort<Reply<SwapOutcome>>,
    },
}

/// The control endpoint actor.
pub struct ControlEndpoint;

impl Actor for ControlEndpoint {
    type Msg = ControlMsg;
    type State = Arc<NodeContext>;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<ControlMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<Arc<NodeContext>, ActorProcessingErr> {
        rpc::join(&ctx, group::CONTROL, myself.get_cell());
        Ok(ctx)
    }

    async fn handle(
        &self,
        _myself: ActorRef<ControlMsg>,
        message: ControlMsg,
        ctx: &mut Arc<NodeContext>,
    ) -> Result<(), ActorProcessingErr> {
        let ControlMsg::Swap {
            request: Wire(request),
            reply,
        } = message;
        if let Err(e) = check_role(request.role, ctx.config.algo.variant) {
            let _ = reply.send(Wire(Err(e)));
            return Ok(());
        }
        let wait = Duration::from_secs(request.wait_s);
        ctx.swaps.offer(Pending {
            request,
            reply,
            received: Instant::now(),
        });
        // Fail it at its deadline even if no boundary comes (the run stuck waiting for a node).
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait + Duration::from_millis(50)).await;
            ctx.swaps.expire();
        });
        Ok(())
    }
}
