//! Curves for people: the server downsamples a long run to a few hundred points per series
//! (a 10,000-step run loads as fast as a 100-step one) and smooths the noisy per-step reward
//! (an exponential moving average, TensorBoard's "smoothing"), keeping the raw series beside it.
use serde::Serialize;

/// One series as the page draws it: `x` (steps) and `y`, equally long; `None` is a gap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Steps.
    pub x: Vec<f64>,
    /// Values (`None` where the step has none).
    pub y: Vec<Option<f64>>,
}

/// Averages `points` (sorted by x) into at most `max` buckets of consecutive points: each
/// bucket's mean x and mean y (gaps skipped). The first and last points stay exact, so a
/// curve ends where the run is.
pub fn downsample(points: &[(f64, Option<f64>)], max: usize) -> Series {
    let max = max.max(2);
    if points.len() <= max {
        return Series {
            x: points.iter().map(|p| p.0).collect(),
            y: points.iter().map(|p| p.1).collect(),
        };
    }
    let inner = &points[1..points.len() - 1];
    let buckets = max - 2;
    let mut x = vec![points[0].0];
    let mut y = vec![points[0].1];
    for b in 0..buckets {
        let lo = b * inner.len() / buckets;
        let hi = (b + 1) * inner.len() / buckets;
        let chunk = &inner[lo..hi];
        if chunk.is_empty() {
            continue;
        }
        x.push(chunk.iter().map(|p| p.0).sum::<f64>() / chunk.len() as f64);
        let vals: Vec<f64> = chunk.iter().filter_map(|p| p.1).collect();
        y.push((!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64));
    }
    let last = points[points.len() - 1];
    x.push(last.0);
    y.push(last.1);
    Series { x, y }
}

/// The exponential moving average TensorBoard calls smoothing, debiased so the first points
/// are not pulled towards 0: `weight` 0 is the raw series, 0.9 a strong smoothing.
pub fn smooth(y: &[Option<f64>], weight: f64) -> Vec<Option<f64>> {
    let mut acc = 0.0;
    let mut n = 0i32;
    y.iter()
        .map(|v| {
            let v = (*v)?;
            acc = acc * weight + (1.0 - weight) * v;
            n += 1;
            Some(acc / (1.0 - weight.powi(n)).max(f64::MIN_POSITIVE))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_stay_exact_long_ones_shrink_to_max() {
        let pts: Vec<(f64, Option<f64>)> = (0..5).map(|i| (i as f64, Some(i as f64))).collect();
        let s = downsample(&pts, 10);
        assert_eq!(s.x, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        let pts: Vec<(f64, Option<f64>)> = (0..10_000)
            .map(|i| (i as f64, Some((i % 2) as f64)))
            .collect();
        let s = downsample(&pts, 500);
        assert_eq!(s.x.len(), 500);
        assert_eq!(s.x[0], 0.0);
        assert_eq!(*s.x.last().unwrap(), 9999.0);
        // Alternating 0/1 averages to 1/2 inside.
        assert!((s.y[250].unwrap() - 0.5).abs() < 0.05, "{:?}", s.y[250]);
        assert!(s.x.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn gaps_stay_gaps_and_smoothing_is_debiased() {
        let s = downsample(&[(0.0, None), (1.0, Some(2.0))], 10);
        assert_eq!(s.y, vec![None, Some(2.0)]);
        let sm = smooth(&[Some(1.0), None, Some(1.0), Some(1.0)], 0.9);
        assert_eq!(sm[1], None);
        for v in [sm[0], sm[2], sm[3]] {
            assert!((v.unwrap() - 1.0).abs() < 1e-12, "{v:?}");
        }
        assert_eq!(
            smooth(&[Some(3.0), Some(5.0)], 0.0),
            vec![Some(3.0), Some(5.0)]
        );
    }
}
