//! The coordinator: drives the training steps (DESIGN.md, "One training step"), one per cluster.
//! This file is the actor (state, messages, handler) and the step loop around it: recovery
//! before the first step and after a failed one ([`recovery`]), each step through its phases
//! ([`step`], with the records it commits built in [`records`]), dev evaluations, the metrics
//! line, milestone and best-version checkpoints, and a clean stop. Hot-swaps land at the step
//! boundaries of this loop ([`crate::swap::boundary`]).
pub mod backfill;
pub mod records;
pub mod recovery;
pub mod step;
pub mod versions;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mgrpo_env::{EvalReport, Split};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use crate::cluster::membership::STOPPED;
use crate::context::NodeContext;
use crate::coordinator::recovery::recover;
use crate::coordinator::step::{Pipeline, run_step};
use crate::eval::evaluate;
use crate::faults::FaultPoint;
use crate::learner::LearnerMsg;
use crate::role::{Role, group, training_learners};
use crate::rpc::{self, Reply, Wire};
use crate::run_dir::{Best, JsonLines};
use crate::store_actor::StoreMsg;
use crate::swap::boundary::{Servings, at_boundary};

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
        /// Steps committed by this run (or the error).
        reply: RpcReplyPort<Reply<u64>>,
    },
}

/// Arguments (and state) of the coordinator.
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
        rpc::join(&args.ctx, group::COORDINATOR, myself.get_cell());
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
        let _ = state.progress.send(match &r {
            Ok(done) => Progress::Finished {
                steps: *done,
                stopped: state.stop.load(Ordering::SeqCst),
            },
            Err(e) => Progress::Failed(e.clone()),
        });
        let _ = reply.send(Wire(r));
        Ok(())
    }
}

async fn run(state: &CoordinatorArgs, to: u64) -> Result<u64, String> {
    let ctx = &state.ctx;
    let train = &ctx.config.train;
    let recovered = match recover(ctx, &state.stop).await {
        Err(e) if e == STOPPED => return Ok(0),
        r => r?,
    };
    let from = recovered.next;
    if from > 0 {
        record_event(
            ctx,
            from,
            "resume",
            format!("continued from step {from}, the store's last committed step + 1"),
        )
        .await;
    }
    let mut pipe = Pipeline::new(recovered.versions);
    if from == 0 && train.eval_every > 0 {
        let report = first_evaluation(ctx).await?;
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
    // Lines are appended in step order; a step committed just before a crash may have none:
    // those not replayed below get theirs from the store now.
    let reported = next_reported(ctx);
    let restored = backfill::restore_lines(ctx, reported, from).await?;
    let reported = reported + restored;
    let mut done = 0;
    let mut step = from;
    let mut failures = 0u32;
    while step < to {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        // Swaps land here, between steps: the step below runs on one generation of each role.
        let rolled = pipe.ahead.as_ref().is_some_and(|r| r.step == step);
        let stepped = match at_boundary(ctx, step, rolled).await {
            Ok(servings) => step_and_report(state, step, to, &servings, reported, &mut pipe).await,
            Err(e) => Err(e),
        };
        match stepped {
            Ok(committed) => {
                done += u64::from(committed);
                step += 1;
                failures = 0;
                // Between two steps, the step just committed: where a coordinator crash is
                // tried (its restart recovers from the store).
                ctx.faults
                    .strike(FaultPoint::Reply(Role::Coordinator))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => {
                failures += 1;
                if failures > ctx.config.actors.request_attempts {
                    return Err(format!("step {step} failed {failures} times; last: {e}"));
                }
                tracing::warn!(step, error = %e, "step failed; waiting for every role, then retrying from the last committed step");
                let failed_at = step;
                let recovered = match recover(ctx, &state.stop).await {
                    Err(e) if e == STOPPED => break,
                    r => r?,
                };
                step = recovered.next;
                let mut cause: String = e.chars().take(300).collect();
                if cause.len() < e.len() {
                    cause.push('…');
                }
                record_event(
                    ctx,
                    failed_at,
                    "recovered",
                    format!("step {failed_at} failed ({cause}); every role back, retrying from step {step}"),
                )
                .await;
                pipe = Pipeline::new(recovered.versions);
            }
        }
    }
    ctx.swaps.fail_all(&format!(
        "training ended at step {step} before the swap's step boundary; nothing changed"
    ));
    if state.stop.load(Ordering::SeqCst) && done > 0 {
        // A clean stop: checkpoint the last committed step so --resume continues exactly.
        checkpoint_learners(ctx).await?;
    }
    Ok(done)
}

/// Records an event for the dashboard's timeline; best effort (the store may be the thing
/// that failed), never holding the run up more than a few seconds.
async fn record_event(ctx: &NodeContext, step: u64, kind: &str, detail: String) {
    let event = mgrpo_store::Event {
        step,
        kind: kind.into(),
        detail,
    };
    let Some(store) = rpc::members::<StoreMsg>(ctx, group::STORE)
        .into_iter()
        .next()
    else {
        return;
    };
    let timeout = Some(std::time::Duration::from_secs(5));
    let r = rpc::call_member(
        &store,
        |reply| StoreMsg::RecordEvent {
            event: Wire(event),
            reply,
        },
        timeout,
    )
    .await;
    if let Err(e) = r {
        tracing::warn!(step, kind, error = %e, "could not record the event");
    }
}

/// The dev evaluation before step 0, retried as a failed step is (up to
/// `actors.request_attempts` times: a judge whose scorer command failed every attempt, a
/// restarting planner); evaluation rollouts keep nothing, so a retry changes nothing.
async fn first_evaluation(ctx: &NodeContext) -> Result<EvalReport, String> {
    let mut failures = 0u32;
    loop {
        match evaluate(ctx, Split::Dev, ctx.config.train.eval_questions).await {
            Ok(report) => return Ok(report),
            Err(e) => {
                failures += 1;
                if failures > ctx.config.actors.request_attempts {
                    return Err(format!(
                        "the dev evaluation before step 0 failed {failures} times; last: {e}"
                    ));
                }
                tracing::warn!(error = %e, "the dev evaluation before step 0 failed; retrying");
            }
        }
    }
}

/// The first step without a line in `metrics.jsonl`.
fn next_reported(ctx: &NodeContext) -> u64 {
    crate::run_dir::read_json_lines(&ctx.run_dir.metrics_path())
        .ok()
        .and_then(|lines| lines.last().and_then(|l| l["step"].as_u64()))
        .map_or(0, |s| s + 1)
}

/// Runs one step, evaluates if due, and writes its metrics line. Returns false when the step
/// was already committed (a replay after recovery); its line is still written if the crash
/// came between the commit and the line (`reported`: the first step without one).
async fn step_and_report(
    state: &CoordinatorArgs,
    step: u64,
    to: u64,
    servings: &Servings,
    reported: u64,
    pipe: &mut Pipeline,
) -> Result<bool, String> {
    let ctx = &state.ctx;
    let train = &ctx.config.train;
    let last = step + 1 == to;
    let checkpoint =
        last || (train.checkpoint_every > 0 && (step + 1).is_multiple_of(train.checkpoint_every));
    let stopping = state.stop.load(Ordering::SeqCst);
    // The next step's rollouts run ahead (during this step's updates under the asynchronous
    // schedule, during its saves under the synchronous one), unless it is the last, a stop
    // was asked for, or a swap waits for its boundary.
    let roll_next = !last && !stopping && !ctx.swaps.any_due(step + 1);
    let (mut metrics, written) =
        run_step(ctx, step, servings, checkpoint || stopping, pipe, roll_next).await?;
    if !written && step < reported {
        return Ok(false);
    }
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
    JsonLines::append(&ctx.run_dir.metrics_path())
        .and_then(|mut f| f.write(&metrics))
        .map_err(|e| format!("writing metrics.jsonl: {e}"))?;
    let _ = state.progress.send(Progress::Step(metrics));
    Ok(written)
}

/// Appends one dev evaluation to `eval.jsonl` (the step-0 one has no metrics line of its own).
fn log_eval(ctx: &NodeContext, step: u64, report: &EvalReport) -> Result<(), String> {
    let line = serde_json::json!({ "step": step, "split": "dev", "report": report });
    JsonLines::append(&ctx.run_dir.eval_path())
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
    for learner in training_learners(ctx.config.algo.variant) {
        rpc::request(ctx, learner.group(), 0, |reply| LearnerMsg::Checkpoint {
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
