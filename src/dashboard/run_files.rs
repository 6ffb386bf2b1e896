//! A run directory as the dashboard reads it with no process running: `metrics.jsonl` and
//! `eval.jsonl` tailed from where the last read stopped (a live run appends; a line still being
//! written waits for its newline; a file that shrank is read again), `test.json`, `best.json`,
//! the run's `config.toml`, and — when no process holds it — the sled store's swaps, events,
//! role versions and groups.
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use mgrpo_store::{Event, GroupRecord, GroupToolCalls, RoleVersion, Store, SwapRecord};
use serde::Serialize;
use serde_json::Value;

/// One JSON-lines file, read incrementally.
#[derive(Debug, Default)]
struct Tail {
    offset: u64,
    lines: Vec<Value>,
    /// How many times the file was read again from the start (it shrank or vanished).
    resets: u64,
}

impl Tail {
    fn reset(&mut self) {
        let resets = self.resets + 1;
        *self = Self {
            resets,
            ..Self::default()
        };
    }

    /// Reads the complete lines appended since the last call; true when something changed.
    fn refresh(&mut self, path: &Path) -> bool {
        let Ok(mut f) = std::fs::File::open(path) else {
            let changed = self.offset > 0;
            if changed {
                self.reset();
            }
            return changed;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut changed = false;
        if len < self.offset {
            self.reset();
            changed = true;
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return changed;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return changed;
        }
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in buf[..complete].split(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<Value>(line) {
                self.lines.push(v);
                changed = true;
            }
        }
        self.offset += complete as u64;
        changed
    }
}

/// What the store says about a finished run (read once: nothing changes it while no process
/// runs; read again when the run comes back).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreFacts {
    /// Steps committed.
    pub committed_steps: u64,
    /// Each role's last published version.
    pub roles: Vec<RoleVersion>,
    /// Every swap.
    pub swaps: Vec<SwapRecord>,
    /// Restarts, resumes and the like.
    pub events: Vec<Event>,
}

/// Each step's metrics once, by step, and the same as columns (what the curves are drawn
/// from): kept as lines arrive, so a request on a 10,000-step run only downsamples.
#[derive(Debug, Default)]
pub struct Table {
    /// The rows by step (a resumed run's rewritten lines count once, the last one wins).
    pub rows: BTreeMap<u64, serde_json::Map<String, Value>>,
    /// The steps in order.
    pub x: Vec<f64>,
    /// Each numeric key's values, aligned with `x` (`None` where a row lacks it).
    pub columns: BTreeMap<String, Vec<Option<f64>>>,
}

impl Table {
    fn add(&mut self, step: u64, row: serde_json::Map<String, Value>) {
        let appends = self.rows.keys().next_back().is_none_or(|last| step > *last);
        self.rows.insert(step, row);
        if appends {
            let row = &self.rows[&step];
            let n = self.x.len();
            self.x.push(step as f64);
            for col in self.columns.values_mut() {
                col.push(None);
            }
            for (k, v) in row {
                if k == "step" {
                    continue;
                }
                if let Some(v) = v.as_f64() {
                    self.columns
                        .entry(k.clone())
                        .or_insert_with(|| vec![None; n + 1])[n] = Some(v);
                }
            }
        } else {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        *self = Self::default();
        for (s, r) in rows {
            self.add(s, r);
        }
    }
}

/// The run's variant, seed and planned steps, from its `config.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// `algo.variant`.
    pub variant: Option<String>,
    /// `run.seed`.
    pub seed: Option<u64>,
    /// `train.steps`.
    pub steps: Option<u64>,
}

/// A run directory.
#[derive(Debug)]
pub struct RunFiles {
    /// Its path.
    pub dir: PathBuf,
    /// Its name on the page (the directory's name).
    pub label: String,
    metrics: Tail,
    evals: Tail,
    table: Table,
}

impl RunFiles {
    /// The run in `dir` (nothing read yet).
    pub fn new(dir: &Path) -> Self {
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| dir.display().to_string());
        Self {
            dir: dir.to_path_buf(),
            label,
            metrics: Tail::default(),
            evals: Tail::default(),
            table: Table::default(),
        }
    }

    /// Reads what was appended; true when something changed.
    pub fn refresh(&mut self) -> bool {
        let resets = self.metrics.resets;
        let a = self.metrics.refresh(&self.dir.join("metrics.jsonl"));
        if self.metrics.resets != resets {
            self.table = Table::default();
        }
        // The table keeps the rows; the tail keeps only its place in the file.
        for line in std::mem::take(&mut self.metrics.lines) {
            let step = line["step"].as_u64();
            if let (Some(step), Value::Object(m)) = (step, line) {
                self.table.add(step, m);
            }
        }
        let b = self.evals.refresh(&self.dir.join("eval.jsonl"));
        a | b
    }

    /// Each step's metrics once, by step (a resumed run's rewritten lines count once, the
    /// last one wins).
    pub fn steps(&self) -> &BTreeMap<u64, serde_json::Map<String, Value>> {
        &self.table.rows
    }

    /// The metrics as columns.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The evaluation lines (`{split, step, report}`).
    pub fn evals(&self) -> &[Value] {
        &self.evals.lines
    }

    /// `test.json`, when the run ended with its test evaluation.
    pub fn test(&self) -> Option<Value> {
        read_json(&self.dir.join("test.json"))
    }

    /// `best.json`: the dev-selected checkpoint.
    pub fn best(&self) -> Option<Value> {
        read_json(&self.dir.join("best.json"))
    }

    /// The run's resolved config, parsed.
    pub fn config(&self) -> Option<toml::Value> {
        toml::from_str(&std::fs::read_to_string(self.dir.join("config.toml")).ok()?).ok()
    }

    /// What the run's config says it is.
    pub fn plan(&self) -> Plan {
        let c = self.config();
        let get = |t: &str, k: &str| c.as_ref().and_then(|c| c.get(t)?.get(k).cloned());
        Plan {
            variant: get("algo", "variant").and_then(|v| v.as_str().map(String::from)),
            seed: get("run", "seed").and_then(|v| v.as_integer().map(|i| i as u64)),
            steps: get("train", "steps").and_then(|v| v.as_integer().map(|i| i as u64)),
        }
    }

    /// The store's facts, or `None` while a process holds the store (or there is none).
    pub fn store_facts(&self) -> Option<StoreFacts> {
        store_facts(&self.open_store()?)
    }

    /// The groups of `step` and their tool calls, or `None` while a process holds the store.
    pub fn groups(&self, step: u64) -> Option<(Vec<GroupRecord>, Vec<GroupToolCalls>)> {
        groups_of(&self.open_store()?, step)
    }

    fn open_store(&self) -> Option<Store> {
        let path = self.dir.join("store");
        if !path.exists() {
            return None;
        }
        Store::try_open(&path).ok()
    }
}

/// The groups of `step` in `store` and their tool calls.
pub fn groups_of(store: &Store, step: u64) -> Option<(Vec<GroupRecord>, Vec<GroupToolCalls>)> {
    Some((store.groups(step).ok()?, store.tool_calls(step).ok()?))
}

/// What `store` says (also used on the store a process shares with its dashboard).
pub fn store_facts(store: &Store) -> Option<StoreFacts> {
    Some(StoreFacts {
        committed_steps: store.last_step().ok()?.map_or(0, |s| s + 1),
        roles: store.role_versions().ok()?,
        swaps: store.swaps().ok()?,
        events: store.events().ok()?,
    })
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_reads_complete_lines_and_restarts_on_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let mut t = Tail::default();
        assert!(!t.refresh(&p));
        assert_eq!(t.resets, 0);
        let mut f = std::fs::File::create(&p).unwrap();
        write!(f, "{{\"step\":0}}\n{{\"step\":1").unwrap();
        f.flush().unwrap();
        assert!(t.refresh(&p));
        assert_eq!(t.lines.len(), 1, "the unfinished line waits");
        writeln!(f, "}}").unwrap();
        f.flush().unwrap();
        assert!(t.refresh(&p));
        assert_eq!(t.lines.len(), 2);
        assert!(!t.refresh(&p));
        std::fs::write(&p, "{\"step\":5}\n").unwrap();
        assert!(t.refresh(&p));
        assert_eq!(t.resets, 1);
        assert_eq!(t.lines, vec![serde_json::json!({"step": 5})]);
    }

    #[test]
    fn columns_follow_rows_and_a_rewritten_step_counts_once() {
        let mut t = Table::default();
        let row = |v: serde_json::Value| v.as_object().unwrap().clone();
        t.add(0, row(serde_json::json!({"step": 0, "a": 1.0})));
        t.add(1, row(serde_json::json!({"step": 1, "b": 2.0})));
        assert_eq!(t.x, vec![0.0, 1.0]);
        assert_eq!(t.columns["a"], vec![Some(1.0), None]);
        assert_eq!(t.columns["b"], vec![None, Some(2.0)]);
        t.add(0, row(serde_json::json!({"step": 0, "a": 5.0})));
        assert_eq!(t.x, vec![0.0, 1.0]);
        assert_eq!(t.columns["a"], vec![Some(5.0), None]);
    }
}
