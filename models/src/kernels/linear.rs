//! The linear layers' products on the `gemm` crate, straight into fresh buffers: `y = x W`,
//! `dx = dy Wᵀ`, `dW = xᵀ dy`, with the weight (and its transpose) read through strides.
//!
//! Why: flex's matmul zero-fills every output before `gemm` overwrites it (a `memset` of the
//! largest tensors of a step) and asks `gemm` for rayon parallelism from inside the learner's
//! shards, which already keep every core busy. Here the output is written once, and a product
//! runs on the calling thread when it is already one of rayon's workers (parallel otherwise,
//! when large).
use super::attention::Mat;

/// Products at least this large (`m · n · k`) use rayon's pool when called from outside it
/// (flex's own threshold).
const PARALLEL_WORK: usize = 192 * 192 * 192;

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

/// `a (m × k) · b (k × n)` as a new row-major `m × n` buffer.
fn product(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    assert!(
        a.last(m, k) < a.data.len() && b.last(k, n) < b.data.len(),
        "gemm operand too short"
    );
    let parallelism = if rayon::current_thread_index().is_none() && m * n * k >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let mut out = Vec::<f32>::with_capacity(m * n);
    // SAFETY: every index the call reads is inside the operands (asserted above); it writes
    // each of the `m · n` elements of `out`'s capacity exactly once (`read_dst = false`: `dst =
    // 1 · a · b`, the old contents never read), and only then is the length set to cover them.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        out.set_len(m * n);
    }
    out
}
