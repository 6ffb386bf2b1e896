//! Faults injected on purpose, node by node: the mechanism that fault-injection tests (and the
//! coming `mgrpo chaos`) grow from.
//!
//! A [`Fault`] names a point in the code ([`FaultPoint`]: a role's handler just before it
//! replies, or a request to a role on the one send path in `rpc`), what to do there
//! ([`FaultAction`]: panic, stall, fail) and how many times. Faults are armed on a node's
//! [`Faults`] — in-process by a test, or across the cluster through the node agent's
//! `InjectFault` message — and struck where the code passes the point. The registry belongs to
//! the node's context, not to the process, so two runs in one test binary never see each
//! other's faults (the `fail` crate's registry is process-global, which is why it is not used
//! here). Every strike is logged with its point, action and how many remain.
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::role::Role;

/// Where a fault can strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultPoint {
    /// Inside a role's request handler, after its side effects (trajectories sent, step
    /// written, update taken) and before its reply: the worst moment for double counting.
    Reply(Role),
    /// A request to a role, on the send path, before it leaves (a lost request).
    Request(Role),
    /// On the coordinator, between recording a swap in the store and putting it into effect:
    /// where a crash tests that a recorded swap takes effect exactly once.
    SwapRecorded,
    /// On a learner saving a checkpoint, after the weights and before the rest (a full disk):
    /// [`FaultAction::Fail`] makes the save fail, and the checkpoint is not installed.
    CheckpointWrite,
    /// In the store actor, while a step's commit is being written, before the transaction
    /// ends (a commit error mid-write): nothing of the step is kept.
    StoreCommit,
    /// On a learner, when it publishes new weights to its replicas after an update.
    Publish(Role),
    /// On a learner, half-way through applying a swap (after the swap was recorded).
    SwapApply,
    /// On a planner or executor, as a request's turns start: [`FaultAction::Fail`] makes that
    /// request's model output garbage tokens (malformed output; format reward 0).
    Output(Role),
}

/// What a fault does when it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultAction {
    /// The actor panics (its supervisor restarts it).
    Panic,
    /// The actor stops answering for this long, then carries on.
    Stall {
        /// Milliseconds.
        ms: u64,
    },
    /// The operation fails with an error (a request attempt is lost and retried).
    Fail,
}

/// One armed fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Where.
    pub point: FaultPoint,
    /// What.
    pub action: FaultAction,
    /// How many times it strikes before it disarms itself.
    pub times: u32,
}

/// The faults armed on one node.
#[derive(Debug, Default)]
pub struct Faults {
    armed: Mutex<Vec<Fault>>,
}

/// A fault that struck with [`FaultAction::Fail`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected fault at {0:?}")]
pub struct Injected(pub FaultPoint);

/// Whether this build can inject faults (cargo feature `faults`). Without it every fault point
/// compiles to nothing and arming a fault is refused with [`DISABLED`].
pub const ENABLED: bool = cfg!(feature = "faults");

/// Why a fault cannot be armed in a build without the `faults` feature.
pub const DISABLED: &str = "this mgrpo was built without fault injection (cargo feature `faults`: cargo build --release --features faults)";

/// The environment variable a node reads faults to arm from at start (a JSON list of
/// [`Fault`]s): how tests arm a fault inside a real `mgrpo node` / `mgrpo train` process.
pub const FAULTS_ENV: &str = "MGRPO_FAULTS";

impl Faults {
    /// Arms the faults listed in `MGRPO_FAULTS`, if set; returns how many.
    pub fn arm_from_env(&self) -> Result<usize, String> {
        let Ok(text) = std::env::var(FAULTS_ENV) else {
            return Ok(0);
        };
        let faults: Vec<Fault> = serde_json::from_str(&text)
            .map_err(|e| format!("{FAULTS_ENV} is not a JSON list of faults: {e}"))?;
        let n = faults.len();
        for f in faults {
            self.arm(f).map_err(|e| format!("{FAULTS_ENV}: {e}"))?;
        }
        Ok(n)
    }

    /// Arms a fault (added to those already armed); refused in a build without the `faults`
    /// feature.
    pub fn arm(&self, fault: Fault) -> Result<(), String> {
        if !ENABLED {
            return Err(DISABLED.into());
        }
        tracing::warn!(?fault, "fault armed");
        if let Ok(mut a) = self.armed.lock() {
            a.push(fault);
        }
        Ok(())
    }

    /// Takes one strike of the first fault armed at `point`, if any (never, without the
    /// `faults` feature: the check compiles away).
    #[cfg(not(feature = "faults"))]
    #[inline(always)]
    fn take(&self, _point: FaultPoint) -> Option<FaultAction> {
        None
    }

    /// Takes one strike of the first fault armed at `point`, if any.
    #[cfg(feature = "faults")]
    fn take(&self, point: FaultPoint) -> Option<FaultAction> {
        let mut armed = self.armed.lock().ok()?;
        let i = armed.iter().position(|f| f.point == point && f.times > 0)?;
        armed[i].times -= 1;
        let (action, left) = (armed[i].action, armed[i].times);
        if left == 0 {
            armed.remove(i);
        }
        tracing::warn!(?point, ?action, left, "fault strikes");
        Some(action)
    }

    /// Passes `point` outside async code (a blocking save): panics, sleeps or fails if a fault
    /// is armed there.
    pub fn strike_now(&self, point: FaultPoint) -> Result<(), Injected> {
        match self.take(point) {
            None => Ok(()),
            Some(FaultAction::Panic) => panic!("injected fault at {point:?}"),
            Some(FaultAction::Stall { ms }) => {
                std::thread::sleep(Duration::from_millis(ms));
                Ok(())
            }
            Some(FaultAction::Fail) => Err(Injected(point)),
        }
    }

    /// Passes `point`: panics, stalls or fails if a fault is armed there.
    pub async fn strike(&self, point: FaultPoint) -> Result<(), Injected> {
        match self.take(point) {
            None => Ok(()),
            Some(FaultAction::Panic) => panic!("injected fault at {point:?}"),
            Some(FaultAction::Stall { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Some(FaultAction::Fail) => Err(Injected(point)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fault_strikes_its_count_then_disarms() {
        let f = Faults::default();
        let point = FaultPoint::Request(Role::Judge);
        f.arm(Fault {
            point,
            action: FaultAction::Fail,
            times: 2,
        })
        .unwrap();
        assert!(f.strike(FaultPoint::Reply(Role::Judge)).await.is_ok());
        assert_eq!(f.strike(point).await, Err(Injected(point)));
        assert_eq!(f.strike(point).await, Err(Injected(point)));
        assert!(f.strike(point).await.is_ok(), "disarmed after two strikes");
    }
}
