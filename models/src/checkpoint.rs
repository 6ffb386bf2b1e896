//! Checkpoints: a policy's weights + model config, plus the tokenizer and a little metadata,
//! as a directory or as one byte buffer for the wire.
//!
//! Directory layout (`checkpoints/<role>/<version>/`):
//! - `model.bpk` — the burn record (burnpack) of the weights;
//! - `config.json` — the [`PolicyConfig`];
//! - `tokenizer.json` — the caller's tokenizer bytes, stored verbatim;
//! - `meta.json` — [`CheckpointMeta`], written last so its presence marks a complete checkpoint.
//!
//! Every file is written to a temporary name and renamed, so a crash never leaves a half-written
//! file under the final name. Loading checks the stored config against the one the caller
//! expects and refuses a mismatch with the differing fields named.
use std::fs;
use std::path::Path;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use crate::config::PolicyConfig;
use crate::error::{ModelError, Result};
use crate::policy::Policy;
use crate::transformer::PolicyModel;

const POLICY_MAGIC: &[u8; 8] = b"MGRPOPL1";
const CHECKPOINT_MAGIC: &[u8; 8] = b"MGRPOCK1";
/// Version of the checkpoint layout written by this crate.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// Who a checkpoint belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The role (e.g. `main`, `sub`, `shared`).
    pub role: String,
    /// The role's policy version.
    pub version: u64,
    /// Layout version ([`CHECKPOINT_FORMAT`]).
    #[serde(default = "default_format")]
    pub format: u32,
}

fn default_format() -> u32 {
    CHECKPOINT_FORMAT
}

impl CheckpointMeta {
    /// Metadata for `role` at `version` in the current format.
    pub fn new(role: impl Into<String>, version: u64) -> Self {
        Self {
            role: role.into(),
            version,
            format: CHECKPOINT_FORMAT,
        }
    }
}

/// A loaded checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The policy, on the device it was loaded to.
    pub policy: Policy,
    /// The tokenizer bytes, as saved.
    pub tokenizer_json: Vec<u8>,
    /// Role and version.
    pub meta: CheckpointMeta,
}

impl Policy {
    /// Serialises config + weights into one buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let config = serde_json::to_vec(self.config())?;
        let record = record_bytes(self.model())?;
        let mut out = Vec::with_capacity(16 + config.len() + record.len());
        out.extend_from_slice(POLICY_MAGIC);
        put_section(&mut out, &config);
        put_section(&mut out, &record);
        Ok(out)
    }

    /// Rebuilds a policy from [`Policy::to_bytes`] output on `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        Self::from_bytes_checked(bytes, device, None)
    }

    /// Like [`Policy::from_bytes`], refusing a config that differs from `expected`.
    pub fn from_bytes_checked(
        bytes: &[u8],
        device: &Device,
        expected: Option<&PolicyConfig>,
    ) -> Result<Self> {
        let mut reader = Sections::new(bytes, POLICY_MAGIC, "policy")?;
        let config: PolicyConfig = serde_json::from_slice(reader.next("config")?)?;
        let record = reader.next("weights")?;
        load_policy(config, record, device, expected)
    }
}

fn load_policy(
    config: PolicyConfig,
    record: &[u8],
    device: &Device,
    expected: Option<&PolicyConfig>,
) -> Result<Policy> {
    if let Some(expected) = expected {
        let diffs = expected.differences(&config);
        if !diffs.is_empty() {
            return Err(ModelError::ConfigMismatch(diffs.join("; ")));
        }
    }
    config
        .validate()
        .map_err(|e| ModelError::Checkpoint(format!("stored config: {e}")))?;
    let device = device.clone().inner();
    let model = load_record_bytes(PolicyModel::init_zeros(&config, &device)?, record)?;
    Ok(Policy::from_parts(config, model, device))
}

/// Loads [`record_bytes`] output into `model` (same shape — with the same adapters, for a
/// LoRA learner's state).
pub(crate) fn load_record_bytes(model: PolicyModel, bytes: &[u8]) -> Result<PolicyModel> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| ModelError::Checkpoint(format!("decoding weights: {e}")))?;
    let misfit = |e: burn::store::RecordError| {
        ModelError::Checkpoint(format!("weights do not fit the stored config: {e}"))
    };
    Ok(match model {
        PolicyModel::Gpt(m) => PolicyModel::Gpt(m.try_load_record(record).map_err(misfit)?),
        PolicyModel::Hf(m) => PolicyModel::Hf(m.try_load_record(record).map_err(misfit)?),
    })
}

/// The burnpack record of the network inside the enum, so that a GPT checkpoint's bytes are
/// what they were before the enum existed (its paths carry no variant name).
pub(crate) fn record_bytes(model: &PolicyModel) -> Result<Bytes> {
    let bytes = match model {
        PolicyModel::Gpt(m) => m.clone().into_record().into_bytes(),
        PolicyModel::Hf(m) => m.clone().into_record().into_bytes(),
    };
    bytes.map_err(|e| ModelError::Checkpoint(format!("encoding weights: {e}")))
}

/// Saves a checkpoint directory (created if missing; existing files are replaced).
pub fn save_checkpoint(
    dir: &Path,
    policy: &Policy,
    tokenizer_json: &[u8],
    meta: &CheckpointMeta,
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let record = record_bytes(policy.model())?;
    write_atomic(&dir.join("model.bpk"), &record)?;
    write_atomic(
        &dir.join("config.json"),
        &serde_json::to_vec_pretty(policy.config())?,
    )?;
    write_atomic(&dir.join("tokenizer.json"), tokenizer_json)?;
    write_atomic(&dir.join("meta.json"), &serde_json::to_vec_pretty(meta)?)?;
    Ok(())
}

/// Loads a checkpoint directory onto `device`; with `expected`, a different model config is a
/// [`ModelError::ConfigMismatch`].
pub fn load_checkpoint(
    dir: &Path,
    device: &Device,
    expected: Option<&PolicyConfig>,
) -> Result<Checkpoint> {
    let meta: CheckpointMeta = serde_json::from_slice(&read(&dir.join("meta.json"))?)?;
    check_format(&meta)?;
    let config: PolicyConfig = serde_json::from_slice(&read(&dir.join("config.json"))?)?;
    let record = read(&dir.join("model.bpk"))?;
    let tokenizer_json = read(&dir.join("tokenizer.json"))?;
    Ok(Checkpoint {
        policy: load_policy(config, &record, device, expected)?,
        tokenizer_json,
        meta,
    })
}

/// Encodes a whole checkpoint (meta, tokenizer, config, weights) as one buffer.
pub fn checkpoint_to_bytes(
    policy: &Policy,
    tokenizer_json: &[u8],
    meta: &CheckpointMeta,
) -> Result<Vec<u8>> {
    let policy_bytes = policy.to_bytes()?;
    let meta_bytes = serde_json::to_vec(meta)?;
    let mut out =
        Vec::with_capacity(32 + meta_bytes.len() + tokenizer_json.len() + policy_bytes.len());
    out.extend_from_slice(CHECKPOINT_MAGIC);
    put_section(&mut out, &meta_bytes);
    put_section(&mut out, tokenizer_json);
    put_section(&mut out, &policy_bytes);
    Ok(out)
}

/// Decodes [`checkpoint_to_bytes`] output onto `device`.
pub fn checkpoint_from_bytes(
    bytes: &[u8],
    device: &Device,
    expected: Option<&PolicyConfig>,
) -> Result<Checkpoint> {
    let mut reader = Sections::new(bytes, CHECKPOINT_MAGIC, "checkpoint")?;
    let meta: CheckpointMeta = serde_json::from_slice(reader.next("meta")?)?;
    check_format(&meta)?;
    let tokenizer_json = reader.next("tokenizer")?.to_vec();
    let policy = Policy::from_bytes_checked(reader.next("policy")?, device, expected)?;
    Ok(Checkpoint {
        policy,
        tokenizer_json,
        meta,
    })
}

fn check_format(meta: &CheckpointMeta) -> Result<()> {
    if meta.format > CHECKPOINT_FORMAT {
        return Err(ModelError::Checkpoint(format!(
            "format {} is newer than this build understands ({CHECKPOINT_FORMAT})",
            meta.format
        )));
    }
    Ok(())
}

/// Appends a length-prefixed (u64 LE) section.
fn put_section(out: &mut Vec<u8>, section: &[u8]) {
    out.extend_from_slice(&(section.len() as u64).to_le_bytes());
    out.extend_from_slice(section);
}

/// Reads length-prefixed sections after a magic header, refusing truncation.
struct Sections<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Sections<'a> {
    fn new(bytes: &'a [u8], magic: &[u8; 8], what: &'static str) -> Result<Self> {
        match bytes.strip_prefix(magic.as_slice()) {
            Some(rest) => Ok(Self { rest, what }),
            None => Err(ModelError::Checkpoint(format!(
                "not a {what} buffer (bad magic header)"
            ))),
        }
    }

    fn next(&mut self, section: &str) -> Result<&'a [u8]> {
        let truncated = || {
            ModelError::Checkpoint(format!(
                "{} buffer truncated in its {section} section",
                self.what
            ))
        };
        let (len, rest) = self.rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| truncated())?;
        if rest.len() < len {
            return Err(truncated());
        }
        let (body, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(body)
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    fs::write(&tmp, bytes).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{Learner, LearnerConfig};
    use crate::test_support::{batch_from_rows, test_device, tiny_config};

    /// A policy whose weights differ from any fresh init (one SFT step).
    fn trained_policy() -> Policy {
        let mut learner =
            Learner::new(tiny_config(), &test_device(), LearnerConfig::default()).unwrap();
        let batch = batch_from_rows(&[vec![1, 2, 3, 4, 5]], &[1], &[0.0]);
        learner.sft_step(&batch).unwrap();
        learner.policy()
    }

    fn rows() -> Vec<Vec<u32>> {
        vec![vec![1, 2, 3, 4, 5, 6], vec![9, 8, 7]]
    }

    #[test]
    fn directory_round_trip_gives_identical_logprobs() {
        let policy = trained_policy();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main/3");
        let meta = CheckpointMeta::new("main", 3);
        save_checkpoint(&path, &policy, b"{\"tok\":1}", &meta).unwrap();
        let loaded = load_checkpoint(&path, &test_device(), Some(policy.config())).unwrap();
        assert_eq!(loaded.meta, meta);
        assert_eq!(loaded.tokenizer_json, b"{\"tok\":1}");
        assert_eq!(loaded.policy.config(), policy.config());
        assert_eq!(
            loaded.policy.score(&rows()).unwrap(),
            policy.score(&rows()).unwrap()
        );
        let fresh = Policy::new(tiny_config(), &test_device()).unwrap();
        assert_ne!(
            fresh.score(&rows()).unwrap(),
            policy.score(&rows()).unwrap()
        );
    }

    #[test]
    fn byte_round_trips() {
        let policy = trained_policy();
        let bytes = policy.to_bytes().unwrap();
        let back = Policy::from_bytes(&bytes, &test_device()).unwrap();
        assert_eq!(back.score(&rows()).unwrap(), policy.score(&rows()).unwrap());
        let meta = CheckpointMeta::new("sub", 7);
        let bundle = checkpoint_to_bytes(&policy, b"tok", &meta).unwrap();
        let loaded = checkpoint_from_bytes(&bundle, &test_device(), None).unwrap();
        assert_eq!(loaded.meta, meta);
        assert_eq!(loaded.tokenizer_json, b"tok");
        assert_eq!(
            loaded.policy.score(&rows()).unwrap(),
            policy.score(&rows()).unwrap()
        );
    }

    #[test]
    fn mismatched_or_damaged_checkpoints_are_errors() {
        let policy = trained_policy();
        let bytes = policy.to_bytes().unwrap();
        let mut other = tiny_config();
        other.d_model = 32;
        other.vocab_size = 50;
        let err = Policy::from_bytes_checked(&bytes, &test_device(), Some(&other)).unwrap_err();
        assert!(matches!(err, ModelError::ConfigMismatch(_)));
        let message = err.to_string();
        assert!(
            message.contains("vocab_size") && message.contains("d_model"),
            "{message}"
        );
        // Truncated, bad magic, and weights that do not fit the stored config.
        assert!(matches!(
            Policy::from_bytes(&bytes[..bytes.len() - 10], &test_device()),
            Err(ModelError::Checkpoint(_))
        ));
        assert!(matches!(
            Policy::from_bytes(b"garbage", &test_device()),
            Err(ModelError::Checkpoint(_))
        ));
        let small = Policy::new(other.clone(), &test_device()).unwrap();
        let record = record_bytes(small.model()).unwrap();
        let mut forged = POLICY_MAGIC.to_vec();
        put_section(&mut forged, &serde_json::to_vec(policy.config()).unwrap());
        put_section(&mut forged, &record);
        let err = Policy::from_bytes(&forged, &test_device()).unwrap_err();
        assert!(matches!(err, ModelError::Checkpoint(_)), "{err}");
        // Directory: wrong expected config, then a missing file.
        let dir = tempfile::tempdir().unwrap();
        save_checkpoint(dir.path(), &policy, b"t", &CheckpointMeta::new("main", 1)).unwrap();
        assert!(matches!(
            load_checkpoint(dir.path(), &test_device(), Some(&other)),
            Err(ModelError::ConfigMismatch(_))
        ));
        std::fs::remove_file(dir.path().join("model.bpk")).unwrap();
        assert!(matches!(
            load_checkpoint(dir.path(), &test_device(), None),
            Err(ModelError::Io { .. })
        ));
    }
}
