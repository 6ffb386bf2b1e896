//! Which version of each model each step is sampled with. Synchronous: the one its update
//! starts from (whatever the replicas hold, so nothing is pinned). Asynchronous
//! (`algo.schedule = "async"`): the version in effect `max_staleness` steps earlier, or the first
//! one of the role's current generation if a swap came since (a swap drains the pipeline, so
//! no step mixes generations) — a function of the step alone, which is what makes an
//! asynchronous run, its retries and its replays after a crash reproducible. The coordinator
//! learns each step's versions from the learners' reports, the step boundaries and recovery.
use std::collections::BTreeMap;

use crate::learner::TrainReport;
use crate::policy::chunks::PolicyId;
use crate::policy::pins::Pins;
use crate::role::LearnerRole;
use crate::swap::boundary::Servings;

/// The versions in effect at each recent step, per model.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    lag: u64,
    at: BTreeMap<LearnerRole, BTreeMap<u64, PolicyId>>,
}

/// The pins of one step and how far behind the step each pinned version is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pinned {
    /// What the replicas serve the step with.
    pub pins: Pins,
    /// Per model, steps between the version sampled and the one the step's update starts from.
    pub behind: BTreeMap<LearnerRole, u64>,
}

impl Versions {
    /// An empty record for a schedule `lag` versions behind (0: synchronous).
    pub fn new(lag: u64) -> Self {
        Self {
            lag,
            at: BTreeMap::new(),
        }
    }

    /// `id` is in effect at `step` (its learner's next step is `step`).
    pub fn record(&mut self, role: LearnerRole, step: u64, id: PolicyId) {
        if self.lag > 0 {
            self.at.entry(role).or_default().insert(step, id);
        }
    }

    /// Each model's state at the boundary before `step` (after any swap there).
    pub fn at_boundary(&mut self, step: u64, servings: &Servings) {
        for (role, s) in servings {
            self.record(*role, step, s.id());
        }
    }

    /// The versions published by the updates on `step` (in effect from `step + 1`).
    pub fn after_update(&mut self, step: u64, reports: &[TrainReport]) {
        for r in reports {
            let id = PolicyId {
                generation: r.generation,
                version: r.version,
            };
            self.record(r.role, step + 1, id);
        }
    }

    /// The versions `step` is sampled with, given each model's generation for it (`servings`:
    /// its boundary's, or the one before when it is rolled out ahead). Nothing is pinned
    /// under the synchronous schedule.
    pub fn pins(&mut self, step: u64, servings: &Servings) -> Pinned {
        let mut pinned = Pinned::default();
        if self.lag == 0 {
            return pinned;
        }
        let from = step.saturating_sub(self.lag);
        for (role, s) in servings {
            let Some(at) = self.at.get_mut(role) else {
                continue;
            };
            // Nothing before `from` is sampled with again.
            at.retain(|k, _| *k >= from);
            if let Some((k, id)) = at
                .range(from..=step)
                .find(|(_, id)| id.generation == s.generation)
            {
                pinned.pins.pin(*role, *id);
                pinned.behind.insert(*role, step - k);
            }
        }
        pinned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::checkpoints::TrainState;
    use crate::swap::target::Serving;

    fn id(generation: u64, version: u64) -> PolicyId {
        PolicyId {
            generation,
            version,
        }
    }

    fn servings(generation: u64) -> Servings {
        Servings::from([(
            LearnerRole::Main,
            TrainState {
                next_step: 0,
                version: 0,
                generation,
                serving: Serving::Learner,
            },
        )])
    }

    #[test]
    fn synchronous_pins_nothing() {
        let mut v = Versions::new(0);
        v.record(LearnerRole::Main, 3, id(0, 3));
        assert!(v.pins(3, &servings(0)).pins.is_empty());
    }

    #[test]
    fn a_step_is_sampled_lag_versions_back() {
        let mut v = Versions::new(1);
        for s in 0..4 {
            v.record(LearnerRole::Main, s, id(0, s));
        }
        let p = v.pins(3, &servings(0));
        assert_eq!(p.pins.of(LearnerRole::Main), Some(id(0, 2)));
        assert_eq!(p.behind[&LearnerRole::Main], 1);
        // The first step has nothing earlier: its own version.
        let mut v = Versions::new(2);
        v.record(LearnerRole::Main, 0, id(0, 0));
        assert_eq!(
            v.pins(0, &servings(0)).pins.of(LearnerRole::Main),
            Some(id(0, 0))
        );
        assert_eq!(
            v.pins(1, &servings(0)).pins.of(LearnerRole::Main),
            Some(id(0, 0))
        );
    }

    #[test]
    fn a_swap_restarts_the_lag_at_its_boundary() {
        let mut v = Versions::new(2);
        v.record(LearnerRole::Main, 4, id(0, 4));
        v.record(LearnerRole::Main, 5, id(0, 5));
        // Swapped at the boundary before step 6.
        v.record(LearnerRole::Main, 6, id(1, 0));
        v.record(LearnerRole::Main, 7, id(1, 1));
        let p = v.pins(7, &servings(1));
        assert_eq!(p.pins.of(LearnerRole::Main), Some(id(1, 0)));
        assert_eq!(p.behind[&LearnerRole::Main], 1);
        assert_eq!(
            v.pins(8, &servings(1)).pins.of(LearnerRole::Main),
            Some(id(1, 0))
        );
    }
}
