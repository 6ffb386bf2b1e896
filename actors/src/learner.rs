//! A learner: owns one model. It keeps that model's trajectories (they never leave its node),
//! takes the other side's statistics from the store, computes its own advantages, updates
//! ([`update`]), saves ([`crate::policy::checkpoints`]) and publishes the new version to the
//! replicas the node registered for it ([`PolicySinks`]).
//!
//! One actor type serves every variant: the `main` learner (M; also the single agent's, and the
//! `shared` model trained on both roles' rows) and the `sub` learner (S). Which batches each
//! builds comes from [`LearnerRole::batches`]. A hot-swap of its role goes through it too
//! ([`swap`]): it owns the role's weights, generation and serving.
pub mod state;
pub mod swap;
pub mod update;

use std::sync::Arc;

use mgrpo_algo::{SubGroupAdvantages, Trajectory};
use mgrpo_models::{Averaging, StepStats, SurrogateConfig};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::context::NodeContext;
use crate::faults::FaultPoint;
use crate::learner::state::LearnerState;
use crate::learner::update::{Buffered, build};
use crate::policy::checkpoints::{
    TrainState, checkpoint_for_step, checkpoint_state, load_learner, load_policy, prune,
    save_learner,
};
use crate::policy::chunks::{PolicyChunk, PolicyId, chunk};
use crate::policy::replica::PolicySource;
use crate::policy::sink::PolicySinks;
use crate::role::{LearnerRole, group};
use crate::rollout::keys::{CallKey, RolloutKey};
use crate::rpc::{self, Reply, Wire};
use crate::run_dir::RunDir;
use crate::store_actor::StoreMsg;
use crate::swap::target::SwapPlan;

/// What one update did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The model.
    pub role: LearnerRole,
    /// The version published by the update.
    pub version: u64,
    /// The role's generation (unchanged by an update).
    pub generation: u64,
    /// Loss diagnostics of the last epoch.
    pub stats: StepStats,
    /// Rows in the batch.
    pub rows: usize,
    /// The learning rate of this update (`[train]`'s schedule at the step).
    pub lr: f64,
    /// Per group (by query order), the main advantages `A_M(k)` used (empty for a sub learner).
    pub main_advantages: Vec<Vec<f32>>,
    /// Per group, alignment and sub advantages used (empty for a main learner not shared).
    pub sub: Vec<SubGroupAdvantages>,
    /// The kept checkpoint the update is saved as (a milestone), relative to the run directory.
    pub checkpoint: Option<String>,
    /// Bytes of the trajectories this update trained on (bincode): what stayed on the node.
    pub trajectory_bytes: u64,
    /// Wall time of the optimiser update(s) alone, seconds.
    pub update_s: f64,
    /// Wall time of publishing the new weights to the replicas, seconds.
    pub publish_s: f64,
}

/// Messages of a learner.
#[derive(RactorClusterMessage)]
pub enum LearnerMsg {
    /// Main trajectories of a step (keyed: a duplicate replaces, never doubles).
    AddMain {
        /// `(rollout, trajectory)` pairs.
        items: Wire<Vec<(RolloutKey, Trajectory)>>,
    },
    /// Sub trajectories of a step (keyed likewise).
    AddSub {
        /// `(call, trajectory)` pairs.
        items: Wire<Vec<(CallKey, Trajectory)>>,
    },
    /// Take one update on a step's data and publish it; replies then, and saves afterwards
    /// (a kept checkpoint with `checkpoint`, else a recovery save if they are on) while the
    /// coordinator moves on: it commits the step only once [`LearnerMsg::Flush`] says the
    /// save is on disk.
    #[rpc]
    Train {
        /// The step.
        step: u64,
        /// Number of query groups in the step.
        groups: u32,
        /// Save a checkpoint after the update.
        checkpoint: bool,
        /// The report.
        reply: RpcReplyPort<Reply<TrainReport>>,
    },
    /// Waits for the save that followed the update on `step` (messages are handled in order,
    /// so this one runs after it): its wall time in seconds (0 when nothing was due), or why it
    /// failed (then the step must not be committed).
    #[rpc]
    Flush {
        /// The step trained.
        step: u64,
        /// The save's time, or its error.
        reply: RpcReplyPort<Reply<f64>>,
    },
    /// Chunk `chunk` of the current version's weights (for inference actors that start or
    /// restart; chunk 0 tells how many there are).
    #[rpc]
    GetPolicy {
        /// The chunk index.
        chunk: u32,
        /// The chunk.
        reply: RpcReplyPort<Reply<PolicyChunk>>,
    },
    /// The learner's progress.
    #[rpc]
    GetState {
        /// Its state.
        reply: RpcReplyPort<Reply<TrainState>>,
    },
    /// Save a checkpoint now, kept from pruning (milestones, best, a clean stop).
    #[rpc]
    Checkpoint {
        /// The path saved, relative to the run directory.
        reply: RpcReplyPort<Reply<String>>,
    },
    /// Prepare a swap of this learner's role as policy `id`: load and health-check the plan's
    /// weights here and on every replica; nothing served or trained changes.
    #[rpc]
    PrepareSwap {
        /// What the role becomes.
        plan: Wire<SwapPlan>,
        /// The policy it will be.
        id: Wire<PolicyId>,
        /// Ok once prepared everywhere; the reason otherwise (then nothing is staged).
        reply: RpcReplyPort<Reply<()>>,
    },
    /// Put a (prepared or recorded) swap into effect before step `step`.
    #[rpc]
    ApplySwap {
        /// The first step on the new policy.
        step: u64,
        /// What the role becomes.
        plan: Wire<SwapPlan>,
        /// The policy it becomes.
        id: Wire<PolicyId>,
        /// The learner's state afterwards.
        reply: RpcReplyPort<Reply<TrainState>>,
    },
    /// Drop a prepared swap (the store refused it).
    #[rpc]
    AbortSwap {
        /// Acknowledged once dropped everywhere.
        reply: RpcReplyPort<Reply<()>>,
    },
    /// Roll back (or forward) to the saved checkpoint whose next step is `next_step`, drop
    /// buffered trajectories and republish: what the coordinator does after a lost peer so
    /// that every learner is at the last committed step.
    #[rpc]
    Restore {
        /// The step the learner must train next.
        next_step: u64,
        /// Also republish the versions in effect at the `keep` steps before it, oldest first
        /// (the asynchronous schedule samples the next steps with them).
        keep: u64,
        /// Its state afterwards, and the versions published.
        reply: RpcReplyPort<Reply<Restored>>,
    },
}

/// A learner after [`LearnerMsg::Restore`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restored {
    /// Its state.
    pub state: TrainState,
    /// `(step, policy)`: the version in effect at each step republished, oldest first (the
    /// last is the current one, at `state.next_step`).
    pub versions: Vec<(u64, PolicyId)>,
}

impl PolicySource for LearnerMsg {
    fn get_policy(chunk: u32, reply: RpcReplyPort<Reply<PolicyChunk>>) -> Self {
        LearnerMsg::GetPolicy { chunk, reply }
    }
}

/// Arguments of a learner.
pub struct LearnerArgs {
    /// Shared context.
    pub ctx: Arc<NodeContext>,
    /// The model it trains.
    pub role: LearnerRole,
    /// Who receives its versions.
    pub sinks: PolicySinks,
}

/// The learner actor.
pub struct LearnerActor;

impl Actor for LearnerActor {
    type Msg = LearnerMsg;
    type State = LearnerState;
    type Arguments = LearnerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LearnerMsg>,
        args: LearnerArgs,
    ) -> Result<LearnerState, ActorProcessingErr> {
        let (learner, state) = load_learner(&args.ctx, args.role, None)?;
        let weights = Arc::new(learner.policy().to_bytes()?);
        rpc::join(&args.ctx, args.role.group(), myself.get_cell());
        Ok(LearnerState {
            ctx: args.ctx,
            role: args.role,
            sinks: args.sinks,
            learner,
            state,
            weights,
            buffered: Buffered::default(),
            staged: None,
            saved: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<LearnerMsg>,
        message: LearnerMsg,
        s: &mut LearnerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            // A role swapped to frozen or expert trains on nothing it samples.
            LearnerMsg::AddMain { items: Wire(items) } if s.state.serving.trains() => {
                s.buffered.main.extend(items)
            }
            LearnerMsg::AddSub { items: Wire(items) } if s.state.serving.trains() => {
                s.buffered.sub.extend(items)
            }
            LearnerMsg::AddMain { .. } | LearnerMsg::AddSub { .. } => {}
            LearnerMsg::GetPolicy { chunk: i, reply } => {
                let max = s.ctx.config.cluster.max_chunk_bytes();
                let r = chunk(s.id(), &s.weights, max, i)
                    .map(|c| c.serving(s.state.serving, false))
                    .ok_or_else(|| format!("no chunk {i} of version {}", s.state.version));
                let _ = reply.send(Wire(r));
            }
            LearnerMsg::GetState { reply } => {
                let _ = reply.send(Wire(Ok(s.state)));
            }
            LearnerMsg::Checkpoint { reply } => {
                let r = save_learner(&s.ctx, s.role, &s.learner, s.state, true, true);
                let _ = reply.send(Wire(r));
            }
            LearnerMsg::PrepareSwap {
                plan: Wire(plan),
                id: Wire(id),
                reply,
            } => {
                let r = swap::prepare(s, plan, id).await;
                let _ = reply.send(Wire(r));
            }
            LearnerMsg::ApplySwap {
                step,
                plan: Wire(plan),
                id: Wire(id),
                reply,
            } => {
                let r = swap::apply(s, step, plan, id).await;
                let _ = reply.send(Wire(r));
            }
            LearnerMsg::AbortSwap { reply } => {
                swap::abort(s).await;
                let _ = reply.send(Wire(Ok(())));
            }
            LearnerMsg::Restore {
                next_step,
                keep,
                reply,
            } => {
                let r = restore(s, next_step, keep).await;
                let _ = reply.send(Wire(r));
            }
            LearnerMsg::Train {
                step,
                groups: n,
                checkpoint,
                reply,
            } => {
                let r = train(s, step, n, checkpoint).await;
                s.ctx
                    .faults
                    .strike(FaultPoint::Reply(s.role.role()))
                    .await?;
                let trained = r.is_ok();
                let _ = reply.send(Wire(r));
                // After the reply: the next step's rollouts (and the coordinator's wait in
                // `Flush`) overlap the save's serialisation and disk writes.
                s.saved = trained.then(|| (step, save(s, checkpoint)));
            }
            LearnerMsg::Flush { step, reply } => {
                let r = match &s.saved {
                    Some((at, r)) if *at == step => r.clone(),
                    _ => Err(format!(
                        "{} learner has no update of step {step} (restarted since?)",
                        s.role.name()
                    )),
                };
                let _ = reply.send(Wire(r));
            }
        }
        Ok(())
    }
}

async fn restore(s: &mut LearnerState, next_step: u64, keep: u64) -> Result<Restored, String> {
    s.buffered.clear();
    s.staged = None;
    s.saved = None;
    if !s.state.serving.trains() && s.state.next_step <= next_step {
        // Frozen or expert since before `next_step`: nothing changed since; follow along.
        s.state.next_step = next_step;
    } else if s.state.next_step != next_step {
        let version = checkpoint_for_step(&s.ctx, s.role, next_step).ok_or_else(|| {
            format!(
                "{} learner is at step {} and has no checkpoint for step {next_step} \
                 (train.recovery_checkpoints = false?)",
                s.role.name(),
                s.state.next_step
            )
        })?;
        let (learner, state) =
            tokio::task::block_in_place(|| load_learner(&s.ctx, s.role, Some(version)))?;
        tracing::warn!(
            role = s.role.name(),
            from = s.state.next_step,
            to = next_step,
            version,
            "learner restored to the last committed step"
        );
        s.learner = learner;
        s.state = TrainState { next_step, ..state };
        s.weights = Arc::new(s.learner.policy().to_bytes().map_err(|e| e.to_string())?);
    }
    // The asynchronous schedule samples the next steps with earlier versions: those first.
    let mut versions = Vec::new();
    for at in next_step.saturating_sub(keep)..next_step {
        versions.push((at, republish(s, at).await?));
    }
    // Inference actors may have been restarted with, or sent, another version: republish.
    s.publish().await?;
    versions.push((next_step, s.id()));
    Ok(Restored {
        state: s.state,
        versions,
    })
}

/// Saves the update just taken: a kept checkpoint with `checkpoint`, else a recovery save if
/// they are on (pruning older ones), else nothing. Once the coordinator commits the step (after
/// [`LearnerMsg::Flush`]), every learner has a checkpoint at it (what `Restore` goes back to).
fn save(s: &LearnerState, checkpoint: bool) -> Result<f64, String> {
    let ctx = &s.ctx;
    if !(checkpoint || ctx.config.train.recovery_checkpoints) {
        return Ok(0.0);
    }
    let t0 = std::time::Instant::now();
    tokio::task::block_in_place(|| {
        save_learner(ctx, s.role, &s.learner, s.state, true, checkpoint)
    })?;
    prune(ctx, s.role);
    Ok(t0.elapsed().as_secs_f64())
}

/// Sends the version in effect at step `at` (from its checkpoint) to every replica.
async fn republish(s: &LearnerState, at: u64) -> Result<PolicyId, String> {
    let missing = || {
        format!(
            "{} learner has no checkpoint for step {at}, which the asynchronous schedule \
             samples a coming step with",
            s.role.name()
        )
    };
    let version = checkpoint_for_step(&s.ctx, s.role, at).ok_or_else(missing)?;
    let state = checkpoint_state(&s.ctx, s.role, version).ok_or_else(missing)?;
    let id = state.id();
    if id == s.id() {
        return Ok(id);
    }
    let (policy, _) = tokio::task::block_in_place(|| load_policy(&s.ctx, s.role, Some(version)))?;
    let weights = Arc::new(policy.to_bytes().map_err(|e| e.to_string())?);
    s.publish_version(id, state.serving, &weights).await?;
    Ok(id)
}

async fn train(
    s: &mut LearnerState,
    step: u64,
    n_groups: u32,
    checkpoint: bool,
) -> Result<TrainReport, String> {
    if !s.state.serving.trains() {
        return Err(format!(
            "{} learner asked to train step {step} but its role is {}",
            s.role.name(),
            s.state.serving.name()
        ));
    }
    if step != s.state.next_step {
        return Err(format!(
            "{} learner asked to train step {step} but is at step {}",
            s.role.name(),
            s.state.next_step
        ));
    }
    let ctx = s.ctx.clone();
    let algo = &ctx.config.algo;
    let stats = rpc::request(&ctx, group::STORE, 0, |reply| StoreMsg::Statistics {
        step,
        reply,
    })
    .await
    .map_err(|e| e.to_string())?;
    if stats.main.len() != n_groups as usize {
        return Err(format!(
            "store has {} groups for step {step}, expected {n_groups}",
            stats.main.len()
        ));
    }
    let built = build(
        algo,
        ctx.config.run.seed,
        ctx.codec(s.role).map_err(|e| e.to_string())?.pad_id(),
        &s.role.batches(algo.variant),
        step,
        &stats,
        &s.buffered,
    )?;
    let config = SurrogateConfig {
        eps_low: algo.clip_low,
        eps_high: algo.clip_high,
        averaging: if algo.token_level {
            Averaging::Token
        } else {
            Averaging::Sequence
        },
        kl_coef: algo.kl_coef,
        // The rollouts' distribution: their recorded π_old is at this temperature too.
        temperature: ctx.config.sampling.temperature,
    };
    // The rate is a function of the step alone, so a recovered learner sets the same one.
    let lr = ctx
        .config
        .train
        .lr_schedule(ctx.config.models.of(s.role).lr)
        .at(step);
    s.learner.set_lr(lr);
    let mut stats = StepStats::default();
    let t0 = std::time::Instant::now();
    for _ in 0..algo.epochs {
        stats = tokio::task::block_in_place(|| s.learner.surrogate_step(&built.batch, &config))
            .map_err(|e| e.to_string())?;
    }
    let update_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    s.state = TrainState {
        next_step: step + 1,
        version: s.state.version + 1,
        ..s.state
    };
    s.buffered.drop_through(step);
    s.weights = Arc::new(s.learner.policy().to_bytes().map_err(|e| e.to_string())?);
    s.publish().await?;
    Ok(TrainReport {
        role: s.role,
        version: s.state.version,
        generation: s.state.generation,
        stats,
        rows: built.batch.rows,
        // What the optimiser stepped with, read back (not the schedule's value).
        lr: s.learner.settings().lr,
        main_advantages: built.main_advantages,
        sub: built.sub,
        checkpoint: checkpoint.then(|| RunDir::checkpoint_rel(s.role.name(), s.state.version)),
        trajectory_bytes: built.trajectory_bytes,
        update_s,
        publish_s: t1.elapsed().as_secs_f64(),
    })
}
