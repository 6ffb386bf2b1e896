//! How roles find each other: `ractor::pg` groups in this run's scope, never names. Requests
//! between roles go through [`request`], which carries a timeout, retries on another (or a
//! restarted) member, and relies on the callee being idempotent.
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, Message, RpcReplyPort};

use crate::context::NodeContext;
use crate::placement::{NodePlacement, Role, totals};
use crate::wire::{Reply, Wire};

/// Planners (main-agent inference).
pub const PLANNER: &str = "role/planner";
/// Executors (sub-agent inference + tools).
pub const EXECUTOR: &str = "role/executor";
/// The judge.
pub const JUDGE: &str = "role/judge";
/// The main learner (also the shared and single learners).
pub const MAIN_LEARNER: &str = "role/learner-main";
/// The sub learner.
pub const SUB_LEARNER: &str = "role/learner-sub";
/// The store actor.
pub const STORE: &str = "role/store";
/// The coordinator.
pub const COORDINATOR: &str = "role/coordinator";
/// One node agent per node (what runs where, link counters, shutdown).
pub const NODE_AGENT: &str = "node/agent";

/// A request between roles that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// No member of the group appeared in time.
    #[error("no {group} is running (waited {waited:?})")]
    NoMember {
        /// The group.
        group: &'static str,
        /// How long.
        waited: Duration,
    },
    /// Every attempt failed.
    #[error("{group} did not answer after {attempts} attempts: {last}")]
    Exhausted {
        /// The group.
        group: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The callee answered with an error.
    #[error("{group} failed: {message}")]
    Failed {
        /// The group.
        group: &'static str,
        /// Its message.
        message: String,
    },
}

/// Adds an actor to a group of this run.
pub fn join(ctx: &NodeContext, group: &str, cell: ActorCell) {
    ractor::pg::join_scoped(ctx.scope.clone(), group.to_string(), vec![cell]);
}

/// The current members of a group, in a stable order (by actor id).
pub fn members<M: Message>(ctx: &NodeContext, group: &str) -> Vec<ActorRef<M>> {
    let mut cells = ractor::pg::get_scoped_members(&ctx.scope, &group.to_string());
    cells.sort_by_key(|c| c.get_id().to_string());
    cells.into_iter().map(ActorRef::from).collect()
}

/// Waits (polling with backoff) until the group has a member.
pub async fn wait_member<M: Message>(
    ctx: &NodeContext,
    group: &'static str,
    within: Duration,
) -> Result<Vec<ActorRef<M>>, RequestError> {
    let start = std::time::Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        let m = members::<M>(ctx, group);
        if !m.is_empty() {
            return Ok(m);
        }
        if start.elapsed() > within {
            return Err(RequestError::NoMember {
                group,
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Calls a member of `group` (member `pick % n`), retrying up to `attempts` times on timeouts and
/// dead members; the callee must be idempotent for the request. The reply type is the callee's
/// `Result`, whose error is passed through as [`RequestError::Failed`].
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
    let mut last = String::new();
    for attempt in 0..attempts {
        let m = wait_member::<M>(ctx, group, Duration::from_secs(30)).await?;
        let actor = &m[(pick + attempt as usize) % m.len()];
        match actor.call(&make, Some(timeout)).await {
            Ok(CallResult::Success(Wire(Ok(r)))) => return Ok(r),
            Ok(CallResult::Success(Wire(Err(message)))) => {
                return Err(RequestError::Failed { group, message });
            }
            Ok(CallResult::Timeout) => last = format!("timed out after {timeout:?}"),
            Ok(CallResult::SenderError) => last = "the actor stopped before replying".into(),
            Err(e) => last = e.to_string(),
        }
        tracing::warn!(group, attempt, %last, "request failed; retrying");
        tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
    }
    Err(RequestError::Exhausted {
        group,
        attempts,
        last,
    })
}

/// Instances of each role currently present in the cluster (local and remote members).
pub fn present(ctx: &NodeContext) -> std::collections::BTreeMap<Role, usize> {
    Role::ALL
        .into_iter()
        .map(|r| {
            let n = ractor::pg::get_scoped_members(&ctx.scope, &r.group().to_string()).len();
            (r, n)
        })
        .collect()
}

/// The error of a wait cut short by a stop request.
pub const STOPPED: &str = "stopped while waiting for roles";

/// Waits until every role of the placement has all its instances present; logs what is
/// missing every few seconds. Returns what is still missing after `within`.
pub async fn wait_roles(
    ctx: &NodeContext,
    placement: &[NodePlacement],
    within: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), String> {
    let want = totals(placement);
    let start = std::time::Instant::now();
    let mut last_log = start;
    loop {
        let have = present(ctx);
        let missing: Vec<String> = want
            .iter()
            .filter(|(r, n)| have.get(r).copied().unwrap_or(0) < **n)
            .map(|(r, n)| format!("{} {}/{n}", r.name(), have.get(r).copied().unwrap_or(0)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(STOPPED.into());
        }
        if start.elapsed() > within {
            return Err(format!(
                "roles still missing after {within:?}: {}",
                missing.join(", ")
            ));
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(missing = %missing.join(", "), "waiting for roles");
            last_log = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
