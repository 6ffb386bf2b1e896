//! The flex backend's fused kernels: contiguous `f32` slices in, a fresh buffer out, split over
//! rayon's pool when large. Other dtypes and shapes fall back to burn's composition.
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::ops::{ActivationOps, ModuleOps};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{DType, TensorMetadata};
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::attention::{self, Shape};
use super::cached_attention;
use super::gelu::{gelu_backward_slice, gelu_slice};
use super::layer_norm;
use super::linear;
use super::logprobs::{logprobs_backward_rows, logprobs_rows};
use super::matrix::Mat;
use super::{Kernels, composed};

/// Elements per parallel task: large enough that a task outweighs its scheduling.
const TASK: usize = 1 << 15;

impl Kernels for Flex {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 {
            return <Flex as ActivationOps<Flex>>::gelu(x);
        }
        let input = contiguous(&x);
        let xs = f32s(&input);
        let mut out = vec![0.0f32; xs.len()];
        in_tasks(&mut out, 1, |range, out| gelu_slice(&xs[range], out));
        from_vec(out, &x)
    }

    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 || grad.dtype() != DType::F32 || x.shape() != grad.shape() {
            return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
        }
        let (input, upstream) = (contiguous(&x), contiguous(&grad));
        let (xs, gs) = (f32s(&input), f32s(&upstream));
        let mut out = vec![0.0f32; xs.len()];
        in_tasks(&mut out, 1, |range, out| {
            gelu_backward_slice(&xs[range.clone()], &gs[range], out)
        });
        from_vec(out, &x)
    }

    fn fused_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        if logits.dtype() != DType::F32 || logits.shape().num_dims() != 2 {
            return composed::logprobs::<Flex>(logits, targets);
        }
        let [rows, vocab] = logits.shape().dims::<2>();
        let input = contiguous(&logits);
        let (xs, ts) = (f32s(&input), ids(targets, rows));
        let mut out = vec![0.0f32; rows];
        let per_task = (TASK / vocab.max(1)).max(1);
        out.par_chunks_mut(per_task)
            .enumerate()
            .for_each(|(i, out)| {
                let rows = i * per_task..i * per_task + out.len();
                logprobs_rows(
                    &xs[rows.start * vocab..rows.end * vocab],
                    vocab,
                    &ts[rows],
                    out,
                )
            });
        FlexTensor::from_data(TensorData::new(out, [rows]))
    }

    fn fused_logprobs_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        if logits.dtype() != DType::F32 || logits.shape().num_dims() != 2 {
            return composed::logprobs_backward::<Flex>(logits, targets, grad);
        }
        let [rows, vocab] = logits.shape().dims::<2>();
        let (input, upstream) = (contiguous(&logits), contiguous(&grad));
        let (xs, gs, ts) = (f32s(&input), f32s(&upstream), ids(targets, rows));
        let mut out = vec![0.0f32; rows * vocab];
        in_tasks(&mut out, vocab, |range, out| {
            let rows = range.start / vocab..range.end / vocab;
            logprobs_backward_rows(&xs[range], vocab, &ts[rows.clone()], &gs[rows], out)
        });
        from_vec(out, &logits)
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        if !norm_shapes(&x, &gamma, Some(&beta)) {
            return <Flex as ModuleOps<Flex>>::layer_norm(x, gamma, Some(beta), eps);
        }
        let [x_, gamma, beta] = [&x, &gamma, &beta].map(contiguous);
        let out = layer_norm::forward(f32s(&x_), f32s(&gamma), f32s(&beta), eps as f32);
        from_vec(out, &x)
    }

    fn fused_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !norm_shapes(&x, &gamma, None) || grad.shape() != x.shape() || grad.dtype() != DType::F32
        {
            return composed::layer_norm_backward::<Flex>(x, gamma, grad, eps);
        }
        let [x_, gamma_, grad] = [&x, &gamma, &grad].map(contiguous);
        let (dx, dgamma, dbeta) =
            layer_norm::backward(f32s(&x_), f32s(&gamma_), f32s(&grad), eps as f32);
        (
            from_vec(dx, &x),
            from_vec(dgamma, &gamma),
            from_vec(dbeta, &gamma),
        )
    }

    fn fused_self_attention(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        Self::fused_self_attention_forward(qkv, heads).0
    }

    fn fused_self_attention_forward(
        qkv: FloatTensor<Self>,
        heads: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let Some(shape) = attention_shape(&qkv, heads) else {
            return composed::self_attention_forward::<Flex>(qkv, heads);
        };
        let qkv = contiguous(&qkv);
        let (out, p) = attention::forward(f32s(&qkv), shape);
        let Shape { batch, t, d, .. } = shape;
        (
            FlexTensor::from_data(TensorData::new(out, [batch, t, heads * d])),
            FlexTensor::from_data(TensorData::new(p, [batch, heads, t, t])),
        )
    }

    fn fused_self_attention_backward(
        qkv: FloatTensor<Self>,
        p: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        let Some(shape) = attention_shape(&qkv, heads) else {
            return composed::self_attention_backward::<Flex>(qkv, p, grad, heads);
        };
        let [qkv, p, grad] = [&qkv, &p, &grad].map(contiguous);
        from_vec(
            attention::backward(f32s(&qkv), f32s(&p), f32s(&grad), shape),
            &qkv,
        )
    }

    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let Some([rows, d_in, d_out]) = linear_shape(&x, &weight, false) else {
            return <Flex as ModuleOps<Flex>>::linear(x, weight, None);
        };
        let (input, weight) = (contiguous(&x), positive(weight));
        let out = linear::forward(f32s(&input), rows, d_in, mat(&weight), d_out);
        with_last(out, &x, d_out)
    }

    fn fused_linear_backward_x(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let Some([rows, d_out, d_in]) = linear_shape(&grad, &weight, true) else {
            return <Flex as ModuleOps<Flex>>::linear_x_backward(weight, grad);
        };
        let (upstream, weight) = (contiguous(&grad), positive(weight));
        let dx = linear::backward_x(f32s(&upstream), rows, d_out, mat(&weight), d_in);
        with_last(dx, &grad, d_in)
    }

    fn fused_linear_backward_weight(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (shape, grad_shape) = (x.shape(), grad.shape());
        let dims = shape.num_dims();
        let fits = x.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && dims >= 2
            && grad_shape.num_dims() == dims
            && (0..dims - 1).all(|i| grad_shape[i] == shape[i])
            && shape[dims - 1] > 0;
        if !fits {
            return <Flex as ModuleOps<Flex>>::linear_weight_backward(x, grad);
        }
        let (d_in, d_out) = (shape[dims - 1], grad_shape[dims - 1]);
        let rows = shape.num_elements() / d_in;
        let (input, upstream) = (contiguous(&x), contiguous(&grad));
        let dw = linear::backward_weight(f32s(&input), f32s(&upstream), rows, d_in, d_out);
        FlexTensor::from_data(TensorData::new(dw, [d_in, d_out]))
    }

    fn fused_cached_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        cache_key: FloatTensor<Self>,
        cache_value: FloatTensor<Self>,
        len: usize,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let Some(shape) = cache_shape(&query, &key, &value, &cache_key, &cache_value, len, &bias)
        else {
            return composed::cached_attention::<Flex>(
                query,
                key,
                value,
                cache_key,
                cache_value,
                len,
                bias,
            );
        };
        let [query, key, value, bias] = [query, key, value, bias].map(row_readable);
        let (mut cache_key, mut cache_value) = (dense(cache_key), dense(cache_value));
        let inputs = cached_attention::Inputs {
            query: rows(&query),
            key: rows(&key),
            value: rows(&value),
            bias: rows(&bias),
        };
        let out = cached_attention::forward(
            inputs,
            cache_key.storage_mut::<f32>(),
            cache_value.storage_mut::<f32>(),
            shape,
        );
        let width = shape.heads * shape.d;
        let out = FlexTensor::from_data(TensorData::new(out, [shape.batch, shape.t, width]));
        (out, cache_key, cache_value)
    }
}

/// `[rows, width, other]` of a product of `x` (`[..., width]`, f32, rank ≥ 2) with `weight`
/// (`[width, other]`, or `[other, width]` read transposed when `transposed`), if it is one.
fn linear_shape(x: &FlexTensor, weight: &FlexTensor, transposed: bool) -> Option<[usize; 3]> {
    let shape = x.shape();
    let dims = shape.num_dims();
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || dims < 2 {
        return None;
    }
    if weight.shape().num_dims() != 2 {
        return None;
    }
    let [w_rows, w_cols] = weight.shape().dims::<2>();
    let (width, other) = if transposed {
        (w_cols, w_rows)
    } else {
        (w_rows, w_cols)
    };
    let fits = shape[dims - 1] == width && width > 0 && other > 0;
    fits.then(|| [shape.num_elements() / width, width, other])
}

/// `tensor` itself when no stride is negative, else a contiguous copy: what [`mat`] reads.
fn positive(tensor: FlexTensor) -> FlexTensor {
    if tensor.layout().strides().iter().all(|&s| s >= 0) {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// A 2-D tensor that [`positive`] passed as a strided matrix view.
fn mat(tensor: &FlexTensor) -> Mat<'_> {
    let layout = tensor.layout();
    Mat {
        data: &tensor.storage::<f32>()[layout.start_offset()..],
        row_stride: layout.strides()[0] as usize,
        col_stride: layout.strides()[1] as usize,
    }
}

/// The cached-attention kernel's problem, if the inputs are f32 and shaped as
/// [`Kernels::fused_cached_attention`] documents.
fn cache_shape(
    query: &FlexTensor,
    key: &FlexTensor,
    value: &FlexTensor,
    cache_key: &FlexTensor,
    cache_value: &FlexTensor,
    len: usize,
    bias: &FlexTensor,
) -> Option<cached_attention::Shape> {
    let all = [query, key, value, cache_key, cache_value, bias];
    if all
        .iter()
        .any(|t| t.dtype() != DType::F32 || t.shape().num_dims() != 4)
    {
        return None;
    }
    let [batch, heads, t, d] = query.shape().dims::<4>();
    let [_, kv_heads, capacity, _] = cache_key.shape().dims::<4>();
    let new = [batch, kv_heads, t, d];
    let shape = cached_attention::Shape {
        batch,
        heads,
        kv_heads,
        t,
        d,
        len,
        capacity,
    };
    let fits = kv_heads > 0
        && heads % kv_heads == 0
        && len + t <= capacity
        && key.shape().dims::<4>() == new
        && value.shape().dims::<4>() == new
        && cache_value.shape() == cache_key.shape()
        && cache_key.shape().dims::<4>() == [batch, kv_heads, capacity, d]
        && bias.shape().dims::<4>() == [batch, 1, t, len + t];
    fits.then_some(shape)
}

/// What [`positive`] passes when its rows (last dimension) are also contiguous, else a
/// contiguous copy: what [`rows`] reads.
fn row_readable(tensor: FlexTensor) -> FlexTensor {
    let tensor = positive(tensor);
    let layout = tensor.layout();
    let last = layout.shape().num_dims() - 1;
    if layout.strides()[last] == 1 || layout.shape()[last] <= 1 {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The rows of a `[B, H, T, n]` tensor that [`row_readable`] passed.
fn rows(tensor: &FlexTensor) -> cached_attention::Rows<'_> {
    let layout = tensor.layout();
    let [sb, sh, st, _] = [0, 1, 2, 3].map(|i| layout.strides()[i] as usize);
    cached_attention::Rows {
        data: tensor.storage::<f32>(),
        offset: layout.start_offset(),
        strides: [sb, sh, st],
        len: layout.shape()[3],
    }
}

/// `tensor` as a buffer of exactly its elements in row-major order (itself when it already is).
fn dense(tensor: FlexTensor) -> FlexTensor {
    let n = tensor.shape().num_elements();
    if tensor.layout().contiguous_offsets() == Some((0, n)) && tensor.storage::<f32>().len() == n {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// Whether the kernel takes these: f32, `γ` (and `β`) one row wide.
fn norm_shapes(x: &FlexTensor, gamma: &FlexTensor, beta: Option<&FlexTensor>) -> bool {
    let shape = x.shape();
    let width = shape.num_dims().checked_sub(1).map(|last| shape[last]);
    let param = |p: &FlexTensor| p.dtype() == DType::F32 && Some(p.shape().num_elements()) == width;
    x.dtype() == DType::F32
        && width.is_some_and(|w| w > 0)
        && param(gamma)
        && beta.is_none_or(param)
}

/// The kernel's view of an f32 `[B, T, 3·heads·d]` tensor, if it is one.
fn attention_shape(qkv: &FlexTensor, heads: usize) -> Option<Shape> {
    let shape = qkv.shape();
    if qkv.dtype() != DType::F32 || shape.num_dims() != 3 || heads == 0 {
        return None;
    }
    let [batch, t, width] = shape.dims::<3>();
    let d = width / (3 * heads);
    (d > 0 && width == 3 * heads * d).then_some(Shape { batch, heads, t, d })
}

fn contiguous(tensor: &FlexTensor) -> FlexTensor {
    if tensor.as_slice::<f32>().is_some() {
        tensor.clone()
    } else {
        tensor.to_contiguous()
    }
}

fn f32s(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// Token ids as `i64`, whatever integer dtype they came in.
fn ids(targets: FlexTensor, rows: usize) -> Vec<i64> {
    let ids: Vec<i64> = targets.into_data().iter::<i64>().collect();
    assert_eq!(ids.len(), rows, "one target per row of logits");
    ids
}

fn from_vec(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.shape()))
}

/// `values` shaped as `like` with its last dimension `last` wide.
fn with_last(values: Vec<f32>, like: &FlexTensor, last: usize) -> FlexTensor {
    let mut dims = like.shape().to_vec();
    *dims.last_mut().expect("rank ≥ 1") = last;
    FlexTensor::from_data(TensorData::new(values, dims))
}

/// Runs `kernel(range, out[range])` over `out` in pieces of about [`TASK`] elements (a multiple
/// of `unit`), in parallel when there is more than one.
fn in_tasks(
    out: &mut [f32],
    unit: usize,
    kernel: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    let size = (TASK / unit.max(1)).max(1) * unit.max(1);
    if out.len() <= size {
        let len = out.len();
        return kernel(0..len, out);
    }
    out.par_chunks_mut(size).enumerate().for_each(|(i, out)| {
        let start = i * size;
        kernel(start..start + out.len(), out)
    });
}
