//! `mgrpo dashboard`: one web page for what an RL user watches while a run trains — curves,
//! which version and generation each role serves, which node is up, what was swapped and
//! when, one group's rollouts — for finished runs (read from disk with no process running),
//! live one-process runs and clusters (followed through their control endpoint), and studies
//! (variants overlaid with mean and interval bands). `mgrpo train --dashboard ADDR` serves the
//! same page from the training process itself.
//!
//! The server does the work (downsampling, smoothing, intervals), so the page stays small and
//! loads fast on a long run; every asset (uPlot, MIT) is vendored into the binary, so the page
//! makes no request outside the server. Live updates are server-sent events: a counter that
//! moves when something the page shows changed, after which the page fetches the view again.
mod live;
mod questions;
pub(crate) mod run_files;
mod series;
mod server;
mod state;
mod study;
pub(crate) mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use mgrpo_actors::NodeContext;
use mgrpo_store::Store;

use crate::cli::DashboardArgs;
use state::{Dash, RunEntry};

/// A dashboard served by a training process; stopped by [`Handle::finish`] or on drop.
pub struct Handle {
    task: tokio::task::JoinHandle<()>,
    poller: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Stops serving (the run ended; its directory can be opened with `mgrpo dashboard`).
    pub fn finish(self) {
        self.task.abort();
        self.poller.abort();
    }
}

/// Checks that a non-loopback address comes with a secret.
fn check_exposure(addr: SocketAddr, cookie: Option<&str>) -> Result<()> {
    if !addr.ip().is_loopback() && cookie.is_none_or(str::is_empty) {
        bail!(
            "the dashboard listens on {addr}, which is not loopback: it needs a cookie (--cookie, or a config whose cluster has one); see docs/operations.md"
        );
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("dashboard: cannot listen on {addr}"))
}

/// `mgrpo train --dashboard ADDR` and the hub's `mgrpo node --dashboard ADDR`: serves the run
/// of `ctx` from its own process (`store`: the run's store, when this process holds it).
pub async fn serve_in_process(
    addr: SocketAddr,
    ctx: Arc<NodeContext>,
    store: Option<Store>,
    cookie: Option<String>,
) -> Result<Handle> {
    check_exposure(addr, cookie.as_deref())?;
    let listener = bind(addr).await?;
    let entry = RunEntry::in_process(ctx, store);
    let dash = Arc::new(Dash::new(vec![entry], None, cookie));
    let poller = tokio::spawn(state::poll_forever(dash.clone()));
    let task = tokio::spawn(async move {
        if let Err(e) = server::serve(listener, dash).await {
            tracing::warn!("dashboard: {e}");
        }
    });
    eprintln!("dashboard: http://{addr}/");
    Ok(Handle { task, poller })
}

/// The run directories a study holds (`DIR/runs/*` with a `config.toml`), by name.
fn study_runs(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let runs = dir.join("runs");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&runs)
        .with_context(|| format!("{} (is it a study directory?)", runs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.toml").exists())
        .collect();
    out.sort();
    Ok(out)
}

/// `mgrpo dashboard`.
pub fn serve_command(args: &DashboardArgs) -> Result<()> {
    let mut entries = Vec::new();
    let mut cookie = args.cookie.clone();
    for dir in &args.run {
        if !dir.is_dir() {
            bail!("{} is not a run directory", dir.display());
        }
        if args.config.is_none() {
            entries.push(RunEntry::run_dir(dir));
        }
    }
    if let Some(path) = &args.config {
        let config = mgrpo_actors::Config::load(path)
            .with_context(|| format!("dashboard: {}", path.display()))?;
        if !config.cluster.is_distributed() {
            bail!(
                "{} lists no [[cluster.nodes]]; for a one-process run pass --run DIR",
                path.display()
            );
        }
        // The cluster's cookie guards a dashboard others can reach; loopback needs none.
        if cookie.is_none() && !args.listen.ip().is_loopback() {
            cookie = config.cluster.resolve_cookie().ok();
        }
        let hub_dir = args
            .run
            .first()
            .cloned()
            .unwrap_or_else(|| config.run.root.join(&config.cluster.name));
        entries.push(RunEntry::cluster(&hub_dir, config));
    }
    if let Some(study) = &args.study {
        for dir in study_runs(study)? {
            entries.push(RunEntry::run_dir(&dir));
        }
    }
    if entries.is_empty() {
        bail!("nothing to show: pass --run DIR, --config FILE or --study DIR");
    }
    check_exposure(args.listen, cookie.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = bind(args.listen).await?;
        let dash = Arc::new(Dash::new(entries, args.study.clone(), cookie));
        tokio::spawn(state::poll_forever(dash.clone()));
        // Scripts (and the tests) read where it listens from this line.
        println!("dashboard: http://{}/", listener.local_addr()?);
        server::serve(listener, dash).await
    })
}
