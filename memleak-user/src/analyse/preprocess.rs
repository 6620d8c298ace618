//! Pre-processing of one process's series before any model sees it:
//! clean, drop the warm-up, split at gaps, resample onto a uniform grid.
//!
//! The store densifies series onto the sampler's ticks, so consecutive
//! points are normally one interval apart; a longer gap means the sampler did
//! not look (recorder stalled, machine suspended). A line must not be drawn
//! across that: the series is split there and each segment is analysed on
//! its own.

use std::ops::Range;

use super::{Settings, SkipReason};

/// One stretch of a series without gaps, on a uniform grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Grid times (seconds), uniform, ascending, ending at the segment's
    /// last sample.
    pub t: Vec<f64>,
    /// One resampled column per input column, same length as `t`.
    pub columns: Vec<Vec<f64>>,
}

/// Longest spacing of consecutive points that is not a gap:
/// `max(gap_factor × interval, min_gap)`.
pub fn gap_threshold(interval_s: f64, settings: &Settings) -> f64 {
    (settings.gap_factor * interval_s).max(settings.min_gap_s)
}

/// Warm-up to drop from the start of a series lasting `span_s`:
/// `min(warmup_fraction × span, warmup_max)`.
pub fn warmup_s(span_s: f64, settings: &Settings) -> f64 {
    (settings.warmup_fraction * span_s)
        .min(settings.warmup_max_s)
        .max(0.0)
}

/// Grid step for a segment lasting `span_s`: the sampling interval, or
/// coarser so the segment has at most `max_points` points.
pub fn grid_step(span_s: f64, interval_s: f64, max_points: usize) -> f64 {
    let max_points = max_points.max(2);
    interval_s.max(span_s / (max_points - 1) as f64)
}

/// Index ranges of `t` between gaps longer than `max_gap` (`t` ascending).
pub fn split_at_gaps(t: &[f64], max_gap: f64) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    if t.is_empty() {
        return out;
    }
    let mut start = 0;
    for i in 1..t.len() {
        if t[i] - t[i - 1] > max_gap {
            out.push(start..i);
            start = i;
        }
    }
    out.push(start..t.len());
    out
}

/// Linear interpolation of (`t`, `y`) at the ascending `grid` (clamped to
/// the ends). O(len + grid).
pub fn resample(t: &[f64], y: &[f64], grid: &[f64]) -> Vec<f64> {
    let n = t.len().min(y.len());
    let mut out = Vec::with_capacity(grid.len());
    if n == 0 {
        out.resize(grid.len(), f64::NAN);
        return out;
    }
    let mut j = 0;
    for &g in grid {
        while j + 1 < n && t[j + 1] <= g {
            j += 1;
        }
        let v = if g <= t[0] {
            y[0]
        } else if j + 1 >= n {
            y[n - 1]
        } else {
            let (t0, t1) = (t[j], t[j + 1]);
            let w = (g - t0) / (t1 - t0);
            y[j] + w * (y[j + 1] - y[j])
        };
        out.push(v);
    }
    out
}

/// Median spacing of `t` (the sampling interval when the recording does not
/// say), or 1 s.
fn median_step(t: &[f64]) -> f64 {
    let mut d: Vec<f64> = t
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0.0)
        .collect();
    if d.is_empty() {
        return 1.0;
    }
    let mid = d.len() / 2;
    let (_, m, _) = d.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

/// Cleans, trims, splits and resamples a series with any number of value
/// columns sharing the times `t` (e.g. vm and rss).
///
/// Points whose time or any value is not finite are dropped, as are points
/// whose time does not increase. The warm-up is measured from the first
/// kept point. Segments shorter than `settings.min_points` grid points are
/// dropped; when none is left the series is skipped with the reason.
pub fn prepare(
    t: &[f64],
    columns: &[&[f64]],
    interval_s: f64,
    settings: &Settings,
) -> Result<Vec<Segment>, SkipReason> {
    let n = columns.iter().fold(t.len(), |n, c| n.min(c.len()));
    if n == 0 {
        return Err(SkipReason::NoSamples);
    }
    // Clean.
    let mut keep: Vec<usize> = Vec::with_capacity(n);
    // Column by column, the usual all-clean input is recognised in loops
    // the compiler vectorises; point by point only when something is off.
    let all_finite = |v: &[f64]| !v.iter().fold(false, |bad, x| bad | !x.is_finite());
    let clean = all_finite(&t[..n])
        && !t[..n].windows(2).fold(false, |bad, w| bad | (w[1] <= w[0]))
        && columns.iter().all(|c| all_finite(&c[..n]));
    if clean {
        keep.extend(0..n);
    } else {
        let mut last_t = f64::NEG_INFINITY;
        for i in 0..n {
            if t[i].is_finite() && t[i] > last_t && columns.iter().all(|c| c[i].is_finite()) {
                keep.push(i);
                last_t = t[i];
            }
        }
    }
    let (Some(&first), Some(&last)) = (keep.first(), keep.last()) else {
        return Err(SkipReason::NoFiniteValues);
    };
    // Warm-up.
    let warm = warmup_s(t[last] - t[first], settings);
    let from = keep.partition_point(|&i| t[i] < t[first] + warm);
    let keep = &keep[from..];
    let tk: Vec<f64> = keep.iter().map(|&i| t[i]).collect();
    let interval_s = if interval_s.is_finite() && interval_s > 0.0 {
        interval_s
    } else {
        median_step(&tk)
    };
    let max_gap = gap_threshold(interval_s, settings);
    let min_points = settings.min_points.max(2);
    let mut segments = Vec::new();
    let mut longest = (0usize, 0.0f64);
    for r in split_at_gaps(&tk, max_gap) {
        let ts = &tk[r.clone()];
        let span = ts[ts.len() - 1] - ts[0];
        let step = grid_step(span, interval_s, settings.max_points);
        // Grid anchored at the last sample: the models look backwards from it.
        let points = (span / step + 1e-6).floor() as usize + 1;
        if points > longest.0 {
            longest = (points, span);
        }
        if points < min_points {
            continue;
        }
        let end = ts[ts.len() - 1];
        let grid: Vec<f64> = (0..points)
            .map(|k| end - (points - 1 - k) as f64 * step)
            .collect();
        // The usual case: every point kept and the samples already on the
        // grid (the store densifies onto the sampler's ticks). Resampling
        // would return each value unchanged (weight 0 on the next point),
        // so the values are copied as they are.
        let kept = &keep[r.clone()];
        let contiguous = kept[kept.len() - 1] - kept[0] + 1 == kept.len();
        let on_grid = ts.len() == grid.len() && ts.iter().zip(&grid).all(|(a, b)| a == b);
        let cols = columns
            .iter()
            .map(|c| {
                if contiguous && on_grid {
                    return c[kept[0]..=kept[kept.len() - 1]].to_vec();
                }
                let ys: Vec<f64> = kept.iter().map(|&i| c[i]).collect();
                resample(ts, &ys, &grid)
            })
            .collect();
        segments.push(Segment {
            t: grid,
            columns: cols,
        });
    }
    if segments.is_empty() {
        return Err(SkipReason::TooShort {
            points: longest.0,
            needed: min_points,
            span_s: longest.1,
        });
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::default()
    }

    #[test]
    fn thresholds() {
        let s = settings();
        assert_eq!(gap_threshold(0.1, &s), 2.0);
        assert_eq!(gap_threshold(1.0, &s), 5.0);
        assert_eq!(warmup_s(100.0, &s), 10.0);
        assert_eq!(warmup_s(3600.0, &s), 30.0);
        assert_eq!(grid_step(100.0, 1.0, 4096), 1.0);
        assert_eq!(grid_step(40950.0, 1.0, 4096), 10.0);
    }

    #[test]
    fn splits_at_gaps() {
        let t = [0.0, 1.0, 2.0, 10.0, 11.0, 30.0];
        assert_eq!(split_at_gaps(&t, 5.0), vec![0..3, 3..5, 5..6]);
        assert!(split_at_gaps(&[], 5.0).is_empty());
    }

    #[test]
    fn resamples_linearly() {
        let t = [0.0, 2.0, 4.0];
        let y = [0.0, 20.0, 20.0];
        assert_eq!(
            resample(&t, &y, &[-1.0, 0.0, 1.0, 3.0, 4.0, 9.0]),
            vec![0.0, 0.0, 10.0, 20.0, 20.0, 20.0]
        );
    }

    #[test]
    fn prepare_drops_warmup_and_splits() {
        let mut s = settings();
        s.min_points = 5;
        // 0..=99 s, gap, 200..=299 s; warm-up = min(10% of 299, 30) = 29.9 s.
        let t: Vec<f64> = (0..100).chain(200..300).map(f64::from).collect();
        let y: Vec<f64> = t.clone();
        let segs = prepare(&t, &[&y], 1.0, &s).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].t.first(), Some(&30.0));
        assert_eq!(segs[0].t.last(), Some(&99.0));
        assert_eq!(segs[1].t.len(), 100);
        assert_eq!(segs[1].columns[0], segs[1].t);
    }

    /// Samples already on the grid are copied; the copy is what resampling
    /// gives. Off the grid, or with a point dropped, they are resampled.
    #[test]
    fn prepare_copies_samples_on_the_grid() {
        let mut s = settings();
        s.warmup_fraction = 0.0;
        let t: Vec<f64> = (0..300).map(f64::from).collect();
        let y: Vec<f64> = (0..300).map(|i| f64::from((i * 7919) % 4099)).collect();
        let seg = &prepare(&t, &[&y], 1.0, &s).unwrap()[0];
        assert_eq!(seg.columns[0], y);
        assert_eq!(seg.columns[0], resample(&t, &y, &seg.t));
        let jittered: Vec<f64> = t.iter().map(|&x| x + 0.01 * (x % 3.0)).collect();
        let seg = &prepare(&jittered, &[&y], 1.0, &s).unwrap()[0];
        assert_eq!(seg.columns[0], resample(&jittered, &y, &seg.t));
        assert_ne!(seg.columns[0], y);
        let mut holed = y.clone();
        holed[150] = f64::NAN;
        let seg = &prepare(&t, &[&holed], 1.0, &s).unwrap()[0];
        assert_eq!(seg.columns[0][150], (y[149] + y[151]) / 2.0);
    }

    #[test]
    fn prepare_coarsens_long_series() {
        let mut s = settings();
        s.max_points = 101;
        s.warmup_fraction = 0.0;
        let t: Vec<f64> = (0..=1000).map(f64::from).collect();
        let segs = prepare(&t, &[&t], 1.0, &s).unwrap();
        assert_eq!(segs[0].t.len(), 101);
        assert_eq!(segs[0].t[1] - segs[0].t[0], 10.0);
    }

    #[test]
    fn prepare_skips_bad_input() {
        let s = settings();
        assert_eq!(prepare(&[], &[&[]], 1.0, &s), Err(SkipReason::NoSamples));
        assert_eq!(
            prepare(&[1.0, 2.0], &[&[f64::NAN, f64::INFINITY]], 1.0, &s),
            Err(SkipReason::NoFiniteValues)
        );
        let t: Vec<f64> = (0..10).map(f64::from).collect();
        match prepare(&t, &[&t], 1.0, &s) {
            Err(SkipReason::TooShort { points, needed, .. }) => {
                assert_eq!((points, needed), (9, 20));
            }
            other => panic!("{other:?}"),
        }
        // Times going backwards and NaN values are dropped, not fatal.
        let mut t: Vec<f64> = (0..100).map(f64::from).collect();
        t[50] = 3.0;
        let mut y = t.clone();
        y[60] = f64::NAN;
        let segs = prepare(&t, &[&y], 0.0, &s).unwrap();
        assert_eq!(segs.len(), 1);
        assert!(segs[0].columns[0].iter().all(|v| v.is_finite()));
    }
}
