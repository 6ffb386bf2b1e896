//! The warm start: supervised fine-tuning of each role's policy on the task's demonstrations
//! (the world's noisy scripted experts, or a dataset's file), saved as version 0; a dataset
//! without demonstrations saves the models as given. Which models are warmed depends on the variant: `main`
//! and `sub` (mgrpo, frozen-sub), one `main` model on both roles' demonstrations (shared), or
//! one `main` single agent (single).
use std::time::Instant;

use mgrpo_algo::{BatchRow, Trajectory, assemble, derive_seed, salt};
use mgrpo_env::Demo;
use mgrpo_models::Learner;
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::context::NodeContext;
use crate::policy::checkpoints::{TrainState, save_learner};
use crate::role::{LearnerRole, models};
use crate::rollout::trace::Trace;
use crate::run_dir::JsonLines;

/// What the warm start did for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmupRole {
    /// The model's role name.
    pub role: String,
    /// Demonstrations it trained on.
    pub demos: usize,
    /// Of those, how many were cut to the model's context length (their later turns dropped).
    #[serde(default)]
    pub truncated: usize,
    /// Parameters.
    pub params: usize,
    /// Loss of the first and last batch.
    pub first_loss: f32,
    /// See `first_loss`.
    pub last_loss: f32,
    /// Wall time.
    pub seconds: f64,
}

impl std::fmt::Display for WarmupRole {
    /// `main: 135744 params, 60 demos, loss 5.629 → 4.671 in 1.8s`, or for a model without
    /// demonstrations (a dataset task without any) that it starts as given.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.demos == 0 {
            return write!(
                f,
                "{}: {} params, no demonstrations: no warm start, version 0 is the model as given",
                self.role, self.params
            );
        }
        write!(
            f,
            "{}: {} params, {} demos, loss {:.3} → {:.3} in {:.1}s",
            self.role, self.params, self.demos, self.first_loss, self.last_loss, self.seconds
        )
    }
}

/// Warms up only `roles` (what a cluster node does for the learners it hosts). Each model's
/// initialisation and data depend only on the run seed and its role, so warming the roles on
/// different nodes gives the same weights as warming them together. The roles warm at the
/// same time, each on its own thread (their batches fill each other's gaps on the CPU pool);
/// `on_step` and `warmup.jsonl` see every role's steps as they come.
pub fn warmup_roles(
    ctx: &NodeContext,
    roles: &[LearnerRole],
    mut on_step: impl FnMut(&str, usize, usize, f32),
) -> Result<Vec<WarmupRole>, String> {
    let cfg = &ctx.config;
    let demos = ctx
        .task
        .warm_demonstrations_in_copies(
            cfg.warmup.episodes,
            derive_seed(cfg.run.seed, &[salt::INIT, 0]),
            cfg.warmup.holdout,
            cfg.warmup.copies,
        )
        .map_err(|e| e.to_string())?;
    let mut log = JsonLines::append(&ctx.run_dir.warmup_path()).map_err(|e| e.to_string())?;
    let warmed: Vec<(usize, LearnerRole)> = models(cfg.algo.variant)
        .into_iter()
        .enumerate()
        .filter(|(_, r)| roles.contains(r))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel::<Step>();
    std::thread::scope(|scope| {
        let demos = &demos;
        let running: Vec<_> = warmed
            .iter()
            .map(|&(i, role)| {
                let tx = tx.clone();
                scope.spawn(move || warm_one(ctx, demos, i, role, &tx))
            })
            .collect();
        drop(tx);
        let mut logged = Ok(());
        for step in rx {
            on_step(step.role.name(), step.step + 1, step.steps, step.loss);
            if logged.is_ok() {
                logged = log
                    .write(&serde_json::json!({"role": step.role.name(), "step": step.step, "loss": step.loss}))
                    .map_err(|e| e.to_string());
            }
        }
        let out = running
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the warm start panicked".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        logged?;
        Ok(out)
    })
}

/// One warm-start step of one role, as reported to the caller.
struct Step {
    role: LearnerRole,
    step: usize,
    steps: usize,
    loss: f32,
}

/// Warms up `role` (the `i`-th model of the variant) on its demonstrations and saves it as
/// version 0, reporting each step on `tx`.
fn warm_one(
    ctx: &NodeContext,
    demos: &[Demo],
    i: usize,
    role: LearnerRole,
    tx: &std::sync::mpsc::Sender<Step>,
) -> Result<WarmupRole, String> {
    let cfg = &ctx.config;
    let seed = cfg.run.seed;
    let kinds = role.demos(cfg.algo.variant);
    // Demonstrations in the role's own tokens and chat frame, as its episodes will be.
    let codec = ctx.codec(role).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut rows: Vec<Trajectory> = demos
        .iter()
        .filter(|d| kinds.contains(&d.role))
        .map(|d| Trace::demonstration(codec, &d.segments).map_err(|e| e.to_string()))
        .collect::<Result<_, String>>()?;
    // A dataset task without demonstrations for this model skips its warm start: RL starts
    // from the model as given (its HF weights, or a preset's random ones).
    let skip = rows.is_empty() && ctx.task.world().is_none();
    if rows.is_empty() && !skip {
        return Err(format!("no demonstrations for the {} model", role.name()));
    }
    if skip {
        tracing::info!(
            "no demonstrations for the {} model: no warm start, version 0 is the model as given",
            role.name()
        );
    }
    let policy = ctx
        .initial_policy(role, derive_seed(seed, &[salt::INIT, 1, i as u64]))
        .map_err(|e| e.to_string())?;
    // LoRA adapters are RL's unless `warmup.lora`: the warm start trains every weight.
    let mut settings = ctx.learner_config(role, cfg.warmup.lr);
    if !cfg.warmup.lora {
        settings.lora = None;
    }
    let mut learner = Learner::from_policy(policy, settings).map_err(|e| e.to_string())?;
    let params = learner.policy().num_params();
    // A demonstration longer than the model's context (a long episode in a fine-grained
    // tokenizer) keeps its beginning, as SFT truncation does.
    let max_len = learner.config().max_seq_len;
    let mut truncated = 0;
    for t in rows.iter_mut().filter(|t| t.tokens.len() > max_len) {
        t.tokens.truncate(max_len);
        t.generated.truncate(max_len);
        t.logprobs.truncate(max_len);
        truncated += 1;
    }
    if truncated > 0 {
        tracing::warn!(
            "warm start of the {} model: {truncated} of {} demonstrations cut to its {max_len}-token context",
            role.name(),
            rows.len()
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &[salt::INIT, 2, i as u64]));
    let (mut first, mut last) = (0.0, 0.0);
    let steps = if skip { 0 } else { cfg.warmup.steps };
    let schedule = cfg.warmup.lr_schedule();
    for step in 0..steps {
        learner.set_lr(schedule.at(step as u64));
        let picks = sample(&mut rng, rows.len(), cfg.warmup.batch_size.min(rows.len()));
        let batch_rows: Vec<BatchRow<'_>> = picks
            .into_iter()
            .map(|j| BatchRow {
                trajectory: Some(&rows[j]),
                advantage: 0.0,
            })
            .collect();
        let batch = assemble(&batch_rows, codec.pad_id(), None);
        let loss = learner.sft_step(&batch).map_err(|e| e.to_string())?;
        if step == 0 {
            first = loss;
        }
        last = loss;
        // The receiver only goes away if the caller is gone: nothing to report to then.
        let _ = tx.send(Step {
            role,
            step,
            steps,
            loss,
        });
    }
    save_learner(
        ctx,
        role,
        &learner,
        TrainState {
            next_step: 0,
            version: 0,
            generation: 0,
            serving: Default::default(),
        },
        // RL's learners load version 0's AdamW state when it is there.
        cfg.warmup.keep_optimizer,
        true,
    )?;
    Ok(WarmupRole {
        role: role.name().into(),
        demos: rows.len(),
        truncated,
        params,
        first_loss: first,
        last_loss: last,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
