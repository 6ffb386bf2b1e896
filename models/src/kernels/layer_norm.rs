//! Layer normalisation over the last dimension, `y = (x − μ) / √(σ² + ε) · γ + β`, and its
//! backward, one row at a time. burn composes it from nine tensor ops (means, centring, variance,
//! square root, quotient, scale, shift), each a pass over memory with its own backward node.
//! The parameters' gradients are column sums over all rows: each task of [`TASK_ROWS`] rows
//! (a constant, not the thread count) sums its own, and the tasks' sums are added in task
//! order, so the result does not depend on the machine.
use rayon::prelude::*;

use super::math::{dot, sum};

/// Rows per task of the backward's column sums.
pub(super) const TASK_ROWS: usize = 64;

/// `(x − μ)·r` and `r = 1/√(σ² + ε)` of one row, into `normed`.
#[inline(always)]
fn normalise(row: &[f32], eps: f32, normed: &mut [f32]) -> f32 {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    for (o, &x) in normed.iter_mut().zip(row) {
        *o = x - mean;
    }
    let rstd = 1.0 / (dot(normed, normed) / n + eps).sqrt();
    for o in normed.iter_mut() {
        *o *= rstd;
    }
    rstd
}

multiversion! {
    /// `out = layer_norm(x) · γ + β` for the rows of `x` (each `gamma.len()` wide).
    pub(super) fn forward_rows(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
        let width = gamma.len();
        for (row, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            normalise(row, eps, out);
            for ((o, &g), &b) in out.iter_mut().zip(gamma).zip(beta) {
                *o = *o * g + b;
            }
        }
    }
}

multiversion! {
    /// `dx` of the rows of `x` into `dx`; adds the rows' `dγ = Σ dy·x̂` and `dβ = Σ dy` to
    /// `dgamma`, `dbeta`.
    pub(super) fn backward_rows(
        x: &[f32],
        gamma: &[f32],
        grad: &[f32],
        eps: f32,
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32]
    ) {
        let width = gamma.len();
        let n = width as f32;
        let mut normed = vec![0.0f32; width];
        let mut dnormed = vec![0.0f32; width];
        let rows = x.chunks_exact(width).zip(grad.chunks_exact(width)).zip(dx.chunks_exact_mut(width));
        for ((row, dy), dx) in rows {
            let rstd = normalise(row, eps, &mut normed);
            for (((d, &g), &dy), ((dg, db), &xh)) in dnormed
                .iter_mut()
                .zip(gamma)
                .zip(dy)
                .zip(dgamma.iter_mut().zip(dbeta.iter_mut()).zip(&normed))
            {
                *d = dy * g;
                *dg += dy * xh;
                *db += dy;
            }
            let mean_d = sum(&dnormed) / n;
            let mean_dx = dot(&dnormed, &normed) / n;
            for ((o, &d), &xh) in dx.iter_mut().zip(&dnormed).zip(&normed) {
                *o = rstd * (d - mean_d - xh * mean_dx);
            }
        }
    }
}

/// Layer norm of `x` (rows `gamma.len()` wide), in parallel over row tasks.
pub(super) fn forward(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let width = gamma.len();
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(TASK_ROWS * width)
        .zip(x.par_chunks(TASK_ROWS * width))
        .for_each(|(out, x)| forward_rows(x, gamma, beta, eps, out));
    out
}

/// `(dx, dγ, dβ)` of layer norm at `x` for the output gradient `grad`.
pub(super) fn backward(
    x: &[f32],
    gamma: &[f32],
    grad: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let width = gamma.len();
    let mut dx = vec![0.0f32; x.len()];
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(TASK_ROWS * width)
        .zip(x.par_chunks(TASK_ROWS * width))
        .zip(grad.par_chunks(TASK_ROWS * width))
        .map(|((dx, x), grad)| {
            let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
            backward_rows(x, gamma, grad, eps, dx, &mut dgamma, &mut dbeta);
            (dgamma, dbeta)
        })
        .collect();
    let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
    for (dg, db) in partials {
        dgamma.iter_mut().zip(dg).for_each(|(a, b)| *a += b);
        dbeta.iter_mut().zip(db).for_each(|(a, b)| *a += b);
    }
    (dx, dgamma, dbeta)
}
