//! The log-probability of each row's target under a softmax over its logits, and its gradient,
//! one row at a time: `x[t] − logsumexp(x)` forward, `g · (1[j = t] − softmax(x)_j)` backward.
//! burn's `log_softmax` + `gather` records five ops and their backwards, each a pass over the
//! `[rows, vocab]` logits, with a scalar `expf` per element; a row here stays in L1 and its
//! `exp`s vectorise. Sums and maxima run in 8 fixed lanes, so the result has one order of
//! additions on every CPU.
use super::math::{exp_nonpositive, max, sum_exp_shifted};

/// `ln Σ_j exp(x_j)`, shifted by the row's maximum.
#[inline(always)]
fn row_logsumexp(row: &[f32]) -> f32 {
    let max = max(row);
    max + sum_exp_shifted(row, max).ln()
}

fn target(targets: &[i64], row: usize, vocab: usize) -> usize {
    let t = targets[row];
    assert!(
        (0..vocab as i64).contains(&t),
        "target id {t} outside a vocabulary of {vocab}"
    );
    t as usize
}

multiversion! {
    pub(super) fn logprobs_rows(logits: &[f32], vocab: usize, targets: &[i64], out: &mut [f32]) {
        for (i, (o, row)) in out.iter_mut().zip(logits.chunks_exact(vocab)).enumerate() {
            *o = row[target(targets, i, vocab)] - row_logsumexp(row);
        }
    }
}

multiversion! {
    pub(super) fn logprobs_backward_rows(
        logits: &[f32],
        vocab: usize,
        targets: &[i64],
        grad: &[f32],
        out: &mut [f32]
    ) {
        let rows = out.chunks_exact_mut(vocab).zip(logits.chunks_exact(vocab));
        for (i, (o, row)) in rows.enumerate() {
            let (lse, g) = (row_logsumexp(row), grad[i]);
            for (d, &x) in o.iter_mut().zip(row) {
                *d = -g * exp_nonpositive(x - lse);
            }
            o[target(targets, i, vocab)] += g;
        }
    }
}
