//! Where a role's inference instances run once swaps moved them: the config's placement with
//! every recorded move applied in order (`mgrpo swap --node`). Pure; the coordinator uses it to
//! wait for the right roles and, after a restart, to put moved instances back.
use mgrpo_store::SwapRecord;

use crate::config::cluster::NodePlacement;
use crate::role::{LearnerRole, Role};

/// The inference role that serves `model`'s role: planners for `main`, executors for `sub`.
pub fn instance_role(model: LearnerRole) -> Role {
    match model {
        LearnerRole::Main => Role::Planner,
        LearnerRole::Sub => Role::Executor,
    }
}

/// `placement` with the moves among `swaps` applied in order: all instances of the moved role
/// on the move's node.
pub fn effective(placement: &[NodePlacement], swaps: &[SwapRecord]) -> Vec<NodePlacement> {
    let mut out = placement.to_vec();
    for s in swaps {
        let (Some(node), Some(model)) = (
            &s.node,
            [LearnerRole::Main, LearnerRole::Sub]
                .into_iter()
                .find(|m| m.name() == s.role),
        ) else {
            continue;
        };
        let role = instance_role(model);
        let total: usize = out.iter().filter_map(|p| p.roles.get(&role)).sum();
        for p in &mut out {
            if &p.node == node {
                p.roles.insert(role, total);
            } else {
                p.roles.remove(&role);
            }
        }
    }
    out
}

/// Whether any swap moved a role.
pub fn any_moves(swaps: &[SwapRecord]) -> bool {
    swaps.iter().any(|s| s.node.is_some())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn node(name: &str, roles: &[(Role, usize)]) -> NodePlacement {
        NodePlacement {
            node: name.into(),
            roles: roles.iter().copied().collect::<BTreeMap<_, _>>(),
        }
    }

    fn moved(role: &str, to: &str) -> SwapRecord {
        SwapRecord {
            step: 3,
            role: role.into(),
            request: "keep".into(),
            from_serving: "learner".into(),
            from_version: 3,
            to_serving: "learner".into(),
            weights: "keep".into(),
            generation: 1,
            version: 4,
            node: Some(to.into()),
            duration_ms: 0,
        }
    }

    #[test]
    fn moves_put_every_instance_of_the_role_on_the_node_in_order() {
        let config = vec![
            node("hub", &[(Role::Coordinator, 1)]),
            node("main", &[(Role::Planner, 1), (Role::LearnerMain, 1)]),
            node("sub", &[(Role::Executor, 2), (Role::LearnerSub, 1)]),
        ];
        assert_eq!(effective(&config, &[]), config);
        let eff = effective(&config, &[moved("sub", "main")]);
        assert_eq!(eff[1].roles.get(&Role::Executor), Some(&2));
        assert_eq!(eff[2].roles.get(&Role::Executor), None);
        assert_eq!(eff[2].roles.get(&Role::LearnerSub), Some(&1));
        let back = effective(&config, &[moved("sub", "main"), moved("sub", "sub")]);
        assert_eq!(back, config);
        assert!(any_moves(&[moved("main", "hub")]));
    }
}
