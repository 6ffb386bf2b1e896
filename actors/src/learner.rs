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
use ractor_cluster::RactorMessage;
use serde::{Deserialize, Serialize};

use crate::context::NodeContext;
use crate::executor::ExecutorMsg;
use crate::groups;
use crate::planner::PlannerMsg;
use crate::rollout::{CallKey, RolloutKey};
use crate::store_actor::StoreMsg;

/// A policy version and its weights (`Policy::to_bytes`), shared without copying.
pub type VersionedWeights = (u64, Arc<Vec<u8>>);

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
#[derive(RactorMessage)]
pub enum LearnerMsg {
    /// Main trajectories of a step (keyed: a duplicate replaces, never doubles).
    AddMain {
        /// `(rollout, trajectory)` pairs.
        items: Vec<(RolloutKey, Trajectory)>,
    },
    /// Sub trajectories of a step (keyed likewise).
    AddSub {
        /// `(call, trajectory)` pairs.
        items: Vec<(CallKey, Trajectory)>,
    },
    /// Take one update on a step's data; `checkpoint` saves afterwards.
    Train {
        /// The step.
        step: u64,
        /// Number of query groups in the step.
        groups: u32,
        /// Save a checkpoint after the update.
        checkpoint: bool,
        /// The report.
        reply: RpcReplyPort<Result<TrainReport, String>>,
    },
    /// The current version and weights (for inference actors that start or restart).
    GetPolicy {
        /// `(version, Policy::to_bytes)`.
        reply: RpcReplyPort<Result<VersionedWeights, String>>,
    },
    /// The learner's progress.
    GetState {
        /// Its state.
        reply: RpcReplyPort<Result<TrainState, String>>,
    },
    /// Save a checkpoint now.
    Checkpoint {
        /// The path saved, relative to the run directory.
        reply: RpcReplyPort<Result<String, String>>,
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
    main: BTreeMap<RolloutKey, Trajectory>,
    sub: BTreeMap<CallKey, Trajectory>,
}

/// Loads the latest checkpoint of `role` in the run directory into a learner.
pub fn load_learner(ctx: &NodeContext, role: LearnerRole) -> Result<(Learner, TrainState), String> {
    let settings = match role {
        LearnerRole::Main => &ctx.config.models.main,
        LearnerRole::Sub => &ctx.config.models.sub,
    };
    let device = ctx.device(settings).map_err(|e| e.to_string())?;
    let version = ctx.run_dir.latest_checkpoint(role.name()).ok_or_else(|| {
        format!(
            "no {} checkpoint in {} (run warmup first)",
            role.name(),
            ctx.run_dir.root().display()
        )
    })?;
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
    let state = match std::fs::read(dir.join("train_state.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string())?,
        Err(_) => TrainState {
            next_step: 0,
            version,
        },
    };
    if let Ok(opt) = std::fs::read(dir.join("optimizer.bin")) {
        learner
            .load_optimizer_state(&opt)
            .map_err(|e| e.to_string())?;
    }
    Ok((learner, state))
}

/// Saves weights, tokenizer, optimizer state and progress.
pub fn save_learner(
    ctx: &NodeContext,
    role: LearnerRole,
    learner: &Learner,
    state: TrainState,
    with_optimizer: bool,
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
    Ok(crate::run_dir::RunDir::checkpoint_rel(
        role.name(),
        state.version,
    ))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    std::fs::write(
        path,
        serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
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
        let (learner, state) = load_learner(&args.ctx, args.role)?;
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
            LearnerMsg::AddMain { items } => s.main.extend(items),
            LearnerMsg::AddSub { items } => s.sub.extend(items),
            LearnerMsg::GetPolicy { reply } => {
                let r = s
                    .learner
                    .policy()
                    .to_bytes()
                    .map(|b| (s.state.version, Arc::new(b)));
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            LearnerMsg::GetState { reply } => {
                let _ = reply.send(Ok(s.state));
            }
            LearnerMsg::Checkpoint { reply } => {
                let r = save_learner(&s.ctx, s.role, &s.learner, s.state, true);
                let _ = reply.send(r);
            }
            LearnerMsg::Train {
                step,
                groups: n,
                checkpoint,
                reply,
            } => {
                let r = train(s, step, n, checkpoint).await;
                let _ = reply.send(r);
            }
        }
        Ok(())
    }
}

async fn train(
    s: &mut LearnerState,
    step: u64,
    n_groups: u32,
    checkpoint: bool,
) -> Result<TrainReport, String> {
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
    publish(s).await?;
    let checkpoint = if checkpoint {
        Some(save_learner(&ctx, s.role, &s.learner, s.state, true)?)
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
        checkpoint,
    })
}

/// Sends the new version to this role's inference actors and waits for each to load it.
async fn publish(s: &LearnerState) -> Result<(), String> {
    let ctx = &s.ctx;
    let bytes = Arc::new(s.learner.policy().to_bytes().map_err(|e| e.to_string())?);
    let version = s.state.version;
    let timeout = Some(std::time::Duration::from_secs(
        ctx.config.actors.request_timeout_s,
    ));
    let to_planners = s.role == LearnerRole::Main;
    let to_executors = s.role == LearnerRole::Sub || ctx.config.algo.variant == Algo::Shared;
    if to_planners {
        for p in groups::members::<PlannerMsg>(ctx, groups::PLANNER) {
            let b = bytes.clone();
            let _ = p
                .call(
                    |reply| PlannerMsg::LoadPolicy {
                        version,
                        bytes: b,
                        reply,
                    },
                    timeout,
                )
                .await;
        }
    }
    if to_executors {
        for e in groups::members::<ExecutorMsg>(ctx, groups::EXECUTOR) {
            let b = bytes.clone();
            let _ = e
                .call(
                    |reply| ExecutorMsg::LoadPolicy {
                        version,
                        bytes: b,
                        reply,
                    },
                    timeout,
                )
                .await;
        }
    }
    Ok(())
}
