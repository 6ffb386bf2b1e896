//! Host ↔ device helpers and the checks that keep bad host data from reaching a kernel.
use burn::tensor::{Device, Int, Tensor, TensorData};
use mgrpo_algo::TrainBatch;

use crate::error::{ModelError, Result};

/// Large negative attention bias: `exp(score + NEG_BIAS)` is exactly 0 in f32, while staying
/// finite so fully masked (padding) query rows give a uniform softmax instead of NaN.
pub(crate) const NEG_BIAS: f32 = -1.0e9;

pub(crate) fn int_tensor<const D: usize>(
    values: Vec<i64>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub(crate) fn float_tensor<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Reads a float tensor back to the host (one device sync).
pub(crate) fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .try_into_data()
        .map_err(|e| ModelError::Backend(format!("{e:?}")))?
        .try_into_vec_as::<f32>()
        .map_err(|e| ModelError::Backend(format!("{e:?}")))
}

/// Checks that every token id is inside the vocabulary.
pub(crate) fn check_tokens<'a>(
    tokens: impl IntoIterator<Item = &'a u32>,
    vocab_size: usize,
) -> Result<()> {
    match tokens.into_iter().find(|&&t| t as usize >= vocab_size) {
        Some(bad) => Err(ModelError::InvalidInput(format!(
            "token id {bad} is outside the vocabulary (size {vocab_size})"
        ))),
        None => Ok(()),
    }
}

/// Checks a [`TrainBatch`]'s internal consistency against a model's vocabulary and context.
pub(crate) fn check_batch(batch: &TrainBatch, vocab_size: usize, max_seq_len: usize) -> Result<()> {
    let cells = batch.rows * batch.seq_len;
    let bad = |msg: String| Err(ModelError::InvalidInput(format!("train batch: {msg}")));
    for (name, len) in [
        ("tokens", batch.tokens.len()),
        ("loss_mask", batch.loss_mask.len()),
        ("advantages", batch.advantages.len()),
        ("old_logprobs", batch.old_logprobs.len()),
    ] {
        if len != cells {
            return bad(format!(
                "{name} has {len} entries, expected rows·seq_len = {cells}"
            ));
        }
    }
    if batch.row_weights.len() != batch.rows {
        return bad(format!(
            "row_weights has {} entries, expected {}",
            batch.row_weights.len(),
            batch.rows
        ));
    }
    if batch.seq_len > max_seq_len {
        return bad(format!(
            "seq_len {} exceeds the model's max_seq_len {max_seq_len}",
            batch.seq_len
        ));
    }
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if !(finite(&batch.loss_mask)
        && finite(&batch.advantages)
        && finite(&batch.old_logprobs)
        && finite(&batch.row_weights))
    {
        return bad("non-finite value in mask, advantages, old_logprobs or row_weights".into());
    }
    if batch
        .loss_mask
        .iter()
        .chain(&batch.row_weights)
        .any(|&w| w < 0.0)
    {
        return bad("negative loss_mask or row_weights entry".into());
    }
    check_tokens(&batch.tokens, vocab_size)
}
