//! The cluster with real `mgrpo node` processes on loopback (examples/cluster-3node.toml with
//! free ports and the tiny model config): placement invariance against one process, the
//! cross-node bytes, a node started before its peers, a peer killed with SIGKILL and
//! restarted, a wrong cookie, and garbage on a node's port.
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{
    COOKIE, NodeProc, assert_each_step_once, free_ports, listen_addr, metrics, mgrpo,
    store_records, wait_listening, write_config,
};

const STEPS: u64 = 12;

/// Cluster tests share the machine's two cores: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A warm-started single-process run of the config: the reference.
struct Reference {
    _dir: tempfile::TempDir,
    run: PathBuf,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &free_ports(), STEPS, 4);
        let run = dir.path().join("ref");
        let out = mgrpo()
            .args(["train", "--config"])
            .arg(&config)
            .arg("--run")
            .arg(&run)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Reference { _dir: dir, run }
    })
}

/// A cluster run directory with the reference's warm start copied in (as if each host had
/// warmed its own role: the warm start is deterministic per role).
fn cluster_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &free_ports(), STEPS, 4);
    let run = dir.path().join("run");
    for role in ["main", "sub"] {
        let from = r.run.join("checkpoints").join(role).join("0");
        let to = run.join("checkpoints").join(role).join("0");
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&from).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    (dir, config, run)
}

#[test]
fn three_processes_train_exactly_like_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = reference();
    let (dir, config, run) = cluster_dir();
    // The hub starts first and waits for its peers.
    let mut hub = NodeProc::start(&config, "hub", &run, dir.path(), "");
    hub.wait_log("waiting for roles", Duration::from_secs(120));
    assert!(
        hub.running(),
        "the hub must wait for its peers:\n{}",
        hub.log()
    );
    assert!(
        metrics(&run).is_empty(),
        "no step before every role is present"
    );
    let mut main = NodeProc::start(&config, "main", &run, dir.path(), "");
    let mut sub = NodeProc::start(&config, "sub", &run, dir.path(), "");
    hub.wait_success(Duration::from_secs(240));
    main.wait_success(Duration::from_secs(20));
    sub.wait_success(Duration::from_secs(20));

    let (ref_groups, ref_steps) = store_records(&r.run);
    let (groups, steps) = store_records(&run);
    assert_eq!(ref_groups.len() as u64, STEPS * 2);
    assert_eq!(steps, ref_steps, "role versions per step");
    assert_eq!(
        groups, ref_groups,
        "rewards, alignment and advantages, bit for bit"
    );
    assert!(
        ref_groups.iter().any(|g| g.contains("\"calls\":[{")),
        "the reference makes sub-agent calls"
    );

    let m = metrics(&run);
    assert_eq!(m.len() as u64, STEPS);
    let cross: Vec<f64> = m
        .iter()
        .map(|l| l["cross_node_bytes"].as_f64().unwrap())
        .collect();
    let traj: Vec<f64> = m
        .iter()
        .map(|l| l["trajectory_bytes"].as_f64().unwrap())
        .collect();
    assert!(
        cross.iter().all(|b| *b > 0.0),
        "links carry the step: {cross:?}"
    );
    assert!(metrics(&r.run).iter().all(|l| l["cross_node_bytes"] == 0.0));
    let (c, t) = (cross.iter().sum::<f64>(), traj.iter().sum::<f64>());
    println!(
        "cross-node bytes per step {:.0}, trajectory bytes per step {:.0} (ratio {:.3})",
        c / STEPS as f64,
        t / STEPS as f64,
        c / t
    );
}

#[test]
fn a_peer_killed_with_sigkill_mid_checkpoint_rejoins_and_no_step_is_lost_or_doubled() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = reference();
    let (dir, config, run) = cluster_dir();
    let mut hub = NodeProc::start(&config, "hub", &run, dir.path(), "");
    let mut main = NodeProc::start(&config, "main", &run, dir.path(), "");
    // The sub learner's first save stalls half-way (weights written, optimiser state and
    // progress not yet): the kill lands inside a checkpoint write.
    let mut sub = NodeProc::start_with_faults(
        &config,
        "sub",
        &run,
        dir.path(),
        "",
        Some(r#"[{"point":"CheckpointWrite","action":{"Stall":{"ms":60000}},"times":1}]"#),
    );
    sub.wait_log("fault strikes", Duration::from_secs(180));
    sub.sigkill();
    let killed_at = metrics(&run).len();
    println!(
        "seed 3: SIGKILL of node sub inside its first checkpoint save, after {killed_at} committed steps"
    );
    assert!(killed_at < STEPS as usize, "the kill must land mid-run");
    let ck = run.join("checkpoints/sub");
    let names: Vec<String> = std::fs::read_dir(&ck)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with(".staging-")) && !names.contains(&"1".to_string()),
        "the cut-short save is a staging directory, never a checkpoint: {names:?}"
    );
    hub.wait_log("lost peer", Duration::from_secs(30));
    let mut sub2 = NodeProc::start(&config, "sub", &run, dir.path(), "-restarted");
    hub.wait_success(Duration::from_secs(300));
    main.wait_success(Duration::from_secs(20));
    sub2.wait_success(Duration::from_secs(20));
    assert!(
        hub.log().contains("lost peer") && hub.log().contains("peer=sub"),
        "{}",
        hub.log()
    );

    assert_each_step_once(&run, STEPS);
    let (ref_groups, ref_steps) = store_records(&r.run);
    let (groups, steps) = store_records(&run);
    assert_eq!(steps, ref_steps);
    assert_eq!(
        groups, ref_groups,
        "recovery rolls back to the last committed step, so the run equals an uninterrupted one"
    );
}

#[test]
fn wrong_cookie_is_refused_and_garbage_does_not_take_a_node_down() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &free_ports(), STEPS, 4);
    let hub_addr = listen_addr(&config, 0);
    let mut hub = NodeProc::start(&config, "hub", &dir.path().join("run"), dir.path(), "");
    let status = |cookie: &str| status_json(&config, cookie);
    wait_listening(&hub_addr, &mut hub);

    let (v, stderr) = status("not-the-cookie");
    assert_eq!(v["nodes"][0]["up"], false, "{v}");
    assert!(
        stderr.contains("authentication failed"),
        "client side: {stderr}"
    );
    assert!(
        hub.log().contains("authentication failed"),
        "hub side: {}",
        hub.log()
    );

    // Garbage, then a frame header announcing 1 GiB, on the node's port.
    let mut s = std::net::TcpStream::connect(&hub_addr).unwrap();
    let garbage: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&garbage);
    drop(s);
    let mut s = std::net::TcpStream::connect(&hub_addr).unwrap();
    let _ = s.write_all(&(1u64 << 30).to_be_bytes());
    let _ = s.write_all(&[0u8; 1024]);
    drop(s);

    // The node still answers (the status client connects after the garbage was sent).
    let (v, _) = status(COOKIE);
    assert!(hub.running(), "garbage took the node down:\n{}", hub.log());
    let hub_info = &v["nodes"][0];
    assert_eq!(hub_info["up"], true, "{v}");
    assert_eq!(hub_info["info"]["roles"]["coordinator"], 1, "{v}");
    assert_eq!(v["nodes"][1]["up"], false, "main was never started: {v}");
}

/// A CA and one node certificate for `mgrpo.test`, made with openssl.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the TLS test (.ci/run installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=mgrpo-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
        "-subj",
        "/CN=mgrpo.test",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:mgrpo.test\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "node.pem",
        "-extfile",
        "ext.cnf",
    ]);
}

/// `mgrpo status --json` on a cluster whose other nodes are not started: the one-line report
/// and stderr. It exits 0 exactly when every placed node answered, 1 naming the ones down.
fn status_json(config: &Path, cookie: &str) -> (serde_json::Value, String) {
    let out = mgrpo()
        .env("MGRPO_COOKIE", cookie)
        .args(["status", "--json", "--timeout", "3", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        stdout.lines().count(),
        1,
        "--json prints one line: {stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let down: Vec<&str> = nodes
        .iter()
        .filter(|n| n["up"] != true)
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(out.status.success(), down.is_empty(), "{v}\n{stderr}");
    if !down.is_empty() {
        assert!(
            out.status.code() == Some(1) && stderr.contains(&down.join(", ")),
            "exit 1 naming the nodes down ({down:?}): {stderr}"
        );
    }
    (v, stderr)
}

#[test]
fn tls_links_work_a_silent_client_blocks_no_one_and_a_plain_client_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let plain = write_config(dir.path(), &free_ports(), STEPS, 4);
    let text = std::fs::read_to_string(&plain).unwrap();
    let d = dir.path().display();
    let tls = dir.path().join("tls.toml");
    std::fs::write(
        &tls,
        format!(
            "{text}\n[cluster.tls]\ncert = \"{d}/node.pem\"\nkey = \"{d}/node.key\"\nca = \"{d}/ca.pem\"\nserver_name = \"mgrpo.test\"\n"
        ),
    )
    .unwrap();
    let mut hub = NodeProc::start(&tls, "hub", &dir.path().join("run"), dir.path(), "");
    // A client that opens a connection and never starts its TLS handshake must not block the
    // others (ractor_cluster's own listener handshakes inline; ours does not).
    let hub_addr = listen_addr(&tls, 0);
    wait_listening(&hub_addr, &mut hub);
    let _silent = std::net::TcpStream::connect(&hub_addr).unwrap();
    let status = |config: &Path| status_json(config, COOKIE).0;
    let start = Instant::now();
    loop {
        let v = status(&tls);
        if v["nodes"][0]["up"] == true {
            assert_eq!(v["nodes"][0]["info"]["roles"]["store"], 1, "{v}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{v}\n{}",
            hub.log()
        );
    }
    let v = status(&plain);
    assert_eq!(
        v["nodes"][0]["up"], false,
        "a client without TLS must not join: {v}"
    );
    assert!(hub.running());
    assert!(
        hub.log().contains("TLS handshake"),
        "the hub logs the refusal:\n{}",
        hub.log()
    );
}

#[test]
fn planners_away_from_their_learner_get_each_version_in_chunks() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = reference();
    let (dir, config, run) = cluster_dir();
    // Planners on the hub, their learner on `main`; a frame limit under the tiny model's
    // ~0.5 MB of weights, so every new version crosses in several chunks.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("max_frame_bytes = 16777216", "max_frame_bytes = 262144")
        .replace(
            "roles = { coordinator = 1, store = 1, judge = 1 }",
            "roles = { coordinator = 1, store = 1, judge = 1, planner = 1 }",
        )
        .replace(
            "roles = { planner = 1, learner-main = 1 }",
            "roles = { learner-main = 1 }",
        );
    assert!(text.contains("planner = 1 }") && text.contains("262144"));
    std::fs::write(&config, text).unwrap();
    let mut nodes: Vec<NodeProc> = ["hub", "main", "sub"]
        .iter()
        .map(|n| NodeProc::start(&config, n, &run, dir.path(), ""))
        .collect();
    for n in &mut nodes {
        n.wait_success(Duration::from_secs(240));
    }
    let main_log = nodes[1].log();
    let sent = main_log
        .lines()
        .find(|l| l.contains("PolicyChunk"))
        .unwrap_or_else(|| panic!("main sent no policy chunks:\n{main_log}"));
    println!("main learner → hub planners: {sent}");
    let (ref_groups, ref_steps) = store_records(&r.run);
    let (groups, steps) = store_records(&run);
    assert_eq!(steps, ref_steps);
    assert_eq!(
        groups, ref_groups,
        "the planners used exactly the learner's weights"
    );
}
