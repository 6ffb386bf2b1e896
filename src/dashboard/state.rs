//! What the dashboard knows, and the poller that keeps it current: every second it reads
//! what the runs appended to their files; every other second it asks each live run (or a
//! run that came back: a resume writes `control.json` again) what `mgrpo status` shows. A
//! run nobody answers for is read from its store once. Whatever the page shows changed bumps
//! a counter that the page follows by server-sent events.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mgrpo_actors::control::Target;
use mgrpo_actors::{Config, NodeContext};
use mgrpo_store::Store;
use tokio::sync::{Mutex, watch};

use super::live::{Link, LiveView};
use super::questions::QuestionBook;
use super::run_files::{RunFiles, StoreFacts, store_facts};
use super::view::Moment;

/// One run the dashboard shows.
pub struct RunEntry {
    /// Its files.
    pub files: RunFiles,
    /// How to reach it while it runs.
    pub link: Option<Link>,
    /// The last live poll, while a process answers.
    pub live: Option<LiveView>,
    /// The store's facts, while no process holds it.
    pub facts: Option<StoreFacts>,
    /// The store the training process shares with its own dashboard.
    pub store: Option<Store>,
    /// Outages the dashboard saw.
    pub observed: Vec<Moment>,
    /// When each node last answered.
    pub last_seen: BTreeMap<String, Instant>,
    /// The run's questions, loaded on the first group inspected.
    pub questions: Option<QuestionBook>,
    up: BTreeMap<String, bool>,
    facts_stale: bool,
}

impl RunEntry {
    fn new(dir: &Path, link: Option<Link>, store: Option<Store>) -> Self {
        Self {
            files: RunFiles::new(dir),
            link,
            live: None,
            facts: None,
            store,
            observed: Vec::new(),
            last_seen: BTreeMap::new(),
            questions: None,
            up: BTreeMap::new(),
            facts_stale: false,
        }
    }

    /// A run directory: followed while its `control.json` names a process that answers.
    pub fn run_dir(dir: &Path) -> Self {
        let d = dir.to_path_buf();
        let target = move || {
            d.join("control.json")
                .exists()
                .then(|| Target::run(&d).ok())
                .flatten()
        };
        Self::new(
            dir,
            Some(Link::Client {
                target: Box::new(target),
                client: None,
            }),
            None,
        )
    }

    /// A cluster: its hub's run directory, its nodes joined through its config.
    pub fn cluster(hub_dir: &Path, config: Config) -> Self {
        let target = move || Some(Target::cluster(config.clone()));
        Self::new(
            hub_dir,
            Some(Link::Client {
                target: Box::new(target),
                client: None,
            }),
            None,
        )
    }

    /// The run of this process.
    pub fn in_process(ctx: Arc<NodeContext>, store: Option<Store>) -> Self {
        let dir = ctx.run_dir.root().to_path_buf();
        Self::new(&dir, Some(Link::InProcess(ctx)), store)
    }

    /// Reads the store's facts when it has none or they are stale; true when it did (a failed
    /// read — the store held by a process — keeps what the page shows, and is tried again).
    fn read_facts(&mut self) -> bool {
        if self.facts.is_some() && !self.facts_stale {
            return false;
        }
        let facts = match &self.store {
            Some(s) => store_facts(s),
            None => self.files.store_facts(),
        };
        let read = facts.is_some();
        if read {
            self.facts = facts;
            self.facts_stale = false;
        }
        read
    }

    /// Records which nodes went down or came back since the last poll.
    fn observe(&mut self, view: &LiveView) {
        let step = view
            .status
            .progress
            .as_ref()
            .map_or(0, |p| p.committed_steps);
        for n in &view.status.nodes {
            if n.up {
                self.last_seen.insert(n.node.clone(), Instant::now());
            }
            // An outage is a node seen up, then not; a recovery, one that came back after it.
            let before = self.up.get(&n.node).copied();
            let outage = before == Some(true) && !n.up;
            let recovery = before == Some(false) && n.up;
            if n.up || before.is_some() {
                self.up.insert(n.node.clone(), n.up);
            }
            if outage || recovery {
                self.observed.push(Moment {
                    step,
                    kind: if n.up { "node_up" } else { "node_down" }.into(),
                    detail: format!(
                        "{} {} (seen by the dashboard)",
                        n.node,
                        if n.up {
                            "answers again"
                        } else {
                            "stopped answering"
                        }
                    ),
                });
            }
        }
    }
}

/// Everything the server shares.
pub struct Dash {
    /// The runs, in the order given.
    pub runs: Vec<Mutex<RunEntry>>,
    /// The study's directory, with `--study`.
    pub study: Option<PathBuf>,
    /// The secret a non-loopback page must present.
    pub cookie: Option<String>,
    /// Moves whenever something shown changed.
    pub version: watch::Sender<u64>,
}

impl Dash {
    /// The dashboard of `runs`.
    pub fn new(runs: Vec<RunEntry>, study: Option<PathBuf>, cookie: Option<String>) -> Self {
        Self {
            runs: runs.into_iter().map(Mutex::new).collect(),
            study,
            cookie,
            version: watch::channel(0).0,
        }
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

/// Polls one run; true when what the page shows changed.
async fn poll_run(entry: &Mutex<RunEntry>, ask: bool) -> bool {
    let mut changed = {
        let mut e = entry.lock().await;
        let mut changed = e.files.refresh();
        if changed && e.live.is_none() {
            // Steps came without a live poll seeing them (a short resume): read the store again
            // (the page keeps the facts it has until then).
            e.facts_stale = true;
        }
        if e.live.is_none() {
            changed |= e.read_facts();
        }
        changed
    };
    if !ask {
        return changed;
    }
    // The poll may wait on nodes: the page keeps being served meanwhile.
    let link = entry.lock().await.link.take();
    let Some(mut link) = link else {
        return changed;
    };
    let view = link.poll().await;
    let mut e = entry.lock().await;
    e.link = Some(link);
    match view {
        Some(view) => {
            e.observe(&view);
            let before = e
                .live
                .as_ref()
                .map(|v| serde_json::to_string(v).unwrap_or_default());
            let now = serde_json::to_string(&view).ok();
            changed |= before != now;
            e.live = Some(view);
            e.facts_stale = true;
        }
        None => {
            if e.live.take().is_some() {
                changed = true;
            }
            // Nobody answers: the store is free (or shared by this process).
            changed |= e.read_facts();
        }
    }
    changed
}

/// The poller: runs until the process ends.
pub async fn poll_forever(dash: Arc<Dash>) {
    let mut tick = 0u64;
    loop {
        let ask = tick.is_multiple_of(2);
        let mut changed = false;
        for entry in &dash.runs {
            changed |= poll_run(entry, ask).await;
        }
        if changed {
            dash.bump();
        }
        tick += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
