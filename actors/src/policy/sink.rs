//! Who receives a model's new versions. A learner publishes to a [`PolicySinks`] registry that
//! the node builds for it from the variant's role map (planners for the main model; executors
//! for the sub model, or for the main model where it is shared), so the learner depends on this
//! trait, never on the planner's or executor's messages. A swap stages its candidate on every
//! sink, then activates it at the step boundary (or drops it if preparing failed anywhere).
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
use crate::swap::target::Serving;

/// A message type that can carry a chunk of a new policy version to its actor.
pub trait PolicySink: Message + Sized {
    /// The message that delivers `chunk`; the actor replies once it has stored it (and, for
    /// the last chunk, loaded the version — or, for a staged chunk, loaded and health-checked
    /// the candidate).
    fn load_policy(chunk: PolicyChunk, reply: RpcReplyPort<Reply<()>>) -> Self;
    /// The message that makes the staged candidate `id` the served policy (`None`: drop it).
    fn activate(id: Option<PolicyId>, reply: RpcReplyPort<Reply<()>>) -> Self;
}

/// One version on its way to the replicas.
#[derive(Clone, Copy)]
struct Outgoing<'a> {
    id: PolicyId,
    serving: Serving,
    staged: bool,
    weights: &'a Arc<Vec<u8>>,
}

/// One group of replicas, with its message type erased.
trait SinkGroup: Send + Sync {
    fn group(&self) -> &'static str;
    /// Sends the version to every member; the errors of the members that did not take it.
    fn send<'a>(&'a self, ctx: &'a NodeContext, v: Outgoing<'a>) -> BoxFuture<'a, Vec<String>>;
    /// Activates (or drops) a staged candidate on every member; their errors.
    fn activate<'a>(
        &'a self,
        ctx: &'a NodeContext,
        id: Option<PolicyId>,
    ) -> BoxFuture<'a, Vec<String>>;
}

struct Typed<M>(&'static str, PhantomData<fn() -> M>);

fn timeout(ctx: &NodeContext) -> Option<Duration> {
    Some(Duration::from_secs(ctx.config.actors.request_timeout_s))
}

impl<M: PolicySink> SinkGroup for Typed<M> {
    fn group(&self) -> &'static str {
        self.0
    }

    fn send<'a>(&'a self, ctx: &'a NodeContext, v: Outgoing<'a>) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            let max = ctx.config.cluster.max_chunk_bytes();
            let mut errors = Vec::new();
            for replica in members::<M>(ctx, self.0) {
                // Whole to an actor on this node (the Arc is shared), in chunks under the frame
                // limit to one on another node.
                let limit = if replica.get_id().is_local() {
                    usize::MAX
                } else {
                    max
                };
                for c in split(v.id, v.weights, limit) {
                    let c = c.serving(v.serving, v.staged);
                    let load = |reply| M::load_policy(c.clone(), reply);
                    if let Err(e) = call_member(&replica, load, timeout(ctx)).await {
                        errors.push(format!("{} {}: {e}", self.0, replica.get_id()));
                        break;
                    }
                }
            }
            errors
        })
    }

    fn activate<'a>(
        &'a self,
        ctx: &'a NodeContext,
        id: Option<PolicyId>,
    ) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            let mut errors = Vec::new();
            for replica in members::<M>(ctx, self.0) {
                let r = call_member(&replica, |reply| M::activate(id, reply), timeout(ctx)).await;
                if let Err(e) = r {
                    errors.push(format!("{} {}: {e}", self.0, replica.get_id()));
                }
            }
            errors
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

    /// Sends version `id` (served as `serving`) to every replica, group by group, and waits
    /// for each to load it. A replica that misses a version (it died, or its node did) fetches
    /// the current one when it starts, and recovery republishes: not an error here.
    pub async fn publish(
        &self,
        ctx: &NodeContext,
        id: PolicyId,
        serving: Serving,
        weights: &Arc<Vec<u8>>,
    ) {
        let v = Outgoing {
            id,
            serving,
            staged: false,
            weights,
        };
        for g in &self.groups {
            for e in g.send(ctx, v).await {
                tracing::warn!(error = %e, "a replica did not take a version");
            }
        }
    }

    /// Stages a swap's candidate on every replica (each loads and health-checks it, and keeps
    /// serving its current policy): an error naming every replica that could not.
    pub async fn stage(
        &self,
        ctx: &NodeContext,
        id: PolicyId,
        serving: Serving,
        weights: &Arc<Vec<u8>>,
    ) -> Result<(), String> {
        let v = Outgoing {
            id,
            serving,
            staged: true,
            weights,
        };
        let mut errors = Vec::new();
        for g in &self.groups {
            errors.extend(g.send(ctx, v).await);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "preparing the replicas failed: {}",
                errors.join("; ")
            ))
        }
    }

    /// Makes the staged candidate `id` the served policy on every replica (`None`: drops it).
    pub async fn activate(&self, ctx: &NodeContext, id: Option<PolicyId>) -> Result<(), String> {
        let mut errors = Vec::new();
        for g in &self.groups {
            errors.extend(g.activate(ctx, id).await);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}
