//! Strided matrix views and the `gemm` crate's product behind them: into an existing
//! destination ([`matmul`], the attention kernels' per-head products) or into a fresh buffer
//! written once ([`product`], the linear layers).
use gemm::Parallelism;

/// Products at least this large (`m · n · k`) may use rayon's pool (flex's own threshold).
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// A row-major matrix or the transpose of one, as a slice with (row, column) strides.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mat<'a> {
    pub(super) data: &'a [f32],
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub(super) fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub(super) fn cols(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// The transpose of this view.
    pub(super) fn transposed(self) -> Self {
        Self {
            data: self.data,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// The furthest element a `rows × cols` view reads.
    pub(super) fn last(&self, rows: usize, cols: usize) -> usize {
        (rows - 1) * self.row_stride + (cols - 1) * self.col_stride
    }
}

/// `dst (m × n, rows `dst_stride` apart) = scale · a (m × k) · b (k × n)`, single-threaded
/// (the callers parallelise over the batch).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    dst: &mut [f32],
    dst_stride: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    scale: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        n <= dst_stride && (m - 1) * dst_stride + n <= dst.len(),
        "gemm destination too short"
    );
    if k == 0 {
        for row in dst.chunks_mut(dst_stride).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    assert!(
        a.last(m, k) < a.data.len() && b.last(k, n) < b.data.len(),
        "gemm operand too short"
    );
    // SAFETY: every index the call reads or writes is inside the slices (asserted above), and
    // the destination does not alias the operands (`&mut` against `&`).
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_stride,
            a,
            b,
            scale,
            Parallelism::None,
        )
    }
}

/// `a (m × k) · b (k × n)` as a new row-major `m × n` buffer, written once (never zero-filled
/// first), on rayon's pool when `parallel` and large, else on the calling thread.
pub(super) fn product(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    parallel: bool,
) -> Vec<f32> {
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    assert!(
        a.last(m, k) < a.data.len() && b.last(k, n) < b.data.len(),
        "gemm operand too short"
    );
    let parallelism = if parallel && m * n * k >= PARALLEL_WORK {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    let mut out = Vec::<f32>::with_capacity(m * n);
    // SAFETY: the operands cover every index the call reads (asserted above); the call writes
    // each of the `m · n` elements of `out`'s capacity (rows `n` apart) without reading them,
    // and only then is the length set to cover them.
    unsafe {
        gemm_raw(m, n, k, out.as_mut_ptr(), n, a, b, 1.0, parallelism);
        out.set_len(m * n);
    }
    out
}

/// `dst = scale · a · b` through `gemm` (`read_dst = false`: the old contents are never read).
///
/// # Safety
/// `dst` must be valid for writes of `m` rows of `n` elements, `dst_stride` apart; `a` and `b`
/// must cover every index of an `m × k` and a `k × n` view; `dst` must not alias them.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_stride: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    scale: f32,
    parallelism: Parallelism,
) {
    // SAFETY: the caller's contract above is what `gemm::gemm` requires.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_stride as isize,
            false,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            0.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}
