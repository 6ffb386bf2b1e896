//! GELU's slice kernels: `x · Φ(x)` and its gradient `g · (Φ(x) + x · φ(x))`, with the
//! vectorisable `Φ` and `exp` of [`super::math`] instead of flex's scalar `libm::erff`/`expf`.
use super::math::{exp_nonpositive, normal_cdf};

/// 1/√(2π), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

multiversion! {
    pub(super) fn gelu_slice(xs: &[f32], out: &mut [f32]) {
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = x * normal_cdf(x);
        }
    }
}

multiversion! {
    pub(super) fn gelu_backward_slice(xs: &[f32], gs: &[f32], out: &mut [f32]) {
        for ((o, &x), &g) in out.iter_mut().zip(xs).zip(gs) {
            let pdf = INV_SQRT_2PI * exp_nonpositive(-0.5 * x * x);
            *o = g * (normal_cdf(x) + x * pdf);
        }
    }
}
