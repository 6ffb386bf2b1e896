//! Branch-free `Φ` (the normal distribution function) and `exp` for `f32`, written so that a loop over a slice vectorises (no
//! calls, no branches, no table lookups): the pieces of the fused GELU.
//!
//! Both are classic approximations, checked against libm over their whole range in the tests
//! below: `Φ` goes through `erfc` as `t · exp(−z² + P(t))` (a Chebyshev fit with relative error
//! below 1.2e-7 everywhere, so the negative tail keeps its precision), `exp` is the Cephes
//! scheme (`2^n · p(r)` with `r = x − n·ln 2` split in two parts, degree-7 polynomial). Neither uses fused
//! multiply-adds, so every CPU computes the same bits whatever its vector width.

/// `Φ(x)`, the standard normal distribution function, as `0.5 · erfc(−x/√2)`: within 8 ulps
/// from −1 up and a relative 3e-5 in the far negative tail, where `0.5 · (1 + erf(x/√2))`
/// cancels to nothing.
#[inline(always)]
pub(crate) fn normal_cdf(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    // erfc(z) for z ≥ 0 as t · exp(−z² + P(t)), t = 1/(1 + z/2): Chebyshev fit, fractional
    // error below 1.2e-7 for every z (Numerical Recipes, 2nd ed., §6.2, `erfcc`).
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = t * 0.170_872_77 + -0.822_152_23;
    p = t * p + 1.488_515_9;
    p = t * p + -1.135_204;
    p = t * p + 0.278_868_07;
    p = t * p + -0.186_288_06;
    p = t * p + 0.096_784_18;
    p = t * p + 0.374_091_96;
    p = t * p + 1.000_023_7;
    p = t * p + -1.265_512_2;
    let half_erfc = 0.5 * t * exp_nonpositive(p - z * z);
    if x < 0.0 { half_erfc } else { 1.0 - half_erfc }
}

/// `exp(x)` for `x ≤ 0` (what GELU's density and a softmax need), within 2 ulps of
/// `f32::exp`; below −87.3 (where `exp` leaves the normal floats) it returns `exp(−87.3)`.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // Adding 1.5·2^23 rounds to the nearest integer in the mantissa's last bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 0.0);
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = r * 1.987_569_1e-4 + 1.398_2e-3;
    p = r * p + 8.333_452e-3;
    p = r * p + 4.166_579_6e-2;
    p = r * p + 1.666_666_5e-1;
    p = r * p + 0.5;
    let p = p * r * r + r + 1.0;
    // 2^n from the integer that the rounding left in `shifted`'s low mantissa bits.
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// Lanes of the reductions below: a fixed order of operations, whatever the CPU.
const LANES: usize = 8;

/// The largest element (−∞ for an empty slice), reduced in [`LANES`] lanes so that it
/// vectorises.
#[inline(always)]
pub(crate) fn max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = m.max(x);
        }
    }
    tail.iter().fold(
        lanes.into_iter().fold(f32::NEG_INFINITY, f32::max),
        |m, &x| m.max(x),
    )
}

/// `Σ_j exp(x_j − shift)` for `shift ≥ max(x)`, summed in [`LANES`] lanes.
#[inline(always)]
pub(crate) fn sum_exp_shifted(row: &[f32], shift: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (s, &x) in lanes.iter_mut().zip(chunk) {
            *s += exp_nonpositive(x - shift);
        }
    }
    let sum = lanes.iter().sum::<f32>();
    tail.iter()
        .fold(sum, |s, &x| s + exp_nonpositive(x - shift))
}

/// `Σ_j x_j`, in [`LANES`] lanes.
#[inline(always)]
pub(crate) fn sum(row: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (s, &x) in lanes.iter_mut().zip(chunk) {
            *s += x;
        }
    }
    tail.iter().fold(lanes.iter().sum::<f32>(), |s, &x| s + x)
}

/// `Σ_j a_j · b_j`, in [`LANES`] lanes.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = ca.remainder().iter().zip(cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    tail.fold(lanes.iter().sum::<f32>(), |s, (&x, &y)| s + x * y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        if a == b {
            return 0;
        }
        let key = |v: f32| {
            let bits = v.to_bits() as i32;
            if bits < 0 { i32::MIN - bits } else { bits }
        };
        key(a).abs_diff(key(b))
    }

    /// Every 1/4096 of `[-12, 12]` against `0.5 · erfc(−x/√2)` in f64: ≤ 8 ulps from −1 up, and
    /// a relative 3e-5 in the far negative tail (rounding `z²` in f32) — where flex's
    /// `0.5 · (1 + erf(x/√2))` is off by 700 ulps already at −3 (it cancels).
    #[test]
    fn normal_cdf_matches_libm() {
        let mut worst = (0.0f32, 0);
        let mut worst_relative = (0.0f32, 0.0f64);
        for i in -12 * 4096..=12 * 4096 {
            let x = i as f32 / 4096.0;
            let exact = 0.5 * libm::erfc(-f64::from(x) * std::f64::consts::FRAC_1_SQRT_2);
            let ours = normal_cdf(x);
            let e = ulps(ours, exact as f32);
            if x >= -1.0 && e > worst.1 {
                worst = (x, e);
            }
            let relative = (f64::from(ours) - exact).abs() / exact;
            if relative > worst_relative.1 {
                worst_relative = (x, relative);
            }
        }
        assert!(worst.1 <= 8, "{} ulps at {}", worst.1, worst.0);
        assert!(
            worst_relative.1 <= 3e-5,
            "relative {} at {}",
            worst_relative.1,
            worst_relative.0
        );
        assert_eq!(normal_cdf(0.0), 0.5);
        assert_eq!(normal_cdf(20.0), 1.0);
        assert!(normal_cdf(-20.0) < 1e-37);
    }

    #[test]
    fn exp_matches_libm() {
        let mut worst = (0.0f32, 0);
        for i in 0..=87 * 4096 {
            let x = -(i as f32) / 4096.0;
            let e = ulps(exp_nonpositive(x), x.exp());
            if e > worst.1 {
                worst = (x, e);
            }
        }
        assert!(worst.1 <= 2, "{} ulps at {}", worst.1, worst.0);
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e4) > 0.0 && exp_nonpositive(-1e4) < 1e-37);
    }
}
