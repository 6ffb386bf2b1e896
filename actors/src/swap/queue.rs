//! Swap requests waiting for a step boundary, on the coordinator's node. The control endpoint
//! offers them here; the coordinator takes the due ones at each boundary and answers each
//! caller once its swap took effect or failed. One request per role at a time: a second
//! request for a role with one pending or in progress is refused at once.
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::role::LearnerRole;
use crate::rpc::wire::{Reply, Wire};
use crate::swap::target::SwapTarget;

/// A swap as a control client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapRequest {
    /// The model to swap.
    pub role: LearnerRole,
    /// What it becomes.
    pub target: SwapTarget,
    /// Not before this step (the swap takes effect at the boundary before it); `None`: at the
    /// next boundary.
    pub at_step: Option<u64>,
    /// How long the swap may wait for its boundary and for the role to be present; past it the
    /// swap fails and changes nothing.
    pub wait_s: u64,
    /// Move the role's inference instances (planners for `main`, executors for `sub`) to this
    /// node of the cluster.
    pub node: Option<String>,
}

/// What a swap did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapOutcome {
    /// The model swapped.
    pub role: LearnerRole,
    /// The first step on the new policy.
    pub step: u64,
    /// The role's new generation.
    pub generation: u64,
    /// The version published by the swap.
    pub version: u64,
    /// How the role was served before (`learner v12`).
    pub from: String,
    /// How it is served now (`expert v13`).
    pub to: String,
    /// From the request's arrival to the swap in effect (milliseconds).
    pub latency_ms: u64,
}

/// What a request past its wait is told.
pub fn expired_reason(wait_s: u64) -> String {
    format!(
        "no step boundary came within {wait_s} s (is a node down, or the run paused?); nothing changed"
    )
}

/// One request waiting for its boundary.
pub struct Pending {
    /// The request.
    pub request: SwapRequest,
    /// Where the answer goes.
    pub reply: RpcReplyPort<Reply<SwapOutcome>>,
    /// When it arrived.
    pub received: Instant,
}

impl Pending {
    /// Past its wait.
    pub fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.received) > Duration::from_secs(self.request.wait_s)
    }

    /// Answers the caller (who may have gone: then nobody hears it).
    pub fn answer(self, r: Result<SwapOutcome, String>) {
        let _ = self.reply.send(Wire(r));
    }
}

#[derive(Default)]
struct Inner {
    pending: Vec<Pending>,
    busy: BTreeSet<LearnerRole>,
}

/// The requests waiting on one coordinator's node.
#[derive(Default)]
pub struct SwapQueue {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SwapQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwapQueue").finish_non_exhaustive()
    }
}

impl SwapQueue {
    /// Queues a request, or answers it at once with why not (another swap of the role is
    /// pending or in progress).
    pub fn offer(&self, p: Pending) {
        let Ok(mut inner) = self.inner.lock() else {
            return p.answer(Err("swap queue unavailable".into()));
        };
        let role = p.request.role;
        if inner.busy.contains(&role) {
            drop(inner);
            return p.answer(Err(format!(
                "another swap of the {} role is pending or in progress; try again once it is answered",
                role.name()
            )));
        }
        tracing::info!(role = role.name(), target = %p.request.target, at_step = ?p.request.at_step, "swap request queued");
        inner.busy.insert(role);
        inner.pending.push(p);
    }

    /// Takes the requests due at the boundary before `step`, in arrival order, and the ones
    /// past their wait. Their roles stay busy until [`SwapQueue::done`].
    pub fn take_due(&self, step: u64) -> (Vec<Pending>, Vec<Pending>) {
        let Ok(mut inner) = self.inner.lock() else {
            return (Vec::new(), Vec::new());
        };
        let now = Instant::now();
        let (mut due, mut expired, mut keep) = (Vec::new(), Vec::new(), Vec::new());
        for p in inner.pending.drain(..) {
            if p.expired(now) {
                expired.push(p);
            } else if p.request.at_step.is_none_or(|s| s <= step) {
                due.push(p);
            } else {
                keep.push(p);
            }
        }
        inner.pending = keep;
        (due, expired)
    }

    /// Whether a request waits for the boundary before `step` (or an earlier one): the
    /// asynchronous schedule does not roll that step out ahead, so that the swap lands first.
    pub fn any_due(&self, step: u64) -> bool {
        self.inner.lock().is_ok_and(|inner| {
            inner
                .pending
                .iter()
                .any(|p| p.request.at_step.is_none_or(|s| s <= step))
        })
    }

    /// Answers the requests past their wait now (a timer does this, so that a swap waiting
    /// on a run stuck in recovery — a node down — fails at its deadline, not at the next
    /// boundary).
    pub fn expire(&self) {
        let expired = match self.inner.lock() {
            Ok(mut inner) => {
                let now = Instant::now();
                let (gone, keep): (Vec<Pending>, Vec<Pending>) =
                    inner.pending.drain(..).partition(|p| p.expired(now));
                inner.pending = keep;
                for p in &gone {
                    inner.busy.remove(&p.request.role);
                }
                gone
            }
            Err(_) => return,
        };
        for p in expired {
            let wait_s = p.request.wait_s;
            p.answer(Err(expired_reason(wait_s)));
        }
    }

    /// The swap of `role` was answered: the role takes requests again.
    pub fn done(&self, role: LearnerRole) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.busy.remove(&role);
        }
    }

    /// Answers every waiting request with `why` (the run ended before their boundary).
    pub fn fail_all(&self, why: &str) {
        let pending = match self.inner.lock() {
            Ok(mut inner) => {
                inner.busy.clear();
                std::mem::take(&mut inner.pending)
            }
            Err(_) => return,
        };
        for p in pending {
            p.answer(Err(why.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(
        role: LearnerRole,
        at_step: Option<u64>,
        wait_s: u64,
    ) -> (Pending, tokio::sync::oneshot::Receiver<Reply<SwapOutcome>>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let p = Pending {
            request: SwapRequest {
                role,
                target: SwapTarget::Expert,
                at_step,
                wait_s,
                node: None,
            },
            reply: tx.into(),
            received: Instant::now(),
        };
        (p, rx)
    }

    #[tokio::test]
    async fn one_request_per_role_due_at_its_step_and_expired_after_its_wait() {
        let q = SwapQueue::default();
        let (a, _ra) = pending(LearnerRole::Sub, Some(5), 60);
        q.offer(a);
        let (b, rb) = pending(LearnerRole::Sub, None, 60);
        q.offer(b);
        let Wire(refused) = rb.await.unwrap();
        assert!(
            refused
                .unwrap_err()
                .contains("another swap of the sub role")
        );
        let (m, _rm) = pending(LearnerRole::Main, None, 0);
        q.offer(m);
        std::thread::sleep(Duration::from_millis(5));
        let (due, expired) = q.take_due(4);
        assert!(due.is_empty(), "sub waits for step 5");
        assert_eq!(expired.len(), 1, "main's wait of 0 s is over");
        let (due, _) = q.take_due(5);
        assert_eq!(due.len(), 1);
        // Busy until answered.
        let (c, rc) = pending(LearnerRole::Sub, None, 60);
        q.offer(c);
        assert!(rc.await.unwrap().0.is_err());
        q.done(LearnerRole::Sub);
        let (d, rd) = pending(LearnerRole::Sub, None, 0);
        q.offer(d);
        std::thread::sleep(Duration::from_millis(5));
        q.expire();
        assert!(rd.await.unwrap().0.unwrap_err().contains("nothing changed"));
    }
}
