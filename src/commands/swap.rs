//! `mgrpo swap`: hot-swap a role of a running run (one process through `RUN/control.json`, or
//! a cluster through its config) and print what happened, once it took effect.
use std::time::Duration;

use anyhow::{Result, bail};
use mgrpo_actors::role::LearnerRole;
use mgrpo_actors::rpc::wire;
use mgrpo_actors::swap::queue::SwapRequest;
use mgrpo_actors::swap::target::SwapTarget;

use crate::cli::SwapArgs;

/// `mgrpo swap`.
pub fn swap(args: &SwapArgs) -> Result<()> {
    let role = match args.role.as_str() {
        "main" => LearnerRole::Main,
        "sub" => LearnerRole::Sub,
        other => bail!("--role must be main or sub, not {other:?}"),
    };
    let to = match (&args.to, &args.node) {
        (Some(to), _) => to.as_str(),
        (None, Some(_)) => "keep",
        (None, None) => {
            bail!("--to TARGET is required (it may be left out with --node: a move only)")
        }
    };
    let mut target: SwapTarget = to.parse().map_err(anyhow::Error::msg)?;
    if let SwapTarget::Model(p) = &target {
        // The learner's node reads the path: make it absolute here (the same host, usually).
        let abs = std::path::absolute(p)?;
        if !abs.exists() {
            bail!("model:{}: no such directory", abs.display());
        }
        target = SwapTarget::Model(abs);
    }
    let control = super::cluster::control_target(args.run.as_deref(), &args.config.config)?;
    let request = SwapRequest {
        role,
        target,
        at_step: args.at_step,
        wait_s: args.wait,
        node: args.node.clone(),
    };
    let timeout = Duration::from_secs_f64(args.timeout.max(0.1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async {
        wire::quiet_decode_panics();
        mgrpo_actors::control::swap(&control, request, timeout).await
    })?;
    if args.json {
        let mut v = serde_json::to_value(&outcome)?;
        v["role"] = outcome.role.name().into();
        println!("{v}");
    } else {
        println!(
            "swapped {} at step {}: {} → {} (generation {}, {} ms after the request)",
            outcome.role.name(),
            outcome.step,
            outcome.from,
            outcome.to,
            outcome.generation,
            outcome.latency_ms
        );
    }
    Ok(())
}
