//! The node processes of one chaos run: real `mgrpo node` processes (this binary) on loopback,
//! each logging to its own file, killed with SIGKILL and started again on the plan's orders —
//! or, for a config without `[[cluster.nodes]]`, one `mgrpo train` process (node `local`),
//! started again with `--resume`.
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{Context, Result};

/// One node's process (absent while it is down).
struct NodeProc {
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
}

/// How a node process ended without being killed by the harness.
#[derive(Debug, Clone)]
pub struct Exit {
    /// The node.
    pub node: String,
    /// Its status.
    pub status: ExitStatus,
}

/// The node processes of a run.
pub struct Nodes {
    exe: PathBuf,
    config: PathBuf,
    run: PathBuf,
    cookie: String,
    procs: BTreeMap<String, NodeProc>,
    one_process: bool,
}

impl Nodes {
    /// Nodes of `config` writing into `run`, logging under `logs`.
    /// `one_process`: `names` is the single `local` node of `mgrpo train`.
    pub fn new(
        config: &Path,
        run: &Path,
        logs: &Path,
        names: &[String],
        cookie: String,
        one_process: bool,
    ) -> Result<Self> {
        std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
        let procs = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    NodeProc {
                        child: None,
                        log: logs.join(format!("{n}.log")),
                        starts: 0,
                    },
                )
            })
            .collect();
        Ok(Self {
            exe: std::env::current_exe().context("locating the mgrpo binary")?,
            config: config.to_path_buf(),
            run: run.to_path_buf(),
            cookie,
            procs,
            one_process,
        })
    }

    /// Starts node `name` (appending to its log).
    pub fn start(&mut self, name: &str) -> Result<()> {
        let p = self.procs.get_mut(name).context("no such node")?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .with_context(|| format!("opening {}", p.log.display()))?;
        p.starts += 1;
        writeln!(log, "==== mgrpo chaos: start {} of node {name}", p.starts)?;
        let mut cmd = Command::new(&self.exe);
        if !self.one_process {
            cmd.args(["node", "--node", name, "--config"])
                .arg(&self.config)
                .arg("--run")
                .arg(&self.run);
        } else if self.run.join("config.toml").exists() {
            // Started before: continue the run (its resolved config is in it).
            cmd.args(["train", "--resume", "--run"]).arg(&self.run);
        } else {
            cmd.args(["train", "--config"])
                .arg(&self.config)
                .arg("--run")
                .arg(&self.run);
        }
        let child = cmd
            .env("MGRPO_COOKIE", &self.cookie)
            .env_remove("MGRPO_FAULTS")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {name}"))?;
        p.child = Some(child);
        Ok(())
    }

    /// SIGKILLs node `name` (if it runs); true if it was running.
    pub fn kill(&mut self, name: &str) -> bool {
        let Some(p) = self.procs.get_mut(name) else {
            return false;
        };
        match p.child.take() {
            Some(mut c) => {
                // Alive when struck: it had not exited by itself, and the signal was delivered.
                let alive = matches!(c.try_wait(), Ok(None));
                let killed = alive && c.kill().is_ok();
                let _ = c.wait();
                killed
            }
            None => false,
        }
    }

    /// The process id of node `name`, if it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.get(name)?.child.as_ref().map(|c| c.id())
    }

    /// Whether node `name` runs now.
    pub fn running(&self, name: &str) -> bool {
        self.procs.get(name).is_some_and(|p| p.child.is_some())
    }

    /// The nodes that ended by themselves since the last call.
    pub fn reap(&mut self) -> Vec<Exit> {
        let mut out = Vec::new();
        for (name, p) in &mut self.procs {
            if let Some(c) = &mut p.child
                && let Ok(Some(status)) = c.try_wait()
            {
                p.child = None;
                out.push(Exit {
                    node: name.clone(),
                    status,
                });
            }
        }
        out
    }

    /// Whether every node has ended.
    pub fn all_down(&self) -> bool {
        self.procs.values().all(|p| p.child.is_none())
    }

    /// Kills every node still running.
    pub fn kill_all(&mut self) {
        let names: Vec<String> = self.procs.keys().cloned().collect();
        for n in names {
            self.kill(&n);
        }
    }

    /// Node `name`'s log from byte `from` on (what it logged after a moment).
    pub fn log_since(&self, name: &str, from: u64) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let mut out = String::new();
        if let Some(p) = self.procs.get(name)
            && let Ok(mut f) = std::fs::File::open(&p.log)
            && f.seek(SeekFrom::Start(from)).is_ok()
        {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            out = String::from_utf8_lossy(&bytes).into_owned();
        }
        out
    }

    /// The length of node `name`'s log now (to read what it logs after a moment).
    pub fn log_len(&self, name: &str) -> u64 {
        self.procs
            .get(name)
            .and_then(|p| std::fs::metadata(&p.log).ok())
            .map_or(0, |m| m.len())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.kill_all();
    }
}
