//! Batch assembly: trajectories + advantages (+ alignment) → the fixed-shape [`TrainBatch`].
//!
//! The main learner's batch has `B·K` rows (one per rollout, in (query, rollout) order); the sub
//! learner's has `B·K·D_max` rows (one per aligned slot, in (query, rollout, slot) order), with
//! zero-weight padding rows where a rollout made no call.
use serde::{Deserialize, Serialize};

use crate::alignment::{RolloutAlignment, Slot};
use crate::batch::TrainBatch;

/// One trajectory as its role's node keeps it: the whole token sequence (context and generated
/// tokens), which tokens the role generated, and their sampling-time log-probs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// Every token of the episode's context, in order.
    pub tokens: Vec<u32>,
    /// `generated[t]`: token `t` was written by the role (trained on).
    pub generated: Vec<bool>,
    /// `logprobs[t]`: sampling-time log-prob of token `t` (0 where not generated).
    pub logprobs: Vec<f32>,
}

impl Trajectory {
    /// Number of generated tokens.
    pub fn generated_tokens(&self) -> usize {
        self.generated.iter().filter(|g| **g).count()
    }
}

/// One row to assemble: a trajectory (or `None` for padding), its advantage and weight.
#[derive(Debug, Clone, Copy)]
pub struct BatchRow<'a> {
    /// The trajectory, or `None` for a padding row.
    pub trajectory: Option<&'a Trajectory>,
    /// The advantage broadcast to its generated tokens.
    pub advantage: f32,
}

/// Assembles rows into a batch right-padded to the longest row, or to `max_len` when given
/// (longer rows keep their first `max_len` tokens: the model cannot see past its context).
/// Padding rows are one pad token with weight 0.
pub fn assemble(rows: &[BatchRow<'_>], pad_id: u32, max_len: Option<usize>) -> TrainBatch {
    let longest = rows
        .iter()
        .filter_map(|r| r.trajectory.map(|t| t.tokens.len()))
        .max()
        .unwrap_or(1)
        .max(1);
    let seq_len = max_len.map_or(longest, |m| longest.min(m.max(1)));
    let n = rows.len() * seq_len;
    let mut batch = TrainBatch {
        rows: rows.len(),
        seq_len,
        pad_id,
        tokens: vec![pad_id; n],
        loss_mask: vec![0.0; n],
        advantages: vec![0.0; n],
        old_logprobs: vec![0.0; n],
        row_weights: vec![0.0; rows.len()],
    };
    for (r, row) in rows.iter().enumerate() {
        let Some(t) = row.trajectory else { continue };
        batch.row_weights[r] = 1.0;
        let base = r * seq_len;
        for i in 0..t.tokens.len().min(seq_len) {
            batch.tokens[base + i] = t.tokens[i];
            // Token 0 is never predicted, so it never carries loss.
            if i > 0 && t.generated.get(i).copied().unwrap_or(false) {
                batch.loss_mask[base + i] = 1.0;
                batch.advantages[base + i] = row.advantage;
                batch.old_logprobs[base + i] = t.logprobs.get(i).copied().unwrap_or(0.0);
            }
        }
    }
    batch
}

/// The main learner's batch: `trajectories[g][k]` with `advantages[g][k]`, `B·K` rows.
pub fn main_batch(
    trajectories: &[Vec<&Trajectory>],
    advantages: &[Vec<f32>],
    pad_id: u32,
    max_len: Option<usize>,
) -> TrainBatch {
    let rows: Vec<BatchRow<'_>> = trajectories
        .iter()
        .zip(advantages)
        .flat_map(|(ts, adv)| {
            ts.iter().zip(adv).map(|(t, &a)| BatchRow {
                trajectory: Some(*t),
                advantage: a,
            })
        })
        .collect();
    assemble(&rows, pad_id, max_len)
}

/// The sub learner's batch for a list of groups: for group `g`, `calls[g][k][i]` is call `i` of
/// rollout `k`, aligned by `alignment[g]` with `slot_advantages[g][k][j]`. `B·K·D_max` rows.
pub fn sub_batch(
    calls: &[Vec<Vec<&Trajectory>>],
    alignment: &[Vec<RolloutAlignment>],
    slot_advantages: &[Vec<Vec<f32>>],
    pad_id: u32,
    max_len: Option<usize>,
) -> TrainBatch {
    let mut rows = Vec::new();
    for ((group_calls, group_align), group_adv) in calls.iter().zip(alignment).zip(slot_advantages)
    {
        for (a, adv) in group_align.iter().zip(group_adv) {
            for (slot, &advantage) in a.slots.iter().zip(adv) {
                let trajectory = match slot {
                    Slot::Call(i) => group_calls
                        .get(a.rollout as usize)
                        .and_then(|c| c.get(*i as usize))
                        .copied(),
                    Slot::Padding => None,
                };
                rows.push(BatchRow {
                    trajectory,
                    advantage,
                });
            }
        }
    }
    assemble(&rows, pad_id, max_len)
}

/// One batch holding both roles' rows (the `shared` variant): `a`'s rows then `b`'s, each
/// keeping its own advantages; re-padded to the longer sequence length.
pub fn concat_batches(a: &TrainBatch, b: &TrainBatch) -> TrainBatch {
    if a.is_empty() {
        return b.clone();
    }
    if b.is_empty() {
        return a.clone();
    }
    let seq_len = a.seq_len.max(b.seq_len);
    let pad_id = a.pad_id;
    let mut out = TrainBatch {
        rows: a.rows + b.rows,
        seq_len,
        pad_id,
        tokens: Vec::new(),
        loss_mask: Vec::new(),
        advantages: Vec::new(),
        old_logprobs: Vec::new(),
        row_weights: [a.row_weights.as_slice(), b.row_weights.as_slice()].concat(),
    };
    for src in [a, b] {
        for r in 0..src.rows {
            let range = r * src.seq_len..(r + 1) * src.seq_len;
            let extra = seq_len - src.seq_len;
            out.tokens.extend(&src.tokens[range.clone()]);
            out.tokens.extend(std::iter::repeat_n(pad_id, extra));
            for (dst, field) in [
                (&mut out.loss_mask, &src.loss_mask),
                (&mut out.advantages, &src.advantages),
                (&mut out.old_logprobs, &src.old_logprobs),
            ] {
                dst.extend(&field[range.clone()]);
                dst.extend(std::iter::repeat_n(0.0, extra));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alignment::align_group;

    fn traj(len: usize, gen_from: usize) -> Trajectory {
        Trajectory {
            tokens: (0..len as u32).map(|t| t + 10).collect(),
            generated: (0..len).map(|i| i >= gen_from).collect(),
            logprobs: (0..len)
                .map(|i| if i >= gen_from { -0.5 } else { 0.0 })
                .collect(),
        }
    }

    #[test]
    fn main_batch_shape_and_masks() {
        let (a, b) = (traj(4, 2), traj(6, 3));
        let batch = main_batch(&[vec![&a, &b]], &[vec![1.5, -1.5]], 0, None);
        assert_eq!((batch.rows, batch.seq_len), (2, 6));
        assert_eq!(&batch.tokens[..6], &[10, 11, 12, 13, 0, 0]);
        assert_eq!(&batch.loss_mask[..6], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(&batch.advantages[6..], &[0.0, 0.0, 0.0, -1.5, -1.5, -1.5]);
        assert_eq!(&batch.old_logprobs[6..9], &[0.0, 0.0, 0.0]);
        assert_eq!(batch.row_weights, vec![1.0, 1.0]);
        let cut = main_batch(&[vec![&a, &b]], &[vec![1.0, 1.0]], 0, Some(5));
        assert_eq!(cut.seq_len, 5);
    }

    #[test]
    fn sub_batch_is_b_k_dmax_with_padding_rows() {
        let t = traj(3, 1);
        let align = align_group(&[1, 0], 4, 7, 0, 0);
        let calls = vec![vec![vec![&t], vec![]]];
        let adv = vec![vec![vec![0.5; 4], vec![0.0; 4]]];
        let batch = sub_batch(&calls, &[align], &adv, 0, None);
        assert_eq!(batch.rows, 2 * 4);
        assert_eq!(
            batch.row_weights,
            vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert!(batch.loss_mask[4 * 3..].iter().all(|m| *m == 0.0));
    }

    #[test]
    fn concat_keeps_each_rows_advantage() {
        let (a, b) = (traj(3, 1), traj(5, 1));
        let x = main_batch(&[vec![&a]], &[vec![2.0]], 0, None);
        let y = main_batch(&[vec![&b]], &[vec![-1.0]], 0, None);
        let z = concat_batches(&x, &y);
        assert_eq!((z.rows, z.seq_len), (2, 5));
        assert_eq!(&z.advantages[..5], &[0.0, 2.0, 2.0, 0.0, 0.0]);
        assert_eq!(&z.advantages[5..], &[0.0, -1.0, -1.0, -1.0, -1.0]);
        assert_eq!(z.tokens.len(), 10);
    }
}
