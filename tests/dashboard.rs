//! `mgrpo dashboard` and `mgrpo train --dashboard` in a real headless Chromium (Debian's
//! `chromium`, driven by playwright-core from tests/browser — CI installs both): the curves
//! draw data points, the role table shows the live versions, a swap made while the page is
//! open reaches its timeline through the live updates, and the page stays right when the run
//! stops, is resumed and finishes. Screenshots land in the test's target directory
//! (`CARGO_TARGET_TMPDIR/dashboard-*.png`).
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{mgrpo, succeed};
use serde_json::Value;

/// Each step's rollouts held back 120 ms (the first 1 s), so the run is still going while the
/// page is looked at, swapped and stopped.
const PACED: &str = r#"[{"point":{"Request":"planner"},"action":{"Stall":{"ms":1000}},"times":1},
 {"point":{"Request":"planner"},"action":{"Stall":{"ms":120}},"times":100000}]"#;

fn browser_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests need playwright-core: `npm ci --prefix tests/browser` (CI does it)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser tests need Chromium at {chromium}: `apt-get install chromium` (CI does it)"
    );
    dir
}

/// A page probe running in the background: loads `url`, waits for `until`, reports.
struct Probe {
    child: Child,
    shot: PathBuf,
}

impl Probe {
    fn start(url: &str, name: &str, until: &str) -> Self {
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dashboard-{name}.png"));
        let child = Command::new("node")
            .current_dir(browser_dir())
            .args(["probe.mjs", url])
            .arg(&shot)
            .args(["--until", until, "--timeout", "90000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node (Node.js) runs the browser probe");
        Self { child, shot }
    }

    /// Blocks until the page has drawn its first data.
    fn wait_loaded(&mut self) {
        let err = self.child.stderr.take().unwrap();
        let mut lines = BufReader::new(err).lines();
        let mut said = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line == "loaded" {
                // Keep draining so the probe never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return;
            }
            said.push(line);
        }
        panic!("the page never loaded: {}", said.join("\n"));
    }

    fn finish(self) -> Value {
        let out = self.child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "browser probe failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(self.shot.exists());
        println!("{}: {facts}", self.shot.display());
        assert_eq!(facts["outside_requests"], serde_json::json!([]));
        assert_eq!(facts["page_errors"], serde_json::json!([]), "{facts}");
        facts
    }
}

fn probe(url: &str, name: &str, until: &str) -> Value {
    Probe::start(url, name, until).finish()
}

/// A background process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mgrpo dashboard ARGS` on loopback, and the address it printed.
fn dashboard(args: &[&str]) -> (Proc, String) {
    dashboard_on("127.0.0.1:0", args)
}

/// `mgrpo dashboard ARGS --listen LISTEN`, and the address it printed.
fn dashboard_on(listen: &str, args: &[&str]) -> (Proc, String) {
    let mut child = mgrpo()
        .arg("dashboard")
        .args(args)
        .args(["--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("dashboard: ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Proc(child), url)
}

fn role<'a>(facts: &'a Value, name: &str) -> &'a Value {
    facts["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == name)
        .unwrap_or_else(|| panic!("no role {name} in {facts}"))
}

fn tiny(dir: &Path, steps: u64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("examples/tiny.toml")).unwrap();
    assert_eq!(
        text.matches("steps = 3\n").count(),
        1,
        "examples/tiny.toml changed"
    );
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        text.replace("steps = 3\n", &format!("steps = {steps}\n")),
    )
    .unwrap();
    path
}

const HAS_DATA: &str = r#"document.querySelector('#chart-reward').dataset.points > 0
  && document.querySelectorAll('#roles tbody tr[data-role]').length == 2"#;

#[test]
fn the_page_follows_a_live_run_through_a_swap_a_stop_a_resume_and_its_end() {
    browser_dir();
    let dir = tempfile::tempdir().unwrap();
    let config = tiny(dir.path(), 400);
    let run = dir.path().join("run");
    let port = mgrpo_actors::cluster::ports::loopback_ports(1).unwrap()[0];
    let own = format!("http://127.0.0.1:{port}/");
    let log = dir.path().join("train.log");
    let mut train = Proc(
        mgrpo()
            .env("MGRPO_FAULTS", PACED)
            .args(["train", "--no-test", "--config"])
            .arg(&config)
            .arg("--run")
            .arg(&run)
            .args(["--dashboard", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !run.join("control.json").exists() {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(start.elapsed() < Duration::from_secs(120), "{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The training process's own page: live, curves drawn, both roles with a version.
    // (Waits for main's first version too: on a loaded machine the metrics file can show a
    // step before the live status the page polls does.)
    let facts = probe(
        &own,
        "train-own",
        &format!(
            "{HAS_DATA} && +document.querySelector('#roles tbody tr[data-role=main]').dataset.version >= 1"
        ),
    );
    assert_eq!(facts["state"], "live", "{facts}");
    assert!(
        role(&facts, "main")["version"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(facts["canvases"].as_u64().unwrap() >= 4);

    // A separate dashboard on the run directory; the page is open before the swap.
    let (_dash, url) = dashboard(&["--run", run.to_str().unwrap()]);
    let mut open = Probe::start(
        &url,
        "live-swap",
        r#"[...document.querySelectorAll('#timeline li')].some(l => l.dataset.kind == 'swap')
           && document.querySelector('#roles tr[data-role=sub]').dataset.source == 'expert'"#,
    );
    open.wait_loaded();
    let outcome = succeed(
        mgrpo()
            .args(["swap", "--run"])
            .arg(&run)
            .args(["--role", "sub", "--to", "expert", "--json", "--wait", "120"]),
    );
    let outcome: Value = serde_json::from_str(&outcome).unwrap();
    let facts = open.finish();
    assert_ne!(
        facts["version"], facts["first_version"],
        "no live update: {facts}"
    );
    assert_eq!(facts["state"], "live");
    let sub = role(&facts, "sub");
    assert_eq!(
        sub["generation"],
        outcome["generation"].to_string(),
        "{facts} vs {outcome}"
    );
    assert_eq!(facts["nodes"][0]["up"], true, "{facts}");

    // Ctrl-C: the run stops after its step; the page says so and keeps the swap (from the
    // store now).
    succeed(Command::new("kill").args(["-INT", &train.0.id().to_string()]));
    let status = train.0.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let facts = probe(
        &url,
        "stopped",
        r#"document.getElementById('state').textContent == 'stopped'"#,
    );
    assert!(
        facts["timeline"]
            .as_array()
            .unwrap()
            .contains(&"swap".into()),
        "{facts}"
    );
    assert_eq!(role(&facts, "sub")["source"], "expert", "{facts}");
    let done = common::metrics(&run).len() as u64;
    assert!(done < 400);

    // Resumed to three more steps, it runs live again and finishes; the page follows.
    succeed(
        mgrpo()
            .args(["train", "--resume", "--no-test", "--run"])
            .arg(&run)
            .args(["--steps", &(done + 3).to_string()]),
    );
    let facts = probe(
        &url,
        "finished",
        &format!(
            // The inspected group loads after the state: wait for its rollouts too.
            r#"document.getElementById('state').textContent == 'finished'
               && document.querySelector('#roles tr[data-role=main]').dataset.version == '{}'
               && document.querySelectorAll('#group-rollouts tr[data-rollout]').length > 0"#,
            done + 3
        ),
    );
    let timeline = facts["timeline"].as_array().unwrap();
    assert!(timeline.contains(&"swap".into()), "{facts}");
    assert!(
        timeline.contains(&"resume".into()),
        "the store's resume event: {facts}"
    );
    assert_eq!(
        role(&facts, "main")["version"],
        (done + 3).to_string(),
        "{facts}"
    );
    assert!(facts["group_rollouts"].as_u64().unwrap() > 0, "{facts}");
    // The inspected group's question, looked up in the run's task: its text and gold answer.
    let question = facts["question"].as_str().unwrap();
    assert!(question.contains(" — gold: "), "{facts}");
}

/// The tiny world on three `mgrpo node` processes (examples/cluster-3node.toml) on `ports`.
fn tiny_cluster(dir: &Path, ports: &[u16], steps: u64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tiny = std::fs::read_to_string(tiny(dir, steps)).unwrap();
    let mut cluster = std::fs::read_to_string(root.join("examples/cluster-3node.toml")).unwrap();
    for (i, p) in ports.iter().enumerate() {
        let from = format!("127.0.0.1:710{}", i + 1);
        assert!(
            cluster.contains(&from),
            "examples/cluster-3node.toml changed"
        );
        cluster = cluster.replace(&from, &format!("127.0.0.1:{p}"));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, format!("{tiny}\n{cluster}")).unwrap();
    path
}

fn node_up(name: &str, up: bool) -> String {
    format!("document.querySelector('#nodes tr[data-node={name}]')?.dataset.up == '{up}'")
}

#[test]
fn a_cluster_page_shows_every_node_and_a_killed_one_down_then_up() {
    browser_dir();
    let dir = tempfile::tempdir().unwrap();
    let ports = common::free_ports();
    let config = tiny_cluster(dir.path(), &ports, 400);
    let run = dir.path().join("run");
    let hub_port = mgrpo_actors::cluster::ports::loopback_ports(1).unwrap()[0];
    // The hub serves its own page; its rollouts paced so the run outlives the test, and its
    // first commit fails once (a step the coordinator recovers from and retries).
    let log = dir.path().join("hub.log");
    let faults = PACED.replace(
        "]",
        r#", {"point":"StoreCommit","action":"Fail","times":1}]"#,
    );
    let _hub = Proc(
        mgrpo()
            .env("MGRPO_FAULTS", faults)
            .args(["node", "--node", "hub", "--config"])
            .arg(&config)
            .arg("--run")
            .arg(&run)
            .args(["--dashboard", &format!("127.0.0.1:{hub_port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut main = common::NodeProc::start(&config, "main", &run, dir.path(), "");
    let mut sub = common::NodeProc::start(&config, "sub", &run, dir.path(), "");
    let all_up = format!(
        "{} && {} && {} && {HAS_DATA}",
        node_up("hub", true),
        node_up("main", true),
        node_up("sub", true)
    );
    let facts = probe(
        &format!("http://127.0.0.1:{hub_port}/"),
        "cluster-hub",
        &all_up,
    );
    assert_eq!(facts["state"], "live", "{facts}");
    assert_eq!(facts["nodes"].as_array().unwrap().len(), 3, "{facts}");

    // Another host's view: `mgrpo dashboard --config`, a control client that joins again.
    let (_dash, url) = dashboard(&[
        "--config",
        config.to_str().unwrap(),
        "--run",
        run.to_str().unwrap(),
    ]);
    let mut open = Probe::start(
        &url,
        "cluster-node-back",
        &format!(
            "{} && ['node_down', 'node_up'].every(k => [...document.querySelectorAll('#timeline li')].some(l => l.dataset.kind == k))",
            node_up("sub", true)
        ),
    );
    open.wait_loaded();
    let facts_before = probe(&url, "cluster-all-up", &all_up);
    assert_eq!(facts_before["nodes"].as_array().unwrap().len(), 3);
    let killed_at = common::metrics(&run).len();
    sub.sigkill();
    println!("SIGKILL of node sub after {killed_at} committed steps");
    let down = probe(&url, "cluster-node-down", &node_up("sub", false));
    assert!(
        down["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node"] == "sub" && n["up"] == false)
    );
    let _sub2 = common::NodeProc::start(&config, "sub", &run, dir.path(), "-restarted");
    let back = open.finish();
    assert!(
        back["timeline"]
            .as_array()
            .unwrap()
            .contains(&"node_down".into()),
        "{back}"
    );
    // The step whose commit failed was retried: the store's recovery event, on the timeline.
    let recovered = probe(
        &url,
        "cluster-recovered",
        "[...document.querySelectorAll('#timeline li')].some(l => l.dataset.kind == 'recovered')",
    );
    let nodes = recovered["nodes"].as_array().unwrap();
    assert!(nodes.iter().all(|n| n["up"] == true), "{recovered}");
    assert!(main.running());
}

#[test]
fn a_ten_thousand_step_run_loads_downsampled() {
    browser_dir();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("long");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("config.toml"),
        "[algo]\nvariant = \"mgrpo\"\n[run]\nseed = 1\n[train]\nsteps = 10000\n",
    )
    .unwrap();
    let mut metrics = String::new();
    for s in 0..10_000u64 {
        let r = (s % 7) as f64 / 7.0;
        metrics += &format!(
            "{{\"step\":{s},\"reward\":{r},\"accuracy\":{r},\"main_version\":{},\"main_loss\":0.1,\"step_time_s\":0.7,\"rollout_time_s\":0.4}}\n",
            s + 1
        );
    }
    std::fs::write(run.join("metrics.jsonl"), metrics).unwrap();
    let (_dash, url) = dashboard(&["--run", run.to_str().unwrap()]);
    let facts = probe(
        &url,
        "ten-thousand-steps",
        HAS_DATA.split(" &&").next().unwrap(),
    );
    // 400 points a series (smoothed and raw), whatever the run's length.
    assert_eq!(facts["points"]["chart-reward"], 800, "{facts}");
    assert_eq!(facts["state"], "finished");
    assert_eq!(role(&facts, "main")["version"], "10000");
    println!("a 10,000-step run's page loaded in {} ms", facts["load_ms"]);
}

/// `GET path` on `addr`; the status line.
fn http_status(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_dashboard_others_can_reach_needs_its_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.toml"), "[train]\nsteps = 1\n").unwrap();
    let out = mgrpo()
        .args(["dashboard", "--listen", "0.0.0.0:0", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not loopback: it needs a cookie"),
        "{err}"
    );

    let (_proc, url) = dashboard_on(
        "0.0.0.0:0",
        &["--cookie", "s3cret", "--run", run.to_str().unwrap()],
    );
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    let addr = format!("127.0.0.1:{port}");
    assert!(http_status(&addr, "/").contains("401"));
    assert!(http_status(&addr, "/api/overview?cookie=wrong!").contains("401"));
    assert!(http_status(&addr, "/events").contains("401"));
    assert!(http_status(&addr, "/?cookie=s3cret").contains("200"));
    assert!(http_status(&addr, "/api/overview?cookie=s3cret").contains("200"));
}
