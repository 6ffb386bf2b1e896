//! The key/value cache of autoregressive decoding.
//!
//! Each layer keeps the keys and values of every position seen so far, `[B, H, S, d_head]`; a
//! decode step projects only the new token and appends. Rows that finish are dropped with
//! [`KvCache::keep_rows`] so later steps compute only for live rows.
use burn::tensor::{Int, Tensor};

/// Keys and values of all layers for a batch of sequences being decoded.
#[derive(Debug, Default)]
pub(crate) struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
}

impl KvCache {
    pub(crate) fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
        }
    }

    /// Appends this step's keys and values `[B, H, T_new, d_head]` for `layer` and returns the
    /// full keys and values `[B, H, S + T_new, d_head]`.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        key: Tensor<4>,
        value: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let (key, value) = match self.layers[layer].take() {
            Some((old_key, old_value)) => (
                Tensor::cat(vec![old_key, key], 2),
                Tensor::cat(vec![old_value, value], 2),
            ),
            None => (key, value),
        };
        self.layers[layer] = Some((key.clone(), value.clone()));
        (key, value)
    }

    /// Keeps only the batch rows listed in `rows` (in that order).
    pub(crate) fn keep_rows(&mut self, rows: Tensor<1, Int>) {
        for (key, value) in self.layers.iter_mut().flatten() {
            *key = key.clone().select(0, rows.clone());
            *value = value.clone().select(0, rows.clone());
        }
    }
}
