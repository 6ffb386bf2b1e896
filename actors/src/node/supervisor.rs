//! The node supervisor: the root of one node's supervision tree (see [`crate::node`]).
//!
//! Core ractor has no restart strategies, so this actor implements one: a child that fails
//! (panics or returns an error) is restarted after a backoff that doubles with each restart in
//! the window; more than `max_restarts` restarts of one child within `window` is a meltdown,
//! and the supervisor stops with an error naming the child, which ends the run with that
//! message. A child that *terminates* cleanly is not restarted (that is how roles finish).
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use ractor_cluster::RactorMessage;
use tokio::sync::mpsc::UnboundedSender;

/// A future that starts one child linked to the given supervisor and returns its cell.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// How to (re)start one child.
#[derive(Clone)]
pub struct ChildSpec {
    /// Name used in logs and errors (`executor-1`).
    pub name: String,
    /// Starts the child linked to the supervisor cell it is given.
    pub start: Arc<dyn Fn(ActorCell) -> StartFuture + Send + Sync>,
}

/// When to give up restarting.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// Restarts of one child allowed within `window`.
    pub max_restarts: u32,
    /// The counting window.
    pub window: Duration,
    /// The first backoff (doubles per restart within the window).
    pub backoff: Duration,
}

/// What the supervisor tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    /// A child failed and will be restarted.
    ChildRestarting {
        /// The child.
        name: String,
        /// Restarts of that child within the window so far.
        restarts: u32,
        /// Why it failed.
        reason: String,
    },
    /// A child failed too often: the node has stopped.
    Meltdown {
        /// The child.
        name: String,
        /// Why it last failed.
        reason: String,
    },
}

/// Messages of the supervisor.
#[derive(RactorMessage)]
pub enum NodeMsg {
    /// Start child `i` again (sent to itself after the backoff).
    Restart(usize),
    /// Start one more child (a role instance moved here by a swap).
    Add {
        /// The child.
        spec: ChildSpec,
        /// Ok once started.
        reply: ractor::RpcReplyPort<Result<(), String>>,
    },
    /// Stop the running children whose name starts with `prefix` (not restarted).
    StopChildren {
        /// E.g. `executor-`.
        prefix: String,
        /// How many were stopped.
        reply: ractor::RpcReplyPort<usize>,
    },
}

/// Arguments of the supervisor.
pub struct NodeArgs {
    /// Children in start order.
    pub children: Vec<ChildSpec>,
    /// Restart policy.
    pub policy: RestartPolicy,
    /// Where to report restarts and meltdowns.
    pub events: Option<UnboundedSender<NodeEvent>>,
}

/// The supervisor actor.
pub struct NodeSupervisor;

/// Its state: the children, their current cells and restart history.
pub struct NodeState {
    specs: Vec<ChildSpec>,
    cells: Vec<Option<ActorCell>>,
    history: Vec<VecDeque<Instant>>,
    /// Children stopped on purpose (moved away): never restarted.
    retired: std::collections::BTreeSet<usize>,
    policy: RestartPolicy,
    events: Option<UnboundedSender<NodeEvent>>,
}

impl NodeState {
    fn child_index(&self, cell: &ActorCell) -> Option<usize> {
        self.cells
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.get_id() == cell.get_id()))
    }

    fn emit(&self, event: NodeEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }
}

impl Actor for NodeSupervisor {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = NodeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<NodeMsg>,
        args: NodeArgs,
    ) -> Result<NodeState, ActorProcessingErr> {
        let mut cells = Vec::with_capacity(args.children.len());
        for spec in &args.children {
            let cell = (spec.start)(myself.get_cell())
                .await
                .map_err(|e| format!("starting {}: {e}", spec.name))?;
            cells.push(Some(cell));
        }
        Ok(NodeState {
            history: vec![VecDeque::new(); args.children.len()],
            retired: Default::default(),
            specs: args.children,
            cells,
            policy: args.policy,
            events: args.events,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<NodeMsg>,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        for cell in state.cells.iter().flatten() {
            cell.stop(Some("node stopping".into()));
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        message: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NodeMsg::Add { spec, reply } => {
                let r = (spec.start)(myself.get_cell()).await;
                let r = match r {
                    Ok(cell) => {
                        tracing::info!(child = %spec.name, "started");
                        state.specs.push(spec);
                        state.cells.push(Some(cell));
                        state.history.push(VecDeque::new());
                        Ok(())
                    }
                    Err(e) => Err(format!("starting {}: {e}", spec.name)),
                };
                let _ = reply.send(r);
            }
            NodeMsg::StopChildren { prefix, reply } => {
                let mut n = 0;
                for (i, spec) in state.specs.iter().enumerate() {
                    if !spec.name.starts_with(&prefix) || !state.retired.insert(i) {
                        continue;
                    }
                    // Also one waiting for its restart: it is not restarted.
                    if let Some(c) = state.cells[i].take() {
                        c.stop(Some("moved to another node".into()));
                        n += 1;
                    }
                }
                let _ = reply.send(n);
            }
            NodeMsg::Restart(i) if state.retired.contains(&i) => {}
            NodeMsg::Restart(i) => {
                let spec = state.specs[i].clone();
                match (spec.start)(myself.get_cell()).await {
                    Ok(cell) => {
                        tracing::info!(child = %spec.name, "restarted");
                        state.cells[i] = Some(cell);
                    }
                    Err(e) => {
                        // A failed restart counts as another failure of that child.
                        let reason = format!("restart failed: {e}");
                        schedule_restart(&myself, state, i, reason);
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<NodeMsg>,
        event: SupervisionEvent,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            // A child stopped on purpose (`StopChildren`) is no longer in `cells`.
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(i) = state.child_index(&cell) {
                    state.cells[i] = None;
                    schedule_restart(&myself, state, i, err.to_string());
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(i) = state.child_index(&cell) {
                    tracing::debug!(child = %state.specs[i].name, ?reason, "terminated");
                    state.cells[i] = None;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn schedule_restart(myself: &ActorRef<NodeMsg>, state: &mut NodeState, i: usize, reason: String) {
    let now = Instant::now();
    let policy = state.policy;
    let history = &mut state.history[i];
    while history
        .front()
        .is_some_and(|t| now.duration_since(*t) > policy.window)
    {
        history.pop_front();
    }
    history.push_back(now);
    let restarts = history.len() as u32;
    let name = state.specs[i].name.clone();
    if restarts > policy.max_restarts {
        tracing::error!(child = %name, %reason, "meltdown: too many restarts, stopping the node");
        state.emit(NodeEvent::Meltdown {
            name: name.clone(),
            reason: reason.clone(),
        });
        myself.stop(Some(format!(
            "{name} failed {restarts} times within {:?}; last error: {reason}",
            policy.window
        )));
        return;
    }
    tracing::warn!(child = %name, restarts, %reason, "child failed; restarting");
    state.emit(NodeEvent::ChildRestarting {
        name,
        restarts,
        reason,
    });
    let backoff = policy.backoff * 2u32.saturating_pow(restarts.saturating_sub(1));
    myself.send_after(backoff, move || NodeMsg::Restart(i));
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ractor::ActorStatus;

    use super::*;

    /// A child that fails when told to and records each incarnation's start.
    struct Flaky;

    #[derive(RactorMessage)]
    enum FlakyMsg {
        Fail,
    }

    type Starts = Arc<Mutex<Vec<(Instant, ActorRef<FlakyMsg>)>>>;

    impl Actor for Flaky {
        type Msg = FlakyMsg;
        type State = ();
        type Arguments = Starts;

        async fn pre_start(
            &self,
            myself: ActorRef<FlakyMsg>,
            starts: Starts,
        ) -> Result<(), ActorProcessingErr> {
            starts.lock().unwrap().push((Instant::now(), myself));
            Ok(())
        }

        async fn handle(
            &self,
            _myself: ActorRef<FlakyMsg>,
            FlakyMsg::Fail: FlakyMsg,
            _state: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            Err("told to fail".into())
        }
    }

    async fn wait_starts(starts: &Starts, n: usize) -> (Instant, ActorRef<FlakyMsg>) {
        let t = Instant::now();
        loop {
            if let Some(s) = starts.lock().unwrap().get(n - 1) {
                return s.clone();
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no start {n}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restarts_with_doubling_backoff_then_melts_down() {
        let starts: Starts = Arc::default();
        let s = starts.clone();
        let child = ChildSpec {
            name: "flaky".into(),
            start: Arc::new(move |sup: ActorCell| {
                let s = s.clone();
                Box::pin(async move {
                    let (r, _) = Actor::spawn_linked(None, Flaky, s, sup).await?;
                    Ok(r.get_cell())
                })
            }),
        };
        let backoff = Duration::from_millis(100);
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let (sup, handle) = Actor::spawn(
            None,
            NodeSupervisor,
            NodeArgs {
                children: vec![child],
                policy: RestartPolicy {
                    max_restarts: 2,
                    window: Duration::from_secs(60),
                    backoff,
                },
                events: Some(tx),
            },
        )
        .await
        .unwrap();
        for n in 1..=2u32 {
            let (_, current) = wait_starts(&starts, n as usize).await;
            let failed = Instant::now();
            current.cast(FlakyMsg::Fail).unwrap();
            let e = events.recv().await.unwrap();
            assert!(
                matches!(&e, NodeEvent::ChildRestarting { name, restarts, .. } if name == "flaky" && *restarts == n),
                "{e:?}"
            );
            let (restarted, _) = wait_starts(&starts, n as usize + 1).await;
            // The n-th restart within the window waits backoff · 2^(n-1).
            let waited = restarted.duration_since(failed);
            assert!(
                waited >= backoff * 2u32.pow(n - 1),
                "restart {n} after {waited:?}"
            );
        }
        let (_, current) = wait_starts(&starts, 3).await;
        current.cast(FlakyMsg::Fail).unwrap();
        let e = events.recv().await.unwrap();
        assert!(
            matches!(&e, NodeEvent::Meltdown { name, .. } if name == "flaky"),
            "{e:?}"
        );
        handle.await.unwrap();
        assert_eq!(sup.get_status(), ActorStatus::Stopped);
        assert_eq!(
            starts.lock().unwrap().len(),
            3,
            "no restart after the meltdown"
        );
    }
}
