//! Model hyperparameters and the named presets.
//!
//! The config is plain serde data so that it can live in `cluster.toml`, travel over the wire and
//! sit next to every checkpoint (`config.json`); loading a checkpoint compares it with the
//! expected one so that a mismatch is an error, not a garbled model.
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::hf::{HfArch, HfFamily};

/// Hyperparameters of the decoder-only policy transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// Number of token ids (the tokenizer's vocabulary size).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Number of attention heads (`d_model` must be a multiple of it).
    pub n_heads: usize,
    /// Width of the feed-forward hidden layer.
    pub d_ff: usize,
    /// Longest sequence (prompt + generated tokens) the model accepts; size of the learned
    /// position table.
    pub max_seq_len: usize,
    /// Dropout probability. Must be 0: the RL ratio π_θ/π_old needs deterministic forward
    /// passes, so dropout is not implemented.
    #[serde(default)]
    pub dropout: f64,
    /// Use the token embedding matrix as the output head (fewer parameters, helps copying).
    #[serde(default = "default_tie_embeddings")]
    pub tie_embeddings: bool,
    /// Standard deviation of the normal initialisation of weight matrices.
    #[serde(default = "default_init_std")]
    pub init_std: f64,
    /// Seed of the parameter initialisation (host-side ChaCha8, independent of the backend).
    #[serde(default)]
    pub init_seed: u64,
    /// A Hugging Face architecture (Llama, Qwen2, Qwen3) instead of the GPT preset network;
    /// `d_model`, `n_heads`, `d_ff`, `n_layers` are then the HF `hidden_size`,
    /// `num_attention_heads`, `intermediate_size`, `num_hidden_layers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf: Option<HfArch>,
}

fn default_tie_embeddings() -> bool {
    true
}

fn default_init_std() -> f64 {
    0.02
}

impl PolicyConfig {
    /// The named presets:
    /// - `tiny`: d_model 64, 2 layers — ~100k parameters plus `64·vocab`; for tests.
    /// - `small`: d_model 160, 4 layers — ~1.4M parameters plus `160·vocab`; the default, trains
    ///   on 2 CPU cores.
    /// - `base`: d_model 512, 8 layers — ~26M parameters plus `512·vocab`; for GPU hosts.
    pub fn preset(name: &str, vocab_size: usize) -> Result<Self> {
        let (d_model, n_layers, n_heads, d_ff, max_seq_len) = match name {
            "tiny" => (64, 2, 4, 256, 256),
            "small" => (160, 4, 4, 640, 1024),
            "base" => (512, 8, 8, 2048, 2048),
            other => return Err(ModelError::UnknownPreset(other.to_string())),
        };
        let config = Self {
            vocab_size,
            d_model,
            n_layers,
            n_heads,
            d_ff,
            max_seq_len,
            dropout: 0.0,
            tie_embeddings: true,
            init_std: default_init_std(),
            init_seed: 0,
            hf: None,
        };
        config.validate()?;
        Ok(config)
    }

    /// An HF-family architecture sized like a preset: same width, depth, heads and feed-forward
    /// width, RoPE instead of learned positions, RMSNorm and a SwiGLU MLP (whose three matrices
    /// get `2/3` of the preset's `d_ff` so the parameter count stays close), tied head, and for
    /// Qwen3 per-head q/k norms. `n_kv_heads` below `n_heads` gives grouped-query attention.
    pub fn hf_preset(
        name: &str,
        family: HfFamily,
        vocab_size: usize,
        n_kv_heads: usize,
    ) -> Result<Self> {
        let mut config = Self::preset(name, vocab_size)?;
        config.d_ff = (2 * config.d_ff / 3).next_multiple_of(16);
        config.hf = Some(HfArch {
            family,
            n_kv_heads,
            head_dim: config.head_dim(),
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            rope_scaling: None,
            qkv_bias: family == HfFamily::Qwen2,
            o_bias: false,
            qk_norm: family == HfFamily::Qwen3,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
        });
        config.validate()?;
        Ok(config)
    }

    /// This config with another initialisation seed.
    pub fn with_init_seed(mut self, seed: u64) -> Self {
        self.init_seed = seed;
        self
    }

    /// This config with another context length.
    pub fn with_max_seq_len(mut self, max_seq_len: usize) -> Self {
        self.max_seq_len = max_seq_len;
        self
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        match &self.hf {
            Some(arch) => arch.head_dim,
            None => self.d_model / self.n_heads.max(1),
        }
    }

    /// Checks that the shape is buildable.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ModelError::InvalidConfig(msg));
        if self.vocab_size < 2 || self.vocab_size > i32::MAX as usize {
            return bad(format!(
                "vocab_size {} must be in 2..=2^31-1",
                self.vocab_size
            ));
        }
        if self.d_model == 0 || self.n_layers == 0 || self.n_heads == 0 || self.d_ff == 0 {
            return bad("d_model, n_layers, n_heads and d_ff must be positive".into());
        }
        if let Some(arch) = &self.hf {
            arch.validate(self).or_else(bad)?;
        } else if !self.d_model.is_multiple_of(self.n_heads) {
            return bad(format!(
                "d_model {} is not a multiple of n_heads {}",
                self.d_model, self.n_heads
            ));
        }
        if self.max_seq_len < 2 {
            return bad(format!(
                "max_seq_len {} must be at least 2",
                self.max_seq_len
            ));
        }
        if self.dropout != 0.0 {
            return bad(format!(
                "dropout {} is not supported (must be 0: RL ratios need deterministic forward passes)",
                self.dropout
            ));
        }
        if !(self.init_std.is_finite() && self.init_std > 0.0) {
            return bad(format!("init_std {} must be positive", self.init_std));
        }
        Ok(())
    }

    /// Names of the fields in which `other` differs from `self` (empty when equal).
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let mut diffs = Vec::new();
        macro_rules! cmp {
            ($($field:ident),*) => {$(
                if self.$field != other.$field {
                    diffs.push(format!(
                        "{}: expected {:?}, found {:?}",
                        stringify!($field), self.$field, other.$field
                    ));
                }
            )*};
        }
        cmp!(
            vocab_size,
            d_model,
            n_layers,
            n_heads,
            d_ff,
            max_seq_len,
            tie_embeddings,
            hf
        );
        diffs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_unknown_is_an_error() {
        for name in ["tiny", "small", "base"] {
            let config = PolicyConfig::preset(name, 512).unwrap();
            assert_eq!(config.vocab_size, 512);
            assert_eq!(config.d_model % config.n_heads, 0);
        }
        assert!(matches!(
            PolicyConfig::preset("huge", 10),
            Err(ModelError::UnknownPreset(_))
        ));
    }

    #[test]
    fn invalid_configs_are_refused() {
        let mut config = PolicyConfig::preset("tiny", 100).unwrap();
        config.n_heads = 5;
        assert!(matches!(
            config.validate(),
            Err(ModelError::InvalidConfig(_))
        ));
        let mut config = PolicyConfig::preset("tiny", 100).unwrap();
        config.dropout = 0.1;
        assert!(config.validate().is_err());
        assert!(PolicyConfig::preset("tiny", 1).is_err());
    }

    #[test]
    fn json_round_trip_and_defaults() {
        let config = PolicyConfig::preset("small", 300).unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<PolicyConfig>(&json).unwrap(), config);
        let minimal =
            r#"{"vocab_size":10,"d_model":8,"n_layers":1,"n_heads":2,"d_ff":16,"max_seq_len":4}"#;
        let parsed: PolicyConfig = serde_json::from_str(minimal).unwrap();
        assert!(parsed.tie_embeddings);
        assert_eq!(parsed.init_std, 0.02);
        parsed.validate().unwrap();
    }

    #[test]
    fn differences_name_the_fields() {
        let a = PolicyConfig::preset("tiny", 100).unwrap();
        let mut b = a.clone();
        b.d_model = 32;
        b.vocab_size = 7;
        let diffs = a.differences(&b);
        assert_eq!(diffs.len(), 2);
        assert!(diffs[0].starts_with("vocab_size"));
        assert!(diffs[1].starts_with("d_model"));
    }
}
