//! Helpers shared by the tests that run the real binary: `mgrpo` commands, free ports, the
//! tiny cluster config, store and metrics readers, and `mgrpo node` processes.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "cluster-test-cookie";

/// The binary, with the test cookie in its environment.
pub fn mgrpo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mgrpo"));
    c.env("MGRPO_COOKIE", COOKIE);
    c
}

/// Three loopback ports for a cluster's nodes: outside the OS's ephemeral range, so no
/// outgoing connection takes one before its node binds it.
pub fn free_ports() -> Vec<u16> {
    mgrpo_actors::cluster::ports::loopback_ports(3).unwrap()
}

/// examples/tiny.toml with a warm start long enough to learn the protocol (so rollouts make
/// calls, rewards differ and some answers are right): [`delegating_warm_start`].
pub fn delegating_tiny() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    delegating_warm_start(&std::fs::read_to_string(root.join("examples/tiny.toml")).unwrap())
}

/// `config` (examples/tiny.toml's `[warmup]` in it) with that warm start made long enough to
/// learn the protocol, in the world only (`copies = 0`), as 100 demonstrations spread over
/// nine worlds' names teach a tiny model to answer none.
pub fn delegating_warm_start(config: &str) -> String {
    let short = "[warmup]\nsteps = 10\nbatch_size = 8\nepisodes = 60";
    assert_eq!(
        config.matches(short).count(),
        1,
        "examples/tiny.toml's warm start changed"
    );
    config.replace(
        short,
        "[warmup]\nsteps = 120\nbatch_size = 16\nepisodes = 100\nlr = 3e-3\ncopies = 0",
    )
}

/// [`delegating_tiny`], then examples/cluster-3node.toml on the given ports.
pub fn write_config(dir: &Path, ports: &[u16], steps: u64, eval_every: u64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tiny = delegating_tiny()
        .replace("steps = 3\n", &format!("steps = {steps}\n"))
        .replace("eval_every = 2", &format!("eval_every = {eval_every}"));
    assert!(tiny.contains("lr = 3e-3") && tiny.contains(&format!("steps = {steps}")));
    let mut cluster = std::fs::read_to_string(root.join("examples/cluster-3node.toml")).unwrap();
    for (i, p) in ports.iter().enumerate() {
        cluster = cluster.replace(
            &format!("127.0.0.1:710{}", i + 1),
            &format!("127.0.0.1:{p}"),
        );
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, format!("{tiny}\n{cluster}")).unwrap();
    path
}

/// Runs `cmd`, which must succeed (its stderr otherwise); its stdout.
pub fn succeed(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The run's group records (rewards, alignment, advantages) and the role versions of each
/// step, as the store dump prints them.
pub fn store_records(run: &Path) -> (Vec<String>, Vec<serde_json::Value>) {
    let out = succeed(mgrpo().args(["store", "dump", "--json", "--run"]).arg(run));
    let mut groups = Vec::new();
    let mut steps = Vec::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("group") => groups.push(line.to_string()),
            Some("step") => steps.push(serde_json::json!([v["step"], v["role_versions"]])),
            _ => {}
        }
    }
    (groups, steps)
}

/// The metrics lines so far (the hub may be appending: a partial last line is skipped).
pub fn metrics(run: &Path) -> Vec<serde_json::Value> {
    let path = run.join("metrics.jsonl");
    if !path.exists() {
        return Vec::new();
    }
    mgrpo_actors::run_dir::read_json_lines(&path).unwrap()
}

/// `metrics.jsonl` holds steps `0..steps`, each once, in order (nothing lost or doubled).
pub fn assert_each_step_once(run: &Path, steps: u64) {
    let got: Vec<u64> = metrics(run)
        .iter()
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        (0..steps).collect::<Vec<_>>(),
        "each step once, in order"
    );
}

/// Waits until `addr` accepts TCP connections (the node listens).
pub fn wait_listening(addr: &str, node: &mut NodeProc) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(node.running(), "node {} died:\n{}", node.name, node.log());
        assert!(start.elapsed() < Duration::from_secs(120), "{}", node.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `listen` address of node `i` in a written config.
pub fn listen_addr(config: &Path, i: usize) -> String {
    std::fs::read_to_string(config)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("listen = "))
        .nth(i)
        .map(|l| {
            l.trim_start_matches("listen = ")
                .trim_matches('"')
                .to_string()
        })
        .unwrap()
}

/// One `mgrpo node` process; killed if still running when dropped.
pub struct NodeProc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl NodeProc {
    pub fn start(config: &Path, name: &str, run: &Path, dir: &Path, tag: &str) -> Self {
        Self::start_with_faults(config, name, run, dir, tag, None)
    }

    /// Starts the node with `faults` (JSON, as `MGRPO_FAULTS` takes them) armed.
    pub fn start_with_faults(
        config: &Path,
        name: &str,
        run: &Path,
        dir: &Path,
        tag: &str,
        faults: Option<&str>,
    ) -> Self {
        let log = dir.join(format!("{name}{tag}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let mut cmd = mgrpo();
        if let Some(faults) = faults {
            cmd.env("MGRPO_FAULTS", faults);
        }
        let child = cmd
            .args(["node", "--node", name, "--config"])
            .arg(config)
            .arg("--run")
            .arg(run)
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        Self {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the node's log contains `needle`.
    pub fn wait_log(&mut self, needle: &str, within: Duration) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < within,
                "node {} never logged {needle:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn wait_success(&mut self, within: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "node {} failed:\n{}",
                    self.name,
                    self.log()
                );
                return;
            }
            assert!(
                start.elapsed() < within,
                "node {} still running after {within:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sigkill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `score` of each `{"score": …}` line a scorer (a task's command, `mgrpo world --judge`)
/// wrote.
pub fn scores(stdout: &[u8]) -> Vec<f64> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["score"]
                .as_f64()
                .unwrap()
        })
        .collect()
}
