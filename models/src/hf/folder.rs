//! Hugging Face model folders: `config.json` + safetensors weights (one file, or shards listed
//! by `model.safetensors.index.json`) + whatever tokenizer files transformers saved.
//!
//! Loading and saving go through burn's own store: `SafetensorsStore` with the PyTorch adapters,
//! which transpose every burn `Linear` weight (`[in, out]` ↔ PyTorch's `[out, in]`) and rename
//! RMSNorm's `gamma` ↔ `weight`, so the module paths of [`super::HfModel`] are the file's keys. Shards
//! are applied one by one with `allow_partial`, then coverage is checked: a parameter that no
//! shard provided is an error naming it. bf16/f16 files are cast to f32 on load (a loaded
//! parameter otherwise keeps the file's dtype, and AdamW's moments would follow it). Saving
//! writes `format = "pt"` metadata (transformers refuses anything else), `config.json`,
//! `generation_config.json` and the tokenizer files given, as f32, bf16 or f16 ([`StoreDtype`]).
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::{DType, Device};
use serde_json::Value;

use crate::config::PolicyConfig;
use crate::error::{ModelError, Result};
use crate::policy::Policy;
use crate::transformer::PolicyModel;

/// The tokenizer and template files transformers writes beside a model, copied on export.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
];

const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

fn missing(path: PathBuf, why: &str) -> ModelError {
    ModelError::MissingFile {
        path,
        why: why.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The model config of a `config.json` file (either transformers style), errors naming the file.
pub fn read_config(path: &Path) -> Result<PolicyConfig> {
    let doc: Value = serde_json::from_slice(&read(path)?)
        .map_err(|e| ModelError::InvalidConfig(format!("{}: {e}", path.display())))?;
    PolicyConfig::from_hf_json(&doc)
        .map_err(|e| ModelError::InvalidConfig(format!("{}: {e}", path.display())))
}

/// An opened HF folder: its model config and weight files (nothing loaded yet).
#[derive(Debug, Clone)]
pub struct HfFolder {
    dir: PathBuf,
    config: PolicyConfig,
    shards: Vec<PathBuf>,
}

impl HfFolder {
    /// Reads `config.json` and finds the weights; an absent or incomplete folder is an error
    /// naming the file.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(missing(dir, "no such model folder"));
        }
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(missing(
                config_path,
                "a Hugging Face model folder needs config.json",
            ));
        }
        let config = read_config(&config_path)?;
        let shards = weight_files(&dir)?;
        Ok(Self {
            dir,
            config,
            shards,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model config read from `config.json`.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The safetensors files holding the weights.
    pub fn weight_files(&self) -> &[PathBuf] {
        &self.shards
    }

    /// Loads the weights onto `device` (as f32, whatever the files' dtype).
    pub fn load(&self, device: &Device) -> Result<Policy> {
        let device = device.clone().inner();
        let PolicyModel::Hf(mut model) = PolicyModel::init_zeros(&self.config, &device)? else {
            unreachable!("an HF config builds an HF model");
        };
        let expected: BTreeSet<String> = model
            .collect(None, None, false)
            .into_iter()
            .map(|t| t.name)
            .collect();
        let mut applied = BTreeSet::new();
        for shard in &self.shards {
            let mut store = SafetensorsStore::from_file(shard)
                .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)))
                .allow_partial(true);
            let result = model
                .load_from(&mut store)
                .map_err(|e| ModelError::Checkpoint(format!("{}: {e}", shard.display())))?;
            if let Some(error) = result.errors.first() {
                return Err(ModelError::Checkpoint(format!(
                    "{}: {} tensor(s) do not fit the model of config.json, first: {error}",
                    shard.display(),
                    result.errors.len()
                )));
            }
            applied.extend(result.applied);
        }
        let absent: Vec<&String> = expected.difference(&applied).collect();
        if !absent.is_empty() {
            return Err(ModelError::Checkpoint(format!(
                "{}: {} parameter(s) are in no weight file, e.g. {}",
                self.dir.display(),
                absent.len(),
                absent
                    .iter()
                    .take(3)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(Policy::from_parts(
            self.config.clone(),
            PolicyModel::Hf(model),
            device,
        ))
    }

    /// The tokenizer files present in the folder, as (name, bytes).
    pub fn tokenizer_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        tokenizer_files(&self.dir)
    }
}

/// The tokenizer files present in `dir`, as (name, bytes).
pub fn tokenizer_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in TOKENIZER_FILES {
        let path = dir.join(name);
        if path.is_file() {
            out.push((name.to_string(), read(&path)?));
        }
    }
    Ok(out)
}

/// `model.safetensors`, or the shards of `model.safetensors.index.json`.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index_path = dir.join(INDEX);
    if index_path.is_file() {
        let index: Value = serde_json::from_slice(&read(&index_path)?)
            .map_err(|e| ModelError::Checkpoint(format!("{}: {e}", index_path.display())))?;
        let map = index
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                ModelError::Checkpoint(format!("{}: no weight_map", index_path.display()))
            })?;
        let names: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        let mut shards = Vec::new();
        for name in names {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(missing(path, "listed by model.safetensors.index.json"));
            }
            shards.push(path);
        }
        return Ok(shards);
    }
    let single = dir.join(SINGLE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(missing(
        single,
        "no weights (model.safetensors or model.safetensors.index.json); .bin checkpoints are not read",
    ))
}

/// The dtype weights are stored in, in the HF folders written. A policy's parameters stay f32
/// in memory whatever this says: burn 0.22 has no mixed precision (AdamW's moments take the
/// parameters' dtype, and flex requires equal dtypes in a matmul), and a run's own checkpoints
/// stay f32 so that resume is exact. Folders in bf16 or f16 are cast to f32 on load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreDtype {
    /// float32 (exact).
    #[default]
    F32,
    /// bfloat16: half the bytes, f32's range, 8 bits of mantissa.
    Bf16,
    /// float16: half the bytes, 11 bits of mantissa, range up to 65504.
    F16,
}

impl StoreDtype {
    /// transformers' name for it (`torch_dtype` in config.json).
    pub fn hf_name(self) -> &'static str {
        match self {
            StoreDtype::F32 => "float32",
            StoreDtype::Bf16 => "bfloat16",
            StoreDtype::F16 => "float16",
        }
    }

    /// Our name for it (config files, `--dtype`).
    pub fn name(self) -> &'static str {
        match self {
            StoreDtype::F32 => "f32",
            StoreDtype::Bf16 => "bf16",
            StoreDtype::F16 => "f16",
        }
    }

    fn cast(self) -> Option<DType> {
        match self {
            StoreDtype::F32 => None,
            StoreDtype::Bf16 => Some(DType::BF16),
            StoreDtype::F16 => Some(DType::F16),
        }
    }
}

impl std::str::FromStr for StoreDtype {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" | "float32" => Ok(StoreDtype::F32),
            "bf16" | "bfloat16" => Ok(StoreDtype::Bf16),
            "f16" | "float16" => Ok(StoreDtype::F16),
            _ => Err(format!("dtype {s:?}: expected f32, bf16 or f16")),
        }
    }
}

/// How to write an HF folder.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// The dtype the weights are stored in (bf16 and f16 halve the files; the policy itself
    /// stays f32).
    pub dtype: StoreDtype,
    /// Tokenizer and template files to write beside the model, as (name, bytes).
    pub files: Vec<(String, Vec<u8>)>,
}

/// Writes `policy` (an HF architecture) as a folder transformers' `from_pretrained` loads.
pub fn save_hf(policy: &Policy, dir: &Path, options: &SaveOptions) -> Result<()> {
    let config_json = policy.config().to_hf_json(options.dtype.hf_name())?;
    let PolicyModel::Hf(model) = policy.model() else {
        return Err(ModelError::InvalidConfig(
            "only Hugging Face architectures export to HF folders".into(),
        ));
    };
    fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(SINGLE);
    let mut store = SafetensorsStore::from_file(&path).overwrite(true);
    store = match options.dtype.cast() {
        Some(dtype) => {
            store.with_to_adapter(BurnToPyTorchAdapter.chain(FloatCastAdapter::to(dtype)))
        }
        None => store.with_to_adapter(BurnToPyTorchAdapter),
    };
    model
        .save_into(&mut store.metadata("format", "pt"))
        .map_err(|e| ModelError::Checkpoint(format!("{}: {e}", path.display())))?;
    readable_by_all(&path)?;
    let index = dir.join(INDEX);
    if index.exists() {
        // A stale index would make loaders look for shards instead of the file just written.
        fs::remove_file(&index).map_err(|source| ModelError::Io {
            path: index,
            source,
        })?;
    }
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        fs::write(&path, bytes).map_err(|source| ModelError::Io { path, source })
    };
    write("config.json", &serde_json::to_vec_pretty(&config_json)?)?;
    write(
        "generation_config.json",
        &serde_json::to_vec_pretty(&policy.config().hf_generation_json())?,
    )?;
    for (name, bytes) in &options.files {
        write(name, bytes)?;
    }
    Ok(())
}

/// The store writes through a private scratch file (mode 0600); a model folder is shared data.
fn readable_by_all(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(|source| {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
    }
    Ok(())
}

/// Whether `policy`'s weights are an HF architecture's (and so can be exported).
pub fn is_hf(policy: &Policy) -> bool {
    matches!(policy.model(), PolicyModel::Hf(_))
}
