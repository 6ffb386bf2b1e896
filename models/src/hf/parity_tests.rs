//! Parity with Hugging Face transformers on the committed fixtures (`bench/hf_fixtures.py`):
//! per-token log-probs within 1e-4 of transformers' for each architecture, sharded and bf16
//! files, a left-padded batch, save → reload identity, and the byte-level BPE tokenizer and
//! chat template. The backend is the one under test (`MGRPO_TEST_BACKEND`).
use std::path::PathBuf;

use burn::tensor::activation::log_softmax;
use serde_json::Value;

use super::folder::{HfFolder, SaveOptions, StoreDtype, save_hf, tokenizer_files};
use super::tokenizer::{ChatMessage, HfTokenizer};
use crate::error::ModelError;
use crate::learner::{Learner, LearnerConfig};
use crate::policy::Policy;
use crate::sampling::SampleOptions;
use crate::tensors::{NEG_BIAS, float_tensor, int_tensor, read_f32};
use crate::test_support::{batch_from_rows, max_diff, test_device};

const TOLERANCE: f64 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf")
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn load(name: &str) -> Policy {
    HfFolder::open(fixtures().join(name))
        .unwrap()
        .load(&test_device())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Largest |ours − transformers'| over every case's per-token and last-position log-probs.
fn max_error(policy: &Policy, cases: &Value) -> f64 {
    let mut worst: f64 = 0.0;
    for case in cases.as_array().unwrap() {
        let row = ids(&case["ids"]);
        let ours = policy.score(std::slice::from_ref(&row)).unwrap().remove(0);
        for (t, want) in floats(&case["logprobs"]).into_iter().enumerate() {
            worst = worst.max((ours[t + 1] as f64 - want).abs());
        }
        let n = row.len();
        let tokens = int_tensor(
            row.iter().map(|&t| t as i64).collect(),
            [1, n],
            policy.device(),
        );
        let logits = policy.model().forward(tokens).narrow(1, n - 1, 1);
        let last = read_f32(log_softmax(logits, 2)).unwrap();
        for (ours, want) in last.iter().zip(floats(&case["last_logprobs"])) {
            worst = worst.max((*ours as f64 - want).abs());
        }
    }
    worst
}

#[test]
fn log_probs_match_transformers_for_every_architecture_and_file_layout() {
    let expected = expected();
    for name in ["llama", "qwen2", "qwen3", "qwen3-sharded", "qwen3-bf16"] {
        let policy = load(name);
        let error = max_error(&policy, &expected[name]);
        eprintln!("{name}: max |Δ log-prob| = {error:.2e}");
        assert!(error < TOLERANCE, "{name}: {error}");
    }
    let sharded = HfFolder::open(fixtures().join("qwen3-sharded")).unwrap();
    assert_eq!(sharded.weight_files().len(), 3);
    let arch = load("qwen3").config().hf.clone().unwrap();
    assert_eq!(
        (arch.head_dim, arch.n_kv_heads, arch.qk_norm),
        (16, 2, true)
    );
}

#[test]
fn left_padded_batch_matches_transformers_with_position_ids() {
    let case = &expected()["padded"];
    let policy = load(case["model"].as_str().unwrap());
    let device = policy.device().clone();
    let rows: Vec<Vec<u32>> = case["ids"].as_array().unwrap().iter().map(ids).collect();
    let masks: Vec<Vec<u32>> = case["mask"].as_array().unwrap().iter().map(ids).collect();
    let positions: Vec<Vec<u32>> = case["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids)
        .collect();
    let (batch, width) = (rows.len(), rows[0].len());
    let mut bias = Vec::new();
    for mask in &masks {
        for q in 0..width {
            for (k, &real) in mask.iter().enumerate() {
                let open = k <= q && real == 1;
                bias.push(if open { 0.0 } else { NEG_BIAS });
            }
        }
    }
    let flat = |rows: &[Vec<u32>]| rows.iter().flatten().map(|&t| t as i64).collect();
    let hidden = policy.model().forward_positions(
        int_tensor(flat(&rows), [batch, width], &device),
        int_tensor(flat(&positions), [batch, width], &device),
        float_tensor(bias, [batch, 1, width, width], &device),
        None,
    );
    let lp = read_f32(log_softmax(policy.model().logits(hidden), 2)).unwrap();
    let vocab = policy.config().vocab_size;
    let mut worst: f64 = 0.0;
    for (b, want) in case["logprobs"].as_array().unwrap().iter().enumerate() {
        let start = width - want.as_array().unwrap().len() - 1;
        for (i, want) in floats(want).into_iter().enumerate() {
            let t = start + i;
            let ours = lp[(b * width + t) * vocab + rows[b][t + 1] as usize] as f64;
            worst = worst.max((ours - want).abs());
        }
    }
    eprintln!("padded: max |Δ log-prob| = {worst:.2e}");
    assert!(worst < TOLERANCE, "{worst}");
}

#[test]
fn cached_sampling_equals_recomputation_on_hf_models() {
    for name in ["llama", "qwen3"] {
        let policy = load(name);
        let prompts = vec![vec![1, 5, 9, 33], vec![7, 7], vec![3, 22, 50, 13, 7, 29]];
        let seeds = [1, 2, 3];
        let mut opts = SampleOptions {
            max_new_tokens: 12,
            ..SampleOptions::default()
        };
        let cached = policy.sample(&prompts, &opts, &seeds).unwrap();
        opts.use_kv_cache = false;
        let plain = policy.sample(&prompts, &opts, &seeds).unwrap();
        for (a, b) in cached.iter().zip(&plain) {
            assert_eq!(a.tokens, b.tokens, "{name}");
            for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
                assert!((x - y).abs() < 1e-4, "{name}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn save_then_reload_is_identical_and_bf16_and_f16_are_close() {
    let expected = expected();
    for name in ["llama", "qwen2", "qwen3"] {
        let policy = load(name);
        let dir = tempfile::tempdir().unwrap();
        let files = tokenizer_files(&fixtures().join("tokenizer")).unwrap();
        save_hf(
            &policy,
            dir.path(),
            &SaveOptions {
                dtype: StoreDtype::F32,
                files: files.clone(),
            },
        )
        .unwrap();
        let again = HfFolder::open(dir.path()).unwrap();
        assert_eq!(
            again.config().differences(policy.config()),
            Vec::<String>::new()
        );
        let again = again.load(&test_device()).unwrap();
        let row = ids(&expected[name][0]["ids"]);
        let a = policy.score(std::slice::from_ref(&row)).unwrap();
        let b = again.score(std::slice::from_ref(&row)).unwrap();
        assert_eq!(a, b, "{name}: reload changed the log-probs");
        assert!(dir.path().join("tokenizer.json").is_file());
        let size = |d: &std::path::Path| {
            std::fs::metadata(d.join("model.safetensors"))
                .unwrap()
                .len()
        };
        // bf16 keeps 8 bits of mantissa, f16 11: the round trip moves log-probs accordingly.
        for (dtype, bound) in [(StoreDtype::Bf16, 0.5), (StoreDtype::F16, 0.05)] {
            let half = tempfile::tempdir().unwrap();
            let options = SaveOptions {
                dtype,
                files: files.clone(),
            };
            save_hf(&policy, half.path(), &options).unwrap();
            assert!(
                size(half.path()) * 10 < size(dir.path()) * 6,
                "{dtype:?} file is not half"
            );
            let config: serde_json::Value =
                serde_json::from_slice(&std::fs::read(half.path().join("config.json")).unwrap())
                    .unwrap();
            assert_eq!(config["torch_dtype"], dtype.hf_name());
            let c = HfFolder::open(half.path())
                .unwrap()
                .load(&test_device())
                .unwrap();
            let c = c.score(std::slice::from_ref(&row)).unwrap();
            let worst = max_diff(&a[0], &c[0]);
            assert!(
                worst < bound,
                "{name}: {dtype:?} round trip moved a log-prob by {worst}"
            );
            // The stored halves are the f32 weights rounded to nearest, ties to even — bit for
            // bit against a conversion written here from the formats' definitions (a
            // truncating conversion, or one through another rounding mode, fails).
            let full = safetensors(&dir.path().join("model.safetensors"));
            let halves = safetensors(&half.path().join("model.safetensors"));
            assert_eq!(
                full.keys().collect::<Vec<_>>(),
                halves.keys().collect::<Vec<_>>(),
                "{name}: the same tensors"
            );
            let (want_dtype, round): (&str, fn(f32) -> u16) = match dtype {
                StoreDtype::Bf16 => ("BF16", bf16_rne),
                _ => ("F16", f16_rne),
            };
            let mut rounded_up = 0usize;
            for (tensor, (stored, bytes)) in &halves {
                let (f32_dtype, f32_bytes) = &full[tensor];
                assert_eq!((f32_dtype.as_str(), stored.as_str()), ("F32", want_dtype));
                let words = bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]));
                let floats = f32_bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                assert_eq!(bytes.len() * 2, f32_bytes.len(), "{name} {tensor}");
                for (i, (got, x)) in words.zip(floats).enumerate() {
                    let want = round(x);
                    assert_eq!(
                        got,
                        want,
                        "{name} {tensor}[{i}]: {x:e} ({:#010x}) stored as {got:#06x}, round-to-nearest-even gives {want:#06x}",
                        x.to_bits()
                    );
                    let magnitude = match dtype {
                        StoreDtype::Bf16 => f32::from_bits(u32::from(want) << 16).abs(),
                        _ => half_magnitude(want),
                    };
                    rounded_up += usize::from(magnitude > x.abs());
                }
            }
            // Truncation would agree wherever rounding goes down: make sure both happened.
            assert!(rounded_up > 0, "{name} {dtype:?}: no weight rounded up");
        }
    }
}

/// A safetensors file's tensors by name: `(dtype, little-endian bytes)`.
fn safetensors(path: &std::path::Path) -> std::collections::BTreeMap<String, (String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let off = v["data_offsets"].as_array().unwrap();
            let (a, b) = (off[0].as_u64().unwrap(), off[1].as_u64().unwrap());
            let dtype = v["dtype"].as_str().unwrap().to_string();
            (k.clone(), (dtype, data[a as usize..b as usize].to_vec()))
        })
        .collect()
}

/// f32 → bfloat16, round to nearest, ties to even (NaN stays a quiet NaN).
fn bf16_rne(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// f32 → IEEE half, round to nearest, ties to even; overflow to infinity, subnormals kept.
fn f16_rne(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x007f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x0200 } else { 0 };
    }
    let round = |q: u32, r: u32, half: u32| q + u32::from(r > half || (r == half && q & 1 == 1));
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // A subnormal half: the 24-bit significand shifted right by 14 − e bits.
        let shift = (14 - e) as u32;
        if shift > 24 {
            return sign;
        }
        let m = man | 0x0080_0000;
        let q = m >> shift;
        let r = m & ((1 << shift) - 1);
        return sign | round(q, r, 1 << (shift - 1)) as u16;
    }
    // Normal: 10 of the 23 mantissa bits; a carry moves into the exponent (up to infinity).
    let q = ((e as u32) << 10) | (man >> 13);
    sign | round(q, man & 0x1fff, 0x1000) as u16
}

/// The magnitude a half's bits stand for.
fn half_magnitude(h: u16) -> f32 {
    let (e, m) = (((h >> 10) & 0x1f) as i32, (h & 0x3ff) as f32);
    match e {
        0 => m * 2f32.powi(-24),
        0x1f => f32::INFINITY,
        _ => (1.0 + m / 1024.0) * 2f32.powi(e - 15),
    }
}

#[test]
fn the_half_conversions_round_to_nearest_even() {
    // Values picked from the formats' definitions.
    assert_eq!(bf16_rne(1.0), 0x3f80);
    assert_eq!(bf16_rne(f32::from_bits(0x3f80_8000)), 0x3f80); // a tie, to even (down)
    assert_eq!(bf16_rne(f32::from_bits(0x3f81_8000)), 0x3f82); // a tie, to even (up)
    assert_eq!(bf16_rne(f32::from_bits(0x3f80_8001)), 0x3f81); // above the tie
    assert_eq!(f16_rne(1.0), 0x3c00);
    assert_eq!(f16_rne(-2.0), 0xc000);
    assert_eq!(f16_rne(65504.0), 0x7bff);
    assert_eq!(f16_rne(65520.0), 0x7c00); // the tie above the largest half: to infinity
    assert_eq!(f16_rne(2f32.powi(-24)), 0x0001); // the smallest subnormal
    assert_eq!(f16_rne(2f32.powi(-25)), 0x0000); // its half: a tie, to even (zero)
    assert_eq!(f16_rne(1.5 * 2f32.powi(-24)), 0x0002); // a tie, to even (up)
    assert_eq!(f16_rne(1.0 + 2f32.powi(-11)), 0x3c00); // a tie at 1, to even
    assert_eq!(f16_rne(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
    assert_eq!(f16_rne(0.1), 0x2e66);
    assert_eq!(half_magnitude(0x3c01), 1.0 + 2f32.powi(-10));
    assert_eq!(half_magnitude(0x0001), 2f32.powi(-24));
}

#[test]
fn hf_policies_checkpoint_and_train_like_gpt_presets() {
    let policy = load("qwen3");
    let bytes = policy.to_bytes().unwrap();
    let back = Policy::from_bytes_checked(&bytes, &test_device(), Some(policy.config())).unwrap();
    let row = vec![1, 5, 9, 33, 2, 17];
    assert_eq!(
        policy.score(std::slice::from_ref(&row)).unwrap(),
        back.score(std::slice::from_ref(&row)).unwrap()
    );
    let mut learner = Learner::from_policy(
        policy,
        LearnerConfig {
            lr: 1e-2,
            ..LearnerConfig::default()
        },
    )
    .unwrap();
    let batch = batch_from_rows(&[row.clone(), vec![7, 7, 40, 19]], &[1, 1], &[1.0, 1.0]);
    let first = learner.sft_step(&batch).unwrap();
    for _ in 0..5 {
        learner.sft_step(&batch).unwrap();
    }
    let last = learner.sft_loss(&batch).unwrap();
    assert!(
        last < first,
        "SFT on qwen3 did not lower the loss: {first} → {last}"
    );
}

#[test]
fn byte_level_bpe_and_chat_template_match_transformers() {
    let expected = &expected()["tokenizer"];
    let tokenizer = HfTokenizer::from_folder(&fixtures().join("tokenizer")).unwrap();
    for case in expected["texts"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ours = tokenizer.encode(text).unwrap();
        assert_eq!(ours, ids(&case["ids"]), "{text:?}");
        assert_eq!(tokenizer.decode(&ours).unwrap(), text);
    }
    let chat = &expected["chat"];
    let messages: Vec<ChatMessage> = serde_json::from_value(chat["messages"].clone()).unwrap();
    let rendered = tokenizer.render_chat(&messages, true).unwrap();
    assert_eq!(rendered, chat["rendered"].as_str().unwrap());
    assert_eq!(tokenizer.encode(&rendered).unwrap(), ids(&chat["ids"]));
}

#[test]
fn incomplete_folders_name_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = HfFolder::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
    std::fs::copy(
        fixtures().join("qwen3/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = HfFolder::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    let err = HfTokenizer::from_folder(dir.path()).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingFile { path, .. } if path.ends_with("tokenizer.json")),
        "{err}"
    );
    // An index naming a shard that is not there.
    let sharded = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join("qwen3-sharded")).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().contains("00002") {
            std::fs::copy(entry.path(), sharded.path().join(entry.file_name())).unwrap();
        }
    }
    let err = HfFolder::open(sharded.path()).unwrap_err().to_string();
    assert!(err.contains("model-00002-of-00003.safetensors"), "{err}");
    // Weights of another shape than config.json says.
    let wrong = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("qwen2/config.json"),
        wrong.path().join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("qwen3/model.safetensors"),
        wrong.path().join("model.safetensors"),
    )
    .unwrap();
    let err = HfFolder::open(wrong.path())
        .unwrap()
        .load(&test_device())
        .unwrap_err();
    assert!(matches!(err, ModelError::Checkpoint(_)), "{err}");
}

#[test]
fn lora_trains_only_the_projections_of_an_hf_model() {
    use crate::lora::LoraSettings;
    use crate::transformer::PolicyModel;
    let policy = load("qwen3");
    let mut learner = Learner::from_policy(
        policy.clone(),
        LearnerConfig {
            lr: 1e-2,
            lora: Some(LoraSettings {
                rank: 2,
                alpha: 4.0,
                seed: 9,
            }),
            ..LearnerConfig::default()
        },
    )
    .unwrap();
    let batch = batch_from_rows(
        &[vec![1, 5, 9, 33, 2, 17], vec![7, 7, 40, 19]],
        &[1, 1],
        &[1.0, 1.0],
    );
    for _ in 0..3 {
        learner.sft_step(&batch).unwrap();
    }
    let (PolicyModel::Hf(before), PolicyModel::Hf(after)) =
        (policy.model(), learner.policy().model().clone())
    else {
        panic!("an HF model");
    };
    let values = |t: burn::tensor::Tensor<2>| read_f32(t).unwrap();
    assert_eq!(
        values(before.model.embed_tokens.weight.val()),
        values(after.model.embed_tokens.weight.val()),
        "embeddings are frozen under LoRA"
    );
    let layer = |m: &super::HfModel| m.model.layers[0].self_attn.q_proj.weight.val();
    assert_ne!(
        values(layer(before)),
        values(layer(&after)),
        "q_proj was not adapted"
    );
    let norm = |m: &super::HfModel| read_f32(m.model.norm.gamma.val()).unwrap();
    assert_eq!(norm(before), norm(&after), "norms are frozen under LoRA");
}
