//! The dashboard's line to a running run: the run's own node when `mgrpo train --dashboard`
//! serves it (no network), or a control client joined to a one-process run (through its
//! `control.json`) or to a cluster (its config's nodes), kept across polls and joined again
//! when a node it lost may be back. Each poll asks the nodes, learners and store what
//! `mgrpo status` shows, plus the store's swaps, events and role versions.
use std::sync::Arc;
use std::time::Duration;

use mgrpo_actors::NodeContext;
use mgrpo_actors::control::client::{Client, connect};
use mgrpo_actors::control::status::status_via;
use mgrpo_actors::control::{ClusterStatus, Target};
use mgrpo_actors::role::group;
use mgrpo_actors::rpc::{self, members};
use mgrpo_actors::store_actor::StoreMsg;
use mgrpo_store::{Event, GroupRecord, GroupToolCalls, RoleVersion, SwapRecord};
use serde::Serialize;

/// How long one poll waits for each answer.
const ANSWER: Duration = Duration::from_secs(2);

/// What one poll saw.
#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    /// Nodes, learners, roles and the store's progress.
    pub status: ClusterStatus,
    /// Every swap so far.
    pub swaps: Vec<SwapRecord>,
    /// The store's events (restarts, resumes).
    pub events: Vec<Event>,
    /// Each role's last published version.
    pub roles: Vec<RoleVersion>,
}

/// Where a live run is reached.
pub enum Link {
    /// The run's own node (the dashboard runs in the training process).
    InProcess(Arc<NodeContext>),
    /// A control client, joined on demand.
    Client {
        /// What to join (re-read from `control.json` for a one-process run).
        target: Box<dyn Fn() -> Option<Target> + Send + Sync>,
        /// The current session, if joined.
        client: Option<Client>,
    },
}

impl Link {
    fn ctx(&self) -> Option<&NodeContext> {
        match self {
            Link::InProcess(ctx) => Some(ctx),
            Link::Client { client, .. } => client.as_ref().map(|c| &*c.ctx),
        }
    }

    /// Polls the run; `None` when nobody answers (the run ended or is not up yet).
    pub async fn poll(&mut self) -> Option<LiveView> {
        let (names, down) = match self {
            Link::InProcess(ctx) => {
                let mut names: Vec<String> = ctx
                    .config
                    .cluster
                    .nodes
                    .iter()
                    .map(|n| n.name.clone())
                    .collect();
                if names.is_empty() {
                    names.push("local".into());
                }
                (names, Vec::new())
            }
            Link::Client { target, client } => {
                let t = target()?;
                if client.is_none() {
                    *client = connect(&t, ANSWER, false).await.ok();
                }
                let c = client.as_ref()?;
                (t.nodes(), c.down.clone())
            }
        };
        let ctx = self.ctx()?;
        let status = status_via(ctx, &names, &down, ANSWER).await;
        let store = members::<StoreMsg>(ctx, group::STORE).into_iter().next();
        let (mut swaps, mut events, mut roles) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(s) = &store {
            swaps = rpc::call_member(s, |reply| StoreMsg::Swaps { reply }, Some(ANSWER))
                .await
                .unwrap_or_default();
            (events, roles) = rpc::call_member(s, |reply| StoreMsg::Events { reply }, Some(ANSWER))
                .await
                .unwrap_or_default();
        }
        let answered = status.nodes.iter().any(|n| n.up) || status.progress.is_some();
        // A session that lost a node is joined again next time: the node may be back.
        if let Link::Client { client, .. } = self
            && (!answered || status.nodes.iter().any(|n| !n.up))
        {
            *client = None;
        }
        answered.then_some(LiveView {
            status,
            swaps,
            events,
            roles,
        })
    }

    /// The groups of a committed step and their tool calls, through the store actor.
    pub async fn groups(&self, step: u64) -> Option<(Vec<GroupRecord>, Vec<GroupToolCalls>)> {
        let ctx = self.ctx()?;
        let s = members::<StoreMsg>(ctx, group::STORE).into_iter().next()?;
        rpc::call_member(&s, |reply| StoreMsg::Groups { step, reply }, Some(ANSWER))
            .await
            .ok()
    }
}
