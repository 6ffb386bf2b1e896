//! The coordinator: drives the training steps (DESIGN.md, "One training step"): draws the
//! step's queries, has the planners roll them out, publishes the statistics to the store, has
//! each learner take its update, commits the step atomically, evaluates on the dev split, and
//! reports progress. One per cluster.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::future::join_all;
use mgrpo_algo::{
    Algo, MainRolloutStat, SubCallStat, SubParts, derive_seed, publish_main_group, salt,
};
use mgrpo_env::{EvalReport, Question, Split};
use mgrpo_store::{GroupRecord, MainRolloutEntry, StepCommit, StepRecord, SubCallEntry, SubSlot};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use crate::context::NodeContext;
use crate::groups;
use crate::learner::{LearnerMsg, TrainReport};
use crate::planner::{GroupResult, GroupSpec, PlannerMsg};
use crate::rollout::Mode;
use crate::run_dir::Best;
use crate::store_actor::StoreMsg;
use crate::wire::Wire;

/// Progress the coordinator reports to whoever started the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Progress {
    /// A step was committed; its metrics line.
    Step(serde_json::Value),
    /// A dev evaluation finished.
    Eval {
        /// After this many steps.
        step: u64,
        /// The report.
        report: EvalReport,
    },
    /// Training ended (all steps, or stopped).
    Finished {
        /// Steps committed by this run.
        steps: u64,
        /// Whether a stop request ended it early.
        stopped: bool,
    },
    /// Training failed.
    Failed(String),
}

/// Messages of the coordinator.
#[derive(RactorMessage)]
pub enum CoordinatorMsg {
    /// Run the steps from the last committed one up to `to`; replies when done.
    Run {
        /// One past the last step.
        to: u64,
        /// Done (or the error).
        reply: RpcReplyPort<Result<u64, String>>,
    },
}

/// Arguments of the coordinator.
pub struct CoordinatorArgs {
    /// Shared context.
    pub ctx: Arc<NodeContext>,
    /// Progress sink.
    pub progress: UnboundedSender<Progress>,
    /// Set to stop after the current step.
    pub stop: Arc<AtomicBool>,
}

/// The coordinator actor.
pub struct Coordinator;

impl Actor for Coordinator {
    type Msg = CoordinatorMsg;
    type State = CoordinatorArgs;
    type Arguments = CoordinatorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CoordinatorMsg>,
        args: CoordinatorArgs,
    ) -> Result<CoordinatorArgs, ActorProcessingErr> {
        groups::join(&args.ctx, groups::COORDINATOR, myself.get_cell());
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<CoordinatorMsg>,
        message: CoordinatorMsg,
        state: &mut CoordinatorArgs,
    ) -> Result<(), ActorProcessingErr> {
        let CoordinatorMsg::Run { to, reply } = message;
        let r = run(state, to).await;
        match &r {
            Ok(done) => {
                let _ = state.progress.send(Progress::Finished {
                    steps: *done,
                    stopped: state.stop.load(Ordering::SeqCst),
                });
            }
            Err(e) => {
                let _ = state.progress.send(Progress::Failed(e.clone()));
            }
        }
        let _ = reply.send(r);
        Ok(())
    }
}

/// Brings the cluster to a consistent point and returns the step to run next: waits for every
/// placed role, reads the committed steps from the store, and restores each learner to the
/// last committed step (a learner that trained on a step that was never committed, or that
/// restarted from an older checkpoint, is rolled to it). A learner that cannot reach it (no
/// checkpoint there) makes every learner go back to the oldest common step, and the steps from
/// there are replayed: rollouts are seeded, so the replay commits identical records, which the
/// store takes as no-ops (and refuses with a conflict if they differed).
async fn recover(ctx: &NodeContext, stop: &AtomicBool) -> Result<u64, String> {
    let within = std::time::Duration::from_secs(ctx.config.cluster.wait_roles_s);
    groups::wait_roles(ctx, &ctx.config.placement(), within, stop).await?;
    let (committed, _) =
        groups::request(ctx, groups::STORE, 0, |reply| StoreMsg::Progress { reply })
            .await
            .map_err(|e| e.to_string())?;
    let mut states = Vec::new();
    for group in learner_groups(ctx.config.algo.variant) {
        let s = groups::request(ctx, group, 0, |reply| LearnerMsg::GetState { reply })
            .await
            .map_err(|e| e.to_string())?;
        states.push((group, s.next_step));
    }
    let target = states
        .iter()
        .map(|(_, s)| *s)
        .min()
        .unwrap_or(committed)
        .min(committed);
    for (group, at) in states {
        if at != target {
            tracing::warn!(learner = group, at, target, committed, "restoring learner");
        }
        // Also when already there: drops half-received trajectories and republishes weights.
        groups::request(ctx, group, 0, |reply| LearnerMsg::Restore {
            next_step: target,
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(target)
}

async fn run(state: &CoordinatorArgs, to: u64) -> Result<u64, String> {
    let ctx = &state.ctx;
    let train = &ctx.config.train;
    let from = match recover(ctx, &state.stop).await {
        Err(e) if e == groups::STOPPED => return Ok(0),
        r => r?,
    };
    if from == 0 && train.eval_every > 0 {
        let report = evaluate(ctx, Split::Dev, train.eval_questions).await?;
        log_eval(ctx, 0, &report)?;
        if train.keep_best {
            ctx.run_dir
                .set_best(&Best {
                    step: 0,
                    version: 0,
                    dev_accuracy: report.accuracy,
                })
                .map_err(|e| format!("writing best.json: {e}"))?;
        }
        let _ = state.progress.send(Progress::Eval { step: 0, report });
    }
    let mut done = 0;
    let mut step = from;
    let mut failures = 0u32;
    while step < to {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        match step_and_report(state, step, to).await {
            Ok(committed) => {
                done += u64::from(committed);
                step += 1;
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                if failures > ctx.config.actors.request_attempts {
                    return Err(format!("step {step} failed {failures} times; last: {e}"));
                }
                tracing::warn!(step, error = %e, "step failed; waiting for every role, then retrying from the last committed step");
                step = match recover(ctx, &state.stop).await {
                    Err(e) if e == groups::STOPPED => break,
                    r => r?,
                };
            }
        }
    }
    if state.stop.load(Ordering::SeqCst) && done > 0 {
        // A clean stop: checkpoint the last committed step so --resume continues exactly.
        checkpoint_learners(ctx).await?;
    }
    Ok(done)
}

/// Runs one step, evaluates if due, and writes its metrics line. Returns false when the step
/// was already committed (a replay after recovery: nothing new to report).
async fn step_and_report(state: &CoordinatorArgs, step: u64, to: u64) -> Result<bool, String> {
    let ctx = &state.ctx;
    let train = &ctx.config.train;
    {
        let last = step + 1 == to;
        let checkpoint = last
            || (train.checkpoint_every > 0 && (step + 1).is_multiple_of(train.checkpoint_every));
        let Some(mut metrics) =
            run_step(ctx, step, checkpoint || state.stop.load(Ordering::SeqCst)).await?
        else {
            return Ok(false);
        };
        if train.eval_every > 0 && ((step + 1).is_multiple_of(train.eval_every) || last) {
            let report = evaluate(ctx, Split::Dev, train.eval_questions).await?;
            metrics["dev_accuracy"] = report.accuracy.into();
            log_eval(ctx, step + 1, &report)?;
            if train.keep_best {
                keep_if_best(ctx, step + 1, &metrics, report.accuracy).await?;
            }
            let _ = state.progress.send(Progress::Eval {
                step: step + 1,
                report,
            });
        }
        crate::run_dir::JsonLines::append(&ctx.run_dir.metrics_path())
            .and_then(|mut f| f.write(&metrics))
            .map_err(|e| format!("writing metrics.jsonl: {e}"))?;
        let _ = state.progress.send(Progress::Step(metrics));
    }
    Ok(true)
}

/// Appends one dev evaluation to `eval.jsonl` (the step-0 one has no metrics line of its own).
fn log_eval(ctx: &NodeContext, step: u64, report: &EvalReport) -> Result<(), String> {
    let line = serde_json::json!({ "step": step, "split": "dev", "report": report });
    crate::run_dir::JsonLines::append(&ctx.run_dir.eval_path())
        .and_then(|mut f| f.write(&line))
        .map_err(|e| format!("writing eval.jsonl: {e}"))
}

/// Checkpoints the learners and records them in `best.json` when `accuracy` beats the best.
async fn keep_if_best(
    ctx: &NodeContext,
    steps: u64,
    metrics: &serde_json::Value,
    accuracy: f64,
) -> Result<(), String> {
    if ctx
        .run_dir
        .best()
        .is_some_and(|b| b.dev_accuracy >= accuracy)
    {
        return Ok(());
    }
    checkpoint_learners(ctx).await?;
    let version = metrics["main_version"].as_u64().unwrap_or(steps);
    ctx.run_dir
        .set_best(&Best {
            step: steps,
            version,
            dev_accuracy: accuracy,
        })
        .map_err(|e| format!("writing best.json: {e}"))
}

/// Asks every training learner to checkpoint its current version.
async fn checkpoint_learners(ctx: &NodeContext) -> Result<(), String> {
    for group in learner_groups(ctx.config.algo.variant) {
        groups::request(ctx, group, 0, |reply| LearnerMsg::Checkpoint { reply })
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Learner groups that train under a variant.
fn learner_groups(variant: Algo) -> Vec<&'static str> {
    if variant == Algo::Mgrpo {
        vec![groups::MAIN_LEARNER, groups::SUB_LEARNER]
    } else {
        vec![groups::MAIN_LEARNER]
    }
}

/// The step's queries: B distinct train questions drawn from `(run seed, step)`.
pub fn step_questions(ctx: &NodeContext, step: u64) -> Vec<GroupSpec> {
    let qs = ctx.world.questions(Split::Train);
    let b = ctx.config.algo.queries_per_step.min(qs.len());
    let mut rng =
        ChaCha8Rng::seed_from_u64(derive_seed(ctx.config.run.seed, &[salt::QUESTIONS, step]));
    sample(&mut rng, qs.len(), b)
        .into_iter()
        .enumerate()
        .map(|(q, i)| GroupSpec {
            query: q as u32,
            question_id: qs[i].id.clone(),
        })
        .collect()
}

/// Rolls out `specs` over the planners (round robin), `k` rollouts each.
async fn roll_out(
    ctx: &NodeContext,
    step: u64,
    specs: Vec<GroupSpec>,
    k: u32,
    mode: Mode,
) -> Result<Vec<GroupResult>, String> {
    let n =
        groups::wait_member::<PlannerMsg>(ctx, groups::PLANNER, std::time::Duration::from_secs(60))
            .await
            .map_err(|e| e.to_string())?
            .len();
    let mut chunks: Vec<Vec<GroupSpec>> = vec![Vec::new(); n];
    for (i, s) in specs.into_iter().enumerate() {
        chunks[i % n].push(s);
    }
    let calls = chunks
        .into_iter()
        .enumerate()
        .filter(|(_, c)| !c.is_empty())
        .map(|(i, chunk)| async move {
            groups::request(ctx, groups::PLANNER, i, |reply| PlannerMsg::RunGroups {
                step,
                groups: Wire(chunk.clone()),
                k,
                mode: Wire(mode),
                reply,
            })
            .await
        });
    let mut out = Vec::new();
    for r in join_all(calls).await {
        out.extend(r.map_err(|e| e.to_string())?);
    }
    out.sort_by_key(|g| g.spec.query);
    Ok(out)
}

/// Greedy accuracy of the current policies on the first `n` questions of a split.
pub async fn evaluate(ctx: &NodeContext, split: Split, n: usize) -> Result<EvalReport, String> {
    let qs: Vec<&Question> = ctx.world.questions(split).iter().take(n).collect();
    let specs = qs
        .iter()
        .enumerate()
        .map(|(i, q)| GroupSpec {
            query: i as u32,
            question_id: q.id.clone(),
        })
        .collect();
    let results = roll_out(ctx, u64::MAX / 2, specs, 1, Mode::Eval).await?;
    Ok(EvalReport::from_outcomes(results.iter().zip(&qs).map(
        |(g, q)| (*q, g.rollouts.first().is_some_and(|r| r.parts.correct)),
    )))
}

async fn run_step(
    ctx: &NodeContext,
    step: u64,
    checkpoint: bool,
) -> Result<Option<serde_json::Value>, String> {
    let t0 = Instant::now();
    let link0 = crate::cluster::link_counters(ctx).await;
    let cfg = &ctx.config.algo;
    let specs = step_questions(ctx, step);
    let results = roll_out(ctx, step, specs, cfg.group_size as u32, Mode::Train).await?;
    let rollout_time = t0.elapsed().as_secs_f64();

    // Publish the decoupled statistics.
    let mut main_stats: Vec<Vec<MainRolloutStat>> = Vec::new();
    let mut main_groups = Vec::new();
    let mut call_stats: Vec<Vec<SubCallStat>> = Vec::new();
    for g in &results {
        let parts: Vec<_> = g.rollouts.iter().map(|r| r.parts).collect();
        let d: Vec<u32> = g.rollouts.iter().map(|r| r.calls.len() as u32).collect();
        let (rollouts, group) =
            publish_main_group(step, g.spec.query, &parts, &d, &cfg.weights, cfg.std);
        main_stats.push(rollouts);
        main_groups.push(group);
        call_stats.push(
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
    let stats = (main_stats.clone(), call_stats.clone());
    let stats_bytes = groups::request(ctx, groups::STORE, 0, |reply| StoreMsg::Stage {
        step,
        stats: Wire(stats.clone()),
        reply,
    })
    .await
    .map_err(|e| e.to_string())?;

    // Each learner takes its update.
    let t1 = Instant::now();
    let n = results.len() as u32;
    let reports: Vec<TrainReport> = join_all(learner_groups(cfg.variant).into_iter().map(
        |group| async move {
            groups::request(ctx, group, 0, |reply| LearnerMsg::Train {
                step,
                groups: n,
                checkpoint,
                reply,
            })
            .await
        },
    ))
    .await
    .into_iter()
    .collect::<Result<_, _>>()
    .map_err(|e| e.to_string())?;
    let train_time = t1.elapsed().as_secs_f64();
    let main_report = reports
        .iter()
        .find(|r| r.role == crate::learner::LearnerRole::Main);
    let sub_report = reports.iter().find(|r| !r.sub.is_empty()).or_else(|| {
        reports
            .iter()
            .find(|r| r.role == crate::learner::LearnerRole::Sub)
    });

    // The step's records.
    let mut group_records = Vec::new();
    let (mut n_rollouts, mut reward, mut correct, mut format, mut calls) =
        (0usize, 0f64, 0usize, 0usize, 0usize);
    let (mut n_calls, mut sub_reward, mut sub_format, mut expert) = (0usize, 0f64, 0usize, 0f64);
    let mut tokens = 0usize;
    let main_version = main_report.map_or(0, |r| r.version);
    for (q, g) in results.iter().enumerate() {
        let sub_g = sub_report.and_then(|r| r.sub.get(q));
        let main: Vec<MainRolloutEntry> = main_stats[q]
            .iter()
            .zip(&g.rollouts)
            .map(|(s, r)| MainRolloutEntry {
                rollout: s.rollout,
                format: s.format,
                correct: s.correct,
                reward: s.reward,
                advantage: main_report.map_or(0.0, |m| m.main_advantages[q][s.rollout as usize]),
                calls: s.calls,
                role_version: r.version,
            })
            .collect();
        let call_entries: Vec<SubCallEntry> = call_stats[q]
            .iter()
            .map(|c| {
                let main_correct = main_stats[q][c.rollout as usize].correct;
                SubCallEntry {
                    rollout: c.rollout,
                    call: c.call,
                    format: c.format,
                    expert: c.expert,
                    reward: cfg.weights.sub_reward(
                        &SubParts {
                            format: c.format,
                            expert: c.expert,
                        },
                        main_correct,
                    ),
                    role_version: 0,
                }
            })
            .collect();
        for (s, r) in main_stats[q].iter().zip(&g.rollouts) {
            n_rollouts += 1;
            reward += s.reward as f64;
            correct += usize::from(s.correct);
            format += usize::from(s.format);
            calls += s.calls as usize;
            tokens +=
                r.generated_tokens + r.calls.iter().map(|c| c.generated_tokens).sum::<usize>();
        }
        for c in &call_entries {
            n_calls += 1;
            sub_reward += c.reward as f64;
            sub_format += usize::from(c.format);
            expert += c.expert as f64;
        }
        group_records.push(GroupRecord {
            step,
            query: g.spec.query,
            question_id: g.spec.question_id.clone(),
            main,
            calls: call_entries,
            alignment: sub_g.map_or_else(Vec::new, |s| {
                s.alignment
                    .iter()
                    .map(|a| {
                        a.slots
                            .iter()
                            .map(|x| match x {
                                mgrpo_algo::Slot::Call(i) => SubSlot::Call(*i),
                                mgrpo_algo::Slot::Padding => SubSlot::Padding,
                            })
                            .collect()
                    })
                    .collect()
            }),
            sub_advantages: sub_g.map_or_else(Vec::new, |s| s.slot_advantages.clone()),
            main_mean: main_groups[q].stats.mean,
            main_std: main_groups[q].stats.std,
            sub_mean: sub_g.map_or(0.0, |s| s.published.stats.mean),
            sub_std: sub_g.map_or(0.0, |s| s.published.stats.std),
            sub_count: sub_g.map_or(0, |s| s.published.stats.count),
        });
    }
    let step_time = t0.elapsed().as_secs_f64();
    let cross_node = crate::cluster::crossed(&link0, &crate::cluster::link_counters(ctx).await);
    let trajectory_bytes: u64 = reports.iter().map(|r| r.trajectory_bytes).sum();
    let nr = n_rollouts.max(1) as f64;
    let nc = n_calls.max(1) as f64;
    let mut m: BTreeMap<String, f64> = BTreeMap::new();
    m.insert("reward".into(), reward / nr);
    m.insert("accuracy".into(), correct as f64 / nr);
    m.insert("format_rate".into(), format as f64 / nr);
    m.insert("calls_per_rollout".into(), calls as f64 / nr);
    m.insert("sub_reward".into(), sub_reward / nc);
    m.insert("sub_format_rate".into(), sub_format as f64 / nc);
    m.insert("expert_rate".into(), expert / nc);
    m.insert("tokens".into(), tokens as f64);
    m.insert(
        "tokens_per_s".into(),
        tokens as f64 / rollout_time.max(1e-9),
    );
    m.insert("rollout_time_s".into(), rollout_time);
    m.insert("train_time_s".into(), train_time);
    m.insert("step_time_s".into(), step_time);
    m.insert("stats_bytes".into(), stats_bytes as f64);
    m.insert("cross_node_bytes".into(), cross_node as f64);
    m.insert("trajectory_bytes".into(), trajectory_bytes as f64);
    for r in &reports {
        m.insert(format!("{}_loss", r.role.name()), r.stats.loss as f64);
        m.insert(
            format!("{}_clip_fraction", r.role.name()),
            r.stats.clip_fraction as f64,
        );
        m.insert(format!("{}_rows", r.role.name()), r.rows as f64);
    }
    let role_versions: BTreeMap<String, u64> = reports
        .iter()
        .map(|r| (r.role.name().to_string(), r.version))
        .collect();
    let commit = StepCommit {
        record: StepRecord {
            step,
            metrics: m.clone(),
            role_versions: role_versions.clone(),
        },
        groups: group_records,
        roles: reports
            .iter()
            .map(|r| mgrpo_store::RoleVersion {
                role: r.role.name().into(),
                version: r.version,
                step,
                source: "learner".into(),
            })
            .collect(),
        checkpoints: reports
            .iter()
            .filter_map(|r| {
                r.checkpoint.as_ref().map(|p| mgrpo_store::CheckpointEntry {
                    role: r.role.name().into(),
                    version: r.version,
                    step,
                    path: p.clone(),
                })
            })
            .collect(),
    };
    let written = groups::request(ctx, groups::STORE, 0, |reply| StoreMsg::Commit {
        commit: Wire(Box::new(commit.clone())),
        reply,
    })
    .await
    .map_err(|e| e.to_string())?;
    if !written {
        tracing::info!(step, "replayed step matches the committed one");
        return Ok(None);
    }
    let mut line = serde_json::json!({ "step": step, "main_version": main_version });
    for (k, v) in m {
        line[k] = v.into();
    }
    for (k, v) in role_versions {
        line[format!("{k}_version")] = v.into();
    }
    Ok(Some(line))
}
