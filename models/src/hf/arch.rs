//! The architecture of a Hugging Face-family policy (Llama, Qwen2, Qwen3), read from and written
//! to a folder's `config.json`.
//!
//! A [`PolicyConfig`] carries the sizes every architecture shares (vocabulary, width, layers,
//! heads, feed-forward width, context, tied head); [`HfArch`] carries what only these families
//! have: key/value heads, an explicit head width, RMSNorm's eps, RoPE's base and Llama-3 scaling,
//! which projections have biases and whether q/k are normalised per head. Both config styles are
//! read: transformers 4.x (`rope_theta`, `rope_scaling`) and 5.x (`rope_parameters`); 4.x style is
//! written, which both versions load.
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::PolicyConfig;
use crate::error::{ModelError, Result};

/// Which Hugging Face model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HfFamily {
    /// `LlamaForCausalLM` (Llama 2/3).
    Llama,
    /// `Qwen2ForCausalLM` (q/k/v biases).
    Qwen2,
    /// `Qwen3ForCausalLM` (per-head q/k RMSNorm).
    Qwen3,
}

impl HfFamily {
    /// The `model_type` of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
        }
    }

    /// The transformers class of `config.json`'s `architectures`.
    pub fn class(self) -> &'static str {
        match self {
            Self::Llama => "LlamaForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
            Self::Qwen3 => "Qwen3ForCausalLM",
        }
    }

    /// Parses a `model_type`.
    pub fn parse(model_type: &str) -> Result<Self> {
        match model_type {
            "llama" => Ok(Self::Llama),
            "qwen2" => Ok(Self::Qwen2),
            "qwen3" => Ok(Self::Qwen3),
            other => Err(ModelError::InvalidConfig(format!(
                "model_type {other:?} is not supported (llama, qwen2 and qwen3 are)"
            ))),
        }
    }
}

/// Llama-3 RoPE frequency scaling (`rope_type = "llama3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Llama3Scaling {
    /// Divisor of the low frequencies.
    pub factor: f64,
    /// Wavelengths above `original / low_freq_factor` are divided by `factor`.
    pub low_freq_factor: f64,
    /// Wavelengths below `original / high_freq_factor` are kept.
    pub high_freq_factor: f64,
    /// The context length the model was pretrained with.
    pub original_max_position_embeddings: usize,
}

/// What a Llama/Qwen2/Qwen3 model has beyond [`PolicyConfig`]'s shared sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfArch {
    /// The family.
    pub family: HfFamily,
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    pub n_kv_heads: usize,
    /// Width of one attention head (may differ from `d_model / n_heads`, as in Qwen3).
    pub head_dim: usize,
    /// RMSNorm's epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Llama-3 frequency scaling, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<Llama3Scaling>,
    /// Biases on the q/k/v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// Per-head RMSNorm of queries and keys before RoPE.
    pub qk_norm: bool,
    /// Beginning-of-sequence id, if the model has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids (one or several).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eos_token_ids: Vec<u32>,
}

fn field<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    doc.get(key).filter(|v| !v.is_null())
}

fn usize_of(doc: &Value, key: &str) -> Result<Option<usize>> {
    match field(doc, key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
            ModelError::InvalidConfig(format!("config.json: {key} = {v} is not a whole number"))
        }),
    }
}

fn need_usize(doc: &Value, key: &str) -> Result<usize> {
    usize_of(doc, key)?
        .ok_or_else(|| ModelError::InvalidConfig(format!("config.json: {key} is missing")))
}

fn f64_of(doc: &Value, key: &str) -> Result<Option<f64>> {
    match field(doc, key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            ModelError::InvalidConfig(format!("config.json: {key} = {v} is not a number"))
        }),
    }
}

fn bool_of(doc: &Value, key: &str, default: bool) -> Result<bool> {
    match field(doc, key) {
        None => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| {
            ModelError::InvalidConfig(format!("config.json: {key} = {v} is not true/false"))
        }),
    }
}

fn ids_of(doc: &Value, key: &str) -> Vec<u32> {
    match field(doc, key) {
        Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_u64().map(|n| n as u32))
            .collect(),
        _ => Vec::new(),
    }
}

/// RoPE base and scaling from either config style.
fn rope_of(doc: &Value) -> Result<(f64, Option<Llama3Scaling>)> {
    // transformers 5.x: everything under `rope_parameters` (possibly per layer type).
    let params = field(doc, "rope_parameters").map(|p| match p.get("full_attention") {
        Some(inner) if inner.is_object() => inner,
        _ => p,
    });
    let scaling = params.or_else(|| field(doc, "rope_scaling"));
    let theta = params
        .and_then(|p| f64_of(p, "rope_theta").transpose())
        .or_else(|| f64_of(doc, "rope_theta").transpose())
        .transpose()?
        .unwrap_or(10_000.0);
    let Some(scaling) = scaling else {
        return Ok((theta, None));
    };
    let kind = field(scaling, "rope_type")
        .or_else(|| field(scaling, "type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => Ok((theta, None)),
        "llama3" => {
            let need = |key: &str| {
                f64_of(scaling, key)?.ok_or_else(|| {
                    ModelError::InvalidConfig(format!(
                        "config.json: llama3 rope scaling has no {key}"
                    ))
                })
            };
            Ok((
                theta,
                Some(Llama3Scaling {
                    factor: need("factor")?,
                    low_freq_factor: need("low_freq_factor")?,
                    high_freq_factor: need("high_freq_factor")?,
                    original_max_position_embeddings: need_usize(
                        scaling,
                        "original_max_position_embeddings",
                    )?,
                }),
            ))
        }
        other => Err(ModelError::InvalidConfig(format!(
            "config.json: rope_type {other:?} is not supported (default and llama3 are)"
        ))),
    }
}

impl PolicyConfig {
    /// The policy config of a Hugging Face `config.json` document.
    pub fn from_hf_json(doc: &Value) -> Result<Self> {
        let model_type = field(doc, "model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ModelError::InvalidConfig("config.json: model_type is missing".into())
            })?;
        let family = HfFamily::parse(model_type)?;
        if let Some(act) = field(doc, "hidden_act").and_then(Value::as_str)
            && act != "silu"
        {
            return Err(ModelError::InvalidConfig(format!(
                "config.json: hidden_act {act:?} is not supported (silu is)"
            )));
        }
        if bool_of(doc, "mlp_bias", false)? {
            return Err(ModelError::InvalidConfig(
                "config.json: mlp_bias = true is not supported".into(),
            ));
        }
        if bool_of(doc, "use_sliding_window", false)? {
            return Err(ModelError::InvalidConfig(
                "config.json: use_sliding_window = true is not supported".into(),
            ));
        }
        let d_model = need_usize(doc, "hidden_size")?;
        let n_heads = need_usize(doc, "num_attention_heads")?;
        let n_kv_heads = usize_of(doc, "num_key_value_heads")?.unwrap_or(n_heads);
        let head_dim = usize_of(doc, "head_dim")?.unwrap_or(d_model / n_heads.max(1));
        let attention_bias = bool_of(doc, "attention_bias", false)?;
        let (qkv_bias, o_bias) = match family {
            HfFamily::Qwen2 => (true, false),
            HfFamily::Llama | HfFamily::Qwen3 => (attention_bias, attention_bias),
        };
        let (rope_theta, rope_scaling) = rope_of(doc)?;
        let config = Self {
            vocab_size: need_usize(doc, "vocab_size")?,
            d_model,
            n_layers: need_usize(doc, "num_hidden_layers")?,
            n_heads,
            d_ff: need_usize(doc, "intermediate_size")?,
            max_seq_len: usize_of(doc, "max_position_embeddings")?.unwrap_or(2048),
            dropout: 0.0,
            tie_embeddings: bool_of(doc, "tie_word_embeddings", false)?,
            init_std: f64_of(doc, "initializer_range")?.unwrap_or(0.02),
            init_seed: 0,
            hf: Some(HfArch {
                family,
                n_kv_heads,
                head_dim,
                rms_norm_eps: f64_of(doc, "rms_norm_eps")?.unwrap_or(1e-6),
                rope_theta,
                rope_scaling,
                qkv_bias,
                o_bias,
                qk_norm: family == HfFamily::Qwen3,
                bos_token_id: ids_of(doc, "bos_token_id").first().copied(),
                eos_token_ids: ids_of(doc, "eos_token_id"),
            }),
        };
        config.validate()?;
        Ok(config)
    }

    /// The Hugging Face `config.json` of an HF-architecture config (4.x style, which transformers
    /// 4 and 5 both load); `dtype` is `float32` or `bfloat16`.
    pub fn to_hf_json(&self, dtype: &str) -> Result<Value> {
        let arch = self.hf.as_ref().ok_or_else(|| {
            ModelError::InvalidConfig(
                "this policy is a GPT preset, not a Hugging Face architecture (llama, qwen2, qwen3)"
                    .into(),
            )
        })?;
        let mut doc = json!({
            "architectures": [arch.family.class()],
            "model_type": arch.family.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.d_model,
            "intermediate_size": self.d_ff,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": arch.n_kv_heads,
            "head_dim": arch.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_seq_len,
            "rms_norm_eps": arch.rms_norm_eps,
            "rope_theta": arch.rope_theta,
            "tie_word_embeddings": self.tie_embeddings,
            "initializer_range": self.init_std,
            "attention_dropout": 0.0,
            "use_cache": true,
            "torch_dtype": dtype,
            "dtype": dtype,
        });
        let obj = doc.as_object_mut().expect("a JSON object");
        match arch.family {
            HfFamily::Qwen2 => {
                obj.insert("use_sliding_window".into(), json!(false));
            }
            HfFamily::Llama | HfFamily::Qwen3 => {
                obj.insert("attention_bias".into(), json!(arch.qkv_bias));
                if arch.family == HfFamily::Llama {
                    obj.insert("mlp_bias".into(), json!(false));
                } else {
                    obj.insert("use_sliding_window".into(), json!(false));
                }
            }
        }
        if let Some(s) = &arch.rope_scaling {
            obj.insert(
                "rope_scaling".into(),
                json!({
                    "rope_type": "llama3",
                    "factor": s.factor,
                    "low_freq_factor": s.low_freq_factor,
                    "high_freq_factor": s.high_freq_factor,
                    "original_max_position_embeddings": s.original_max_position_embeddings,
                }),
            );
        }
        if let Some(bos) = arch.bos_token_id {
            obj.insert("bos_token_id".into(), json!(bos));
        }
        match arch.eos_token_ids.as_slice() {
            [] => {}
            [one] => {
                obj.insert("eos_token_id".into(), json!(one));
            }
            many => {
                obj.insert("eos_token_id".into(), json!(many));
            }
        }
        Ok(doc)
    }

    /// A `generation_config.json` with the model's special ids.
    pub fn hf_generation_json(&self) -> Value {
        let mut doc = json!({ "_from_model_config": true });
        if let Some(arch) = &self.hf {
            let obj = doc.as_object_mut().expect("a JSON object");
            if let Some(bos) = arch.bos_token_id {
                obj.insert("bos_token_id".into(), json!(bos));
            }
            if !arch.eos_token_ids.is_empty() {
                obj.insert("eos_token_id".into(), json!(arch.eos_token_ids));
            }
        }
        doc
    }
}

impl HfArch {
    /// Checks the architecture against the shared sizes.
    pub(crate) fn validate(&self, config: &PolicyConfig) -> std::result::Result<(), String> {
        if self.n_kv_heads == 0 || !config.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                config.n_heads, self.n_kv_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim {} must be even and positive (RoPE rotates pairs)",
                self.head_dim
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rope_theta > 0.0) {
            return Err("rms_norm_eps and rope_theta must be positive".into());
        }
        if let Some(s) = &self.rope_scaling
            && !(s.factor > 0.0
                && s.low_freq_factor > 0.0
                && s.high_freq_factor > s.low_freq_factor
                && s.original_max_position_embeddings > 0)
        {
            return Err(format!("llama3 rope scaling {s:?} is inconsistent"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama_4x() -> Value {
        json!({
            "model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-5, "rope_theta": 500.0, "max_position_embeddings": 256,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
            "eos_token_id": [2, 3], "bos_token_id": 1, "tie_word_embeddings": false
        })
    }

    #[test]
    fn both_rope_styles_read_the_same() {
        let old = PolicyConfig::from_hf_json(&llama_4x()).unwrap();
        let mut new_doc = llama_4x();
        let obj = new_doc.as_object_mut().unwrap();
        obj.remove("rope_theta");
        let mut params = obj.remove("rope_scaling").unwrap();
        params["rope_theta"] = json!(500.0);
        obj.insert("rope_parameters".into(), params);
        let new = PolicyConfig::from_hf_json(&new_doc).unwrap();
        assert_eq!(old, new);
        let arch = old.hf.as_ref().unwrap();
        assert_eq!(arch.rope_theta, 500.0);
        assert_eq!(arch.head_dim, 8);
        assert_eq!(arch.eos_token_ids, vec![2, 3]);
        assert_eq!(
            arch.rope_scaling
                .as_ref()
                .unwrap()
                .original_max_position_embeddings,
            16
        );
    }

    /// The shape `bench/gpu_check.sh` trains: Qwen3-0.6B's released config.json.
    #[test]
    fn the_qwen3_0_6b_shape_reads() {
        let doc: Value =
            serde_json::from_str(include_str!("../../../bench/arch/qwen3-0.6b.json")).unwrap();
        let c = PolicyConfig::from_hf_json(&doc).unwrap();
        let arch = c.hf.as_ref().unwrap();
        assert_eq!(
            (c.d_model, c.n_layers, c.n_heads, c.d_ff),
            (1024, 28, 16, 3072)
        );
        assert_eq!(
            (arch.n_kv_heads, arch.head_dim, arch.family),
            (8, 128, HfFamily::Qwen3)
        );
        assert!(c.tie_embeddings && arch.qk_norm && !arch.qkv_bias);
        assert_eq!(
            (c.vocab_size, arch.eos_token_ids.as_slice()),
            (151_936, &[151_645][..])
        );
        // 596 M parameters, as the released model card says (0.6 B, 0.44 B without embeddings).
        let per_layer =
            1024 * (16 * 128) * 2 + 1024 * (8 * 128) * 2 + 3 * 1024 * 3072 + 2 * 128 + 2 * 1024;
        let params = 151_936 * 1024 + 28 * per_layer + 1024;
        assert_eq!(params / 1_000_000, 596);
    }

    #[test]
    fn written_config_reads_back() {
        for family in ["llama", "qwen2", "qwen3"] {
            let mut doc = llama_4x();
            doc["model_type"] = json!(family);
            doc["head_dim"] = json!(16);
            let config = PolicyConfig::from_hf_json(&doc).unwrap();
            let again = PolicyConfig::from_hf_json(&config.to_hf_json("float32").unwrap()).unwrap();
            assert_eq!(config, again, "{family}");
        }
    }

    #[test]
    fn unsupported_settings_are_named() {
        let cases = [
            ("model_type", json!("gpt2"), "model_type"),
            ("hidden_act", json!("gelu"), "hidden_act"),
            ("mlp_bias", json!(true), "mlp_bias"),
            ("num_key_value_heads", json!(3), "num_key_value_heads"),
            ("hidden_size", json!("wide"), "hidden_size"),
        ];
        for (key, value, needle) in cases {
            let mut doc = llama_4x();
            doc[key] = value;
            let err = PolicyConfig::from_hf_json(&doc).unwrap_err().to_string();
            assert!(err.contains(needle), "{key}: {err}");
        }
        let mut doc = llama_4x();
        doc["rope_scaling"]["rope_type"] = json!("yarn");
        let err = PolicyConfig::from_hf_json(&doc).unwrap_err().to_string();
        assert!(err.contains("yarn"), "{err}");
        let mut doc = llama_4x();
        doc.as_object_mut().unwrap().remove("vocab_size");
        let err = PolicyConfig::from_hf_json(&doc).unwrap_err().to_string();
        assert!(err.contains("vocab_size is missing"), "{err}");
    }
}
