//! The [`Store`] handle: open, commit a step atomically, read back, dump.
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::codec::{self, CodecError};
use crate::keys;
use crate::legacy::{Stored, decode_stored};
use crate::records::{
    CheckpointEntry, Event, GroupRecord, GroupToolCalls, RoleVersion, StepCommit, StepRecord,
    SwapRecord,
};

/// What went wrong with the store. Every variant says what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open, read or write (disk full, permissions, another process holds it).
    #[error(
        "store I/O error (is another process using this run directory, or is the disk full?): {0}"
    )]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded: the store was written by an incompatible build.
    #[error("corrupt or incompatible value under key {key}: {source}")]
    Codec {
        /// The key whose value failed.
        key: String,
        /// The codec's reason.
        #[source]
        source: CodecError,
    },
    /// A step is already committed with different content: the run is not deterministic, or
    /// two runs share one directory.
    #[error(
        "step {0} is already committed with different content (two runs in one directory, or a nondeterministic resume)"
    )]
    Conflict(u64),
    /// A swap is already recorded for this role and generation with a different content.
    #[error(
        "swap to generation {generation} of {role} is already recorded differently (two runs in one directory?)"
    )]
    SwapConflict {
        /// The role.
        role: String,
        /// The generation.
        generation: u64,
    },
    /// A step was committed out of order.
    #[error("step {got} committed after step {last:?}: steps must be committed in order")]
    OutOfOrder {
        /// The step being committed.
        got: u64,
        /// The last committed step.
        last: Option<u64>,
    },
}

/// The result of a commit: whether it wrote, or found the identical step already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The step was written.
    Written,
    /// The identical step was already committed (a retry); nothing changed.
    AlreadyCommitted,
}

/// A run's store. Cheap to clone (sled handles are reference-counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// How long [`Store::open`] waits for a lock a reader holds.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl Store {
    /// Opens (or creates) the store in `dir`. sled locks it for one process; a lock held a
    /// moment by a reader (`mgrpo dashboard` or `mgrpo store dump` on a stopped run) is waited
    /// for up to [`LOCK_WAIT`], a lock held longer is the error it is (another process runs
    /// the run).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let start = std::time::Instant::now();
        loop {
            match sled::Config::new().path(dir.as_ref()).open() {
                Ok(db) => return Ok(Self { db }),
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && start.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Opens the store only if no other process holds it (no wait): the readers' way in.
    pub fn try_open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir.as_ref()).open()?;
        Ok(Self { db })
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = codec::encode(value).map_err(|source| StoreError::Codec {
            key: key.to_string(),
            source,
        })?;
        self.db.insert(key.as_bytes(), bytes)?;
        Ok(())
    }

    fn get<T: Stored>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.db.get(key.as_bytes())? {
            None => Ok(None),
            Some(bytes) => decode_at(key, &bytes).map(Some),
        }
    }

    fn scan<T: Stored>(&self, prefix: &str) -> Result<Vec<T>, StoreError> {
        self.db
            .scan_prefix(prefix.as_bytes())
            .map(|item| {
                let (key, bytes) = item?;
                decode_at(&String::from_utf8_lossy(&key), &bytes)
            })
            .collect()
    }

    /// Records the run's resolved config (TOML text). Written once at run start.
    pub fn put_config(&self, toml: &str) -> Result<(), StoreError> {
        self.db.insert(keys::CONFIG, toml.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// The run's resolved config, if recorded.
    pub fn config(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .get(keys::CONFIG)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Commits one step atomically (summary, groups, role versions, checkpoint entries) and
    /// flushes it to disk. Idempotent: committing the identical step again is a no-op.
    pub fn commit_step(&self, commit: &StepCommit) -> Result<CommitOutcome, StoreError> {
        let step = commit.record.step;
        let step_key = keys::step(step);
        let encoded = |key: &str, v: &dyn erased::Encode| {
            v.encode().map_err(|source| StoreError::Codec {
                key: key.to_string(),
                source,
            })
        };
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        entries.push((step_key.clone(), encoded(&step_key, &commit.record)?));
        for g in &commit.groups {
            let key = keys::group(step, g.query);
            entries.push((key.clone(), encoded(&key, g)?));
        }
        for r in &commit.roles {
            let key = keys::role(&r.role);
            entries.push((key.clone(), encoded(&key, r)?));
        }
        for c in &commit.checkpoints {
            let key = keys::checkpoint(&c.role, c.version);
            entries.push((key.clone(), encoded(&key, c)?));
        }
        // Not part of a retry's identity check below: a tool's output may depend on timing (a
        // timeout) or on the server's state, and the first commit's transcript stays.
        for t in commit.tool_calls.iter().filter(|t| !t.calls.is_empty()) {
            let key = keys::tools(step, t.query);
            entries.push((key.clone(), encoded(&key, t)?));
        }

        if let Some(stored) = self.db.get(step_key.as_bytes())? {
            // A retry or a replay: each group (rewards, alignment, advantages) must be stored
            // byte for byte and the step must have produced the same role versions. Timings
            // and other metrics of the summary may differ between two runs of a step.
            let stored: StepRecord = decode_at(&step_key, &stored)?;
            let n_step_entries = 1 + commit.groups.len();
            let mut identical = stored.role_versions == commit.record.role_versions
                && self.db.scan_prefix(keys::group_prefix(step)).count() == commit.groups.len();
            for (k, v) in &entries[1..n_step_entries] {
                identical &= self.db.get(k.as_bytes())?.as_deref() == Some(v.as_slice());
            }
            return if identical {
                Ok(CommitOutcome::AlreadyCommitted)
            } else {
                Err(StoreError::Conflict(step))
            };
        }
        let last = self.last_step()?;
        let expected = last.map_or(0, |l| l + 1);
        if step != expected {
            return Err(StoreError::OutOfOrder { got: step, last });
        }

        let mut batch = sled::Batch::default();
        for (k, v) in entries {
            batch.insert(k.as_bytes(), v);
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(CommitOutcome::Written)
    }

    /// The last committed step, if any.
    pub fn last_step(&self) -> Result<Option<u64>, StoreError> {
        let last = self
            .db
            .scan_prefix(keys::STEP_PREFIX.as_bytes())
            .next_back();
        match last {
            None => Ok(None),
            Some(item) => {
                let (key, bytes) = item?;
                let rec: StepRecord = decode_at(&String::from_utf8_lossy(&key), &bytes)?;
                Ok(Some(rec.step))
            }
        }
    }

    /// The tool calls of a step's groups (only groups that made some), by query.
    pub fn tool_calls(&self, step: u64) -> Result<Vec<GroupToolCalls>, StoreError> {
        self.scan(&keys::tools_prefix(step))
    }

    /// One step's summary.
    pub fn step(&self, step: u64) -> Result<Option<StepRecord>, StoreError> {
        self.get(&keys::step(step))
    }

    /// Every committed step's summary, in order.
    pub fn steps(&self) -> Result<Vec<StepRecord>, StoreError> {
        self.scan(keys::STEP_PREFIX)
    }

    /// The query groups of one step, by query index.
    pub fn groups(&self, step: u64) -> Result<Vec<GroupRecord>, StoreError> {
        self.scan(&keys::group_prefix(step))
    }

    /// Sets a role's current version outside a step commit (warm start, swap, resume).
    pub fn set_role_version(&self, version: &RoleVersion) -> Result<(), StoreError> {
        self.put(&keys::role(&version.role), version)?;
        self.db.flush()?;
        Ok(())
    }

    /// A role's current version.
    pub fn role_version(&self, role: &str) -> Result<Option<RoleVersion>, StoreError> {
        self.get(&keys::role(role))
    }

    /// Every role's current version.
    pub fn role_versions(&self) -> Result<Vec<RoleVersion>, StoreError> {
        self.scan(keys::ROLE_PREFIX)
    }

    /// Records a checkpoint outside a step commit (the warm start's version 0).
    pub fn add_checkpoint(&self, entry: &CheckpointEntry) -> Result<(), StoreError> {
        self.put(&keys::checkpoint(&entry.role, entry.version), entry)?;
        self.db.flush()?;
        Ok(())
    }

    /// A role's checkpoints, by version.
    pub fn checkpoints(&self, role: &str) -> Result<Vec<CheckpointEntry>, StoreError> {
        self.scan(&keys::checkpoint_prefix(role))
    }

    /// Appends an event (swap, restart, resume).
    pub fn record_event(&self, event: &Event) -> Result<(), StoreError> {
        let seq = self.db.generate_id()?;
        self.put(&keys::event(seq), event)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every event in order.
    pub fn events(&self) -> Result<Vec<Event>, StoreError> {
        self.scan(keys::EVENT_PREFIX)
    }

    /// Records a swap before it takes effect (flushed). Recording the same swap again (a
    /// replay after a crash) is a no-op; a different swap for the same role and generation is
    /// a [`StoreError::SwapConflict`]. Durations are not compared: they differ between runs.
    pub fn record_swap(&self, swap: &SwapRecord) -> Result<CommitOutcome, StoreError> {
        let key = keys::swap(&swap.role, swap.generation);
        if let Some(old) = self.get::<SwapRecord>(&key)? {
            let same = SwapRecord {
                duration_ms: old.duration_ms,
                ..swap.clone()
            } == old;
            return if same {
                Ok(CommitOutcome::AlreadyCommitted)
            } else {
                Err(StoreError::SwapConflict {
                    role: swap.role.clone(),
                    generation: swap.generation,
                })
            };
        }
        self.put(&key, swap)?;
        self.db.flush()?;
        Ok(CommitOutcome::Written)
    }

    /// Every recorded swap, ordered by step, then role and generation.
    pub fn swaps(&self) -> Result<Vec<SwapRecord>, StoreError> {
        let mut out: Vec<SwapRecord> = self.scan(keys::SWAP_PREFIX)?;
        out.sort_by(|a, b| (a.step, &a.role, a.generation).cmp(&(b.step, &b.role, b.generation)));
        Ok(out)
    }

    /// The whole store as JSON objects, one per record, each tagged with its `type`
    /// (`config`, `step`, `group`, `tool_calls`, `role`, `checkpoint`, `event`, `swap`). Groups carry their rewards,
    /// alignment and the advantages actually used.
    pub fn dump(&self) -> Result<Vec<Value>, StoreError> {
        let mut out = Vec::new();
        if let Some(config) = self.config()? {
            out.push(json!({"type": "config", "toml": config}));
        }
        for step in self.steps()? {
            let n = step.step;
            out.push(tagged("step", &step));
            for g in self.groups(n)? {
                out.push(tagged("group", &g));
            }
            for t in self.tool_calls(n)? {
                out.push(tagged("tool_calls", &t));
            }
        }
        for r in self.role_versions()? {
            out.push(tagged("role", &r));
        }
        for c in self.scan::<CheckpointEntry>(keys::CHECKPOINT_PREFIX)? {
            out.push(tagged("checkpoint", &c));
        }
        for e in self.events()? {
            out.push(tagged("event", &e));
        }
        for s in self.swaps()? {
            let mut v = tagged("swap", &s);
            v["from"] = Value::String(s.from_label());
            v["to"] = Value::String(s.to_label());
            out.push(v);
        }
        Ok(out)
    }
}

fn tagged<T: Serialize>(kind: &str, value: &T) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("type".into(), Value::String(kind.into()));
    }
    v
}

fn decode_at<T: Stored>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    decode_stored(bytes).map_err(|source| StoreError::Codec {
        key: key.to_string(),
        source,
    })
}

/// Object-safe encoding so one closure can encode each record type of a commit.
mod erased {
    use crate::codec::{self, CodecError};

    pub(super) trait Encode {
        fn encode(&self) -> Result<Vec<u8>, CodecError>;
    }

    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Result<Vec<u8>, CodecError> {
            codec::encode(self)
        }
    }
}
