//! One error type for everything the models crate can refuse or fail at.
//!
//! Errors say what failed and what the caller can do about it; bad input (a token id outside the
//! vocabulary, a prompt longer than the context, a checkpoint of another shape) is an error, never
//! a panic.
use std::path::PathBuf;

/// What went wrong in the models crate.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// `PolicyConfig::preset` got a name it does not know.
    #[error("unknown model preset `{0}` (expected one of: tiny, small, base)")]
    UnknownPreset(String),
    /// A model configuration is internally inconsistent.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// A device specification names an unknown backend or device.
    #[error("invalid device spec: {0}")]
    InvalidDevice(String),
    /// The `tch` backend was asked for but this build does not include it.
    #[error(
        "backend `tch` is not compiled in: rebuild with `--features tch` (libtorch from PyTorch 2.9.0, see bench/tch-env.sh)"
    )]
    TchNotCompiled,
    /// The caller passed inputs that do not fit the model or each other.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tensor backend failed while executing or reading back a result.
    #[error("tensor backend failed: {0}")]
    Backend(String),
    /// Reading or writing a checkpoint file failed.
    #[error("checkpoint file {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Checkpoint bytes or files are malformed (truncated, wrong magic, bad record).
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    /// A checkpoint's model config differs from the one the caller expects.
    #[error("checkpoint model config does not match the expected one: {0}")]
    ConfigMismatch(String),
    /// A file a model folder needs is absent.
    #[error("{path}: {why}")]
    MissingFile {
        /// The file (or folder) that is missing.
        path: PathBuf,
        /// What it is needed for.
        why: String,
    },
    /// A tokenizer could not be loaded or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template could not be parsed or rendered.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// A configuration or metadata JSON document could not be (de)serialised.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, ModelError>;
