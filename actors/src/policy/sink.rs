//! Who receives a model's new versions. A learner publishes to a [`PolicySinks`] registry that
//! the node builds for it from the variant's role map (planners for the main model; executors
//! for the sub model, or for the main model where it is shared), so the learner depends on this
//! trait, never on the planner's or executor's messages. Hot-swap adds and moves sinks here.
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Message, RpcReplyPort};

use crate::context::NodeContext;
use crate::policy::chunks::{PolicyChunk, PolicyId, split};
use crate::rpc::groups::members;
use crate::rpc::request::call_member;
use crate::rpc::wire::Reply;

/// A message type that can carry a chunk of a new policy version to its actor.
pub trait PolicySink: Message + Sized {
    /// The message that delivers `chunk`; the actor replies once it has stored it (and, for
    /// the last chunk, loaded the version).
    fn load_policy(chunk: PolicyChunk, reply: RpcReplyPort<Reply<()>>) -> Self;
}

/// One group of replicas, with its message type erased.
trait SinkGroup: Send + Sync {
    fn group(&self) -> &'static str;
    fn publish<'a>(
        &'a self,
        ctx: &'a NodeContext,
        id: PolicyId,
        weights: &'a Arc<Vec<u8>>,
    ) -> BoxFuture<'a, ()>;
}

struct Typed<M>(&'static str, PhantomData<fn() -> M>);

impl<M: PolicySink> SinkGroup for Typed<M> {
    fn group(&self) -> &'static str {
        self.0
    }

    fn publish<'a>(
        &'a self,
        ctx: &'a NodeContext,
        id: PolicyId,
        weights: &'a Arc<Vec<u8>>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let timeout = Some(Duration::from_secs(ctx.config.actors.request_timeout_s));
            let max = ctx.config.cluster.max_chunk_bytes();
            for replica in members::<M>(ctx, self.0) {
                // Whole to an actor on this node (the Arc is shared), in chunks under the frame
                // limit to one on another node.
                let limit = if replica.get_id().is_local() {
                    usize::MAX
                } else {
                    max
                };
                for c in split(id, weights, limit) {
                    // A replica that misses a version (it died, or its node did) fetches the
                    // current one when it starts, and recovery republishes: not an error here.
                    if let Err(e) =
                        call_member(&replica, |reply| M::load_policy(c.clone(), reply), timeout)
                            .await
                    {
                        tracing::warn!(group = self.0, error = %e, "a replica did not take a version");
                        break;
                    }
                }
            }
        })
    }
}

/// The groups of replicas that run one model.
#[derive(Clone, Default)]
pub struct PolicySinks {
    groups: Vec<Arc<dyn SinkGroup>>,
}

impl std::fmt::Debug for PolicySinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.groups()).finish()
    }
}

impl PolicySinks {
    /// Adds the members of `group`, whose messages are `M`.
    pub fn with<M: PolicySink>(mut self, group: &'static str) -> Self {
        self.groups.push(Arc::new(Typed::<M>(group, PhantomData)));
        self
    }

    /// The groups, in publishing order.
    pub fn groups(&self) -> Vec<&'static str> {
        self.groups.iter().map(|g| g.group()).collect()
    }

    /// Sends version `id` to every replica, group by group, and waits for each to load it.
    pub async fn publish(&self, ctx: &NodeContext, id: PolicyId, weights: &Arc<Vec<u8>>) {
        for g in &self.groups {
            g.publish(ctx, id, weights).await;
        }
    }
}
