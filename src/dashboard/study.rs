//! A study's variants overlaid: per variant, the dev accuracy at each evaluation step and the
//! smoothed reward, as a mean over the seeds with a 95 % t-interval band — the figure a study
//! is read from (`mgrpo experiment` writes the same intervals into its table).
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::series::{downsample, smooth};
use crate::experiment::report::mean_interval;

/// Mean and 95 % half-width of `v` ([`mean_interval`] of the study's report; a single seed's
/// band has no width).
fn band_interval(v: &[f64]) -> (f64, f64) {
    let (mean, half) = mean_interval(v);
    (mean, if half.is_nan() { 0.0 } else { half })
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
                .map(|(s, v)| (*s as f64, band_interval(v)))
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
        let (m, h) = band_interval(&[1.0, 2.0, 3.0]);
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
