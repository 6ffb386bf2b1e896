//! The inference side of a policy: the copy a planner or executor samples from, fetched from
//! the model's learner when the actor starts and replaced as new versions arrive in chunks.
//! Written once for every inference actor. A swap stages its candidate here first (loaded and
//! health-checked, not served) and activates it at the step boundary. Under the asynchronous
//! schedule a replica holds the last few versions and serves the one each request names
//! ([`crate::policy::pins`]).
use std::collections::VecDeque;

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

/// One version a replica holds.
pub struct Held {
    policy: Policy,
    id: PolicyId,
    serving: Serving,
}

impl Held {
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

/// The policy versions served by an inference actor, newest last, plus the candidate of a swap
/// being prepared. It holds one version under the synchronous schedule; under the asynchronous
/// one, `max_staleness + 1` (the one a step in flight is pinned to and those published since).
pub struct Replica {
    held: VecDeque<Held>,
    keep: usize,
    device: burn::tensor::Device,
    probe: Vec<u32>,
    incoming: Assembler,
    staging: Assembler,
    staged: Option<Held>,
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
            held: VecDeque::from([Held {
                policy,
                id,
                serving,
            }]),
            keep: ctx.config.algo.lag() as usize + 1,
            device,
            probe: probe(ctx, role)?,
            incoming: Assembler::default(),
            staging: Assembler::default(),
            staged: None,
        })
    }

    /// Takes one chunk of a new version; loads the version once every chunk is in (the oldest
    /// held one goes when more than the schedule needs are held). A staged chunk (a swap being
    /// prepared) is loaded and health-checked aside instead.
    pub fn receive(&mut self, chunk: PolicyChunk) -> Result<(), String> {
        if chunk.staged {
            if let Some((id, serving, bytes)) = self.staging.push(chunk)? {
                let policy = Policy::from_bytes(&bytes, &self.device).map_err(|e| e.to_string())?;
                check(&policy, &self.probe)?;
                self.staged = Some(Held {
                    policy,
                    id,
                    serving,
                });
            }
            return Ok(());
        }
        if let Some((id, serving, bytes)) = self.incoming.push(chunk)? {
            let policy = Policy::from_bytes(&bytes, &self.device).map_err(|e| e.to_string())?;
            // A version sent again (a republish after recovery) counts as the newest.
            self.held.retain(|h| h.id != id);
            self.held.push_back(Held {
                policy,
                id,
                serving,
            });
            while self.held.len() > self.keep {
                self.held.pop_front();
            }
        }
        Ok(())
    }

    /// Serves the staged candidate `id` from now on, alone (`None`: drops the candidate).
    pub fn activate(&mut self, id: Option<PolicyId>) -> Result<(), String> {
        let staged = self.staged.take();
        let Some(id) = id else {
            self.staging = Assembler::default();
            return Ok(());
        };
        match staged {
            Some(held) if held.id == id => {
                self.held.clear();
                self.held.push_back(held);
                Ok(())
            }
            _ => Err(format!(
                "policy {id:?} was not staged here (restarted since?)"
            )),
        }
    }

    /// The version to serve a request with: `pin`, or the newest when `None`. Serving a pinned
    /// version drops the ones that arrived before it (no later step is sampled with them). An
    /// error if it is not held (this actor restarted since, or missed a publish): the step
    /// fails and recovery republishes.
    pub fn select(&mut self, pin: Option<PolicyId>) -> Result<&Held, String> {
        let Some(id) = pin else {
            return self.held.back().ok_or_else(|| "no policy held".into());
        };
        let at = self.held.iter().position(|h| h.id == id).ok_or_else(|| {
            format!(
                "policy generation {} version {} is not held here (holding {:?}; restarted or \
                 missed a publish)",
                id.generation,
                id.version,
                self.held.iter().map(|h| h.id.version).collect::<Vec<_>>()
            )
        })?;
        self.held.drain(..at);
        Ok(&self.held[0])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mgrpo_models::{DeviceSpec, PolicyConfig};

    use super::*;
    use crate::policy::chunks::split;

    fn id(version: u64) -> PolicyId {
        PolicyId {
            generation: 0,
            version,
        }
    }

    /// A replica holding `keep` versions, starting with version 0; and a version's chunk.
    fn replica(keep: usize) -> (Replica, impl Fn(u64) -> PolicyChunk) {
        let device = DeviceSpec::parse("flex", "cpu")
            .unwrap()
            .to_device()
            .unwrap();
        let config = PolicyConfig::preset("tiny", 40).unwrap();
        let policy = Policy::new(config, &device).unwrap();
        let bytes = Arc::new(policy.to_bytes().unwrap());
        let r = Replica {
            held: VecDeque::from([Held {
                policy,
                id: id(0),
                serving: Serving::Learner,
            }]),
            keep,
            device,
            probe: vec![1, 2, 3],
            incoming: Assembler::default(),
            staging: Assembler::default(),
            staged: None,
        };
        let chunk = move |v: u64| split(id(v), &bytes, usize::MAX).remove(0);
        (r, chunk)
    }

    #[test]
    fn a_pinned_version_is_served_whatever_arrived_since_and_older_ones_go() {
        let (mut r, chunk) = replica(3);
        r.receive(chunk(1)).unwrap();
        r.receive(chunk(2)).unwrap();
        // Unpinned: the newest; nothing dropped.
        assert_eq!(r.select(None).unwrap().id(), id(2));
        // Pinned to 1: served although 2 arrived; 0 is never sampled again.
        assert_eq!(r.select(Some(id(1))).unwrap().id(), id(1));
        assert!(r.select(Some(id(0))).is_err());
        assert_eq!(r.select(Some(id(2))).unwrap().id(), id(2));
        let e = r.select(Some(id(1))).err().unwrap();
        assert!(e.contains("not held here"), "{e}");
    }

    #[test]
    fn one_version_is_held_under_the_synchronous_schedule() {
        let (mut r, chunk) = replica(1);
        r.receive(chunk(1)).unwrap();
        assert!(r.select(Some(id(0))).is_err());
        // A republished version counts as the newest.
        let (mut r, chunk) = replica(2);
        r.receive(chunk(1)).unwrap();
        r.receive(chunk(0)).unwrap();
        assert_eq!(r.select(None).unwrap().id(), id(0));
        r.receive(chunk(2)).unwrap();
        assert!(r.select(Some(id(1))).is_err(), "the oldest went");
    }
}
