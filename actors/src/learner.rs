//! A learner: owns one role's trainable policy. It keeps that role's trajectories (they never
//! leave its node), takes the other side's statistics from the store, computes its own
//! advantages, updates, and publishes the new version to its role's inference actors.
//!
//! One actor type serves every variant: the `main` learner (M; also the single agent's, and the
//! `shared` model trained on both roles' rows) and the `sub` learner (S).
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use mgrpo_algo::{
    Algo, MainRolloutStat, SubCallStat, SubGroupAdvantages, SubSettings, Trajectory,
    concat_batches, main_advantages, main_batch, sub_advantages, sub_batch,
};
use mgrpo_models::{
    Averaging, CheckpointMeta, Learner, LearnerConfig, StepStats, SurrogateConfig, load_checkpoint,
    save_checkpoint,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::context::NodeContext;
use crate::executor::ExecutorMsg;
use crate::groups;
use crate::planner::PlannerMsg;
use crate::policy_transfer::{self, PolicyChunk};
use crate::rollout::{CallKey, RolloutKey};
use crate::store_actor::StoreMsg;
use crate::wire::{Reply, Wire};

/// A policy version and its weights (`Policy::to_bytes`), shared without copying.
pub type VersionedWeights = (u64, Arc<Vec<u8>>);

/// A file in a checkpoint directory that protects it from pruning (milestones, best, warm start).
const KEEP_MARKER: &str = "keep";

/// Which role a learner trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LearnerRole {
    /// The main agent (or the single agent, or the shared model).
    Main,
    /// The sub-agents.
    Sub,
}

impl LearnerRole {
    /// The checkpoint role name.
    pub fn name(self) -> &'static str {
        match self {
            LearnerRole::Main => "main",
            LearnerRole::Sub => "sub",
        }
    }
}

/// What one update did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The role.
    pub role: LearnerRole,
    /// The version published by the update.
    pub version: u64,
    /// Loss diagnostics of the last epoch.
    pub stats: StepStats,
    /// Rows in the batch.
    pub rows: usize,
    /// Per group (by query order), the main advantages `A_M(k)` used (empty for a sub learner).
    pub main_advantages: Vec<Vec<f32>>,
    /// Per group, alignment and sub advantages used (empty for a main learner not shared).
    pub sub: Vec<SubGroupAdvantages>,
    /// The checkpoint saved after the update, relative to the run directory.
    pub checkpoint: Option<String>,
    /// Bytes of the trajectories this update trained on (bincode): what stayed on the node.
    pub trajectory_bytes: u64,
}

/// Training progress saved with each checkpoint, so a resumed learner continues exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    /// The next step to train.
    pub next_step: u64,
    /// The version of the saved weights.
    pub version: u64,
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
    /// Take one update on a step's data; `checkpoint` saves afterwards.
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
    /// Roll back (or forward) to the saved checkpoint whose next step is `next_step`, drop
    /// buffered trajectories and republish: what the coordinator does after a lost peer so
    /// that every learner is at the last committed step.
    #[rpc]
    Restore {
        /// The step the learner must train next.
        next_step: u64,
        /// Its state afterwards.
        reply: RpcReplyPort<Reply<TrainState>>,
    },
}

/// Arguments of a learner.
pub struct LearnerArgs {
    /// Shared context.
    pub ctx: Arc<NodeContext>,
    /// The role.
    pub role: LearnerRole,
}

/// The learner actor.
pub struct LearnerActor;

/// Its state.
pub struct LearnerState {
    ctx: Arc<NodeContext>,
    role: LearnerRole,
    learner: Learner,
    state: TrainState,
    /// The current version's weights, as served to inference actors.
    weights: Arc<Vec<u8>>,
    main: BTreeMap<RolloutKey, Trajectory>,
    sub: BTreeMap<CallKey, Trajectory>,
}

/// The model settings of a role.
fn settings(ctx: &NodeContext, role: LearnerRole) -> &crate::config::RoleModelConfig {
    match role {
        LearnerRole::Main => &ctx.config.models.main,
        LearnerRole::Sub => &ctx.config.models.sub,
    }
}

/// Loads checkpoint `version` of `role` (the latest when `None`) into a learner.
pub fn load_learner(
    ctx: &NodeContext,
    role: LearnerRole,
    version: Option<u64>,
) -> Result<(Learner, TrainState), String> {
    let settings = settings(ctx, role);
    let device = ctx.device(settings).map_err(|e| e.to_string())?;
    let version = match version {
        Some(v) => v,
        None => ctx.run_dir.latest_checkpoint(role.name()).ok_or_else(|| {
            format!(
                "no {} checkpoint in {} (run warmup first)",
                role.name(),
                ctx.run_dir.root().display()
            )
        })?,
    };
    let dir = ctx.run_dir.checkpoint_path(role.name(), version);
    let ck = load_checkpoint(&dir, &device, None).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut learner = Learner::from_policy(
        ck.policy,
        LearnerConfig {
            lr: settings.lr,
            ..LearnerConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let state = read_train_state(&dir).unwrap_or(TrainState {
        next_step: 0,
        version,
    });
    if let Ok(opt) = std::fs::read(dir.join("optimizer.bin")) {
        learner
            .load_optimizer_state(&opt)
            .map_err(|e| e.to_string())?;
    }
    Ok((learner, state))
}

fn read_train_state(dir: &Path) -> Option<TrainState> {
    serde_json::from_slice(&std::fs::read(dir.join("train_state.json")).ok()?).ok()
}

/// The saved version of `role` whose next step is `next_step`, if any.
fn checkpoint_for_step(ctx: &NodeContext, role: LearnerRole, next_step: u64) -> Option<u64> {
    ctx.run_dir
        .checkpoint_versions(role.name())
        .into_iter()
        .rev()
        .find(|v| {
            read_train_state(&ctx.run_dir.checkpoint_path(role.name(), *v))
                .is_some_and(|s| s.next_step == next_step)
        })
}

/// Saves weights, tokenizer, optimizer state and progress. `keep` protects the checkpoint from
/// [`prune`]; recovery checkpoints are saved without it.
pub fn save_learner(
    ctx: &NodeContext,
    role: LearnerRole,
    learner: &Learner,
    state: TrainState,
    with_optimizer: bool,
    keep: bool,
) -> Result<String, String> {
    let dir = ctx.run_dir.checkpoint_path(role.name(), state.version);
    save_checkpoint(
        &dir,
        &learner.policy(),
        ctx.tokenizer_json.as_bytes(),
        &CheckpointMeta::new(role.name(), state.version),
    )
    .map_err(|e| e.to_string())?;
    if with_optimizer {
        std::fs::write(
            dir.join("optimizer.bin"),
            learner.optimizer_state().map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    }
    write_json(&dir.join("train_state.json"), &state)?;
    if keep {
        std::fs::write(dir.join(KEEP_MARKER), b"").map_err(|e| e.to_string())?;
    }
    Ok(crate::run_dir::RunDir::checkpoint_rel(
        role.name(),
        state.version,
    ))
}

/// Deletes recovery checkpoints older than the newest two (kept ones stay).
fn prune(ctx: &NodeContext, role: LearnerRole) {
    let versions = ctx.run_dir.checkpoint_versions(role.name());
    let recent: Vec<u64> = versions.iter().rev().take(2).copied().collect();
    for v in versions {
        let dir = ctx.run_dir.checkpoint_path(role.name(), v);
        if !recent.contains(&v)
            && !dir.join(KEEP_MARKER).exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not prune a recovery checkpoint");
        }
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    std::fs::write(
        path,
        serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

/// Fetches the current version of a learner's policy in chunks (what an inference actor does
/// when it starts). Starts over if the version changes between chunks.
pub async fn fetch_policy(
    ctx: &NodeContext,
    learner: &'static str,
) -> Result<VersionedWeights, String> {
    let mut assembler = policy_transfer::Assembler::default();
    for _attempt in 0..5 {
        let first = groups::request(ctx, learner, 0, |reply| LearnerMsg::GetPolicy {
            chunk: 0,
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
        let (version, total) = (first.version, first.total);
        if let Some(done) = assembler.push(first)? {
            return Ok(done);
        }
        for i in 1..total {
            let c = groups::request(ctx, learner, 0, |reply| LearnerMsg::GetPolicy {
                chunk: i,
                reply,
            })
            .await
            .map_err(|e| e.to_string())?;
            if c.version != version {
                break;
            }
            if let Some(done) = assembler.push(c)? {
                return Ok(done);
            }
        }
    }
    Err(format!(
        "{learner}: the policy kept changing while it was fetched"
    ))
}

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
        let group = match args.role {
            LearnerRole::Main => groups::MAIN_LEARNER,
            LearnerRole::Sub => groups::SUB_LEARNER,
        };
        groups::join(&args.ctx, group, myself.get_cell());
        Ok(LearnerState {
            ctx: args.ctx,
            role: args.role,
            learner,
            state,
            weights,
            main: BTreeMap::new(),
            sub: BTreeMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<LearnerMsg>,
        message: LearnerMsg,
        s: &mut LearnerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LearnerMsg::AddMain { items: Wire(items) } => s.main.extend(items),
            LearnerMsg::AddSub { items: Wire(items) } => s.sub.extend(items),
            LearnerMsg::GetPolicy { chunk, reply } => {
                let max = s.ctx.config.cluster.max_chunk_bytes();
                let r = policy_transfer::chunk(s.state.version, &s.weights, max, chunk)
                    .ok_or_else(|| format!("no chunk {chunk} of version {}", s.state.version));
                let _ = reply.send(Wire(r));
            }
            LearnerMsg::GetState { reply } => {
                let _ = reply.send(Wire(Ok(s.state)));
            }
            LearnerMsg::Checkpoint { reply } => {
                let r = save_learner(&s.ctx, s.role, &s.learner, s.state, true, true);
                let _ = reply.send(Wire(r));
            }
            LearnerMsg::Restore { next_step, reply } => {
                let r = restore(s, next_step).await;
                let _ = reply.send(Wire(r));
            }
            LearnerMsg::Train {
                step,
                groups: n,
                checkpoint,
                reply,
            } => {
                let r = train(s, step, n, checkpoint).await;
                let _ = reply.send(Wire(r));
            }
        }
        Ok(())
    }
}

async fn restore(s: &mut LearnerState, next_step: u64) -> Result<TrainState, String> {
    s.main.clear();
    s.sub.clear();
    if s.state.next_step != next_step {
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
        s.state = state;
        s.weights = Arc::new(s.learner.policy().to_bytes().map_err(|e| e.to_string())?);
    }
    // Inference actors may have been restarted with, or sent, another version: republish.
    publish(s).await?;
    Ok(s.state)
}

async fn train(
    s: &mut LearnerState,
    step: u64,
    n_groups: u32,
    checkpoint: bool,
) -> Result<TrainReport, String> {
    if step != s.state.next_step {
        return Err(format!(
            "{} learner asked to train step {step} but is at step {}",
            s.role.name(),
            s.state.next_step
        ));
    }
    let ctx = s.ctx.clone();
    let algo = &ctx.config.algo;
    let variant = algo.variant;
    let trains_main = s.role == LearnerRole::Main;
    let trains_sub =
        (s.role == LearnerRole::Sub) || (variant == Algo::Shared && s.role == LearnerRole::Main);
    let pad = ctx.codec.pad_id();
    let (main_stats, call_stats): (Vec<Vec<MainRolloutStat>>, Vec<Vec<SubCallStat>>) =
        groups::request(&ctx, groups::STORE, 0, |reply| StoreMsg::Statistics {
            step,
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
    if main_stats.len() != n_groups as usize {
        return Err(format!(
            "store has {} groups for step {step}, expected {n_groups}",
            main_stats.len()
        ));
    }
    let mut batches = Vec::new();
    let mut main_adv_all = Vec::new();
    let mut trajectory_bytes = 0u64;
    let mut size = |t: &Trajectory| {
        trajectory_bytes += mgrpo_store::codec::encode(t).map_or(0, |b| b.len() as u64);
    };
    if trains_main {
        let mut trajs: Vec<Vec<&Trajectory>> = Vec::new();
        for (q, group) in main_stats.iter().enumerate() {
            let (adv, _) = main_advantages(group, algo.std, algo.eps).map_err(|e| e.to_string())?;
            let row: Vec<&Trajectory> = (0..group.len())
                .map(|k| {
                    s.main
                        .get(&RolloutKey {
                            step,
                            query: q as u32,
                            rollout: k as u32,
                        })
                        .ok_or_else(|| format!("missing main trajectory ({step}, {q}, {k})"))
                })
                .collect::<Result<_, _>>()?;
            row.iter().for_each(|t| size(t));
            trajs.push(row);
            main_adv_all.push(adv);
        }
        batches.push(main_batch(&trajs, &main_adv_all, pad, None));
    }
    let mut sub_all = Vec::new();
    if trains_sub {
        let settings = SubSettings {
            d_max: algo.d_max,
            run_seed: ctx.config.run.seed,
            weights: algo.weights,
            std: algo.std,
            eps: algo.eps,
        };
        let mut calls: Vec<Vec<Vec<&Trajectory>>> = Vec::new();
        for (q, (main, sub)) in main_stats.iter().zip(&call_stats).enumerate() {
            let g = sub_advantages(main, sub, &settings).map_err(|e| e.to_string())?;
            let per_rollout: Vec<Vec<&Trajectory>> = main
                .iter()
                .map(|r| {
                    (0..r.calls)
                        .map(|i| {
                            let key = CallKey {
                                rollout: RolloutKey {
                                    step,
                                    query: q as u32,
                                    rollout: r.rollout,
                                },
                                call: i,
                            };
                            s.sub
                                .get(&key)
                                .ok_or_else(|| format!("missing sub trajectory {key:?}"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<_, _>>()?;
            per_rollout.iter().flatten().for_each(|t| size(t));
            calls.push(per_rollout);
            sub_all.push(g);
        }
        let align: Vec<_> = sub_all.iter().map(|g| g.alignment.clone()).collect();
        let adv: Vec<_> = sub_all.iter().map(|g| g.slot_advantages.clone()).collect();
        batches.push(sub_batch(&calls, &align, &adv, pad, None));
    }
    let batch = match batches.as_slice() {
        [one] => one.clone(),
        [a, b] => concat_batches(a, b),
        _ => return Err("nothing to train".into()),
    };
    let config = SurrogateConfig {
        eps_low: algo.clip_low,
        eps_high: algo.clip_high,
        averaging: if algo.token_level {
            Averaging::Token
        } else {
            Averaging::Sequence
        },
        kl_coef: algo.kl_coef,
    };
    let mut stats = StepStats::default();
    for _ in 0..algo.epochs {
        stats = tokio::task::block_in_place(|| s.learner.surrogate_step(&batch, &config))
            .map_err(|e| e.to_string())?;
    }
    s.state = TrainState {
        next_step: step + 1,
        version: s.state.version + 1,
    };
    s.main.retain(|k, _| k.step > step);
    s.sub.retain(|k, _| k.rollout.step > step);
    s.weights = Arc::new(s.learner.policy().to_bytes().map_err(|e| e.to_string())?);
    publish(s).await?;
    // Saved before the reply, so once the coordinator commits the step every learner has a
    // checkpoint at it (what `Restore` goes back to).
    let saved = if checkpoint || ctx.config.train.recovery_checkpoints {
        let path = tokio::task::block_in_place(|| {
            save_learner(&ctx, s.role, &s.learner, s.state, true, checkpoint)
        })?;
        prune(&ctx, s.role);
        Some(path)
    } else {
        None
    };
    Ok(TrainReport {
        role: s.role,
        version: s.state.version,
        stats,
        rows: batch.rows,
        main_advantages: main_adv_all,
        sub: sub_all,
        checkpoint: saved.filter(|_| checkpoint),
        trajectory_bytes,
    })
}

/// Sends the current version to this role's inference actors and waits for each to load it:
/// whole to an actor on this node, in chunks under the frame limit to one on another node.
async fn publish(s: &LearnerState) -> Result<(), String> {
    let ctx = &s.ctx;
    let version = s.state.version;
    let timeout = Some(std::time::Duration::from_secs(
        ctx.config.actors.request_timeout_s,
    ));
    let max = ctx.config.cluster.max_chunk_bytes();
    let to_planners = s.role == LearnerRole::Main;
    let to_executors = s.role == LearnerRole::Sub || ctx.config.algo.variant == Algo::Shared;
    let chunks_for = |local: bool| {
        policy_transfer::split(version, &s.weights, if local { usize::MAX } else { max })
    };
    if to_planners {
        for p in groups::members::<PlannerMsg>(ctx, groups::PLANNER) {
            for c in chunks_for(p.get_id().is_local()) {
                let _ = p
                    .call(
                        |reply| PlannerMsg::LoadPolicy {
                            chunk: Wire(c.clone()),
                            reply,
                        },
                        timeout,
                    )
                    .await;
            }
        }
    }
    if to_executors {
        for e in groups::members::<ExecutorMsg>(ctx, groups::EXECUTOR) {
            for c in chunks_for(e.get_id().is_local()) {
                let _ = e
                    .call(
                        |reply| ExecutorMsg::LoadPolicy {
                            chunk: Wire(c.clone()),
                            reply,
                        },
                        timeout,
                    )
                    .await;
            }
        }
    }
    Ok(())
}
