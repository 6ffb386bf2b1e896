//! Causal scaled dot-product attention straight from the fused QKV projection's output
//! (`[B, T, 3·H·d]`, read in place through strides — no split into heads, no copies), one batch
//! row per task: `P = softmax(scale · Q Kᵀ + causal mask)`, `O = P V`, and the
//! backward from `P`: `dV = Pᵀ dO`, `dS = P ⊙ (dO Vᵀ − rowsum(P ⊙ dO Vᵀ))`, `dQ = scale · dS K`,
//! `dK = scale · dSᵀ Q`. The five matrix products go to the `gemm` crate (what flex's matmul
//! uses); the softmax and its gradient are one pass over each row of `P`, with the vectorised
//! `exp`. burn's fallback materialises the mask, the scores, their max, shift, `exp`, sum and
//! quotient as separate tensors, each with its own backward, and copies the heads out of and
//! back into the projection's layout, forward and backward (docs/results.md "Performance").
use rayon::prelude::*;

use super::math::{dot, exp_nonpositive, max, sum};
use super::matrix::{Mat, matmul};

/// One attention problem: `batch` rows of `t` positions, each `3 · heads · d` wide (queries,
/// keys, values of every head, as the fused QKV projection writes them).
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub(super) batch: usize,
    pub(super) heads: usize,
    pub(super) t: usize,
    pub(super) d: usize,
}

impl Shape {
    fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }

    /// Width of the attention's output row, `heads · d`.
    fn width(&self) -> usize {
        self.heads * self.d
    }
}

/// Head `h`'s queries (`part` 0), keys (1) or values (2) in a `[t, 3 · heads · d]` block.
fn part(block: &[f32], shape: Shape, part: usize, h: usize) -> Mat<'_> {
    Mat {
        data: &block[part * shape.width() + h * shape.d..],
        row_stride: 3 * shape.width(),
        col_stride: 1,
    }
}

/// Causal attention of `qkv` (`[batch, t, 3 · heads · d]`): the output `[batch, t, heads · d]`
/// (heads side by side, as the output projection reads them) and `P` (`[batch, heads, t, t]`).
pub(super) fn forward(qkv: &[f32], shape: Shape) -> (Vec<f32>, Vec<f32>) {
    let Shape { batch, heads, t, d } = shape;
    let (width, scale) = (shape.width(), shape.scale());
    let mut out = vec![0.0f32; batch * t * width];
    let mut p = vec![0.0f32; batch * heads * t * t];
    out.par_chunks_mut(t * width)
        .zip(p.par_chunks_mut(heads * t * t))
        .zip(qkv.par_chunks(t * 3 * width))
        .for_each(|((out, p), block)| {
            for (h, p) in p.chunks_exact_mut(t * t).enumerate() {
                // S = scale · Q Kᵀ, then the causal softmax of each row in place.
                let keys = part(block, shape, 1, h).transposed();
                matmul(p, t, t, t, d, part(block, shape, 0, h), keys, scale);
                softmax_causal_rows(p, t);
                let values = part(block, shape, 2, h);
                matmul(
                    &mut out[h * d..],
                    width,
                    t,
                    d,
                    t,
                    Mat::rows(p, t),
                    values,
                    1.0,
                );
            }
        });
    (out, p)
}

/// The gradient with respect to `qkv` (`[batch, t, 3 · heads · d]`), from `qkv`, `P` and the
/// output's gradient.
pub(super) fn backward(qkv: &[f32], p: &[f32], grad: &[f32], shape: Shape) -> Vec<f32> {
    let Shape { batch, heads, t, d } = shape;
    let (width, scale) = (shape.width(), shape.scale());
    let mut dqkv = vec![0.0f32; batch * t * 3 * width];
    dqkv.par_chunks_mut(t * 3 * width)
        .zip(qkv.par_chunks(t * 3 * width))
        .zip(p.par_chunks(heads * t * t))
        .zip(grad.par_chunks(t * width))
        .for_each(|(((dblock, block), p), grad)| {
            let mut ds = vec![0.0f32; t * t];
            for (h, p) in p.chunks_exact(t * t).enumerate() {
                let g = Mat {
                    data: &grad[h * d..],
                    row_stride: width,
                    col_stride: 1,
                };
                let (q, k, v) = (
                    part(block, shape, 0, h),
                    part(block, shape, 1, h),
                    part(block, shape, 2, h),
                );
                let at = |part: usize| part * width + h * d;
                // dV = Pᵀ dO
                matmul(
                    &mut dblock[at(2)..],
                    3 * width,
                    t,
                    d,
                    t,
                    Mat::cols(p, t),
                    g,
                    1.0,
                );
                // dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(P ⊙ dP)) in place.
                matmul(&mut ds, t, t, t, d, g, v.transposed(), 1.0);
                softmax_backward_causal_rows(&mut ds, p, t);
                // dQ = scale · dS K, dK = scale · dSᵀ Q
                matmul(
                    &mut dblock[at(0)..],
                    3 * width,
                    t,
                    d,
                    t,
                    Mat::rows(&ds, t),
                    k,
                    scale,
                );
                matmul(
                    &mut dblock[at(1)..],
                    3 * width,
                    t,
                    d,
                    t,
                    Mat::cols(&ds, t),
                    q,
                    scale,
                );
            }
        });
    dqkv
}

multiversion! {
    /// Row `i` of `p` (`[t, t]`): the softmax of `row[..=i]` in place, 0 after `i` (the future).
    fn softmax_causal_rows(p: &mut [f32], t: usize) {
        for (i, row) in p.chunks_exact_mut(t).enumerate() {
            let (seen, future) = row.split_at_mut(i + 1);
            let shift = max(seen);
            for x in seen.iter_mut() {
                *x = exp_nonpositive(*x - shift);
            }
            let inverse = 1.0 / sum(seen);
            for x in seen.iter_mut() {
                *x *= inverse;
            }
            future.fill(0.0);
        }
    }
}

multiversion! {
    /// Row `i` of `ds` (`[t, t]`, holding `dP`): `dS = P ⊙ (dP − Σ P ⊙ dP)` over `..=i`, 0 after.
    fn softmax_backward_causal_rows(ds: &mut [f32], p: &[f32], t: usize) {
        for (i, (row, p)) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate() {
            let (seen, future) = row.split_at_mut(i + 1);
            let dot = dot(seen, &p[..=i]);
            for (x, &p) in seen.iter_mut().zip(p) {
                *x = p * (*x - dot);
            }
            future.fill(0.0);
        }
    }
}
