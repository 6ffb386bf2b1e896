//! Which version of each model a step is sampled with. Under the synchronous schedule a step
//! runs on whatever its replicas hold (the version its update starts from); under the
//! asynchronous one the next step's rollouts run while this step's update publishes a newer
//! version, so the coordinator names the version instead: every planner and executor serves
//! exactly that one for the whole step, whichever arrived meanwhile, and a retry or a replay
//! after a crash samples the same policy again.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::chunks::PolicyId;
use crate::role::LearnerRole;

/// The version each model must be sampled with; a model without one serves its newest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pins(BTreeMap<LearnerRole, PolicyId>);

impl Pins {
    /// No pins: every replica serves the newest version it holds.
    pub fn latest() -> Self {
        Self::default()
    }

    /// Pins `role` to `id`.
    pub fn pin(&mut self, role: LearnerRole, id: PolicyId) {
        self.0.insert(role, id);
    }

    /// The version `role` must be sampled with, if pinned.
    pub fn of(&self, role: LearnerRole) -> Option<PolicyId> {
        self.0.get(&role).copied()
    }

    /// Whether nothing is pinned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
