//! `metrics.jsonl` is a view of the store: a step is committed to the store first and gets its
//! line after (and after its dev evaluation), so a crash between the two leaves a committed
//! step without a line, and the restarted coordinator goes on from the next step. Before the
//! first step, the coordinator appends the line of every committed step the file lacks,
//! rebuilt from the store's step record (metrics, role versions) and its swap records (the
//! generation each model ran the step with). A rebuilt line carries `"restored": true`; what
//! only the lost process knew — the dev evaluation of that step, the asynchronous schedule's
//! staleness — is not in it.
use mgrpo_store::{StepRecord, SwapRecord};

use crate::context::NodeContext;
use crate::coordinator::step::report_line;
use crate::role::{group, models};
use crate::rpc;
use crate::run_dir::JsonLines;
use crate::store_actor::StoreMsg;
use crate::swap::boundary::recorded;

/// Appends the lines of the committed steps in `reported..committed` (the first step without a
/// line, the first step not committed); returns how many it wrote.
pub async fn restore_lines(
    ctx: &NodeContext,
    reported: u64,
    committed: u64,
) -> Result<u64, String> {
    if reported >= committed {
        return Ok(0);
    }
    let records: Vec<StepRecord> = rpc::request(ctx, group::STORE, 0, |reply| StoreMsg::Steps {
        from: reported,
        to: committed,
        reply,
    })
    .await
    .map_err(|e| e.to_string())?;
    let swaps = recorded(ctx).await?;
    let path = ctx.run_dir.metrics_path();
    let mut file = JsonLines::append(&path).map_err(|e| format!("writing metrics.jsonl: {e}"))?;
    for r in &records {
        let line = restored_line(ctx, r, &swaps);
        file.write(&line)
            .map_err(|e| format!("writing metrics.jsonl: {e}"))?;
        tracing::warn!(
            step = r.step,
            "metrics.jsonl lacked a committed step's line: restored from the store"
        );
    }
    Ok(records.len() as u64)
}

/// The line of step `r` as the coordinator wrote it, from what the store kept.
fn restored_line(ctx: &NodeContext, r: &StepRecord, swaps: &[SwapRecord]) -> serde_json::Value {
    let main_version = r.role_versions.get("main").copied().unwrap_or(0);
    let mut line = report_line(main_version, r);
    for role in models(ctx.config.algo.variant) {
        line[format!("{}_generation", role.name())] =
            generation_at(swaps, role.name(), r.step).into();
    }
    line["restored"] = true.into();
    line
}

/// The generation model `role` ran step `step` with: that of its last swap taking effect at or
/// before it (0 before any swap).
pub fn generation_at(swaps: &[SwapRecord], role: &str, step: u64) -> u64 {
    SwapRecord::in_effect(swaps, role, step).map_or(0, |s| s.generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_of_a_step_is_its_last_swaps() {
        let swap = |step, role: &str, generation| SwapRecord {
            step,
            role: role.into(),
            request: "expert".into(),
            from_serving: "learner".into(),
            from_version: 0,
            to_serving: "expert".into(),
            weights: "keep".into(),
            generation,
            version: 0,
            node: None,
            duration_ms: 0,
        };
        let swaps = [swap(3, "sub", 1), swap(7, "sub", 2), swap(5, "main", 1)];
        assert_eq!(generation_at(&swaps, "sub", 2), 0);
        assert_eq!(generation_at(&swaps, "sub", 3), 1);
        assert_eq!(generation_at(&swaps, "sub", 9), 2);
        assert_eq!(generation_at(&swaps, "main", 4), 0);
        assert_eq!(generation_at(&swaps, "main", 5), 1);
    }
}
