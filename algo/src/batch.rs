//! The fixed-shape training batch a learner consumes.
//!
//! A batch is plain host data (row-major `Vec`s), so that the maths crate stays free of any
//! tensor library: the models crate turns it into tensors on the learner's device.
//!
//! Conventions (shared by every producer and consumer):
//! - `tokens[r * seq_len + t]` is token `t` of row `r`; rows are right-padded with `pad_id`.
//! - Every per-token field at index `t` refers to token `t`, i.e. the token *predicted* from the
//!   prefix `tokens[..t]`. Index `t = 0` therefore never carries loss.
//! - `loss_mask` is 1.0 on tokens the role generated (the ones trained on) and 0.0 on context
//!   (prompt, tool results, returned results) and padding.
//! - `advantages` is the trajectory advantage broadcast over its generated tokens (0 elsewhere).
//! - `old_logprobs` are the per-token log-probs under the sampling policy (0 where masked).
//! - `row_weights[r]` is 0.0 for alignment padding rows and 1.0 otherwise; a zero-weight row
//!   contributes nothing to the loss nor to its normaliser.
use serde::{Deserialize, Serialize};

/// One learner's training batch: `rows × seq_len`, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainBatch {
    /// Number of rows (trajectories, including padding rows).
    pub rows: usize,
    /// Length of every row after right-padding.
    pub seq_len: usize,
    /// Token id used for padding.
    pub pad_id: u32,
    /// `rows * seq_len` token ids.
    pub tokens: Vec<u32>,
    /// `rows * seq_len` loss weights (1.0 on generated tokens, 0.0 elsewhere).
    pub loss_mask: Vec<f32>,
    /// `rows * seq_len` per-token advantages.
    pub advantages: Vec<f32>,
    /// `rows * seq_len` sampling-time log-probs.
    pub old_logprobs: Vec<f32>,
    /// `rows` slot weights (0.0 for padding slots).
    pub row_weights: Vec<f32>,
}

impl TrainBatch {
    /// An empty batch with the given padding id.
    pub fn empty(pad_id: u32) -> Self {
        Self {
            rows: 0,
            seq_len: 0,
            pad_id,
            tokens: Vec::new(),
            loss_mask: Vec::new(),
            advantages: Vec::new(),
            old_logprobs: Vec::new(),
            row_weights: Vec::new(),
        }
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}
