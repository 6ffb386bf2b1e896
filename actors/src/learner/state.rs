//! A learner's state: its model and optimiser, its progress, the weights it serves, the
//! trajectories it buffers, and a prepared swap. Shared by the actor's handler (`learner.rs`)
//! and its side of a swap (`learner/swap.rs`).
use std::sync::Arc;

use mgrpo_models::Learner;

use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::learner::update::Buffered;
use crate::policy::checkpoints::TrainState;
use crate::policy::chunks::PolicyId;
use crate::policy::sink::PolicySinks;
use crate::role::LearnerRole;
use crate::swap::target::{Serving, SwapPlan};

/// A prepared swap: its new id and plan, the loaded learner (`None`: the weights are kept) and
/// the weights as served.
pub struct Staged {
    pub(crate) id: PolicyId,
    pub(crate) plan: SwapPlan,
    pub(crate) learner: Option<Learner>,
    pub(crate) weights: Arc<Vec<u8>>,
}

/// A learner actor's state.
pub struct LearnerState {
    pub(crate) ctx: Arc<NodeContext>,
    pub(crate) role: LearnerRole,
    pub(crate) sinks: PolicySinks,
    pub(crate) learner: Learner,
    pub(crate) state: TrainState,
    /// The current version's weights, as served to inference actors.
    pub(crate) weights: Arc<Vec<u8>>,
    pub(crate) buffered: Buffered,
    pub(crate) staged: Option<Staged>,
    /// The save that followed the last update: its step and wall time (or error).
    pub(crate) saved: Option<(u64, Result<f64, String>)>,
}

impl LearnerState {
    /// The id of the policy it serves.
    pub fn id(&self) -> PolicyId {
        self.state.id()
    }

    /// Sends the current version to every replica and waits for each to load it. An error is a
    /// publish that could not start (an injected [`FaultPoint::Publish`]): the caller fails
    /// its request, and recovery republishes.
    pub async fn publish(&self) -> Result<(), String> {
        self.publish_version(self.id(), self.state.serving, &self.weights)
            .await
    }

    /// Sends version `id` (an earlier one, from its checkpoint, after recovery under the
    /// asynchronous schedule) to every replica, like [`LearnerState::publish`].
    pub async fn publish_version(
        &self,
        id: PolicyId,
        serving: Serving,
        weights: &Arc<Vec<u8>>,
    ) -> Result<(), String> {
        self.ctx
            .faults
            .strike(FaultPoint::Publish(self.role.role()))
            .await
            .map_err(|e| format!("publishing {} v{}: {e}", self.role.name(), id.version))?;
        self.sinks.publish(&self.ctx, id, serving, weights).await;
        Ok(())
    }
}
