//! The inference side of a policy: the copy a planner or executor samples from, fetched from
//! the model's learner when the actor starts and replaced as new versions arrive in chunks.
//! Written once for every inference actor.
use std::sync::Arc;

use mgrpo_models::Policy;
use ractor::{Message, RpcReplyPort};

use crate::config::RoleModelConfig;
use crate::context::NodeContext;
use crate::policy::chunks::{Assembled, Assembler, PolicyChunk, PolicyId};
use crate::rpc::request::request;
use crate::rpc::wire::Reply;

/// A message type that can ask a learner for chunk `chunk` of its current version.
pub trait PolicySource: Message + Sized {
    /// The request (chunk 0 tells how many chunks the version has).
    fn get_policy(chunk: u32, reply: RpcReplyPort<Reply<PolicyChunk>>) -> Self;
}

/// Fetches the current version of the learner in `group`, chunk by chunk; starts over if the
/// version changes between chunks.
pub async fn fetch<M: PolicySource>(
    ctx: &NodeContext,
    group: &'static str,
) -> Result<Assembled, String> {
    let mut assembler = Assembler::default();
    let get = |i: u32| request(ctx, group, 0, move |reply| M::get_policy(i, reply));
    for _attempt in 0..5 {
        let first = get(0).await.map_err(|e| e.to_string())?;
        let (id, total) = (first.id, first.total);
        if let Some(done) = assembler.push(first)? {
            return Ok(done);
        }
        for i in 1..total {
            let c = get(i).await.map_err(|e| e.to_string())?;
            if c.id != id {
                break;
            }
            if let Some(done) = assembler.push(c)? {
                return Ok(done);
            }
        }
    }
    Err(format!(
        "{group}: the policy kept changing while it was fetched"
    ))
}

/// A policy served by an inference actor, with the id of the version it holds.
pub struct Replica {
    policy: Policy,
    id: PolicyId,
    device: burn::tensor::Device,
    incoming: Assembler,
}

impl Replica {
    /// Fetches the current version from the learner in `group`, on the device of `settings`.
    pub async fn start<M: PolicySource>(
        ctx: &NodeContext,
        group: &'static str,
        settings: &RoleModelConfig,
    ) -> Result<Self, String> {
        let device = ctx.device(settings).map_err(|e| e.to_string())?;
        let (id, bytes) = fetch::<M>(ctx, group).await?;
        let policy = Policy::from_bytes(&bytes, &device).map_err(|e| e.to_string())?;
        Ok(Self {
            policy,
            id,
            device,
            incoming: Assembler::default(),
        })
    }

    /// Takes one chunk of a new version; loads the version once every chunk is in.
    pub fn receive(&mut self, chunk: PolicyChunk) -> Result<(), String> {
        if let Some((id, bytes)) = self.incoming.push(chunk)? {
            self.load(id, &bytes)?;
        }
        Ok(())
    }

    fn load(&mut self, id: PolicyId, bytes: &Arc<Vec<u8>>) -> Result<(), String> {
        self.policy = Policy::from_bytes(bytes, &self.device).map_err(|e| e.to_string())?;
        self.id = id;
        Ok(())
    }

    /// The policy to sample from.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Which version it is.
    pub fn id(&self) -> PolicyId {
        self.id
    }
}
