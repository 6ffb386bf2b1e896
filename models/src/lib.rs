//! Policy language models for mgrpo, in burn 0.22.
//!
//! A decoder-only transformer per role ([`PolicyConfig`]: GPT presets `tiny`/`small`/`base`, or a
//! Llama / Qwen2 / Qwen3 model from a Hugging Face folder, see [`hf`]),
//! run on a backend chosen at run time from configuration ([`DeviceSpec`]: burn's pure-Rust
//! `flex` CPU backend, or libtorch with the `tch` feature).
//!
//! - [`Policy`]: inference — batched KV-cache sampling with per-row seeded host draws
//!   ([`Policy::sample`]) and per-token scoring ([`Policy::score`], [`Policy::score_batch`]).
//! - [`Learner`]: training — SFT and the M-GRPO clipped surrogate on a
//!   [`mgrpo_algo::TrainBatch`], AdamW, global-norm clipping, micro-batches.
//! - [`checkpoint`]: save/load to a directory or one byte buffer.
//! - [`bench`]: throughput measurements behind `mgrpo bench models`.
#![warn(missing_docs, unreachable_pub, clippy::mod_module_files)]

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
pub mod hf;
mod kernels;
pub mod learner;
pub mod lora;
pub mod loss;
pub mod lr_schedule;
pub mod policy;
pub mod reference_case;
pub mod sampling;
mod tensors;
#[cfg(test)]
mod test_support;
pub mod transformer;

pub use checkpoint::{
    Checkpoint, CheckpointMeta, checkpoint_from_bytes, checkpoint_to_bytes, load_checkpoint,
    save_checkpoint,
};
pub use config::PolicyConfig;
pub use device::{BackendKind, DeviceSpec};
pub use error::{ModelError, Result};
pub use hf::{HfFolder, HfTokenizer};
pub use learner::{Learner, LearnerConfig, StepStats};
pub use lora::LoraSettings;
pub use loss::{Averaging, SurrogateConfig};
pub use lr_schedule::{Decay, LrSchedule};
pub use policy::Policy;
pub use sampling::{SampleOptions, Sampled};
pub use transformer::PolicyModel;
