//! Host-side, seeded parameter initialisation.
//!
//! burn's initialisers draw from a backend RNG that may be process-global, so two threads
//! initialising models at once would interleave their draws. Drawing every weight on the host
//! from one ChaCha8 stream keyed by `PolicyConfig::init_seed` makes a model a pure function of
//! its config, on every backend.
use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded source of normally distributed weights.
pub(crate) struct ParamInit {
    rng: ChaCha8Rng,
    /// Every weight 0 (a model about to be overwritten by a load).
    zeros: bool,
}

impl ParamInit {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            zeros: false,
        }
    }

    /// A source of zeros, for models whose weights a load will replace.
    pub(crate) fn zeros() -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(0),
            zeros: true,
        }
    }

    /// A zero vector parameter (biases).
    pub(crate) fn zeros_param<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &Device,
    ) -> Param<Tensor<D>> {
        Param::from_tensor(Tensor::zeros(shape, device))
    }

    /// `len` draws from N(0, std²) (Box–Muller on the host).
    fn normals(&mut self, len: usize, std: f64) -> Vec<f32> {
        if self.zeros {
            return vec![0.0; len];
        }
        let mut out = Vec::with_capacity(len + 1);
        while out.len() < len {
            let u1: f64 = 1.0 - self.rng.random::<f64>(); // in (0, 1]
            let u2: f64 = self.rng.random::<f64>();
            let radius = (-2.0 * u1.ln()).sqrt() * std;
            let angle = std::f64::consts::TAU * u2;
            out.push((radius * angle.cos()) as f32);
            out.push((radius * angle.sin()) as f32);
        }
        out.truncate(len);
        out
    }

    fn matrix(&mut self, rows: usize, cols: usize, std: f64, device: &Device) -> Param<Tensor<2>> {
        let values = self.normals(rows * cols, std);
        Param::from_data(TensorData::new(values, [rows, cols]), device)
    }

    /// A bias-free linear layer `[d_input] → [d_output]`.
    pub(crate) fn linear(
        &mut self,
        d_input: usize,
        d_output: usize,
        std: f64,
        device: &Device,
    ) -> Linear {
        Linear {
            weight: self.matrix(d_input, d_output, std, device),
            bias: None,
        }
    }

    /// An embedding table `[n, d]`.
    pub(crate) fn embedding(&mut self, n: usize, d: usize, std: f64, device: &Device) -> Embedding {
        Embedding {
            weight: self.matrix(n, d, std, device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_the_requested_moments_and_are_seeded() {
        let a = ParamInit::new(7).normals(20_001, 0.5);
        let b = ParamInit::new(7).normals(20_001, 0.5);
        assert_eq!(a, b);
        assert_eq!(a.len(), 20_001);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.02, "std {}", var.sqrt());
        assert_ne!(ParamInit::new(8).normals(4, 1.0), a[..4].to_vec());
    }
}
