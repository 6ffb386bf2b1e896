//! The key/value cache of autoregressive decoding.
//!
//! Each layer keeps the keys and values of every position seen so far in buffers allocated once
//! for the whole decode, `[B, H_kv, capacity, d_head]`; a decode step projects only the new
//! token, and [`KvCache::attend`] writes its key and value in place and attends over the filled
//! prefix in one kernel ([`crate::kernels::cached_attention`]) — no copy of the cache per step,
//! as appending by concatenation made. Rows that finish are dropped with [`KvCache::keep_rows`]
//! so later steps compute only for live rows.
use burn::tensor::{Int, Tensor};

use crate::kernels::{CacheWrite, cached_attention};

/// One layer's keys and values and how many positions they hold.
#[derive(Debug, Clone)]
struct LayerCache {
    key: Tensor<4>,
    value: Tensor<4>,
    len: usize,
}

/// Keys and values of all layers for a batch of sequences being decoded.
#[derive(Debug, Default)]
pub(crate) struct KvCache {
    layers: Vec<Option<LayerCache>>,
    /// Positions to allocate room for on a layer's first step.
    capacity: usize,
}

impl KvCache {
    /// An empty cache for `n_layers` layers, with room for `capacity` positions (it grows past
    /// that if it must).
    pub(crate) fn new(n_layers: usize, capacity: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
            capacity,
        }
    }

    /// Writes this step's keys and values `[B, H_kv, T, d_head]` after `layer`'s cached ones and
    /// attends `query` `[B, H, T, d_head]` over all of them with the additive `bias` `[B, 1, T,
    /// S + T]` (`S` the cached length): the output `[B, T, H · d_head]`.
    pub(crate) fn attend(
        &mut self,
        layer: usize,
        query: Tensor<4>,
        key: Tensor<4>,
        value: Tensor<4>,
        bias: Tensor<4>,
    ) -> Tensor<3> {
        let [batch, kv_heads, t, d] = key.dims();
        let LayerCache {
            key: cache_key,
            value: cache_value,
            len,
        } = match self.layers[layer].take() {
            Some(cache) => cache,
            None => {
                let room = self.capacity.max(t);
                let empty = || Tensor::zeros([batch, kv_heads, room, d], &key.device());
                LayerCache {
                    key: empty(),
                    value: empty(),
                    len: 0,
                }
            }
        };
        let (cache_key, cache_value) = grown(cache_key, cache_value, len + t);
        let write = CacheWrite {
            key,
            value,
            cache_key,
            cache_value,
            len,
        };
        let (out, key, value) = cached_attention(query, write, bias);
        self.layers[layer] = Some(LayerCache {
            key,
            value,
            len: len + t,
        });
        out
    }

    /// Keeps only the batch rows listed in `rows` (in that order).
    pub(crate) fn keep_rows(&mut self, rows: Tensor<1, Int>) {
        for cache in self.layers.iter_mut().flatten() {
            cache.key = cache.key.clone().select(0, rows.clone());
            cache.value = cache.value.clone().select(0, rows.clone());
        }
    }
}

/// The caches with room for at least `needed` positions: themselves, or copies twice as long
/// (a decode that runs past the capacity it was given).
fn grown(key: Tensor<4>, value: Tensor<4>, needed: usize) -> (Tensor<4>, Tensor<4>) {
    let [batch, kv_heads, room, d] = key.dims();
    if needed <= room {
        return (key, value);
    }
    let extra = needed.max(2 * room) - room;
    let pad = |cache: Tensor<4>| {
        let zeros = Tensor::zeros([batch, kv_heads, extra, d], &cache.device());
        Tensor::cat(vec![cache, zeros], 2)
    };
    (pad(key), pad(value))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::KvCache;
    use crate::tensors::NEG_BIAS;
    use crate::test_support::{max_diff, test_device};
    use crate::transformer::{Visibility, attend};

    /// Decoding through a cache that must grow twice (room for one position, steps of 2, 1 and
    /// 3), on an autodiff device, equals attending over the whole sequence at once, at every
    /// real position; grouped heads, and row 1 left-padded by two positions.
    #[test]
    fn a_growing_cache_equals_attention_over_the_whole_sequence() {
        let device = test_device().autodiff();
        let (b, h, kv, d, steps) = (2, 4, 2, 6, [2usize, 1, 3]);
        let s: usize = steps.iter().sum();
        let draw = |heads: usize| {
            Tensor::<4>::random([b, heads, s, d], Distribution::Normal(0.0, 1.0), &device)
        };
        let (query, key, value) = (draw(h), draw(kv), draw(kv));
        let bias = |from: usize, to: usize| {
            let values: Vec<f32> = (0..b)
                .flat_map(|row| {
                    (from..to).flat_map(move |q| {
                        (0..to).map(move |k| {
                            if k <= q && k >= 2 * row {
                                0.0
                            } else {
                                NEG_BIAS
                            }
                        })
                    })
                })
                .collect();
            Tensor::<4>::from_data(
                burn::tensor::TensorData::new(values, [b, 1, to - from, to]),
                &device,
            )
        };
        let whole = attend(
            query.clone(),
            key.clone(),
            value.clone(),
            Visibility::Bias(bias(0, s)),
        );
        let mut cache = KvCache::new(1, 1);
        let mut pieces = Vec::new();
        let mut at = 0;
        for t in steps {
            let part = |x: &Tensor<4>| x.clone().narrow(2, at, t);
            pieces.push(cache.attend(0, part(&query), part(&key), part(&value), bias(at, at + t)));
            at += t;
        }
        let values = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
        // Padding queries (row 1's first two) see no key at all: their uniform average runs over
        // however many keys the call had, so only real positions are compared.
        let real = |all: Vec<f32>| -> Vec<f32> {
            let width = h * d;
            (0..b * s)
                .filter(|i| i % s >= 2 * (i / s))
                .flat_map(|i| all[i * width..(i + 1) * width].to_vec())
                .collect()
        };
        let (whole, stepped) = (real(values(whole)), real(values(Tensor::cat(pieces, 1))));
        assert_eq!(whole.len(), (2 * s - 2) * h * d);
        assert!(
            max_diff(&whole, &stepped) <= 1e-5,
            "{}",
            max_diff(&whole, &stepped)
        );
    }
}
