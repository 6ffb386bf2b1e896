//! Group membership: how roles find each other. Every actor joins its role's `ractor::pg` group
//! in this run's scope; members on other nodes appear as they connect and vanish when their node
//! goes away.
use std::collections::BTreeMap;
use std::time::Duration;

use ractor::{ActorCell, ActorRef, Message};

use crate::context::NodeContext;
use crate::role::Role;
use crate::rpc::error::RequestError;

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

/// Instances of each role currently present in the cluster (local and remote members).
pub fn present(ctx: &NodeContext) -> BTreeMap<Role, usize> {
    Role::ALL
        .into_iter()
        .map(|r| {
            let n = ractor::pg::get_scoped_members(&ctx.scope, &r.group().to_string()).len();
            (r, n)
        })
        .collect()
}
