//! The linear layers' products on the `gemm` crate, straight into fresh buffers: `y = x W`,
//! `dx = dy Wᵀ`, `dW = xᵀ dy`, with the weight (and its transpose) read through strides.
//!
//! Why: flex's matmul zero-fills every output before `gemm` overwrites it (a `memset` of the
//! largest tensors of a step) and asks `gemm` for rayon parallelism from inside the learner's
//! shards, which already keep every core busy. Here the output is written once, and a product
//! runs on the calling thread when it is already one of rayon's workers (parallel otherwise,
//! when large).
use super::matrix::{self, Mat};

/// A product on the calling thread when it is one of rayon's workers, else on the pool.
fn product(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
    matrix::product(m, n, k, a, b, rayon::current_thread_index().is_none())
}

/// `y = x W`: `x` is `rows × d_in` (row-major), `w` a `d_in × d_out` view; `y` is `rows ×
/// d_out`.
pub(super) fn forward(x: &[f32], rows: usize, d_in: usize, w: Mat<'_>, d_out: usize) -> Vec<f32> {
    product(rows, d_out, d_in, Mat::rows(x, d_in), w)
}

/// `dx = dy Wᵀ` (`rows × d_in`) from the output's gradient `dy` (`rows × d_out`).
pub(super) fn backward_x(
    grad: &[f32],
    rows: usize,
    d_out: usize,
    w: Mat<'_>,
    d_in: usize,
) -> Vec<f32> {
    product(rows, d_in, d_out, Mat::rows(grad, d_out), w.transposed())
}

/// `dW = xᵀ dy` (`d_in × d_out`), summed over the rows.
pub(super) fn backward_weight(
    x: &[f32],
    grad: &[f32],
    rows: usize,
    d_in: usize,
    d_out: usize,
) -> Vec<f32> {
    let x_t = Mat::rows(x, d_in).transposed();
    product(d_in, d_out, rows, x_t, Mat::rows(grad, d_out))
}
