//! Hugging Face models: Llama, Qwen2 and Qwen3 architectures with transformers' parameter names,
//! loaded from and saved to HF folders (safetensors, `config.json`, tokenizer and chat template).
//!
//! - [`arch`]: the architecture section of a [`crate::PolicyConfig`], read from `config.json`
//!   (transformers 4.x and 5.x styles) and written back.
//! - [`HfModel`]: the network (rotate-half RoPE, RMSNorm, grouped-query attention, SwiGLU, tied
//!   or untied head), behind the same `PolicyModel` interface as the GPT presets.
//! - [`folder`]: [`HfFolder::open`] / [`HfFolder::load`] and [`save_hf`].
//! - [`tokenizer`]: [`HfTokenizer`], a folder's tokenizer and chat template.
pub mod arch;
mod attention;
pub mod folder;
mod layer;
mod model;
#[cfg(test)]
mod parity_tests;
mod rope;
mod tojson;
pub mod tokenizer;

pub use arch::{HfArch, HfFamily, Llama3Scaling};
pub use attention::HfAttention;
pub use folder::{
    HfFolder, SaveOptions, StoreDtype, TOKENIZER_FILES, is_hf, read_config, save_hf,
    tokenizer_files,
};
pub use layer::{HfDecoderLayer, HfMlp};
pub use model::{HfBody, HfModel};
pub use tokenizer::{ChatMessage, HfTokenizer};
