//! Causal scaled dot-product attention on contiguous `[heads, T, d]` slices (batch and heads
//! flattened), one head per task: `P = softmax(scale · Q Kᵀ + causal mask)`, `O = P V`, and the
//! backward from `P`: `dV = Pᵀ dO`, `dS = P ⊙ (dO Vᵀ − rowsum(P ⊙ dO Vᵀ))`, `dQ = scale · dS K`,
//! `dK = scale · dSᵀ Q`. The five matrix products go to the `gemm` crate (what flex's matmul
//! uses); the softmax and its gradient are one pass over each row of `P`, with the vectorised
//! `exp`. burn's fallback materialises the mask, the scores, their max, shift, `exp`, sum and
//! quotient as separate tensors, each with its own backward (docs/results.md "Performance").
use rayon::prelude::*;

use super::math::{dot, exp_nonpositive, max, sum};

/// One attention problem: `heads` independent `[t, d]` heads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub(super) heads: usize,
    pub(super) t: usize,
    pub(super) d: usize,
}

impl Shape {
    fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }
}

/// `O` and `P` (`[heads, t, d]` and `[heads, t, t]`) of causal attention.
pub(super) fn forward(q: &[f32], k: &[f32], v: &[f32], shape: Shape) -> (Vec<f32>, Vec<f32>) {
    let Shape { heads, t, d } = shape;
    let (mut out, mut p) = (vec![0.0f32; heads * t * d], vec![0.0f32; heads * t * t]);
    out.par_chunks_mut(t * d)
        .zip(p.par_chunks_mut(t * t))
        .enumerate()
        .for_each(|(h, (out, p))| {
            let head = h * t * d..(h + 1) * t * d;
            // S = scale · Q Kᵀ, then row-wise causal softmax in place.
            matmul(
                p,
                t,
                t,
                d,
                Mat::rows(&q[head.clone()], d),
                Mat::cols(&k[head.clone()], d),
                shape.scale(),
            );
            softmax_causal_rows(p, t);
            matmul(out, t, d, t, Mat::rows(p, t), Mat::rows(&v[head], d), 1.0);
        });
    (out, p)
}

/// `(dQ, dK, dV)` of causal attention from its inputs, `P` and the output's gradient.
pub(super) fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &[f32],
    grad: &[f32],
    shape: Shape,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Shape { heads, t, d } = shape;
    let size = heads * t * d;
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; size], vec![0.0f32; size], vec![0.0f32; size]);
    dq.par_chunks_mut(t * d)
        .zip(dk.par_chunks_mut(t * d))
        .zip(dv.par_chunks_mut(t * d))
        .enumerate()
        .for_each(|(h, ((dq, dk), dv))| {
            let head = h * t * d..(h + 1) * t * d;
            let (p, g) = (&p[h * t * t..(h + 1) * t * t], &grad[head.clone()]);
            // dV = Pᵀ dO
            matmul(dv, t, d, t, Mat::cols(p, t), Mat::rows(g, d), 1.0);
            // dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(P ⊙ dP)) in place.
            let mut ds = vec![0.0f32; t * t];
            matmul(
                &mut ds,
                t,
                t,
                d,
                Mat::rows(g, d),
                Mat::cols(&v[head.clone()], d),
                1.0,
            );
            softmax_backward_causal_rows(&mut ds, p, t);
            // dQ = scale · dS K, dK = scale · dSᵀ Q
            let scale = shape.scale();
            matmul(
                dq,
                t,
                d,
                t,
                Mat::rows(&ds, t),
                Mat::rows(&k[head.clone()], d),
                scale,
            );
            matmul(
                dk,
                t,
                d,
                t,
                Mat::cols(&ds, t),
                Mat::rows(&q[head], d),
                scale,
            );
        });
    (dq, dk, dv)
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

/// A row-major matrix or the transpose of one, as a slice with (row, column) strides.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    fn cols(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// The furthest element a `rows × cols` view reads.
    fn last(&self, rows: usize, cols: usize) -> usize {
        (rows - 1) * self.row_stride + (cols - 1) * self.col_stride
    }
}

/// `dst (m × n, row-major) = scale · a (m × k) · b (k × n)`, single-threaded (the callers
/// parallelise over heads).
fn matmul(dst: &mut [f32], m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, scale: f32) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= m * n, "gemm destination too short");
    if k == 0 {
        return dst[..m * n].fill(0.0);
    }
    assert!(
        a.last(m, k) < a.data.len() && b.last(k, n) < b.data.len(),
        "gemm operand too short"
    );
    // SAFETY: every index the call reads or writes is inside the slices (asserted above), the
    // destination does not alias the operands (`&mut` against `&`), and `read_dst = false`
    // makes it write `dst = scale · a · b` without reading the old contents.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
