//! What a step writes, computed from what flowed through it: the rollouts' statistics (as
//! staged in the store), the learners' advantages (as their reports returned them) and the
//! policy ids the planners and executors recorded. Pure functions: no I/O, no actors.
use std::collections::BTreeMap;

use mgrpo_algo::{MainGroupStat, SubCallStat, publish_main_group};
use mgrpo_store::{
    CheckpointEntry, GroupRecord, GroupToolCalls, MainRolloutEntry, RoleVersion, StepCommit,
    StepRecord, SubCallEntry, ToolCallEntry,
};

use crate::config::AlgoConfig;
use crate::learner::TrainReport;
use crate::planner::GroupResult;
use crate::role::LearnerRole;
use crate::store_actor::StepStatistics;

/// Statistics of a rolled-out step: per group, the main rollouts' rewards (ALGORITHM.md's
/// `R_M` and its parts) and the calls' parts, plus each group's `R_M` mean and std.
pub fn statistics(
    step: u64,
    results: &[GroupResult],
    algo: &AlgoConfig,
) -> (StepStatistics, Vec<MainGroupStat>) {
    let mut main = Vec::with_capacity(results.len());
    let mut groups = Vec::with_capacity(results.len());
    let mut calls = Vec::with_capacity(results.len());
    for g in results {
        let parts: Vec<_> = g.rollouts.iter().map(|r| r.parts).collect();
        let d: Vec<u32> = g.rollouts.iter().map(|r| r.calls.len() as u32).collect();
        let (rollouts, group) =
            publish_main_group(step, g.spec.query, &parts, &d, &algo.weights, algo.std);
        main.push(rollouts);
        groups.push(group);
        calls.push(
            g.rollouts
                .iter()
                .flat_map(|r| {
                    r.calls.iter().map(move |c| SubCallStat {
                        version: mgrpo_algo::stats::STATS_VERSION,
                        step,
                        query: g.spec.query,
                        rollout: r.rollout,
                        call: c.key.call,
                        format: c.format,
                        expert: c.expert,
                    })
                })
                .collect(),
        );
    }
    (StepStatistics { main, calls }, groups)
}

/// The reports of a step's learners, by model.
pub struct Reports<'a> {
    /// The main learner's.
    pub main: Option<&'a TrainReport>,
    /// The report holding the sub advantages (the sub learner's, or the shared learner's).
    pub sub: Option<&'a TrainReport>,
}

impl<'a> Reports<'a> {
    /// Finds the main and sub reports among `reports`.
    pub fn of(reports: &'a [TrainReport]) -> Self {
        Self {
            main: reports.iter().find(|r| r.role == LearnerRole::Main),
            sub: reports
                .iter()
                .find(|r| !r.sub.is_empty())
                .or_else(|| reports.iter().find(|r| r.role == LearnerRole::Sub)),
        }
    }
}

/// The step's group records: rewards and parts from the statistics, advantages and alignment
/// from the learners, the policy id of every rollout and call.
pub fn group_records(
    step: u64,
    results: &[GroupResult],
    stats: &StepStatistics,
    main_groups: &[MainGroupStat],
    reports: &Reports<'_>,
    algo: &AlgoConfig,
) -> Vec<GroupRecord> {
    results
        .iter()
        .enumerate()
        .map(|(q, g)| {
            let main_stats = &stats.main[q];
            let sub_g = reports.sub.and_then(|r| r.sub.get(q));
            let main = main_stats
                .iter()
                .zip(&g.rollouts)
                .map(|(s, r)| MainRolloutEntry {
                    rollout: s.rollout,
                    format: s.format,
                    correct: s.correct,
                    reward: s.reward,
                    advantage: reports
                        .main
                        .map_or(0.0, |m| m.main_advantages[q][s.rollout as usize]),
                    calls: s.calls,
                    role_version: r.policy.version,
                    role_generation: r.policy.generation,
                })
                .collect();
            // The calls' statistics were staged in this same (rollout, call) order.
            let outcomes = g.rollouts.iter().flat_map(|r| &r.calls);
            let calls = stats.calls[q]
                .iter()
                .zip(outcomes)
                .map(|(c, o)| SubCallEntry {
                    rollout: c.rollout,
                    call: c.call,
                    format: c.format,
                    expert: c.expert,
                    reward: c.reward(&algo.weights, &main_stats[c.rollout as usize]),
                    role_version: o.policy.version,
                    role_generation: o.policy.generation,
                })
                .collect();
            GroupRecord {
                step,
                query: g.spec.query,
                question_id: g.spec.question_id.clone(),
                main,
                calls,
                alignment: sub_g.map_or_else(Vec::new, |s| {
                    s.alignment
                        .iter()
                        .map(|a| a.slots.iter().map(|x| (*x).into()).collect())
                        .collect()
                }),
                sub_advantages: sub_g.map_or_else(Vec::new, |s| s.slot_advantages.clone()),
                main_mean: main_groups[q].stats.mean,
                main_std: main_groups[q].stats.std,
                sub_mean: sub_g.map_or(0.0, |s| s.published.stats.mean),
                sub_std: sub_g.map_or(0.0, |s| s.published.stats.std),
                sub_count: sub_g.map_or(0, |s| s.published.stats.count),
            }
        })
        .collect()
}

/// Time and bytes of a step, measured by the coordinator.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Roll-out phase, seconds.
    pub rollout_s: f64,
    /// Training phase, seconds.
    pub train_s: f64,
    /// The whole step up to the commit, seconds.
    pub step_s: f64,
    /// Bytes of the staged statistics.
    pub stats_bytes: u64,
    /// Bytes that crossed between nodes during the step.
    pub cross_node_bytes: u64,
    /// Each learner's save after its update, seconds.
    pub saves: Vec<(LearnerRole, f64)>,
}

/// The step's metrics (means over rollouts and over calls, throughput, times, bytes, losses).
pub fn metrics(
    records: &[GroupRecord],
    results: &[GroupResult],
    reports: &[TrainReport],
    m: &Measured,
) -> BTreeMap<String, f64> {
    let (mut n_rollouts, mut reward, mut correct, mut format, mut calls) =
        (0usize, 0f64, 0usize, 0usize, 0usize);
    let (mut n_calls, mut sub_reward, mut sub_format, mut expert) = (0usize, 0f64, 0usize, 0f64);
    for g in records {
        for r in &g.main {
            n_rollouts += 1;
            reward += r.reward as f64;
            correct += usize::from(r.correct);
            format += usize::from(r.format);
            calls += r.calls as usize;
        }
        for c in &g.calls {
            n_calls += 1;
            sub_reward += c.reward as f64;
            sub_format += usize::from(c.format);
            expert += c.expert as f64;
        }
    }
    let tokens: usize = results
        .iter()
        .flat_map(|g| &g.rollouts)
        .map(|r| r.generated_tokens + r.calls.iter().map(|c| c.generated_tokens).sum::<usize>())
        .sum();
    let trajectory_bytes: u64 = reports.iter().map(|r| r.trajectory_bytes).sum();
    let nr = n_rollouts.max(1) as f64;
    let nc = n_calls.max(1) as f64;
    let mut out: BTreeMap<String, f64> = [
        ("reward", reward / nr),
        ("accuracy", correct as f64 / nr),
        ("format_rate", format as f64 / nr),
        ("calls_per_rollout", calls as f64 / nr),
        ("sub_reward", sub_reward / nc),
        ("sub_format_rate", sub_format as f64 / nc),
        ("expert_rate", expert / nc),
        ("tokens", tokens as f64),
        ("tokens_per_s", tokens as f64 / m.rollout_s.max(1e-9)),
        ("rollout_time_s", m.rollout_s),
        ("train_time_s", m.train_s),
        ("step_time_s", m.step_s),
        ("stats_bytes", m.stats_bytes as f64),
        ("cross_node_bytes", m.cross_node_bytes as f64),
        ("trajectory_bytes", trajectory_bytes as f64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    out.extend(tool_metrics(results));
    for r in reports {
        let name = r.role.name();
        out.insert(format!("{name}_loss"), r.stats.loss as f64);
        out.insert(
            format!("{name}_clip_fraction"),
            r.stats.clip_fraction as f64,
        );
        out.insert(format!("{name}_approx_kl"), r.stats.approx_kl as f64);
        out.insert(format!("{name}_ref_kl"), r.stats.ref_kl as f64);
        out.insert(format!("{name}_grad_norm"), r.stats.grad_norm as f64);
        out.insert(format!("{name}_rows"), r.rows as f64);
        out.insert(format!("{name}_lr"), r.lr);
        out.insert(format!("{name}_update_time_s"), r.update_s);
        out.insert(format!("{name}_publish_time_s"), r.publish_s);
    }
    for (role, s) in &m.saves {
        out.insert(format!("{}_save_time_s", role.name()), *s);
    }
    out
}

/// The tool calls (MCP) of each group's sub-agent calls, as the store keeps them.
pub fn tool_calls(step: u64, results: &[GroupResult]) -> Vec<GroupToolCalls> {
    results
        .iter()
        .map(|g| GroupToolCalls {
            step,
            query: g.spec.query,
            calls: g
                .rollouts
                .iter()
                .flat_map(|r| r.calls.iter().map(move |c| (r.rollout, c)))
                .flat_map(|(rollout, c)| {
                    c.tools.iter().enumerate().map(move |(i, u)| ToolCallEntry {
                        rollout,
                        call: c.key.call,
                        index: i as u32,
                        text: u.call.clone(),
                        tool: u.tool.clone(),
                        status: u.status.name().to_string(),
                        observation: u.observation.clone(),
                    })
                })
                .collect(),
        })
        .filter(|g| !g.calls.is_empty())
        .collect()
}

/// The tool-call metrics of a step (none when no sub-agent called a tool, so a run without
/// tools reports what it always did): tool calls per sub-agent call, and the share of them that
/// ended in an error observation.
pub fn tool_metrics(results: &[GroupResult]) -> Vec<(String, f64)> {
    let calls: Vec<&crate::rollout::SubOutcome> = results
        .iter()
        .flat_map(|g| &g.rollouts)
        .flat_map(|r| &r.calls)
        .collect();
    let uses: Vec<_> = calls.iter().flat_map(|c| &c.tools).collect();
    if uses.is_empty() {
        return Vec::new();
    }
    let failed = uses
        .iter()
        .filter(|u| u.status != crate::mcp::CallStatus::Ok)
        .count();
    vec![
        (
            "tool_calls_per_sub_call".to_string(),
            uses.len() as f64 / calls.len().max(1) as f64,
        ),
        (
            "tool_error_rate".to_string(),
            failed as f64 / uses.len() as f64,
        ),
    ]
}

/// Everything the step commits atomically.
pub fn commit(
    step: u64,
    metrics: BTreeMap<String, f64>,
    groups: Vec<GroupRecord>,
    tool_calls: Vec<GroupToolCalls>,
    reports: &[TrainReport],
) -> StepCommit {
    StepCommit {
        tool_calls,
        record: StepRecord {
            step,
            metrics,
            role_versions: reports
                .iter()
                .map(|r| (r.role.name().to_string(), r.version))
                .collect(),
        },
        groups,
        roles: reports
            .iter()
            .map(|r| RoleVersion {
                role: r.role.name().into(),
                version: r.version,
                step,
                source: "learner".into(),
            })
            .collect(),
        checkpoints: reports
            .iter()
            .filter_map(|r| {
                r.checkpoint.as_ref().map(|p| CheckpointEntry {
                    role: r.role.name().into(),
                    version: r.version,
                    step,
                    path: p.clone(),
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use mgrpo_algo::MainParts;

    use super::*;
    use crate::mcp::{CallStatus, ToolUse};
    use crate::planner::{GroupSpec, RolloutResult};
    use crate::policy::chunks::PolicyId;
    use crate::rollout::{CallKey, RolloutKey, SubOutcome};

    fn call(rollout: u32, call: u32, tools: Vec<ToolUse>) -> SubOutcome {
        SubOutcome {
            key: CallKey {
                rollout: RolloutKey {
                    step: 4,
                    query: 1,
                    rollout,
                },
                call,
            },
            task: String::new(),
            result: String::new(),
            format: true,
            expert: 0.0,
            generated_tokens: 3,
            policy: PolicyId::default(),
            tools,
        }
    }

    fn used(text: &str, status: CallStatus) -> ToolUse {
        ToolUse {
            call: text.into(),
            tool: Some("add".into()),
            status,
            observation: format!("<output> {text} </output>"),
        }
    }

    fn group(query: u32, rollouts: Vec<Vec<SubOutcome>>) -> GroupResult {
        GroupResult {
            spec: GroupSpec {
                query,
                question_id: format!("q{query}"),
            },
            rollouts: rollouts
                .into_iter()
                .enumerate()
                .map(|(k, calls)| RolloutResult {
                    rollout: k as u32,
                    parts: MainParts {
                        format: true,
                        correct: false,
                    },
                    calls,
                    generated_tokens: 5,
                    policy: PolicyId::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn tool_calls_are_gathered_per_group_in_rollout_call_order() {
        let results = vec![
            group(0, vec![vec![call(0, 0, vec![])]]),
            group(
                1,
                vec![
                    vec![call(0, 0, vec![used("a", CallStatus::Ok)])],
                    vec![
                        call(1, 0, vec![]),
                        call(
                            1,
                            1,
                            vec![used("b", CallStatus::Timeout), used("c", CallStatus::Ok)],
                        ),
                    ],
                ],
            ),
        ];
        let stored = tool_calls(4, &results);
        assert_eq!(stored.len(), 1, "a group without tool calls stores nothing");
        let g = &stored[0];
        assert_eq!((g.step, g.query), (4, 1));
        let at: Vec<(u32, u32, u32, &str, &str)> = g
            .calls
            .iter()
            .map(|c| {
                (
                    c.rollout,
                    c.call,
                    c.index,
                    c.text.as_str(),
                    c.status.as_str(),
                )
            })
            .collect();
        assert_eq!(
            at,
            [
                (0, 0, 0, "a", "ok"),
                (1, 1, 0, "b", "timeout"),
                (1, 1, 1, "c", "ok")
            ]
        );
        assert_eq!(g.calls[1].observation, "<output> b </output>");
        let m: BTreeMap<String, f64> = tool_metrics(&results).into_iter().collect();
        assert_eq!(m["tool_calls_per_sub_call"], 3.0 / 4.0);
        assert_eq!(m["tool_error_rate"], 1.0 / 3.0);
        let none = vec![group(0, vec![vec![call(0, 0, vec![])]])];
        assert!(tool_metrics(&none).is_empty(), "no tools, no new metrics");
        assert!(tool_calls(4, &none).is_empty());
    }
}
