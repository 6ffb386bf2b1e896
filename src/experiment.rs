//! `mgrpo experiment --plan FILE`: a study — variants × seeds × config overrides — carried out
//! run by run ([`runs`]: shared warm starts, `parallel` processes, resumable) and reported
//! ([`report`]: every run's test accuracy at its warm start, dev-selected and final checkpoint,
//! per-variant means with 95 % t-intervals, a dev-accuracy plot with bands). The plan format is
//! in [`plan`] and docs/experiments.md.
pub mod child;
pub mod machine;
pub mod plan;
pub mod report;
pub mod runs;
pub mod settings;

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::ExperimentArgs;

/// Runs `mgrpo experiment`.
pub fn experiment(args: &ExperimentArgs) -> Result<()> {
    let plan = plan::Plan::load(&args.plan)?;
    let plan = plan::Plan {
        parallel: args.parallel.unwrap_or(plan.parallel),
        ..plan
    };
    let study = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/experiments").join(&plan.name));
    std::fs::create_dir_all(&study)?;
    std::fs::copy(&args.plan, study.join("plan.toml"))?;
    let runs = runs::prepare(&plan, &study)?;
    println!(
        "study {}: {} runs in {} ({} at a time)",
        plan.name,
        runs.len(),
        study.display(),
        plan.parallel
    );
    let pooled = args
        .with
        .iter()
        .map(|p| report::Pooled::load(p))
        .collect::<Result<Vec<_>>>()?;
    if !args.report_only {
        runs::carry_out(&plan, &runs)?;
    }
    let base = settings::of_plan(&plan)?;
    let table = report::write(&study, &runs, &pooled, &base)?;
    println!("{table}");
    println!("summary.json, table.md and dev.png in {}", study.display());
    Ok(())
}
