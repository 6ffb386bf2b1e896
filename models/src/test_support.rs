//! Shared helpers of the unit tests: the backend under test comes from `MGRPO_TEST_BACKEND`.
use burn::tensor::Device;
use mgrpo_algo::TrainBatch;

use crate::config::PolicyConfig;
use crate::device::DeviceSpec;

/// The device under test (`MGRPO_TEST_BACKEND=flex|tch`, `MGRPO_TEST_DEVICE=cpu|cuda:N`).
pub(crate) fn test_device() -> Device {
    DeviceSpec::from_env()
        .and_then(|spec| spec.to_device())
        .expect("MGRPO_TEST_BACKEND / MGRPO_TEST_DEVICE name a usable device")
}

/// The tiny preset over a 40-token vocabulary with a short context.
pub(crate) fn tiny_config() -> PolicyConfig {
    PolicyConfig::preset("tiny", 40)
        .unwrap()
        .with_max_seq_len(48)
        .with_init_seed(11)
}

/// A batch from whole rows: `prompt_len[r]` leading tokens are context, the rest are trained.
pub(crate) fn batch_from_rows(
    rows: &[Vec<u32>],
    prompt_len: &[usize],
    advantages: &[f32],
) -> TrainBatch {
    let seq_len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut batch = TrainBatch::empty(0);
    batch.rows = rows.len();
    batch.seq_len = seq_len;
    for (r, row) in rows.iter().enumerate() {
        for t in 0..seq_len {
            let real = t < row.len();
            batch.tokens.push(if real { row[t] } else { 0 });
            let trained = real && t >= prompt_len[r];
            batch.loss_mask.push(if trained { 1.0 } else { 0.0 });
            batch
                .advantages
                .push(if trained { advantages[r] } else { 0.0 });
            batch.old_logprobs.push(0.0);
        }
        batch.row_weights.push(1.0);
    }
    batch
}

/// The largest element-wise `|a − b|` of two equally long slices.
pub(crate) fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}
