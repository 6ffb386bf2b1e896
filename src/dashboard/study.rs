//! A study's variants overlaid: per variant, the dev accuracy at each evaluation step and the
//! smoothed reward, as a mean over the seeds with a 95 % t-interval band — the figure a study
//! is read from (`mgrpo experiment` writes the same intervals into its table).
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::series::{downsample, smooth};

/// Two-sided 95 % Student-t quantiles for 1..=30 degrees of freedom (then the normal's).
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Mean and 95 % half-width of `v` (half-width 0 for a single value).
pub fn mean_interval(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    if n == 0 {
        return (f64::NAN, 0.0);
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(1.96);
    (mean, t * (var / n as f64).sqrt())
}

/// One run's contribution: its variant, dev points `(step, accuracy)` and per-step rewards.
pub struct RunCurves {
    /// Its variant.
    pub variant: String,
    /// Dev evaluations.
    pub dev: Vec<(u64, f64)>,
    /// Per-step reward.
    pub reward: Vec<(u64, f64)>,
}

/// The bands of each variant: `{variant: {runs, dev: {x, mean, lo, hi}, reward: {…}}}`.
pub fn bands(runs: &[RunCurves], points: usize) -> Value {
    let mut by_variant: BTreeMap<&str, Vec<&RunCurves>> = BTreeMap::new();
    for r in runs {
        by_variant.entry(&r.variant).or_default().push(r);
    }
    let mut out = serde_json::Map::new();
    for (variant, rs) in by_variant {
        let band = |pick: &dyn Fn(&RunCurves) -> Vec<(u64, f64)>| {
            let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for r in &rs {
                for (s, v) in pick(r) {
                    at.entry(s).or_default().push(v);
                }
            }
            // Only steps every run reached: a band over fewer seeds would jump.
            let (x, stats): (Vec<f64>, Vec<(f64, f64)>) = at
                .iter()
                .filter(|(_, v)| v.len() == rs.len())
                .map(|(s, v)| (*s as f64, mean_interval(v)))
                .unzip();
            let pts = |f: &dyn Fn(&(f64, f64)) -> f64| {
                let p: Vec<(f64, Option<f64>)> = x
                    .iter()
                    .zip(&stats)
                    .map(|(x, s)| (*x, Some(f(s))))
                    .collect();
                downsample(&p, points)
            };
            let mean = pts(&|s| s.0);
            let lo = pts(&|s| s.0 - s.1);
            let hi = pts(&|s| s.0 + s.1);
            json!({"x": mean.x, "mean": mean.y, "lo": lo.y, "hi": hi.y})
        };
        let dev = band(&|r| r.dev.clone());
        let reward = band(&|r| {
            let ys: Vec<Option<f64>> = r.reward.iter().map(|p| Some(p.1)).collect();
            r.reward
                .iter()
                .zip(smooth(&ys, 0.9))
                .filter_map(|(p, s)| Some((p.0, s?)))
                .collect()
        });
        out.insert(
            variant.to_string(),
            json!({"runs": rs.len(), "dev": dev, "reward": reward}),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_matches_the_t_table_and_bands_need_every_seed() {
        let (m, h) = mean_interval(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12);
        // sd 1, n 3: 4.303 / sqrt(3).
        assert!((h - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{h}");
        let runs = vec![
            RunCurves {
                variant: "a".into(),
                dev: vec![(0, 0.2), (10, 0.4)],
                reward: vec![],
            },
            RunCurves {
                variant: "a".into(),
                dev: vec![(0, 0.4)],
                reward: vec![],
            },
        ];
        let b = bands(&runs, 100);
        assert_eq!(b["a"]["runs"], 2);
        assert_eq!(b["a"]["dev"]["x"], json!([0.0]));
        let mean = b["a"]["dev"]["mean"][0].as_f64().unwrap();
        assert!((mean - 0.3).abs() < 1e-12);
    }
}
