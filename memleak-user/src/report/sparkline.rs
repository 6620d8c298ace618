//! Unicode sparklines: `▁▂▃▄▅▆▇█`.

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of `values` at most `width` characters wide: the values are
/// averaged into `width` buckets and scaled between their minimum and
/// maximum. Non-finite values are ignored; an empty or constant input gives
/// a flat line (or an empty string when nothing is finite).
pub fn sparkline(values: &[f64], width: usize) -> String {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() || width == 0 {
        return String::new();
    }
    let buckets = width.min(finite.len());
    let means: Vec<f64> = (0..buckets)
        .map(|b| {
            let lo = b * finite.len() / buckets;
            let hi = ((b + 1) * finite.len() / buckets).max(lo + 1);
            let slice = &finite[lo..hi];
            // Mean of differences from the first value keeps precision for
            // huge, nearly equal values.
            let base = slice[0];
            base + slice.iter().map(|v| v - base).sum::<f64>() / slice.len() as f64
        })
        .collect();
    let min = means.iter().copied().fold(f64::INFINITY, f64::min);
    let max = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = max - min;
    means
        .iter()
        .map(|&v| {
            if !(range > 0.0 && range.is_finite()) {
                return BARS[0];
            }
            let i = ((v - min) / range * 7.0).round() as usize;
            BARS[i.min(7)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            sparkline(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 8),
            "▁▂▃▄▅▆▇█"
        );
        assert_eq!(sparkline(&[5.0; 10], 4), "▁▁▁▁");
        assert_eq!(sparkline(&[], 4), "");
        assert_eq!(sparkline(&[f64::NAN, 1.0, 2.0], 10), "▁█");
        let long: Vec<f64> = (0..1000).map(f64::from).collect();
        let s = sparkline(&long, 20);
        assert_eq!(s.chars().count(), 20);
        assert!(s.starts_with('▁') && s.ends_with('█'));
        assert_eq!(sparkline(&[0.0, f64::MAX], 2), "▁█");
    }
}
