//! Attention of new positions over a preallocated key/value cache, the decoding kernel: the new
//! keys and values are written into the cache in place, then each query row attends over the
//! cached and new keys — `softmax(scale · q Kᵀ + bias) V` — reading the heads through strides,
//! grouped-query heads included, and writing the output as `[B, T, H·d]`, the layout the output
//! projection reads.
//!
//! Why: appending by concatenation copied the whole cache every step of every layer, and burn's
//! attention copied queries, keys and values to contiguous heads again and its output back;
//! with a decode step's tiny products that copying was a fifth of batch-32 sampling
//! (docs/results.md "Performance"). A decode step's products are matrix-vector (one query row
//! per head): vectorised loops over four keys at a time; a prompt's several positions go through
//! two `gemm` products per head. The decode step is memory-bound — it reads every layer's cache
//! once — so its time is the cache's size, not the arithmetic.
use rayon::prelude::*;

use super::math::{dot, exp_nonpositive, max, sum};
use super::matrix::{Mat, matmul};

/// A `[B, H, T, n]` float tensor read through strides whose last dimension is contiguous: the
/// row of `n` values at `(b, h, t)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rows<'a> {
    pub(super) data: &'a [f32],
    pub(super) offset: usize,
    /// Strides of `b`, `h` and `t`, in elements.
    pub(super) strides: [usize; 3],
    /// Values per row.
    pub(super) len: usize,
}

impl<'a> Rows<'a> {
    fn row(&self, b: usize, h: usize, t: usize) -> &'a [f32] {
        let [sb, sh, st] = self.strides;
        let start = self.offset + b * sb + h * sh + t * st;
        &self.data[start..start + self.len]
    }
}

/// One cached-attention problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    pub(super) batch: usize,
    /// Query heads.
    pub(super) heads: usize,
    /// Key/value heads; each serves `heads / kv_heads` consecutive query heads.
    pub(super) kv_heads: usize,
    /// New positions.
    pub(super) t: usize,
    /// Head width.
    pub(super) d: usize,
    /// Positions already in the cache.
    pub(super) len: usize,
    /// Positions the cache holds room for (`len + t ≤ capacity`).
    pub(super) capacity: usize,
}

impl Shape {
    /// Keys attended by every query: the cached ones and the new ones.
    fn keys(&self) -> usize {
        self.len + self.t
    }
}

/// Inputs of [`forward`]: queries `[B, H, T, d]`, new keys and values `[B, Hkv, T, d]`, the
/// additive bias `[B, 1, T, len + T]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Inputs<'a> {
    pub(super) query: Rows<'a>,
    pub(super) key: Rows<'a>,
    pub(super) value: Rows<'a>,
    pub(super) bias: Rows<'a>,
}

/// Writes the new keys and values into `cache_key` and `cache_value` (both `[B, Hkv,
/// capacity, d]`, contiguous) at positions `len..len + t`, then returns the attention's output
/// `[B, T, H·d]`.
pub(super) fn forward(
    inputs: Inputs<'_>,
    cache_key: &mut [f32],
    cache_value: &mut [f32],
    shape: Shape,
) -> Vec<f32> {
    let Shape {
        batch,
        heads,
        kv_heads,
        t,
        d,
        len,
        capacity,
    } = shape;
    assert!(len + t <= capacity, "the cache holds {capacity} positions");
    for (cache, new) in [
        (&mut *cache_key, inputs.key),
        (&mut *cache_value, inputs.value),
    ] {
        for b in 0..batch {
            for h in 0..kv_heads {
                let head = (b * kv_heads + h) * capacity * d;
                for i in 0..t {
                    let at = head + (len + i) * d;
                    cache[at..at + d].copy_from_slice(new.row(b, h, i));
                }
            }
        }
    }
    let (cache_key, cache_value) = (&*cache_key, &*cache_value);
    let width = heads * d;
    let mut out = vec![0.0f32; batch * t * width];
    let attend_row = |b: usize, out: &mut [f32]| {
        batch_row(inputs, cache_key, cache_value, shape, b, out);
    };
    // A decode step (t = 1) is a few thousand multiply-adds per row: parallel only for prompts.
    let work = batch * heads * t * shape.keys() * d;
    if work >= 1 << 18 && batch > 1 {
        out.par_chunks_mut(t * width)
            .enumerate()
            .for_each(|(b, out)| attend_row(b, out));
    } else {
        for (b, out) in out.chunks_mut(t * width).enumerate() {
            attend_row(b, out);
        }
    }
    out
}

multiversion! {
    /// Batch row `b` of [`forward`]'s output, `[T, H·d]`, every head.
    fn batch_row(
        inputs: Inputs<'_>,
        cache_key: &[f32],
        cache_value: &[f32],
        shape: Shape,
        b: usize,
        out: &mut [f32]
    ) {
        let Shape { heads, kv_heads, t, d, capacity, .. } = shape;
        let (width, keys) = (heads * d, shape.keys());
        let mut scores = vec![0.0f32; t * keys];
        for h in 0..heads {
            let kv = b * kv_heads + h / (heads / kv_heads);
            let cached_keys = &cache_key[kv * capacity * d..][..keys * d];
            let cached_values = &cache_value[kv * capacity * d..][..keys * d];
            if t == 1 {
                let out = &mut out[h * d..][..d];
                decode_row(inputs.query.row(b, h, 0), cached_keys, cached_values,
                    inputs.bias.row(b, 0, 0), &mut scores, out);
                continue;
            }
            // Several new positions (a prompt): the two products through `gemm`.
            let q = inputs.query;
            let queries = Mat {
                data: &q.data[q.offset + b * q.strides[0] + h * q.strides[1]..],
                row_stride: q.strides[2],
                col_stride: 1,
            };
            let scale = 1.0 / (d as f32).sqrt();
            let key_t = Mat::rows(cached_keys, d).transposed();
            matmul(&mut scores, keys, t, keys, d, queries, key_t, scale);
            for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
                for (s, &bias) in row.iter_mut().zip(inputs.bias.row(b, 0, i)) {
                    *s += bias;
                }
                softmax(row);
            }
            let values = Mat::rows(cached_values, d);
            let probs = Mat::rows(&scores, keys);
            matmul(&mut out[h * d..], width, t, d, keys, probs, values, 1.0);
        }
    }
}

/// `row ← softmax(row)` in place.
#[inline(always)]
fn softmax(row: &mut [f32]) {
    let shift = max(row);
    for x in row.iter_mut() {
        *x = exp_nonpositive(*x - shift);
    }
    let inverse = 1.0 / sum(row);
    for x in row.iter_mut() {
        *x *= inverse;
    }
}

/// One query row over `keys` / `values` (`[S, d]`, row-major): `out = softmax(scale · K q +
/// bias) V`, four keys at a time (independent sums, one pass over `out` per four values).
#[inline(always)]
fn decode_row(
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    bias: &[f32],
    scores: &mut [f32],
    out: &mut [f32],
) {
    let d = query.len();
    let scale = 1.0 / (d as f32).sqrt();
    let scores = &mut scores[..bias.len()];
    let mut key_blocks = keys.chunks_exact(4 * d);
    let mut score_blocks = scores.chunks_exact_mut(4);
    for (block, score) in key_blocks.by_ref().zip(score_blocks.by_ref()) {
        let (k01, k23) = block.split_at(2 * d);
        let ((k0, k1), (k2, k3)) = (k01.split_at(d), k23.split_at(d));
        score.copy_from_slice(&dot4(query, [k0, k1, k2, k3]));
    }
    let tail = score_blocks.into_remainder();
    for (score, key) in tail.iter_mut().zip(key_blocks.remainder().chunks_exact(d)) {
        *score = dot(query, key);
    }
    for (score, &bias) in scores.iter_mut().zip(bias) {
        *score = *score * scale + bias;
    }
    softmax(scores);
    out.fill(0.0);
    let mut value_blocks = values.chunks_exact(4 * d);
    let mut weight_blocks = scores.chunks_exact(4);
    for (block, w) in value_blocks.by_ref().zip(weight_blocks.by_ref()) {
        let (v01, v23) = block.split_at(2 * d);
        let ((v0, v1), (v2, v3)) = (v01.split_at(d), v23.split_at(d));
        for ((((o, &a), &b), &c), &e) in out.iter_mut().zip(v0).zip(v1).zip(v2).zip(v3) {
            *o += w[0] * a + w[1] * b + w[2] * c + w[3] * e;
        }
    }
    let rest = weight_blocks.remainder();
    for (&w, value) in rest.iter().zip(value_blocks.remainder().chunks_exact(d)) {
        for (o, &v) in out.iter_mut().zip(value) {
            *o += w * v;
        }
    }
}

/// [`dot`] of `query` with four keys at once (four independent sums; each equals `dot`'s bits).
#[inline(always)]
fn dot4(query: &[f32], keys: [&[f32]; 4]) -> [f32; 4] {
    const LANES: usize = 8;
    let (mut a0, mut a1, mut a2, mut a3) =
        ([0.0f32; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES]);
    let full = query.len() / LANES * LANES;
    let [k0, k1, k2, k3] = keys.map(|key| &key[..query.len()]);
    let mut j = 0;
    while j < full {
        // One lane loop per key, each a single vector multiply-add along `d`.
        let q: &[f32; LANES] = query[j..j + LANES].try_into().expect("a full chunk");
        let lane = |acc: &mut [f32; LANES], key: &[f32]| {
            let key: &[f32; LANES] = key[j..j + LANES].try_into().expect("a full chunk");
            for l in 0..LANES {
                acc[l] += q[l] * key[l];
            }
        };
        lane(&mut a0, k0);
        lane(&mut a1, k1);
        lane(&mut a2, k2);
        lane(&mut a3, k3);
        j += LANES;
    }
    let finish = |acc: [f32; LANES], key: &[f32]| {
        let tail = query[full..].iter().zip(&key[full..]);
        tail.fold(acc.iter().sum::<f32>(), |s, (&x, &y)| s + x * y)
    };
    [
        finish(a0, k0),
        finish(a1, k1),
        finish(a2, k2),
        finish(a3, k3),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contiguous(data: &[f32], dims: [usize; 4]) -> Rows<'_> {
        let [_, h, t, n] = dims;
        Rows {
            data,
            offset: 0,
            strides: [h * t * n, t * n, n],
            len: n,
        }
    }

    /// Against a direct f64 evaluation of the formula on a grouped-query problem with cached
    /// positions, a causal bias over the new ones, and a fully masked query row: a prompt's
    /// several new positions (the `gemm` path) and one decode step (the row path, keys off its
    /// blocks of four).
    #[test]
    fn matches_the_formula_in_f64() {
        for (t, len, capacity) in [(3, 4, 9), (1, 9, 12)] {
            check(Shape {
                batch: 2,
                heads: 4,
                kv_heads: 2,
                t,
                d: 11,
                len,
                capacity,
            });
        }
    }

    fn check(shape: Shape) {
        let Shape {
            batch,
            heads,
            kv_heads,
            t,
            d,
            len,
            capacity,
        } = shape;
        let value = |i: usize| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 3.0;
        let draw = |n: usize, salt: usize| (0..n).map(|i| value(i + salt)).collect::<Vec<f32>>();
        let q = draw(batch * heads * t * d, 0);
        let k = draw(batch * kv_heads * t * d, 7);
        let v = draw(batch * kv_heads * t * d, 13);
        let mut cache_key = draw(batch * kv_heads * capacity * d, 3);
        let mut cache_value = draw(batch * kv_heads * capacity * d, 5);
        let (old_key, old_value) = (cache_key.clone(), cache_value.clone());
        // Causal over the new positions; the last row's first query sees nothing (all masked).
        let keys = shape.keys();
        let bias: Vec<f32> = (0..batch * t * keys)
            .map(|i| {
                let (b, q, s) = (i / (t * keys), i / keys % t, i % keys);
                let visible = s <= len + q && !(b == batch - 1 && q == 0);
                if visible { 0.0 } else { -1.0e9 }
            })
            .collect();
        let inputs = Inputs {
            query: contiguous(&q, [batch, heads, t, d]),
            key: contiguous(&k, [batch, kv_heads, t, d]),
            value: contiguous(&v, [batch, kv_heads, t, d]),
            bias: contiguous(&bias, [batch, 1, t, keys]),
        };
        let out = forward(inputs, &mut cache_key, &mut cache_value, shape);
        let at = |b: usize, h: usize, s: usize| ((b * kv_heads + h) * capacity + s) * d;
        for b in 0..batch {
            for h in 0..kv_heads {
                for s in 0..capacity {
                    let c = at(b, h, s);
                    let (expected_k, expected_v) = if (len..len + t).contains(&s) {
                        let i = ((b * kv_heads + h) * t + s - len) * d;
                        (&k[i..i + d], &v[i..i + d])
                    } else {
                        (&old_key[c..c + d], &old_value[c..c + d])
                    };
                    assert_eq!(&cache_key[c..c + d], expected_k, "key {b} {h} {s}");
                    assert_eq!(&cache_value[c..c + d], expected_v, "value {b} {h} {s}");
                }
            }
        }
        let mut worst = 0.0f64;
        for b in 0..batch {
            for h in 0..heads {
                let kv = h / (heads / kv_heads);
                for i in 0..t {
                    let qi = ((b * heads + h) * t + i) * d;
                    let scores: Vec<f64> = (0..keys)
                        .map(|s| {
                            let c = at(b, kv, s);
                            let dot: f64 = (0..d)
                                .map(|j| q[qi + j] as f64 * cache_key[c + j] as f64)
                                .sum();
                            // The bias added in f32, as the kernel does: a fully masked row's
                            // scores round to one value (a uniform softmax), as in burn.
                            let scaled = (dot / (d as f64).sqrt()) as f32;
                            (scaled + bias[(b * t + i) * keys + s]) as f64
                        })
                        .collect();
                    let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                    let total: f64 = w.iter().sum();
                    for j in 0..d {
                        let expected: f64 = (0..keys)
                            .map(|s| w[s] / total * cache_value[at(b, kv, s) + j] as f64)
                            .sum();
                        let ours = out[(b * t + i) * heads * d + h * d + j] as f64;
                        worst = worst.max((ours - expected).abs());
                    }
                }
            }
        }
        assert!(worst <= 2e-6, "{shape:?}: {worst}");
    }
}
