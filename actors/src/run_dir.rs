//! The layout of a run directory, in one place:
//!
//! ```text
//! runs/<name>/
//!   config.toml                     the resolved config the run uses
//!   store/                          sled store (steps, groups, role versions, checkpoints)
//!   checkpoints/<role>/<version>/   burn record + model config + tokenizer.json
//!   metrics.jsonl                   one JSON object per training step
//!   eval.jsonl                      every dev evaluation
//!   best.json                       the dev-selected version
//!   warmup.jsonl                    the warm start's loss curve
//! ```
//!
//! JSON-lines files are appended while others read them (`status`, `plot`, tests, dashboards):
//! each line is written with one `write`, and [`read_json_lines`] ignores a trailing line that
//! is not finished yet.
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file every complete checkpoint directory holds (its training progress, written last).
pub const COMPLETE_MARKER: &str = "train_state.json";

/// Paths of one run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// A run directory at `root` (not created until [`RunDir::create`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// A fresh run directory under `parent`, named by the local time and a counter so that two
    /// runs started in the same second do not collide.
    pub fn fresh_under(parent: &Path, prefix: &str) -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut n = 0;
        loop {
            let candidate = parent.join(format!("{prefix}-{secs}-{n}"));
            if !candidate.exists() {
                return Self::new(candidate);
            }
            n += 1;
        }
    }

    /// Creates the directory tree.
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.root.join("checkpoints"))
    }

    /// The run directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `store/`.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }

    /// `checkpoints/<role>/<version>/`.
    pub fn checkpoint_path(&self, role: &str, version: u64) -> PathBuf {
        self.root
            .join("checkpoints")
            .join(role)
            .join(version.to_string())
    }

    /// Copies run `from`'s warm start (every role's version 0) into this run directory, so
    /// that a run of the same config here skips the identical warm start (benchmarks,
    /// fault-plan runs, tests).
    pub fn adopt_warm_start(&self, from: &RunDir) -> std::io::Result<()> {
        let roles = from.root.join("checkpoints");
        for role in std::fs::read_dir(&roles)? {
            let role = role?.file_name();
            let (src, dst) = (
                from.checkpoint_path(&role.to_string_lossy(), 0),
                self.checkpoint_path(&role.to_string_lossy(), 0),
            );
            if !src.is_dir() {
                continue;
            }
            std::fs::create_dir_all(&dst)?;
            for f in std::fs::read_dir(&src)? {
                let f = f?;
                std::fs::copy(f.path(), dst.join(f.file_name()))?;
            }
        }
        Ok(())
    }

    /// The same, relative to the run directory (what the store records).
    pub fn checkpoint_rel(role: &str, version: u64) -> String {
        format!("checkpoints/{role}/{version}")
    }

    /// The highest saved version of a role, by scanning `checkpoints/<role>/`.
    pub fn latest_checkpoint(&self, role: &str) -> Option<u64> {
        self.checkpoint_versions(role).last().copied()
    }

    /// Every saved version of a role, ascending: directories named by a number that hold
    /// [`COMPLETE_MARKER`] (saves are staged and renamed into place, so a directory a kill cut
    /// short is never listed). A directory a kill left moved aside is put back first.
    pub fn checkpoint_versions(&self, role: &str) -> Vec<u64> {
        let dir = self.root.join("checkpoints").join(role);
        if let Err(e) = crate::staged_dir::recover_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not put back a checkpoint");
        }
        let mut v: Vec<u64> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| {
                    let e = e.ok()?;
                    let v = e.file_name().to_str()?.parse::<u64>().ok()?;
                    e.path().join(COMPLETE_MARKER).is_file().then_some(v)
                })
                .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `eval.jsonl`: every dev-split evaluation, including the one before the first step.
    pub fn eval_path(&self) -> PathBuf {
        self.root.join("eval.jsonl")
    }

    /// `best.json`: the policy version with the best dev accuracy so far ([`Best`]).
    pub fn best_path(&self) -> PathBuf {
        self.root.join("best.json")
    }

    /// The recorded best version, if the run has one.
    pub fn best(&self) -> Option<Best> {
        let text = std::fs::read_to_string(self.best_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Records `best` (write to a temporary file, then rename: never half a file).
    pub fn set_best(&self, best: &Best) -> std::io::Result<()> {
        let tmp = self.root.join("best.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(best)?)?;
        std::fs::rename(tmp, self.best_path())
    }

    /// `warmup.jsonl`.
    pub fn warmup_path(&self) -> PathBuf {
        self.root.join("warmup.jsonl")
    }
}

/// Appends JSON lines to a file, flushing each line (a crash loses at most the line in flight).
#[derive(Debug)]
pub struct JsonLines {
    file: std::fs::File,
}

impl JsonLines {
    /// Opens `path` for appending, creating it.
    pub fn append(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self { file })
    }

    /// Writes one value as one line, in one `write` (an `O_APPEND` write of a line lands
    /// whole: a concurrent reader sees the line or nothing of it, never a torn middle).
    pub fn write(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

/// Why a JSON-lines file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonLinesError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A complete line is not JSON.
    #[error("{path} line {line}: not JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
}

/// Reads a JSON-lines file that may be growing: every complete line must be JSON; a last line
/// without its newline (a writer mid-append) is skipped if it does not parse yet. Blank lines
/// are skipped.
pub fn read_json_lines(path: &Path) -> Result<Vec<serde_json::Value>, JsonLinesError> {
    let text = std::fs::read_to_string(path).map_err(|source| JsonLinesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_json_lines(path, &text)
}

fn parse_json_lines(path: &Path, text: &str) -> Result<Vec<serde_json::Value>, JsonLinesError> {
    let finished = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() && !finished => {}
            Err(source) => {
                return Err(JsonLinesError::Json {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                });
            }
        }
    }
    Ok(out)
}

/// The checkpoint with the best dev accuracy: RL on small models peaks and then drifts, so the
/// run keeps the dev-selected version (`--policy run:DIR@best`) next to the latest.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Best {
    /// Steps trained when it was evaluated.
    pub step: u64,
    /// The policy version (checkpoint directory) of every trained role at that step.
    pub version: u64,
    /// Its dev accuracy.
    pub dev_accuracy: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_partial_line_is_skipped_but_a_bad_complete_line_is_an_error() {
        let p = Path::new("m.jsonl");
        let v = parse_json_lines(p, "{\"step\":0}\n{\"step\":1}\n{\"st").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(parse_json_lines(p, "{\"step\":0}\n\n").unwrap().len(), 1);
        let e = parse_json_lines(p, "{\"step\":0}\n{\"st\n{\"step\":2}\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(
            parse_json_lines(p, "{\"st\n").is_err(),
            "finished but broken"
        );
    }

    #[test]
    fn lines_written_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let mut w = JsonLines::append(&path).unwrap();
        for i in 0..3 {
            w.write(&serde_json::json!({ "step": i })).unwrap();
        }
        let v = read_json_lines(&path).unwrap();
        assert_eq!(
            v.iter()
                .map(|l| l["step"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }
}
