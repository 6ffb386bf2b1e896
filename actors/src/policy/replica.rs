//! The inference side of a policy: the copy a planner or executor samples from, fetched from
//! the model's learner when the actor starts and replaced as new versions arrive in chunks.
//! Written once for every inference actor. A swap stages its candidate here first (loaded and
//! health-checked, not served) and activates it at the step boundary.
use mgrpo_models::Policy;
use ractor::{Message, RpcReplyPort};

use crate::context::NodeContext;
use crate::policy::chunks::{Assembled, Assembler, PolicyChunk, PolicyId};
use crate::policy::health::{check, probe};
use crate::role::LearnerRole;
use crate::rollout::turns::Serve;
use crate::rpc::request::request;
use crate::rpc::wire::Reply;
use crate::swap::target::Serving;

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

/// A policy served by an inference actor, with the id of the version it holds and how the
/// role is served (its policy, or the scripted expert), plus the candidate of a swap being
/// prepared.
pub struct Replica {
    policy: Policy,
    id: PolicyId,
    serving: Serving,
    device: burn::tensor::Device,
    probe: Vec<u32>,
    incoming: Assembler,
    staging: Assembler,
    staged: Option<(PolicyId, Serving, Policy)>,
}

impl Replica {
    /// Fetches the current version of `role`'s model from its learner, on the device of the
    /// role's settings.
    pub async fn start<M: PolicySource>(
        ctx: &NodeContext,
        role: LearnerRole,
    ) -> Result<Self, String> {
        let device = ctx
            .device(ctx.config.models.of(role))
            .map_err(|e| e.to_string())?;
        let (id, serving, bytes) = fetch::<M>(ctx, role.group()).await?;
        let policy = Policy::from_bytes(&bytes, &device).map_err(|e| e.to_string())?;
        Ok(Self {
            policy,
            id,
            serving,
            device,
            probe: probe(ctx, role)?,
            incoming: Assembler::default(),
            staging: Assembler::default(),
            staged: None,
        })
    }

    /// Takes one chunk of a new version; loads the version once every chunk is in. A staged
    /// chunk (a swap being prepared) is loaded and health-checked aside instead.
    pub fn receive(&mut self, chunk: PolicyChunk) -> Result<(), String> {
        if chunk.staged {
            if let Some((id, serving, bytes)) = self.staging.push(chunk)? {
                let policy = Policy::from_bytes(&bytes, &self.device).map_err(|e| e.to_string())?;
                check(&policy, &self.probe)?;
                self.staged = Some((id, serving, policy));
            }
            return Ok(());
        }
        if let Some((id, serving, bytes)) = self.incoming.push(chunk)? {
            self.policy = Policy::from_bytes(&bytes, &self.device).map_err(|e| e.to_string())?;
            self.id = id;
            self.serving = serving;
        }
        Ok(())
    }

    /// Serves the staged candidate `id` from now on (`None`: drops the candidate).
    pub fn activate(&mut self, id: Option<PolicyId>) -> Result<(), String> {
        let staged = self.staged.take();
        let Some(id) = id else {
            self.staging = Assembler::default();
            return Ok(());
        };
        match staged {
            Some((sid, serving, policy)) if sid == id => {
                self.policy = policy;
                self.id = id;
                self.serving = serving;
                Ok(())
            }
            _ => Err(format!(
                "policy {id:?} was not staged here (restarted since?)"
            )),
        }
    }

    /// What to run turns with: the policy, or the scripted expert.
    pub fn serve(&self) -> Serve<'_> {
        match self.serving {
            Serving::Expert => Serve::Expert,
            Serving::Learner | Serving::Frozen => Serve::Policy(&self.policy),
        }
    }

    /// How the role is served.
    pub fn serving(&self) -> Serving {
        self.serving
    }

    /// Which version it is.
    pub fn id(&self) -> PolicyId {
        self.id
    }
}
