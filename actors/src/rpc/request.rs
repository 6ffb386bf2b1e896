//! Sending: requests (id, timeout, retry), calls to one member, casts and broadcasts. Nothing
//! else in the crate calls `ActorRef::call` or `cast` on another role, so this is the one place
//! where every message between roles can be observed, delayed or lost on purpose
//! ([`FaultPoint::Request`]).
//!
//! A request is idempotent by contract: the callee keys its work by the request's coordinates
//! (step, query, rollout, call), so a retry after a timeout redoes or replays the same work and
//! never counts it twice. Each attempt has its own reply port: a late reply to an attempt that
//! already timed out lands on a dropped port and is ignored, so the caller sees exactly one
//! answer.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, RpcReplyPort};

use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::role::Role;
use crate::rpc::error::RequestError;
use crate::rpc::groups::{members, wait_member};
use crate::rpc::wire::{Reply, Wire};

/// How long a request waits for its group to have a member before giving up.
const WAIT_MEMBER: Duration = Duration::from_secs(30);

/// The id of one logical request (the same over its retries), for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl RequestId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        RequestId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

fn role_of(group: &str) -> Option<Role> {
    Role::ALL.into_iter().find(|r| r.group() == group)
}

/// Calls a member of `group` (member `pick % n`), retrying up to `actors.request_attempts`
/// times on timeouts, lost messages and dead members (the next attempt goes to the next
/// member). The reply type is the callee's `Result`, whose error is passed through as
/// [`RequestError::Failed`] without a retry.
pub async fn request<M, R>(
    ctx: &NodeContext,
    group: &'static str,
    pick: usize,
    make: impl Fn(RpcReplyPort<Reply<R>>) -> M,
) -> Result<R, RequestError>
where
    M: Message,
    R: Send + 'static,
{
    let cfg = &ctx.config.actors;
    let timeout = Duration::from_secs(cfg.request_timeout_s);
    let attempts = cfg.request_attempts;
    let id = RequestId::next();
    let mut last = String::new();
    for attempt in 0..attempts {
        let m = wait_member::<M>(ctx, group, WAIT_MEMBER).await?;
        let actor = &m[(pick + attempt as usize) % m.len()];
        let injected = match role_of(group) {
            Some(role) => ctx.faults.strike(FaultPoint::Request(role)).await,
            None => Ok(()),
        };
        match injected {
            Err(e) => last = e.to_string(),
            Ok(()) => match actor.call(&make, Some(timeout)).await {
                Ok(CallResult::Success(Wire(Ok(r)))) => return Ok(r),
                Ok(CallResult::Success(Wire(Err(message)))) => {
                    return Err(RequestError::Failed { group, message });
                }
                Ok(CallResult::Timeout) => last = format!("timed out after {timeout:?}"),
                Ok(CallResult::SenderError) => last = "the actor stopped before replying".into(),
                Err(e) => last = e.to_string(),
            },
        }
        tracing::warn!(group, request = id.0, attempt, %last, "request failed; retrying");
        tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
    }
    Err(RequestError::Exhausted {
        group,
        attempts,
        last,
    })
}

/// Calls one given actor once (no retry): for messages addressed to an instance rather than
/// to a role (a policy version to each replica, a question to one node agent). `None` waits
/// without a timeout.
pub async fn call_member<M, R>(
    actor: &ActorRef<M>,
    make: impl FnOnce(RpcReplyPort<Reply<R>>) -> M,
    timeout: Option<Duration>,
) -> Result<R, String>
where
    M: Message,
    R: Send + 'static,
{
    match actor.call(make, timeout).await {
        Ok(CallResult::Success(Wire(r))) => r,
        Ok(CallResult::Timeout) => Err(format!("timed out after {timeout:?}")),
        Ok(CallResult::SenderError) => Err(STOPPED_BEFORE_REPLY.into()),
        Err(e) => Err(e.to_string()),
    }
}

/// [`call_member`]'s error when the actor stopped (crashed) before it replied.
pub const STOPPED_BEFORE_REPLY: &str = "the actor stopped before replying";

/// Calls every current member of `group` at once; the answers of those that replied within
/// `timeout`, in member order.
pub async fn call_each<M, R>(
    ctx: &NodeContext,
    group: &str,
    make: impl Fn(RpcReplyPort<Reply<R>>) -> M,
    timeout: Duration,
) -> Vec<R>
where
    M: Message,
    R: Send + 'static,
{
    let all = members::<M>(ctx, group);
    let calls = all.iter().map(|a| call_member(a, &make, Some(timeout)));
    futures::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// Sends `msg` to a member of `group` without waiting for an answer (waits for the group to
/// have a member first).
pub async fn cast<M: Message>(
    ctx: &NodeContext,
    group: &'static str,
    msg: M,
) -> Result<(), RequestError> {
    let m = wait_member::<M>(ctx, group, WAIT_MEMBER).await?;
    m[0].cast(msg).map_err(|e| RequestError::Send {
        group,
        message: e.to_string(),
    })
}

/// Sends a message to every current member of `group`; returns how many it reached.
pub fn broadcast<M: Message>(ctx: &NodeContext, group: &str, make: impl Fn() -> M) -> usize {
    members::<M>(ctx, group)
        .iter()
        .filter(|a| a.cast(make()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    use ractor::{Actor, ActorProcessingErr};
    use ractor_cluster::RactorMessage;

    use super::*;
    use crate::config::Config;
    use crate::faults::{Fault, FaultAction};
    use crate::rpc::groups::join;
    use crate::run_dir::RunDir;

    /// Answers `Echo` with its argument; the first `slow` requests take 1.5 s.
    struct Slow;

    #[derive(RactorMessage)]
    enum SlowMsg {
        Echo(u64, RpcReplyPort<Reply<u64>>),
    }

    impl Actor for Slow {
        type Msg = SlowMsg;
        type State = (Arc<AtomicU32>, u32);
        type Arguments = (Arc<AtomicU32>, u32);

        async fn pre_start(
            &self,
            _myself: ActorRef<SlowMsg>,
            args: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(args)
        }

        async fn handle(
            &self,
            _myself: ActorRef<SlowMsg>,
            SlowMsg::Echo(x, reply): SlowMsg,
            (seen, slow): &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            if n < *slow {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            // A reply to a request that already timed out goes to a dropped port.
            let _ = reply.send(Wire(Ok(x * 10 + u64::from(n))));
            Ok(())
        }
    }

    fn context(scope: &str) -> Arc<NodeContext> {
        let mut config = Config::parse(
            include_str!("../../../examples/tiny.toml"),
            Path::new("tiny.toml"),
        )
        .unwrap();
        config.actors.request_timeout_s = 1;
        config.actors.request_attempts = 3;
        NodeContext::new(config, RunDir::new("unused"), scope.into()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_request_is_retried_and_the_late_reply_ignored() {
        let ctx = context("test/rpc/retry");
        let seen = Arc::new(AtomicU32::new(0));
        let (a, _) = Actor::spawn(None, Slow, (seen.clone(), 1)).await.unwrap();
        join(&ctx, "test/slow", a.get_cell());
        let t = std::time::Instant::now();
        let r = request(&ctx, "test/slow", 0, |reply| SlowMsg::Echo(4, reply)).await;
        // Attempt 0 timed out after 1 s; attempt 1 was answered (n = 1 → 41).
        assert_eq!(r.unwrap(), 41, "the retry's answer, not the late first one");
        assert!(t.elapsed() >= Duration::from_secs(1));
        // The late reply of attempt 0 arrived meanwhile and changed nothing; both were handled.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        a.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_request_is_retried_and_exhaustion_is_an_error() {
        let ctx = context("test/rpc/lost");
        let seen = Arc::new(AtomicU32::new(0));
        let (a, _) = Actor::spawn(None, Slow, (seen.clone(), 0)).await.unwrap();
        // The judge's group, so that the fault point `Request(Judge)` applies.
        join(&ctx, crate::role::group::JUDGE, a.get_cell());
        ctx.faults
            .arm(Fault {
                point: FaultPoint::Request(Role::Judge),
                action: FaultAction::Fail,
                times: 1,
            })
            .unwrap();
        let r = request(&ctx, crate::role::group::JUDGE, 0, |reply| {
            SlowMsg::Echo(7, reply)
        })
        .await;
        assert_eq!(r.unwrap(), 70, "the lost attempt never reached the actor");
        ctx.faults
            .arm(Fault {
                point: FaultPoint::Request(Role::Judge),
                action: FaultAction::Fail,
                times: 3,
            })
            .unwrap();
        let r = request(&ctx, crate::role::group::JUDGE, 0, |reply| {
            SlowMsg::Echo(7, reply)
        })
        .await;
        assert!(
            matches!(r, Err(RequestError::Exhausted { attempts: 3, .. })),
            "{r:?}"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        a.stop(None);
    }
}
