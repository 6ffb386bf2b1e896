//! One training step as named phases, each a function with typed inputs and outputs:
//!
//! ```text
//! draw ──► roll_out ──► stage ──► train ──► flush ──► commit ──► (report)
//! B questions   planners: K rollouts   statistics   learners: advantages,   their saves   one atomic store
//! from the seed each, executors, judge  to the store  update, publish        on disk       write; the metrics line
//! ```
//!
//! Statistics flow one way: the rollouts' rewards are staged in the store (shared, not
//! copied, on one node), each learner reads them there, returns the advantages it used, and
//! the commit is built from exactly those ([`records`](crate::coordinator::records)).
//!
//! The next step's `roll_out` runs ahead ([`Pipeline`]): under the synchronous schedule once
//! this step's `train` has published (beside the saves and the commit, sampling the new
//! versions as it would after the commit), under the asynchronous one beside `train`, with the
//! versions [`Versions`] names for it. The phases and what each commits are the same.
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use mgrpo_algo::derive_seed;
use mgrpo_algo::salt;
use mgrpo_env::Split;
use mgrpo_store::{StepCommit, StepRecord};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::cluster::agent::link_counters;
use crate::cluster::bytes::crossed;
use crate::context::NodeContext;
use crate::coordinator::records::{self, Measured, Reports};
use crate::coordinator::versions::{Pinned, Versions};
use crate::learner::{LearnerMsg, TrainReport};
use crate::planner::{GroupResult, GroupSpec, PlannerMsg};
use crate::policy::pins::Pins;
use crate::role::{LearnerRole, group, training_learners};
use crate::rollout::keys::Mode;
use crate::rpc::{self, Wire};
use crate::store_actor::{StepStatistics, StoreMsg};
use crate::swap::boundary::Servings;

/// Draw: the step's queries, B distinct train questions drawn from `(run seed, step)`.
pub fn draw(ctx: &NodeContext, step: u64) -> Vec<GroupSpec> {
    let qs = ctx.task.questions(Split::Train);
    // RL's share of the train split (all of it without `warmup.holdout`).
    let pool = ctx.task.rl_questions(ctx.config.warmup.holdout);
    let b = ctx.config.algo.queries_per_step.min(pool.len());
    let mut rng =
        ChaCha8Rng::seed_from_u64(derive_seed(ctx.config.run.seed, &[salt::QUESTIONS, step]));
    sample(&mut rng, pool.len(), b)
        .into_iter()
        .enumerate()
        .map(|(q, i)| GroupSpec {
            query: q as u32,
            question_id: qs[pool[i]].id.clone(),
        })
        .collect()
}

/// Roll out: `specs` over the planners (round robin), `k` rollouts each, sampled with the
/// pinned versions (unpinned models: the newest); results by query.
pub async fn roll_out(
    ctx: &NodeContext,
    step: u64,
    specs: Vec<GroupSpec>,
    k: u32,
    mode: Mode,
    pins: &Pins,
) -> Result<Vec<GroupResult>, String> {
    let n = rpc::wait_member::<PlannerMsg>(ctx, group::PLANNER, std::time::Duration::from_secs(60))
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
            rpc::request(ctx, group::PLANNER, i, |reply| PlannerMsg::RunGroups {
                step,
                groups: Wire(chunk.clone()),
                k,
                mode: Wire(mode),
                pins: Wire(pins.clone()),
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

/// Stage: publishes the step's statistics in the store; returns their size in bytes.
pub async fn stage(
    ctx: &NodeContext,
    step: u64,
    stats: &Arc<StepStatistics>,
) -> Result<u64, String> {
    rpc::request(ctx, group::STORE, 0, |reply| StoreMsg::Stage {
        step,
        stats: Wire(stats.clone()),
        reply,
    })
    .await
    .map_err(|e| e.to_string())
}

/// Train: every learner that trains under the variant, and whose role is not swapped to
/// frozen or expert, takes its update on the step.
pub async fn train(
    ctx: &NodeContext,
    step: u64,
    groups: u32,
    servings: &Servings,
    checkpoint: bool,
) -> Result<Vec<TrainReport>, String> {
    let learners = training_learners(ctx.config.algo.variant)
        .into_iter()
        .filter(|l| servings.get(l).is_none_or(|s| s.serving.trains()));
    join_all(learners.map(|l| async move {
        rpc::request(ctx, l.group(), 0, |reply| LearnerMsg::Train {
            step,
            groups,
            checkpoint,
            reply,
        })
        .await
    }))
    .await
    .into_iter()
    .collect::<Result<_, _>>()
    .map_err(|e| e.to_string())
}

/// Flush: waits until every learner that trained has saved its update (what recovery goes
/// back to); each one's save time.
pub async fn flush(
    ctx: &NodeContext,
    step: u64,
    reports: &[TrainReport],
) -> Result<Vec<(LearnerRole, f64)>, String> {
    join_all(reports.iter().map(|r| async move {
        let s = rpc::request(ctx, r.role.group(), 0, |reply| LearnerMsg::Flush {
            step,
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok::<_, String>((r.role, s))
    }))
    .await
    .into_iter()
    .collect()
}

/// Commit: writes the step atomically. `false`: the identical step was already there (a
/// replay after recovery).
pub async fn commit(ctx: &NodeContext, commit: StepCommit) -> Result<bool, String> {
    let commit = Arc::new(commit);
    rpc::request(ctx, group::STORE, 0, |reply| StoreMsg::Commit {
        commit: Wire(commit.clone()),
        reply,
    })
    .await
    .map_err(|e| e.to_string())
}

/// A step's rollouts: its results and how they were sampled.
pub struct Rolled {
    /// The step.
    pub step: u64,
    /// Its groups' results.
    pub results: Vec<GroupResult>,
    /// Wall time of the rollouts, seconds.
    pub rollout_s: f64,
    /// The versions they were sampled with.
    pub pinned: Pinned,
}

/// Draws the step's queries and rolls them out with `pinned`.
pub async fn roll(ctx: &NodeContext, step: u64, pinned: Pinned) -> Result<Rolled, String> {
    let t0 = Instant::now();
    let k = ctx.config.algo.group_size as u32;
    let results = roll_out(ctx, step, draw(ctx, step), k, Mode::Train, &pinned.pins).await?;
    Ok(Rolled {
        step,
        results,
        rollout_s: t0.elapsed().as_secs_f64(),
        pinned,
    })
}

/// The coordinator's side of the schedule: which versions each step is sampled with, and the
/// next step's rollouts when they ran ahead.
#[derive(Default)]
pub struct Pipeline {
    /// The versions in effect at the recent steps.
    pub versions: Versions,
    /// Rollouts done ahead of their step.
    pub ahead: Option<Rolled>,
}

impl Pipeline {
    /// After recovery: the versions the learners republished, nothing rolled out ahead.
    pub fn new(versions: Versions) -> Self {
        Self {
            versions,
            ahead: None,
        }
    }
}

/// Runs one step through every phase; returns its metrics line and whether this run wrote it
/// (`false`: the identical step was already committed — a replay after recovery). With
/// `roll_next`, the rollouts of `step + 1` run during this step (from its updates on under the
/// asynchronous schedule, from its saves on under the synchronous one) and are left in
/// `pipe.ahead`.
pub async fn run_step(
    ctx: &NodeContext,
    step: u64,
    servings: &Servings,
    checkpoint: bool,
    pipe: &mut Pipeline,
    roll_next: bool,
) -> Result<(serde_json::Value, bool), String> {
    let t0 = Instant::now();
    let link0 = link_counters(ctx).await;
    let algo = &ctx.config.algo;

    pipe.versions.at_boundary(step, servings);
    let rolled = match pipe.ahead.take() {
        Some(r) if r.step == step => r,
        _ => roll(ctx, step, pipe.versions.pins(step, servings)).await?,
    };
    let Rolled {
        results,
        rollout_s,
        pinned,
        ..
    } = rolled;

    let (stats, main_groups) = records::statistics(step, &results, algo);
    let stats = Arc::new(stats);
    let stats_bytes = stage(ctx, step, &stats).await?;

    let t1 = Instant::now();
    // The next step's rollouts run ahead: beside the updates (asynchronous schedule, one
    // version behind), or once the updates are published, beside the learners' saves
    // (synchronous: sampled with the new versions, as if after the commit). No swap lands at
    // the next boundary while they run ahead (they are sampled with this step's
    // generations): the coordinator does not roll ahead of a due swap.
    let next = roll_next.then(|| pipe.versions.pins(step + 1, servings));
    let overlap = algo.lag() > 0;
    let (published, on_publish) = futures::channel::oneshot::channel::<()>();
    let updates = async {
        let reports = train(ctx, step, results.len() as u32, servings, checkpoint).await?;
        let train_s = t1.elapsed().as_secs_f64();
        // (Dropped unsent on an error: the rollouts ahead are not started then.)
        let _ = published.send(());
        let saves = flush(ctx, step, &reports).await?;
        Ok::<_, String>((reports, train_s, saves))
    };
    let ahead = async {
        let pinned = next?;
        if !overlap && on_publish.await.is_err() {
            return None;
        }
        Some(roll(ctx, step + 1, pinned).await)
    };
    let (updated, ahead) = futures::join!(updates, ahead);
    let (reports, train_s, saves) = updated?;
    pipe.versions.after_update(step, &reports);
    pipe.ahead = match ahead {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            // Not this step's failure: the next step rolls out again (and fails if it must).
            tracing::warn!(step = step + 1, error = %e, "rollouts ahead failed; redoing them at their step");
            None
        }
        None => None,
    };

    let by_model = Reports::of(&reports);
    let main_version = by_model.main.map_or(0, |r| r.version);
    let groups = records::group_records(step, &results, &stats, &main_groups, &by_model, algo);
    let measured = Measured {
        rollout_s,
        train_s,
        step_s: t0.elapsed().as_secs_f64(),
        stats_bytes,
        cross_node_bytes: crossed(&link0, &link_counters(ctx).await),
        saves,
    };
    let metrics = records::metrics(&groups, &results, &reports, &measured);
    let tool_calls = records::tool_calls(step, &results);
    let commit_ = records::commit(step, metrics, groups, tool_calls, &reports);
    let mut line = report_line(main_version, &commit_.record);
    // The generation each role ran the step with (a swap never lands mid-step).
    for (role, state) in servings {
        line[format!("{}_generation", role.name())] = state.generation.into();
    }
    // Asynchronous schedule: how many versions behind its update each model was sampled.
    for (role, behind) in &pinned.behind {
        line[format!("{}_staleness", role.name())] = (*behind).into();
    }
    let written = commit(ctx, commit_).await?;
    if !written {
        tracing::info!(step, "replayed step matches the committed one");
    }
    Ok((line, written))
}

/// The step's `metrics.jsonl` line: step, main version, every metric, each role's version.
pub(crate) fn report_line(main_version: u64, record: &StepRecord) -> serde_json::Value {
    let mut line = serde_json::json!({ "step": record.step, "main_version": main_version });
    for (k, v) in &record.metrics {
        line[k] = (*v).into();
    }
    for (k, v) in &record.role_versions {
        line[format!("{k}_version")] = (*v).into();
    }
    line
}
