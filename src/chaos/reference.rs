//! The fault-free reference of a plan's config: the same config and seed trained in one
//! process (three processes give the same store as one, bit for bit, as tests/cluster.rs
//! checks), once per config and reused by every run and every later `mgrpo chaos` with it.
//! Its warm start is copied into each chaos run, as if each host had warmed its own role.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mgrpo_actors::Config;

/// The marker a finished reference leaves, with how long it took.
const DONE: &str = "reference.json";

/// FNV-1a of the config text: the cache key (stable across builds, unlike `DefaultHasher`).
fn key(text: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// The reference run of `config` under `root` (trained now if not there yet) and how long
/// training it took.
pub fn reference(config: &Config, root: &Path) -> Result<(PathBuf, Duration)> {
    let mut one = config.clone();
    one.cluster.nodes.clear();
    one.cluster.cookie = None;
    one.cluster.cookie_file = None;
    one.cluster.cookie_env = None;
    let text = one.to_toml();
    let dir = root.join(format!("reference-{}", key(&text)));
    let run = dir.join("run");
    if let Ok(done) = std::fs::read(dir.join(DONE))
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&done)
    {
        return Ok((
            run,
            Duration::from_secs_f64(v["seconds"].as_f64().unwrap_or(60.0)),
        ));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("config.toml");
    std::fs::write(&path, &text)?;
    let t = Instant::now();
    let out = Command::new(std::env::current_exe()?)
        .args(["train", "--config"])
        .arg(&path)
        .arg("--run")
        .arg(&run)
        .env_remove("MGRPO_FAULTS")
        .stdin(Stdio::null())
        .output()
        .context("starting the reference run")?;
    if !out.status.success() {
        bail!(
            "the fault-free reference run failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let seconds = t.elapsed().as_secs_f64();
    std::fs::write(
        dir.join(DONE),
        serde_json::json!({ "seconds": seconds }).to_string(),
    )?;
    Ok((run, Duration::from_secs_f64(seconds)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_key_is_stable() {
        assert_eq!(super::key(""), "cbf29ce484222325");
        assert_ne!(super::key("a"), super::key("b"));
    }
}
